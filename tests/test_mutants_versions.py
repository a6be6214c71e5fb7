"""The tag rules' refusals, word for word: each says what is wrong and what to do instead."""

from __future__ import annotations

import pytest
from pipeline.rules.versions import (
    FloatingHolder,
    ReleaseInputError,
    decide_tags,
    parse_release_tag,
)
from semver import Version

ACCEPTED = (
    "accepted: vMAJOR.MINOR.PATCH or vMAJOR.MINOR.PATCH-PRERELEASE, e.g. v2.4.0 or v2.5.0-rc.1"
)


def test_build_metadata_is_refused_naming_the_release_it_would_overwrite() -> None:
    with pytest.raises(ReleaseInputError, match="build metadata") as refused:
        parse_release_tag("v1.2.3-rc.1+b5.x")
    assert str(refused.value) == (
        "release tag 'v1.2.3-rc.1+b5.x' has build metadata '+b5.x': an image tag cannot hold "
        f"'+', and dropping it would overwrite release 1.2.3-rc.1; {ACCEPTED}"
    )


def test_a_published_version_is_refused_saying_how_to_go_on() -> None:
    with pytest.raises(ReleaseInputError, match="already published") as refused:
        decide_tags("v2.4.0", ["2.4.0", "latest"])
    assert str(refused.value) == (
        "version 2.4.0 is already published and published versions are immutable; "
        "release a new version, or pass --overwrite to replace it"
    )


def test_a_floating_tag_on_this_very_version_moves_again_on_overwrite() -> None:
    holder = FloatingHolder("sha256:" + "ef" * 32, Version(2, 4, 0), "version tag 2.4.0 shares it")
    decision = decide_tags(
        "v2.4.0", ["2.4.0", "2.4", "latest"], overwrite=True, holders={"latest": holder}
    )
    assert decision.tags == ("2.4.0", "2.4", "latest")
    assert (
        decision.floating[1].reason == "moves: 2.4.0 is the highest stable version in all versions"
    )

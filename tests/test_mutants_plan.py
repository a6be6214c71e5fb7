"""The plan as a maintainer reads it (``render_table``), and what ``make_plan`` does by default.

``python -m pipeline plan`` prints ``render_table``; ``tests/test_cli.py`` checks that output in
a subprocess, these check the whole text in the test process.
"""

from __future__ import annotations

import pytest
from pipeline.rules.catalogue import ImageSpec
from pipeline.rules.plan import PublishedState, make_plan, render_table
from pipeline.rules.versions import ReleaseInputError, holder_of

SHA = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "cd" * 32
P = "org.opencontainers.image."
WEB = ImageSpec("web", "Dockerfile.web", ("linux/amd64", "linux/arm64"), "The web front.")
CLI = ImageSpec("cli", "Dockerfile.cli", ("linux/amd64",), "The command line.")
URL = "https://github.com/acme/qm-nmr-calc"


def _labels(name: str, description: str, version: str) -> str:
    """The label lines of one image of the table, without revision and commit time."""
    return (
        f"  label       {P}source={URL}\n"
        f"  label       {P}url={URL}\n"
        f"  label       {P}title=qm-nmr-calc-{name}\n"
        f"  label       {P}description={description}\n"
        f"  label       {P}licenses=MIT\n"
        f"  label       {P}version={version}\n"
    )


def test_the_table_of_a_backport_says_which_floating_tags_move_and_why() -> None:
    plan = make_plan(
        "v2.3.7",
        existing_tags={"web": ["2.4.0", "2.3.6"], "cli": ["2.3.6"]},
        owner="acme",
        registry="registry.example:5000",
        catalogue=[WEB, CLI],
    )
    assert render_table(plan) == (
        "Release v2.3.7 -> version 2.3.7 (stable release)\n"
        "\n"
        "web: registry.example:5000/acme/qm-nmr-calc-web\n"
        "  dockerfile  Dockerfile.web\n"
        "  platforms   linux/amd64, linux/arm64\n"
        "  tags        2.3.7, 2.3\n"
        "  2.3         moves: 2.3.7 is the highest stable version in 2.3.x\n"
        "  latest      stays: 2.4.0 is higher than 2.3.7 in all versions\n"
        + _labels("web", "The web front.", "2.3.7")
        + "\n"
        "cli: registry.example:5000/acme/qm-nmr-calc-cli\n"
        "  dockerfile  Dockerfile.cli\n"
        "  platforms   linux/amd64\n"
        "  tags        2.3.7, 2.3, latest\n"
        "  2.3         moves: 2.3.7 is the highest stable version in 2.3.x\n"
        "  latest      moves: 2.3.7 is the highest stable version in all versions\n"
        + _labels("cli", "The command line.", "2.3.7")
    )


def test_the_table_of_a_prerelease_completing_a_stopped_release() -> None:
    identity = {P + "version": "2.5.0-rc.1", P + "revision": SHA}
    state = PublishedState(("2.5.0-rc.1",), version_digest=DIGEST, version_labels=(identity,))
    plan = make_plan(
        "v2.5.0-rc.1", published={"cli": state}, owner="acme", revision=SHA, catalogue=[CLI]
    )
    reason = "2.5.0-rc.1 is a prerelease; prereleases never move floating tags"
    assert render_table(plan) == (
        "Release v2.5.0-rc.1 -> version 2.5.0-rc.1 (prerelease)\n"
        "\n"
        "cli: ghcr.io/acme/qm-nmr-calc-cli\n"
        "  dockerfile  Dockerfile.cli\n"
        "  platforms   linux/amd64\n"
        "  tags        2.5.0-rc.1\n"
        "  2.5.0-rc.1  cdcdcdcdcdcd already holds this release, version 2.5.0-rc.1 of revision "
        "0123456789ab: kept, and the release completed\n"
        f"  2.5         {reason}\n"
        f"  latest      {reason}\n"
        + _labels("cli", "The command line.", "2.5.0-rc.1")
        + f"  label       {P}revision={SHA}\n"
    )


def test_a_published_version_is_refused_unless_overwrite_is_asked() -> None:
    with pytest.raises(ReleaseInputError, match=r"version 2\.4\.0 is already published"):
        make_plan("v2.4.0", existing_tags={"cli": ["2.4.0"]}, catalogue=[CLI])
    plan = make_plan("v2.4.0", existing_tags={"cli": ["2.4.0"]}, overwrite=True, catalogue=[CLI])
    assert plan.image("cli").tags == ("2.4.0", "2.4", "latest")


def test_a_floating_tag_of_unknown_version_stays_unless_taken_over() -> None:
    unknown = holder_of(DIGEST, {}, "latest")
    state = PublishedState(("latest",), holders={"latest": unknown})
    kept = make_plan("v2.4.0", published={"cli": state}, catalogue=[CLI]).image("cli")
    assert kept.tags == ("2.4.0", "2.4")
    assert [tag.reason for tag in kept.floating][1] == (
        "stays: it points at cdcdcdcdcdcd, of unknown version (no version tag shares its digest, "
        "and it has version label 'latest', not a SemVer version); never moved silently: pass "
        "--take-over-floating to move it"
    )
    taken = make_plan(
        "v2.4.0", published={"cli": state}, take_over_floating=True, catalogue=[CLI]
    ).image("cli")
    assert taken.tags == ("2.4.0", "2.4", "latest")
    assert taken.floating[1].reason.startswith("moves: taken over (--take-over-floating) from")


def test_an_unlabelled_holder_is_said_to_have_no_version_label() -> None:
    state = PublishedState(("latest",), holders={"latest": holder_of(DIGEST, {}, None)})
    reason = make_plan("v2.4.0", published={"cli": state}, catalogue=[CLI]).image("cli")
    assert (
        "(no version tag shares its digest, and it has no version label, not a SemVer version)"
        in reason.floating[1].reason
    )


def test_asking_the_plan_for_an_image_it_does_not_have_names_it() -> None:
    with pytest.raises(KeyError, match="'api'"):
        make_plan("v2.4.0", catalogue=[CLI]).image("api")

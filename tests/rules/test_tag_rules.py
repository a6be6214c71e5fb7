"""Tag rules: accepted tags, refusals, floating-tag ordering, and their properties.

Each refusal is checked word for word where it tells the user what is wrong and what to do
instead; the ordering rules are also checked as properties (hypothesis) against a model.
"""

from __future__ import annotations

import hashlib
import re

import pytest
import semver
from hypothesis import given
from hypothesis import strategies as st
from pipeline.rules.versions import (
    LATEST,
    MAX_TAG_LENGTH,
    FloatingHolder,
    PublishedVersion,
    ReleaseInputError,
    decide_tags,
    floating_tag_names,
    holder_of,
    parse_release_tag,
    published_versions,
)
from semver import Version

# A version tag of exactly MAX_TAG_LENGTH characters, and one character more.
LONGEST = "1.0.0-" + "a" * (MAX_TAG_LENGTH - len("1.0.0-"))
TOO_LONG = LONGEST + "a"


@pytest.mark.parametrize(
    ("tag", "existing", "tags"),
    [
        pytest.param("v2.4.0", [], ("2.4.0", "2.4", LATEST), id="first-release"),
        pytest.param("2.4.0", [], ("2.4.0", "2.4", LATEST), id="v-is-optional"),
        pytest.param("v0.3.1", [], ("0.3.1", "0.3", LATEST), id="zero-major-gives-0.Y"),
        pytest.param("v1.0.0", ["0.9.9"], ("1.0.0", "1.0", LATEST), id="leaving-zero-major"),
        pytest.param("v0.3.1", ["1.0.0"], ("0.3.1", "0.3"), id="zero-major-after-1.0"),
        pytest.param(
            "v2.4.1", ["2.4.0", "2.3.9", "latest", "2.4"], ("2.4.1", "2.4", LATEST), id="patch"
        ),
        pytest.param("v2.3.7", ["2.4.0", "2.3.6"], ("2.3.7", "2.3"), id="old-minor-keeps-latest"),
        pytest.param("v2.3.7", ["2.4.0"], ("2.3.7", "2.3"), id="old-minor-first-of-its-line"),
        pytest.param("v2.3.7", ["2.4.0", "2.3.8"], ("2.3.7",), id="older-patch-moves-nothing"),
        pytest.param("v2.10.0", ["2.9.0", "2.9.9"], ("2.10.0", "2.10", LATEST), id="2.10>2.9"),
        pytest.param("v2.9.1", ["2.10.0", "2.9.0"], ("2.9.1", "2.9"), id="2.9<2.10"),
        pytest.param("v10.0.0", ["9.0.0"], ("10.0.0", "10.0", LATEST), id="10>9-not-string"),
        pytest.param("v2.4.10", ["2.4.9"], ("2.4.10", "2.4", LATEST), id="patch-10>9"),
        pytest.param("v2.4.9", ["2.4.10"], ("2.4.9",), id="patch-9<10"),
        pytest.param(
            "v2.5.0", ["2.5.0-rc.1", "2.4.0"], ("2.5.0", "2.5", LATEST), id="rc-before-final"
        ),
        pytest.param(
            "v2.4.1", ["3.0.0-beta.1", "2.4.0"], ("2.4.1", "2.4", LATEST), id="rc-never-blocks"
        ),
        pytest.param(
            "v2.4.1",
            ["sha-abc", "latest", "2.4", "2", "main", ""],
            ("2.4.1", "2.4", LATEST),
            id="non-versions-ignored",
        ),
        pytest.param("v2.5.0-rc.1", [], ("2.5.0-rc.1",), id="prerelease-alone"),
        pytest.param("2.5.0-rc.2", ["2.5.0-rc.1"], ("2.5.0-rc.2",), id="prerelease-after-rc"),
        pytest.param("v9.0.0-alpha", ["2.4.0"], ("9.0.0-alpha",), id="prerelease-highest"),
        pytest.param("v0.1.0-0", [], ("0.1.0-0",), id="prerelease-numeric-zero"),
        pytest.param("v" + LONGEST, [], (LONGEST,), id="128-characters-accepted"),
    ],
)
def test_accepted_tags(tag: str, existing: list[str], tags: tuple[str, ...]) -> None:
    decision = decide_tags(tag, existing)
    assert decision.tags == tags
    assert decision.source_tag == tag
    assert decision.version_tag == tag.removeprefix("v")


@pytest.mark.parametrize(
    ("tag", "word"),
    [
        pytest.param("v1.2.3+b5", "build metadata", id="build-metadata"),
        pytest.param("1.2.3-rc.1+sha.abc", "build metadata", id="prerelease-build-metadata"),
        pytest.param("v2.4", "not a SemVer", id="partial"),
        pytest.param("v2", "not a SemVer", id="major-only"),
        pytest.param("2.4.0.1", "not a SemVer", id="four-parts"),
        pytest.param("release-1", "not a SemVer", id="word"),
        pytest.param("v02.4.0", "not a SemVer", id="leading-zero-major"),
        pytest.param("v2.04.0", "not a SemVer", id="leading-zero-minor"),
        pytest.param("v2.4.00", "not a SemVer", id="leading-zero-patch"),
        pytest.param("v2.4.0-01", "not a SemVer", id="leading-zero-prerelease"),
        pytest.param("v2.4.0-", "not a SemVer", id="empty-prerelease"),
        pytest.param("v2.4.0-rc..1", "not a SemVer", id="empty-identifier"),
        pytest.param("V2.4.0", "not a SemVer", id="capital-v"),
        pytest.param("vv2.4.0", "not a SemVer", id="double-v"),
        pytest.param(" v2.4.0", "not a SemVer", id="leading-space"),
        pytest.param("v2.4.0\n", "not a SemVer", id="trailing-newline"),
        pytest.param("v1\u0662.4.0", "not a SemVer", id="non-ascii-digit"),
        pytest.param("", "empty", id="empty"),
        pytest.param("v", "empty", id="only-v"),
        pytest.param(TOO_LONG, "at most 128", id="129-characters"),
        pytest.param("v" + TOO_LONG, "at most 128", id="129-characters-after-v"),
    ],
)
def test_refused_tags(tag: str, word: str) -> None:
    with pytest.raises(ReleaseInputError, match=re.escape(word)) as refusal:
        decide_tags(tag)
    message = str(refusal.value)
    assert "\n" not in message
    with pytest.raises(ReleaseInputError):
        parse_release_tag(tag)


@pytest.mark.parametrize(
    ("tag", "existing"),
    [
        pytest.param("v2.4.0", ["2.4.0"], id="stable"),
        pytest.param("2.4.0", ["latest", "2.4", "2.4.0"], id="stable-without-v"),
        pytest.param("v2.5.0-rc.1", ["2.5.0-rc.1"], id="prerelease"),
        pytest.param("v2.3.7", ["2.4.0", "2.3.7"], id="older"),
    ],
)
def test_published_version_is_immutable(tag: str, existing: list[str]) -> None:
    with pytest.raises(ReleaseInputError, match="already published"):
        decide_tags(tag, existing)


@pytest.mark.parametrize(
    ("tag", "existing", "tags"),
    [
        pytest.param("v2.4.0", ["2.4.0"], ("2.4.0", "2.4", LATEST), id="the-highest"),
        pytest.param("v2.4.0", ["2.4.0", "2.5.0"], ("2.4.0", "2.4"), id="latest-stays"),
        pytest.param("v2.4.0", ["2.4.0", "2.4.1", "2.5.0"], ("2.4.0",), id="both-stay"),
        pytest.param("v2.5.0-rc.1", ["2.5.0-rc.1"], ("2.5.0-rc.1",), id="prerelease"),
    ],
)
def test_overwrite_follows_the_ordering_rule(
    tag: str, existing: list[str], tags: tuple[str, ...]
) -> None:
    assert decide_tags(tag, existing, overwrite=True).tags == tags


@pytest.mark.parametrize(
    ("tag", "existing", "expected"),
    [
        pytest.param("v2.4.1", ["2.4.0"], {"2.4": "moves", LATEST: "moves"}, id="moves"),
        pytest.param("v2.4.0", [], {"2.4": "moves: first", LATEST: "moves: first"}, id="first"),
        pytest.param("v2.3.7", ["2.4.0"], {"2.3": "moves", LATEST: "stays: 2.4.0"}, id="stays"),
        pytest.param(
            "v2.5.0-rc.1", [], {"2.5": "prerelease", LATEST: "prerelease"}, id="prerelease"
        ),
    ],
)
def test_every_floating_tag_has_a_reason(
    tag: str, existing: list[str], expected: dict[str, str]
) -> None:
    decision = decide_tags(tag, existing)
    reasons = {floating.name: floating.reason for floating in decision.floating}
    assert list(reasons) == list(expected)
    for name, word in expected.items():
        assert word in reasons[name]
    for floating in decision.floating:
        assert floating.moves == floating.reason.startswith("moves")


@pytest.mark.parametrize(
    ("existing", "versions"),
    [
        pytest.param(["latest", "2.4", "sha-abc", "2", "0"], [], id="junk"),
        pytest.param(["2.4.0", "latest", "2.5.0-rc.1"], ["2.4.0", "2.5.0-rc.1"], id="mixed"),
        pytest.param(["2.4.0\n", "1\u0662.0.0", "02.4.0"], [], id="near-versions"),
    ],
)
def test_published_versions_ignores_non_versions(existing: list[str], versions: list[str]) -> None:
    assert [str(version) for version in published_versions(existing)] == versions


# --- properties -----------------------------------------------------------------------------

_NUMBERS = st.integers(min_value=0, max_value=12)
_IDENTIFIER = st.one_of(
    st.integers(min_value=0, max_value=20).map(str),
    st.from_regex(r"[a-z-][a-z0-9-]{0,4}", fullmatch=True),
)
_PRERELEASE = st.lists(_IDENTIFIER, min_size=1, max_size=3).map(".".join)


@st.composite
def _versions(draw: st.DrawFn) -> semver.Version:
    """A random SemVer version, stable or prerelease, from a small range so versions collide."""
    prerelease = draw(st.one_of(st.none(), _PRERELEASE))
    return semver.Version(draw(_NUMBERS), draw(_NUMBERS), draw(_NUMBERS), prerelease)


_JUNK = st.one_of(
    st.sampled_from(["latest", "2.4", "0.1", "2", "0", "sha-abc", "main", "edge", ""]),
    st.text(max_size=12),
).filter(lambda tag: not semver.Version.is_valid(tag))


def _key(version: semver.Version) -> tuple[int, int, int]:
    return (version.major, version.minor, version.patch)


@given(
    new=_versions(),
    existing=st.lists(_versions(), max_size=8),
    junk=st.lists(_JUNK, max_size=4),
    with_v=st.booleans(),
)
def test_floating_tags_follow_the_model(
    new: semver.Version,
    existing: list[semver.Version],
    junk: list[str],
    with_v: bool,
) -> None:
    tag = ("v" if with_v else "") + str(new)
    existing_tags = [str(version) for version in existing] + junk
    decision = decide_tags(tag, existing_tags, overwrite=True)

    stable = [_key(version) for version in existing if version.prerelease is None]
    same_minor = [key for key in stable if key[:2] == (new.major, new.minor)]
    minor_tag = f"{new.major}.{new.minor}"
    expected = [str(new)]
    if new.prerelease is None and all(_key(new) >= key for key in same_minor):
        expected.append(minor_tag)
    if new.prerelease is None and all(_key(new) >= key for key in stable):
        expected.append(LATEST)

    assert list(decision.tags) == expected
    assert decision.tags[0] == str(new)
    assert not decision.tags[0].startswith("v")
    assert not any(re.fullmatch(r"[0-9]+", name) for name in decision.tags)
    assert [floating.name for floating in decision.floating] == [minor_tag, LATEST]
    assert decision.prerelease == (new.prerelease is not None)


@given(new=_versions(), existing=st.lists(_versions(), max_size=8))
def test_refused_exactly_when_already_published(
    new: semver.Version, existing: list[semver.Version]
) -> None:
    existing_tags = [str(version) for version in existing]
    if str(new) in existing_tags:
        with pytest.raises(ReleaseInputError, match="already published"):
            decide_tags(str(new), existing_tags)
    else:
        assert decide_tags(str(new), existing_tags).version_tag == str(new)


# --- the registry state upstream left: floating tags on images of unknown version -------------

UPSTREAM_TAGS = ["2.4.0", "2.4", "2.5.0", "2.5", "2.6.0", "2.6.5", "2.6", LATEST]
"""What upstream's old workflow left: ``latest`` moved by every tag, last by ``v2.8``."""
V28 = "sha256:" + "8" * 64
V265 = "sha256:" + "6" * 64


def _holder(
    digest: str, label: str | None, tag_digests: dict[str, str] | None = None
) -> FloatingHolder:
    """What ``latest`` holds, given the version tags' digests and its version label."""
    return holder_of(digest, tag_digests or {"2.6.5": V265, "2.4.0": "sha256:" + "4" * 64}, label)


def test_holder_named_by_a_version_tag_sharing_its_digest() -> None:
    holder = _holder(V265, "latest")

    assert holder.version == semver.Version.parse("2.6.5")
    assert "version tag 2.6.5 shares its digest" in holder.evidence


def test_holder_named_by_its_semver_label() -> None:
    holder = _holder(V28, "2.8.0")

    assert holder.version == semver.Version.parse("2.8.0")
    assert "label" in holder.evidence


@pytest.mark.parametrize("label", [None, "latest", "v2.8", "2.8", "2.8.0+build"])
def test_holder_of_unknown_version(label: str | None) -> None:
    holder = _holder(V28, label)

    assert holder.version is None
    assert "no version tag shares its digest" in holder.evidence


def test_unknown_latest_is_never_moved_silently() -> None:
    decision = decide_tags("v2.9.0", UPSTREAM_TAGS, holders={LATEST: _holder(V28, "latest")})

    assert decision.tags == ("2.9.0", "2.9")
    (latest,) = [tag for tag in decision.floating if tag.name == LATEST]
    assert latest.reason.startswith("stays: it points at 888888888888, of unknown version")
    assert "--take-over-floating" in latest.reason


def test_unknown_latest_moves_when_taken_over() -> None:
    decision = decide_tags(
        "v2.9.0",
        UPSTREAM_TAGS,
        holders={LATEST: _holder(V28, "latest")},
        take_over_floating=True,
    )

    assert decision.tags == ("2.9.0", "2.9", LATEST)
    (latest,) = [tag for tag in decision.floating if tag.name == LATEST]
    assert "taken over (--take-over-floating)" in latest.reason


def test_take_over_never_moves_a_known_higher_release_backwards() -> None:
    decision = decide_tags(
        "v2.7.0",
        UPSTREAM_TAGS,
        holders={LATEST: _holder(V28, "2.8.0")},  # labelled, no version tag: still known
        take_over_floating=True,
    )

    assert decision.tags == ("2.7.0", "2.7")
    (latest,) = [tag for tag in decision.floating if tag.name == LATEST]
    assert latest.reason == "stays: it holds 2.8.0 (its version label is 2.8.0), higher than 2.7.0"


def test_known_holder_compares_as_without_one() -> None:
    holders = {LATEST: _holder(V265, "2.6.5"), "2.6": _holder(V265, "2.6.5")}

    with_holders = decide_tags("v2.6.6", UPSTREAM_TAGS, holders=holders)

    assert with_holders == decide_tags("v2.6.6", UPSTREAM_TAGS)


def test_prerelease_reads_no_floating_tag() -> None:
    assert floating_tag_names(semver.Version.parse("2.9.0-rc.1")) == ()
    assert floating_tag_names(semver.Version.parse("2.9.0")) == ("2.9", LATEST)


@given(
    new=_versions(),
    existing=st.lists(_versions(), max_size=6),
    label=st.one_of(st.none(), _versions().map(str), st.sampled_from(["latest", "v2.8"])),
    take_over=st.booleans(),
)
def test_a_holder_only_ever_holds_a_move_back(
    new: semver.Version,
    existing: list[semver.Version],
    label: str | None,
    take_over: bool,
) -> None:
    """Whatever ``latest`` holds, knowing it never moves a tag the tags alone would not move."""
    tags = [str(version) for version in existing if version != new]
    holder = holder_of(V28, {}, label)
    without = decide_tags(str(new), tags)
    with_holder = decide_tags(
        str(new), tags, holders={LATEST: holder}, take_over_floating=take_over
    )

    assert set(with_holder.tags) <= set(without.tags)
    moved_without = LATEST in without.tags
    if moved_without and holder.version is None:
        assert (LATEST in with_holder.tags) == take_over
    if moved_without and holder.version is not None and not holder.version > new:
        assert LATEST in with_holder.tags


# --- a release that stopped half-way ------------------------------------------------------------


def test_version_tag_holding_this_release_is_kept() -> None:
    kept = PublishedVersion(True, "holds this release", "sha256:" + "a" * 64)

    decision = decide_tags("v2.4.0", ["2.4.0"], published_version=kept)

    assert decision.kept == kept
    assert decision.tags == ("2.4.0", "2.4", LATEST)


def test_version_tag_holding_another_build_is_refused_with_why() -> None:
    other = PublishedVersion(False, "it holds revision 0123", "sha256:" + "a" * 64)

    with pytest.raises(ReleaseInputError, match=r"already published \(it holds revision 0123\)"):
        decide_tags("v2.4.0", ["2.4.0"], published_version=other)


def test_two_part_tag_names_the_tag_to_push() -> None:
    with pytest.raises(ReleaseInputError, match=r"push 'v2\.8\.0'"):
        parse_release_tag("v2.8")


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


@given(st.binary(min_size=1, max_size=64))
def test_attestation_tags_never_count_as_releases(content: bytes) -> None:
    # Signatures, SBOMs and provenance are listed under `sha256-<hex of the subject>` (the
    # referrers tag fallback): those tags are never versions, and never move floating tags.
    attestation_tag = "sha256-" + hashlib.sha256(content).hexdigest()
    assert published_versions([attestation_tag]) == []
    decision = decide_tags("v2.4.0", [attestation_tag, "2.3.0"])
    assert [tag.name for tag in decision.floating if tag.moves] == ["2.4", "latest"]

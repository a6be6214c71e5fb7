"""Tag rules: which tags a release gets, and why each floating tag moves or stays.

Input is a git tag ``vX.Y.Z[-pre]`` (the ``v`` is optional). A release is published as
``X.Y.Z``; a stable release may also move the floating tags ``X.Y`` and ``latest``, but only
when it is the highest stable version in that tag's scope among the versions already
published. Versions always compare as SemVer 2.0.0, never as strings. There is never a
bare major tag (``2``, ``0``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import semver

MAX_TAG_LENGTH = 128
"""The longest tag an OCI registry accepts."""

LATEST = "latest"

ACCEPTED = (
    "accepted: vMAJOR.MINOR.PATCH or vMAJOR.MINOR.PATCH-PRERELEASE, e.g. v2.4.0 or v2.5.0-rc.1"
)

# Strict SemVer 2.0.0 (semver.org's regex), which refuses leading zeros and partial versions.
_SEMVER = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<prerelease>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z",
    re.ASCII,  # \d is ASCII only, and \Z (unlike $) does not accept a trailing newline
)


# MAJOR.MINOR, the form of upstream's old tags (v2.8): the release tag to push is MAJOR.MINOR.0.
_TWO_PART = re.compile(r"^(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\Z", re.ASCII)


class ReleaseInputError(ValueError):
    """Input that cannot make a release; the message is one line saying what is accepted."""


@dataclass(frozen=True)
class FloatingTag:
    """A tag that follows the newest release in its scope (``X.Y`` or ``latest``)."""

    name: str
    moves: bool
    reason: str


@dataclass(frozen=True)
class FloatingHolder:
    """What a floating tag points at before a release: a digest, and its version if known."""

    digest: str
    version: semver.Version | None
    """None when nothing says which version it is (upstream's old ``latest`` of ``v2.8``)."""
    evidence: str
    """How the version is known, or why it is not."""


@dataclass(frozen=True)
class PublishedVersion:
    """What a release's version tag holds already, when it exists before the release."""

    this_release: bool
    """The image carries this release's version and revision: a release that stopped half-way."""
    reason: str
    digest: str


@dataclass(frozen=True)
class TagDecision:
    """Every tag decision for one release of one repository."""

    source_tag: str
    version: semver.Version
    floating: tuple[FloatingTag, ...]
    kept: PublishedVersion | None = None
    """Set when the version tag already holds this release: nothing is built or pushed again."""

    @property
    def version_tag(self) -> str:
        """The immutable tag of this release: the version without ``v``."""
        return str(self.version)

    @property
    def prerelease(self) -> bool:
        """Whether this is a prerelease (which never moves a floating tag)."""
        return self.version.prerelease is not None

    @property
    def tags(self) -> tuple[str, ...]:
        """Tags to push, in push order: the version first, then the floating tags that move."""
        return (self.version_tag, *(tag.name for tag in self.floating if tag.moves))


def parse_release_tag(tag: str) -> semver.Version:
    """Parse a release tag (``v`` optional); refuse anything that cannot be published as-is."""
    text = tag[1:] if tag.startswith("v") else tag
    if not text:
        raise ReleaseInputError(f"release tag {tag!r} is empty; {ACCEPTED}")
    match = _SEMVER.match(text)
    if match is None and _TWO_PART.match(text):
        raise ReleaseInputError(
            f"release tag {tag!r} is not a SemVer 2.0.0 version (two parts, not three); push "
            f"'v{text}.0' for this release (it is published as {text}.0 and may move {text})"
        )
    if match is None:
        raise ReleaseInputError(f"release tag {tag!r} is not a SemVer 2.0.0 version; {ACCEPTED}")
    if match["build"] is not None:
        raise ReleaseInputError(
            f"release tag {tag!r} has build metadata '+{match['build']}': an image tag cannot "
            f"hold '+', and dropping it would overwrite release {text.split('+')[0]}; {ACCEPTED}"
        )
    if len(text) > MAX_TAG_LENGTH:
        raise ReleaseInputError(
            f"release tag {tag!r} gives an image tag of {len(text)} characters; "
            f"at most {MAX_TAG_LENGTH} are accepted"
        )
    return semver.Version.parse(text)


def published_versions(existing_tags: Iterable[str]) -> list[semver.Version]:
    """The versions among a repository's tags; ``latest``, ``2.4``, ``sha-…`` are ignored."""
    versions = []
    for tag in existing_tags:
        match = _SEMVER.match(tag)
        if match is not None and match["build"] is None:
            versions.append(semver.Version.parse(tag))
    return versions


def decide_tags(
    tag: str,
    existing_tags: Iterable[str] = (),
    *,
    overwrite: bool = False,
    published_version: PublishedVersion | None = None,
    holders: Mapping[str, FloatingHolder] | None = None,
    take_over_floating: bool = False,
) -> TagDecision:
    """Decide the tags of release ``tag`` given what a repository already has.

    ``published_version`` says what the version tag holds when it exists; ``holders`` what each
    floating tag points at now (a tag left out is taken to be absent or of a known version).
    """
    version = parse_release_tag(tag)
    published = published_versions(existing_tags)
    kept = None
    if version in published and not overwrite:
        if published_version is None or not published_version.this_release:
            why = f" ({published_version.reason})" if published_version is not None else ""
            raise ReleaseInputError(
                f"version {version} is already published{why} and published versions are "
                "immutable; release a new version, or pass --overwrite to replace it"
            )
        kept = published_version
    floating = floating_tags(
        version, published, holders=holders or {}, take_over_floating=take_over_floating
    )
    return TagDecision(source_tag=tag, version=version, floating=floating, kept=kept)


def floating_tag_names(version: semver.Version) -> tuple[str, ...]:
    """The floating tags a release of ``version`` may move: ``X.Y`` and ``latest`` (none: pre)."""
    if version.prerelease is not None:
        return ()
    return (f"{version.major}.{version.minor}", LATEST)


def floating_tags(
    version: semver.Version,
    published: Iterable[semver.Version],
    *,
    holders: Mapping[str, FloatingHolder] | None = None,
    take_over_floating: bool = False,
) -> tuple[FloatingTag, ...]:
    """The ``X.Y`` and ``latest`` decisions for ``version``, each with its reason."""
    minor_tag = f"{version.major}.{version.minor}"
    if version.prerelease is not None:
        reason = f"{version} is a prerelease; prereleases never move floating tags"
        return (FloatingTag(minor_tag, False, reason), FloatingTag(LATEST, False, reason))
    stable = [other for other in published if other.prerelease is None]
    same_minor = [other for other in stable if in_scope(minor_tag, version, other)]
    decisions = (
        _decide(minor_tag, version, same_minor, f"{minor_tag}.x"),
        _decide(LATEST, version, stable, "all versions"),
    )
    return tuple(
        _respect_holder(decision, version, (holders or {}).get(decision.name), take_over_floating)
        for decision in decisions
    )


def in_scope(name: str, version: semver.Version, other: semver.Version) -> bool:
    """Whether ``other`` counts for floating tag ``name`` of ``version`` (``latest``: all)."""
    return name == LATEST or (other.major, other.minor) == (version.major, version.minor)


def holder_of(
    digest: str, version_tag_digests: Mapping[str, str], version_label: str | None
) -> FloatingHolder:
    """The version of the image a floating tag points at, from the registry's evidence.

    A version tag with the same digest names it; else a SemVer ``org.opencontainers.image.version``
    label does; else it is unknown (upstream's old workflow published ``v2.8`` only as
    ``latest``, labelled ``latest``).
    """
    for tag, tag_digest in version_tag_digests.items():
        if tag_digest == digest and (version := _as_version(tag)) is not None:
            return FloatingHolder(digest, version, f"version tag {version} shares its digest")
    labelled = _as_version(version_label) if version_label is not None else None
    if labelled is not None:
        return FloatingHolder(digest, labelled, f"its version label is {labelled}")
    label = "no version label" if version_label is None else f"version label {version_label!r}"
    return FloatingHolder(
        digest, None, f"no version tag shares its digest, and it has {label}, not a SemVer version"
    )


def _as_version(text: str) -> semver.Version | None:
    """``text`` as a SemVer version without build metadata, or None."""
    match = _SEMVER.match(text)
    return semver.Version.parse(text) if match is not None and match["build"] is None else None


def _respect_holder(
    decision: FloatingTag,
    version: semver.Version,
    holder: FloatingHolder | None,
    take_over_floating: bool,
) -> FloatingTag:
    """``decision``, checked against what the tag points at now.

    An image of unknown version is never moved over silently; a higher known one never.
    """
    if not decision.moves or holder is None:
        return decision
    short = holder.digest.removeprefix("sha256:")[:12]
    if holder.version is None:
        if take_over_floating:
            return FloatingTag(
                decision.name,
                True,
                f"moves: taken over (--take-over-floating) from {short}, of unknown version "
                f"({holder.evidence})",
            )
        return FloatingTag(
            decision.name,
            False,
            f"stays: it points at {short}, of unknown version ({holder.evidence}); "
            "never moved silently: pass --take-over-floating to move it",
        )
    known = holder.version
    if known.prerelease is None and in_scope(decision.name, version, known) and known > version:
        return FloatingTag(
            decision.name,
            False,
            f"stays: it holds {known} ({holder.evidence}), higher than {version}",
        )
    return decision


def _decide(
    name: str, version: semver.Version, scope: list[semver.Version], scope_name: str
) -> FloatingTag:
    """Move ``name`` to ``version`` only if no higher stable version exists in ``scope``."""
    highest = max(scope, default=None)
    if highest is None:
        return FloatingTag(name, True, f"moves: first stable release in {scope_name}")
    if version >= highest:
        return FloatingTag(
            name, True, f"moves: {version} is the highest stable version in {scope_name}"
        )
    return FloatingTag(
        name,
        False,
        f"stays: {highest} is higher than {version} in {scope_name}",
    )

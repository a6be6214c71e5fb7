"""Tag rules: which tags a release gets, and why each floating tag moves or stays.

Input is a git tag ``vX.Y.Z[-pre]`` (the ``v`` is optional). A release is published as
``X.Y.Z``; a stable release may also move the floating tags ``X.Y`` and ``latest``, but only
when it is the highest stable version in that tag's scope among the versions already
published. Versions always compare as SemVer 2.0.0, never as strings. There is never a
bare major tag (``2``, ``0``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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


class ReleaseInputError(ValueError):
    """Input that cannot make a release; the message is one line saying what is accepted."""


@dataclass(frozen=True)
class FloatingTag:
    """A tag that follows the newest release in its scope (``X.Y`` or ``latest``)."""

    name: str
    moves: bool
    reason: str


@dataclass(frozen=True)
class TagDecision:
    """Every tag decision for one release of one repository."""

    source_tag: str
    version: semver.Version
    floating: tuple[FloatingTag, ...]

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
    tag: str, existing_tags: Iterable[str] = (), *, overwrite: bool = False
) -> TagDecision:
    """Decide the tags of release ``tag`` given the tags a repository already has."""
    version = parse_release_tag(tag)
    published = published_versions(existing_tags)
    if version in published and not overwrite:
        raise ReleaseInputError(
            f"version {version} is already published and published versions are immutable; "
            "release a new version, or pass --overwrite to replace it"
        )
    return TagDecision(source_tag=tag, version=version, floating=floating_tags(version, published))


def floating_tags(
    version: semver.Version, published: Iterable[semver.Version]
) -> tuple[FloatingTag, ...]:
    """The ``X.Y`` and ``latest`` decisions for ``version``, each with its reason."""
    minor_tag = f"{version.major}.{version.minor}"
    if version.prerelease is not None:
        reason = f"{version} is a prerelease; prereleases never move floating tags"
        return (FloatingTag(minor_tag, False, reason), FloatingTag(LATEST, False, reason))
    stable = [other for other in published if other.prerelease is None]
    same_minor = [
        other for other in stable if (other.major, other.minor) == (version.major, version.minor)
    ]
    return (
        _decide(minor_tag, version, same_minor, f"{minor_tag}.x"),
        _decide(LATEST, version, stable, "all versions"),
    )


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

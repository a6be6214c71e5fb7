"""OCI labels for every image, and the index annotations GHCR reads on multi-arch packages.

Labels come only from facts of the release (version, owner, commit SHA and commit time): the
same commit always gives the same labels. What is not known is left out, never invented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from pipeline.rules.catalogue import ImageSpec
from pipeline.rules.references import source_url
from pipeline.rules.versions import PublishedVersion

PREFIX = "org.opencontainers.image."
VERSION = PREFIX + "version"
REVISION = PREFIX + "revision"
CREATED = PREFIX + "created"
SOURCE = PREFIX + "source"
IDENTITY_KEYS = (VERSION, REVISION, CREATED)
"""The labels that say which release an image is: the version, its commit, the commit's time."""
LICENSE = "MIT"
MAX_DESCRIPTION = 512
"""GHCR shows at most 512 characters of a package description."""

INDEX_ANNOTATION_KEYS = tuple(
    PREFIX + key for key in ("description", "source", "licenses", "version", "revision", "created")
)
"""The label keys that a multi-arch image also carries as annotations on its index."""

_FULL_SHA = re.compile(r"^[0-9a-f]{40}\Z")
# RFC 3339 date-time (section 5.6), with a zone; fromisoformat alone also takes ISO 8601 forms.
_RFC3339 = re.compile(
    r"^(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt ]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?P<offset_hour>[0-9]{2}):(?P<offset_minute>[0-9]{2}))\Z",
    re.ASCII,
)
_CREATED_ACCEPTED = (
    "accepted: e.g. 2026-11-20T14:03:00Z or 2026-11-20T15:03:00+01:00 (`git show -s --format=%cI`)"
)


def check_revision(revision: str) -> str:
    """A full commit SHA, lowercased (40 hex digits)."""
    if not _FULL_SHA.match(revision.lower()):
        raise ValueError(
            f"revision {revision!r} is not a full commit SHA; accepted: 40 hex digits "
            "as `git rev-parse HEAD` prints them"
        )
    return revision.lower()


def normalize_created(created: str) -> str:
    """A commit time as RFC 3339 in UTC (``2026-11-20T14:03:00Z``)."""
    match = _RFC3339.match(created)
    if match is None or not _is_rfc3339_time(match):
        raise ValueError(
            f"created {created!r} is not an RFC 3339 time with a zone; {_CREATED_ACCEPTED}"
        )
    try:
        moment = datetime.fromisoformat(created.replace("Z", "+00:00").replace("z", "+00:00"))
        utc = moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00:00+01:00 in UTC
        raise ValueError(
            f"created {created!r} is a valid RFC 3339 time, but one this tool cannot hold: "
            "Python's datetime has no leap second (:60) and no year outside 0001-9999 in UTC; "
            f"{_CREATED_ACCEPTED}"
        ) from None
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_rfc3339_time(match: re.Match[str]) -> bool:
    """Whether the fields of a matched date-time are in RFC 3339's ranges (second 60 allowed)."""
    year, month, day = (int(match.group(name)) for name in ("year", "month", "day"))
    if not 1 <= month <= 12:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    offset_hour = int(match.group("offset_hour") or 0)
    offset_minute = int(match.group("offset_minute") or 0)
    return (
        1 <= day <= days
        and int(match.group("hour")) <= 23
        and int(match.group("minute")) <= 59
        and int(match.group("second")) <= 60
        and offset_hour <= 23
        and offset_minute <= 59
    )


def image_labels(
    image: ImageSpec,
    *,
    owner: str,
    version: str | None = None,
    revision: str | None = None,
    created: str | None = None,
) -> dict[str, str]:
    """The ``org.opencontainers.image.*`` labels of one image of one release."""
    if len(image.description) > MAX_DESCRIPTION:
        raise ValueError(
            f"description of image {image.name!r} has {len(image.description)} characters; "
            f"at most {MAX_DESCRIPTION} are accepted"
        )
    url = source_url(owner)
    labels = {
        SOURCE: url,
        PREFIX + "url": url,
        PREFIX + "title": image.repository_name(),
        PREFIX + "description": image.description,
        PREFIX + "licenses": LICENSE,
    }
    if version is not None:
        labels[VERSION] = version
    if revision is not None:
        labels[REVISION] = check_revision(revision)
    if created is not None:
        labels[CREATED] = normalize_created(created)
    return labels


def index_annotations(labels: dict[str, str]) -> dict[str, str]:
    """The annotations an image index carries, taken from its images' labels."""
    return {key: labels[key] for key in INDEX_ANNOTATION_KEYS if key in labels}


def published_version(
    digest: str, found: Sequence[Mapping[str, str]], planned: Mapping[str, str]
) -> PublishedVersion:
    """Whether the image at a release's version tag is this release, by its labels.

    Digests are not reproducible (Dagger v0.21 rebuilds image times on publish), so the same
    release is the same version of the same commit: every platform's config carries the planned
    version, revision and created labels. ``created`` is the commit's time here, but the wall
    clock of the run in images of upstream's old workflow, which carry the same version and
    revision: those are another build, never taken for this one. Without a planned revision
    nothing identifies the release.
    """
    short = digest.removeprefix("sha256:")[:12]
    if REVISION not in planned:
        return PublishedVersion(
            False, f"{short} is there, and this release has no revision to compare it with", digest
        )
    keys = [key for key in IDENTITY_KEYS if key in planned]
    wanted = tuple(planned[key] for key in keys)
    seen = sorted({tuple(labels.get(key, "none") for key in keys) for labels in found})
    if found and seen == [wanted]:
        return PublishedVersion(
            True,
            f"{short} already holds this release, version {planned.get(VERSION)} of revision "
            f"{planned[REVISION][:12]}: kept, and the release completed",
            digest,
        )
    names = [key.removeprefix(PREFIX) for key in keys]
    described = "; ".join(
        ", ".join(f"{name} {value}" for name, value in zip(names, values, strict=True))
        for values in seen
    )
    planned_text = ", ".join(f"{name} {value}" for name, value in zip(names, wanted, strict=True))
    return PublishedVersion(
        False,
        f"{short} holds {described or 'no labelled image'}; this release is {planned_text}",
        digest,
    )

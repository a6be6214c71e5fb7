"""OCI labels for every image, and the index annotations GHCR reads on multi-arch packages.

Labels come only from facts of the release (version, owner, commit SHA and commit time): the
same commit always gives the same labels. What is not known is left out, never invented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from pipeline.catalogue import ImageSpec
from pipeline.references import source_url
from pipeline.versions import PublishedVersion

PREFIX = "org.opencontainers.image."
VERSION = PREFIX + "version"
REVISION = PREFIX + "revision"
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
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
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
    try:
        moment = datetime.fromisoformat(created.replace("Z", "+00:00").replace("z", "+00:00"))
        utc = moment.astimezone(UTC) if _RFC3339.match(created) else None
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00:00+01:00 in UTC
        utc = None
    if utc is None:
        raise ValueError(
            f"created {created!r} is not an RFC 3339 time with a zone; accepted: e.g. "
            "2026-11-20T14:03:00Z or 2026-11-20T15:03:00+01:00 (`git show -s --format=%cI`)"
        )
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


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
        PREFIX + "source": url,
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
        labels[PREFIX + "created"] = normalize_created(created)
    return labels


def index_annotations(labels: dict[str, str]) -> dict[str, str]:
    """The annotations an image index carries, taken from its images' labels."""
    return {key: labels[key] for key in INDEX_ANNOTATION_KEYS if key in labels}


def published_version(
    digest: str, found: Sequence[Mapping[str, str]], planned: Mapping[str, str]
) -> PublishedVersion:
    """Whether the image at a release's version tag is this release, by its labels.

    Digests are not reproducible (Dagger v0.21 rebuilds image times on publish), so the same
    release is the same version and the same commit: every platform's config carries the planned
    version and revision labels. Without a planned revision nothing identifies the release.
    """
    short = digest.removeprefix("sha256:")[:12]
    if REVISION not in planned:
        return PublishedVersion(
            False, f"{short} is there, and this release has no revision to compare it with", digest
        )
    wanted = (planned.get(VERSION), planned[REVISION])
    seen = sorted({(labels.get(VERSION), labels.get(REVISION)) for labels in found}, key=str)
    if found and seen == [wanted]:
        return PublishedVersion(
            True,
            f"{short} already holds this release, version {wanted[0]} of revision "
            f"{wanted[1][:12]}: kept, and the release completed",
            digest,
        )
    described = ", ".join(f"version {version} of revision {revision}" for version, revision in seen)
    return PublishedVersion(False, f"{short} holds {described or 'no labelled image'}", digest)

"""OCI labels for every image, and the index annotations GHCR reads on multi-arch packages.

Labels come only from facts of the release (version, owner, commit SHA and commit time): the
same commit always gives the same labels. What is not known is left out, never invented.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pipeline.catalogue import ImageSpec
from pipeline.references import source_url

PREFIX = "org.opencontainers.image."
LICENSE = "MIT"
MAX_DESCRIPTION = 512
"""GHCR shows at most 512 characters of a package description."""

INDEX_ANNOTATION_KEYS = tuple(
    PREFIX + key for key in ("description", "source", "licenses", "version", "revision", "created")
)
"""The label keys that a multi-arch image also carries as annotations on its index."""

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


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
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(
            f"created {created!r} is not an RFC 3339 time with a zone; accepted: e.g. "
            "2026-11-20T14:03:00Z or 2026-11-20T15:03:00+01:00 (`git show -s --format=%cI`)"
        )
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_labels(
    image: ImageSpec,
    *,
    owner: str,
    version: str,
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
        PREFIX + "version": version,
    }
    if revision is not None:
        labels[PREFIX + "revision"] = check_revision(revision)
    if created is not None:
        labels[PREFIX + "created"] = normalize_created(created)
    return labels


def index_annotations(labels: dict[str, str]) -> dict[str, str]:
    """The annotations an image index carries, taken from its images' labels."""
    return {key: labels[key] for key in INDEX_ANNOTATION_KEYS if key in labels}

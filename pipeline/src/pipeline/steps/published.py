"""What an image's repository holds before a release: the facts its plan is decided from.

Its tags; when the release's version tag exists, the labels of the image there (is it this very
release, stopped half-way?); and what each floating tag points at now (upstream's old workflow
left ``latest`` on images that no version tag names). Only reads; the decisions are in
``pipeline.rules.versions`` and ``pipeline.rules.labels``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

import anyio

from pipeline.oci import (
    Manifest,
    RegistryClient,
    RegistryError,
    config_platform_and_labels,
    printable,
)
from pipeline.rules.labels import VERSION
from pipeline.rules.plan import PublishedState, ReleasePlan
from pipeline.rules.references import repository_path
from pipeline.rules.versions import (
    FloatingHolder,
    floating_tag_names,
    holder_of,
    published_versions,
)
from pipeline.steps.concurrency import gather

TAG_READS_AT_ONCE = 8
"""Version tags read at once when looking for the one that shares a floating tag's digest."""

ATTESTATION_PLATFORM = {"os": "unknown", "architecture": "unknown"}
"""BuildKit's platform for attestation manifests in an index; they have no image config."""


async def read_release_state(
    client: RegistryClient, release: ReleasePlan
) -> dict[str, PublishedState]:
    """What each image's repository holds that the plan of ``release`` depends on.

    ``release`` need only name the repositories and the version (a plan made with no state).
    """
    version = release.images[0].decision.version
    return await gather(
        {
            image.name: partial(
                read_published,
                client,
                repository_path(image.repository),
                str(version),
                floating_tag_names(version),
            )
            for image in release.images
        }
    )


async def read_published(
    client: RegistryClient, path: str, version_tag: str, floating_names: Iterable[str]
) -> PublishedState:
    """Read what repository ``path`` holds that the plan of ``version_tag`` depends on."""
    tags = tuple(await client.list_tags(path))
    version_digest: str | None = None
    version_labels: tuple[Mapping[str, str], ...] = ()
    if version_tag in tags:
        manifest = await client.get_manifest(path, version_tag)
        version_digest = manifest.digest
        version_labels = tuple(await image_labels_of(client, path, manifest))
    names = [name for name in floating_names if name in tags]
    found = await gather({name: partial(read_holder, client, path, name, tags) for name in names})
    return PublishedState(
        tags=tags,
        version_digest=version_digest,
        version_labels=version_labels,
        holders={name: holder for name, holder in found.items() if holder is not None},
    )


async def read_holder(
    client: RegistryClient, path: str, name: str, tags: tuple[str, ...]
) -> FloatingHolder | None:
    """What floating tag ``name`` points at, and its version if the registry says which."""
    manifest = await client.get_manifest_or_none(path, name)
    if manifest is None:
        return None  # deleted since the listing
    labels = await image_labels_of(client, path, manifest, first_only=True)
    label = labels[0].get(VERSION) if labels else None
    versions = [str(version) for version in published_versions(tags)]
    # A SemVer label names the version: at most its own tag is read, to say so more surely.
    # Otherwise every version tag is read, looking for one that shares the digest.
    if label is not None and published_versions([label]):
        candidates = [label] if label in versions else []
    else:
        candidates = versions
    return holder_of(manifest.digest, await version_digests(client, path, candidates), label)


async def version_digests(client: RegistryClient, path: str, tags: Iterable[str]) -> dict[str, str]:
    """The digest each of ``tags`` resolves to (tags deleted meanwhile are left out)."""
    limiter = anyio.CapacityLimiter(TAG_READS_AT_ONCE)

    async def digest(tag: str) -> str | None:
        async with limiter:
            manifest = await client.get_manifest_or_none(path, tag)
        return manifest.digest if manifest is not None else None

    found = await gather({tag: partial(digest, tag) for tag in tags})
    return {tag: value for tag, value in found.items() if value is not None}


async def image_labels_of(
    client: RegistryClient, path: str, manifest: Manifest, *, first_only: bool = False
) -> list[dict[str, str]]:
    """The labels of each platform's image config (one for a plain manifest)."""
    if not manifest.is_index:
        return [await config_labels(client, path, manifest)]
    children = [
        str(entry["digest"])
        for entry in _entries(manifest)
        if entry.get("platform") != ATTESTATION_PLATFORM
    ][: 1 if first_only else None]
    labels = await gather(
        {child: partial(_child_labels, client, path, child) for child in dict.fromkeys(children)}
    )
    return list(labels.values())


async def _child_labels(client: RegistryClient, path: str, digest: str) -> dict[str, str]:
    """The labels of the image config of one index entry."""
    return await config_labels(client, path, await client.get_manifest(path, digest))


async def config_labels(client: RegistryClient, path: str, manifest: Manifest) -> dict[str, str]:
    """The labels in a manifest's image config ({} when it has none).

    The config goes through the same shape checks as every document a registry serves
    (``pipeline.oci.documents``): one of the wrong shape is a RegistryError naming it.
    """
    if manifest.is_index:
        raise RegistryError(
            f"{path}@{manifest.digest}: an index where an image manifest belongs "
            "(an index entry that is itself an index); accepted: image manifests"
        )
    config = manifest.document.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("digest"), str):
        raise RegistryError(f"{path}@{manifest.digest}: the manifest has no config descriptor")
    document = await client.get_json_blob(path, config["digest"])
    try:
        _, labels = config_platform_and_labels(document)
    except ValueError as error:
        raise RegistryError(
            f"{path}@{manifest.digest}: its image config {config['digest']} is not accepted: "
            f"{printable(str(error))}"
        ) from None
    return labels


def _entries(index: Manifest) -> list[dict[str, Any]]:
    """The manifest descriptors of an index, checked to be objects with a digest."""
    entries = index.document.get("manifests")
    if not isinstance(entries, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("digest"), str) for entry in entries
    ):
        raise RegistryError(f"index {index.digest}: its manifests are not a list of descriptors")
    return entries

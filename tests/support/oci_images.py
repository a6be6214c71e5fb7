"""Small synthetic but real OCI images, pushed through RegistryClient for tests.

Each image is one tiny gzip tar layer, a config JSON (architecture, os, variant, labels, diff_ids)
and an OCI manifest; several of them make an OCI index. Everything is deterministic: the same
platform and labels always give the same bytes and digests, as a reproducible build would.

The pipeline uploads no image blobs (the engine pushes images; the client's ``put_blob`` stores
attestations) nor splits references: the index annotation and reference splitting the tests
need live here, on top of the client.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.oci.client import (
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryClient,
    RegistryError,
    check_annotations,
    digest_of,
    serialize_json,
)
from pipeline.oci.names import check_digest, check_reference, check_repository, normalize_registry

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_FILE = "qm-nmr-calc-test/image.json"
"""The one file in every test layer; its content makes the layer unique per input."""


@dataclass(frozen=True)
class BuiltImage:
    """One image's bytes before pushing: layer, config and manifest."""

    layer: bytes
    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        """The manifest's digest."""
        return sha256_digest(self.manifest)


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_platform(platform: str) -> dict[str, str]:
    """``linux/arm/v7`` as the OCI platform object ``{architecture, os, variant}``."""
    parts = platform.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(
            f"platform {platform!r} is not accepted; give OS/ARCH or OS/ARCH/VARIANT, "
            "e.g. linux/amd64 or linux/arm/v7"
        )
    result = {"architecture": parts[1], "os": parts[0]}
    if len(parts) == 3:
        result["variant"] = parts[2]
    return result


def deterministic_tar(name: str, content: bytes) -> bytes:
    """A tar archive holding one file, with fixed owner, mode and time."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mtime = 0
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def build_image(
    platform: str, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None
) -> BuiltImage:
    """The layer, config and manifest of a tiny image for ``platform`` with ``labels``."""
    target = parse_platform(platform)
    payload = json.dumps({"platform": platform, "labels": dict(labels)}, sort_keys=True)
    tar = deterministic_tar(LAYER_FILE, payload.encode())
    layer = gzip.compress(tar, mtime=0)
    config_doc: dict[str, Any] = {
        **target,
        "config": {"Labels": dict(labels)},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]},
    }
    config = serialize_json(config_doc)
    manifest_doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER_GZIP, "digest": sha256_digest(layer), "size": len(layer)}
        ],
    }
    if annotations:
        manifest_doc["annotations"] = dict(annotations)
    return BuiltImage(layer=layer, config=config, manifest=serialize_json(manifest_doc))


async def push_blob(client: RegistryClient, repository: str, data: bytes) -> str:
    """Upload ``data`` unless it exists (``RegistryClient.put_blob``); returns its digest."""
    return await client.put_blob(repository, data)


async def annotate_index(
    client: RegistryClient, repository: str, tags: Sequence[str], annotations: Mapping[str, str]
) -> str:
    """Add ``annotations`` to the index under ``tags[0]``, store it under every tag in order.

    Existing annotations are kept unless overwritten; the same annotations give the same bytes.
    A single-platform manifest is refused: such an image has no index to carry annotations.
    """
    check_annotations(annotations)
    if not tags:
        raise ValueError("annotate_index needs at least one tag; accepted: version tag first")
    manifest = await client.get_manifest(repository, tags[0])
    operation = f"annotate index {repository}:{tags[0]}"
    if not manifest.is_index:
        raise client.session.error(
            operation, f"it is a single manifest ({manifest.media_type}), not an index"
        )
    document = manifest.document
    document["annotations"] = {**(document.get("annotations") or {}), **annotations}
    raw = serialize_json(document)
    for tag in tags:
        stored = await client.put_manifest(repository, tag, raw, manifest.media_type)
        if stored != digest_of(raw):
            raise RegistryError(f"{operation}: {tag} stored as {stored}")
    return digest_of(raw)


def split_reference(reference: str) -> tuple[str, str, str]:
    """``(registry, repository, tag or digest)`` of ``ghcr.io/owner/name:tag`` or ``...@digest``."""
    registry, slash, rest = reference.partition("/")
    if not slash or not ("." in registry or ":" in registry or registry == "localhost"):
        raise ValueError(
            f"image reference {reference!r} has no registry host; accepted: "
            "HOST/REPOSITORY:TAG or HOST/REPOSITORY@DIGEST"
        )
    if "@" in rest:
        name, _, target = rest.partition("@")
        check_digest(target)
    else:
        name, colon, target = rest.rpartition(":")
        if not colon or "/" in target:
            raise ValueError(
                f"image reference {reference!r} names no tag or digest; accepted: "
                "HOST/REPOSITORY:TAG or HOST/REPOSITORY@DIGEST (there is no implicit latest)"
            )
        check_reference(target)
    return normalize_registry(registry), check_repository(name), target


async def push_built(client: RegistryClient, repository: str, image: BuiltImage) -> str:
    """Push the blobs of ``image`` and its manifest by digest; returns the digest."""
    await push_blob(client, repository, image.layer)
    await push_blob(client, repository, image.config)
    return await client.put_manifest(repository, image.digest, image.manifest, OCI_MANIFEST)


async def push_image(
    client: RegistryClient,
    repository: str,
    *,
    platform: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> tuple[str, int, str]:
    """Push one single-platform image by digest; returns (digest, size, media type)."""
    image = build_image(platform, labels, annotations)
    digest = await push_built(client, repository, image)
    return digest, len(image.manifest), OCI_MANIFEST


def build_index(
    entries: Sequence[tuple[str, str, int]], annotations: Mapping[str, str] | None = None
) -> bytes:
    """An OCI index of ``(platform, digest, size)`` manifest entries."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": parse_platform(platform),
            }
            for platform, digest, size in entries
        ],
    }
    if annotations:
        document["annotations"] = dict(annotations)
    return serialize_json(document)


async def push_release_image(
    client: RegistryClient,
    repository: str,
    tags: Sequence[str],
    platforms: Sequence[str],
    labels: Mapping[str, str],
    *,
    annotations: Mapping[str, str] | None = None,
) -> str:
    """Push an image under every tag in order; returns the digest the tags point at.

    One platform gives a plain manifest (``annotations`` on it), several give an OCI index
    (``annotations`` on the index), as the release pipeline publishes them.
    """
    if not tags or not platforms:
        raise ValueError("push_release_image needs at least one tag and one platform")
    if len(platforms) == 1:
        image = build_image(platforms[0], labels, annotations)
        await push_built(client, repository, image)
        raw, media_type = image.manifest, OCI_MANIFEST
    else:
        entries = []
        for platform in platforms:
            digest, size, _ = await push_image(client, repository, platform=platform, labels=labels)
            entries.append((platform, digest, size))
        raw, media_type = build_index(entries, annotations), OCI_INDEX
    digests = {await client.put_manifest(repository, tag, raw, media_type) for tag in tags}
    (digest,) = digests
    return digest

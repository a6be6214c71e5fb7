"""OCI manifests, indexes and configs as JSON documents: media types, parsing and shape checks.

What a registry serves is checked for the shape the pipeline relies on before anyone reads it:
objects where objects belong, descriptors whose digests are digests, annotations and labels of
strings. A document of the wrong shape is a ValueError naming the field and what is accepted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.oci.names import DIGESTS_ACCEPTED, is_digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)
"""Every manifest media type this client reads and writes; all are sent in ``Accept``."""
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
"""Media types of a multi-platform image (an index of per-platform manifests)."""
ACCEPTED_TYPES = ", ".join(MANIFEST_TYPES)
JSON_SEPARATORS = (",", ":")
PLATFORM_FIELDS = ("os", "architecture", "variant")


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as the registry serves it: raw bytes, their digest and media type."""

    digest: str
    media_type: str
    raw: bytes

    @property
    def document(self) -> dict[str, Any]:
        """The parsed JSON document (a fresh copy: callers may change it)."""
        return parse_json_object(self.raw, what=f"manifest {self.digest}")

    @property
    def is_index(self) -> bool:
        """Whether this is an image index (several platforms) rather than one image."""
        return self.media_type in INDEX_TYPES


def parse_json_object(raw: bytes, *, what: str) -> dict[str, Any]:
    """``raw`` parsed as a JSON object, or a ValueError naming ``what`` it should have been."""
    try:
        document = json.loads(raw)
    except RecursionError:
        raise ValueError(f"{what} is JSON nested too deeply to read") from None
    except ValueError as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ValueError(f"{what} is JSON but not an object; accepted: a JSON object")
    return document


def serialize_json(document: Mapping[str, Any]) -> bytes:
    """Compact, deterministic JSON bytes (key order as given) for a manifest or config."""
    return json.dumps(document, separators=JSON_SEPARATORS, ensure_ascii=False).encode()


def check_annotations(annotations: object, what: str = "annotations") -> None:
    """Refuse annotations (or labels) that are not an object of string to string."""
    if not isinstance(annotations, Mapping):
        raise ValueError(f"{what} is {type(annotations).__name__}; accepted: an object of strings")
    for key, value in annotations.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"{what} {key!r}={value!r} is not accepted; give strings only")


def check_manifest(raw: bytes, media_type: str) -> dict[str, Any]:
    """The parsed manifest ``raw``, checked to be a document of the given manifest type."""
    if media_type not in MANIFEST_TYPES:
        raise ValueError(
            f"media type {media_type!r} is not a manifest type; accepted: {ACCEPTED_TYPES}"
        )
    document = parse_json_object(raw, what="manifest")
    declared = document.get("mediaType")
    if declared is not None and declared != media_type:
        raise ValueError(f"manifest declares mediaType {declared!r} but is sent as {media_type!r}")
    check_shape(document, media_type)
    return document


def check_shape(document: Mapping[str, Any], media_type: str) -> None:
    """Refuse an index or manifest whose fields are not of the types the spec gives them."""
    if document.get("schemaVersion") != 2:
        raise ValueError(f"schemaVersion is {document.get('schemaVersion')!r}; accepted: 2")
    if "annotations" in document:
        check_annotations(document["annotations"])
    if media_type in INDEX_TYPES:
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise ValueError("manifests is not a list; accepted: a list of descriptors")
        for number, entry in enumerate(entries):
            check_descriptor(entry, f"manifests[{number}]")
    else:
        check_descriptor(document.get("config"), "config")
        layers = document.get("layers", [])
        if not isinstance(layers, list):
            raise ValueError("layers is not a list; accepted: a list of descriptors")
        for number, layer in enumerate(layers):
            check_descriptor(layer, f"layers[{number}]")


def check_descriptor(descriptor: object, where: str) -> None:
    """Refuse a descriptor without a valid digest, or with fields of the wrong type."""
    if not isinstance(descriptor, Mapping):
        raise ValueError(f"{where} is {type(descriptor).__name__}; accepted: a descriptor object")
    digest = descriptor.get("digest")
    if not isinstance(digest, str) or not is_digest(digest):
        raise ValueError(f"{where}.digest is {digest!r}; accepted: {DIGESTS_ACCEPTED}")
    size = descriptor.get("size", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"{where}.size is {size!r}; accepted: a whole number of bytes")
    if not isinstance(descriptor.get("mediaType", ""), str):
        raise ValueError(f"{where}.mediaType is not a string")
    if "annotations" in descriptor:
        check_annotations(descriptor["annotations"], f"{where}.annotations")
    if "platform" in descriptor:
        check_platform(descriptor["platform"], f"{where}.platform")


def check_platform(platform: object, where: str) -> None:
    """Refuse a platform object whose os, architecture or variant is not a string."""
    if not isinstance(platform, Mapping):
        raise ValueError(f"{where} is {type(platform).__name__}; accepted: an object")
    for field in PLATFORM_FIELDS:
        if field in platform and not isinstance(platform[field], str):
            raise ValueError(f"{where}.{field} is {platform[field]!r}; accepted: a string")


def platform_of(descriptor_or_config: Mapping[str, Any]) -> str:
    """``os/architecture[/variant]`` of an index entry's platform or an image config."""
    parts = [
        str(descriptor_or_config.get("os") or "unknown"),
        str(descriptor_or_config.get("architecture") or "unknown"),
    ]
    if descriptor_or_config.get("variant"):
        parts.append(str(descriptor_or_config["variant"]))
    return "/".join(parts)


def config_platform_and_labels(config: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The platform and labels of an image config, or a ValueError if it is not one."""
    check_platform(config, "config")
    if not isinstance(config.get("architecture"), str) or not isinstance(config.get("os"), str):
        raise ValueError("it is not an image config: no os and architecture strings")
    runtime = config.get("config")
    if runtime is None:
        return platform_of(config), {}
    if not isinstance(runtime, Mapping):
        raise ValueError(f"config.config is {type(runtime).__name__}; accepted: an object")
    labels = runtime.get("Labels")
    if labels is None:
        return platform_of(config), {}
    check_annotations(labels, "config.config.Labels")
    return platform_of(config), dict(labels)

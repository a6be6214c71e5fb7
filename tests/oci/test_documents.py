"""``pipeline.oci.documents``: what a document of the wrong shape is told, and what passes.

A real registry serves only well-formed documents; these are the documents a misbehaving one could
serve: the messages a caller reads for a malformed manifest, descriptor, platform or image
config, and the boundaries of what is accepted (a size of 0, a missing size, a missing
``mediaType``). The checks are plain functions, called here directly.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import Any

import pytest
from pipeline.oci.documents import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    check_annotations,
    check_descriptor,
    check_manifest,
    check_platform,
    check_shape,
    config_platform_and_labels,
    parse_json_object,
    platform_of,
    serialize_json,
)

DIGEST = "sha256:" + "a" * 64
CONFIG = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 7}
DIGEST_ACCEPTED = "accepted: sha256:<64 hex digits> or sha512:<128 hex digits>, lowercase"


def refused(message: str) -> AbstractContextManager[pytest.ExceptionInfo[ValueError]]:
    """Expect a ValueError whose whole message is ``message``."""
    return pytest.raises(ValueError, match=re.escape(message) + "$")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 100_000, "blob sha256:x is JSON nested too deeply to read"),
        (
            b"{",
            "blob sha256:x is not JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        (b"[]", "blob sha256:x is JSON but not an object; accepted: a JSON object"),
    ],
    ids=["nested-too-deeply", "not-json", "not-an-object"],
)
def test_parse_json_object_names_what_the_bytes_should_have_been(raw: bytes, message: str) -> None:
    """Bytes that are not a JSON object are refused with what they were meant to be and why."""
    with refused(message):
        parse_json_object(raw, what="blob sha256:x")


def test_serialize_json_is_compact_utf8_in_the_given_key_order() -> None:
    """No spaces after separators, non-ASCII text as UTF-8 (not escaped), keys as given.

    The bytes are what is pushed and digested, so any change in spacing or escaping changes
    the manifest's digest.
    """
    document = {"z": "café", "a": [1, {"b": None}]}

    assert serialize_json(document) == '{"z":"café","a":[1,{"b":null}]}'.encode()


@pytest.mark.parametrize(
    ("annotations", "what", "message"),
    [
        ([], None, "annotations is list; accepted: an object of strings"),
        ("a=b", "labels", "labels is str; accepted: an object of strings"),
        ({"a": 1}, None, "annotations 'a'=1 is not accepted; give strings only"),
        ({1: "a"}, "labels", "labels 1='a' is not accepted; give strings only"),
        ({"a": "b", "c": None}, "labels", "labels 'c'=None is not accepted; give strings only"),
    ],
    ids=["list", "string", "number-value", "number-key", "null-value"],
)
def test_check_annotations_refuses_what_is_not_strings_to_strings(
    annotations: object, what: str | None, message: str
) -> None:
    """Annotations (or labels) must be an object of strings; the message names the field.

    Without a name the field is called ``annotations``.
    """
    with refused(message):
        if what is None:
            check_annotations(annotations)
        else:
            check_annotations(annotations, what)


def test_check_annotations_accepts_strings_to_strings() -> None:
    """An object of string to string, or an empty one, passes."""
    check_annotations({"org.opencontainers.image.version": "1.2.3", "empty": ""})
    check_annotations({}, "labels")


def image_manifest(**fields: Any) -> dict[str, Any]:
    """A valid image manifest document, with ``fields`` added or replaced."""
    return {"schemaVersion": 2, "config": CONFIG, "layers": [], **fields}


@pytest.mark.parametrize(
    ("document", "media_type"),
    [
        (image_manifest(), OCI_MANIFEST),
        (image_manifest(mediaType=OCI_MANIFEST), OCI_MANIFEST),
        ({"schemaVersion": 2, "manifests": []}, OCI_INDEX),
    ],
    ids=["no-media-type", "media-type-as-sent", "empty-index"],
)
def test_check_manifest_returns_the_document_of_the_type_it_is_sent_as(
    document: dict[str, Any], media_type: str
) -> None:
    """A document that declares no mediaType, or the one it is sent as, is returned parsed."""
    assert check_manifest(serialize_json(document), media_type) == document


@pytest.mark.parametrize(
    ("raw", "media_type", "message"),
    [
        (
            serialize_json(image_manifest()),
            "application/json",
            "media type 'application/json' is not a manifest type; accepted: "
            "application/vnd.oci.image.index.v1+json, "
            "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.list.v2+json, "
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
        (b"", OCI_MANIFEST, "manifest is not JSON: Expecting value: line 1 column 1 (char 0)"),
        (
            serialize_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
            OCI_MANIFEST,
            "manifest declares mediaType 'application/vnd.oci.image.index.v1+json' but is sent "
            "as 'application/vnd.oci.image.manifest.v1+json'",
        ),
        (
            serialize_json(image_manifest(mediaType=OCI_MANIFEST)),
            DOCKER_MANIFEST_LIST,
            "manifest declares mediaType 'application/vnd.oci.image.manifest.v1+json' but is "
            "sent as 'application/vnd.docker.distribution.manifest.list.v2+json'",
        ),
    ],
    ids=["not-a-manifest-type", "not-json", "index-sent-as-manifest", "manifest-sent-as-list"],
)
def test_check_manifest_refuses_a_document_not_of_the_type_it_is_sent_as(
    raw: bytes, media_type: str, message: str
) -> None:
    """An unknown media type, bytes that are not JSON, or a mismatched mediaType are refused."""
    with refused(message):
        check_manifest(raw, media_type)


@pytest.mark.parametrize(
    ("document", "media_type", "message"),
    [
        (image_manifest(schemaVersion="2"), OCI_MANIFEST, "schemaVersion is '2'; accepted: 2"),
        ({"manifests": []}, OCI_INDEX, "schemaVersion is None; accepted: 2"),
        (
            image_manifest(annotations={"a": 1}),
            OCI_MANIFEST,
            "annotations 'a'=1 is not accepted; give strings only",
        ),
        (
            {"schemaVersion": 2, "manifests": {"digest": DIGEST}},
            OCI_INDEX,
            "manifests is not a list; accepted: a list of descriptors",
        ),
        (
            {"schemaVersion": 2},
            DOCKER_MANIFEST_LIST,
            "manifests is not a list; accepted: a list of descriptors",
        ),
        (
            {"schemaVersion": 2, "manifests": [CONFIG, "sha256:x"]},
            OCI_INDEX,
            "manifests[1] is str; accepted: a descriptor object",
        ),
        (
            {"schemaVersion": 2, "layers": []},
            OCI_MANIFEST,
            "config is NoneType; accepted: a descriptor object",
        ),
        (
            image_manifest(config={**CONFIG, "digest": "sha256:abc"}),
            OCI_MANIFEST,
            f"config.digest is 'sha256:abc'; {DIGEST_ACCEPTED}",
        ),
        (
            image_manifest(layers={"digest": DIGEST}),
            OCI_MANIFEST,
            "layers is not a list; accepted: a list of descriptors",
        ),
        (
            image_manifest(layers=[CONFIG, CONFIG, {"size": 1}]),
            OCI_MANIFEST,
            f"layers[2].digest is None; {DIGEST_ACCEPTED}",
        ),
    ],
    ids=[
        "schema-version-string",
        "schema-version-missing",
        "annotations",
        "manifests-object",
        "manifests-missing",
        "index-entry",
        "config-missing",
        "config-digest",
        "layers-object",
        "layer-entry",
    ],
)
def test_check_shape_names_the_field_of_the_wrong_type(
    document: dict[str, Any], media_type: str, message: str
) -> None:
    """Each field of the wrong type is refused with its path in the document."""
    with refused(message):
        check_shape(document, media_type)


def test_check_shape_accepts_a_manifest_without_layers() -> None:
    """``layers`` may be absent from an image manifest (it then has none)."""
    check_shape({"schemaVersion": 2, "config": CONFIG}, OCI_MANIFEST)


@pytest.mark.parametrize(
    ("descriptor", "message"),
    [
        (["sha256:x"], "m[0] is list; accepted: a descriptor object"),
        ({"size": 1}, f"m[0].digest is None; {DIGEST_ACCEPTED}"),
        (
            {"digest": "sha256:" + "A" * 64},
            f"m[0].digest is 'sha256:{'A' * 64}'; {DIGEST_ACCEPTED}",
        ),
        ({"digest": 5}, f"m[0].digest is 5; {DIGEST_ACCEPTED}"),
        ({"digest": DIGEST, "size": -1}, "m[0].size is -1; accepted: a whole number of bytes"),
        ({"digest": DIGEST, "size": True}, "m[0].size is True; accepted: a whole number of bytes"),
        ({"digest": DIGEST, "size": 1.5}, "m[0].size is 1.5; accepted: a whole number of bytes"),
        ({"digest": DIGEST, "size": "7"}, "m[0].size is '7'; accepted: a whole number of bytes"),
        ({"digest": DIGEST, "mediaType": 1}, "m[0].mediaType is not a string"),
        (
            {"digest": DIGEST, "annotations": {"a": 1}},
            "m[0].annotations 'a'=1 is not accepted; give strings only",
        ),
        (
            {"digest": DIGEST, "annotations": []},
            "m[0].annotations is list; accepted: an object of strings",
        ),
        ({"digest": DIGEST, "platform": "linux"}, "m[0].platform is str; accepted: an object"),
        (
            {"digest": DIGEST, "platform": {"os": "linux", "architecture": 64}},
            "m[0].platform.architecture is 64; accepted: a string",
        ),
    ],
    ids=[
        "not-an-object",
        "digest-missing",
        "digest-uppercase",
        "digest-number",
        "size-negative",
        "size-bool",
        "size-float",
        "size-string",
        "media-type-number",
        "annotation-value",
        "annotations-list",
        "platform-string",
        "platform-field",
    ],
)
def test_check_descriptor_names_the_field_of_the_wrong_type(
    descriptor: object, message: str
) -> None:
    """A descriptor is refused with the field at fault, below where the descriptor sits."""
    with refused(message):
        check_descriptor(descriptor, "m[0]")


@pytest.mark.parametrize(
    "descriptor",
    [
        {"digest": DIGEST},
        {"digest": DIGEST, "size": 0},
        {"digest": "sha512:" + "0" * 128, "size": 1, "mediaType": OCI_MANIFEST},
        {
            "digest": DIGEST,
            "size": 2,
            "annotations": {"org.opencontainers.image.ref.name": "1.0"},
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
        },
    ],
    ids=["digest-only", "size-zero", "sha512", "annotations-and-platform"],
)
def test_check_descriptor_accepts_a_valid_descriptor(descriptor: dict[str, Any]) -> None:
    """A digest alone is enough; a size of 0 is a size; valid annotations and platform pass."""
    check_descriptor(descriptor, "m[0]")


@pytest.mark.parametrize(
    ("platform", "message"),
    [
        (None, "p is NoneType; accepted: an object"),
        (["linux"], "p is list; accepted: an object"),
        ({"os": "linux", "variant": 8}, "p.variant is 8; accepted: a string"),
        ({"os": None}, "p.os is None; accepted: a string"),
    ],
    ids=["null", "list", "variant-number", "os-null"],
)
def test_check_platform_names_the_field_of_the_wrong_type(platform: object, message: str) -> None:
    """A platform must be an object whose os, architecture and variant are strings."""
    with refused(message):
        check_platform(platform, "p")


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ({}, "unknown/unknown"),
        ({"os": "", "architecture": None, "variant": ""}, "unknown/unknown"),
        ({"os": "linux", "architecture": "amd64"}, "linux/amd64"),
        ({"os": "linux", "architecture": "arm64", "variant": "v8"}, "linux/arm64/v8"),
        ({"architecture": "arm", "variant": "v7"}, "unknown/arm/v7"),
    ],
    ids=["empty", "empty-values", "no-variant", "variant", "no-os"],
)
def test_platform_of_spells_os_architecture_and_variant(
    platform: dict[str, Any], expected: str
) -> None:
    """``os/architecture[/variant]``, with ``unknown`` for a missing os or architecture."""
    assert platform_of(platform) == expected


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"os": "linux", "architecture": "amd64"}, ("linux/amd64", {})),
        ({"os": "linux", "architecture": "amd64", "config": None}, ("linux/amd64", {})),
        (
            {"os": "linux", "architecture": "arm64", "variant": "v8", "config": {"Env": []}},
            ("linux/arm64/v8", {}),
        ),
        (
            {"os": "linux", "architecture": "amd64", "config": {"Labels": None}},
            ("linux/amd64", {}),
        ),
        (
            {
                "os": "linux",
                "architecture": "arm",
                "variant": "v7",
                "config": {"Labels": {"a": "b"}},
            },
            ("linux/arm/v7", {"a": "b"}),
        ),
    ],
    ids=["no-runtime-config", "null-runtime-config", "no-labels", "null-labels", "labels"],
)
def test_config_platform_and_labels_reads_an_image_config(
    config: dict[str, Any], expected: tuple[str, dict[str, str]]
) -> None:
    """The platform and labels of an image config; no runtime config or labels is no labels."""
    assert config_platform_and_labels(config) == expected


def test_config_platform_and_labels_returns_a_copy_of_the_labels() -> None:
    """The labels returned are the caller's own: changing them leaves the config alone."""
    labels = {"a": "b"}
    _, returned = config_platform_and_labels(
        {"os": "linux", "architecture": "amd64", "config": {"Labels": labels}}
    )
    returned["c"] = "d"

    assert labels == {"a": "b"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"os": 1, "architecture": "amd64"}, "config.os is 1; accepted: a string"),
        ({"os": "linux"}, "it is not an image config: no os and architecture strings"),
        ({"architecture": "amd64"}, "it is not an image config: no os and architecture strings"),
        (
            {"os": "linux", "architecture": "amd64", "config": ["Labels"]},
            "config.config is list; accepted: an object",
        ),
        (
            {"os": "linux", "architecture": "amd64", "config": {"Labels": {"a": 1}}},
            "config.config.Labels 'a'=1 is not accepted; give strings only",
        ),
        (
            {"os": "linux", "architecture": "amd64", "config": {"Labels": "a=b"}},
            "config.config.Labels is str; accepted: an object of strings",
        ),
    ],
    ids=["os-number", "no-architecture", "no-os", "runtime-list", "label-value", "labels-string"],
)
def test_config_platform_and_labels_refuses_what_is_not_an_image_config(
    config: dict[str, Any], message: str
) -> None:
    """A config without os and architecture strings, or with malformed labels, is refused."""
    with refused(message):
        config_platform_and_labels(config)

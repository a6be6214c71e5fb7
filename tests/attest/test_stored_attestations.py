"""Bundles attached to a digest in a REAL registry (Debian's docker-registry 2.8 on loopback).

What ``attach`` stores is the layout GitHub and cosign read: an OCI artifact manifest (artifactType
and layer of the bundle media type, the empty config, the attested digest as ``subject``, the
predicate type in its annotations) listed in an index tagged ``sha256-<hex>``, one entry per
predicate type; the image's own index is never touched and no ``unknown/unknown`` appears.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from pipeline.attest.errors import AttestationError
from pipeline.attest.signing import BUNDLE_MEDIA_TYPE, ThrowawaySigner
from pipeline.attest.statements import (
    PREDICATE_TYPES,
    PROVENANCE,
    SBOM,
    SIGNATURE,
    statement,
)
from pipeline.attest.storage import (
    EMPTY_MEDIA_TYPE,
    Descriptor,
    StoredBundle,
    attach,
    attached,
    fallback_tag,
)
from pipeline.oci.client import OCI_INDEX, OCI_MANIFEST, RegistryClient, digest_of, serialize_json

from tests.support.oci_images import push_release_image
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.anyio

LABELS = {"org.opencontainers.image.version": "2.4.0"}
PLATFORMS = ("linux/amd64", "linux/arm64")
CREATED = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def signer() -> ThrowawaySigner:
    return ThrowawaySigner()


async def published(
    client: RegistryClient, repository: str, platforms: Sequence[str] = PLATFORMS
) -> Descriptor:
    """Push a release image (an index for several platforms); its descriptor."""
    digest = await push_release_image(client, repository, ["2.4.0"], platforms, LABELS)
    manifest = await client.get_manifest(repository, digest)
    return Descriptor(manifest.media_type, manifest.digest, len(manifest.raw))


def signed(
    signer: ThrowawaySigner, repository: str, digest: str, predicate_type: str, run: int = 0
) -> bytes:
    """A bundle of a statement about ``digest`` (``run`` makes a distinct predicate)."""
    name = f"127.0.0.1/{repository}"
    return signer.sign(statement(name, digest, predicate_type, {"run": run}))


def test_fallback_tag_is_sha256_dash_hex() -> None:
    assert fallback_tag("sha256:" + "0a" * 32) == "sha256-" + "0a" * 32
    for wrong in ("sha512:" + "0a" * 64, "sha256:" + "0A" * 32, "0a" * 32, "sha256-" + "0a" * 32):
        with pytest.raises(AttestationError, match="give sha256:<64 lowercase hex digits>"):
            fallback_tag(wrong)


async def test_an_attached_bundle_is_an_artifact_manifest_with_its_subject(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        bundle = signed(signer, repository, subject.digest, SBOM)

        digest = await attach(client, repository, subject, bundle, SBOM, created=CREATED)

        manifest = await client.get_manifest(repository, digest)
        document = manifest.document
        config = await client.get_blob(repository, document["config"]["digest"])
        layer = await client.get_blob(repository, document["layers"][0]["digest"])
    assert manifest.media_type == OCI_MANIFEST
    assert document == {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": digest_of(b"{}"), "size": 2},
        "layers": [
            {"mediaType": BUNDLE_MEDIA_TYPE, "digest": digest_of(bundle), "size": len(bundle)}
        ],
        "subject": {"mediaType": OCI_INDEX, "digest": subject.digest, "size": subject.size},
        "annotations": {
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": SBOM,
            "org.opencontainers.image.created": "2026-12-04T12:00:00Z",
        },
    }
    assert config == b"{}"
    assert layer == bundle


async def test_the_fallback_index_lists_one_entry_per_predicate_type(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        digests = {
            predicate_type: await attach(
                client,
                repository,
                subject,
                signed(signer, repository, subject.digest, predicate_type),
                predicate_type,
            )
            for predicate_type in PREDICATE_TYPES
        }
        index = await client.get_manifest(repository, fallback_tag(subject.digest))

    assert index.media_type == OCI_INDEX
    entries = index.document["manifests"]
    assert [entry["digest"] for entry in entries] == [digests[kind] for kind in PREDICATE_TYPES]
    for entry, predicate_type in zip(entries, PREDICATE_TYPES, strict=True):
        assert entry["mediaType"] == OCI_MANIFEST
        assert entry["artifactType"] == BUNDLE_MEDIA_TYPE
        assert entry["annotations"] == {
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": predicate_type,
        }
        assert "platform" not in entry


async def test_attaching_a_predicate_type_again_replaces_its_entry(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        first_sbom = signed(signer, repository, subject.digest, SBOM, run=1)
        await attach(client, repository, subject, first_sbom, SBOM)
        await attach(
            client,
            repository,
            subject,
            signed(signer, repository, subject.digest, PROVENANCE),
            PROVENANCE,
        )
        second_sbom = signed(signer, repository, subject.digest, SBOM, run=2)
        replaced = await attach(client, repository, subject, second_sbom, SBOM)

        stored = await attached(client, repository, subject.digest)

    assert [bundle.predicate_type for bundle in stored] == [PROVENANCE, SBOM]
    (sbom,) = (bundle for bundle in stored if bundle.predicate_type == SBOM)
    assert sbom == StoredBundle(replaced, SBOM, subject.digest, second_sbom)


async def test_attached_reads_back_every_bundle_with_its_subject(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-worker"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository, ["linux/amd64"])
        bundles = {
            kind: signed(signer, repository, subject.digest, kind) for kind in PREDICATE_TYPES
        }
        digests = {
            kind: await attach(client, repository, subject, bundle, kind)
            for kind, bundle in bundles.items()
        }

        stored = await attached(client, repository, subject.digest)

    assert subject.media_type == OCI_MANIFEST
    assert stored == [
        StoredBundle(digests[kind], kind, subject.digest, bundles[kind]) for kind in PREDICATE_TYPES
    ]
    assert [signer.verifier().verify(bundle.bundle).predicate_type for bundle in stored] == list(
        PREDICATE_TYPES
    )


async def test_nothing_attached_reads_as_no_bundles(registry: RegistryServer, owner: str) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)

        assert await attached(client, repository, subject.digest) == []
        assert await attached(client, f"{owner}/never-pushed", subject.digest) == []


async def test_no_unknown_platform_and_the_image_index_untouched(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        before = await client.get_manifest(repository, "2.4.0")
        artifacts = [
            await attach(
                client, repository, subject, signed(signer, repository, subject.digest, kind), kind
            )
            for kind in PREDICATE_TYPES
        ]
        after = await client.get_manifest(repository, "2.4.0")
        index = await client.get_manifest(repository, fallback_tag(subject.digest))
        documents = [index.raw] + [
            (await client.get_manifest(repository, digest)).raw for digest in artifacts
        ]
        tags = await client.list_tags(repository)

    assert after == before
    assert sorted(tags) == sorted(["2.4.0", fallback_tag(subject.digest)])
    for raw in documents:
        assert b"unknown" not in raw
        assert "platform" not in json.dumps(json.loads(raw))


async def test_a_platform_manifest_and_its_index_are_separate_subjects(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        index = await published(client, repository)
        entry = (await client.get_manifest(repository, index.digest)).document["manifests"][0]
        platform = Descriptor(entry["mediaType"], entry["digest"], entry["size"])
        await attach(
            client, repository, index, signed(signer, repository, index.digest, SBOM), SBOM
        )
        await attach(
            client,
            repository,
            platform,
            signed(signer, repository, platform.digest, SIGNATURE),
            SIGNATURE,
        )

        on_index = await attached(client, repository, index.digest)
        on_platform = await attached(client, repository, platform.digest)

    assert [(b.predicate_type, b.subject_digest) for b in on_index] == [(SBOM, index.digest)]
    assert [(b.predicate_type, b.subject_digest) for b in on_platform] == [
        (SIGNATURE, platform.digest)
    ]


@pytest.mark.parametrize(
    ("about", "predicate_type", "message"),
    [
        ("other", SBOM, "is about sha256:"),
        ("subject", PROVENANCE, "has predicate type 'https://spdx.dev/Document/v2.3', not"),
    ],
)
async def test_a_bundle_is_never_stored_under_a_label_its_statement_denies(
    registry: RegistryServer,
    owner: str,
    signer: ThrowawaySigner,
    about: str,
    predicate_type: str,
    message: str,
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        digest = subject.digest if about == "subject" else "sha256:" + "00" * 32
        with pytest.raises(AttestationError, match=message):
            await attach(
                client,
                repository,
                subject,
                signed(signer, repository, digest, SBOM),
                predicate_type,
            )

        assert await client.list_tags(repository) == ["2.4.0"]


async def test_a_fallback_tag_holding_an_image_is_refused_not_overwritten(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        squatter = await push_release_image(
            client, repository, [fallback_tag(subject.digest)], ["linux/amd64"], LABELS
        )
        bundle = signed(signer, repository, subject.digest, SBOM)

        with pytest.raises(AttestationError, match="not an OCI index of attestations"):
            await attach(client, repository, subject, bundle, SBOM)
        with pytest.raises(AttestationError, match="not an OCI index of attestations"):
            await attached(client, repository, subject.digest)
        held = await client.get_manifest(repository, fallback_tag(subject.digest))

    assert held.digest == squatter


async def test_entries_of_other_artifact_types_are_kept_and_skipped(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        image = await client.get_manifest(repository, subject.digest)
        foreign = image.document["manifests"][0]  # any manifest stands in for another tool's
        foreign_entry = {**foreign, "artifactType": "application/vnd.example.other+json"}
        foreign_entry.pop("platform")
        listing = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [foreign_entry]}
        tag = fallback_tag(subject.digest)
        await client.put_manifest(repository, tag, serialize_json(listing), OCI_INDEX)

        digest = await attach(
            client, repository, subject, signed(signer, repository, subject.digest, SBOM), SBOM
        )
        entries = (await client.get_manifest(repository, tag)).document["manifests"]
        stored = await attached(client, repository, subject.digest)

    assert [entry["digest"] for entry in entries] == [foreign["digest"], digest]
    assert [bundle.manifest_digest for bundle in stored] == [digest]


async def test_a_listed_bundle_that_is_not_a_bundle_artifact_is_refused(
    registry: RegistryServer, owner: str
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        image = await client.get_manifest(repository, subject.digest)
        entry = {**image.document["manifests"][0], "artifactType": BUNDLE_MEDIA_TYPE}
        entry.pop("platform")
        listing = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
        await client.put_manifest(
            repository, fallback_tag(subject.digest), serialize_json(listing), OCI_INDEX
        )

        with pytest.raises(AttestationError, match="is not a Sigstore bundle artifact"):
            await attached(client, repository, subject.digest)

"""What a verification reports about one digest's attestations, against a real registry.

One line per problem, naming ``registry/repository@digest`` and the predicate type: missing, stored
as attesting another digest, a statement about another digest, a signature that does not verify;
nothing at all when the SBOM, the provenance and the signature are there and good.
"""

from __future__ import annotations

import pytest
from pipeline.attest.check import check_attestations
from pipeline.attest.signing import BUNDLE_MEDIA_TYPE, ThrowawaySigner
from pipeline.attest.statements import PREDICATE_TYPES, PROVENANCE, SBOM, SIGNATURE, statement
from pipeline.attest.storage import (
    EMPTY_MEDIA_TYPE,
    Descriptor,
    attach,
    fallback_tag,
)
from pipeline.oci.client import OCI_INDEX, OCI_MANIFEST, RegistryClient, digest_of, serialize_json

from tests.support.oci_images import push_release_image
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.anyio

LABELS = {"org.opencontainers.image.version": "2.4.0"}


@pytest.fixture(scope="module")
def signer() -> ThrowawaySigner:
    return ThrowawaySigner()


async def published(client: RegistryClient, repository: str, tag: str = "2.4.0") -> Descriptor:
    """A two-platform release image under ``tag``; its index descriptor."""
    digest = await push_release_image(
        client, repository, [tag], ["linux/amd64", "linux/arm64"], {**LABELS, "tag": tag}
    )
    manifest = await client.get_manifest(repository, digest)
    return Descriptor(manifest.media_type, manifest.digest, len(manifest.raw))


def bundle_of(signer: ThrowawaySigner, repository: str, digest: str, kind: str) -> bytes:
    return signer.sign(statement(f"127.0.0.1/{repository}", digest, kind, {"for": kind}))


async def attach_all(
    client: RegistryClient,
    repository: str,
    subject: Descriptor,
    signer: ThrowawaySigner,
    kinds: tuple[str, ...] = PREDICATE_TYPES,
) -> None:
    for kind in kinds:
        bundle = bundle_of(signer, repository, subject.digest, kind)
        await attach(client, repository, subject, bundle, kind)


async def test_all_three_predicate_types_present_and_good_is_no_problem(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        await attach_all(client, repository, subject, signer)

        assert await check_attestations(client, repository, subject.digest, signer.verifier()) == []
        assert await check_attestations(client, repository, subject.digest, None) == []


async def test_a_missing_predicate_type_is_named(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        await attach_all(client, repository, subject, signer, (SBOM, PROVENANCE))

        problems = await check_attestations(client, repository, subject.digest, signer.verifier())

    assert problems == [
        f"{registry.host}/{repository}@{subject.digest}: {SIGNATURE} attestation missing"
    ]


async def test_nothing_attached_names_every_predicate_type(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)

        problems = await check_attestations(client, repository, subject.digest, signer.verifier())

    assert problems == [
        f"{registry.host}/{repository}@{subject.digest}: {kind} attestation missing"
        for kind in PREDICATE_TYPES
    ]


async def test_attestations_of_another_digest_are_named_as_wrong_subject(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        other = await published(client, repository, "2.3.0")
        await attach_all(client, repository, other, signer)
        # The other digest's list, copied under this digest's fallback tag.
        listing = await client.get_manifest(repository, fallback_tag(other.digest))
        await client.put_manifest(repository, fallback_tag(subject.digest), listing.raw, OCI_INDEX)

        problems = await check_attestations(client, repository, subject.digest, signer.verifier())

    where = f"{registry.host}/{repository}@{subject.digest}"
    assert len(problems) == 2 * len(PREDICATE_TYPES)
    for kind in PREDICATE_TYPES:
        mine = [line for line in problems if line.startswith(f"{where}: {kind} attestation ")]
        assert len(mine) == 2
        assert mine[0].endswith(f"is stored as attesting {other.digest}, not this digest")
        assert mine[1].endswith(f"the statement's subject is {other.digest}, not this digest")


async def test_a_statement_about_another_digest_is_named_even_when_stored_right(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        await attach_all(client, repository, subject, signer, (SBOM, PROVENANCE))
        # A signature artifact stored as attesting this digest, signing a statement about another.
        other = "sha256:" + "0f" * 32
        await store_by_hand(
            client, repository, subject, bundle_of(signer, repository, other, SIGNATURE)
        )

        for verifier in (signer.verifier(), None):
            problems = await check_attestations(client, repository, subject.digest, verifier)

            assert len(problems) == 1
            assert problems[0].startswith(
                f"{registry.host}/{repository}@{subject.digest}: {SIGNATURE}"
            )
            assert problems[0].endswith(f"the statement's subject is {other}, not this digest")


async def test_a_bad_signature_is_named(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        await attach_all(client, repository, subject, signer, (SBOM, SIGNATURE))
        stranger = ThrowawaySigner()
        await attach(
            client,
            repository,
            subject,
            bundle_of(stranger, repository, subject.digest, PROVENANCE),
            PROVENANCE,
        )

        problems = await check_attestations(client, repository, subject.digest, signer.verifier())
        unverified = await check_attestations(client, repository, subject.digest, None)

    (problem,) = problems
    assert problem.startswith(
        f"{registry.host}/{repository}@{subject.digest}: {PROVENANCE} attestation sha256:"
    )
    assert problem.endswith(
        "signature does not verify: "
        "bundle certificate was not issued by this rehearsal's throwaway CA"
    )
    assert unverified == []  # without a verifier, signatures are not checked


async def test_an_unreadable_listing_is_one_problem(
    registry: RegistryServer, owner: str, signer: ThrowawaySigner
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        subject = await published(client, repository)
        await push_release_image(
            client, repository, [fallback_tag(subject.digest)], ["linux/amd64"], LABELS
        )

        problems = await check_attestations(client, repository, subject.digest, signer.verifier())

    (problem,) = problems
    assert problem.startswith(
        f"{registry.host}/{repository}@{subject.digest}: attestations cannot be read"
    )
    assert "not an OCI index of attestations" in problem


async def store_by_hand(
    client: RegistryClient, repository: str, subject: Descriptor, bundle: bytes
) -> None:
    """Store a signature artifact of ``subject`` holding ``bundle`` as-is (attach would refuse)."""
    config = await client.put_blob(repository, b"{}")
    layer = await client.put_blob(repository, bundle)
    manifest = serialize_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_MEDIA_TYPE,
            "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config, "size": 2},
            "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": layer, "size": len(bundle)}],
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": subject.size,
            },
            "annotations": {"dev.sigstore.bundle.predicateType": SIGNATURE},
        }
    )
    digest = await client.put_manifest(repository, digest_of(manifest), manifest, OCI_MANIFEST)
    listing = await client.get_manifest(repository, fallback_tag(subject.digest))
    document = listing.document
    document["manifests"].append(
        {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(manifest),
            "artifactType": BUNDLE_MEDIA_TYPE,
        }
    )
    await client.put_manifest(
        repository, fallback_tag(subject.digest), serialize_json(document), OCI_INDEX
    )

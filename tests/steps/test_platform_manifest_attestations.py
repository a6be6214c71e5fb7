"""Every platform manifest's attestations are verified, not only the digest users pull by tag.

``docker pull --platform linux/arm64`` and ``cosign verify-attestation image@<platform digest>``
resolve a platform manifest. After a real publish (stand-in engine, real registry), one platform
manifest's SBOM, provenance or signature is removed, replaced by another digest's, re-signed by
another identity, tampered with, or made to name the tagged reference: ``verify_release``,
``dagger call verify`` and publish's own final check each name that digest and what is wrong.
The statements' subject name is read back and is what ``gh attestation verify`` and cosign
expect: the repository, without tag or digest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from dagger import dag
from pipeline.attest.signing import Verifier
from pipeline.attest.statements import PREDICATE_TYPES, PROVENANCE, SBOM, SIGNATURE, statement
from pipeline.attest.storage import attached
from pipeline.main import Pipeline
from pipeline.oci.client import RegistryClient
from pipeline.oci.documents import Manifest
from pipeline.publishing import references_of
from pipeline.rules.plan import ImagePlan
from pipeline.steps.finishing import FinishedImage, move_floating
from pipeline.steps.verify import VerificationError, verification_plan, verify_release

from pipeline import publishing
from tests.support.planted_attestations import (
    Published,
    drop,
    installed_engine,
    plant,
    publish,
    served,
    stored_bundle,
    tampered,
)
from tests.support.registry_server import RegistryServer
from tests.support.standin import CREATED, REVISION, StandInEngine
from tests.support.standin_sigstore import release_identity, release_signer

pytestmark = pytest.mark.anyio

TAG = "v2.4.0"

Corruption = Callable[[RegistryClient, Published, str], Awaitable[str]]
"""Changes the attestations of ``published``'s arm64 manifest; the problem verify must name
(after ``registry/path@digest: ``). The third argument is the registry's host."""


@pytest.fixture
def engine(registry: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> StandInEngine:
    """A stand-in engine that pushes into the test registry."""
    return installed_engine(registry.host, monkeypatch)


def verifier(owner: str) -> Verifier:
    """What ``owner``'s release workflow signs with is what verify checks against."""
    return release_signer(owner).verifier()


async def missing_sbom(client: RegistryClient, api: Published, host: str) -> str:
    await drop(client, api.path, api.platforms["linux/arm64"].digest, SBOM)
    return f"{SBOM} attestation missing"


async def another_digests_bundle(client: RegistryClient, api: Published, host: str) -> str:
    amd64 = api.platforms["linux/amd64"].digest
    bundle = await stored_bundle(client, api.path, amd64, PROVENANCE)
    await plant(client, api.path, api.platforms["linux/arm64"], bundle, PROVENANCE)
    return f"the statement's subject is {amd64}, not this digest"


async def stored_as_another_digest(client: RegistryClient, api: Published, host: str) -> str:
    arm64 = api.platforms["linux/arm64"]
    bundle = await stored_bundle(client, api.path, arm64.digest, SIGNATURE)
    amd64 = api.platforms["linux/amd64"]
    await plant(client, api.path, arm64, bundle, SIGNATURE, stored_as=amd64)
    return f"is stored as attesting {amd64.digest}, not this digest"


async def bad_signature(client: RegistryClient, api: Published, host: str) -> str:
    arm64 = api.platforms["linux/arm64"]
    bundle = await stored_bundle(client, api.path, arm64.digest, SBOM)
    await plant(client, api.path, arm64, tampered(bundle, {"name": "changed"}), SBOM)
    return "signature does not verify: DSSE signature does not verify"


async def another_identity(client: RegistryClient, api: Published, host: str) -> str:
    arm64 = api.platforms["linux/arm64"]
    name = f"{host}/{api.path}"
    # Sigstore's own CA and log, but the workflow of a stranger's repository.
    stranger = release_signer("stranger/qm-nmr-calc-api")
    bundle = stranger.sign(statement(name, arm64.digest, PROVENANCE, {"by": "stranger"}))
    await plant(client, api.path, arm64, bundle, PROVENANCE)
    return f"signature does not verify: bundle does not verify for {release_identity(api.path)}"


async def tag_in_subject_name(client: RegistryClient, api: Published, host: str) -> str:
    arm64 = api.platforms["linux/arm64"]
    tagged = f"{host}/{api.path}:2.4.0"
    bundle = release_signer(api.path).sign(statement(tagged, arm64.digest, SIGNATURE, {}))
    await plant(client, api.path, arm64, bundle, SIGNATURE)
    return f"the statement's subject name is {tagged!r}, not '{host}/{api.path}'"


CORRUPTIONS: dict[str, Corruption] = {
    "attestation-missing": missing_sbom,
    "bundle-of-another-digest": another_digests_bundle,
    "stored-as-another-digest": stored_as_another_digest,
    "bad-signature": bad_signature,
    "another-identity": another_identity,
    "tag-in-subject-name": tag_in_subject_name,
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS), ids=list(CORRUPTIONS))
async def test_a_platform_manifest_with_a_bad_attestation_is_named_by_verify(
    registry: RegistryServer, owner: str, engine: StandInEngine, corruption: str
) -> None:
    await publish(registry.host, owner, TAG)
    async with RegistryClient(registry.host) as client:
        api = await served(client, f"{owner}/qm-nmr-calc-api", "2.4.0")
        problem = await CORRUPTIONS[corruption](client, api, registry.host)
        plan = await verification_plan(
            client, TAG, owner=owner, registry=registry.host, revision=REVISION, created=CREATED
        )
        report = await verify_release(client, plan, attestations=verifier(owner))
    pipeline = Pipeline(
        source=dag.directory(), build_files=dag.directory(), registry=registry.host, owner=owner
    )
    with pytest.raises(VerificationError) as failure:
        await pipeline.verify(TAG)

    where = f"{registry.host}/{api.path}@{api.platforms['linux/arm64'].digest}"
    (line,) = report.mismatches
    assert line.startswith(f"api: {where}: "), line
    assert problem in line
    assert f"{where}: " in str(failure.value)
    assert problem in str(failure.value)


async def test_publish_final_check_names_a_platform_manifest_whose_attestation_went(
    registry: RegistryServer,
    owner: str,
    engine: StandInEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SBOM of api's arm64 manifest is removed once the floating tags have moved."""
    removed: list[str] = []

    async def moving_then_removing(
        client: RegistryClient, image: ImagePlan, final: Manifest
    ) -> FinishedImage:
        finished = await move_floating(client, image, final)
        if image.name == "api":
            api = await served(client, image.repository.split("/", 1)[1], "2.4.0")
            removed.append(api.platforms["linux/arm64"].digest)
            await drop(client, api.path, removed[0], SBOM)
        return finished

    monkeypatch.setattr(publishing, "move_floating", moving_then_removing)
    monkeypatch.setattr(publishing, "SETTLE_SECONDS", 0.0)

    with pytest.raises(VerificationError) as failure:
        await publish(registry.host, owner, TAG)

    where = f"{registry.host}/{owner}/qm-nmr-calc-api@{removed[0]}"
    assert f"api: {where}: {SBOM} attestation missing" in str(failure.value)


async def test_every_statement_names_the_repository_as_gh_and_cosign_expect(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    """cosign and GitHub's attest action name the subject ``registry/owner/repo``: the
    reference a user pulls without its tag and digest. Read back from every digest."""
    references = references_of(await publish(registry.host, owner, TAG))
    repositories = {reference.split("@")[0].rsplit(":", 1)[0] for reference in references}
    assert repositories == {
        f"{registry.host}/{owner}/qm-nmr-calc-api",
        f"{registry.host}/{owner}/qm-nmr-calc-worker",
    }
    async with RegistryClient(registry.host) as client:
        for repository in sorted(repositories):
            path = repository.split("/", 1)[1]
            image = await served(client, path, "2.4.0")
            digests = [image.index.digest, *(d.digest for d in image.platforms.values())]
            for digest in digests:
                stored = await attached(client, path, digest)
                statements = [verifier(owner).verify(bundle.bundle) for bundle in stored]

                assert sorted(s.predicate_type for s in statements) == sorted(PREDICATE_TYPES)
                assert {s.subject_name for s in statements} == {repository}
                assert {s.subject_digest for s in statements} == {digest}

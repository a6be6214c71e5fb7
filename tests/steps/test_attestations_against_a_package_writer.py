"""What someone with write access to the package, or a registry that lies, can do to the
attestations, and what verify and a rerun make of it.

After a real publish (stand-in engine, real registry), the api's arm64 manifest gets: the
listing of another digest under its ``sha256-<hex>`` tag, a bundle the release signed for
another repository, a listed artifact the repository does not hold, a bundle of a predicate type
the release does not make, a bundle declared too large to read, or one that is too large. Verify
names each in one line of the report. A rerun of a release stopped before moving its floating
tags either signs again what it can (another repository's bundle; a listing of another digest:
``test_rerun_keeps_only_verified_attestations``) or stops with one line naming the problem,
before any floating tag moves; nothing unverified is kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from pipeline.attest.errors import AttestationError
from pipeline.attest.signing import MAX_BUNDLE
from pipeline.attest.statements import PROVENANCE, SBOM, SIGNATURE, statement
from pipeline.attest.storage import FALLBACK_TAG_PREFIX, attached, fallback_tag
from pipeline.oci.client import OCI_INDEX, RegistryClient, digest_of, serialize_json
from pipeline.oci.documents import Manifest
from pipeline.steps.concurrency import ConcurrentStepsError
from pipeline.steps.finishing import FinishedImage
from pipeline.steps.verify import verification_plan, verify_release

from pipeline import publishing
from tests.support.planted_attestations import (
    Published,
    installed_engine,
    listing,
    plant,
    predicate_of,
    publish,
    served,
    stored_bundle,
    swap_listings,
)
from tests.support.registry_server import RegistryServer
from tests.support.standin import CREATED, REVISION, StandInEngine
from tests.support.standin_sigstore import release_signer

pytestmark = pytest.mark.anyio

TAG = "v2.4.0"
FOREIGN_TYPE = "https://example.com/vulnerability-scan/v1"

Attack = Callable[[RegistryClient, Published, str], Awaitable[str]]
"""Changes the api's arm64 attestations; the text verify's one line about it must hold."""


@pytest.fixture
def engine(registry: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> StandInEngine:
    """A stand-in engine that pushes into the test registry."""
    return installed_engine(registry.host, monkeypatch)


def arm64_of(api: Published) -> str:
    """The digest of the api's arm64 manifest."""
    return api.platforms["linux/arm64"].digest


async def foreign_predicate_type(client: RegistryClient, api: Published, host: str) -> str:
    payload = statement(f"{host}/{api.path}", arm64_of(api), FOREIGN_TYPE, {"scanner": "x"})
    await plant(
        client,
        api.path,
        api.platforms["linux/arm64"],
        release_signer(api.path).sign(payload),
        FOREIGN_TYPE,
    )
    return f"has predicate type '{FOREIGN_TYPE}', which the release does not make; accepted: "


async def declared_too_large(client: RegistryClient, api: Published, host: str) -> str:
    bundle = await stored_bundle(client, api.path, arm64_of(api), SIGNATURE)
    size = MAX_BUNDLE + 1
    await plant(
        client, api.path, api.platforms["linux/arm64"], bundle, SIGNATURE, declared_size=size
    )
    return f"declares a bundle of {size} bytes; accepted: 1 to {MAX_BUNDLE} bytes (it is not read)"


async def too_large(client: RegistryClient, api: Published, host: str) -> str:
    bundle = await stored_bundle(client, api.path, arm64_of(api), SIGNATURE)
    padded = bundle[:-1] + b" " * (MAX_BUNDLE + 1 - len(bundle)) + bundle[-1:]
    await plant(
        client, api.path, api.platforms["linux/arm64"], padded, SIGNATURE, declared_size=1000
    )
    return "attestations cannot be read: "


def lying_about_listings(monkeypatch: pytest.MonkeyPatch) -> Attack:
    """A registry that serves an api listing naming an artifact of the worker's repository
    (a real registry refuses to store such an index: the api repository lacks that manifest)."""
    lies: dict[tuple[str, str], Manifest] = {}
    honest = RegistryClient.get_manifest_or_none

    async def serving(self: RegistryClient, repository: str, reference: str) -> Manifest | None:
        return lies.get((repository, reference)) or await honest(self, repository, reference)

    async def attack(client: RegistryClient, api: Published, host: str) -> str:
        worker = await served(client, api.path.replace("-api", "-worker"), "2.4.0")
        (artifact,) = [
            b
            for b in await attached(client, worker.path, arm64_of(worker))
            if b.predicate_type == SBOM
        ]
        document = await listing(client, api.path, arm64_of(api))
        document["manifests"] = [
            {**entry, "digest": artifact.manifest_digest} if predicate_of(entry) == SBOM else entry
            for entry in document["manifests"]
        ]
        raw = serialize_json(document)
        lies[(api.path, fallback_tag(arm64_of(api)))] = Manifest(digest_of(raw), OCI_INDEX, raw)
        monkeypatch.setattr(RegistryClient, "get_manifest_or_none", serving)
        return f"lists {artifact.manifest_digest}, which {api.path} does not hold"

    return attack


VERIFY_ATTACKS: dict[str, Attack | None] = {
    "predicate-type-not-made": foreign_predicate_type,
    "bundle-declared-too-large": declared_too_large,
    "bundle-too-large": too_large,
    "artifact-of-another-repository": None,
}
"""None: the registry lies (``lying_about_listings``)."""


@pytest.mark.parametrize("attack", list(VERIFY_ATTACKS), ids=list(VERIFY_ATTACKS))
async def test_verify_names_each_attack_in_one_line(
    registry: RegistryServer,
    owner: str,
    engine: StandInEngine,
    monkeypatch: pytest.MonkeyPatch,
    attack: str,
) -> None:
    await publish(registry.host, owner, TAG)
    async with RegistryClient(registry.host) as client:
        api = await served(client, f"{owner}/qm-nmr-calc-api", "2.4.0")
        attacking = VERIFY_ATTACKS[attack] or lying_about_listings(monkeypatch)
        problem = await attacking(client, api, registry.host)
        plan = await verification_plan(
            client, TAG, owner=owner, registry=registry.host, revision=REVISION, created=CREATED
        )
        report = await verify_release(
            client, plan, attestations=release_signer(api.path).verifier()
        )

    (line,) = report.mismatches
    assert line.startswith(f"api: {registry.host}/{api.path}@{arm64_of(api)}: "), line
    assert problem in line


async def test_verify_names_a_swapped_listing_for_each_predicate_type(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    await publish(registry.host, owner, TAG)
    async with RegistryClient(registry.host) as client:
        api = await served(client, f"{owner}/qm-nmr-calc-api", "2.4.0")
        amd64 = api.platforms["linux/amd64"].digest
        await swap_listings(client, api.path, arm64_of(api), amd64)
        plan = await verification_plan(
            client, TAG, owner=owner, registry=registry.host, revision=REVISION, created=CREATED
        )
        report = await verify_release(
            client, plan, attestations=release_signer(api.path).verifier()
        )

    where = f"api: {registry.host}/{api.path}@{arm64_of(api)}: "
    assert all(line.startswith(where) for line in report.mismatches), report.mismatches
    for kind in (SBOM, PROVENANCE, SIGNATURE):
        mine = [line for line in report.mismatches if line.startswith(f"{where}{kind} ")]
        assert mine[0].endswith(f"is stored as attesting {amd64}, not this digest")
        assert mine[1].endswith(f"the statement's subject is {amd64}, not this digest")


async def another_repositorys_bundle(client: RegistryClient, api: Published, host: str) -> str:
    """A bundle the release signed, naming the worker, copied onto the api's arm64 manifest."""
    worker = f"{host}/{api.path.replace('-api', '-worker')}"
    payload = statement(worker, arm64_of(api), PROVENANCE, {"buildType": "worker"})
    await plant(
        client,
        api.path,
        api.platforms["linux/arm64"],
        release_signer(api.path).sign(payload),
        PROVENANCE,
    )
    return f"the statement's subject name is '{worker}', not '{host}/{api.path}'"


async def test_a_bundle_naming_another_repository_is_named_and_signed_again_on_a_rerun(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    await publish(registry.host, owner, TAG)
    async with RegistryClient(registry.host) as client:
        api = await served(client, f"{owner}/qm-nmr-calc-api", "2.4.0")
        problem = await another_repositorys_bundle(client, api, registry.host)
        plan = await verification_plan(
            client, TAG, owner=owner, registry=registry.host, revision=REVISION, created=CREATED
        )
        report = await verify_release(
            client, plan, attestations=release_signer(api.path).verifier()
        )

    (line,) = report.mismatches
    assert problem in line
    output = await publish(registry.host, owner, TAG)
    assert (
        f"{registry.host}/{api.path}: 3 digests attested (SBOM, provenance, signature): "
        "1 signed now, 8 kept"
    ) in output.splitlines()


async def stopped_before_moving(*_args: object) -> FinishedImage:
    """A release that stops once both images are pushed and attested (a cancelled job)."""
    raise RuntimeError("stopped before moving the floating tags")


RERUN_ATTACKS: dict[str, Attack | None] = {
    "predicate-type-not-made": foreign_predicate_type,
    "bundle-declared-too-large": declared_too_large,
    "artifact-of-another-repository": None,
}
"""None: the registry lies (``lying_about_listings``)."""


@pytest.mark.parametrize("attack", list(RERUN_ATTACKS), ids=list(RERUN_ATTACKS))
async def test_a_rerun_stops_naming_what_it_cannot_sign_again_and_moves_no_floating_tag(
    registry: RegistryServer,
    owner: str,
    engine: StandInEngine,
    monkeypatch: pytest.MonkeyPatch,
    attack: str,
) -> None:
    with monkeypatch.context() as stopping:
        stopping.setattr(publishing, "move_floating", stopped_before_moving)
        with pytest.raises(ConcurrentStepsError, match="2 steps failed: api: stopped before"):
            await publish(registry.host, owner, TAG)
    async with RegistryClient(registry.host) as client:
        api = await served(client, f"{owner}/qm-nmr-calc-api", "2.4.0")
        attacking = RERUN_ATTACKS[attack] or lying_about_listings(monkeypatch)
        problem = await attacking(client, api, registry.host)

    with pytest.raises(AttestationError) as failure:
        await publish(registry.host, owner, TAG)

    (line,) = str(failure.value).splitlines()
    assert api.path in line
    assert problem in line
    async with RegistryClient(registry.host) as client:
        tags = await client.list_tags(api.path)
    assert [tag for tag in tags if not tag.startswith(FALLBACK_TAG_PREFIX)] == ["2.4.0"]

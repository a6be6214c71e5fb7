"""A rerun keeps an attached bundle only when it verifies; anything else is signed again.

A release stops half-way (the worker's push fails): the api is pushed and attested, no floating
tag moved. Before the rerun, someone with write access to the package plants a bundle on one of
the api's platform manifests: signed by another identity, tampered with, signed by the release
but naming the tagged reference, about another digest, or the whole listing of another digest.
The rerun signs that digest's attestations again (the output says how many), the planted bundle
is gone from the listing, and the release verifies; floating tags move only then.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import dagger
import pytest
from pipeline.attest.statements import PREDICATE_TYPES, PROVENANCE, SBOM, statement
from pipeline.attest.storage import FALLBACK_TAG_PREFIX, attached
from pipeline.oci.client import RegistryClient

from tests.support.planted_attestations import (
    Published,
    installed_engine,
    plant,
    publish,
    served,
    stored_bundle,
    swap_listings,
    tampered,
)
from tests.support.registry_server import RegistryServer
from tests.support.standin import StandInEngine
from tests.support.standin_sigstore import release_signer

pytestmark = pytest.mark.anyio

TAG = "v2.4.0"

Planting = Callable[[RegistryClient, Published, str], Awaitable[int]]
"""Plants on the api's arm64 manifest; how many of its attestations the rerun must sign again."""


@pytest.fixture
def engine(registry: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> StandInEngine:
    """A stand-in engine that pushes into the test registry."""
    return installed_engine(registry.host, monkeypatch)


async def another_identity(client: RegistryClient, api: Published, host: str) -> int:
    arm64 = api.platforms["linux/arm64"]
    payload = statement(f"{host}/{api.path}", arm64.digest, PROVENANCE, {"by": "stranger"})
    stranger = release_signer("stranger/qm-nmr-calc-api")  # another repository's workflow
    await plant(client, api.path, arm64, stranger.sign(payload), PROVENANCE)
    return 1


async def tampered_with(client: RegistryClient, api: Published, host: str) -> int:
    arm64 = api.platforms["linux/arm64"]
    bundle = await stored_bundle(client, api.path, arm64.digest, PROVENANCE)
    await plant(client, api.path, arm64, tampered(bundle, {"buildType": "forged"}), PROVENANCE)
    return 1


async def tagged_subject_name(client: RegistryClient, api: Published, host: str) -> int:
    arm64 = api.platforms["linux/arm64"]
    payload = statement(f"{host}/{api.path}:2.4.0", arm64.digest, SBOM, {"spdxVersion": "x"})
    await plant(client, api.path, arm64, release_signer(api.path).sign(payload), SBOM)
    return 1


async def another_digests_bundle(client: RegistryClient, api: Published, host: str) -> int:
    amd64 = api.platforms["linux/amd64"].digest
    bundle = await stored_bundle(client, api.path, amd64, PROVENANCE)
    await plant(client, api.path, api.platforms["linux/arm64"], bundle, PROVENANCE)
    return 1


async def swapped_listing(client: RegistryClient, api: Published, host: str) -> int:
    amd64, arm64 = (api.platforms[p].digest for p in ("linux/amd64", "linux/arm64"))
    await swap_listings(client, api.path, arm64, amd64)
    return 3


PLANTINGS: dict[str, Planting] = {
    "signed-by-another-identity": another_identity,
    "tampered-with": tampered_with,
    "naming-the-tagged-reference": tagged_subject_name,
    "bundle-of-another-digest": another_digests_bundle,
    "listing-of-another-digest": swapped_listing,
}


@pytest.mark.parametrize("planting", list(PLANTINGS), ids=list(PLANTINGS))
async def test_a_bundle_planted_before_a_rerun_is_signed_again(
    registry: RegistryServer, owner: str, engine: StandInEngine, planting: str
) -> None:
    engine.failing_pushes = frozenset({"qm-nmr-calc-worker"})
    with pytest.raises(dagger.QueryError, match="failed to push"):
        await publish(registry.host, owner, TAG)
    engine.failing_pushes = frozenset()
    async with RegistryClient(registry.host) as client:
        api = await served(client, f"{owner}/qm-nmr-calc-api", "2.4.0")
        resigned = await PLANTINGS[planting](client, api, registry.host)
        planted = [b.bundle for b in await attached(client, api.path, arm64_of(api))]

    output = await publish(registry.host, owner, TAG)

    assert (
        f"{registry.host}/{api.path}: 3 digests attested (SBOM, provenance, signature): "
        f"{resigned} signed now, {9 - resigned} kept"
    ) in output.splitlines()
    async with RegistryClient(registry.host) as client:
        stored = await attached(client, api.path, arm64_of(api))
        tags = await client.list_tags(api.path)
    statements = [release_signer(api.path).verifier().verify(bundle.bundle) for bundle in stored]
    assert sorted(s.predicate_type for s in statements) == sorted(PREDICATE_TYPES)
    assert {(s.subject_name, s.subject_digest) for s in statements} == {
        (f"{registry.host}/{api.path}", arm64_of(api))
    }
    assert len({b.bundle for b in stored} - set(planted)) == resigned
    release_tags = sorted(tag for tag in tags if not tag.startswith(FALLBACK_TAG_PREFIX))
    assert release_tags == ["2.4", "2.4.0", "latest"]


def arm64_of(api: Published) -> str:
    """The digest of the api's arm64 manifest."""
    return api.platforms["linux/arm64"].digest

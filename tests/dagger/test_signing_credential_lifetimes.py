"""A release signs every digest inside its credentials' lifetimes, however long it runs.

GitHub's OIDC tokens live 300 s and Fulcio's certificates 10 minutes; a cold release builds for
tens of minutes before its first signature. The stand-in engine keeps GitHub's clock
(``tests/support/standin_sigstore.py``): builds, pushes and SBOM scans advance it by minutes, its
OIDC endpoint issues tokens with ``exp = iat + 300``, its Fulcio refuses an expired token and
issues 10-minute certificates, and its signer refuses to sign past ``notAfter``. A release that
asked for its identity before building, or signed for longer than one certificate lives, fails.
"""

from __future__ import annotations

from typing import Any

import dagger
import pytest
from dagger import dag
from pipeline.attest.identity import CERTIFICATE_MARGIN, TOKEN_MARGIN
from pipeline.main import Pipeline
from pipeline.oci.client import RegistryClient
from pipeline.publishing import references_of

from tests.support.registry_server import RegistryServer
from tests.support.standin import StandInEngine, signing_flags
from tests.support.standin_sigstore import GITHUB_TOKEN_LIFETIME, StandInSigstore

pytestmark = pytest.mark.anyio

TOKEN = "ghp_standInTokenThatMustNeverLeak0123456789"
TOKEN_ID = "secret-release-token"
SIGNATURES_PER_IMAGE = 9
"""Three digests (the index and two platform manifests), three attestations each."""


@pytest.fixture
def engine(registry: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> StandInEngine:
    """A stand-in engine whose four cold builds take 40 simulated minutes."""
    standin = StandInEngine(registry.host, secrets={TOKEN_ID: TOKEN}, build_minutes=10.0)
    standin.install(monkeypatch)
    return standin


async def publish(registry: RegistryServer, owner: str, tag: str = "v2.4.0") -> str:
    """``dagger call publish`` as the release workflow runs it; its output."""
    pipeline = Pipeline(
        source=dag.directory(), build_files=dag.directory(), registry=registry.host, owner=owner
    )
    token = dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))
    return await pipeline.publish(tag, username="bot", password=token, **signing_flags())


async def tags_of(registry: RegistryServer, repository: str) -> list[str]:
    """The tags ``repository`` holds, attestation tags left out."""
    async with RegistryClient(registry.host) as client:
        tags = await client.list_tags(repository)
    return sorted(tag for tag in tags if not tag.startswith("sha256-"))


def assert_every_credential_was_used_in_its_lifetime(sigstore: StandInSigstore) -> None:
    """Each certificate came from a token with TOKEN_MARGIN left, each signature from a
    certificate with CERTIFICATE_MARGIN left (the stand-in refuses less than none)."""
    for certificate in sigstore.certificates:
        used_after = certificate.not_before - certificate.token_issued
        assert used_after <= GITHUB_TOKEN_LIFETIME - TOKEN_MARGIN
    for signed in sigstore.signatures:
        issued = [c for c in sigstore.certificates if c.not_before <= signed]
        assert issued, "a signature before any certificate"
        assert issued[-1].not_after - signed >= CERTIFICATE_MARGIN


async def test_a_cold_release_signs_every_digest_although_the_builds_outlast_the_expired_token(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    """40 simulated minutes of builds, then pushes and scans: every digest signed, verified."""
    sigstore = engine.sigstore
    started = sigstore.clock()

    output = await publish(registry, owner)

    assert len(references_of(output)) == 6
    assert "\nverification:\napi: OK " in output
    assert f"{SIGNATURES_PER_IMAGE} signed now, 0 kept" in output
    assert len(sigstore.signatures) == 2 * SIGNATURES_PER_IMAGE
    # The identity token asked for up front (which run signs) expired during the builds...
    assert sigstore.tokens_issued[0] + GITHUB_TOKEN_LIFETIME < started + 40 * 60
    # ...and no certificate was asked for before every build had finished.
    assert min(c.not_before for c in sigstore.certificates) >= started + 40 * 60
    assert_every_credential_was_used_in_its_lifetime(sigstore)


async def test_signing_longer_than_the_certificate_lifetime_uses_more_than_one_certificate(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    """45 s per signature (a slow Rekor): one 10-minute certificate cannot sign all 18."""
    sigstore = engine.sigstore
    sigstore.signing_seconds = 45.0

    output = await publish(registry, owner)

    assert "\nverification:\napi: OK " in output
    assert "\nworker: OK " in output
    assert max(sigstore.signatures) - min(sigstore.signatures) > 10 * 60
    assert len(sigstore.certificates) >= 2
    assert len(sigstore.tokens_issued) == 1 + len(sigstore.certificates)
    assert_every_credential_was_used_in_its_lifetime(sigstore)


async def test_an_identity_outage_during_signing_names_the_step_moves_nothing_and_a_rerun_completes(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    """GitHub's OIDC endpoint answers the first two requests (which run; one certificate), then
    fails: the release stops naming the image and the signing step, no floating tag moves, and
    the same publish run again signs only what is missing."""
    sigstore = engine.sigstore
    sigstore.signing_seconds = 45.0  # the first certificate cannot sign everything
    sigstore.failing_from = 2

    with pytest.raises(Exception) as failure:  # noqa: PT011 - the message is what is checked
        await publish(registry, owner)

    first_line = str(failure.value).splitlines()[0]
    assert "OIDC token request" in first_line
    assert "answered 503" in first_line
    assert "sign " in first_line
    assert any(f"qm-nmr-calc-{name}" in first_line for name in ("api", "worker"))
    signed_before = len(sigstore.signatures)
    assert 0 < signed_before < 2 * SIGNATURES_PER_IMAGE
    for name in ("api", "worker"):
        assert await tags_of(registry, f"{owner}/qm-nmr-calc-{name}") == ["2.4.0"]

    sigstore.failing_from = None
    output = await publish(registry, owner)

    assert "\nverification:\napi: OK " in output
    assert "\nworker: OK " in output
    signed_now = sum(int(part.split(" signed now")[0].rsplit(" ", 1)[1]) for part in lines(output))
    assert signed_now == 2 * SIGNATURES_PER_IMAGE - signed_before
    for name in ("api", "worker"):
        assert await tags_of(registry, f"{owner}/qm-nmr-calc-{name}") == ["2.4", "2.4.0", "latest"]
    assert_every_credential_was_used_in_its_lifetime(sigstore)


def lines(output: Any) -> list[str]:
    """The per-image attestation lines of a release's output."""
    return [line for line in str(output).splitlines() if " signed now, " in line]

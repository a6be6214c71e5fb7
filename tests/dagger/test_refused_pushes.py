"""A registry that refuses a push says what access to check.

GHCR refuses a workflow's token (401/403) when the package does not grant the repository the
workflow runs in write access ("Manage Actions access"), or a personal token lacks
``write:packages``. The engine's push error and the registry client's writes (tags, index
annotations, push-scope tokens) both end with ``WRITE_ACCESS_HINT``; reads and other failures
keep their own text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import dagger
import httpx
import pytest
from dagger import dag
from pipeline.main import Pipeline
from pipeline.oci import WRITE_ACCESS_HINT
from pipeline.oci.client import RegistryClient, RegistryError
from pipeline.publishing import PushRefusedError
from pipeline.steps.concurrency import ConcurrentStepsError

from tests.support.registry_server import RegistryServer
from tests.support.standin import StandInEngine, signing_flags

pytestmark = pytest.mark.anyio

TOKEN_ID = "secret-release-token"
GHCR_REFUSAL = (
    "unexpected status from POST request to "
    "https://ghcr.io/v2/steinbeck/qm-nmr-calc-worker/blobs/uploads/: 403 Forbidden"
)
"""How a push the registry forbids reads in an engine error (containerd's words)."""
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "a" * 64,
            "size": 2,
        },
        "layers": [],
    }
).encode()


def pipeline_for(registry: str, owner: str) -> Pipeline:
    """The module's main object for a registry and owner."""
    return Pipeline(
        source=dag.directory(), build_files=dag.directory(), registry=registry, owner=owner
    )


async def publish(registry: str, owner: str, username: str) -> str:
    """``dagger call publish --tag v2.4.0 --username USER --password env:...``."""
    token = dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))
    return await pipeline_for(registry, owner).publish(
        "v2.4.0", username=username, password=token, **signing_flags()
    )


async def test_a_push_the_registry_forbids_names_the_access_to_check(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = StandInEngine(registry.host, secrets={TOKEN_ID: "token"})
    engine.failing_pushes = frozenset({"qm-nmr-calc-worker"})
    engine.push_failure = GHCR_REFUSAL
    engine.install(monkeypatch)

    with pytest.raises(PushRefusedError) as refused:
        await publish(registry.host, owner, "bot")

    reference = f"{registry.host}/{owner}/qm-nmr-calc-worker:2.4.0"
    assert str(refused.value) == f"failed to push {reference}: {GHCR_REFUSAL}; {WRITE_ACCESS_HINT}"
    assert isinstance(refused.value.__cause__, dagger.QueryError)


async def test_a_push_that_failed_otherwise_keeps_the_engine_s_error(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = StandInEngine(registry.host, secrets={TOKEN_ID: "token"})
    engine.failing_pushes = frozenset({"qm-nmr-calc-worker"})
    engine.install(monkeypatch)

    with pytest.raises(dagger.QueryError) as failed:
        await publish(registry.host, owner, "bot")

    assert not isinstance(failed.value, PushRefusedError)
    assert str(failed.value).endswith("unexpected status 502 Bad Gateway")
    assert WRITE_ACCESS_HINT not in str(failed.value)


async def test_a_push_without_valid_credentials_names_the_access_to_check(
    auth_registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry client reads with the credentials; the engine pushes without them: 401."""
    engine = StandInEngine(auth_registry.host, secrets={TOKEN_ID: str(auth_registry.password)})
    engine.install(monkeypatch)
    with_registry_auth = dagger.Container.with_registry_auth

    def elsewhere(self: dagger.Container, _address: str, *args: Any) -> dagger.Container:
        return with_registry_auth(self, "ghcr.io", *args)

    monkeypatch.setattr(dagger.Container, "with_registry_auth", elsewhere)

    with pytest.raises(ConcurrentStepsError) as refused:
        await publish(auth_registry.host, owner, str(auth_registry.username))

    for error in refused.value.failures.values():
        assert isinstance(error, PushRefusedError)
        assert str(error).endswith(f"unexpected status: 401 Unauthorized; {WRITE_ACCESS_HINT}")


async def test_a_tag_write_with_a_wrong_password_names_the_access_to_check(
    auth_registry: RegistryServer,
) -> None:
    async with RegistryClient(
        auth_registry.host, username=auth_registry.username, password="wrong"
    ) as client:
        with pytest.raises(RegistryError) as refused:
            await client.put_manifest(
                "o/qm-nmr-calc-api",
                "latest",
                MANIFEST,
                "application/vnd.oci.image.manifest.v1+json",
            )

    assert refused.value.status == 401
    assert f"401 unauthorized (check --username/--password; {WRITE_ACCESS_HINT})" in str(
        refused.value
    )


async def test_a_read_with_a_wrong_password_does_not_speak_of_write_access(
    auth_registry: RegistryServer,
) -> None:
    async with RegistryClient(
        auth_registry.host, username=auth_registry.username, password="wrong"
    ) as client:
        with pytest.raises(RegistryError) as refused:
            await client.list_tags("o/qm-nmr-calc-api")

    assert "401 unauthorized (check --username/--password)" in str(refused.value)
    assert WRITE_ACCESS_HINT not in str(refused.value)


def scripted(answer: Callable[[httpx.Request], httpx.Response]) -> RegistryClient:
    """A client of ``ghcr.io`` whose every request ``answer`` answers."""
    return RegistryClient(
        "ghcr.io", username="bot", password="pw-4f9c1e", transport=httpx.MockTransport(answer)
    )


async def test_a_forbidden_tag_write_names_the_access_to_check() -> None:
    async with scripted(lambda _request: httpx.Response(403)) as client:
        with pytest.raises(RegistryError) as refused:
            await client.put_manifest(
                "steinbeck/qm-nmr-calc-api",
                "latest",
                MANIFEST,
                "application/vnd.oci.image.manifest.v1+json",
            )

    assert str(refused.value).endswith(f"403 forbidden ({WRITE_ACCESS_HINT})")


async def test_a_forbidden_read_keeps_its_own_hint() -> None:
    async with scripted(lambda _request: httpx.Response(403)) as client:
        with pytest.raises(RegistryError) as refused:
            await client.list_tags("steinbeck/qm-nmr-calc-api")

    assert WRITE_ACCESS_HINT not in str(refused.value)
    assert "the credentials lack permission for this repository" in str(refused.value)


async def test_a_refused_push_scope_token_names_the_access_to_check() -> None:
    """GHCR's token service refuses a push scope the token may not have."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "no"}]})
        challenge = 'Bearer realm="https://ghcr.io/token",service="ghcr.io"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    async with scripted(answer) as client:
        with pytest.raises(RegistryError) as refused:
            await client.put_manifest(
                "steinbeck/qm-nmr-calc-api",
                "latest",
                MANIFEST,
                "application/vnd.oci.image.manifest.v1+json",
            )

    assert "token request to ghcr.io failed: 403 forbidden (" in str(refused.value)
    assert f"({WRITE_ACCESS_HINT}): DENIED: no" in str(refused.value)

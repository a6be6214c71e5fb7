"""A registry on the host's loopback, as a real engine has it: reachable from nowhere it runs.

The Dagger engine and the module's container each have their own network namespace: neither
reaches a registry listening on the host's 127.0.0.1 or ``localhost``. The stand-in engine
models that with ``host_loopback_reachable=False`` (see ``tests/support/standin.py``): the
module's own registry client is refused a connection to loopback, and so is the engine's push.
What the user then reads names the cause and points to ``rehearse``, which works without any
registry.
"""

from __future__ import annotations

from typing import Any

import dagger
import pytest
from dagger import dag
from pipeline.main import LOOPBACK_REGISTRY, Pipeline, UnreachableRegistryError, unreachable
from pipeline.oci.client import RegistryError
from pipeline.publishing import references_of
from pipeline.steps.concurrency import ConcurrentStepsError

from tests.dagger.test_module_functions import registration
from tests.support.registry_server import RegistryServer
from tests.support.standin import StandInEngine, engine_error, signing_flags

pytestmark = pytest.mark.anyio

TOKEN_ID = "secret-loopback-token"


@pytest.fixture
def engine(registry: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> StandInEngine:
    """A stand-in engine whose loopback, and its module container's, hold no registry."""
    standin = StandInEngine(
        registry.host, secrets={TOKEN_ID: "token"}, host_loopback_reachable=False
    )
    standin.install(monkeypatch)
    return standin


def pipeline_for(registry: str, owner: str) -> Pipeline:
    """``dagger call --registry REGISTRY --owner OWNER``."""
    return Pipeline(
        source=dag.directory(), registry=registry, owner=owner, build_files=dag.directory()
    )


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "localhost:5000", "[::1]:5000"])
async def test_plan_against_a_loopback_registry_points_to_rehearse(
    owner: str, engine: StandInEngine, host: str
) -> None:
    with pytest.raises(UnreachableRegistryError) as failure:
        await pipeline_for(host, owner).plan("v2.4.0")

    message = str(failure.value)
    assert len(message.splitlines()) == 1
    assert f"api: registry {host}: GET tags of {owner}/qm-nmr-calc-api failed: no answer" in message
    assert message.endswith(LOOPBACK_REGISTRY)
    assert "dagger call rehearse --tag TAG" in message
    assert isinstance(failure.value.__cause__, ConcurrentStepsError | RegistryError)


async def test_publish_to_a_loopback_registry_fails_before_any_build(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    secret = dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))

    with pytest.raises(UnreachableRegistryError, match="rehearse"):
        await pipeline_for(registry.host, owner).publish(
            "v2.4.0", username="bot", password=secret, **signing_flags()
        )

    assert engine.builds == []
    assert engine.pushes == []


async def test_rehearse_needs_no_registry_of_the_host(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    output = await pipeline_for("ghcr.io", owner).rehearse("v2.4.0")

    assert len(references_of(output)) == 6


async def test_an_engine_push_refused_on_loopback_counts_as_unreachable() -> None:
    refused = engine_error(
        'failed to push to 127.0.0.1:5000: failed to do request: Head "http://127.0.0.1:5000/v2/":'
        " dial tcp 127.0.0.1:5000: connect: connection refused"
    )
    denied = engine_error("failed to push 127.0.0.1:5000/a/b:1: unexpected status 401")

    assert unreachable(refused)
    assert unreachable(ConcurrentStepsError({"api": denied, "worker": refused}))
    assert not unreachable(denied)
    assert not unreachable(RegistryError("registry x: GET failed: 401", status=401))


async def test_a_registry_that_answers_on_loopback_is_not_explained_away(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where loopback does reach the registry (the tests' default), its answers are its own."""
    StandInEngine(registry.host, upstream_tags=frozenset()).install(monkeypatch)

    with pytest.raises(Exception) as failure:  # noqa: PT011 - the type is what is checked
        await pipeline_for(registry.host, owner).plan("v2.4.0")

    assert not isinstance(failure.value, UnreachableRegistryError)


async def test_the_registry_flag_says_loopback_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flag: dict[str, Any] = (await registration(monkeypatch))[""]["args"]["registry"]

    assert "loopback" in flag["description"]
    assert "rehearse" in flag["description"]

"""``pipeline.main`` pinned where the other tests left it loose (``bench/mutation_score.py``).

The decorators run when the module is imported, before a mutation test switches a mutant on, so
they are tested here on fresh functions. The rest goes through the Dagger functions on the
stand-in engine: the exact refusals, the upstream commit in every label (``build`` without a tag,
``rehearse``) and the step that reads upstream.
"""

from __future__ import annotations

from typing import Any

import dagger
import pytest
from dagger import dag
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pipeline.main import (
    Pipeline,
    checked_function,
    require_credentials,
    typed_function,
    uncached_function,
)
from pipeline.rules.versions import ReleaseInputError
from registry_server import RegistryServer
from standin import REVISION, StandInEngine

pytestmark = pytest.mark.anyio

REVISION_LABEL = "org.opencontainers.image.revision"
CREATED_LABEL = "org.opencontainers.image.created"
VERSION_LABEL = "org.opencontainers.image.version"
SOURCE_LABEL = "org.opencontainers.image.source"
COMMIT_CREATED = "2026-11-20T14:03:00Z"
"""The stand-in upstream's commit time (``standin.CREATED``) as the label carries it."""
TOKEN_ID = "secret-main-token"
CREDENTIALS_NEEDED = (
    "publish needs --username and --password (e.g. --password env:GITHUB_TOKEN); "
    "pass --dry-run to see the plan without them"
)


def method(self: Any) -> str:
    """A function for the decorators to register."""
    return "ran"


def registered(func: Any) -> Any:
    """What ``@function`` recorded on ``func`` for the module's registration."""
    return func.__dagger_function__


@pytest.fixture
def fresh() -> Any:
    """A new function each test, so no registration carries over."""
    return lambda self: method(self)


def test_typed_function_registers_the_function_itself(fresh: Any) -> None:
    assert typed_function(fresh) is fresh
    assert (registered(fresh).cache, registered(fresh).check) == (None, False)


def test_uncached_function_registers_a_function_never_cached(fresh: Any) -> None:
    assert uncached_function(fresh) is fresh
    assert (registered(fresh).cache, registered(fresh).check) == ("never", False)


def test_checked_function_registers_a_check(fresh: Any) -> None:
    assert checked_function(fresh) is fresh
    assert (registered(fresh).cache, registered(fresh).check) == (None, True)


@pytest.mark.parametrize("given", ["username", "password", "neither"])
def test_publish_without_both_credentials_is_refused_naming_the_flags(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    StandInEngine("127.0.0.1:1").install(monkeypatch)
    secret = dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))

    with pytest.raises(ValueError, match="publish needs") as refusal:
        require_credentials(
            "bot" if given == "username" else None, secret if given == "password" else None
        )

    assert str(refusal.value) == CREDENTIALS_NEEDED


def test_both_credentials_are_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    StandInEngine("127.0.0.1:1").install(monkeypatch)
    secret = dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))

    assert require_credentials("bot", secret) == ("bot", secret)


async def test_a_tag_upstream_lacks_is_refused_naming_the_repository_and_why(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = StandInEngine(registry.host, upstream_tags=frozenset({"v2.4.0"}))
    engine.install(monkeypatch)
    url = f"https://github.com/{owner}/qm-nmr-calc"

    with pytest.raises(ReleaseInputError) as refusal:
        await Pipeline(source=dag.directory(), registry=registry.host, owner=owner).plan("v2.4.1")

    assert str(refusal.value) == (
        f"tag v2.4.1 cannot be read from {url} (git ref refs/tags/v2.4.1 not found in {url}); "
        "the images are built from upstream's sources at the release tag, so the tag must "
        "exist there first"
    )


async def test_build_without_a_tag_is_labelled_with_upstreams_head(
    owner: str, monkeypatch: pytest.MonkeyPatch, spans: InMemorySpanExporter
) -> None:
    engine = StandInEngine("127.0.0.1:1")
    engine.install(monkeypatch)

    container = await Pipeline(source=dag.directory(), owner=owner).build("worker", "linux/amd64")

    labels = engine.describe(list(container._ctx.selections)).labels
    assert (labels[REVISION_LABEL], labels[CREATED_LABEL]) == (REVISION, COMMIT_CREATED)
    assert VERSION_LABEL not in labels
    steps = [span.name for span in spans.get_finished_spans() if span.name.startswith("read ")]
    assert steps == [f"read https://github.com/{owner}/qm-nmr-calc at HEAD"]


async def test_build_at_a_tag_reads_upstream_in_a_step_and_labels_the_owners_source(
    owner: str, monkeypatch: pytest.MonkeyPatch, spans: InMemorySpanExporter
) -> None:
    engine = StandInEngine("127.0.0.1:1")
    engine.install(monkeypatch)
    url = f"https://github.com/{owner}/qm-nmr-calc"

    container = await Pipeline(source=dag.directory(), owner=owner).build(
        "worker", "linux/amd64", tag="v2.4.0"
    )

    steps = [span.name for span in spans.get_finished_spans() if span.name.startswith("read ")]
    assert steps == [f"read {url} at v2.4.0"]
    labels = engine.describe(list(container._ctx.selections)).labels
    assert (labels[SOURCE_LABEL], labels[VERSION_LABEL]) == (url, "2.4.0")


async def test_rehearse_labels_every_image_with_the_upstream_commit(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = StandInEngine(registry.host)
    engine.install(monkeypatch)

    await Pipeline(source=dag.directory(), owner=owner).rehearse("v2.4.0")

    pushed = [variant for _address, variants in engine.pushes for variant in variants]
    assert len(pushed) == 4
    assert {
        (variant.labels[REVISION_LABEL], variant.labels[CREATED_LABEL]) for variant in pushed
    } == {(REVISION, COMMIT_CREATED)}

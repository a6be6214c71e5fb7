"""The Dagger functions as the engine sees them, without an engine.

Registration runs the SDK's real type-definition code on the stand-in, so the functions, their
flags and argument defaults are read from what the engine would receive; the decorators run when
the module is imported, so they are also checked on fresh functions. ``build`` and the ``builds``
check run on real SDK objects whose recorded chains are inspected. Then the functions on the
stand-in engine: the exact refusals, the upstream commit in every label (``build`` without a tag,
``rehearse``) and the step that reads upstream.
"""

from __future__ import annotations

from typing import Any

import dagger
import pytest
from dagger import dag
from dagger.client._core import Field
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pipeline.main import (
    BUILD_FILES_IGNORE,
    SOURCE_IGNORE,
    BuildFailedError,
    Pipeline,
    checked_function,
    require_credentials,
    session_function,
    uncached_function,
)
from pipeline.rules.catalogue import CATALOGUE, UnknownImageError
from pipeline.rules.versions import ReleaseInputError

from tests.support.registry_server import RegistryServer
from tests.support.standin import REVISION, StandInEngine

pytestmark = pytest.mark.anyio


def chain_of(obj: Any) -> list[Field]:
    """The selections an SDK object recorded."""
    return list(obj._ctx.selections)


def function_defs(module_chain: list[Field]) -> dict[str, dict[str, Any]]:
    """Function name -> what registration said of it (check, cache policy, arguments)."""
    functions: dict[str, dict[str, Any]] = {}
    for step in module_chain:
        if step.name != "withObject" or step.type_name != "Module":
            continue
        for type_step in chain_of(step.args["object"]):
            if type_step.name not in {"withFunction", "withConstructor"}:
                continue
            steps = chain_of(type_step.args["function"])
            summary: dict[str, Any] = {"check": False, "cache": None, "args": {}}
            for function_step in steps:
                if function_step.name == "function":
                    name = function_step.args["name"]
                elif function_step.name == "withCheck":
                    summary["check"] = True
                elif function_step.name == "withCachePolicy":
                    summary["cache"] = function_step.args["policy"]
                elif function_step.name == "withArg":
                    summary["args"][function_step.args["name"]] = function_step.args
            functions[name] = summary
    return functions


async def registration(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """Function name -> registration summary, from the SDK's own registration code."""
    engine = StandInEngine("127.0.0.1:1")
    engine.install(monkeypatch)
    module = Pipeline.__dagger_module__  # type: ignore[attr-defined]
    # The runtime names the main object through DAGGER_MAIN_OBJECT before importing the module.
    monkeypatch.setattr(module, "_main_name", "Pipeline")
    monkeypatch.setattr(module, "_main", Pipeline.__dagger_object_type__)  # type: ignore[attr-defined]
    await module._typedefs()
    (module_chain,) = [chain for chain in engine.queries if chain[0].name == "module"]
    return function_defs(module_chain)


async def test_functions_are_registered_with_their_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    functions = await registration(monkeypatch)

    assert set(functions) == {
        "",
        "plan",
        "build",
        "builds",
        "rehearsal",
        "publish",
        "verify",
        "rehearse",
        "worker_lock",
    }
    assert [name for name, summary in functions.items() if summary["check"]] == [
        "builds",
        "rehearsal",
    ]
    # Side effects, and reads of live registry or channel state, must never be replayed from
    # the cache.
    uncached = {name for name, summary in functions.items() if summary["cache"] == "Never"}
    assert uncached == {"plan", "publish", "verify", "rehearse", "worker_lock"}
    # What reads upstream's tags or HEAD is read again in every session, never kept for days.
    per_session = {name for name, summary in functions.items() if summary["cache"] == "PerSession"}
    assert per_session == {"build", "builds", "rehearsal"}


async def test_constructor_defaults_to_the_repository_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    constructor = (await registration(monkeypatch))[""]["args"]

    assert constructor["source"]["defaultPath"] == "/"
    assert constructor["source"]["ignore"] == SOURCE_IGNORE
    # The build files come from beside dagger.json in the module's own repository, even when
    # it runs as a remote module on another repository's --source.
    assert constructor["build_files"]["defaultPath"] == "."
    assert constructor["build_files"]["ignore"] == BUILD_FILES_IGNORE
    assert constructor["revision"]["defaultValue"] == "null"
    assert constructor["registry"]["defaultValue"] == '"ghcr.io"'
    assert constructor["owner"]["defaultValue"] == '"steinbeck"'


async def test_publish_needs_only_a_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    arguments = (await registration(monkeypatch))["publish"]["args"]

    required = [name for name, arg in arguments.items() if "defaultValue" not in arg]
    assert required == ["tag"]
    assert arguments["dry_run"]["defaultValue"] == "false"


async def test_build_labels_one_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = StandInEngine("127.0.0.1:1")
    engine.install(monkeypatch)

    container = await Pipeline(source=dag.directory(), build_files=dag.directory()).build(
        "api", "linux/arm64", tag="v2.4.0"
    )

    variant = engine.describe(chain_of(container))
    assert variant.dockerfile == "Dockerfile.api"
    assert variant.platform == "linux/arm64"
    assert variant.labels["org.opencontainers.image.version"] == "2.4.0"
    assert variant.labels["org.opencontainers.image.title"] == "qm-nmr-calc-api"


async def test_build_without_tag_leaves_the_version_out(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = StandInEngine("127.0.0.1:1", app_sources=True)
    engine.install(monkeypatch)

    container = await Pipeline(source=dag.directory(), build_files=dag.directory()).build(
        "worker", "linux/amd64"
    )

    labels = engine.describe(chain_of(container)).labels
    assert "org.opencontainers.image.version" not in labels
    assert labels["org.opencontainers.image.licenses"] == "MIT"


@pytest.mark.parametrize(
    ("image", "platform", "message"),
    [
        ("gpu", "linux/amd64", "the catalogue has api, worker"),
        ("worker", "linux/s390x", "it is built for linux/amd64, linux/arm64"),
        ("api", "linux/s390x", "it is built for linux/amd64, linux/arm64"),
    ],
    ids=["unknown-image", "worker-on-s390x", "unknown-platform"],
)
async def test_build_refuses_what_the_catalogue_lacks(
    monkeypatch: pytest.MonkeyPatch, image: str, platform: str, message: str
) -> None:
    engine = StandInEngine("127.0.0.1:1")
    engine.install(monkeypatch)

    with pytest.raises(UnknownImageError, match=message):
        await Pipeline(source=dag.directory(), build_files=dag.directory()).build(image, platform)
    assert engine.queries == []


async def test_builds_check_builds_every_variant_and_pushes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = StandInEngine("127.0.0.1:1")
    engine.install(monkeypatch)

    await Pipeline(source=dag.directory(), build_files=dag.directory()).builds()

    built = {(variant.dockerfile, variant.platform) for variant in engine.builds}
    expected = {(spec.dockerfile, platform) for spec in CATALOGUE for platform in spec.platforms}
    assert built == expected
    assert engine.pushes == []


async def test_builds_check_fails_naming_the_broken_variant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    StandInEngine("127.0.0.1:1", failing_platforms=frozenset({"linux/arm64"})).install(monkeypatch)

    with pytest.raises(
        BuildFailedError, match=r"2 of 4 builds failed.*api linux/arm64.*worker linux/arm64"
    ):
        await Pipeline(source=dag.directory(), build_files=dag.directory()).builds()


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


def test_session_function_registers_a_function_cached_per_session(fresh: Any) -> None:
    assert session_function(fresh) is fresh
    assert (registered(fresh).cache, registered(fresh).check) == ("session", False)


def test_uncached_function_registers_a_function_never_cached(fresh: Any) -> None:
    assert uncached_function(fresh) is fresh
    assert (registered(fresh).cache, registered(fresh).check) == ("never", False)


def test_checked_function_registers_a_check(fresh: Any) -> None:
    assert checked_function(fresh) is fresh
    assert (registered(fresh).cache, registered(fresh).check) == ("session", True)


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
        await Pipeline(
            source=dag.directory(), registry=registry.host, owner=owner, build_files=dag.directory()
        ).plan("v2.4.1")

    assert str(refusal.value) == (
        f"tag v2.4.1 cannot be read from {url} "
        '(repository does not contain ref "refs/tags/v2.4.1"); '
        "the images are built from upstream's sources at the release tag, so the tag must "
        "exist there first"
    )


async def test_build_without_a_tag_is_labelled_with_upstreams_head(
    owner: str, monkeypatch: pytest.MonkeyPatch, spans: InMemorySpanExporter
) -> None:
    engine = StandInEngine("127.0.0.1:1")
    engine.install(monkeypatch)

    container = await Pipeline(
        source=dag.directory(), owner=owner, build_files=dag.directory()
    ).build("worker", "linux/amd64")

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

    container = await Pipeline(
        source=dag.directory(), owner=owner, build_files=dag.directory()
    ).build("worker", "linux/amd64", tag="v2.4.0")

    steps = [span.name for span in spans.get_finished_spans() if span.name.startswith("read ")]
    assert steps == [f"read {url} at v2.4.0"]
    labels = engine.describe(list(container._ctx.selections)).labels
    assert (labels[SOURCE_LABEL], labels[VERSION_LABEL]) == (url, "2.4.0")


async def test_rehearse_labels_every_image_with_the_upstream_commit(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = StandInEngine(registry.host)
    engine.install(monkeypatch)

    await Pipeline(source=dag.directory(), owner=owner, build_files=dag.directory()).rehearse(
        "v2.4.0"
    )

    pushed = [variant for _address, variants in engine.pushes for variant in variants]
    assert len(pushed) == 4
    assert {
        (variant.labels[REVISION_LABEL], variant.labels[CREATED_LABEL]) for variant in pushed
    } == {(REVISION, COMMIT_CREATED)}

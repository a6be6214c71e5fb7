"""The Dagger functions as the engine sees them, without an engine.

Registration runs the SDK's real type-definition code on the stand-in, so the functions, their
flags and argument defaults are read from what the engine would receive. ``build`` and the
``builds`` check run on real SDK objects whose recorded chains are inspected.
"""

from __future__ import annotations

from typing import Any

import pytest
from dagger import dag
from dagger.client._core import Field
from pipeline.main import SOURCE_IGNORE, BuildFailedError, Pipeline
from pipeline.rules.catalogue import CATALOGUE, UnknownImageError
from standin import StandInEngine

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


async def test_constructor_defaults_to_the_repository_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    constructor = (await registration(monkeypatch))[""]["args"]

    assert constructor["source"]["defaultPath"] == "/"
    assert constructor["source"]["ignore"] == SOURCE_IGNORE
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

    container = await Pipeline(source=dag.directory()).build("api", "linux/arm64", tag="v2.4.0")

    variant = engine.describe(chain_of(container))
    assert variant.dockerfile == "Dockerfile.api"
    assert variant.platform == "linux/arm64"
    assert variant.labels["org.opencontainers.image.version"] == "2.4.0"
    assert variant.labels["org.opencontainers.image.title"] == "qm-nmr-calc-api"


async def test_build_without_tag_leaves_the_version_out(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = StandInEngine("127.0.0.1:1", app_sources=True)
    engine.install(monkeypatch)

    container = await Pipeline(source=dag.directory()).build("worker", "linux/amd64")

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
        await Pipeline(source=dag.directory()).build(image, platform)
    assert engine.queries == []


async def test_builds_check_builds_every_variant_and_pushes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = StandInEngine("127.0.0.1:1")
    engine.install(monkeypatch)

    await Pipeline(source=dag.directory()).builds()

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
        await Pipeline(source=dag.directory()).builds()

"""The module as upstream adopts it: called from upstream's workflow on upstream's checkout.

Whatever ``--source`` is (upstream's checkout with the application, or this repository, which
makes the module read upstream at the tag), the images are built from THIS module's Dockerfiles
and ``.dockerignore`` (``--build-files``, by default beside dagger.json in the module's own
repository). ``--revision`` labels a checkout with its commit, read from upstream.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest
from dagger import dag
from dagger.client._core import Field
from pipeline.main import BUILD_FILES_IGNORE, DOCKER_FILES, Pipeline
from pipeline.rules.labels import normalize_created
from pipeline.rules.versions import ReleaseInputError

from pipeline import main
from tests.support.standin import CREATED, REVISION, StandInEngine, repository_files

pytestmark = pytest.mark.anyio

MODULE_FILES_MARKER = "module-files"
"""A step only the test's --build-files directory has, so its files can be told apart."""


def chain_of(obj: Any) -> list[Field]:
    """The selections an SDK object recorded."""
    return list(obj._ctx.selections)


def module_files() -> Any:
    """A --build-files directory whose recorded chain differs from --source's."""
    return dag.directory().with_new_directory(MODULE_FILES_MARKER)


def overlays(container: Any) -> dict[str, list[Field]]:
    """Path -> the chain of the file each ``with_file`` of the build context laid there."""
    chain = chain_of(container)
    context = chain[: next(i for i, step in enumerate(chain) if step.name == "dockerBuild")]
    return {
        step.args["path"]: chain_of(step.args["source"])
        for step in context
        if step.name == "withFile"
    }


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether a .dockerignore-style pattern list leaves ``path`` out (last match wins).

    A pattern matches a path or any of its parent directories, segment by segment.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern.removeprefix("!")
        if any(
            len(prefix.split("/")) == len(bare.split("/")) and fnmatch.fnmatchcase(prefix, bare)
            for prefix in prefixes
        ):
            excluded = not negated
    return excluded


def test_build_files_keep_only_the_dockerfiles_and_dockerignore() -> None:
    # The worker's lock is kept too, once it is committed (no real lock can be made here).
    files = repository_files() | {main.WORKER_LOCK}
    kept = {path for path in files if not ignored(path, BUILD_FILES_IGNORE)}

    assert kept == set(DOCKER_FILES)


@pytest.mark.parametrize("app_sources", [True, False], ids=["upstream-checkout", "upstream-tag"])
async def test_images_are_built_from_the_module_s_own_build_files(
    monkeypatch: pytest.MonkeyPatch, app_sources: bool
) -> None:
    StandInEngine("127.0.0.1:1", app_sources=app_sources).install(monkeypatch)
    pipeline = Pipeline(source=dag.directory(), build_files=module_files())

    container = await pipeline.build("api", "linux/amd64", tag="v2.4.0")

    laid = overlays(container)
    assert set(laid) == set(DOCKER_FILES)
    for name, chain in laid.items():
        assert [step.name for step in chain] == ["directory", "withNewDirectory", "file"], name
        assert chain[-1].args["path"] == name


async def test_a_checkout_without_revision_has_no_commit_labels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = StandInEngine("127.0.0.1:1", app_sources=True)
    engine.install(monkeypatch)
    pipeline = Pipeline(source=dag.directory(), build_files=module_files())

    labels = engine.describe(chain_of(await pipeline.build("api", "linux/amd64", tag="v2.4.0")))

    assert "org.opencontainers.image.revision" not in labels.labels
    assert "org.opencontainers.image.created" not in labels.labels
    assert not any(step.name == "git" for chain in engine.queries for step in chain)


async def test_revision_labels_a_checkout_with_upstream_s_commit_and_its_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = StandInEngine("127.0.0.1:1", app_sources=True)
    engine.install(monkeypatch)
    pipeline = Pipeline(source=dag.directory(), build_files=module_files(), revision=REVISION)

    container = await pipeline.build("worker", "linux/amd64", tag="v2.4.0")

    labels = engine.describe(chain_of(container)).labels
    assert labels["org.opencontainers.image.revision"] == REVISION
    assert labels["org.opencontainers.image.created"] == normalize_created(CREATED)
    read = [chain for chain in engine.queries if chain[-1].name == "commit"]
    assert [step.args for step in read[0][:2]] == [
        {"url": "https://github.com/steinbeck/qm-nmr-calc"},
        {"id": REVISION},
    ]


async def test_the_release_plan_of_a_checkout_carries_the_revision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    StandInEngine("127.0.0.1:1", app_sources=True).install(monkeypatch)
    pipeline = Pipeline(source=dag.directory(), build_files=module_files(), revision=REVISION)

    table = await pipeline.plan("v2.4.0", existing_tags=[])

    assert f"org.opencontainers.image.revision={REVISION}" in table
    assert f"org.opencontainers.image.created={normalize_created(CREATED)}" in table


@pytest.mark.parametrize(
    "revision",
    ["abc123", REVISION.upper(), REVISION + "0", f"{REVISION[:-1]}g", f"{REVISION}\n"],
    ids=["short", "uppercase", "41-digits", "not-hex", "newline"],
)
async def test_a_revision_that_is_not_a_full_commit_id_is_refused_before_any_query(
    monkeypatch: pytest.MonkeyPatch, revision: str
) -> None:
    engine = StandInEngine("127.0.0.1:1", app_sources=True)
    engine.install(monkeypatch)
    pipeline = Pipeline(source=dag.directory(), build_files=module_files(), revision=revision)

    with pytest.raises(ReleaseInputError) as refused:
        await pipeline.build("api", "linux/amd64", tag="v2.4.0")

    assert f"--revision {revision!r} is not a full commit id; accepted: 40 (or 64)" in str(
        refused.value
    )
    # the worker's lock among the build files, and the sources: nothing is read from git
    assert [chain[-1].name for chain in engine.queries] == ["exists", "exists"]


async def test_a_revision_upstream_lacks_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    StandInEngine("127.0.0.1:1", app_sources=True).install(monkeypatch)
    missing = "0" * 40
    pipeline = Pipeline(source=dag.directory(), build_files=module_files(), revision=missing)

    with pytest.raises(ReleaseInputError) as refused:
        await pipeline.build("api", "linux/amd64", tag="v2.4.0")

    assert str(refused.value).startswith(
        f"commit {missing} cannot be read from https://github.com/steinbeck/qm-nmr-calc ("
    )
    assert "must name the commit --source was checked out at" in str(refused.value)


async def test_revision_without_a_checkout_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = StandInEngine("127.0.0.1:1", app_sources=False)
    engine.install(monkeypatch)
    pipeline = Pipeline(source=dag.directory(), build_files=module_files(), revision=REVISION)

    with pytest.raises(ReleaseInputError, match="this --source has none, so the commit of"):
        await pipeline.build("api", "linux/amd64", tag="v2.4.0")
    # the worker's lock among the build files, and the sources: nothing is read from git
    assert [chain[-1].name for chain in engine.queries] == ["exists", "exists"]


async def test_a_build_directory_is_laid_over_as_a_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An entry of DOCKER_FILES that ends with ``/`` is a directory of build files."""
    StandInEngine("127.0.0.1:1", app_sources=True).install(monkeypatch)
    monkeypatch.setattr(main, "DOCKER_FILES", ("Dockerfile.api", "worker/"))
    pipeline = Pipeline(source=dag.directory(), build_files=module_files())

    context, _ = await pipeline._context("v2.4.0")

    laid = [(step.name, step.args["path"]) for step in chain_of(context)[1:]]
    assert laid == [("withFile", "Dockerfile.api"), ("withDirectory", "worker/")]
    directory = chain_of(chain_of(context)[-1].args["source"])
    assert (directory[-1].name, directory[-1].args["path"]) == ("directory", "worker/")

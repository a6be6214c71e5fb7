"""Offline end to end: the real ``Pipeline`` on the real SDK objects, a stand-in engine, and a
REAL registry on loopback. Everything after the engine (tags, annotations, read-back) is real.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import dagger
import pytest
from dagger import dag
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pipeline.main import BuildFailedError, Pipeline
from pipeline.oci.client import RegistryClient
from pipeline.rules.plan import make_plan
from pipeline.rules.versions import ReleaseInputError
from pipeline.steps.concurrency import ConcurrentStepsError
from pipeline.steps.verify import VerificationError
from registry_server import RegistryServer
from standin import CREATED, REVISION, StandInEngine

pytestmark = pytest.mark.anyio

TOKEN = "ghp_standInTokenThatMustNeverLeak0123456789"
TOKEN_ID = "secret-release-token"
PLATFORMS = {"api": {"linux/amd64", "linux/arm64"}, "worker": {"linux/amd64", "linux/arm64"}}
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REVISION_LABEL = "org.opencontainers.image.revision"


@pytest.fixture
def registry_host(registry: RegistryServer) -> str:
    """``host:port`` of the test registry."""
    return registry.host


@pytest.fixture
def engine(registry_host: str, monkeypatch: pytest.MonkeyPatch) -> StandInEngine:
    """A stand-in engine that pushes into the test registry."""
    standin = StandInEngine(registry_host, secrets={TOKEN_ID: TOKEN})
    standin.install(monkeypatch)
    return standin


def pipeline_for(registry_host: str, owner: str) -> Pipeline:
    """The module's main object, as ``dagger call --registry ... --owner ...`` makes it."""
    return Pipeline(source=dag.directory(), registry=registry_host, owner=owner)


def token() -> dagger.Secret:
    """The release token, as the engine hands it to a function: an id, never the value."""
    return dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))


async def publish(registry_host: str, owner: str, tag: str, **options: Any) -> list[str]:
    """``dagger call publish --tag TAG --username bot --password env:...``; one line per tag."""
    output = await pipeline_for(registry_host, owner).publish(
        tag, username="bot", password=token(), **options
    )
    return output.splitlines()


async def tag_digests(registry_host: str, repository: str) -> dict[str, str]:
    """Every tag of ``repository`` and the digest it resolves to."""
    async with RegistryClient(registry_host) as client:
        return {
            tag: (await client.get_manifest(repository, tag)).digest
            for tag in await client.list_tags(repository)
        }


async def index_entries(registry_host: str, repository: str, tag: str) -> list[str]:
    """The digests of the images an index at ``tag`` lists."""
    async with RegistryClient(registry_host) as client:
        index = await client.get_manifest(repository, tag)
    return [entry["digest"] for entry in index.document["manifests"]]


async def platform_labels(registry_host: str, repository: str, tag: str) -> dict[str, Any]:
    """What a user pulls: platform -> labels of that platform's image config."""
    async with RegistryClient(registry_host) as client:
        top = await client.get_manifest(repository, tag)
        entries = (
            [(entry["digest"], entry["platform"]) for entry in top.document["manifests"]]
            if top.media_type == OCI_INDEX
            else [(top.digest, None)]
        )
        result = {}
        for digest, platform in entries:
            manifest = await client.get_manifest(repository, digest)
            config = await client.get_json_blob(repository, manifest.document["config"]["digest"])
            name = f"{config['os']}/{config['architecture']}"
            if platform is not None:
                assert name == f"{platform['os']}/{platform['architecture']}"
            result[name] = config["config"]["Labels"]
        return result


def walk(value: Any) -> Iterator[str]:
    """Every string inside a recorded argument, following SDK objects into their chains."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from walk(item)
    elif hasattr(value, "_ctx"):
        for step in value._ctx.selections:
            yield from walk(step.args)


async def test_publish_pushes_what_a_user_pulls(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    references = await publish(registry_host, owner, "v2.4.0")

    plan = make_plan(
        "v2.4.0", owner=owner, registry=registry_host, revision=REVISION, created=CREATED
    )
    expected_refs = []
    for image in plan.images:
        path = f"{owner}/qm-nmr-calc-{image.name}"
        digests = await tag_digests(registry_host, path)
        assert sorted(digests) == ["2.4", "2.4.0", "latest"]
        assert len(set(digests.values())) == 1, f"{image.name}: tags at different digests"
        labels = await platform_labels(registry_host, path, "latest")
        assert set(labels) == PLATFORMS[image.name]
        for platform_labels_ in labels.values():
            assert platform_labels_ == dict(image.labels)
        expected_refs += [f"{image.reference(tag)}@{digests['2.4.0']}" for tag in image.tags]
    assert references == expected_refs


async def test_api_and_worker_are_annotated_indexes(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    await publish(registry_host, owner, "v2.4.0")

    async with RegistryClient(registry_host) as client:
        api = await client.get_manifest(f"{owner}/qm-nmr-calc-api", "2.4.0")
        worker = await client.get_manifest(f"{owner}/qm-nmr-calc-worker", "2.4.0")
    for manifest, description in ((api, "qm-nmr-calc API"), (worker, "qm-nmr-calc worker")):
        assert manifest.media_type == OCI_INDEX
        annotations = manifest.document["annotations"]
        assert annotations["org.opencontainers.image.description"].startswith(description)
        assert (
            annotations["org.opencontainers.image.source"]
            == f"https://github.com/{owner}/qm-nmr-calc"
        )
        assert annotations["org.opencontainers.image.licenses"] == "MIT"
        assert annotations["org.opencontainers.image.revision"] == REVISION
        assert len(manifest.document["manifests"]) == 2


async def test_engine_pushes_each_image_once_under_its_version_tag(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    await publish(registry_host, owner, "v2.4.0")

    addresses = [address for address, _ in engine.pushes]
    assert addresses == [
        f"{registry_host}/{owner}/qm-nmr-calc-api:2.4.0",
        f"{registry_host}/{owner}/qm-nmr-calc-worker:2.4.0",
    ]
    pushed_platforms = [
        sorted(variant.platform for variant in variants) for _, variants in engine.pushes
    ]
    assert pushed_platforms == [["linux/amd64", "linux/arm64"]] * 2


async def test_every_variant_is_built_before_anything_is_pushed(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    await publish(registry_host, owner, "v2.4.0")

    leaves = [chain[-1].name for chain in engine.queries]
    first_push = leaves.index("publish")
    assert leaves[:first_push].count("sync") == 4
    assert "sync" not in leaves[first_push:]
    assert engine.built_on_publish == []


async def test_failed_arm64_build_publishes_nothing(
    registry_host: str, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = StandInEngine(
        registry_host, secrets={TOKEN_ID: TOKEN}, failing_platforms=frozenset({"linux/arm64"})
    )
    engine.install(monkeypatch)

    with pytest.raises(BuildFailedError, match=r"api linux/arm64") as failure:
        await publish(registry_host, owner, "v2.4.0")

    assert "nothing was pushed" in str(failure.value)
    assert engine.pushes == []
    for name in PLATFORMS:
        assert await tag_digests(registry_host, f"{owner}/qm-nmr-calc-{name}") == {}


async def test_older_release_leaves_latest_on_the_newest(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    await publish(registry_host, owner, "v2.4.0")
    newest = await tag_digests(registry_host, f"{owner}/qm-nmr-calc-api")

    references = await publish(registry_host, owner, "v2.3.7")

    after = await tag_digests(registry_host, f"{owner}/qm-nmr-calc-api")
    assert after["latest"] == newest["2.4.0"]
    assert after["2.4"] == newest["2.4.0"]
    assert after["2.3"] == after["2.3.7"] != newest["2.4.0"]
    assert [ref.split("@")[0].rsplit(":", 1)[1] for ref in references] == ["2.3.7", "2.3"] * 2


async def test_published_version_of_another_commit_is_refused_unless_overwrite(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    await publish(registry_host, owner, "v2.4.0")
    pushes = len(engine.pushes)
    engine.upstream.move_tags("2026-11-21T09:00:00+01:00")  # another commit, another release

    with pytest.raises(ReleaseInputError, match="already published") as refusal:
        await publish(registry_host, owner, "v2.4.0")
    assert f"revision {REVISION}" in str(refusal.value)
    assert len(engine.pushes) == pushes
    assert engine.builds[-1].labels[REVISION_LABEL] == REVISION  # nothing built for it

    await publish(registry_host, owner, "v2.4.0", overwrite=True)
    assert len(engine.pushes) == pushes + 2


async def test_published_version_without_a_revision_is_refused(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    engine.app_sources = True  # local sources: no commit known, nothing identifies the release
    await publish(registry_host, owner, "v2.4.0")

    with pytest.raises(ReleaseInputError, match="no revision to compare"):
        await publish(registry_host, owner, "v2.4.0")


async def test_release_stopped_half_way_is_completed_by_running_it_again(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    engine.failing_pushes = frozenset({"qm-nmr-calc-worker"})
    with pytest.raises(dagger.QueryError, match="failed to push") as failure:
        await publish(registry_host, owner, "v2.4.0")
    assert "qm-nmr-calc-worker:2.4.0" in str(failure.value).splitlines()[0]
    api = await tag_digests(registry_host, f"{owner}/qm-nmr-calc-api")
    assert list(api) == ["2.4.0"]  # pushed, and no floating tag moved
    assert await tag_digests(registry_host, f"{owner}/qm-nmr-calc-worker") == {}
    first_images = await index_entries(registry_host, f"{owner}/qm-nmr-calc-api", "2.4.0")

    engine.failing_pushes = frozenset()
    pushes = len(engine.pushes)
    plan = await pipeline_for(registry_host, owner).plan("v2.4.0")
    references = await publish(registry_host, owner, "v2.4.0")

    assert "already holds this release" in plan
    assert [address for address, _ in engine.pushes[pushes:]] == [
        f"{registry_host}/{owner}/qm-nmr-calc-worker:2.4.0"
    ]
    after = await tag_digests(registry_host, f"{owner}/qm-nmr-calc-api")
    assert sorted(after) == ["2.4", "2.4.0", "latest"]
    assert len(set(after.values())) == 1
    # The images pushed by the first run are kept; finishing only annotated their index.
    assert await index_entries(registry_host, f"{owner}/qm-nmr-calc-api", "latest") == first_images
    assert len(references) == 6


async def test_every_failed_push_is_named_in_the_first_line(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    engine.failing_pushes = frozenset({"qm-nmr-calc-api", "qm-nmr-calc-worker"})

    with pytest.raises(Exception) as failure:  # noqa: PT011 - the message is what is checked
        await publish(registry_host, owner, "v2.4.0")

    first_line = str(failure.value).splitlines()[0]
    assert "TaskGroup" not in first_line
    assert "api: failed to push" in first_line
    assert "worker: failed to push" in first_line
    assert not isinstance(failure.value, BaseExceptionGroup)


async def test_engine_pushes_with_the_credentials_given_for_the_registry(
    auth_registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = StandInEngine(auth_registry.host, secrets={TOKEN_ID: str(auth_registry.password)})
    engine.install(monkeypatch)

    references = await pipeline_for(auth_registry.host, owner).publish(
        "v2.4.0", username=auth_registry.username, password=token()
    )

    assert len(references.splitlines()) == 6


async def test_credentials_for_another_host_leave_the_push_anonymous(
    auth_registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = StandInEngine(auth_registry.host, secrets={TOKEN_ID: str(auth_registry.password)})
    engine.install(monkeypatch)
    with_registry_auth = dagger.Container.with_registry_auth

    def for_ghcr(self: dagger.Container, address: str, *args: Any) -> dagger.Container:
        return with_registry_auth(self, "ghcr.io", *args)

    monkeypatch.setattr(dagger.Container, "with_registry_auth", for_ghcr)

    with pytest.raises(ConcurrentStepsError, match=r"api: failed to push .* 401 unauthorized"):
        await pipeline_for(auth_registry.host, owner).publish(
            "v2.4.0", username=auth_registry.username, password=token()
        )


async def test_dry_run_builds_and_pushes_nothing_and_needs_no_credentials(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    output = await pipeline_for(registry_host, owner).publish("v2.4.0", dry_run=True)

    assert "2.4.0" in output
    assert "latest" in output
    assert engine.builds == []
    assert engine.pushes == []
    assert await tag_digests(registry_host, f"{owner}/qm-nmr-calc-api") == {}


async def test_token_never_leaves_the_secret(
    registry_host: str,
    owner: str,
    engine: StandInEngine,
    capsys: pytest.CaptureFixture[str],
    spans: InMemorySpanExporter,
) -> None:
    references = await publish(registry_host, owner, "v2.4.0")

    recorded = [text for chain in engine.queries for step in chain for text in walk(step.args)]
    assert recorded, "the stand-in recorded no arguments"
    assert not [text for text in recorded if TOKEN in text]
    for variant in engine.builds:
        assert TOKEN not in repr(variant)
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err + "\n".join(references)
    auth_steps = [
        step for chain in engine.queries for step in chain if step.name == "withRegistryAuth"
    ]
    # The engine gets the token as the secret the user passed, for the registry's host only.
    assert {
        (step.args["address"], step.args["username"], secret_ids(step.args["secret"]))
        for step in auth_steps
    } == {(registry_host, "bot", (TOKEN_ID,))}
    traced = [
        str(text)
        for span in spans.get_finished_spans()
        for text in (span.name, *(span.attributes or {}).values(), *(e.name for e in span.events))
    ]
    assert traced
    assert not [text for text in traced if TOKEN in text]


def secret_ids(secret: dagger.Secret) -> tuple[str, ...]:
    """The ids a secret argument was loaded from (``--password env:...`` gives one)."""
    return tuple(
        str(step.args["id"]) for step in secret._ctx.selections if step.name == "loadSecretFromID"
    )


@pytest.mark.parametrize(
    ("tag", "options", "error"),
    [
        ("v2.4", {"username": "bot"}, ReleaseInputError),
        ("v1.2.3+b5", {"username": "bot"}, ReleaseInputError),
        ("v2.4.0", {}, ValueError),
    ],
    ids=["not-semver", "build-metadata", "no-credentials"],
)
async def test_bad_input_is_refused_before_the_engine_is_asked_anything(
    registry_host: str,
    owner: str,
    engine: StandInEngine,
    tag: str,
    options: dict[str, Any],
    error: type[Exception],
) -> None:
    if "username" in options:
        options["password"] = token()
    with pytest.raises(error):
        await pipeline_for(registry_host, owner).publish(tag, **options)
    assert engine.queries == []


async def test_local_sources_are_built_as_they_are(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    engine.app_sources = True
    await publish(registry_host, owner, "v2.4.0")

    leaves = {chain[-1].name for chain in engine.queries}
    assert "commit" not in leaves
    labels = await platform_labels(registry_host, f"{owner}/qm-nmr-calc-worker", "2.4.0")
    assert "org.opencontainers.image.revision" not in labels["linux/amd64"]
    assert "org.opencontainers.image.created" not in labels["linux/amd64"]


async def test_upstream_sources_are_built_at_the_release_tag(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    await publish(registry_host, owner, "v2.4.0")

    steps = [step for chain in engine.queries for step in chain]
    git = [step for step in steps if step.name == "git"]
    assert {step.args["url"] for step in git} == {f"https://github.com/{owner}/qm-nmr-calc"}
    assert {step.args["name"] for step in steps if step.name == "tag"} == {"v2.4.0"}
    # Dagger v0.21's docker_build ignores SOURCE_DATE_EPOCH; the module does not pretend.
    assert all(variant.build_args == {} for variant in engine.builds)


async def test_tag_missing_upstream_fails_before_any_build(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    engine.upstream_tags = frozenset({"v2.4.0"})

    with pytest.raises(ReleaseInputError) as refusal:
        await publish(registry_host, owner, "v2.4.1")

    message = str(refusal.value)
    assert message.startswith("tag v2.4.1 cannot be read from ")
    assert f"https://github.com/{owner}/qm-nmr-calc" in message
    assert engine.builds == []
    assert engine.pushes == []


async def test_rehearse_releases_into_a_throwaway_registry_without_credentials(
    registry_host: str, owner: str, engine: StandInEngine, registry: RegistryServer
) -> None:
    references = await pipeline_for("ghcr.io", owner).rehearse("v2.4.0")

    # The engine pushes to localhost:5000, which registry_service makes the throwaway registry
    # (here the stand-in's test registry): plain HTTP, as the engine allows only for localhost.
    assert [ref.split("@")[0] for ref in references.splitlines()] == [
        f"localhost:5000/{owner}/qm-nmr-calc-{image}:{tag}"
        for image in ("api", "worker")
        for tag in ("2.4.0", "2.4", "latest")
    ]
    assert sorted(await tag_digests(registry_host, f"{owner}/qm-nmr-calc-api")) == [
        "2.4",
        "2.4.0",
        "latest",
    ]
    steps = [step for chain in engine.queries for step in chain]
    assert not [step for step in steps if step.name in {"withRegistryAuth", "plaintext"}]
    publishes = [step for step in steps if step.name == "publish"]
    assert len(publishes) == 2
    assert all(step.args.get("registryService") is not None for step in publishes)
    assert {step.args["address"] for step in steps if step.name == "from"} >= {"registry:2"}
    assert engine.queries[-1][-1].name == "stop"


async def test_rehearse_stops_its_registry_when_the_release_fails(
    owner: str, engine: StandInEngine
) -> None:
    engine.failing_pushes = frozenset({"qm-nmr-calc-worker"})

    with pytest.raises(dagger.QueryError, match="failed to push"):
        await pipeline_for("ghcr.io", owner).rehearse("v2.4.0")

    assert engine.queries[-1][-1].name == "stop"


async def test_rehearsal_check_releases_the_current_sources(
    owner: str, engine: StandInEngine, registry_host: str
) -> None:
    await pipeline_for("ghcr.io", owner).rehearsal()

    digests = await tag_digests(registry_host, f"{owner}/qm-nmr-calc-api")
    assert list(digests) == ["0.0.0-rehearsal"]
    steps = [step for chain in engine.queries for step in chain]
    assert {step.name for step in steps if step.name in {"tag", "head"}} == {"head"}


async def test_each_step_of_a_release_is_a_span(
    registry_host: str, owner: str, engine: StandInEngine, spans: InMemorySpanExporter
) -> None:
    await publish(registry_host, owner, "v2.4.0")

    names = [span.name for span in spans.get_finished_spans()]
    api, worker = (f"{registry_host}/{owner}/qm-nmr-calc-{name}" for name in ("api", "worker"))
    assert sorted(name for name in names if name.startswith("build ")) == [
        "build api linux/amd64",
        "build api linux/arm64",
        "build worker linux/amd64",
        "build worker linux/arm64",
    ]
    assert sorted(name for name in names if name.startswith("push ")) == [
        f"push {api}:2.4.0",
        f"push {worker}:2.4.0",
    ]
    assert sorted(name for name in names if name.startswith("annotate ")) == [
        f"annotate {api}:2.4.0",
        f"annotate {worker}:2.4.0",
    ]
    assert sorted(name for name in names if name.startswith("move ")) == [
        f"move {api}:2.4",
        f"move {api}:latest",
        f"move {worker}:2.4",
        f"move {worker}:latest",
    ]
    assert names.count("verify v2.4.0") == 1
    # Pushes end before any tag moves; the verification ends last.
    last_push = max(i for i, name in enumerate(names) if name.startswith("push "))
    first_move = min(i for i, name in enumerate(names) if name.startswith(("move ", "annotate ")))
    assert last_push < first_move
    assert names[-1] == "verify v2.4.0"


async def test_a_failed_step_is_a_failed_span(
    registry_host: str, owner: str, engine: StandInEngine, spans: InMemorySpanExporter
) -> None:
    engine.failing_pushes = frozenset({"qm-nmr-calc-worker"})

    with pytest.raises(dagger.QueryError):
        await publish(registry_host, owner, "v2.4.0")

    statuses = {span.name: span.status.status_code for span in spans.get_finished_spans()}
    worker = f"push {registry_host}/{owner}/qm-nmr-calc-worker:2.4.0"
    assert statuses[worker] == StatusCode.ERROR
    assert not [name for name in statuses if name.startswith("move ")]


async def test_the_same_commit_gives_the_same_labels_on_every_run(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    """Labels are the reproducible part (image times and digests are not, on Dagger v0.21)."""
    runs = []
    for _ in range(2):
        container = await pipeline_for(registry_host, owner).build(
            "worker", "linux/amd64", tag="v2.4.0"
        )
        runs.append(engine.describe(list(container._ctx.selections)).labels)

    assert runs[0] == runs[1]
    assert runs[0]["org.opencontainers.image.created"] == "2026-11-20T14:03:00Z"  # the commit's
    assert runs[0][REVISION_LABEL] == REVISION


async def test_plan_with_existing_tags_reads_no_registry(
    owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    StandInEngine("127.0.0.1:1").install(monkeypatch)  # nothing listens: a read would fail

    plan = await pipeline_for("127.0.0.1:1", owner).plan("v2.4.1", existing_tags=["2.5.0"])

    assert "tags        2.4.1, 2.4\n" in plan
    assert "latest      stays: 2.5.0 is higher than 2.4.1 in all versions" in plan


async def test_plan_reads_the_registry_by_default(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    await publish(registry_host, owner, "v2.5.0")

    plan = await pipeline_for(registry_host, owner).plan("v2.4.1")

    assert "latest      stays: 2.5.0 is higher than 2.4.1 in all versions" in plan


async def test_verify_function_with_credentials_on_a_private_registry(
    auth_registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = StandInEngine(auth_registry.host, secrets={TOKEN_ID: str(auth_registry.password)})
    engine.install(monkeypatch)
    pipeline = pipeline_for(auth_registry.host, owner)
    await pipeline.publish("v2.4.0", username=auth_registry.username, password=token())

    report = await pipeline.verify("v2.4.0", username=auth_registry.username, password=token())

    assert report.count(": OK ") == 2
    with pytest.raises(ConcurrentStepsError, match="401"):
        await pipeline.verify("v2.4.0")  # anonymous: every read is refused


async def test_verify_function_fails_naming_the_mismatch(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    await publish(registry_host, owner, "v2.4.0")
    async with RegistryClient(registry_host) as client:
        path = f"{owner}/qm-nmr-calc-worker"
        other = await client.get_manifest(path, "2.4.0")
        document = other.document
        document["annotations"] = {"moved": "by hand"}
        raw = json.dumps(document).encode()
        await client.put_manifest(path, "latest", raw, other.media_type)

    with pytest.raises(VerificationError, match=r"worker: tag latest is at sha256:") as failure:
        await pipeline_for(registry_host, owner).verify("v2.4.0")

    assert str(failure.value).count("tag latest") == 1  # the api's latest still holds

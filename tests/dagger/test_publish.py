"""Offline end to end: the real ``Pipeline`` on the real SDK objects, a stand-in engine, and a
REAL registry on loopback. Everything after the engine (tags, annotations, read-back) is real.

Also what ``pipeline.publishing`` does on the way: which Dockerfile each variant is built from,
the exact build-failure message, what the release log (span events and attributes) says, and the
final verification against the pushed digests, proven by an intruder that rewrites every tag with
the same manifests in other bytes: same content, other digests.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import dagger
import pytest
from dagger import dag
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pipeline.attest.provenance import GITHUB, GITHUB_ISSUER
from pipeline.attest.signing import THROWAWAY_IDENTITY
from pipeline.attest.storage import FALLBACK_TAG_PREFIX, fallback_tag
from pipeline.main import BuildFailedError, Pipeline
from pipeline.oci.client import RegistryClient
from pipeline.oci.documents import Manifest
from pipeline.publishing import references_of
from pipeline.rules.plan import ImagePlan, make_plan
from pipeline.rules.versions import ReleaseInputError
from pipeline.steps.concurrency import ConcurrentStepsError
from pipeline.steps.finishing import FinishedImage, move_floating
from pipeline.steps.progress import step
from pipeline.steps.verify import VerificationError

from pipeline import publishing
from tests.support.registry_server import RegistryServer
from tests.support.standin import CREATED, REVISION, StandInEngine, signing_flags
from tests.support.standin_sigstore import RELEASE_WORKFLOW

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
    return Pipeline(
        source=dag.directory(), build_files=dag.directory(), registry=registry_host, owner=owner
    )


def token() -> dagger.Secret:
    """The release token, as the engine hands it to a function: an id, never the value."""
    return dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))


async def publish(registry_host: str, owner: str, tag: str, **options: Any) -> list[str]:
    """``dagger call publish --tag TAG --username bot --password env:...``; one line per tag."""
    output = await pipeline_for(registry_host, owner).publish(
        tag, username="bot", password=token(), **signing_flags(), **options
    )
    return references_of(output)


async def tag_digests(registry_host: str, repository: str) -> dict[str, str]:
    """Every release tag of ``repository`` (attestation tags left out) and its digest."""
    async with RegistryClient(registry_host) as client:
        return {
            tag: (await client.get_manifest(repository, tag)).digest
            for tag in await client.list_tags(repository)
            if not tag.startswith(FALLBACK_TAG_PREFIX)
        }


async def digest_in(registry_host: str, path: str) -> str:
    """The digest ``repository:tag`` has in the test registry (standing in for a base's own)."""
    repository, tag = path.split(":")
    async with RegistryClient(registry_host) as client:
        return (await client.get_manifest(repository, tag)).digest


async def attestation_tags(registry_host: str, repository: str) -> set[str]:
    """The ``sha256-<hex>`` tags of ``repository``: where attestations are listed."""
    async with RegistryClient(registry_host) as client:
        tags = await client.list_tags(repository)
    return {tag for tag in tags if tag.startswith(FALLBACK_TAG_PREFIX)}


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
        # Attestations beside every published digest (the index and each platform's image),
        # under the tag cosign and gh fall back to; nothing else.
        published = [digests["2.4.0"], *await index_entries(registry_host, path, "2.4.0")]
        assert await attestation_tags(registry_host, path) == {
            fallback_tag(digest) for digest in published
        }
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


async def test_a_user_reads_which_tags_stay_and_the_verification_report(
    registry_host: str, owner: str, engine: StandInEngine, spans: InMemorySpanExporter
) -> None:
    """The TUI shows span names and the function's output, never span events or attributes."""
    await publish(registry_host, owner, "v2.4.0")
    spans.clear()

    output = await pipeline_for(registry_host, owner).publish(
        "v2.3.7", username="bot", password=token(), **signing_flags()
    )

    stays = [
        f"{registry_host}/{owner}/qm-nmr-calc-{name}:latest: stays: "
        "2.4.0 is higher than 2.3.7 in all versions"
        for name in ("api", "worker")
    ]
    references, attestations, notes, report = output.split("\n\n")
    assert len(references.splitlines()) == 4
    assert attestations.splitlines() == [
        "attestations:",
        f"signed by keyless: {GITHUB}/{owner}/qm-nmr-calc/{RELEASE_WORKFLOW}@refs/tags/v2.3.7 "
        f"(issuer {GITHUB_ISSUER}; Fulcio certificates obtained just in time, Rekor entries)",
        *(
            f"{registry_host}/{owner}/qm-nmr-calc-{name}: 3 digests attested "
            "(SBOM, provenance, signature): 9 signed now, 0 kept"
            for name in ("api", "worker")
        ),
    ]
    assert notes.splitlines() == stays
    assert report.startswith("verification:\napi: OK ")
    assert "\nworker: OK " in report
    names = [span.name for span in spans.get_finished_spans()]
    assert [name for name in names if " stays: " in name] == stays
    verified = await pipeline_for(registry_host, owner).verify("v2.3.7")
    assert verified.splitlines()[:3] == [*stays, ""]


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


async def test_running_a_release_again_attaches_no_attestation_twice(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    """A re-run finds every digest attested and keeps what is there: no second copy of anything."""
    await publish(registry_host, owner, "v2.4.0")
    path = f"{owner}/qm-nmr-calc-api"
    before = {
        tag: await index_entries(registry_host, path, tag)
        for tag in await attestation_tags(registry_host, path)
    }

    output = await pipeline_for(registry_host, owner).publish(
        "v2.4.0", username="bot", password=token(), **signing_flags()
    )

    attestations = output.split("\n\n")[1].splitlines()
    assert attestations[2:] == [
        f"{registry_host}/{owner}/qm-nmr-calc-{name}: 3 digests attested "
        "(SBOM, provenance, signature): 0 signed now, 9 kept"
        for name in ("api", "worker")
    ]
    after = {
        tag: await index_entries(registry_host, path, tag)
        for tag in await attestation_tags(registry_host, path)
    }
    assert after == before
    assert all(len(entries) == 3 for entries in after.values())  # SBOM, provenance, signature


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
        "v2.4.0", username=auth_registry.username, password=token(), **signing_flags()
    )

    assert len(references_of(references)) == 6


async def test_credentials_for_another_host_leave_the_push_anonymous(
    auth_registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = StandInEngine(auth_registry.host, secrets={TOKEN_ID: str(auth_registry.password)})
    engine.install(monkeypatch)
    with_registry_auth = dagger.Container.with_registry_auth

    def for_ghcr(self: dagger.Container, address: str, *args: Any) -> dagger.Container:
        return with_registry_auth(self, "ghcr.io", *args)

    monkeypatch.setattr(dagger.Container, "with_registry_auth", for_ghcr)

    with pytest.raises(ConcurrentStepsError, match=r"api: failed to push .* 401 Unauthorized"):
        await pipeline_for(auth_registry.host, owner).publish(
            "v2.4.0", username=auth_registry.username, password=token(), **signing_flags()
        )


async def test_registry_credentials_hold_for_the_whole_session_by_host(
    auth_registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the engine keeps them: given once for a host, every later push there uses them."""
    engine = StandInEngine(auth_registry.host, secrets={TOKEN_ID: str(auth_registry.password)})
    engine.install(monkeypatch)
    pipeline = pipeline_for(auth_registry.host, owner)
    await pipeline.publish(
        "v2.4.0", username=auth_registry.username, password=token(), **signing_flags()
    )
    monkeypatch.setattr(dagger.Container, "with_registry_auth", lambda self, *args: self)

    output = await pipeline.publish(
        "v2.4.1", username=auth_registry.username, password=token(), **signing_flags()
    )

    assert len(references_of(output)) == 6
    assert engine.session_credentials == {
        auth_registry.host: (auth_registry.username, auth_registry.password)
    }


async def test_without_credentials_for_the_host_the_cli_hosts_are_used(
    auth_registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = (str(auth_registry.username), str(auth_registry.password))
    engine = StandInEngine(
        auth_registry.host,
        secrets={TOKEN_ID: credentials[1]},
        host_credentials={auth_registry.host: credentials},
    )
    engine.install(monkeypatch)
    monkeypatch.setattr(dagger.Container, "with_registry_auth", lambda self, *args: self)

    output = await pipeline_for(auth_registry.host, owner).publish(
        "v2.4.0", username=credentials[0], password=token(), **signing_flags()
    )

    assert len(references_of(output)) == 6
    assert engine.session_credentials == {}


async def test_a_failed_command_upstream_is_named_with_what_it_said(
    registry_host: str, owner: str, engine: StandInEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ExecError's message leaves stderr out: the reason is taken from its stderr."""
    git = engine.upstream.git

    def failing_show(*args: str, at: str = CREATED) -> subprocess.CompletedProcess[str]:
        if args[:1] == ("show",):
            return subprocess.CompletedProcess(["git", *args], 128, "", "fatal: bad object x\n")
        return git(*args, at=at)

    monkeypatch.setattr(engine.upstream, "git", failing_show)

    with pytest.raises(ReleaseInputError) as refusal:
        await pipeline_for(registry_host, owner).plan("v2.4.0")

    assert "fatal" not in str(refusal.value.__cause__)
    assert "did not complete successfully: exit code: 128: fatal: bad object x)" in str(
        refusal.value
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
    # Dagger v0.21's docker_build ignores SOURCE_DATE_EPOCH; the module does not pretend. The
    # only build arguments are the Dockerfile's base images, pinned to the digest resolved once.
    bases = {
        "UV_IMAGE": ("ghcr.io/astral-sh/uv:0.13.9", "astral-sh/uv:0.13.9"),
        "PYTHON_IMAGE": (
            "docker.io/library/python:3.11-slim-bookworm",
            "library/python:3.11-slim-bookworm",
        ),
    }
    pinned = {
        argument: f"{reference}@{await digest_in(registry_host, path)}"
        for argument, (reference, path) in bases.items()
    }
    assert {tuple(sorted(variant.build_args.items())) for variant in engine.builds} == {
        tuple(sorted(pinned.items()))
    }


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
    assert [ref.split("@")[0] for ref in references_of(references)] == [
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
    # The same attesting path, signed by a throwaway identity that the output names as such.
    attestations = references.split("\n\n")[1].splitlines()
    assert attestations[:2] == ["attestations:", f"signed by {THROWAWAY_IDENTITY}"]
    assert "rehearsal only" in THROWAWAY_IDENTITY
    assert await attestation_tags(registry_host, f"{owner}/qm-nmr-calc-api")


async def test_rehearse_with_the_workflow_identity_signs_keylessly_and_verifies_against_it(
    registry_host: str, owner: str, engine: StandInEngine
) -> None:
    """CI's keyless rehearsal: ci.yml's token on main signs; the bundles are checked against
    that workflow's identity, not a release's."""
    ci_workflow = "steinbeck/qm-nmr-calc-pipeline/.github/workflows/ci.yml@refs/heads/main"
    sigstore = engine.sigstore
    sigstore.claims = {**sigstore.claims, "job_workflow_ref": ci_workflow}
    sigstore.claims_follow_release_tag = False

    output = await pipeline_for("ghcr.io", owner).rehearse("v2.4.0", **signing_flags())

    identity = f"{GITHUB}/{ci_workflow}"
    attestations = output.split("\n\n")[1].splitlines()
    assert attestations[1].startswith(f"signed by keyless: {identity} (issuer {GITHUB_ISSUER};")
    assert "9 signed now, 0 kept" in attestations[2]
    assert "\nverification:\napi: OK " in output
    assert sigstore.verified_identities == [identity]
    assert len(sigstore.signatures) == 18
    assert sigstore.certificates


async def test_rehearse_with_half_the_workflow_identity_is_refused_before_any_work(
    owner: str, engine: StandInEngine
) -> None:
    flags = signing_flags()

    with pytest.raises(ValueError, match="pass both, or neither"):
        await pipeline_for("ghcr.io", owner).rehearse(
            "v2.4.0", id_token_request_url=flags["id_token_request_url"]
        )

    assert engine.queries == []


@pytest.mark.parametrize("missing", ["id_token_request_url", "id_token_request_token"])
async def test_publish_without_the_workflow_identity_is_refused_before_any_work(
    registry_host: str, owner: str, engine: StandInEngine, missing: str
) -> None:
    flags = signing_flags()
    request_url = None if missing == "id_token_request_url" else flags["id_token_request_url"]
    request_token = None if missing == "id_token_request_token" else flags["id_token_request_token"]

    with pytest.raises(ValueError, match="id-token: write") as failure:
        await pipeline_for(registry_host, owner).publish(
            "v2.4.0",
            username="bot",
            password=token(),
            id_token_request_url=request_url,
            id_token_request_token=request_token,
        )

    assert "--id-token-request-url env:ACTIONS_ID_TOKEN_REQUEST_URL" in str(failure.value)
    assert engine.queries == []  # nothing read, built or pushed
    assert await tag_digests(registry_host, f"{owner}/qm-nmr-calc-api") == {}


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
    # Each image is annotated after its own push; every version tag is pushed, annotated and
    # attested before any floating tag moves; the verification ends last.
    for image in (api, worker):
        assert names.index(f"push {image}:2.4.0") < names.index(f"annotate {image}:2.4.0")
    first_move = min(i for i, name in enumerate(names) if name.startswith("move "))
    version_tags = names.index("version tags of v2.4.0: push, annotate, attest")
    last_annotation = max(i for i, name in enumerate(names) if name.startswith("annotate "))
    assert last_annotation < version_tags < first_move
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
    await pipeline.publish(
        "v2.4.0", username=auth_registry.username, password=token(), **signing_flags()
    )

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


SETTLE_SECONDS = 0.01


async def publish_in_step(registry: RegistryServer, owner: str, tag: str) -> str:
    """``dagger call publish``, inside a step standing for the function call's own span (the
    engine opens one), so the release's notes have a span to land on."""
    with step("publish"):
        return await pipeline_for(registry.host, owner).publish(
            tag, username="bot", password=token(), **signing_flags()
        )


def span_names(spans: InMemorySpanExporter) -> list[str]:
    """Every span of the release by name, in the order they ended (notes are spans too)."""
    return [span.name for span in spans.get_finished_spans()]


def spans_named(spans: InMemorySpanExporter, prefix: str) -> dict[str, dict[str, Any]]:
    """Span name -> attributes, for the spans whose name starts with ``prefix``."""
    return {
        span.name: dict(span.attributes or {})
        for span in spans.get_finished_spans()
        if span.name.startswith(prefix)
    }


async def test_each_image_is_built_from_its_own_dockerfile(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    await publish_in_step(registry, owner, "v2.4.0")

    assert sorted((variant.dockerfile, variant.platform) for variant in engine.builds) == [
        ("Dockerfile.api", "linux/amd64"),
        ("Dockerfile.api", "linux/arm64"),
        ("Dockerfile.worker", "linux/amd64"),
        ("Dockerfile.worker", "linux/arm64"),
    ]


async def test_every_failed_build_is_listed_with_why(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    engine.failing_platforms = frozenset({"linux/amd64", "linux/arm64"})

    with pytest.raises(BuildFailedError) as failure:
        await publish_in_step(registry, owner, "v2.4.0")

    assert str(failure.value) == (
        "4 of 4 builds failed, nothing was pushed: "
        "api linux/amd64: process did not complete: linux/amd64; "
        "api linux/arm64: process did not complete: linux/arm64; "
        "worker linux/amd64: process did not complete: linux/amd64; "
        "worker linux/arm64: process did not complete: linux/arm64"
    )


async def test_each_push_is_a_step_naming_its_platforms(
    registry: RegistryServer, owner: str, engine: StandInEngine, spans: InMemorySpanExporter
) -> None:
    await publish_in_step(registry, owner, "v2.4.0")

    repository = f"{registry.host}/{owner}/qm-nmr-calc"
    assert spans_named(spans, "push ") == {
        f"push {repository}-api:2.4.0": {"platforms": "linux/amd64, linux/arm64"},
        f"push {repository}-worker:2.4.0": {"platforms": "linux/amd64, linux/arm64"},
    }


async def test_an_image_already_pushed_is_noted_not_pushed_again(
    registry: RegistryServer, owner: str, engine: StandInEngine, spans: InMemorySpanExporter
) -> None:
    engine.failing_pushes = frozenset({"qm-nmr-calc-worker"})
    with pytest.raises(dagger.QueryError):
        await publish_in_step(registry, owner, "v2.4.0")
    engine.failing_pushes = frozenset()
    spans.clear()

    output = await publish_in_step(registry, owner, "v2.4.0")

    api = f"{registry.host}/{owner}/qm-nmr-calc-api:2.4.0"
    assert f"{api} already holds this release: not pushed again" in span_names(spans)
    (kept,) = [line for line in output.splitlines() if line.startswith(f"{api}: ")]
    assert "already holds this release, version 2.4.0" in kept
    assert kept.endswith(": kept, and the release completed")
    assert f"push {api}" not in spans_named(spans, "push ")


async def test_what_finishing_notes_is_in_the_release_log_by_image(
    registry: RegistryServer,
    owner: str,
    engine: StandInEngine,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    async def noting(client: RegistryClient, image: ImagePlan, final: Manifest) -> FinishedImage:
        finished = await move_floating(client, image, final)
        return replace(finished, notes=(f"a note on {image.name}",))

    monkeypatch.setattr(publishing, "move_floating", noting)

    output = await publish_in_step(registry, owner, "v2.4.0")

    repository = f"{registry.host}/{owner}/qm-nmr-calc"
    expected = [f"{repository}-api:a note on api", f"{repository}-worker:a note on worker"]
    assert sorted(text for text in span_names(spans) if "a note on" in text) == expected
    assert [line for line in output.splitlines() if "a note on" in line] == expected


def rewritten(raw: bytes) -> bytes:
    """The same manifest in other bytes: indented JSON has another digest."""
    return json.dumps(json.loads(raw), indent=1).encode()


@pytest.fixture
def intruder(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, str]]:
    """Once each image is finished, rewrite every tag it holds with its manifest in other
    bytes: the registry serves what was planned, but not what was pushed. Returns, per image,
    the digest finishing left and the one the intruder wrote at every tag."""
    written: dict[str, tuple[str, str]] = {}

    async def intruding(client: RegistryClient, image: ImagePlan, final: Manifest) -> FinishedImage:
        finished = await move_floating(client, image, final)
        path = image.repository.split("/", 1)[1]
        manifest = await client.get_manifest(path, finished.digest)
        digests = {
            await client.put_manifest(path, tag, rewritten(manifest.raw), manifest.media_type)
            for tag in image.tags
        }
        (other,) = digests
        written[image.name] = (finished.digest, other)
        return finished

    monkeypatch.setattr(publishing, "move_floating", intruding)
    monkeypatch.setattr(publishing, "SETTLE_SECONDS", SETTLE_SECONDS)
    return written


async def test_the_final_verification_checks_the_pushed_digests_every_time(
    registry: RegistryServer,
    owner: str,
    engine: StandInEngine,
    spans: InMemorySpanExporter,
    intruder: dict[str, tuple[str, str]],
) -> None:
    """Without the pushed digests, the rewritten tags would verify: the same labels, platforms
    and annotations. Each of the retries must check them too."""
    with pytest.raises(VerificationError) as failure:
        await publish_in_step(registry, owner, "v2.4.0")

    prefix = "the registry does not serve what was planned: "
    assert str(failure.value).startswith(prefix)
    problems = str(failure.value).removeprefix(prefix).split("; ")
    assert [problem for problem in problems if "attestation" not in problem] == [
        f"{name}: tag 2.4.0 is at {written}, but publish pushed {pushed}"
        for name, (pushed, written) in sorted(intruder.items())
    ]
    # The rewritten manifests were never attested, and verify says so of those digests only.
    unattested = {problem.split(": ")[1] for problem in problems if "attestation" in problem}
    assert {reference.rsplit("@", 1)[1] for reference in unattested} == {
        written for _, written in intruder.values()
    }
    retries = f"verification found mismatches; checking again in {SETTLE_SECONDS} s"
    assert span_names(spans).count(retries) == publishing.SETTLE_CHECKS

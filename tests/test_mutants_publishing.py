"""``pipeline.publishing`` pinned where the other tests left it loose (``bench/mutation_score.py``).

Through ``publish`` on the stand-in engine and a real registry: which Dockerfile each variant is
built from, the exact build-failure message, what the release log (span events and attributes)
says, and the final verification against the pushed digests, proven by an intruder that
rewrites every tag with the same manifests in other bytes: same content, other digests.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import dagger
import pytest
from dagger import dag
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pipeline.main import BuildFailedError, Pipeline
from pipeline.oci.client import RegistryClient
from pipeline.rules.plan import ImagePlan
from pipeline.steps.finishing import FinishedImage, finish_image
from pipeline.steps.progress import step
from pipeline.steps.verify import VerificationError
from registry_server import RegistryServer
from standin import StandInEngine

from pipeline import publishing

pytestmark = pytest.mark.anyio

TOKEN_ID = "secret-publishing-token"
SETTLE_SECONDS = 0.01


@pytest.fixture
def engine(registry: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> StandInEngine:
    """A stand-in engine that pushes into the test registry."""
    standin = StandInEngine(registry.host, secrets={TOKEN_ID: "token"})
    standin.install(monkeypatch)
    return standin


async def publish(registry: RegistryServer, owner: str, tag: str) -> str:
    """``dagger call publish``, inside a step standing for the function call's own span (the
    engine opens one), so the release's notes have a span to land on."""
    with step("publish"):
        return await Pipeline(source=dag.directory(), registry=registry.host, owner=owner).publish(
            tag, username="bot", password=dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))
        )


def events(spans: InMemorySpanExporter) -> list[str]:
    """Every note of the release, in order."""
    return [event.name for span in spans.get_finished_spans() for event in span.events]


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
    await publish(registry, owner, "v2.4.0")

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
        await publish(registry, owner, "v2.4.0")

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
    await publish(registry, owner, "v2.4.0")

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
        await publish(registry, owner, "v2.4.0")
    engine.failing_pushes = frozenset()
    spans.clear()

    await publish(registry, owner, "v2.4.0")

    api = f"{registry.host}/{owner}/qm-nmr-calc-api:2.4.0"
    assert f"{api} already holds this release: not pushed again" in events(spans)
    assert f"push {api}" not in spans_named(spans, "push ")


async def test_what_finishing_notes_is_in_the_release_log_by_image(
    registry: RegistryServer,
    owner: str,
    engine: StandInEngine,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    async def noting(client: RegistryClient, image: ImagePlan, digest: str) -> FinishedImage:
        finished = await finish_image(client, image, digest)
        return replace(finished, notes=(f"a note on {image.name}",))

    monkeypatch.setattr(publishing, "finish_image", noting)

    await publish(registry, owner, "v2.4.0")

    noted = [text for text in events(spans) if "a note on" in text]
    assert sorted(noted) == ["api: a note on api", "worker: a note on worker"]


def rewritten(raw: bytes) -> bytes:
    """The same manifest in other bytes: indented JSON has another digest."""
    return json.dumps(json.loads(raw), indent=1).encode()


@pytest.fixture
def intruder(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, str]]:
    """Once each image is finished, rewrite every tag it holds with its manifest in other
    bytes: the registry serves what was planned, but not what was pushed. Returns, per image,
    the digest finishing left and the one the intruder wrote at every tag."""
    written: dict[str, tuple[str, str]] = {}

    async def intruding(client: RegistryClient, image: ImagePlan, digest: str) -> FinishedImage:
        finished = await finish_image(client, image, digest)
        path = image.repository.split("/", 1)[1]
        manifest = await client.get_manifest(path, finished.digest)
        digests = {
            await client.put_manifest(path, tag, rewritten(manifest.raw), manifest.media_type)
            for tag in image.tags
        }
        (other,) = digests
        written[image.name] = (finished.digest, other)
        return finished

    monkeypatch.setattr(publishing, "finish_image", intruding)
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
        await publish(registry, owner, "v2.4.0")

    assert str(failure.value) == "the registry does not serve what was planned: " + "; ".join(
        f"{name}: tag 2.4.0 is at {written}, but publish pushed {pushed}"
        for name, (pushed, written) in sorted(intruder.items())
    )
    retries = f"verification found mismatches; checking again in {SETTLE_SECONDS} s"
    assert events(spans).count(retries) == publishing.SETTLE_CHECKS

"""Each race ``finishing`` can lose, staged one step at a time on a REAL registry.

``tests/steps/test_concurrent_releases.py`` races whole releases and checks where the floating
tags end; it takes minutes. Here each interleaving it can produce is set up by hand in the
session's ``docker-registry``, and ``finish_image``/``settle`` are asked once: the decision, its
reason, and the tag's digest afterwards are all checked.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pipeline.oci.client import Manifest, RegistryClient
from pipeline.rules.catalogue import find_image
from pipeline.rules.plan import ImagePlan, PublishedState, make_plan
from pipeline.rules.references import repository_path
from pipeline.rules.versions import FloatingHolder, FloatingTag
from pipeline.steps.finishing import (
    digest_of,
    finish_image,
    highest_in_scope,
    settle,
    version_manifest,
)
from semver import Version

from tests.support.oci_images import push_release_image
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.anyio

VERSION = "org.opencontainers.image.version"
PUBLISHED = [Version.parse(v) for v in ("1.9.9", "2.4.0", "2.4.3", "2.4.9-rc.1", "2.5.0")]
PUBLISHED += [Version.parse("3.0.0-rc.1")]


def test_latest_is_put_back_on_the_highest_stable_version_of_any_line() -> None:
    assert highest_in_scope(PUBLISHED, Version(2, 4, 0), "latest") == Version(2, 5, 0)


def test_x_y_is_put_back_on_the_highest_stable_version_of_its_line_only() -> None:
    assert highest_in_scope(PUBLISHED, Version(2, 4, 0), "2.4") == Version(2, 4, 3)


def test_a_line_with_only_prereleases_above_this_version_keeps_this_version() -> None:
    published = [Version(2, 4, 0), Version.parse("2.4.1-rc.1")]
    assert highest_in_scope(published, Version(2, 4, 0), "2.4") == Version(2, 4, 0)


def worker_plan(
    registry: RegistryServer, owner: str, tag: str, published: PublishedState | None = None
) -> ImagePlan:
    """The worker image, as a one-platform image, of release ``tag`` under ``owner``: a first
    release, or planned from ``published``."""
    states = {"worker": published} if published is not None else None
    single = replace(find_image("worker"), platforms=("linux/amd64",))
    plan = make_plan(tag, owner=owner, registry=registry.host, published=states, catalogue=[single])
    (worker,) = [image for image in plan.images if image.name == "worker"]
    return worker


async def push_version(
    client: RegistryClient, registry: RegistryServer, owner: str, tag: str, *tags: str
) -> Manifest:
    """Push the worker of release ``tag`` under its version tag and ``tags``; its manifest."""
    image = worker_plan(registry, owner, tag)
    path = repository_path(image.repository)
    version_tag = image.decision.version_tag
    await push_release_image(client, path, [version_tag, *tags], image.platforms, image.labels)
    return await client.get_manifest(path, version_tag)


async def digest_at(client: RegistryClient, image: ImagePlan, tag: str) -> str:
    """The digest ``tag`` of ``image``'s repository resolves to."""
    return (await client.get_manifest(repository_path(image.repository), tag)).digest


def moves_traced(spans: InMemorySpanExporter) -> list[tuple[str, object]]:
    """The tag-move steps traced, with the digest each wrote."""
    traced = [
        (span.name, (span.attributes or {}).get("digest")) for span in spans.get_finished_spans()
    ]
    return [(name, digest) for name, digest in traced if name.startswith("move ")]


async def test_settle_puts_latest_back_on_a_higher_release_published_meanwhile(
    registry: RegistryServer, owner: str, spans: InMemorySpanExporter
) -> None:
    async with RegistryClient(registry.host) as client:
        higher = await push_version(client, registry, owner, "v2.5.0")
        this = await push_version(client, registry, owner, "v2.4.0", "2.4", "latest")
        image = worker_plan(registry, owner, "v2.4.0")
        path = repository_path(image.repository)

        latest = await settle(client, path, image, "latest", this)
        line = await settle(client, path, image, "2.4", this)

        assert latest == FloatingTag("latest", False, "put back on 2.5.0, published while this ran")
        assert await digest_at(client, image, "latest") == higher.digest
        assert line is None  # still the highest 2.4 release, and 2.4 holds it
        assert await digest_at(client, image, "2.4") == this.digest
    assert moves_traced(spans) == [
        (f"move {image.reference('latest')} back to 2.5.0", higher.digest)
    ]


async def test_settle_puts_the_line_tag_back_on_a_higher_patch_of_that_line(
    registry: RegistryServer, owner: str
) -> None:
    async with RegistryClient(registry.host) as client:
        await push_version(client, registry, owner, "v2.5.0", "latest")
        patch = await push_version(client, registry, owner, "v2.4.1")
        this = await push_version(client, registry, owner, "v2.4.0", "2.4")
        image = worker_plan(registry, owner, "v2.4.0")

        line = await settle(client, repository_path(image.repository), image, "2.4", this)

        assert line == FloatingTag("2.4", False, "put back on 2.4.1, published while this ran")
        assert await digest_at(client, image, "2.4") == patch.digest


async def test_settle_writes_latest_again_when_an_older_release_overwrote_it(
    registry: RegistryServer, owner: str, spans: InMemorySpanExporter
) -> None:
    async with RegistryClient(registry.host) as client:
        await push_version(client, registry, owner, "v2.3.0", "latest")
        this = await push_version(client, registry, owner, "v2.4.0")
        image = worker_plan(registry, owner, "v2.4.0")

        decision = await settle(client, repository_path(image.repository), image, "latest", this)

        assert decision == FloatingTag(
            "latest", True, "written again: an older release had overwritten it"
        )
        assert await digest_at(client, image, "latest") == this.digest
    assert moves_traced(spans) == [(f"move {image.reference('latest')} again", this.digest)]


async def test_settle_leaves_latest_with_the_higher_release_that_holds_it(
    registry: RegistryServer, owner: str
) -> None:
    async with RegistryClient(registry.host) as client:
        this = await push_version(client, registry, owner, "v2.4.0")
        higher = await push_version(client, registry, owner, "v2.5.0", "latest")
        image = worker_plan(registry, owner, "v2.4.0")

        decision = await settle(client, repository_path(image.repository), image, "latest", this)

        assert decision == FloatingTag(
            "latest", False, "stays: 2.5.0 is higher than 2.4.0 in all versions"
        )
        assert await digest_at(client, image, "latest") == higher.digest


async def test_a_move_a_higher_release_made_stale_is_not_written_and_is_noted(
    registry: RegistryServer, owner: str, spans: InMemorySpanExporter
) -> None:
    image = worker_plan(registry, owner, "v2.4.0")  # planned before 2.5.0 existed
    assert [tag.name for tag in image.floating if tag.moves] == ["2.4", "latest"]
    async with RegistryClient(registry.host) as client:
        this = await push_version(client, registry, owner, "v2.4.0")
        higher = await push_version(client, registry, owner, "v2.5.0", "latest")

        finished = await finish_image(client, image, this.digest)

        assert finished.digest == this.digest
        assert finished.notes == (
            "latest not moved: stays: 2.5.0 is higher than 2.4.0 in all versions"
            " (published while this ran)",
        )
        assert [(tag.name, tag.moves) for tag in finished.image.floating] == [
            ("2.4", True),
            ("latest", False),
        ]
        assert finished.references == [
            f"{image.reference('2.4.0')}@{this.digest}",
            f"{image.reference('2.4')}@{this.digest}",
        ]
        assert await digest_at(client, image, "2.4") == this.digest
        assert await digest_at(client, image, "latest") == higher.digest
    assert moves_traced(spans) == [(f"move {image.reference('2.4')}", this.digest)]


async def test_a_floating_tag_that_stays_does_not_stop_the_next_one_moving(
    registry: RegistryServer, owner: str
) -> None:
    """2.4 holds an image of unknown version (it stays); latest holds 2.3.0 (it moves)."""
    async with RegistryClient(registry.host) as client:
        older = await push_version(client, registry, owner, "v2.3.0", "latest")
        image = worker_plan(registry, owner, "v2.4.0")
        path = repository_path(image.repository)
        await push_release_image(client, path, ["2.4"], image.platforms, {VERSION: "latest"})
        unknown = await client.get_manifest(path, "2.4")  # no version tag names it
        published = PublishedState(
            tags=("2.3.0", "2.4", "latest"),
            holders={
                "2.4": FloatingHolder(unknown.digest, None, "of unknown version"),
                "latest": FloatingHolder(older.digest, Version(2, 3, 0), "2.3.0 shares it"),
            },
        )
        image = worker_plan(registry, owner, "v2.4.0", published)
        assert [(tag.name, tag.moves) for tag in image.floating] == [
            ("2.4", False),
            ("latest", True),
        ]
        this = await push_version(client, registry, owner, "v2.4.0")

        finished = await finish_image(client, image, this.digest)

        assert finished.notes == ()
        assert await digest_at(client, image, "latest") == this.digest
        assert await digest_at(client, image, "2.4") == unknown.digest


class OverwrittenClient(RegistryClient):
    """A registry where an older release writes its image over ``latest`` right after a move."""

    older: Manifest | None = None

    async def put_manifest(
        self, repository: str, reference: str, raw: bytes, media_type: str
    ) -> str:
        digest = await super().put_manifest(repository, reference, raw, media_type)
        if reference == "latest" and self.older is not None:
            older, self.older = self.older, None
            await super().put_manifest(repository, reference, older.raw, older.media_type)
        return digest


async def test_finish_image_writes_latest_again_after_an_older_release_overwrote_it(
    registry: RegistryServer, owner: str
) -> None:
    client = OverwrittenClient(registry.host)
    async with client:
        older = await push_version(client, registry, owner, "v2.3.0")
        this = await push_version(client, registry, owner, "v2.4.0")
        image = worker_plan(registry, owner, "v2.4.0")
        client.older = older

        finished = await finish_image(client, image, this.digest)

        assert client.older is None, "the older release never wrote"
        assert finished.notes == ("latest: written again: an older release had overwritten it",)
        assert finished.image.floating == (
            image.floating[0],
            FloatingTag("latest", True, "written again: an older release had overwritten it"),
        )
        assert await digest_at(client, image, "latest") == this.digest


@pytest.mark.parametrize(
    "published",
    ["ghcr.io/o/qm-nmr-calc-api:2.4.0", "ghcr.io/o/qm-nmr-calc-api:2.4.0@md5:0123"],
)
def test_a_reference_without_a_sha256_digest_is_refused_naming_it(published: str) -> None:
    with pytest.raises(ValueError, match="expected a reference ending in @sha256") as refused:
        digest_of(published)
    assert str(refused.value) == f"expected a reference ending in @sha256:..., got {published!r}"


async def test_the_index_keeps_its_own_annotations_beside_the_release_ones(
    registry: RegistryServer, owner: str, spans: InMemorySpanExporter
) -> None:
    plan = make_plan("v2.4.0", owner=owner, registry=registry.host)
    api = plan.image("api")
    path = repository_path(api.repository)
    kept = {"org.example.built-by": "engine"}
    async with RegistryClient(registry.host) as client:
        pushed = await push_release_image(
            client, path, ["2.4.0"], api.platforms, api.labels, annotations=kept
        )

        final = await version_manifest(client, path, api, pushed)

        assert final.document["annotations"] == {**kept, **api.index_annotations}
        assert (await client.get_manifest(path, "2.4.0")).digest == final.digest
    traced = [(span.name, dict(span.attributes or {})) for span in spans.get_finished_spans()]
    assert traced == [(f"annotate {api.reference('2.4.0')}", {"digest": pushed})]


async def test_the_release_annotations_win_over_stale_ones_on_an_index_being_completed(
    registry: RegistryServer, owner: str
) -> None:
    """An index left by an interrupted run of another commit carries its own values: replaced."""
    plan = make_plan("v2.4.0", owner=owner, registry=registry.host)
    api = plan.image("api")
    path = repository_path(api.repository)
    stale = {key: f"stale {key}" for key in api.index_annotations}
    async with RegistryClient(registry.host) as client:
        pushed = await push_release_image(
            client, path, ["2.4.0"], api.platforms, api.labels, annotations=stale
        )

        final = await version_manifest(client, path, api, pushed)

    assert final.document["annotations"] == api.index_annotations


async def test_the_index_annotated_is_the_one_pushed_even_if_the_tag_moved_since(
    registry: RegistryServer, owner: str
) -> None:
    """Read by the pushed digest: another push under the version tag is not what gets annotated."""
    plan = make_plan("v2.4.0", owner=owner, registry=registry.host)
    api = plan.image("api")
    path = repository_path(api.repository)
    async with RegistryClient(registry.host) as client:
        pushed = await push_release_image(client, path, ["2.4.0"], api.platforms, api.labels)
        other_labels = {**api.labels, "org.opencontainers.image.revision": "0" * 40}
        intruder = await push_release_image(client, path, ["2.4.0"], api.platforms, other_labels)
        assert intruder != pushed
        ours = (await client.get_manifest(path, pushed)).document

        final = await version_manifest(client, path, api, pushed)

    assert final.document["manifests"] == ours["manifests"]
    assert final.document == {**ours, "annotations": api.index_annotations}

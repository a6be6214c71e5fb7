"""Each race ``finishing`` can lose, staged one step at a time on a REAL registry.

``test_concurrent_releases.py`` races whole releases and checks where the floating tags end;
it takes minutes, so mutation testing leaves it out. Here each interleaving it can produce is
set up by hand in the session's ``docker-registry``, and ``finish_image``/``settle`` are asked
once: the decision, its reason, and the tag's digest afterwards are all checked.
"""

from __future__ import annotations

import pytest
from oci_images import push_release_image
from pipeline.finishing import finish_image, highest_in_scope, settle
from pipeline.plan import ImagePlan, make_plan
from pipeline.references import repository_path
from pipeline.registry import Manifest, RegistryClient
from pipeline.versions import FloatingTag
from registry_server import RegistryServer
from semver import Version

pytestmark = pytest.mark.anyio

PUBLISHED = [Version.parse(v) for v in ("1.9.9", "2.4.0", "2.4.3", "2.4.9-rc.1", "2.5.0")]
PUBLISHED += [Version.parse("3.0.0-rc.1")]


def test_latest_is_put_back_on_the_highest_stable_version_of_any_line() -> None:
    assert highest_in_scope(PUBLISHED, Version(2, 4, 0), "latest") == Version(2, 5, 0)


def test_x_y_is_put_back_on_the_highest_stable_version_of_its_line_only() -> None:
    assert highest_in_scope(PUBLISHED, Version(2, 4, 0), "2.4") == Version(2, 4, 3)


def test_a_line_with_only_prereleases_above_this_version_keeps_this_version() -> None:
    published = [Version(2, 4, 0), Version.parse("2.4.1-rc.1")]
    assert highest_in_scope(published, Version(2, 4, 0), "2.4") == Version(2, 4, 0)


def worker_plan(registry: RegistryServer, owner: str, tag: str) -> ImagePlan:
    """The worker image (one platform) of a first release of ``tag`` under ``owner``."""
    plan = make_plan(tag, owner=owner, registry=registry.host)
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


async def test_settle_puts_latest_back_on_a_higher_release_published_meanwhile(
    registry: RegistryServer, owner: str
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


async def test_settle_writes_latest_again_when_an_older_release_overwrote_it(
    registry: RegistryServer, owner: str
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
    registry: RegistryServer, owner: str
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

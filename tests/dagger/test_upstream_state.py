"""The first release through this pipeline meets the registry state upstream's workflow left.

Upstream's old workflow moved ``latest`` on every tag and published ``v2.8`` (not SemVer) only
as ``latest``, labelled ``latest``: ``latest`` holds an image no version tag names. The real
``Pipeline`` (stand-in engine, real registry) must not move it silently, must say why in the
plan, move it on ``--take-over-floating``, and verify what it did either way.
"""

from __future__ import annotations

import dagger
import pytest
from dagger import dag
from pipeline.main import Pipeline
from pipeline.oci.client import RegistryClient
from pipeline.publishing import references_of
from pipeline.rules.versions import ReleaseInputError

from tests.support.oci_images import push_release_image
from tests.support.registry_server import RegistryServer
from tests.support.standin import REVISION, StandInEngine, signing_flags

pytestmark = pytest.mark.anyio

TOKEN_ID = "secret-upstream-state"
IMAGES = {"api": ["linux/amd64", "linux/arm64"], "worker": ["linux/amd64"]}
VERSION = "org.opencontainers.image.version"


@pytest.fixture
def engine(registry: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> StandInEngine:
    """A stand-in engine that pushes into the test registry."""
    standin = StandInEngine(registry.host, secrets={TOKEN_ID: "token"})
    standin.install(monkeypatch)
    return standin


async def upstream_state(registry: RegistryServer, owner: str) -> dict[str, str]:
    """Publish as upstream's workflow did: 2.6.5 (with 2.6 and latest), then v2.8 as latest.

    Returns the digest ``latest`` holds in each repository (upstream's v2.8 image).
    """
    holders = {}
    async with RegistryClient(registry.host) as client:
        for name, platforms in IMAGES.items():
            path = f"{owner}/qm-nmr-calc-{name}"
            await push_release_image(
                client, path, ["2.6.5", "2.6", "latest"], platforms, {VERSION: "2.6.5"}
            )
            holders[name] = await push_release_image(
                client, path, ["latest"], platforms, {VERSION: "latest", "v": "2.8"}
            )
    return holders


def pipeline_for(registry: RegistryServer, owner: str) -> Pipeline:
    """``dagger call --registry ... --owner ...``."""
    return Pipeline(
        source=dag.directory(), build_files=dag.directory(), registry=registry.host, owner=owner
    )


async def publish(registry: RegistryServer, owner: str, tag: str, **options: bool) -> list[str]:
    """``dagger call publish --tag TAG ...``: the tags it published, ``name:tag``."""
    secret = dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))
    output = await pipeline_for(registry, owner).publish(
        tag, username="bot", password=secret, **signing_flags(), **options
    )
    return [line.split("@")[0].rsplit("/", 1)[1] for line in references_of(output)]


async def latest_digests(registry: RegistryServer, owner: str) -> dict[str, str]:
    """The digest ``latest`` holds in each repository."""
    async with RegistryClient(registry.host) as client:
        return {
            name: (await client.get_manifest(f"{owner}/qm-nmr-calc-{name}", "latest")).digest
            for name in IMAGES
        }


async def test_latest_of_unknown_version_stays_and_the_plan_says_why(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    upstream_latest = await upstream_state(registry, owner)

    plan = await pipeline_for(registry, owner).plan("v2.9.0")
    published = await publish(registry, owner, "v2.9.0")

    assert published == [f"qm-nmr-calc-{name}:{tag}" for name in IMAGES for tag in ("2.9.0", "2.9")]
    assert await latest_digests(registry, owner) == upstream_latest
    assert plan.count("latest      stays: it points at ") == 2
    assert plan.count("of unknown version") == 2
    assert "--take-over-floating" in plan
    report = await pipeline_for(registry, owner).verify("v2.9.0")
    assert report.count(": OK ") == 2
    # What a user reads: the tag that stays, and why, before the report.
    stays = report.splitlines()[:2]
    for line, name in zip(stays, IMAGES, strict=True):
        short = upstream_latest[name].removeprefix("sha256:")[:12]
        assert line.startswith(f"{registry.host}/{owner}/qm-nmr-calc-{name}:latest: stays: ")
        assert f"it points at {short}, of unknown version" in line


async def test_take_over_floating_moves_it_and_then_it_is_known(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    await upstream_state(registry, owner)

    taken = await publish(registry, owner, "v2.9.0", take_over_floating=True)
    older = await publish(registry, owner, "v2.7.0")

    assert taken == [
        f"qm-nmr-calc-{name}:{tag}" for name in IMAGES for tag in ("2.9.0", "2.9", "latest")
    ]
    # latest now holds 2.9.0, which its version tag names: an older release leaves it there.
    assert older == [f"qm-nmr-calc-{name}:{tag}" for name in IMAGES for tag in ("2.7.0", "2.7")]
    report = await pipeline_for(registry, owner).verify("v2.9.0")
    assert "latest" not in report  # no mismatch names it


async def test_known_holders_move_as_always(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    async with RegistryClient(registry.host) as client:
        for name, platforms in IMAGES.items():
            await push_release_image(
                client,
                f"{owner}/qm-nmr-calc-{name}",
                ["2.6.5", "2.6", "latest"],
                platforms,
                {VERSION: "2.6.5"},
            )

    published = await publish(registry, owner, "v2.6.6")

    assert published == [
        f"qm-nmr-calc-{name}:{tag}" for name in IMAGES for tag in ("2.6.6", "2.6", "latest")
    ]


async def test_upstreams_build_of_the_same_commit_is_not_taken_for_this_release(
    registry: RegistryServer, owner: str, engine: StandInEngine
) -> None:
    """Upstream's workflow labelled 2.4.0 with the same version and revision, but ``created``
    is the wall clock of its run: another build, so the release is refused, not "completed"."""
    upstream_labels = {
        VERSION: "2.4.0",
        "org.opencontainers.image.revision": REVISION,
        "org.opencontainers.image.created": "2026-02-04T07:31:12.345Z",
    }
    async with RegistryClient(registry.host) as client:
        for name, platforms in IMAGES.items():
            path = f"{owner}/qm-nmr-calc-{name}"
            await push_release_image(client, path, ["2.4.0", "latest"], platforms, upstream_labels)

    with pytest.raises(ReleaseInputError, match="already published") as refusal:
        await publish(registry, owner, "v2.4.0")

    assert "created 2026-02-04T07:31:12.345Z" in str(refusal.value)
    assert engine.pushes == []

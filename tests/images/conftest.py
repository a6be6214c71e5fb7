"""Fixtures of the image tests: a private BuildKit daemon, stand-in inputs, built images.

Every test here is marked ``images``. Where the machine cannot run them (not root, no
``docker.io``, ``mmdebstrap``, QEMU...) they are skipped with the reason; with
``REQUIRE_IMAGES=1`` (CI on a machine that has everything) the same reason fails them instead.

The daemon, its data and the arm64 emulation it registered are cleaned up at the end of the
session. Stand-in root filesystems are kept between sessions only when ``IMAGE_TEST_CACHE`` names
a directory (a developer's shortcut); by default they are made anew in a temporary directory.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.images import builds, daemon, standins
from tests.images.engine_builds import RealBuilder
from tests.images.environment import ImageEnvironment, image_environment
from tests.images.rehearsal import SNAPSHOTS, Release, publish
from tests.support.registry_server import RegistryServer

REQUIRE_VARIABLE = "REQUIRE_IMAGES"
CACHE_VARIABLE = "IMAGE_TEST_CACHE"
HERE = Path(__file__).resolve().parent

BuildImage = Callable[[str, str, str], builds.Build]
"""``build_image(dockerfile, platform, upstream_tag)``: a finished build (made once)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``images`` (one xdist worker runs them all:
    ``tests/support/scheduling.py``)."""
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.images)


@pytest.fixture(scope="session")
def image_prerequisites() -> None:
    """Skip (or, with REQUIRE_IMAGES=1, fail) when this machine cannot build images."""
    missing = daemon.missing_prerequisites()
    if not missing:
        return
    reason = "image tests need: " + "; ".join(missing)
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{REQUIRE_VARIABLE}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def image_cache(image_prerequisites: None) -> Iterator[Path]:
    """Where stand-in root filesystems and artifacts are made (kept only if asked to)."""
    if configured := os.environ.get(CACHE_VARIABLE):
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="image-tests-cache-") as directory:
        yield Path(directory)


@pytest.fixture(scope="session")
def environment(image_cache: Path) -> Iterator[ImageEnvironment]:
    """A private dockerd with arm64 emulation, and the stand-ins, for the whole session."""
    print("\nImage tests use these stand-ins for what cannot be had here:")
    print(standins.describe_standins())
    with image_environment(image_cache) as environment:
        yield environment


@pytest.fixture(scope="session")
def docker(environment: ImageEnvironment) -> daemon.Docker:
    """The private daemon's client."""
    return environment.docker


@pytest.fixture(scope="session")
def bridge_network(docker: daemon.Docker) -> Iterator[str]:
    """A bridge network for containers whose ports are published on loopback; removed after."""
    name = "image-tests-" + secrets.token_hex(4)
    docker.run("network", "create", "--driver=bridge", name)
    yield name
    docker.run("network", "rm", name, check=False)


@pytest.fixture(scope="session")
def build_args(environment: ImageEnvironment) -> dict[str, str]:
    """Every build argument that points a build at a stand-in instead of the real input."""
    return environment.build_args


@pytest.fixture(scope="session")
def contexts(
    environment: ImageEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """``context(upstream_tag)``: the build context of that tag (prepared once)."""
    prepared: dict[str, Path] = {}

    def context(tag: str) -> Path:
        if tag not in prepared:
            directory = tmp_path_factory.mktemp(f"context-{tag}")
            prepared[tag] = builds.prepare_context(
                tag, directory, replaced=environment.replaced_files
            )
        return prepared[tag]

    return context


@pytest.fixture(scope="session")
def build_image(
    docker: daemon.Docker, build_args: dict[str, str], contexts: Callable[[str], Path]
) -> BuildImage:
    """Build one variant once per session; later calls return the same build."""
    done: dict[tuple[str, str, str], builds.Build] = {}

    def build(dockerfile: str, platform: str, tag: str) -> builds.Build:
        key = (dockerfile, platform, tag)
        if key not in done:
            name = f"image-tests/{dockerfile.lower().replace('.', '-')}:{tag}-{platform[6:]}"
            done[key] = builds.build(docker, contexts(tag), dockerfile, platform, name, build_args)
        return done[key]

    return build


@pytest.fixture
def volume(docker: daemon.Docker) -> Iterator[str]:
    """A new named Docker volume, removed afterwards."""
    name = "image-tests-" + secrets.token_hex(4)
    docker.run("volume", "create", name)
    yield name
    docker.run("volume", "rm", "--force", name, check=False)


@pytest.fixture(scope="session")
def builder(environment: ImageEnvironment, tmp_path_factory: pytest.TempPathFactory) -> RealBuilder:
    """Real builds and pushes for the stand-in engine, shared by every rehearsed release."""
    return RealBuilder(
        docker=environment.docker,
        build_args=environment.build_args,
        workdir=tmp_path_factory.mktemp("real-engine"),
        snapshots=SNAPSHOTS,
        replaced=environment.replaced_files,
    )


@pytest.fixture(scope="session")
def release(builder: RealBuilder) -> Iterator[Release]:
    """v2.4.0 (upstream's v2.4.0), published once into an empty loopback registry."""
    with RegistryServer() as registry:
        yield publish(builder, registry.host, "v2.4.0")


@pytest.fixture(scope="session")
def release_v28(builder: RealBuilder) -> Iterator[Release]:
    """v2.8.0 (upstream's v2.8), published once into another empty loopback registry."""
    with RegistryServer() as registry:
        yield publish(builder, registry.host, "v2.8.0")


@pytest.fixture(scope="session")
def caddy_image(environment: ImageEnvironment) -> str:
    """The Caddy stand-in, where compose stacks pull it from."""
    return standins.push_caddy_standin(environment.cache, environment.standin_registry)

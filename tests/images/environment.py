"""Everything a real image build needs on this machine, set up and torn down in one place.

``image_environment`` starts QEMU's arm64 emulation, a private dockerd (or uses the running one
``IMAGE_TESTS_DOCKER_HOST`` names), a loopback registry with the base-image stand-ins and a
loopback file server with the download stand-ins, and yields the daemon's client and the build
arguments that point the Dockerfiles at those stand-ins. The image tests, the real-build
stand-in engine and ``bench/image_build.py`` all use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.images import artifacts, standins
from tests.images.daemon import Docker, arm64_emulation, docker_daemon
from tests.support.registry_server import RegistryServer


@dataclass(frozen=True)
class ImageEnvironment:
    """A running daemon and the build arguments that route every external input to a stand-in."""

    docker: Docker
    build_args: dict[str, str]
    cache: Path
    standin_registry: str
    """``host:port`` of the registry the stand-in base images are pulled from."""


def download_build_args(directory: Path, base_url: str) -> dict[str, str]:
    """The worker's download ARGs for the stand-ins in ``directory``, served at ``base_url``."""
    xtb = artifacts.xtb_standin(directory)
    crest = artifacts.crest_fake(directory)
    _python, downloads_json = artifacts.python_standin(directory, base_url)
    return {
        "XTB_URL": f"{base_url}/{xtb.name}",
        "XTB_SHA256": artifacts.sha256_of(xtb),
        "CREST_URL": f"{base_url}/{crest.name}",
        "CREST_SHA256": artifacts.sha256_of(crest),
        "UV_PYTHON_DOWNLOADS_JSON_URL": f"{base_url}/{downloads_json.name}",
    }


@contextmanager
def image_environment(cache: Path) -> Iterator[ImageEnvironment]:
    """Emulation, daemon, stand-in registry and file server; all stopped afterwards."""
    downloads = cache / "artifacts"
    downloads.mkdir(parents=True, exist_ok=True)
    with (
        arm64_emulation(),
        docker_daemon() as docker,
        RegistryServer() as registry,
        artifacts.serve_files(downloads) as base_url,
    ):
        build_args = standins.push_base_standins(cache, registry.host)
        build_args |= download_build_args(downloads, base_url)
        yield ImageEnvironment(
            docker=docker, build_args=build_args, cache=cache, standin_registry=registry.host
        )

"""Everything a real image build needs on this machine, set up and torn down in one place.

``image_environment`` starts QEMU's arm64 emulation, a private dockerd (or uses the running one
``IMAGE_TESTS_DOCKER_HOST`` names), a loopback registry with the base-image stand-ins and a
loopback conda channel standing in for conda-forge, locks the worker's stack from that channel
with the real lock maker, and yields the daemon's client, the build arguments that point the
Dockerfiles at the stand-ins and the lock. The image tests, the real-build stand-in engine and
``bench/image_build.py`` all use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.main import WORKER_LOCK

from tests.images import artifacts, conda_standins, standins
from tests.images.daemon import Docker, arm64_emulation, docker_daemon
from tests.support.registry_server import RegistryServer
from tests.support.worker_lock import make_lock


@dataclass(frozen=True)
class ImageEnvironment:
    """A running daemon and the build arguments that route every external input to a stand-in."""

    docker: Docker
    build_args: dict[str, str]
    cache: Path
    standin_registry: str
    """``host:port`` of the registry the stand-in base images are pulled from."""
    worker_lock: Path
    """The worker's lock, made from the stand-in channel (it replaces worker/conda.lock)."""

    @property
    def replaced_files(self) -> dict[str, Path]:
        """Files of this repository that the builds take from here instead."""
        return {WORKER_LOCK: self.worker_lock}


@contextmanager
def image_environment(cache: Path) -> Iterator[ImageEnvironment]:
    """Emulation, daemon, stand-in registry and file server; all stopped afterwards."""
    channel = conda_standins.standin_channel(cache)
    with (
        arm64_emulation(),
        docker_daemon() as docker,
        RegistryServer() as registry,
        artifacts.serve_files(channel) as channel_url,
    ):
        build_args = standins.push_base_standins(cache, registry.host)
        lock = make_lock(channel_url, conda_standins.STANDIN_SPECS, cache / "conda.lock")
        yield ImageEnvironment(
            docker=docker,
            build_args=build_args,
            cache=cache,
            standin_registry=registry.host,
            worker_lock=lock,
        )

"""A release rehearsed with real images: ``Pipeline.publish`` through the real-build engine."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import dagger
import pytest
from dagger import dag
from pipeline.attest.storage import FALLBACK_TAG_PREFIX
from pipeline.main import Pipeline
from pipeline.oci.client import RegistryClient
from pipeline.publishing import references_of

from tests.images import daemon
from tests.images.engine_builds import RealBuilder
from tests.images.environment import ImageEnvironment, image_environment
from tests.support.registry_server import RegistryServer
from tests.support.standin import StandInEngine, signing_flags

OWNER = "steinbeck"
SOURCE = f"https://github.com/{OWNER}/qm-nmr-calc"
TOKEN_ID = "secret-release-token"
TOKEN = "ghp_realBuildStandInTokenNeverPrinted0123"
SNAPSHOTS = {"v2.4.0": "v2.4.0", "v2.3.7": "v2.4.0", "v2.8.0": "v2.8"}
"""Release tag -> the upstream snapshot built for it. Upstream has no v2.3.7 (a backport built
from the same sources) and tagged v2.8 without a patch number (released here as v2.8.0)."""


@dataclass(frozen=True)
class Release:
    """A release the rehearsal published: registry, references, engine and image digests."""

    registry: str
    version: str
    references: list[str]
    digests: dict[str, str]
    engine: StandInEngine

    def reference(self, image: str) -> str:
        """Where a user pulls ``image`` of this release, by its version tag."""
        return f"{self.registry}/{OWNER}/qm-nmr-calc-{image}:{self.version}"


def publish(builder: RealBuilder, registry: str, tag: str) -> Release:
    """``dagger call publish --tag TAG --username bot --password env:TOKEN``, built for real."""
    engine = StandInEngine(registry, secrets={TOKEN_ID: TOKEN}, real=builder)

    async def call() -> str:
        pipeline = Pipeline(
            source=dag.directory(), build_files=dag.directory(), registry=registry, owner=OWNER
        )
        secret = dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))
        return await pipeline.publish(tag, username="bot", password=secret, **signing_flags())

    with pytest.MonkeyPatch.context() as patch:
        engine.install(patch)
        output = anyio.run(call)
    version = tag.removeprefix("v")
    digests = {
        image: tag_digests(registry, f"{OWNER}/qm-nmr-calc-{image}")[version]
        for image in ("api", "worker")
    }
    return Release(registry, version, references_of(output), digests, engine)


def release_tags(registry: str, repository: str) -> dict[str, str]:
    """The tags of ``repository`` a user pulls, and their digests: the attestations' left out."""
    return {
        tag: digest
        for tag, digest in tag_digests(registry, repository).items()
        if not tag.startswith(FALLBACK_TAG_PREFIX)
    }


def tag_digests(registry: str, repository: str) -> dict[str, str]:
    """Every tag of ``repository`` and the digest it resolves to."""

    async def read() -> dict[str, str]:
        async with RegistryClient(registry) as client:
            return {
                tag: (await client.get_manifest(repository, tag)).digest
                for tag in await client.list_tags(repository)
            }

    return anyio.run(read)


@dataclass(frozen=True)
class Rehearsal:
    """What a benchmark needs to rehearse releases: daemon, real builder, empty registry."""

    environment: ImageEnvironment
    builder: RealBuilder
    registry: str


@contextmanager
def rehearsal(scratch: Path) -> Iterator[Rehearsal]:
    """Everything for a rehearsed release, under ``scratch``; exits 1 if the machine cannot.

    ``IMAGE_TEST_CACHE=DIR`` keeps the stand-in root filesystems between runs.
    """
    if missing := daemon.missing_prerequisites():
        print("cannot build images here: " + "; ".join(missing), file=sys.stderr)
        raise SystemExit(1)
    cache = Path(os.environ.get("IMAGE_TEST_CACHE") or scratch / "cache")
    with image_environment(cache) as environment, RegistryServer() as registry:
        builder = RealBuilder(
            docker=environment.docker,
            build_args=environment.build_args,
            workdir=scratch / "work",
            snapshots=SNAPSHOTS,
            replaced=environment.replaced_files,
        )
        yield Rehearsal(environment, builder, registry.host)

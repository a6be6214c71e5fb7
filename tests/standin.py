"""A stand-in for the Dagger engine, for tests on machines without one.

The real SDK objects record every call as a chain of selections; only a leaf (``sync``,
``publish``, ``plaintext``...) reaches ``Context.execute``, the one method replaced here. The
stand-in answers those leaves from the recorded chains: a build "succeeds" after a delay (or
fails, for chosen platforms), and a publish pushes a small synthetic image, carrying the
platforms and labels recorded in its variant chains, into a REAL registry.

Given a ``real`` builder (``tests/images/engine_builds.py``, where a BuildKit daemon runs), the
same leaves are answered with real work instead: every variant is built by ``docker build`` from
the context its chain describes, and a publish pushes those images as the engine does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import anyio
import dagger
import pytest
from dagger._exceptions import QueryErrorValue
from dagger.client._core import Context, Field
from oci_images import push_image
from pipeline.registry import RegistryClient

if TYPE_CHECKING:
    from images.engine_builds import RealBuilder

REVISION = "0123456789abcdef0123456789abcdef01234567"
CREATED = "2026-11-20T15:03:00+01:00"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Variant:
    """What a recorded container chain says about one image variant."""

    dockerfile: str
    platform: str
    labels: Mapping[str, str]
    build_args: Mapping[str, str]
    image: str = ""
    """The local image a real build made ("" for a synthetic one)."""


@dataclass
class StandInEngine:
    """Answers the SDK's leaf queries; pushes real images into ``registry`` (host:port)."""

    registry: str
    build_seconds: float = 0.0
    failing_platforms: frozenset[str] = frozenset()
    app_sources: bool = False
    revision: str = REVISION
    created: str = CREATED
    secrets: Mapping[str, str] = field(default_factory=dict)
    real: RealBuilder | None = None
    queries: list[list[Field]] = field(default_factory=list)
    builds: list[Variant] = field(default_factory=list)
    pushes: list[tuple[str, list[Variant]]] = field(default_factory=list)
    _ids: dict[str, list[Field]] = field(default_factory=dict)
    _counter: Iterator[int] = field(default_factory=itertools.count)
    _built: dict[str, Variant] = field(default_factory=dict)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Route every SDK query of this test to the stand-in."""
        engine = self

        async def execute(ctx: Context, return_type: Any = None) -> Any:
            return await engine.execute(list(ctx.selections))

        monkeypatch.setattr(Context, "execute", execute)

    def expand(self, chain: list[Field]) -> list[Field]:
        """A chain with a leading ``node(id:)`` replaced by the chain that id stands for."""
        if chain and chain[0].type_name == "Query" and chain[0].name == "node":
            return self.expand(self._ids[chain[0].args["id"]]) + chain[1:]
        return chain

    def new_id(self, chain: list[Field]) -> str:
        """A fresh object id standing for ``chain``."""
        object_id = f"standin-{next(self._counter)}"
        self._ids[object_id] = chain
        return object_id

    async def execute(self, selections: list[Field]) -> Any:
        """Answer one leaf query."""
        chain = self.expand(selections)
        self.queries.append(chain)
        leaf, parent = chain[-1], chain[:-1]
        handlers: dict[str, Callable[[Field, list[Field]], Any]] = {
            "sync": self._sync,
            "id": lambda _leaf, chain: self.new_id(chain),
            "exists": lambda _leaf, _chain: self.app_sources,
            "commit": self._commit,
            "stdout": self._stdout,
            "plaintext": self._plaintext,
            "publish": self._publish,
            # A service (rehearse's throwaway registry) is the test registry itself.
            "start": lambda _leaf, chain: self.new_id(chain),
            "stop": lambda _leaf, chain: self.new_id(chain),
            "endpoint": lambda _leaf, _chain: self.registry,
        }
        if leaf.name not in handlers:
            raise NotImplementedError(f"the stand-in engine does not answer {leaf.name!r}")
        result = handlers[leaf.name](leaf, parent)
        return await result if hasattr(result, "__await__") else result

    def describe(self, chain: list[Field]) -> Variant:
        """The Dockerfile, platform, labels and build args recorded in a container chain."""
        chain = self.expand(chain)
        builds = [step for step in chain if step.name == "dockerBuild"]
        if len(builds) != 1:
            raise AssertionError(f"expected one dockerBuild in the chain, found {len(builds)}")
        build = builds[0].args
        return Variant(
            dockerfile=build.get("dockerfile", "Dockerfile"),
            platform=str(build["platform"]),
            labels={
                step.args["name"]: step.args["value"] for step in chain if step.name == "withLabel"
            },
            build_args={arg["name"]: arg["value"] for arg in build.get("buildArgs", [])},
        )

    async def _build(self, chain: list[Field]) -> Variant:
        """Build a variant once (later builds of the same chain come from cache)."""
        variant = self.describe(chain)
        key = repr(variant)
        if key not in self._built:
            await anyio.sleep(self.build_seconds)
            if variant.platform in self.failing_platforms:
                raise dagger.QueryError(
                    [QueryErrorValue(f"process did not complete: {variant.platform}")],
                    SimpleNamespace(document=None),  # type: ignore[arg-type]
                )
            if self.real is not None:
                name = f"{next(self._counter)}-{variant.platform.replace('/', '-')}"
                image = await anyio.to_thread.run_sync(
                    self.real.build, self.expand(chain), variant.labels, name
                )
                variant = replace(variant, image=image)
            self.builds.append(variant)
            self._built[key] = variant
        return self._built[key]

    def _commit(self, _leaf: Field, chain: list[Field]) -> str:
        """``GitRef.commit``: the fixed revision, or the real snapshot's commit."""
        return self.real.commit(chain) if self.real is not None else self.revision

    def _stdout(self, _leaf: Field, chain: list[Field]) -> str:
        """``stdout`` of the commit-time command: fixed, or the real snapshot's commit time."""
        return self.real.commit_time(chain) if self.real is not None else self.created + "\n"

    async def _sync(self, _leaf: Field, chain: list[Field]) -> str:
        """``Container.sync``: build, then return an id for the built container."""
        await self._build(chain)
        return self.new_id(chain)

    def _plaintext(self, _leaf: Field, chain: list[Field]) -> str:
        """``Secret.plaintext``: the value registered for the secret's id."""
        loaded = chain[0]
        if loaded.name != "loadSecretFromID":
            raise AssertionError(f"secret not loaded by id: {loaded.name}")
        return self.secrets[str(loaded.args["id"])]

    async def _publish(self, leaf: Field, _chain: list[Field]) -> str:
        """``Container.publish``: push a real image for the variants into the registry."""
        address = leaf.args["address"]
        containers = leaf.args.get("platformVariants", [])
        variants = [await self._build(list(container._ctx.selections)) for container in containers]
        self.pushes.append((address, variants))
        host_path, tag = address.rsplit(":", 1)
        host, path = host_path.split("/", 1)
        if host != self.registry:
            raise AssertionError(f"the stand-in pushes only to {self.registry}, not {host}")
        if self.real is not None:
            images = [variant.image for variant in variants]
            digest = await anyio.to_thread.run_sync(self.real.push, host, path, tag, images)
            return f"{address}@{digest}"
        async with RegistryClient(host) as client:
            digest = await push_variants(client, path, tag, variants)
        return f"{address}@{digest}"


async def push_variants(
    client: RegistryClient, repository: str, tag: str, variants: list[Variant]
) -> str:
    """Push one manifest (one variant) or an OCI index (several) under ``tag``.

    Variants are pushed concurrently, as an engine pushes them.
    """
    manifests: list[dict[str, Any]] = [{} for _ in variants]

    async def push_one(position: int, variant: Variant) -> None:
        digest, size, media_type = await push_image(
            client, repository, platform=variant.platform, labels=variant.labels
        )
        os_name, architecture = variant.platform.split("/")[:2]
        manifests[position] = {
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "platform": {"architecture": architecture, "os": os_name},
        }

    async with anyio.create_task_group() as group:
        for position, variant in enumerate(variants):
            group.start_soon(push_one, position, variant)
    if len(manifests) == 1:
        only = manifests[0]
        manifest = await client.get_manifest(repository, str(only["digest"]))
        return await client.put_manifest(repository, tag, manifest.raw, manifest.media_type)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    raw = json.dumps(index, separators=(",", ":"), sort_keys=True).encode()
    return await client.put_manifest(repository, tag, raw, OCI_INDEX)


def secret_id(plaintext: str) -> str:
    """An id for a test secret; the stand-in maps it back to ``plaintext``."""
    return "secret-" + hashlib.sha256(plaintext.encode()).hexdigest()[:12]

"""A stand-in for the Dagger engine, for tests on machines without one.

The real SDK objects record every call as a chain of selections; only a leaf (``sync``,
``publish``, ``plaintext``...) reaches ``Context.execute``, the one method replaced here. The
stand-in answers those leaves from the recorded chains: a build "succeeds" after a delay (or
fails, for chosen platforms), and a publish pushes a small synthetic image, carrying the
platforms and labels recorded in its variant chains, into a REAL registry.

Where the v0.21 engine's behaviour is known (``shared/reference/dagger-0.21.md``) the stand-in
does the same, and refuses what it cannot answer faithfully:
- a publish goes over plain HTTP only to ``localhost`` or a loopback IP; with ``registry_service``
  the reference's host is aliased to that service, so only ``localhost:PORT`` reaches it;
- it pushes with the credentials ``with_registry_auth`` gave for the reference's host, or none;
- a non-empty receiver is one more platform variant, and two variants of one platform fail;
- ``GitRepository.tag`` fails for a tag the upstream repository lacks;
- ``commit`` and ``stdout`` come from a real git repository standing for upstream (one commit,
  made at ``CREATED``): ``stdout`` runs the container's one ``git`` command in it, in the
  mounted tree (with its ``.git``) as working directory, and prints what git prints.

Given a ``real`` builder (``tests/images/engine_builds.py``, where a BuildKit daemon runs), the
same leaves are answered with real work instead: every variant is built by ``docker build`` from
the context its chain describes, and a publish pushes those images as the engine does.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import json
import os
import socket
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache, partial
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import anyio
import dagger
import pytest
from dagger._exceptions import QueryErrorValue
from dagger.client._core import Context, Field
from oci_images import push_image
from pipeline.oci.client import RegistryClient, RegistryError
from pipeline.steps.concurrency import ConcurrentStepsError, gather

if TYPE_CHECKING:
    from images.engine_builds import RealBuilder

CREATED = "2026-11-20T15:03:00+01:00"
"""When the stand-in upstream's one commit was made, as ``git show --format=%cI`` prints it."""
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
UPSTREAM_SNAPSHOT = "shared/fixtures/upstream/qm-nmr-calc-v2.4.0.tar.gz"
"""Beside the repository, as CI lays it out."""
SERVICE_DOMAIN = "standin.internal"
WORKER_LOCK = "worker/conda.lock"
"""Service endpoints are names in this domain (as the engine's session domain), resolved to
127.0.0.1 for the test process only: a name, never ``localhost``, as on the engine."""


class StandInUpstream:
    """A real git repository standing for upstream: every tag it has resolves to its head.

    Made with a fixed author, time and message, so its first commit is always ``REVISION``.
    Its directory is removed with the object (or when the test process exits).
    """

    def __init__(self) -> None:
        self._checkout = tempfile.TemporaryDirectory(prefix="standin-upstream-")
        self.git("init", "-q", "-b", "main").check_returncode()
        self.move_tags(CREATED)

    def git(self, *args: str, at: str = CREATED) -> subprocess.CompletedProcess[str]:
        """Run git in the checkout, isolated from any user or system config."""
        identity = {"NAME": "Stand-in upstream", "EMAIL": "upstream@standin.invalid", "DATE": at}
        environment = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
        for role in ("AUTHOR", "COMMITTER"):
            environment.update({f"GIT_{role}_{key}": value for key, value in identity.items()})
        return subprocess.run(
            ["git", *args],
            cwd=self._checkout.name,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )

    def move_tags(self, committed: str) -> None:
        """Commit anew at time ``committed``: every tag now resolves to another commit.

        The commit changes a file, as a release does: ``git show`` without ``-s`` prints a diff.
        """
        (Path(self._checkout.name) / "RELEASED").write_text(committed + "\n")
        self.git("add", "RELEASED").check_returncode()
        self.git("commit", "-q", "-m", "release", at=committed).check_returncode()

    def head(self) -> str:
        """The commit every tag resolves to."""
        return self.git("rev-parse", "HEAD").stdout.strip()


REVISION = StandInUpstream().head()
"""The stand-in upstream's first commit."""


def engine_error(message: str) -> dagger.QueryError:
    """The error an engine query fails with."""
    return dagger.QueryError(
        [QueryErrorValue(message)],
        SimpleNamespace(document=None),  # type: ignore[arg-type]
    )


@cache
def repository_root() -> Path:
    """The git work tree these tests belong to.

    Asked of git rather than derived from this file's path: mutation testing runs a copy of
    ``tests/`` from ``build/mutmut/<group>/mutants/``, inside the same work tree.
    """
    toplevel = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(toplevel.stdout.strip())


@cache
def repository_files() -> frozenset[str]:
    """This repository's files, as ``DefaultPath("/")`` gives them to the module."""
    listing = subprocess.run(
        ["git", "ls-files"], cwd=repository_root(), capture_output=True, text=True, check=True
    )
    return frozenset(listing.stdout.splitlines())


@cache
def upstream_files() -> frozenset[str]:
    """The files of upstream's v2.4.0 tree (the application's sources)."""
    with tarfile.open(repository_root().parent / UPSTREAM_SNAPSHOT) as snapshot:
        return frozenset(
            name.split("/", 1)[1] for name in snapshot.getnames() if "/" in name.strip("/")
        )


def plain_http_allowed(host: str) -> bool:
    """Whether the engine would push to ``host`` (``name[:port]``) over plain HTTP.

    As containerd's ``MatchLocalhost``, which the engine's registry hosts use: ``localhost``
    or a loopback IP address.
    """
    if host.startswith("["):
        name = host[1 : host.index("]")]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


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
    """Whether the module's source directory is the application's tree (upstream's files) or,
    as by default, this repository's; ``Directory.exists`` answers from the real file list."""
    upstream: StandInUpstream = field(default_factory=StandInUpstream)
    added_source_files: frozenset[str] = frozenset({WORKER_LOCK})
    """Files the module's source has beyond the real ones: by default the worker's lock, which
    every build needs and this repository does not hold yet (a test of its absence drops it)."""
    secrets: Mapping[str, str] = field(default_factory=dict)
    upstream_tags: frozenset[str] | None = None
    """Tags the upstream repository has; None: every tag asked for exists."""
    failing_pushes: frozenset[str] = frozenset()
    """Repository names (``qm-nmr-calc-worker``) whose push fails."""
    real: RealBuilder | None = None
    queries: list[list[Field]] = field(default_factory=list)
    builds: list[Variant] = field(default_factory=list)
    pushes: list[tuple[str, list[Variant]]] = field(default_factory=list)
    built_on_publish: list[list[Field]] = field(default_factory=list)
    """Variant chains a publish built because no ``sync`` had built them before."""
    _ids: dict[str, list[Field]] = field(default_factory=dict)
    _counter: Iterator[int] = field(default_factory=itertools.count)
    _built: dict[str, Variant] = field(default_factory=dict)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Route every SDK query of this test to the stand-in."""
        engine = self

        async def execute(ctx: Context, return_type: Any = None) -> Any:
            return await engine.execute(list(ctx.selections))

        monkeypatch.setattr(Context, "execute", execute)
        resolve = socket.getaddrinfo

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else host  # anyio passes IDNA bytes
            if isinstance(name, str) and name.endswith("." + SERVICE_DOMAIN):
                host = "127.0.0.1"
            return resolve(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

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
            "exists": self._exists,
            "commit": self._commit,
            "stdout": self._stdout,
            "plaintext": self._plaintext,
            "publish": self._publish,
            # A service (rehearse's throwaway registry) is the test registry itself, reached
            # by a name in the session domain.
            "start": lambda _leaf, chain: self.new_id(chain),
            "stop": lambda _leaf, chain: self.new_id(chain),
            "endpoint": self._endpoint,
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
                raise engine_error(f"process did not complete: {variant.platform}")
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
        """``GitRef.commit``: see ``commit_of``."""
        return self.commit_of(chain)

    def commit_of(self, chain: list[Field]) -> str:
        """The commit of a ``git(url).tag(...)`` chain: the stand-in upstream's, or the snapshot's.

        Fails as the engine does for a tag the upstream repository lacks.
        """
        tags = [step.args["name"] for step in chain if step.name == "tag"]
        if tags and self.upstream_tags is not None and tags[-1] not in self.upstream_tags:
            url = next(step.args["url"] for step in chain if step.name == "git")
            raise engine_error(f"git ref refs/tags/{tags[-1]} not found in {url}")
        return self.real.commit(chain) if self.real is not None else self.upstream.head()

    def _stdout(self, _leaf: Field, chain: list[Field]) -> str:
        """``stdout`` of a container's one ``git`` command, run in the mounted checkout.

        Anything else is refused: the stand-in does not guess what another command would print.
        """
        execs = [step.args["args"] for step in chain if step.name == "withExec"]
        if len(execs) != 1 or execs[0][:1] != ["git"]:
            raise NotImplementedError(f"the stand-in runs only one git command, not {execs}")
        ref = self._git_ref(chain)
        self.commit_of(ref)  # a missing tag fails here too
        if self.real is not None:
            return self.real.commit_time(chain)
        ran = self.upstream.git(*execs[0][1:])
        if ran.returncode != 0:
            raise engine_error(
                f'process "{" ".join(execs[0])}" did not complete successfully: '
                f"exit code: {ran.returncode}\n\nStderr:\n{ran.stderr}"
            )
        return ran.stdout

    def _git_ref(self, chain: list[Field]) -> list[Field]:
        """The ``git(url).tag(...)``/``head()`` chain of the tree the command runs in.

        The tree must be mounted with its ``.git`` directory, at the working directory.
        """
        workdirs = [step.args["path"] for step in chain if step.name == "withWorkdir"]
        for step in chain:
            if step.name == "withMountedDirectory":
                if not workdirs or workdirs[-1] != step.args["path"]:
                    raise NotImplementedError(
                        f"git would run in {workdirs[-1:] or ['/']}, not in the tree mounted"
                        f" at {step.args['path']}"
                    )
                source = self.expand(list(step.args["source"]._ctx.selections))
                tree = [i for i, field in enumerate(source) if field.name == "tree"]
                if tree and not source[tree[-1]].args.get("discardGitDir", False):
                    return source[: tree[-1]]
                raise NotImplementedError("git needs the tree mounted with its .git directory")
        raise NotImplementedError("no git tree mounted for the command")

    def _exists(self, leaf: Field, chain: list[Field]) -> bool:
        """``Directory.exists`` on the module's source: from the real files it stands for."""
        if [step.name for step in chain] != ["directory"]:
            raise NotImplementedError(f"the stand-in answers exists only on the source: {chain}")
        files = upstream_files() if self.app_sources else repository_files()
        files |= self.added_source_files
        path = str(leaf.args["path"]).strip("/")
        return path in files or any(name.startswith(path + "/") for name in files)

    def _endpoint(self, leaf: Field, chain: list[Field]) -> str:
        """``Service.endpoint``: a name in the session domain, never ``localhost``.

        The port asked for, or without one the first the service exposes, as the engine picks
        it; a port not exposed by ``with_exposed_port`` (an image's own ``EXPOSE`` is unknown
        here) is refused. The name leads to the test registry.
        """
        exposed = [
            step.args["port"] for step in self.expand(chain) if step.name == "withExposedPort"
        ]
        port = leaf.args.get("port", exposed[0] if exposed else None)
        if port is None or port not in exposed:
            raise NotImplementedError(f"endpoint of port {port}; the service exposes {exposed}")
        registry_port = self.registry.rsplit(":", 1)[1]
        return f"registry-{next(self._counter)}.{SERVICE_DOMAIN}:{registry_port}"

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

    async def _publish(self, leaf: Field, chain: list[Field]) -> str:
        """``Container.publish``: push a real image for the variants into the registry."""
        address = leaf.args["address"]
        host_path, tag = address.rsplit(":", 1)
        host, path = host_path.split("/", 1)
        target = self._push_target(host, leaf.args.get("registryService"))
        containers = leaf.args.get("platformVariants", [])
        receiver = self.expand(chain)
        if any(step.name not in {"container", "withRegistryAuth"} for step in receiver):
            raise AssertionError(
                "a non-empty receiver is published as one more platform variant; publish from "
                "dag.container() and pass every build in platform_variants"
            )
        chains = [list(container._ctx.selections) for container in containers]
        # The engine builds what a publish needs; a variant first built here was never synced.
        self.built_on_publish += [
            chain for chain in chains if repr(self.describe(chain)) not in self._built
        ]
        variants = [await self._build(chain) for chain in chains]
        platforms = [variant.platform for variant in variants]
        if len(set(platforms)) != len(platforms):
            raise engine_error(f"duplicate platform in platform variants: {platforms}")
        self.pushes.append((address, variants))
        if path.rsplit("/", 1)[-1] in self.failing_pushes:
            raise engine_error(f"failed to push {address}: unexpected status 502 Bad Gateway")
        username, password = self._credentials(host, receiver)
        if self.real is not None:
            images = [variant.image for variant in variants]
            digest = await anyio.to_thread.run_sync(self.real.push, target, path, tag, images)
            return f"{address}@{digest}"
        async with RegistryClient(target, username=username, password=password) as client:
            try:
                digest = await push_variants(client, path, tag, variants)
            except (RegistryError, ConcurrentStepsError) as error:
                raise engine_error(f"failed to push {address}: {error}") from error
        return f"{address}@{digest}"

    def _push_target(self, host: str, service: Any) -> str:
        """Where a push to ``host`` lands, as the engine decides it; refuses what it would not do.

        Plain HTTP only to ``localhost`` or a loopback IP; a bound service takes the host's place.
        """
        if not plain_http_allowed(host):
            raise engine_error(
                f"failed to push to {host}: http: server gave HTTP response to HTTPS client"
            )
        if service is not None:
            chain = self.expand(list(service._ctx.selections))
            ports = [str(step.args["port"]) for step in chain if step.name == "withExposedPort"]
            if host.rsplit(":", 1)[-1] not in ports:
                raise engine_error(f"failed to push to {host}: connection refused")
            return self.registry
        if host != self.registry:
            raise AssertionError(f"the stand-in pushes only to {self.registry}, not {host}")
        return host

    def _credentials(self, host: str, receiver: list[Field]) -> tuple[str | None, str | None]:
        """The user and password ``with_registry_auth`` gave for ``host`` (the last one wins)."""
        found: tuple[str | None, str | None] = (None, None)
        for step in receiver:
            if step.name == "withRegistryAuth" and step.args["address"] == host:
                secret = self.expand(list(step.args["secret"]._ctx.selections))
                found = (step.args["username"], self._plaintext(Field("", "", {}), secret))
        return found


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

    await gather(
        {
            position: partial(push_one, position, variant)
            for position, variant in enumerate(variants)
        }
    )
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

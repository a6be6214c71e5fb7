"""A private Docker daemon (BuildKit) and QEMU's arm64 emulation, for the image tests.

Debian's ``docker.io`` (20.10, BuildKit built in) runs here as root with its own data, exec root
and socket, and without touching the host's network (no default bridge, no iptables): builds use
``--network host``; a container whose port a test reaches joins a bridge network of the test's
own and publishes it on a loopback port only. Debian's own client ``/usr/bin/docker`` is used with
``DOCKER_BUILDKIT=1``: a newer CLI elsewhere on PATH may insist on the buildx plugin.

Both context managers undo exactly what they did, and only that: the daemon is stopped by its
PID and its directories deleted; the binfmt_misc mount and the qemu-aarch64 registration are
undone only when this process made them.

Where Docker is installed already and must stay (GitHub's runner has Docker CE, which Debian's
``docker.io`` would conflict with), ``IMAGE_TESTS_DOCKER_HOST=unix:///PATH`` points the tests at
that running daemon instead: nothing is started or stopped then, and what the tests build stays
in it (meant for throwaway machines).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DOCKER_CLIENT = "/usr/bin/docker"
DOCKERD = "dockerd"
DAEMON_VARIABLE = "IMAGE_TESTS_DOCKER_HOST"
"""Names a running daemon (``unix:///var/run/docker.sock``) to use instead of a private one."""
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
QEMU_AARCH64 = "qemu-aarch64"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
LOG_TAIL = 3000

REQUIRED_TOOLS: Mapping[str, str] = {
    DOCKERD: "docker.io, or Docker CE",
    DOCKER_CLIENT: "docker.io, or Docker CE",
    "mmdebstrap": "mmdebstrap",
    "arch-test": "arch-test",
    "update-binfmts": "binfmt-support",
    "qemu-aarch64-static": "qemu-user-static",
    "patchelf": "patchelf",
    "docker-registry": "docker-registry",
    "docker-compose": "docker-compose",
}
"""Every command the image tests run, and the Debian package that provides it."""
FOREIGN_ARCHITECTURE = "arm64"
"""The conda stand-ins unpack Debian's packages of this architecture (``apt-get download``)."""
ADD_FOREIGN_ARCHITECTURE = f"dpkg --add-architecture {FOREIGN_ARCHITECTURE} && apt-get update"


def dpkg_architectures() -> set[str]:
    """The architectures whose packages apt can fetch here: native and foreign."""
    native = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.split()
    foreign = subprocess.run(
        ["dpkg", "--print-foreign-architectures"], capture_output=True, text=True, check=True
    ).stdout.split()
    return {*native, *foreign}


class DaemonError(RuntimeError):
    """The private daemon could not be started, used or stopped."""


def running_daemon_socket(environment: Mapping[str, str]) -> Path | None:
    """The socket ``IMAGE_TESTS_DOCKER_HOST`` names, or None when it is unset or empty."""
    value = environment.get(DAEMON_VARIABLE, "")
    if not value:
        return None
    if not value.startswith("unix:///"):
        raise ValueError(
            f"{DAEMON_VARIABLE}={value!r} is not a daemon socket; accepted: unix:///PATH, "
            "e.g. unix:///var/run/docker.sock"
        )
    return Path(value.removeprefix("unix://"))


def missing_prerequisites() -> list[str]:
    """Why the image tests cannot run here: one line per missing thing; empty when all is set."""
    missing = []
    if os.geteuid() != 0:
        missing.append("not root: dockerd, mmdebstrap and binfmt_misc need root")
    try:
        running = running_daemon_socket(os.environ)
    except ValueError as error:
        missing.append(str(error))
        running = None
    if running is not None and not running.is_socket():
        missing.append(f"{DAEMON_VARIABLE} names {running}, which is not a socket")
    for tool, package in REQUIRED_TOOLS.items():
        if tool == DOCKERD and running is not None:
            continue  # a daemon runs already: none is started
        if shutil.which(tool) is None:
            missing.append(f"`{tool}` is missing (Debian package {package})")
    if shutil.which("dpkg") is None:
        missing.append("`dpkg` is missing: the stand-ins are made from Debian's packages")
    elif FOREIGN_ARCHITECTURE not in dpkg_architectures():
        missing.append(
            f"apt knows no {FOREIGN_ARCHITECTURE} packages: run `{ADD_FOREIGN_ARCHITECTURE}` "
            "(scripts/test does, as root)"
        )
    return missing


@dataclass
class Docker:
    """Runs Debian's docker client against one daemon socket."""

    socket: Path

    @property
    def environment(self) -> dict[str, str]:
        """The client's environment: this daemon, BuildKit on, no credentials from elsewhere."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_BUILDKIT": "1",
            "BUILDKIT_PROGRESS": "plain",
            # Docker CE's `docker build` is buildx, which adds a provenance attestation where the
            # daemon's image store keeps one: a pushed image would become an index with an
            # unknown/unknown entry. Debian's 20.10 client ignores this.
            "BUILDX_NO_DEFAULT_ATTESTATIONS": "1",
        }

    def run(
        self, *arguments: str, check: bool = True, timeout: float | None = 1800
    ) -> subprocess.CompletedProcess[str]:
        """``docker ARGUMENTS``; with ``check``, a failure raises with the command's output."""
        result = subprocess.run(
            [DOCKER_CLIENT, *arguments],
            env=self.environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise DaemonError(
                f"docker {' '.join(arguments[:3])} ... failed with status {result.returncode}:\n"
                f"{(result.stdout + result.stderr)[-LOG_TAIL:]}"
            )
        return result

    def inspect(self, template: str, *objects: str) -> str:
        """``docker inspect --format TEMPLATE OBJECTS``, stripped."""
        return self.run("inspect", "--format", template, *objects).stdout.strip()


@contextmanager
def docker_daemon() -> Iterator[Docker]:
    """The daemon the image tests use: the running one ``IMAGE_TESTS_DOCKER_HOST`` names (left
    as it is afterwards), or else a private one."""
    running = running_daemon_socket(os.environ)
    if running is None:
        with private_daemon() as docker:
            yield docker
        return
    docker = Docker(running)
    try:
        answer = docker.run("version", check=False, timeout=READY_TIMEOUT)
        output = (answer.stdout + answer.stderr)[-LOG_TAIL:] if answer.returncode else ""
    except subprocess.TimeoutExpired:
        answer, output = None, f"no answer within {READY_TIMEOUT} s"
    if answer is None or answer.returncode != 0:
        raise DaemonError(
            f"the daemon {DAEMON_VARIABLE} names ({running}) does not answer `docker version`:\n"
            f"{output}"
        )
    yield docker


@contextmanager
def private_daemon() -> Iterator[Docker]:
    """A dockerd with its own data, exec root and socket; stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="image-tests-dockerd-"))
    socket = root / "docker.sock"
    log_path = root / "dockerd.log"
    command: Sequence[str] = (
        DOCKERD,
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--pidfile={root / 'dockerd.pid'}",
        f"--host=unix://{socket}",
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    docker = Docker(socket)
    try:
        _wait_ready(docker, process, log_path)
        yield docker
    finally:
        _stop(process)
        _unmount_below(root)
        shutil.rmtree(root, ignore_errors=True)


def _unmount_below(root: Path) -> None:
    """Unmount what the daemon left mounted under ``root`` (its network namespace file)."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount_point in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", mount_point], capture_output=True, check=False)


def _wait_ready(docker: Docker, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Wait until the daemon answers ``docker version``; raise with its log if it dies."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if (
            docker.socket.exists()
            and docker.run("version", check=False, timeout=10).returncode == 0
        ):
            return
        time.sleep(0.2)
    _stop(process)
    raise DaemonError(
        f"dockerd did not start within {READY_TIMEOUT} s; its log ends with:\n"
        f"{log_path.read_text(errors='replace')[-LOG_TAIL:]}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the daemon this process started (SIGTERM, then SIGKILL) and reap it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


@contextmanager
def arm64_emulation() -> Iterator[None]:
    """QEMU user emulation for linux/arm64 binaries; undone afterwards if this made it."""
    mounted_here = False
    if not (BINFMT_DIR / "register").exists():
        subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
            check=True,
            capture_output=True,
        )
        mounted_here = True
    entry = BINFMT_DIR / QEMU_AARCH64
    enabled_before = entry.exists() and entry.read_text().startswith("enabled")
    try:
        if not enabled_before:
            result = subprocess.run(
                ["update-binfmts", "--enable", QEMU_AARCH64], capture_output=True, text=True
            )
            if result.returncode != 0:
                raise DaemonError(
                    f"update-binfmts --enable {QEMU_AARCH64} failed: {result.stderr.strip()}"
                )
        yield
    finally:
        if not enabled_before:
            subprocess.run(["update-binfmts", "--disable", QEMU_AARCH64], capture_output=True)
        if mounted_here:
            subprocess.run(["umount", str(BINFMT_DIR)], capture_output=True)

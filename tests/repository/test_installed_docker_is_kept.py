"""An installed Docker is used, never replaced (GitHub's runner has Docker CE).

``scripts/system-packages`` adds Debian's ``docker.io`` only where no Docker daemon is installed,
and ``IMAGE_TESTS_DOCKER_HOST`` points the image tests at a running daemon instead of a private one.
Only the decisions run here: no daemon is started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.images import daemon

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PACKAGES = ROOT / "scripts" / "system-packages"
BASE_PACKAGES = [
    "docker-registry",
    "apache2-utils",
    "docker-compose",
    "mmdebstrap",
    "debian-archive-keyring",
    "arch-test",
    "qemu-user-static",
    "binfmt-support",
    "patchelf",
]


def packages_with(tmp_path: Path, commands: list[str]) -> list[str]:
    """What scripts/system-packages prints where only ``commands`` are on PATH."""
    for command in commands:
        stub = tmp_path / command
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    printed = subprocess.run(
        ["/bin/bash", str(SYSTEM_PACKAGES)],
        env={"PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    return printed.stdout.splitlines()


@pytest.mark.parametrize(
    ("commands", "docker_io"),
    [
        ([], True),
        (["dockerd", "docker"], False),
        (["docker"], True),
        (["dockerd"], False),
    ],
    ids=["no-docker", "docker-ce", "client-only", "daemon-only"],
)
def test_docker_io_is_installed_only_where_no_docker_daemon_is(
    tmp_path: Path, commands: list[str], docker_io: bool
) -> None:
    expected = [*BASE_PACKAGES, "docker.io"] if docker_io else BASE_PACKAGES
    assert packages_with(tmp_path, commands) == expected


def test_the_test_script_installs_what_system_packages_prints() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    assert "mapfile -t system_packages < <(scripts/system-packages)" in script
    assert "docker.io" not in script


@pytest.mark.parametrize("value", ["", None])
def test_without_the_variable_no_running_daemon_is_named(value: str | None) -> None:
    environment = {} if value is None else {daemon.DAEMON_VARIABLE: value}
    assert daemon.running_daemon_socket(environment) is None


def test_the_variable_names_a_unix_socket() -> None:
    environment = {daemon.DAEMON_VARIABLE: "unix:///var/run/docker.sock"}
    assert daemon.running_daemon_socket(environment) == Path("/var/run/docker.sock")


@pytest.mark.parametrize("value", ["tcp://127.0.0.1:2375", "/var/run/docker.sock", "unix://x"])
def test_anything_but_a_unix_socket_is_refused_saying_what_is_accepted(value: str) -> None:
    with pytest.raises(ValueError, match="is not a daemon socket") as refused:
        daemon.running_daemon_socket({daemon.DAEMON_VARIABLE: value})
    assert str(refused.value) == (
        f"IMAGE_TESTS_DOCKER_HOST={value!r} is not a daemon socket; accepted: unix:///PATH, "
        "e.g. unix:///var/run/docker.sock"
    )


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    """A Unix socket that closes every connection without answering; closed afterwards."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def close_each() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return  # the server socket was closed
            connection.close()

    closer = threading.Thread(target=close_each, daemon=True)
    closer.start()
    yield path
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    closer.join(timeout=5)


@pytest.fixture
def everything_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Root, and every tool found: only the daemon's own decisions are left to check."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(daemon, "dpkg_architectures", lambda: {"amd64", "arm64"})


def test_with_a_running_daemon_no_dockerd_is_needed(
    monkeypatch: pytest.MonkeyPatch, everything_installed: None, unix_socket: Path
) -> None:
    found = shutil.which
    monkeypatch.setattr(shutil, "which", lambda t: None if t == "dockerd" else found(t))
    monkeypatch.setenv(daemon.DAEMON_VARIABLE, f"unix://{unix_socket}")
    assert daemon.missing_prerequisites() == []

    monkeypatch.delenv(daemon.DAEMON_VARIABLE)
    assert daemon.missing_prerequisites() == [
        "`dockerd` is missing (Debian package docker.io, or Docker CE)"
    ]


def test_a_variable_that_names_no_socket_is_a_missing_prerequisite(
    monkeypatch: pytest.MonkeyPatch, everything_installed: None, tmp_path: Path
) -> None:
    monkeypatch.setenv(daemon.DAEMON_VARIABLE, f"unix://{tmp_path}/absent.sock")
    assert daemon.missing_prerequisites() == [
        f"IMAGE_TESTS_DOCKER_HOST names {tmp_path}/absent.sock, which is not a socket"
    ]
    monkeypatch.setenv(daemon.DAEMON_VARIABLE, "tcp://127.0.0.1:2375")
    assert daemon.missing_prerequisites() == [
        "IMAGE_TESTS_DOCKER_HOST='tcp://127.0.0.1:2375' is not a daemon socket; accepted: "
        "unix:///PATH, e.g. unix:///var/run/docker.sock"
    ]


def no_private_daemon() -> None:
    """Stands for ``private_daemon``: fails the test if it is started."""
    raise AssertionError("a private daemon was started")


@pytest.mark.skipif(not Path(daemon.DOCKER_CLIENT).exists(), reason="needs the docker client")
def test_the_running_daemon_is_used_and_must_answer(
    monkeypatch: pytest.MonkeyPatch, unix_socket: Path
) -> None:
    monkeypatch.setattr(daemon, "private_daemon", no_private_daemon)
    monkeypatch.setenv(daemon.DAEMON_VARIABLE, f"unix://{unix_socket}")

    with pytest.raises(daemon.DaemonError) as silent, daemon.docker_daemon():
        pass

    assert str(silent.value).startswith(
        f"the daemon IMAGE_TESTS_DOCKER_HOST names ({unix_socket}) does not answer `docker version`"
    )


def test_without_the_variable_a_private_daemon_is_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private = daemon.Docker(Path("/private/docker.sock"))

    @contextmanager
    def private_daemon() -> Iterator[daemon.Docker]:
        yield private

    monkeypatch.setattr(daemon, "private_daemon", private_daemon)
    monkeypatch.delenv(daemon.DAEMON_VARIABLE, raising=False)

    with daemon.docker_daemon() as docker:
        assert docker is private


def test_the_client_asks_buildx_for_no_attestation() -> None:
    """Docker CE's buildx would otherwise turn a pushed image into an index with an
    unknown/unknown entry, which the release's verification refuses."""
    environment = daemon.Docker(Path("/run/docker.sock")).environment
    assert environment["BUILDX_NO_DEFAULT_ATTESTATIONS"] == "1"
    assert environment["DOCKER_HOST"] == "unix:///run/docker.sock"


def test_apt_without_arm64_packages_is_a_missing_prerequisite_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch, everything_installed: None
) -> None:
    """The tests never add an architecture themselves: that changes the machine for good."""
    monkeypatch.setattr(daemon, "dpkg_architectures", lambda: {"amd64"})
    assert daemon.missing_prerequisites() == [
        "apt knows no arm64 packages: run `dpkg --add-architecture arm64 && apt-get update` "
        "(scripts/test does, as root)"
    ]


def test_the_test_script_adds_the_arm64_architecture_as_root() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    assert f"dpkg --add-architecture {daemon.FOREIGN_ARCHITECTURE}" in script

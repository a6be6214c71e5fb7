"""Probing running containers as a user would: HTTP from the host, health, logs, config."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.images.daemon import Docker
from tests.support.registry_server import free_port

API_PORT = 8000
"""The api image's own CMD serves here; the tests publish it on a loopback port only."""
HEALTHY_TIMEOUT = 240.0
"""Seconds until the HEALTHCHECK reports healthy; arm64 runs under QEMU, several times slower."""
HTTP_TIMEOUT = 30.0
LOG_TIMEOUT = 20.0
QMNMR_UID = 999
NATIVE_PLATFORM = "linux/amd64"
EMULATION_SLOWDOWN = 30
"""A script's ``sleep N`` waits up to N times this, ending once the API answers."""
SHIM_DIR = "/opt/emulation-shim"
IMAGE_PATH = "/app/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def slow_sleep(directory: Path) -> list[str]:
    """``docker run`` arguments that stretch every ``sleep`` of a script until the API answers.

    Under QEMU the API takes about 11 s to start instead of 2 s, and longer on a busy machine;
    upstream's validate-api.sh waits a fixed 3 s before it asks for /health. A ``sleep`` first
    on PATH waits up to ``EMULATION_SLOWDOWN`` times longer, and ends as soon as the API answers.
    """
    shim = directory / "emulation-shim"
    shim.mkdir()
    shim.chmod(0o755)
    script = shim / "sleep"
    script.write_text(
        "#!/bin/sh\n"
        f"end=$(( $(date +%s) + ${{1%%[!0-9]*}} * {EMULATION_SLOWDOWN} ))\n"
        'while [ "$(date +%s)" -lt "$end" ]; do\n'
        f"  curl -fs -o /dev/null http://127.0.0.1:{API_PORT}/health && exit 0\n"
        "  /bin/sleep 1\n"
        "done\n"
    )
    script.chmod(0o755)
    return [f"--volume={shim}:{SHIM_DIR}:ro", f"--env=PATH={SHIM_DIR}:{IMAGE_PATH}"]


def http_get(port: int, path: str) -> tuple[int, str, bytes]:
    """GET ``path`` from the API published on loopback ``port``: (status, content type, body)."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:
            return response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("content-type", ""), error.read()


def wait_healthy(docker: Docker, container: str, timeout: float = HEALTHY_TIMEOUT) -> str:
    """Wait for the container's HEALTHCHECK to report ``healthy``; its last status."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = docker.inspect("{{.State.Status}} {{.State.Health.Status}}", container)
        if status.endswith(" healthy") or status.startswith(("exited", "dead")):
            return status
        time.sleep(1)
    return status


@contextmanager
def running(docker: Docker, *arguments: str) -> Iterator[str]:
    """``docker run --detach ARGUMENTS`` (which name its network); removed afterwards."""
    container = docker.run("run", "--detach", *arguments).stdout.strip()
    try:
        yield container
    finally:
        docker.run("rm", "--force", "--volumes", container, check=False)


@dataclass(frozen=True)
class ServedApi:
    """An api container and the loopback port its port 8000 is published on."""

    container: str
    port: int

    def get(self, path: str) -> tuple[int, str, bytes]:
        """GET ``path`` from it, as a browser on this machine would."""
        return http_get(self.port, path)


@contextmanager
def serving_api(docker: Docker, network: str, *arguments: str) -> Iterator[ServedApi]:
    """The api image's own CMD on a bridge network, reachable on a free loopback port only."""
    port = free_port()
    publish = f"--publish=127.0.0.1:{port}:{API_PORT}"
    with running(docker, f"--network={network}", publish, *arguments) as container:
        yield ServedApi(container, port)


def logs(docker: Docker, container: str) -> str:
    """Everything the container printed so far."""
    result = docker.run("logs", container, check=False)
    return result.stdout + result.stderr


def wait_for_log(docker: Docker, container: str, text: str, timeout: float = LOG_TIMEOUT) -> str:
    """Wait until the container's output holds ``text``; its output then (or at the deadline)."""
    deadline = time.monotonic() + timeout
    output = logs(docker, container)
    while text not in output and time.monotonic() < deadline:
        time.sleep(0.5)
        output = logs(docker, container)
    return output


def config_of(docker: Docker, image: str) -> dict[str, Any]:
    """The image's config (user, labels, healthcheck, entrypoint, ...)."""
    config: dict[str, Any] = json.loads(docker.inspect("{{json .Config}}", image))
    return config

"""This repository's docker-compose.yml, started on the private daemon as a user starts it.

The file is used as it is, with two changes a test needs: Caddy's host ports are free loopback
ports, and the volumes' names carry the project's, so that nothing outside the test is touched.
Images are the released ones, pulled by tag from the rehearsal's registry and tagged with the
names the compose file uses (a registry the file does not name cannot serve them otherwise).
"""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.images import standins
from tests.images.daemon import Docker
from tests.support.registry_server import free_port

COMPOSE_BINARY = "docker-compose"
VERSION_VARIABLE = "${QM_NMR_CALC_VERSION:-latest}"
COMPOSE_TIMEOUT = 600
READY_TIMEOUT = 60.0


def compose_release_image(service: str, version: str) -> str:
    """The image docker-compose.yml runs for ``service`` with QM_NMR_CALC_VERSION=version."""
    return standins.compose_image(service).replace(VERSION_VARIABLE, version)


def loopback_compose_file(
    directory: Path,
    project: str,
    ports: tuple[int, int],
    worker_environment: Mapping[str, str],
) -> Path:
    """docker-compose.yml with Caddy on loopback ``ports`` (HTTP, HTTPS), volumes per project."""
    document = yaml.safe_load(standins.COMPOSE_FILE.read_text())
    http_port, https_port = ports
    caddy = document["services"]["caddy"]
    caddy["ports"] = [f"127.0.0.1:{http_port}:80", f"127.0.0.1:{https_port}:443"]
    document["services"]["worker"]["environment"].update(worker_environment)
    for volume in document["volumes"].values():
        volume["name"] = f"{project}-{volume['name']}"
    path = directory / "docker-compose.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    shutil.copyfile(standins.REPO_ROOT / "Caddyfile", directory / "Caddyfile")
    return path


def https_request(
    url: str, payload: Mapping[str, Any] | None = None, timeout: float = 30
) -> tuple[int, bytes]:
    """GET (or POST ``payload`` as JSON) over HTTPS, trusting Caddy's local certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    data = json.dumps(payload).encode() if payload is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass(frozen=True)
class Stack:
    """A running compose project: its containers, volume and Caddy's loopback ports."""

    docker: Docker
    project: str
    http_port: int
    https_port: int

    @property
    def data_volume(self) -> str:
        """The volume shared by init, api and worker."""
        return f"{self.project}-qm-nmr-calc-data"

    def container(self, service: str) -> str:
        """The container docker-compose (1.x) made for ``service``."""
        return f"{self.project}_{service}_1"

    def url(self, path: str) -> str:
        """``path`` on the stack's public HTTPS address (through Caddy)."""
        return f"https://localhost:{self.https_port}{path}"

    def request(self, path: str, payload: Mapping[str, Any] | None = None) -> tuple[int, bytes]:
        """A request through Caddy; waits while Caddy or the API still start."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                code, body = https_request(self.url(path), payload)
            except (urllib.error.URLError, ConnectionError, ssl.SSLError) as error:
                code, body = 0, str(error).encode()
            if code not in {0, 502, 503} or time.monotonic() > deadline:
                return code, body
            time.sleep(1)


@contextmanager
def compose_stack(
    docker: Docker,
    directory: Path,
    version: str,
    images: Mapping[str, str],
    *,
    seed: str | None = None,
    worker_environment: Mapping[str, str] | None = None,
    platforms: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """``docker-compose up`` of release ``version``; ``down --volumes`` afterwards.

    ``images`` maps each compose service's image to the reference to pull it from (api, worker,
    caddy). ``seed``, a shell command run as root on the new data volume before the stack starts,
    leaves it as an older deployment would have. ``platforms`` picks a service's platform
    (linux/amd64 unless given), as an engine on that platform would pull it.
    """
    binary = shutil.which(COMPOSE_BINARY)
    assert binary is not None, "docker-compose is an image-test prerequisite"
    for service, pulled in images.items():
        platform = (platforms or {}).get(service, "linux/amd64")
        docker.run("pull", f"--platform={platform}", pulled)
        docker.run("tag", pulled, compose_release_image(service, version))
    project = "qmnmr" + secrets.token_hex(3)
    ports = free_port(), free_port()
    compose_file = loopback_compose_file(directory, project, ports, worker_environment or {})
    stack = Stack(docker, project, *ports)
    variables = docker.environment | {"QM_NMR_CALC_VERSION": version}

    def compose(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, "--project-name", project, "--file", str(compose_file), *arguments],
            cwd=directory,
            env=variables,
            capture_output=True,
            text=True,
            check=False,
            timeout=COMPOSE_TIMEOUT,
        )

    docker.run("volume", "create", stack.data_volume)
    try:
        if seed is not None:
            api_image = compose_release_image("api", version)
            volume = f"--volume={stack.data_volume}:/app/data"
            docker.run("run", "--rm", "--user=0:0", volume, api_image, "sh", "-c", seed)
        started = compose("up", "--detach")
        assert started.returncode == 0, started.stdout + started.stderr
        yield stack
    finally:
        compose("down", "--volumes", "--timeout", "30")
        docker.run("volume", "rm", "--force", stack.data_volume, check=False)

"""A real OCI registry on loopback for tests: Debian's ``docker-registry`` (distribution 2.8).

Pytest-independent: ``with RegistryServer() as server: ...`` starts ``docker-registry serve`` with
its own configuration (filesystem storage in a temporary directory, deletes enabled, optionally
htpasswd basic auth) on 127.0.0.1 and a free port, waits until ``/v2/`` answers and stops the
process by its PID. A missing binary is an error, never a skip: CI must not pass without it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

REGISTRY_BINARY = "docker-registry"
REGISTRY_PACKAGE = "docker-registry"
HTPASSWD_BINARY = "htpasswd"
HTPASSWD_PACKAGE = "apache2-utils"
LOOPBACK = "127.0.0.1"
READY_TIMEOUT = 15.0
"""Seconds to wait for ``/v2/`` to answer after starting the process."""
READY_POLL = 0.05
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 3
"""A free port can be taken by someone else before the registry binds it: try again."""
READY_STATUSES = frozenset({200, 401})
LOG_TAIL = 2000

CONFIG_TEMPLATE = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: {addr}
{auth}"""

AUTH_TEMPLATE = """\
auth:
  htpasswd:
    realm: test-registry
    path: {path}
"""


class RegistryServerError(RuntimeError):
    """The test registry could not be set up, started or stopped."""


def require_binary(binary: str, package: str) -> str:
    """The path of ``binary``, or an error naming the Debian package that provides it."""
    path = shutil.which(binary)
    if path is None:
        raise RegistryServerError(
            f"`{binary}` is not on PATH; the registry tests need a real registry. "
            f"Install the Debian package: apt-get install -y --no-install-recommends {package}"
        )
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def write_htpasswd(path: Path, username: str, password: str) -> None:
    """Write a bcrypt htpasswd file (the only hash distribution accepts) for one user."""
    binary = require_binary(HTPASSWD_BINARY, HTPASSWD_PACKAGE)
    result = subprocess.run(
        [binary, "-Bbc", str(path), username, password],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RegistryServerError(
            f"htpasswd failed with status {result.returncode}: {result.stderr.strip()}"
        )


class RegistryServer:
    """One ``docker-registry serve`` process on 127.0.0.1, with its own data and config."""

    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password for basic auth, or neither")
        self.username = username
        self.password = password
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None

    def __repr__(self) -> str:
        auth = "basic" if self.username else "anonymous"
        return f"RegistryServer(host={self.host!r}, auth={auth})"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry as image references and RegistryClient name it."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        """The registry's base URL, ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    @property
    def pid(self) -> int | None:
        """The PID of the running registry process, if any."""
        return self._process.pid if self._process is not None else None

    def start(self) -> RegistryServer:
        """Start the registry and wait until ``/v2/`` answers; returns ``self``."""
        if self._process is not None:
            raise RegistryServerError(f"{self!r} is already running")
        binary = require_binary(REGISTRY_BINARY, REGISTRY_PACKAGE)
        self._tempdir = tempfile.TemporaryDirectory(prefix="test-registry-")
        root = Path(self._tempdir.name)
        last_error = ""
        for _attempt in range(START_ATTEMPTS):
            self.port = free_port()
            config = self._write_config(root)
            log_path = root / f"registry-{self.port}.log"
            with log_path.open("wb") as log:
                self._process = subprocess.Popen(
                    [binary, "serve", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready():
                return self
            last_error = log_path.read_text(errors="replace")[-LOG_TAIL:]
            self._terminate()
        self._cleanup()
        raise RegistryServerError(
            f"docker-registry did not answer on /v2/ within {READY_TIMEOUT} s after "
            f"{START_ATTEMPTS} attempts; its log ends with:\n{last_error}"
        )

    def stop(self) -> None:
        """Stop the registry by its PID and delete its data."""
        self._terminate()
        self._cleanup()

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _write_config(self, root: Path) -> Path:
        """Write this server's config.yml (and htpasswd file) under ``root``."""
        data = root / "data"
        data.mkdir(exist_ok=True)
        auth = ""
        if self.username is not None and self.password is not None:
            htpasswd = root / "htpasswd"
            write_htpasswd(htpasswd, self.username, self.password)
            auth = AUTH_TEMPLATE.format(path=htpasswd)
        config = root / "config.yml"
        config.write_text(
            CONFIG_TEMPLATE.format(data=data, addr=f"{LOOPBACK}:{self.port}", auth=auth)
        )
        return config

    def _wait_ready(self) -> bool:
        """Poll ``/v2/`` until it answers 200 or 401; False if the process dies or times out."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                response = httpx.get(f"{self.url}/v2/", timeout=1.0)
            except httpx.TransportError:
                time.sleep(READY_POLL)
                continue
            return response.status_code in READY_STATUSES
        return False

    def _terminate(self) -> None:
        """Terminate the process this object started (and only it), then reap it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    def _cleanup(self) -> None:
        """Delete the temporary data and config directory."""
        tempdir, self._tempdir = self._tempdir, None
        if tempdir is not None:
            tempdir.cleanup()

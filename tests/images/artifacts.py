"""Pieces of the image tests' stand-ins for downloads: Debian's xTB, a FAKE CREST, a file server.

``conda_standins`` builds the stand-in conda channel from Debian's packages with these. xTB: the
Debian packages holding ``xtb`` 6.5.1 and every library it loads; it does real chemistry (a GFN2
water optimisation converges). CREST: no CREST binary can be had here (not in Debian, PyPI or
npm), so ``CREST_SCRIPT`` is a FAKE: a POSIX sh script that answers ``--version`` with a banner
saying so and naming version 3.0.2, and refuses everything else (exit 2). It does no chemistry.
:func:`serve_files` serves a directory on 127.0.0.1 (the channel).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# --- xTB ------------------------------------------------------------------------------------------
# Debian's xtb and every package holding a library it loads (`apt-cache depends xtb`, then
# `readelf -d` down the chain). libopenblas0 is Debian's alternatives switch; the library itself is
# in libopenblas0-pthread. libgcc-s1 is on every Debian system but not part of glibc: bundled.
XTB_PACKAGES = (
    "xtb",
    "libmctc-lib0",
    "libopenblas0",
    "libopenblas0-pthread",
    "libgfortran5",
    "libgomp1",
    "libquadmath0",
    "libgcc-s1",
)
XTB_DEBIAN_VERSION = "6.5.1"
XTB_PARAMETER_FILES = ("param_*.txt", ".param_gfnff.xtb")
# Parts of glibc: every system has them, and they must come from the system's own glibc.
GLIBC_SONAMES = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libmvec.so.1",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "ld-linux-x86-64.so.2",
    }
)

# --- CREST ----------------------------------------------------------------------------------------
CREST_VERSION = "3.0.2"
CREST_BANNER = "FAKE CREST stand-in for image tests (not CREST)"
CREST_SCRIPT = f"""\
#!/bin/sh
# {CREST_BANNER}.
# No CREST binary can be obtained where the image tests run, so this script only answers
# `crest --version` (the worker image's build-time smoke test). It does no chemistry.
if [ "$#" -eq 1 ] && [ "$1" = "--version" ]; then
    echo "{CREST_BANNER}, answering as version {CREST_VERSION}"
    echo " Version {CREST_VERSION} (FAKE: no CREST code inside)"
    exit 0
fi
echo "crest: {CREST_BANNER}: it does no chemistry and only answers --version" >&2
exit 2
"""


class ArtifactError(RuntimeError):
    """A stand-in could not be built."""


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without writing a line per request to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        """Drops the request log."""


class _QuietServer(ThreadingHTTPServer):
    """A threaded HTTP server that does not print a client's dropped connection."""

    def handle_error(self, request: object, client_address: object) -> None:
        """Drops the traceback that socketserver would print to stderr."""


@contextlib.contextmanager
def serve_files(directory: Path) -> Iterator[str]:
    """Serves ``directory`` on 127.0.0.1 (a free port) and yields its base URL, no trailing /."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="serve-files", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def resolve_inside(root: Path, path: Path) -> Path:
    """Follows symlinks as if ``root`` were ``/``; the result must exist."""
    for _ in range(40):
        if not path.is_symlink():
            if not path.exists():
                raise ArtifactError(f"{path.relative_to(root)} is missing")
            return path
        destination = os.readlink(path)
        if destination.startswith("/"):
            path = root / destination.lstrip("/")
        else:
            path = path.parent / destination
    raise ArtifactError(f"too many levels of symlinks at {path.relative_to(root)}")


def copy_file(source: Path, destination: Path, mode: int) -> None:
    """Copies one file's contents (not its metadata) and sets its mode."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    destination.chmod(mode)


def run(*command: str | Path, cwd: Path | None = None) -> str:
    """Runs a command; its stdout, or an ArtifactError naming the command and its stderr."""
    arguments = [str(part) for part in command]
    try:
        completed = subprocess.run(arguments, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as error:
        raise ArtifactError(f"{arguments[0]} is not installed") from error
    except subprocess.CalledProcessError as error:
        raise ArtifactError(
            f"{' '.join(arguments)} failed (exit {error.returncode}): {error.stderr.strip()}"
        ) from error
    return completed.stdout

"""Stand-ins for the three downloads of the worker image, for image tests without GitHub access.

Dockerfile.worker fetches three things from GitHub that cannot be fetched on the test machines. The
image tests build the worker with the stand-ins below instead, serve them on a loopback HTTP server
(:func:`serve_files`) and pass their URLs and SHA-256 sums (:func:`sha256_of`) as build arguments.

xTB (:func:`xtb_standin`) replaces the release asset ``xtb-6.7.1-linux-x86_64.tar.xz``. It has the
same layout (``xtb-dist/bin/xtb``, ``xtb-dist/lib/``, ``xtb-dist/share/xtb/param_*.txt`` and
``.param_gfnff.xtb``) but holds Debian bookworm's xTB **6.5.1**, not 6.7.1: Debian's dynamically
linked binary, with the shared libraries it needs (mctc-lib, OpenBLAS, the GCC Fortran and OpenMP
runtimes) copied into ``lib/`` under their sonames and found through a ``$ORIGIN`` run path. Built
for bookworm, it needs glibc >= 2.34 (xtb, OpenBLAS, libgfortran, libgomp; the bundled libgcc_s
asks for 2.35), so it runs on Debian bookworm (the stand-in base) but would not on an older base;
the release asset is one static binary. It does real chemistry: a GFN2 water optimisation
converges.

CREST (:func:`crest_fake`) replaces the release asset ``crest-gnu-12-ubuntu-latest.tar.xz``
(``crest/crest``). No CREST binary can be had here (not in Debian, not on PyPI), so this one is a
FAKE: a POSIX sh script that answers ``--version`` with a banner saying so and naming version
3.0.2, and refuses everything else (exit 2). It does no chemistry at all.

Python (:func:`python_standin`) replaces the python-build-standalone CPython that
``uv python install 3.11`` downloads. It has the ``install_only`` layout (``python/bin/python3.11``,
``python3`` and ``python`` links, ``python/lib/python3.11/``) but holds Debian bookworm's CPython
(3.11.2, Debian's build and patches: its ``site``/``sysconfig`` changes and dist-packages paths)
instead of python-build-standalone's newer, self-contained 3.11 build. It has no headers, no
libpython shared library, no pip and no precompiled ``.pyc`` files, and Debian's
``EXTERNALLY-MANAGED`` marker is left out. It is NOT self-contained: the interpreter and its
extension modules use the system libraries of the Debian bookworm image it runs in (libexpat, zlib,
OpenSSL, SQLite, libffi, ...). A JSON file in uv's download-metadata format lists it, for
``UV_PYTHON_DOWNLOADS_JSON_URL``.

Every builder works in a given directory, downloads Debian packages with ``apt-get download`` (so it
needs the apt lists and ``dpkg-deb``; the xTB one also ``patchelf``), and returns its output at once
if it is already there. Tarballs carry fixed owners, modes and times, so the same packages give
byte-identical tarballs (and the same SHA-256 build arguments, which keeps build caches valid).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

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
XTB_TARBALL = f"xtb-{XTB_DEBIAN_VERSION}-debian-standin-linux-x86_64.tar.xz"
XTB_TOP = "xtb-dist"  # the top directory of the release asset
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
CREST_TARBALL = f"crest-{CREST_VERSION}-FAKE-standin.tar.xz"
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

# --- Python ---------------------------------------------------------------------------------------
PYTHON_PACKAGES = (
    "python3.11",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
)
PYTHON_BINARY_PACKAGE = "python3.11-minimal"  # the package whose version is the interpreter's
PYTHON_MINOR = (3, 11)
PYTHON_TARBALL = "cpython-{version}-debian-standin-x86_64-unknown-linux-gnu-install_only.tar.gz"
PYTHON_TARBALL_RE = re.compile(
    r"cpython-(\d+)\.(\d+)\.(\d+)-debian-standin-x86_64-unknown-linux-gnu-install_only\.tar\.gz"
)
PYTHON_JSON = "python-downloads.json"
PYTHON_BUILD = "debian-bookworm-standin"  # python-build-standalone puts its release date here
PYTHON_DROPPED = ("EXTERNALLY-MANAGED",)  # Debian's pip guard; python-build-standalone has none

# --- tarballs -------------------------------------------------------------------------------------
# Fixed metadata and compression settings make equal inputs give byte-equal tarballs.
TAR_MTIME = 1_672_531_200  # 2023-01-01T00:00:00Z
XZ_PRESET = 2  # a few seconds for OpenBLAS's 36 MB; preset 6 takes four times as long
GZIP_LEVEL = 6


class ArtifactError(RuntimeError):
    """A stand-in could not be built."""


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def xtb_standin(work: Path) -> Path:
    """The xTB stand-in tarball in ``work`` (Debian's xTB 6.5.1, laid out like the release)."""
    output = work / XTB_TARBALL
    if output.exists():
        return output
    with _scratch(work) as scratch:
        root = _debian_root(scratch, XTB_PACKAGES)
        version = _package_version(scratch, "xtb")
        if not version.startswith(f"{XTB_DEBIAN_VERSION}-"):
            raise ArtifactError(f"Debian's xtb is {version}, expected {XTB_DEBIAN_VERSION}")
        dist = scratch / "stage" / XTB_TOP
        xtb = dist / "bin" / "xtb"
        _copy_file(root / "usr" / "bin" / "xtb", xtb, 0o755)
        libraries = _bundle_libraries(root, xtb, dist / "lib")
        for pattern in XTB_PARAMETER_FILES:
            found = sorted((root / "usr" / "share" / "xtb").glob(pattern))
            if not found:
                raise ArtifactError(f"the xtb package has no share/xtb/{pattern}")
            for parameters in found:
                _copy_file(parameters, dist / "share" / "xtb" / parameters.name, 0o644)
        # DT_RUNPATH applies to an object's own dependencies only, so every object gets one.
        _run("patchelf", "--set-rpath", "$ORIGIN/../lib", xtb)
        for library in libraries:
            _run("patchelf", "--set-rpath", "$ORIGIN", library)
        _write_tarball(dist, output)
    return output


def crest_fake(work: Path) -> Path:
    """The FAKE CREST tarball in ``work``: ``crest/crest``, a script that only answers --version."""
    output = work / CREST_TARBALL
    if output.exists():
        return output
    with _scratch(work) as scratch:
        top = scratch / "crest"
        top.mkdir()
        script = top / "crest"
        script.write_text(CREST_SCRIPT, encoding="utf-8")
        script.chmod(0o755)
        _write_tarball(top, output)
    return output


def python_standin(work: Path, base_url: str) -> tuple[Path, Path]:
    """The CPython stand-in tarball in ``work`` and a uv download list naming it under ``base_url``.

    The tarball is built once; the JSON (for ``UV_PYTHON_DOWNLOADS_JSON_URL``) is rewritten on
    every call, since the server's port changes.
    """
    existing = sorted(
        (_python_version(path), path)
        for path in work.glob("cpython-*.tar.gz")
        if PYTHON_TARBALL_RE.fullmatch(path.name)
    )
    tarball = existing[-1][1] if existing else _build_python(work)
    major, minor, patch = _python_version(tarball)
    entry = {
        "name": "cpython",
        "arch": {"family": "x86_64", "variant": None},
        "os": "linux",
        "libc": "gnu",
        "major": major,
        "minor": minor,
        "patch": patch,
        "prerelease": "",
        "url": f"{base_url.rstrip('/')}/{tarball.name}",
        "sha256": sha256_of(tarball),
        "variant": None,
        "build": PYTHON_BUILD,
    }
    # uv's download-metadata.json: an object keyed by the download's name.
    document = {f"cpython-{major}.{minor}.{patch}-linux-x86_64-gnu": entry}
    json_path = work / PYTHON_JSON
    _replace_atomically(json_path, (json.dumps(document, indent=2) + "\n").encode())
    return tarball, json_path


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


def _python_version(tarball: Path) -> tuple[int, int, int]:
    """The CPython version in a stand-in tarball's name."""
    match = PYTHON_TARBALL_RE.fullmatch(tarball.name)
    if match is None:
        raise ArtifactError(f"{tarball.name} is not a Python stand-in tarball")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _build_python(work: Path) -> Path:
    """Builds the CPython tarball from Debian's packages; returns its path in ``work``."""
    with _scratch(work) as scratch:
        root = _debian_root(scratch, PYTHON_PACKAGES)
        # The upstream version is the Debian version's start: 3.11.2-6+deb12u9 is CPython 3.11.2.
        debian_version = _package_version(scratch, PYTHON_BINARY_PACKAGE)
        match = re.match(r"(\d+)\.(\d+)\.(\d+)", debian_version)
        if match is None or (int(match[1]), int(match[2])) != PYTHON_MINOR:
            raise ArtifactError(f"{PYTHON_BINARY_PACKAGE} {debian_version} is not CPython 3.11")
        version = ".".join(match.groups())
        name = f"python{match[1]}.{match[2]}"

        top = scratch / "stage" / "python"
        _copy_file(root / "usr" / "bin" / name, top / "bin" / name, 0o755)
        # Relative links, like python-build-standalone's.
        for alias in ("python3", "python"):
            (top / "bin" / alias).symlink_to(name)
        stdlib = root / "usr" / "lib" / name
        # uv refuses archives with absolute link targets (Debian: sitecustomize.py -> /etc/...).
        _inline_absolute_links(root, stdlib)
        shutil.copytree(stdlib, top / "lib" / name, symlinks=True)
        for dropped in PYTHON_DROPPED:
            (top / "lib" / name / dropped).unlink(missing_ok=True)
        _check_links_stay_inside(top)

        output = work / PYTHON_TARBALL.format(version=version)
        _write_tarball(top, output)
    return output


def _bundle_libraries(root: Path, binary: Path, lib: Path) -> list[Path]:
    """Copies the libraries ``binary`` loads, directly or not, from ``root`` into ``lib``.

    Each is copied as a real file under the soname asked for: Debian reaches some through
    symlinks or alternatives (libopenblas.so.0 lives in openblas-pthread/).
    """
    copied: list[Path] = []
    pending = deque((soname, binary) for soname in _needed(binary))
    while pending:
        soname, needer = pending.popleft()
        target = lib / soname
        if soname in GLIBC_SONAMES or target.exists():
            continue
        candidates = sorted(root.rglob(soname))
        if not candidates:
            raise ArtifactError(f"no downloaded package has {soname}, needed by {needer.name}")
        _copy_file(_resolve_inside(root, candidates[0]), target, 0o644)
        copied.append(target)
        pending.extend((dependency, target) for dependency in _needed(target))
    return copied


def _needed(elf: Path) -> list[str]:
    """The DT_NEEDED entries of an ELF file."""
    return _run("patchelf", "--print-needed", elf).split()


def _inline_absolute_links(root: Path, tree: Path) -> None:
    """Replaces each absolute symlink under ``tree`` by a copy of its target (taken in ``root``)."""
    for link in sorted(path for path in tree.rglob("*") if path.is_symlink()):
        if not os.readlink(link).startswith("/"):
            continue
        target = _resolve_inside(root, link)
        link.unlink()
        if target.is_dir():
            shutil.copytree(target, link, symlinks=True)
        else:
            shutil.copy2(target, link)


def _check_links_stay_inside(top: Path) -> None:
    """Fails if a symlink under ``top`` is absolute or points outside it."""
    for link in (path for path in top.rglob("*") if path.is_symlink()):
        destination = os.readlink(link)
        if destination.startswith("/") or not (link.parent / destination).resolve().is_relative_to(
            top.resolve()
        ):
            raise ArtifactError(f"{link.relative_to(top)} -> {destination} leaves the tarball")


def _resolve_inside(root: Path, path: Path) -> Path:
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


def _debian_root(scratch: Path, packages: Sequence[str]) -> Path:
    """Downloads Debian packages into ``scratch/debs``; unpacks them all into ``scratch/root``."""
    debs = scratch / "debs"
    debs.mkdir()
    # As root, apt downloads as its sandbox user _apt, who cannot write into this private scratch
    # directory: it warns and falls back to root. Ask for root directly, without the warning.
    _run("apt-get", "download", "-o", "APT::Sandbox::User=root", *packages, cwd=debs)
    root = scratch / "root"
    for deb in sorted(debs.glob("*.deb")):
        _run("dpkg-deb", "--extract", deb, root)
    return root


def _package_version(scratch: Path, package: str) -> str:
    """The version of a package downloaded by :func:`_debian_root`."""
    found = sorted((scratch / "debs").glob(f"{package}_*.deb"))
    if len(found) != 1:
        raise ArtifactError(f"expected one downloaded {package} package, found {len(found)}")
    return _run("dpkg-deb", "--field", found[0], "Version").strip()


def _copy_file(source: Path, destination: Path, mode: int) -> None:
    """Copies one file's contents (not its metadata) and sets its mode."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    destination.chmod(mode)


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Tar metadata that depends on the contents only."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = TAR_MTIME
    if not info.issym():
        info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
    return info


def _write_tarball(top: Path, output: Path) -> None:
    """Writes ``top`` (as the tarball's one top directory) to ``output``, .tar.xz or .tar.gz."""
    with tempfile.NamedTemporaryFile(dir=output.parent, prefix=".tmp-", delete=False) as raw:
        try:
            with (
                _compressor(raw, output.name) as compressed,
                tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
            ):
                archive.add(top, arcname=top.name, filter=_normalise)
            raw.close()
            Path(raw.name).chmod(0o644)
            os.replace(raw.name, output)
        except BaseException:
            Path(raw.name).unlink(missing_ok=True)
            raise


def _compressor(raw: IO[bytes], name: str) -> gzip.GzipFile | lzma.LZMAFile:
    """A compressing stream over ``raw``, chosen by the tarball's name."""
    if name.endswith(".tar.xz"):
        return lzma.LZMAFile(raw, mode="wb", preset=XZ_PRESET)
    if name.endswith(".tar.gz"):
        # gzip stores a time and a file name in its header: pin both.
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0)
    raise ArtifactError(f"unknown tarball kind: {name}")


def _replace_atomically(path: Path, data: bytes) -> None:
    """Writes ``path`` so that readers never see it half-written."""
    temporary = path.with_name(f".tmp-{path.name}")
    temporary.write_bytes(data)
    temporary.chmod(0o644)
    os.replace(temporary, path)


@contextlib.contextmanager
def _scratch(work: Path) -> Iterator[Path]:
    """A scratch directory inside ``work`` (same file system: outputs are moved into place)."""
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work, prefix=".build-") as name:
        yield Path(name)


def _run(*command: str | Path, cwd: Path | None = None) -> str:
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

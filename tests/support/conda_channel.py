"""A conda channel made here and served on 127.0.0.1: the stand-in for conda-forge.

conda-forge cannot be reached from these machines. A channel is a directory per platform
(``linux-64``, ``linux-aarch64``, ``noarch``) holding packages and a ``repodata.json`` that lists
each package's name, version, build, dependencies, size, MD5 and SHA-256; that is all the lock
maker and the installer read. Packages here are ``.tar.bz2`` archives with ``info/index.json``,
``info/paths.json`` and ``info/files``, as conda-build writes them (no prefix placeholders: the
files are relocatable as they are).
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUBDIRS = ("linux-64", "linux-aarch64", "noarch")
TAR_MTIME = 1_672_531_200
BZ2_LEVEL = 1
"""Fast: the stand-in NWChem package holds about 100 MB."""


@dataclass(frozen=True)
class Package:
    """One conda package: its identity, dependencies and files (path in the prefix -> source)."""

    name: str
    version: str
    build: str
    subdir: str
    depends: Sequence[str] = ()
    files: Mapping[str, bytes | Path] = field(default_factory=dict)
    executables: frozenset[str] = frozenset()
    """Paths in ``files`` given mode 0755 (a Path source keeps its own mode)."""
    published: int = TAR_MTIME
    """When the channel got it (seconds since the epoch): repodata's ``timestamp``."""

    @property
    def file_name(self) -> str:
        """``name-version-build.tar.bz2``, conda's file name."""
        return f"{self.name}-{self.version}-{self.build}.tar.bz2"

    def index(self) -> dict[str, object]:
        """``info/index.json``."""
        arch = {"linux-64": "x86_64", "linux-aarch64": "aarch64"}.get(self.subdir)
        return {
            "name": self.name,
            "version": self.version,
            "build": self.build,
            "build_number": 0,
            "depends": list(self.depends),
            "subdir": self.subdir,
            "arch": arch,
            "platform": "linux" if arch else None,
            "timestamp": self.published * 1000,
            "license": "see the package's sources",
        }


def _add(archive: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, TAR_MTIME
    archive.addfile(info, io.BytesIO(data))


def _add_path(archive: tarfile.TarFile, name: str, source: Path) -> None:
    info = archive.gettarinfo(str(source), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = TAR_MTIME
    if info.isreg():
        with source.open("rb") as stream:
            archive.addfile(info, stream)
    else:
        archive.addfile(info)


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _md5(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "md5").hexdigest()


def write_package(package: Package, directory: Path) -> Path:
    """The package archive in ``directory/<subdir>/`` (kept if already there)."""
    output = directory / package.subdir / package.file_name
    if output.exists():
        return output
    output.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    partial = output.with_name(output.name + ".partial")
    with (
        bz2.open(partial, "wb", compresslevel=BZ2_LEVEL) as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name, source in sorted(package.files.items()):
            if isinstance(source, Path):
                _add_path(archive, name, source)
                kind = "softlink" if source.is_symlink() else "hardlink"
            else:
                mode = 0o755 if name in package.executables else 0o644
                _add(archive, name, source, mode)
                kind = "hardlink"
            paths.append({"_path": name, "path_type": kind})
        _add(archive, "info/index.json", json.dumps(package.index(), indent=1).encode(), 0o644)
        paths_json = {"paths": paths, "paths_version": 1}
        _add(archive, "info/paths.json", json.dumps(paths_json, indent=1).encode(), 0o644)
        _add(archive, "info/files", "".join(f"{p['_path']}\n" for p in paths).encode(), 0o644)
    partial.rename(output)
    return output


def write_channel(directory: Path, packages: Sequence[Package]) -> Path:
    """Every package and each subdir's ``repodata.json`` under ``directory``; returns it."""
    for subdir in SUBDIRS:
        (directory / subdir).mkdir(parents=True, exist_ok=True)
    repodata: dict[str, dict[str, dict[str, object]]] = {subdir: {} for subdir in SUBDIRS}
    for package in packages:
        archive = write_package(package, directory)
        record = package.index() | {
            "size": archive.stat().st_size,
            "md5": _md5(archive),
            "sha256": _sha256(archive),
        }
        repodata[package.subdir][package.file_name] = record
    for subdir, records in repodata.items():
        document = {"info": {"subdir": subdir}, "packages": records, "packages.conda": {}}
        (directory / subdir / "repodata.json").write_text(json.dumps(document, indent=1))
    return directory

"""The stand-in for conda-forge: a loopback channel with Debian's NWChem, OpenMPI and xTB.

conda-forge cannot be reached here, so the worker's lock is made (by ``worker/conda_env.py
lock``, the real lock maker) against a channel built from Debian bookworm's packages for amd64
and arm64 (``apt-get download`` with ``:arm64`` after ``dpkg --add-architecture arm64``), served
on 127.0.0.1. Its packages, per subdir (linux-64, linux-aarch64):

- ``nwchem 7.0.2``: Debian's ``nwchem-openmpi`` with OpenMPI 4.1.4 and PMIx 4 (the real
  package: NWChem 7.3.1 with OpenMPI 5, separate packages). Debian's files keep their layout
  relative to ``/usr`` (so ``OPAL_PREFIX`` relocates OpenMPI as it does a conda install); the
  binaries are in ``libexec/standin`` behind ``bin/`` wrappers that put the libraries they load
  (``lib/standin``, copied by soname) on ``LD_LIBRARY_PATH`` and point PMIx at its plugins.
  OpenMPI plugins whose libraries Debian's packages here do not hold are left out. Basis sets
  in ``share/nwchem/libraries``.
- ``xtb 6.5.1``: Debian's xTB with its libraries in ``lib/xtb-standin`` (``$ORIGIN`` run paths)
  and parameters in ``share/xtb`` (the real package: xTB 6.7.1).
- ``crest 3.0.2``: the FAKE CREST script ``artifacts.CREST_SCRIPT`` (no CREST exists here).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from tests.images import artifacts, daemon
from tests.support.conda_channel import Package, write_channel

SUBDIR = {"amd64": "linux-64", "arm64": "linux-aarch64"}
TRIPLET = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
NWCHEM_VERSION = "7.0.2"
XTB_VERSION = artifacts.XTB_DEBIAN_VERSION
CREST_VERSION = artifacts.CREST_VERSION
STANDIN_SPECS = (f"nwchem =={NWCHEM_VERSION}", f"xtb =={XTB_VERSION}", f"crest =={CREST_VERSION}")
"""What the image tests lock from the stand-in channel (worker/environment.yml asks for the real
versions, which the stand-in does not have)."""
NWCHEM_PACKAGES = (
    "nwchem-openmpi",
    "nwchem-data",
    "openmpi-bin",
    "openmpi-common",
    "libopenmpi3",
    "libpmix2",
    "libhwloc15",
    "libevent-core-2.1-7",
    "libevent-pthreads-2.1-7",
    "libscalapack-openmpi2.2",
    "libopenblas0-pthread",
    "libgfortran5",
    "libgomp1",
    "libgcc-s1",
    "libstdc++6",
    "libpython3.11",
    "libexpat1",
    "zlib1g",
    "libudev1",
    "libnuma1",
    "libfabric1",
    "libucx0",
    "libibverbs1",
    "librdmacm1",
    "libnl-3-200",
    "libnl-route-3-200",
    "libquadmath0",
    "libpsm2-2",
    "libmunge2",
    "ibverbs-providers",
)
"""Debian's NWChem and everything its binaries and OpenMPI's plugins load, beyond glibc."""
AMD64_ONLY = frozenset({"libquadmath0", "libpsm2-2"})
ARCHITECTURE_ALL = frozenset({"nwchem-data", "openmpi-common"})
"""Packages of every architecture at once (``apt-get download`` takes no ``:arch`` for them)."""
XTB_PACKAGES = artifacts.XTB_PACKAGES
GLIBC_SONAMES = artifacts.GLIBC_SONAMES | {"ld-linux-aarch64.so.1"}
NWCHEM_BINARIES = {"nwchem": "usr/bin/nwchem.openmpi", "orterun": "usr/bin/orterun"}
WRAPPED = {"nwchem": "nwchem", "mpirun": "orterun", "mpiexec": "orterun", "orterun": "orterun"}
"""Command in bin/ -> the Debian binary it runs."""
WRAPPER = """\
#!/bin/sh
# Image-test stand-in (not conda-forge's package): Debian's {binary}, relocated into this prefix.
prefix=$(cd "$(dirname "$0")/.." && pwd -P)
export LD_LIBRARY_PATH="$prefix/lib/standin${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"
export OPAL_PREFIX="${{OPAL_PREFIX:-$prefix}}"
export PMIX_INSTALL_PREFIX="$prefix/lib/{triplet}/pmix2"
exec "$prefix/libexec/standin/{binary}" "$@"
"""


def debian_root(cache: Path, architecture: str, name: str, packages: tuple[str, ...]) -> Path:
    """Debian's ``packages`` for ``architecture`` unpacked into one directory (kept in cache)."""
    # The list is part of the name: another list is another root.
    digest = hashlib.sha256(" ".join(packages).encode()).hexdigest()[:8]
    root = cache / f"{name}-{architecture}-{digest}"
    if root.exists():
        return root / "root"
    ensure_foreign_architecture(architecture)
    partial = cache / f".{name}-{architecture}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    debs = partial / "debs"
    debs.mkdir(parents=True)
    wanted = [p for p in packages if architecture == "amd64" or p not in AMD64_ONLY]
    artifacts.run(
        "apt-get", "download", "-o", "APT::Sandbox::User=root",
        *(p if p in ARCHITECTURE_ALL else f"{p}:{architecture}" for p in wanted), cwd=debs,
    )  # fmt: skip
    for deb in sorted(debs.glob("*.deb")):
        artifacts.run("dpkg-deb", "--extract", deb, partial / "root")
    partial.rename(root)
    return root / "root"


def ensure_foreign_architecture(architecture: str) -> None:
    """Refuse, saying what to run, unless apt knows ``architecture``'s packages.

    Adding an architecture changes the machine for good: that is set-up (``scripts/test``), not
    something a test does behind the user's back.
    """
    if architecture not in daemon.dpkg_architectures():
        raise RuntimeError(
            f"apt knows no {architecture} packages: run `dpkg --add-architecture {architecture} "
            "&& apt-get update` (scripts/test does, as root)"
        )


def _needed(elf: Path) -> list[str]:
    return artifacts.run("patchelf", "--print-needed", elf).split()


def _find(root: Path, soname: str) -> Path | None:
    """The file providing ``soname`` in ``root`` (its links followed), or None."""
    # The soname's link, or (where ldconfig would have made the link) the versioned file.
    candidates = [
        path
        for pattern in (soname, f"{soname}.*")
        for top in ("usr/lib", "lib")
        for path in sorted((root / top).rglob(pattern))
    ]
    for candidate in candidates:
        try:
            return artifacts.resolve_inside(root, candidate)
        except artifacts.ArtifactError:
            continue
    return None


def bundle(root: Path, elfs: list[Path], lib: Path) -> str | None:
    """Copy every library ``elfs`` load (transitively) into ``lib``; else the missing soname."""
    pending = deque(soname for elf in elfs for soname in _needed(elf))
    found: dict[str, Path] = {}
    while pending:
        soname = pending.popleft()
        if soname in GLIBC_SONAMES or soname in found or (lib / soname).exists():
            continue
        source = _find(root, soname)
        if source is None:
            return soname
        found[soname] = source
        pending.extend(_needed(source))
    for soname, source in found.items():
        artifacts.copy_file(source, lib / soname, 0o644)
    return None


def nwchem_files(cache: Path, architecture: str) -> dict[str, bytes | Path]:
    """The stand-in nwchem package's files: NWChem, OpenMPI and PMIx relocated (see above)."""
    root = debian_root(cache, architecture, "nwchem-debs", NWCHEM_PACKAGES)
    stage = cache / f"nwchem-stage-{architecture}"
    if not stage.exists():
        partial = cache / f".nwchem-stage-{architecture}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        _stage_nwchem(root, architecture, partial)
        partial.rename(stage)
    return tree_files(stage)


def tree_files(top: Path) -> dict[str, bytes | Path]:
    """Every file and link under ``top`` by its path below it (links not followed)."""
    files: dict[str, bytes | Path] = {}
    for directory, subdirectories, names in os.walk(top):
        for name in names + [d for d in subdirectories if (Path(directory) / d).is_symlink()]:
            path = Path(directory) / name
            files[str(path.relative_to(top))] = path
    return files


def _stage_nwchem(root: Path, architecture: str, stage: Path) -> None:
    """Lay NWChem, OpenMPI and PMIx out under ``stage`` as a prefix."""
    triplet = TRIPLET[architecture]
    lib = stage / "lib" / "standin"
    binaries = []
    for name, path in NWCHEM_BINARIES.items():
        target = stage / "libexec" / "standin" / name
        artifacts.copy_file(artifacts.resolve_inside(root, root / path), target, 0o755)
        binaries.append(target)
    if missing := bundle(root, binaries, lib):
        raise artifacts.ArtifactError(f"{missing}, needed by NWChem or OpenMPI, is not in {root}")
    for relative in (
        f"usr/lib/{triplet}/openmpi/lib/openmpi3",
        f"usr/lib/{triplet}/pmix2/lib/pmix",
    ):
        for plugin in sorted((root / relative).glob("*.so")):
            if bundle(root, [plugin], lib) is None:
                target = stage / relative.removeprefix("usr/") / plugin.name
                artifacts.copy_file(plugin, target, 0o644)
    for relative in (
        "usr/share/openmpi",
        f"usr/lib/{triplet}/pmix2/share",
        "usr/share/nwchem/libraries",
    ):
        # Links stay links: NWChem's basis library links back into itself.
        shutil.copytree(root / relative, stage / relative.removeprefix("usr/"), symlinks=True)
    for command, binary in WRAPPED.items():
        wrapper = stage / "bin" / command
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(WRAPPER.format(binary=binary, triplet=triplet))
        wrapper.chmod(0o755)


def xtb_files(cache: Path, architecture: str) -> dict[str, bytes | Path]:
    """The stand-in xtb package's files: Debian's xTB, its libraries by ``$ORIGIN`` run paths."""
    root = debian_root(cache, architecture, "xtb-debs", XTB_PACKAGES)
    stage = cache / f"xtb-stage-{architecture}"
    if not stage.exists():
        partial = cache / f".xtb-stage-{architecture}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        xtb = partial / "bin" / "xtb"
        artifacts.copy_file(root / "usr" / "bin" / "xtb", xtb, 0o755)
        lib = partial / "lib" / "xtb-standin"
        if missing := bundle(root, [xtb], lib):
            raise artifacts.ArtifactError(f"{missing}, needed by xTB, is not in {root}")
        artifacts.run("patchelf", "--set-rpath", "$ORIGIN/../lib/xtb-standin", xtb)
        for library in sorted(lib.iterdir()):
            artifacts.run("patchelf", "--set-rpath", "$ORIGIN", library)
        for pattern in artifacts.XTB_PARAMETER_FILES:
            for parameters in sorted((root / "usr" / "share" / "xtb").glob(pattern)):
                artifacts.copy_file(parameters, partial / "share" / "xtb" / parameters.name, 0o644)
        partial.rename(stage)
    return tree_files(stage)


def crest_files() -> Mapping[str, bytes]:
    """The FAKE CREST: a script that only answers --version."""
    return {"bin/crest": artifacts.CREST_SCRIPT.encode()}


def standin_channel(cache: Path) -> Path:
    """The stand-in channel directory (built once per cache): both subdirs, three packages."""
    channel = cache / "conda-channel"
    packages = []
    for architecture, subdir in SUBDIR.items():
        packages += [
            Package("nwchem", NWCHEM_VERSION, "debian_openmpi4_0", subdir,
                    files=nwchem_files(cache, architecture)),
            Package("xtb", XTB_VERSION, "debian_0", subdir, files=xtb_files(cache, architecture)),
            Package("crest", CREST_VERSION, "FAKE_0", subdir, files=crest_files(),
                    executables=frozenset({"bin/crest"})),
        ]  # fmt: skip
    return write_channel(channel, packages)

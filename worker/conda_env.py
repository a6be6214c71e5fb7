"""The worker's scientific stack (NWChem, xTB, CREST, OpenMPI) as one locked conda environment.

Two commands, both run by Python with py-rattler (``requirements.txt`` pins it by hash):

``lock SPEC LOCK``
    Solve ``environment.yml`` (its channels and specs) for linux-64 and linux-aarch64 and write
    the lock: every package's URL, MD5 and SHA-256, per platform. Needs the channel; run it as
    ``dagger call worker-lock export --path worker/conda.lock`` (LOCK_COMMAND).
``install LOCK PLATFORM PREFIX``
    Install the locked packages of one platform (``linux/amd64`` or ``linux/arm64``) into
    PREFIX, on any build machine: each file is downloaded and checked against its locked SHA-256
    HERE, before rattler sees it, so that a mismatch names the package; rattler then links the
    verified files for the target platform (no solve, no link scripts run).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import rattler

LOCK_PATH = "worker/conda.lock"
"""Where the lock lives in this repository and in the build context."""
LOCK_COMMAND = f"dagger call worker-lock export --path {LOCK_PATH}"
"""The command that makes the lock (it needs the channel, e.g. conda-forge)."""
SUBDIRS = {"linux/amd64": "linux-64", "linux/arm64": "linux-aarch64"}
"""Container platform -> conda subdir; the lock holds both."""
ENVIRONMENT = "default"
GLIBC = "2.36"
"""The final image's glibc (Debian bookworm): the newest conda packages may ask for."""
LINUX = "6.1"
DOWNLOAD_TIMEOUT = 300.0


class LockError(RuntimeError):
    """The lock is missing, incomplete, or a file does not match it."""


def read_spec(path: Path) -> tuple[list[str], list[str]]:
    """The channels and package specs of an ``environment.yml``."""
    import yaml  # only the lock maker reads YAML

    document = yaml.safe_load(path.read_text())
    channels = [str(channel) for channel in document.get("channels") or []]
    specs = [str(spec) for spec in document.get("dependencies") or []]
    if not channels or not specs:
        raise LockError(f"{path} needs both channels and dependencies")
    return channels, specs


def virtual_packages() -> list[rattler.GenericVirtualPackage]:
    """What the target system offers, stated rather than detected (the lock is made anywhere)."""
    return [
        rattler.GenericVirtualPackage(
            rattler.PackageName(name), rattler.Version(version), rattler.BuildString("0")
        )
        for name, version in (("__unix", "0"), ("__linux", LINUX), ("__glibc", GLIBC))
    ]


async def make_lock(channels: Sequence[str], specs: Sequence[str]) -> rattler.LockFile:
    """Solve ``specs`` from ``channels`` for every subdir; the lock of the result."""
    lock = rattler.LockFile([rattler.LockPlatform(subdir) for subdir in SUBDIRS.values()])
    lock.set_channels(ENVIRONMENT, [rattler.LockChannel(channel) for channel in channels])
    for subdir in SUBDIRS.values():
        solved = await rattler.solve(
            sources=list(channels),
            specs=list(specs),
            platforms=[rattler.Subdir(subdir), rattler.Subdir("noarch")],
            virtual_packages=virtual_packages(),
        )
        for record in solved:
            lock.add_conda_package(ENVIRONMENT, rattler.LockPlatform(subdir), record)
    return lock


def locked_records(lock: Path, platform: str) -> list[rattler.RepoDataRecord]:
    """The locked packages for ``platform``; refused if the lock is missing or lacks a hash."""
    if platform not in SUBDIRS:
        raise LockError(f"the worker is built for {', '.join(SUBDIRS)}, not {platform}")
    if not lock.is_file():
        raise LockError(
            f"{LOCK_PATH} is missing: the worker installs NWChem, xTB and CREST only from a "
            f"lock. Make it with `{LOCK_COMMAND}`, review and commit it"
        )
    environment = rattler.LockFile.from_path(lock).environment(ENVIRONMENT)
    subdir = SUBDIRS[platform]
    if environment is None:
        raise LockError(
            f"{LOCK_PATH} has no environment {ENVIRONMENT!r}; remake it: `{LOCK_COMMAND}`"
        )
    # rattler answers only for the lock's own platform objects, not for new ones.
    platforms = [locked for locked in environment.platforms() if locked.name == subdir]
    records = environment.conda_repodata_records_for_platform(platforms[0]) if platforms else None
    if not records:
        raise LockError(f"{LOCK_PATH} has no packages for {subdir}; remake it: `{LOCK_COMMAND}`")
    unhashed = [record.file_name for record in records if not record.sha256]
    if unhashed:
        raise LockError(f"{LOCK_PATH} has no SHA-256 for {', '.join(unhashed)}")
    return records


def download_verified(record: rattler.RepoDataRecord, directory: Path) -> Path:
    """Download one locked package and check its SHA-256; a mismatch names the package."""
    target = directory / record.file_name
    if not record.url.startswith(("https://", "http://")):
        raise LockError(f"{record.name.normalized}: {record.url} is not an HTTP(S) URL")
    with urllib.request.urlopen(record.url, timeout=DOWNLOAD_TIMEOUT) as response:  # noqa: S310 (checked above)
        target.write_bytes(response.read())
    with target.open("rb") as stream:
        actual = hashlib.file_digest(stream, "sha256").hexdigest()
    expected = bytes(record.sha256).hex() if record.sha256 else ""
    if actual != expected:
        raise LockError(
            f"checksum mismatch: {record.name.normalized} {record.version} ({record.url}) has "
            f"SHA-256 {actual}, but {LOCK_PATH} says {expected}"
        )
    return target


async def install(lock: Path, platform: str, prefix: Path) -> None:
    """Install the locked packages of ``platform`` into ``prefix``, each file verified first."""
    records = locked_records(lock, platform)
    with tempfile.TemporaryDirectory(prefix="conda-packages-") as scratch:
        verified = []
        for record in records:
            archive = download_verified(record, Path(scratch))
            # rattler reads the verified local file, never the network.
            verified.append(
                rattler.RepoDataRecord(
                    package_record=record,
                    file_name=record.file_name,
                    url=archive.as_uri(),
                    channel=record.channel or "",
                )
            )
        await rattler.install(
            verified,
            target_prefix=prefix,
            cache_dir=Path(scratch) / "cache",
            platform=rattler.Subdir(SUBDIRS[platform]),
            execute_link_scripts=False,
            show_progress=False,
        )


def main(arguments: Sequence[str] | None = None) -> int:
    """``lock SPEC LOCK`` or ``install LOCK PLATFORM PREFIX``; errors go to stderr, exit 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lock_command = commands.add_parser("lock", help="solve environment.yml; write the lock")
    lock_command.add_argument("spec", type=Path)
    lock_command.add_argument("lock", type=Path)
    install_command = commands.add_parser("install", help="install one platform's packages")
    install_command.add_argument("lock", type=Path)
    install_command.add_argument("platform")
    install_command.add_argument("prefix", type=Path)
    options = parser.parse_args(arguments)
    try:
        if options.command == "lock":
            channels, specs = read_spec(options.spec)
            asyncio.run(make_lock(channels, specs)).to_path(options.lock)
        else:
            asyncio.run(install(options.lock, options.platform, options.prefix))
    except LockError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

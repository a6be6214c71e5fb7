"""The worker's scientific stack (NWChem, xTB, CREST, OpenMPI) as one locked conda environment.

Two commands, both run by Python with py-rattler (``requirements.txt`` pins it by hash):

``lock SPEC LOCK [--made-in IMAGE]``
    Solve ``environment.yml`` (its channels, specs and ``exclude-newer`` cut-off) for linux-64,
    then for linux-aarch64 held to linux-64's version of every package it has too, and write the
    lock: every package's URL, MD5 and SHA-256, per platform, and under ``made-by`` what made it
    (cut-off, tool versions, the image) and every package whose version differs between the
    platforms, with the reason. The same spec and tools give the same file. Needs the channel;
    run it as ``dagger call worker-lock export --path worker/conda.lock`` (LOCK_COMMAND) or
    through the ``worker-lock`` workflow (LOCK_WORKFLOW).
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
import importlib.metadata
import platform as host
import sys
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rattler

LOCK_PATH = "worker/conda.lock"
"""Where the lock lives in this repository and in the build context."""
LOCK_COMMAND = f"dagger call worker-lock export --path {LOCK_PATH}"
"""The command that makes the lock (it needs the channel, e.g. conda-forge)."""
LOCK_WORKFLOW = ".github/workflows/worker-lock.yml"
"""The workflow that makes the lock on a GitHub runner: no Docker or Dagger needed locally."""
SUBDIRS = {"linux/amd64": "linux-64", "linux/arm64": "linux-aarch64"}
"""Container platform -> conda subdir; the lock holds both. The first is solved first, and the
others are held to its versions."""
NOARCH = "noarch"
CUT_OFF_KEY = "exclude-newer"
"""The key of ``environment.yml`` that holds the solve's cut-off: nothing newer is locked."""
MADE_BY_KEY = "made-by"
"""The lock's own key (beside rattler's) recording what made it; rattler ignores it."""
TOOL = "py-rattler"
"""The distribution that solves; its version is recorded in the lock."""
ENVIRONMENT = "default"
GLIBC = "2.36"
"""The final image's glibc (Debian bookworm): the newest conda packages may ask for."""
LINUX = "6.1"
DOWNLOAD_TIMEOUT = 300.0


class LockError(RuntimeError):
    """The lock is missing, incomplete, or a file does not match it."""


@dataclass(frozen=True)
class Spec:
    """What the lock is made from: ``environment.yml``'s channels, specs and cut-off."""

    channels: list[str]
    specs: list[str]
    exclude_newer: datetime
    """No package published after this instant is locked (UTC)."""


@dataclass(frozen=True)
class Difference:
    """A package whose locked version is not the same on every platform, and why."""

    name: str
    versions: dict[str, str | None]
    """Subdir -> locked version (None: not in that platform's environment)."""
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """As recorded in the lock."""
        return {"package": self.name, **self.versions, "reason": self.reason}


def read_spec(path: Path) -> Spec:
    """The channels, package specs and cut-off of an ``environment.yml``."""
    import yaml  # only the lock maker reads YAML

    document = yaml.safe_load(path.read_text())
    channels = [str(channel) for channel in document.get("channels") or []]
    specs = [str(spec) for spec in document.get("dependencies") or []]
    if not channels or not specs:
        raise LockError(f"{path} needs both channels and dependencies")
    return Spec(channels, specs, parse_cut_off(document.get(CUT_OFF_KEY), path))


def parse_cut_off(value: object, path: Path) -> datetime:
    """``exclude-newer``: an RFC 3339 time with its offset, e.g. 2026-12-01T00:00:00Z; in UTC."""
    accepted = (
        f"{path}: `{CUT_OFF_KEY}` must be the solve's cut-off, an RFC 3339 time with its "
        "offset such as 2026-12-01T00:00:00Z"
    )
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as error:
            raise LockError(f"{accepted}; got {value!r}") from error
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise LockError(f"{accepted}; got {value!r}")
    return value.astimezone(UTC)


def virtual_packages() -> list[rattler.GenericVirtualPackage]:
    """What the target system offers, stated rather than detected (the lock is made anywhere)."""
    return [
        rattler.GenericVirtualPackage(
            rattler.PackageName(name), rattler.Version(version), rattler.BuildString("0")
        )
        for name, version in (("__unix", "0"), ("__linux", LINUX), ("__glibc", GLIBC))
    ]


async def solve(
    gateway: rattler.Gateway, spec: Spec, subdir: str, constraints: Sequence[str] = ()
) -> list[rattler.RepoDataRecord]:
    """``spec`` solved for ``subdir`` (and noarch), up to its cut-off, within ``constraints``."""
    try:
        return await rattler.solve(
            sources=list(spec.channels),
            specs=list(spec.specs),
            gateway=gateway,
            platforms=[rattler.Subdir(subdir), rattler.Subdir(NOARCH)],
            virtual_packages=virtual_packages(),
            exclude_newer=spec.exclude_newer,
            constraints=list(constraints),
        )
    except Exception as error:  # rattler's solver errors have no common public base
        held = f", held to {len(constraints)} versions of the first platform" if constraints else ""
        raise LockError(f"cannot solve {spec.specs} for {subdir}{held}: {error}") from error


async def available_versions(
    gateway: rattler.Gateway, spec: Spec, subdir: str, names: Sequence[str]
) -> dict[str, set[str]]:
    """Each of ``names``: the versions ``subdir`` (or noarch) offers up to the cut-off."""
    found: dict[str, set[str]] = {name: set() for name in names}
    results = await gateway.query(
        list(spec.channels), [rattler.Subdir(subdir), rattler.Subdir(NOARCH)], list(names),
        recursive=False,
    )  # fmt: skip
    for records in results:
        for record in records:
            stamp = record.timestamp
            if stamp is None or stamp.astimezone(UTC) <= spec.exclude_newer:
                found.setdefault(record.name.normalized, set()).add(str(record.version))
    return found


def versions(records: Sequence[rattler.RepoDataRecord]) -> dict[str, str]:
    """Package name -> version of a solved environment."""
    return {record.name.normalized: str(record.version) for record in records}


def explain(
    name: str, locked: Mapping[str, Mapping[str, str]], offered: Mapping[str, set[str]]
) -> Difference | None:
    """Why ``name`` is not locked at one version on every platform; None when it is."""
    first, *others = SUBDIRS.values()
    by_subdir = {subdir: locked[subdir].get(name) for subdir in SUBDIRS.values()}
    if len(set(by_subdir.values())) == 1:
        return None
    wanted = by_subdir[first]
    other = next(subdir for subdir in others if by_subdir[subdir] != wanted)
    if wanted is None:
        reason = f"only the {other} environment needs it"
    elif by_subdir[other] is None:
        reason = (
            f"{other} has no {name} up to the cut-off"
            if not offered.get(name)
            else f"only the {first} environment needs it"
        )
    elif wanted not in offered.get(name, set()):
        reason = f"{other} has no {name} {wanted} up to the cut-off"
    else:
        reason = f"the {other} solve could not take {name} {wanted} with the rest"
    return Difference(name, by_subdir, reason)


async def make_lock(
    spec: Spec, made_in: str | None = None
) -> tuple[rattler.LockFile, dict[str, Any]]:
    """The lock of ``spec`` for every subdir, and its ``made-by`` record.

    The first subdir is solved freely; every other is held to the first's version of each
    package it offers too, so that both platforms run the same versions. What still differs is
    listed in the record, with the reason.
    """
    first, *others = SUBDIRS.values()
    # A fresh repodata cache: what an earlier run cached never stands in for the channel.
    with tempfile.TemporaryDirectory(prefix="repodata-") as cache:
        gateway = rattler.Gateway(cache_dir=Path(cache))
        solved = {first: await solve(gateway, spec, first)}
        locked = {first: versions(solved[first])}
        offered: dict[str, set[str]] = {}
        for subdir in others:
            offered = await available_versions(gateway, spec, subdir, sorted(locked[first]))
            held = [
                f"{name} =={version}"
                for name, version in sorted(locked[first].items())
                if version in offered.get(name, set())
            ]
            solved[subdir] = await solve(gateway, spec, subdir, held)
            locked[subdir] = versions(solved[subdir])
    lock = rattler.LockFile([rattler.LockPlatform(subdir) for subdir in SUBDIRS.values()])
    lock.set_channels(ENVIRONMENT, [rattler.LockChannel(channel) for channel in spec.channels])
    for subdir, records in solved.items():
        for record in records:
            lock.add_conda_package(ENVIRONMENT, rattler.LockPlatform(subdir), record)
    names = sorted({name for environment in locked.values() for name in environment})
    differences = [found for name in names if (found := explain(name, locked, offered))]
    return lock, made_by(spec, made_in, differences)


def made_by(spec: Spec, made_in: str | None, differences: Sequence[Difference]) -> dict[str, Any]:
    """What made the lock: cut-off, tools, image; and what differs between the platforms."""
    record: dict[str, Any] = {
        CUT_OFF_KEY: spec.exclude_newer.strftime("%Y-%m-%dT%H:%M:%SZ"),
        TOOL: importlib.metadata.version(TOOL),
        "python": host.python_version(),
        "solved-first": next(iter(SUBDIRS.values())),
    }
    if made_in is not None:
        record["image"] = made_in
    record["differences"] = [difference.as_dict() for difference in differences]
    return record


def write_lock(lock: rattler.LockFile, record: Mapping[str, Any], path: Path) -> None:
    """Write rattler's lock, then the ``made-by`` record as one more top-level key."""
    import yaml

    lock.to_path(path)
    text = path.read_text()
    extra = yaml.safe_dump({MADE_BY_KEY: dict(record)}, sort_keys=False, default_flow_style=False)
    path.write_text(f"{text.rstrip()}\n{extra}")


def locked_records(lock: Path, platform: str) -> list[rattler.RepoDataRecord]:
    """The locked packages for ``platform``; refused if the lock is missing or lacks a hash."""
    if platform not in SUBDIRS:
        raise LockError(f"the worker is built for {', '.join(SUBDIRS)}, not {platform}")
    if not lock.is_file():
        raise LockError(
            f"{LOCK_PATH} is missing: the worker installs NWChem, xTB and CREST only from a "
            f"lock. Make it in the repository that holds the module (its dagger.json): run its "
            f"`worker-lock` workflow ({LOCK_WORKFLOW}) or `{LOCK_COMMAND}` there; review and "
            "commit it"
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
    lock_command.add_argument("--made-in", help="the image (name@digest) this runs in")
    install_command = commands.add_parser("install", help="install one platform's packages")
    install_command.add_argument("lock", type=Path)
    install_command.add_argument("platform")
    install_command.add_argument("prefix", type=Path)
    options = parser.parse_args(arguments)
    try:
        if options.command == "lock":
            lock, record = asyncio.run(make_lock(read_spec(options.spec), options.made_in))
            write_lock(lock, record, options.lock)
        else:
            asyncio.run(install(options.lock, options.platform, options.prefix))
    except LockError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The worker's conda lock: made from a channel, installed only as locked, refused when missing.

The lock maker and installer (``worker/conda_env.py``) run here for real against a stand-in
channel on 127.0.0.1 (``conda_channel``): conda-forge cannot be reached from these machines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagger import dag
from pipeline.main import WORKER_LOCK, WORKER_LOCK_COMMAND, WORKER_LOCK_WORKFLOW, Pipeline
from pipeline.rules.versions import ReleaseInputError

from tests.images.artifacts import serve_files
from tests.support.conda_channel import Package, write_channel
from tests.support.registry_server import RegistryServer
from tests.support.standin import StandInEngine
from tests.support.worker_lock import CONDA_ENV, CUT_OFF, conda_env, make_lock

SUBDIRS = ("linux-64", "linux-aarch64")
LATER = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp())
"""Published after ``CUT_OFF``: never locked."""


def packages() -> list[Package]:
    """A tool that needs a library, per platform; each file says which platform it is for."""
    found = []
    for subdir in SUBDIRS:
        tool = f"#!/bin/sh\necho tool for {subdir}\n".encode()
        found += [
            Package("tool", "1.0", "0", subdir, ("libthing >=2",), {"bin/tool": tool},
                    frozenset({"bin/tool"})),
            Package("libthing", "2.1", "0", subdir, files={"lib/thing.txt": subdir.encode()}),
            Package("libthing", "1.9", "0", subdir, files={"lib/thing.txt": b"too old"}),
        ]  # fmt: skip
    return found


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[str]:
    """The stand-in channel's URL on 127.0.0.1."""
    with serve_files(write_channel(tmp_path / "channel", packages())) as url:
        yield url


@pytest.fixture
def lock(channel: str, tmp_path: Path) -> Path:
    """A lock of ``tool`` made from the stand-in channel."""
    return make_lock(channel, ["tool ==1.0"], tmp_path / "conda.lock")


def locked_urls(lock: Path) -> dict[str, str]:
    """Each locked package URL and its SHA-256."""
    document = yaml.safe_load(lock.read_text())
    return {package["conda"]: package["sha256"] for package in document["packages"]}


def test_the_lock_names_every_package_of_both_platforms_with_its_hash(
    lock: Path, channel: str, tmp_path: Path
) -> None:
    urls = locked_urls(lock)
    assert sorted(urls) == sorted(
        f"{channel}/{subdir}/{name}-{version}-0.tar.bz2"
        for subdir in SUBDIRS
        for name, version in (("tool", "1.0"), ("libthing", "2.1"))
    )
    module = conda_env()
    for url, sha256 in urls.items():
        subdir, file_name = url.rsplit("/", 2)[1:]
        archive = tmp_path / "channel" / subdir / file_name
        assert sha256 == module.hashlib.file_digest(archive.open("rb"), "sha256").hexdigest()


@pytest.mark.parametrize(
    ("platform", "subdir"), [("linux/amd64", "linux-64"), ("linux/arm64", "linux-aarch64")]
)
def test_install_unpacks_the_target_platforms_packages(
    lock: Path, tmp_path: Path, platform: str, subdir: str
) -> None:
    prefix = tmp_path / "prefix"
    asyncio.run(conda_env().install(lock, platform, prefix))
    assert (prefix / "bin" / "tool").read_text().endswith(f"tool for {subdir}\n")
    assert (prefix / "lib" / "thing.txt").read_text() == subdir


def test_a_wrong_hash_in_the_lock_stops_the_install_naming_the_package(
    lock: Path, tmp_path: Path
) -> None:
    (url, sha256), *_ = [(u, h) for u, h in locked_urls(lock).items() if "aarch64/libthing" in u]
    lock.write_text(lock.read_text().replace(sha256, "0" * 64))
    with pytest.raises(conda_env().LockError, match=r"checksum mismatch: libthing 2\.1") as failure:
        asyncio.run(conda_env().install(lock, "linux/arm64", tmp_path / "prefix"))
    assert url in str(failure.value)
    assert not (tmp_path / "prefix" / "bin" / "tool").exists(), "nothing is installed"


def test_without_a_lock_the_installer_names_the_command(tmp_path: Path) -> None:
    result = conda_env().main(["install", str(tmp_path / "conda.lock"), "linux/arm64", "/p"])
    assert result == 1
    with pytest.raises(conda_env().LockError, match="is missing") as failure:
        conda_env().locked_records(tmp_path / "conda.lock", "linux/arm64")
    assert WORKER_LOCK_COMMAND in str(failure.value)


def test_the_installer_refuses_a_platform_the_lock_is_not_for(lock: Path) -> None:
    with pytest.raises(conda_env().LockError, match="not linux/s390x"):
        conda_env().locked_records(lock, "linux/s390x")


def test_the_pipeline_and_the_installer_name_the_same_lock() -> None:
    assert conda_env().LOCK_PATH == WORKER_LOCK
    assert conda_env().LOCK_COMMAND == WORKER_LOCK_COMMAND
    assert conda_env().LOCK_WORKFLOW == WORKER_LOCK_WORKFLOW


@pytest.mark.anyio
async def test_a_release_without_the_lock_is_refused_before_any_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with RegistryServer() as registry:
        engine = StandInEngine(registry.host, added_source_files=frozenset())
        engine.install(monkeypatch)
        pipeline = Pipeline(
            source=dag.directory(), build_files=dag.directory(), registry=registry.host, owner="o"
        )
        with pytest.raises(ReleaseInputError, match=f"{WORKER_LOCK} is missing") as failure:
            await pipeline.builds()
        assert WORKER_LOCK_COMMAND in str(failure.value)
        # each way of adopting: the workflow or command where the module lives; a remote
        # module's caller picks a module commit with the lock (its own checkout is never read)
        assert WORKER_LOCK_WORKFLOW in str(failure.value)
        assert "choose a module commit that holds the lock" in str(failure.value)
        with pytest.raises(ReleaseInputError, match=f"{WORKER_LOCK} is missing"):
            await pipeline.rehearse("v2.4.0")
        assert engine.builds == []
        # a plan builds nothing: it needs no lock
        assert "qm-nmr-calc-worker" in await pipeline.plan("v2.4.0", existing_tags=[])


def locked_versions(lock: Path) -> dict[str, dict[str, str]]:
    """Subdir -> package name -> locked version, read from the lock's URLs."""
    found: dict[str, dict[str, str]] = {subdir: {} for subdir in SUBDIRS}
    for url in locked_urls(lock):
        subdir, file_name = url.rsplit("/", 2)[1:]
        name, version, _ = file_name.removesuffix(".tar.bz2").rsplit("-", 2)
        found[subdir][name] = version
    return found


def made_by(lock: Path) -> dict[str, Any]:
    """The lock's record of what made it."""
    record = yaml.safe_load(lock.read_text())[conda_env().MADE_BY_KEY]
    assert isinstance(record, dict)
    return record


def test_the_same_cut_off_gives_the_same_lock_after_the_channel_moved_on(tmp_path: Path) -> None:
    """Two maintainers, or two days: packages published after the cut-off change nothing."""
    directory = tmp_path / "channel"
    write_channel(directory, packages())
    with serve_files(directory) as url:
        first = make_lock(url, ["tool ==1.0"], tmp_path / "first.lock").read_bytes()
        again = make_lock(url, ["tool ==1.0"], tmp_path / "again.lock").read_bytes()
        newer = [
            Package("libthing", "2.5", "0", subdir, files={"lib/thing.txt": b"new"},
                    published=LATER)
            for subdir in SUBDIRS
        ]  # fmt: skip
        write_channel(directory, [*packages(), *newer])
        later = make_lock(url, ["tool ==1.0"], tmp_path / "later.lock")
        unbounded = make_lock(
            url, ["tool ==1.0"], tmp_path / "unbounded.lock", datetime(2027, 1, 1, tzinfo=UTC)
        )
    assert first == again
    assert later.read_bytes() == first
    assert {v["libthing"] for v in locked_versions(later).values()} == {"2.1"}
    # the cut-off is what held it: without it the newer package is taken
    assert {v["libthing"] for v in locked_versions(unbounded).values()} == {"2.5"}


def uneven_packages() -> list[Package]:
    """linux-aarch64 also offers libthing 2.2 and needs libarm; linux-64 alone offers 2.3 of
    libother."""
    found = []
    for subdir in SUBDIRS:
        tool_needs = ("libthing >=2", "libother") + (("libarm",) if "aarch64" in subdir else ())
        found += [
            Package("tool", "1.0", "0", subdir, tool_needs),
            Package("libthing", "2.1", "0", subdir),
            Package("libother", "1.0", "0", subdir),
        ]
    found += [
        Package("libthing", "2.2", "0", "linux-aarch64"),
        Package("libarm", "1.0", "0", "linux-aarch64"),
        Package("libother", "2.3", "0", "linux-64"),
    ]
    return found


def uneven_lock(tmp_path: Path) -> Path:
    """A lock of ``tool`` from the uneven channel."""
    with serve_files(write_channel(tmp_path / "uneven", uneven_packages())) as url:
        return make_lock(url, ["tool ==1.0"], tmp_path / "uneven.lock")


def test_both_platforms_get_the_same_version_of_what_both_offer(tmp_path: Path) -> None:
    versions = locked_versions(uneven_lock(tmp_path))
    # libthing 2.2 exists only for aarch64: it is held to linux-64's 2.1, not solved apart.
    assert versions["linux-64"]["libthing"] == versions["linux-aarch64"]["libthing"] == "2.1"


def test_what_must_differ_is_listed_in_the_lock_with_the_reason(tmp_path: Path) -> None:
    lock = uneven_lock(tmp_path)
    assert made_by(lock)["differences"] == [
        {
            "package": "libarm",
            "linux-64": None,
            "linux-aarch64": "1.0",
            "reason": "only the linux-aarch64 environment needs it",
        },
        {
            "package": "libother",
            "linux-64": "2.3",
            "linux-aarch64": "1.0",
            "reason": "linux-aarch64 has no libother 2.3 up to the cut-off",
        },
    ]


def test_the_lock_records_what_made_it(channel: str, tmp_path: Path) -> None:
    module = conda_env()
    spec = module.Spec([channel], ["tool ==1.0"], CUT_OFF)
    lock, record = asyncio.run(
        module.make_lock(spec, "python:3.11-slim-bookworm@sha256:" + "a" * 64)
    )
    module.write_lock(lock, record, tmp_path / "conda.lock")
    recorded = made_by(tmp_path / "conda.lock")
    assert recorded["exclude-newer"] == "2025-01-01T00:00:00Z"
    assert recorded["py-rattler"] == "0.28.0"
    assert recorded["image"].endswith("@sha256:" + "a" * 64)
    # and the installer still reads the lock
    assert module.locked_records(tmp_path / "conda.lock", "linux/arm64")


def write_spec(tmp_path: Path, cut_off: str | None) -> Path:
    """An environment.yml with this ``exclude-newer`` line (none when None)."""
    lines = [f"exclude-newer: {cut_off}"] if cut_off is not None else []
    lines += ["channels: [conda-forge]", "dependencies: [xtb ==6.7.1]"]
    path = tmp_path / "environment.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("cut_off", [None, "2026-12-01T00:00:00", "yesterday", "2026-12-01"])
def test_a_spec_without_a_cut_off_with_its_offset_is_refused(
    tmp_path: Path, cut_off: str | None
) -> None:
    with pytest.raises(conda_env().LockError, match="must be the solve's cut-off, an RFC 3339"):
        conda_env().read_spec(write_spec(tmp_path, cut_off))


def test_the_cut_off_is_read_in_utc(tmp_path: Path) -> None:
    spec = conda_env().read_spec(write_spec(tmp_path, "'2026-12-01T01:00:00+01:00'"))
    assert spec.exclude_newer == datetime(2026, 12, 1, tzinfo=UTC)


def test_the_workers_own_spec_has_a_cut_off() -> None:
    spec = conda_env().read_spec(CONDA_ENV.with_name("environment.yml"))
    assert spec.exclude_newer <= datetime.now(UTC), "a cut-off in the future is no cut-off"

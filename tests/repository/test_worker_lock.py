"""The worker's conda lock: made from a channel, installed only as locked, refused when missing.

The lock maker and installer (``worker/conda_env.py``) run here for real against a stand-in
channel on 127.0.0.1 (``conda_channel``): conda-forge cannot be reached from these machines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagger import dag
from pipeline.main import WORKER_LOCK, WORKER_LOCK_COMMAND, Pipeline
from pipeline.rules.versions import ReleaseInputError

from tests.images.artifacts import serve_files
from tests.support.conda_channel import Package, write_channel
from tests.support.registry_server import RegistryServer
from tests.support.standin import StandInEngine
from tests.support.worker_lock import conda_env, make_lock

SUBDIRS = ("linux-64", "linux-aarch64")


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
        with pytest.raises(ReleaseInputError, match=f"{WORKER_LOCK} is missing"):
            await pipeline.rehearse("v2.4.0")
        assert engine.builds == []
        # a plan builds nothing: it needs no lock
        assert "qm-nmr-calc-worker" in await pipeline.plan("v2.4.0", existing_tags=[])

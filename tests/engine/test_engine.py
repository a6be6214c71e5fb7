"""The Dagger functions on a real engine, run as a maintainer runs them: ``dagger call ...``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pipeline.publishing import references_of

pytestmark = pytest.mark.engine

BUILD_TIMEOUT = 3600
"""Seconds: a cold build of every image (NWChem, CREST, xTB) takes a while."""


def dagger(cli: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``dagger ARGS`` from the repository root; its output, never raising on failure."""
    return subprocess.run(
        [cli, *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0


def test_build_labels_the_container(dagger_cli: str, repo_root: Path) -> None:
    result = dagger(
        dagger_cli,
        repo_root,
        *("call", "build", "--image", "api", "--platform", "linux/amd64", "--tag", "v2.4.0"),
        *("label", "--name", "org.opencontainers.image.version"),
    )

    assert succeeded(result), result.stderr
    assert result.stdout.strip() == "2.4.0"


def test_check_builds_and_rehearses(dagger_cli: str, repo_root: Path) -> None:
    """``dagger check``: every variant builds, and the rehearsal releases into ``registry:2``."""
    result = dagger(dagger_cli, repo_root, "check")

    assert succeeded(result), f"{result.stdout}\n{result.stderr}"


def test_dry_run_prints_the_plan_pushes_nothing_and_needs_no_credentials(
    dagger_cli: str, repo_root: Path
) -> None:
    result = dagger(dagger_cli, repo_root, "call", "publish", "--tag", "v2.4.0", "--dry-run")

    assert succeeded(result), result.stderr
    assert result.stdout.startswith("Release v2.4.0 -> version 2.4.0 (stable release)"), (
        result.stdout
    )
    for repository in ("ghcr.io/steinbeck/qm-nmr-calc-api", "ghcr.io/steinbeck/qm-nmr-calc-worker"):
        assert f": {repository}\n" in result.stdout, result.stdout
    assert "@sha256:" not in result.stdout  # a published reference would carry its digest


def test_rehearse_publishes_every_tag_into_the_throwaway_registry(
    dagger_cli: str, repo_root: Path
) -> None:
    """The engine pushes to ``localhost:5000`` through ``registry_service`` (plain HTTP)."""
    result = dagger(dagger_cli, repo_root, "call", "rehearse", "--tag", "v2.4.0")

    assert succeeded(result), f"{result.stdout}\n{result.stderr}"
    references = references_of(result.stdout)
    assert [line.split("@")[0] for line in references] == [
        f"localhost:5000/steinbeck/qm-nmr-calc-{image}:{tag}"
        for image in ("api", "worker")
        for tag in ("2.4.0", "2.4", "latest")
    ], result.stdout


def test_missing_upstream_tag_is_refused_before_any_build(dagger_cli: str, repo_root: Path) -> None:
    result = dagger(dagger_cli, repo_root, "call", "plan", "--tag", "v0.0.1-missing")

    assert not succeeded(result)
    assert "tag v0.0.1-missing cannot be read from https://github.com/steinbeck/qm-nmr-calc" in (
        result.stdout + result.stderr
    )
    assert "TaskGroup" not in result.stdout + result.stderr

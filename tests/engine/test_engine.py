"""The Dagger functions on a real engine, run as a maintainer runs them: ``dagger call ...``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["call", "build", "--image", "api", "--platform", "linux/amd64"], [], id="build-api"
        ),
        pytest.param(["check"], [], id="check"),
        pytest.param(
            ["call", "publish", "--tag", "v0.0.1-test", "--dry-run"],
            [
                "0.0.1-test",
                "ghcr.io/steinbeck/qm-nmr-calc-api",
                "ghcr.io/steinbeck/qm-nmr-calc-worker",
            ],
            id="publish-dry-run",
        ),
        pytest.param(["call", "rehearse", "--tag", "v2.4.0"], [], id="rehearse"),
    ],
)
def test_dagger_function_runs(
    dagger_cli: str, repo_root: Path, args: list[str], expected: list[str]
) -> None:
    result = dagger(dagger_cli, repo_root, *args)

    assert succeeded(result), f"dagger {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    for text in expected:
        assert text in result.stdout, result.stdout


def test_dry_run_pushes_nothing_and_needs_no_credentials(dagger_cli: str, repo_root: Path) -> None:
    result = dagger(dagger_cli, repo_root, "call", "publish", "--tag", "v0.0.1-test", "--dry-run")

    assert succeeded(result), result.stderr
    assert "published " not in result.stdout + result.stderr

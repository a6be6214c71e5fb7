"""Engine-backed tests: they need the ``dagger`` CLI and a running engine.

Without the CLI each test is skipped with the reason shown; with ``REQUIRE_DAGGER=1`` (a machine
that must have an engine, such as an engine-backed CI job) a missing CLI fails them instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

SKIP_REASON = "needs the dagger CLI and an engine (not on this machine)"
REQUIRE_VARIABLE = "REQUIRE_DAGGER"
REPO_ROOT = Path(__file__).resolve().parents[2]


def dagger_or_skip(which: str | None, required: bool) -> str:
    """The CLI's path; else a skip, or a failure when the CLI is required."""
    if which is not None:
        return which
    if required:
        pytest.fail(f"{REQUIRE_VARIABLE}=1 but `dagger` is not on PATH: {SKIP_REASON}")
    pytest.skip(SKIP_REASON)


@pytest.fixture(autouse=True)
def dagger_cli() -> str:
    """The path of the ``dagger`` CLI, for every test in this directory."""
    return dagger_or_skip(shutil.which("dagger"), os.environ.get(REQUIRE_VARIABLE) == "1")


@pytest.fixture
def repo_root() -> Path:
    """The repository root: where ``dagger.json`` is, and where ``dagger`` runs."""
    assert (REPO_ROOT / "dagger.json").is_file(), REPO_ROOT
    return REPO_ROOT

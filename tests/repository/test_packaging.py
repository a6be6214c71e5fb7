"""The module as the Dagger engine loads it: versions pinned to dagger.json, a lock to sync."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pipeline" / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "pipeline" / "uv.lock").read_text())
DAGGER = json.loads((ROOT / "dagger.json").read_text())


def engine_version() -> str:
    """dagger.json's engineVersion without its ``v``."""
    return str(DAGGER["engineVersion"]).removeprefix("v")


def locked_versions() -> dict[str, str]:
    """Package name -> version in pipeline/uv.lock."""
    return {package["name"]: package["version"] for package in LOCK["package"]}


def test_dagger_json_points_at_the_module() -> None:
    assert DAGGER["name"] == "pipeline"
    assert DAGGER["sdk"]["source"] == "python"
    assert DAGGER["source"] == "pipeline"
    assert PROJECT["project"]["entry-points"]["dagger.mod"]["main_object"] == (
        "pipeline.main:Pipeline"
    )


def test_sdk_is_pinned_to_the_engine_version() -> None:
    assert f"dagger-io=={engine_version()}" in PROJECT["project"]["dependencies"]
    assert locked_versions()["dagger-io"] == engine_version()


def test_lock_holds_every_dependency() -> None:
    names = [
        re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].lower()
        for requirement in PROJECT["project"]["dependencies"]
    ]
    missing = [name for name in names if name not in locked_versions()]
    assert missing == []


def test_runtime_python_is_the_tested_one() -> None:
    # The engine picks the minimum of requires-python for the module's runtime: the tests must
    # run on that same Python, or they prove nothing about what the engine runs.
    running = f">={sys.version_info.major}.{sys.version_info.minor}"
    assert PROJECT["project"]["requires-python"] == running
    assert LOCK["requires-python"] == running

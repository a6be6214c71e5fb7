"""The module as the Dagger engine loads it: the SDK of dagger.json's engine, a lock to sync.

The engine vendors its Python SDK as version ``0.0.0`` and runs ``uv lock`` on every load, so
the module always runs the SDK its engine bundles: the version is pinned by dagger.json's
``engineVersion`` and the CLI the workflows install. The tests run on the PyPI wheel of that
same version (requirements-dev.txt), since the stand-in engine uses the SDK's private seams.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pipeline" / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "pipeline" / "uv.lock").read_text())
DAGGER = json.loads((ROOT / "dagger.json").read_text())
REQUIREMENTS_DEV = ROOT / "requirements-dev.txt"
WORKFLOWS = ROOT / ".github" / "workflows"
EXAMPLES = ROOT / "examples"
DAGGER_ACTION = "dagger/dagger-for-github@"
VENDORED_SDK_VERSION = "0.0.0"
"""The version the engine gives the SDK it vendors into the module (and re-locks to)."""


def engine_version() -> str:
    """dagger.json's engineVersion without its ``v``."""
    return str(DAGGER["engineVersion"]).removeprefix("v")


def locked(name: str) -> dict[str, Any]:
    """Package ``name``'s entry in pipeline/uv.lock."""
    found: list[dict[str, Any]] = [entry for entry in LOCK["package"] if entry["name"] == name]
    assert len(found) == 1, f"{name} is locked {len(found)} times"
    return found[0]


def locked_versions() -> dict[str, str]:
    """Package name -> version in pipeline/uv.lock."""
    return {package["name"]: package["version"] for package in LOCK["package"]}


def requirement(name: str, lines: list[str]) -> Requirement:
    """The one requirement on ``name`` among ``lines`` (comments and blanks skipped)."""
    found = [
        Requirement(line)
        for line in (line.split("#", 1)[0].strip() for line in lines)
        if line and Requirement(line).name == name
    ]
    assert len(found) == 1, f"expected one requirement on {name}, found {found}"
    return found[0]


def cli_versions() -> dict[str, str]:
    """``workflow job: step`` -> the dagger CLI version each dagger-for-github step installs."""
    versions = {}
    for path in sorted([*WORKFLOWS.glob("*.yml"), *EXAMPLES.glob("*.yml")]):
        workflow = yaml.safe_load(path.read_text())
        for job_name, job in workflow["jobs"].items():
            for step in job.get("steps", []):
                if str(step.get("uses", "")).startswith(DAGGER_ACTION):
                    versions[f"{path.name} {job_name}: {step['name']}"] = str(
                        step.get("with", {}).get("version")
                    ).removeprefix("v")
    return versions


def test_dagger_json_points_at_the_module() -> None:
    assert DAGGER["name"] == "pipeline"
    assert DAGGER["sdk"]["source"] == "python"
    assert DAGGER["source"] == "pipeline"
    assert PROJECT["project"]["entry-points"]["dagger.mod"]["main_object"] == (
        "pipeline.main:Pipeline"
    )


def test_sdk_requirement_accepts_the_sdk_the_engine_vendors() -> None:
    sdk = requirement("dagger-io", PROJECT["project"]["dependencies"])

    assert sdk.specifier.contains(VENDORED_SDK_VERSION, prereleases=True)
    assert sdk.specifier.contains(engine_version())
    assert PROJECT["tool"]["uv"]["sources"]["dagger-io"] == {"path": "sdk", "editable": True}


def test_lock_takes_the_sdk_from_the_engine() -> None:
    sdk = locked("dagger-io")

    # As locked here from the release's sdist, or as `dagger develop` re-locks the vendored SDK.
    assert sdk["version"] in {engine_version(), VENDORED_SDK_VERSION}
    assert sdk["source"] == {"editable": "sdk"}


def test_engine_cli_and_tested_sdk_are_one_version() -> None:
    versions = cli_versions()

    assert len(versions) >= 5, "check, worker-science, engine tests, release, upstream example"
    assert versions == dict.fromkeys(versions, engine_version())
    assert str(requirement("dagger-io", REQUIREMENTS_DEV.read_text().splitlines()).specifier) == (
        f"=={engine_version()}"
    )
    assert version("dagger-io") == engine_version()


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

"""The offline CLI, run as users run it: ``python -m pipeline ...`` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from pipeline.rules.plan import make_plan

SHA = "0123456789abcdef0123456789abcdef01234567"
HEAVY = ("dagger", "httpx", "anyio")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "reasons"),
    [
        pytest.param(
            ["plan", "v2.4.0"],
            {"2.4": "moves: first stable release", "latest": "moves: first stable release"},
            id="first",
        ),
        pytest.param(
            ["plan", "v2.3.7", "--existing-tags", "2.4.0,2.3.6,latest,2.4,sha-abc"],
            {
                "2.3": "moves: 2.3.7 is the highest stable version in 2.3.x",
                "latest": "stays: 2.4.0 is higher than 2.3.7",
            },
            id="old-minor",
        ),
        pytest.param(
            ["plan", "v2.5.0-rc.1"],
            {"2.5": "prerelease", "latest": "prerelease"},
            id="prerelease",
        ),
    ],
)
def test_table_gives_each_floating_tag_its_reason(args: list[str], reasons: dict[str, str]) -> None:
    result = _run(*args)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    for name, reason in reasons.items():
        matching = [line for line in lines if line.split()[:1] == [name]]
        # One reason line per image, each saying why the tag moves or stays.
        assert len(matching) == 2, (name, result.stdout)
        assert all(reason in line for line in matching), (name, matching)
    assert "ghcr.io/steinbeck/qm-nmr-calc-api" in result.stdout
    assert "ghcr.io/steinbeck/qm-nmr-calc-worker" in result.stdout


@pytest.mark.parametrize(
    ("args", "options"),
    [
        pytest.param(["plan", "v2.4.0"], {}, id="default"),
        pytest.param(
            [
                "plan",
                "2.3.7",
                "--existing-tags",
                "2.4.0, latest,,2.3.1",
                "--owner",
                "NMR-Lab",
                "--registry",
                "127.0.0.1:5000",
                "--revision",
                SHA,
                "--created",
                "2026-11-20T15:03:00+01:00",
            ],
            {
                "existing": ["2.4.0", "latest", "2.3.1"],
                "owner": "NMR-Lab",
                "registry": "127.0.0.1:5000",
                "revision": SHA,
                "created": "2026-11-20T15:03:00+01:00",
            },
            id="every-option",
        ),
        pytest.param(
            ["plan", "v2.4.0", "--existing-tags", "2.4.0", "--overwrite"],
            {"existing": ["2.4.0"], "overwrite": True},
            id="overwrite",
        ),
    ],
)
def test_json_equals_the_plan(args: list[str], options: dict[str, Any]) -> None:
    result = _run(*args, "--json")
    assert (result.returncode, result.stderr) == (0, "")
    existing = options.get("existing", [])
    rest = {key: value for key, value in options.items() if key != "existing"}
    expected = make_plan(
        args[1], existing_tags={"api": existing, "worker": existing}, **rest
    ).to_json()
    assert json.loads(result.stdout) == expected
    assert result.stdout.count("\n") == 1


def test_json_shape_on_stdout() -> None:
    document = json.loads(_run("plan", "v2.4.0", "--json").stdout)
    assert list(document) == ["tag", "version", "prerelease", "images"]
    assert [image["name"] for image in document["images"]] == ["api", "worker"]
    assert document["images"][0]["tags"] == ["2.4.0", "2.4", "latest"]
    assert document["images"][0]["platforms"] == ["linux/amd64", "linux/arm64"]
    assert document["images"][1]["platforms"] == ["linux/amd64", "linux/arm64"]


@pytest.mark.parametrize(
    ("args", "word"),
    [
        pytest.param(["plan", "v2.4"], "not a SemVer", id="partial-version"),
        pytest.param(["plan", "v1.2.3+b5"], "build metadata", id="build-metadata"),
        pytest.param(
            ["plan", "v2.4.0", "--existing-tags", "2.3.0,2.4.0"], "already published", id="exists"
        ),
        pytest.param(["plan"], "required: tag", id="missing-tag"),
        pytest.param([], "required: command", id="missing-command"),
        pytest.param(["plan", "v2.4.0", "--nope"], "unrecognized arguments", id="unknown-option"),
        pytest.param(["plan", "v2.4.0", "--no\npe"], "unrecognized arguments", id="newline-arg"),
        pytest.param(["plan", "v2.4.0", "--owner"], "expected one argument", id="owner-no-value"),
        pytest.param(["plan", "v2.4.0", "--created", "yesterday"], "created", id="bad-created"),
        pytest.param(
            ["plan", "v2.4.0", "--created", "0001-01-01T00:00:00+01:00"],
            "created",
            id="overflowing-created",
        ),
        pytest.param(["plan", "v2.4.0", "--revision", "abc123"], "revision", id="bad-revision"),
        pytest.param(["plan", "v2.4.0", "--owner", "a/b"], "owner", id="bad-owner"),
        pytest.param(["plan", "v2.4.0", "--registry", "https://ghcr.io"], "registry", id="bad-reg"),
        pytest.param(["publish", "v2.4.0"], "invalid choice", id="unknown-command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], word: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("python -m pipeline: error: ")
    assert word in lines[0]
    assert "Traceback" not in result.stderr


def test_help_exits_0() -> None:
    result = _run("plan", "--help")
    assert (result.returncode, result.stderr) == (0, "")
    assert "--existing-tags" in result.stdout


def _imported_modules(*args: str) -> set[str]:
    """Top-level names of every module ``python -X importtime -m pipeline ARGS`` imports."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".", 1)[0])
    assert "pipeline" in names, result.stderr  # the parse found the imports
    return names


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["plan", "v2.4.0", "--json"], id="json"),
        pytest.param(["plan", "v2.4.0"], id="table"),
        pytest.param(["plan", "v2.4"], id="bad-input"),
    ],
)
def test_plan_does_not_import_the_sdk(args: list[str]) -> None:
    assert _imported_modules(*args) & set(HEAVY) == set()


_LAZY_PROBE = """
import json, sys, types
import pipeline
report = {"after_import": sorted(m for m in ("pipeline.main", *HEAVY) if m in sys.modules)}
try:
    pipeline.NoSuchThing
except AttributeError:
    report["unknown"] = "AttributeError"
# Stand in for pipeline.main (being written elsewhere) to see that Pipeline is fetched from it.
stand_in = types.ModuleType("pipeline.main")
stand_in.Pipeline = sentinel = object()
sys.modules["pipeline.main"] = stand_in
report["resolved"] = pipeline.Pipeline is sentinel
print(json.dumps(report))
"""


def test_pipeline_is_resolved_lazily() -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{_LAZY_PROBE}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {
        "after_import": [],
        "unknown": "AttributeError",
        "resolved": True,
    }

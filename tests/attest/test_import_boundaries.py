"""The attest package never loads Dagger, and reading a statement loads no HTTP or signing stack."""

from __future__ import annotations

import json
import subprocess
import sys

ATTEST_MODULES = (
    "pipeline.attest.statements",
    "pipeline.attest.dsse",
    "pipeline.attest.signing",
    "pipeline.attest.storage",
    "pipeline.attest.check",
)
HEAVY = ("dagger", "httpx", "cryptography", "sigstore")


def loaded_after(*modules: str) -> list[str]:
    """Which of HEAVY a fresh interpreter holds after importing ``modules``."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_no_attest_module_loads_dagger() -> None:
    assert "dagger" not in loaded_after(*ATTEST_MODULES)


def test_sigstore_is_loaded_only_when_keyless_signing_or_verifying_runs() -> None:
    assert "sigstore" not in loaded_after(*ATTEST_MODULES)


def test_statements_and_dsse_load_nothing_heavy() -> None:
    assert loaded_after("pipeline.attest.statements", "pipeline.attest.dsse") == []

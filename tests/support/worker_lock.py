"""The worker's lock maker and installer (``worker/conda_env.py``), imported by the tests.

``worker/`` is laid over the build context, not installed: the tests load the module from its
file, so they run the very code the Dockerfile and ``worker_lock`` run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

CONDA_ENV = Path(__file__).resolve().parents[2] / "worker" / "conda_env.py"
CUT_OFF = datetime(2025, 1, 1, tzinfo=UTC)
"""The stand-in channel's packages are from 2023 (``conda_channel.TAR_MTIME``): all before it."""


def conda_env() -> ModuleType:
    """``worker/conda_env.py`` as a module (loaded once)."""
    if "conda_env" not in sys.modules:
        spec = importlib.util.spec_from_file_location("conda_env", CONDA_ENV)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["conda_env"] = module
        spec.loader.exec_module(module)
    return sys.modules["conda_env"]


def make_lock(
    channel_url: str, specs: Sequence[str], output: Path, cut_off: datetime = CUT_OFF
) -> Path:
    """Lock ``specs`` from the channel at ``channel_url`` into ``output``, as worker_lock does."""
    module = conda_env()
    spec = module.Spec([channel_url], list(specs), cut_off)
    lock, record = asyncio.run(module.make_lock(spec))
    module.write_lock(lock, record, output)
    return output

"""qm-nmr-calc's release pipeline: plan, build, check and publish its container images.

The Dagger object ``Pipeline`` lives in ``pipeline.main`` and is loaded only on first use, so the
offline tools (``python -m pipeline``) never pay for importing the Dagger SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.main import Pipeline

__all__ = ["Pipeline"]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - the module protocol
    """Import ``Pipeline`` (and with it the Dagger SDK) only when it is asked for."""
    if name == "Pipeline":
        from pipeline.main import Pipeline

        return Pipeline
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")

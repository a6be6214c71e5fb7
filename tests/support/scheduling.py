"""How pytest-xdist shares the suite between workers: every image test on one worker.

The image tests share one private Docker daemon, its arm64 emulation (a machine-wide binfmt
registration) and session-wide stand-ins and builds: two workers running image tests would start
two daemons and each undo the other's emulation. So they are one scope, sent whole to one
worker; every other test is a scope of its own, spread over the other workers as they free up.
(pytest-xdist's own ``--dist loadgroup`` cannot group them under pytest 9: it renames
``item._nodeid``, which pytest 9 no longer reads.)
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

IMAGE_TESTS = "tests/images/"
"""Where the image tests are, as the start of their node ids."""
IMAGE_SCOPE = "images"


def scope_of(nodeid: str) -> str:
    """The scope a test is scheduled in: ``images`` for every image test, else its own id."""
    return IMAGE_SCOPE if nodeid.startswith(IMAGE_TESTS) else nodeid


class ImageTestsTogether(LoadScopeScheduling):  # type: ignore[misc]
    """Load scheduling in which the image tests are one unit of work (the largest, sent first)."""

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)


def make_scheduler(config: Any, log: Any) -> ImageTestsTogether:
    """The scheduler of a run with ``-n``: image tests together, the rest test by test."""
    return ImageTestsTogether(config, log)

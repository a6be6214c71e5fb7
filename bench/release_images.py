"""Benchmark: a whole release with real images. Prints figures; it is not a timed test.

``Pipeline.publish`` of v2.4.0 (upstream's v2.4.0 snapshot) runs on the real SDK objects; the
stand-in engine builds every variant with a fresh private BuildKit daemon (nothing cached) and
pushes the images into a loopback registry as the engine would. Printed: the release's wall time
against the slowest single variant build of the same run (target <= 1.2: the builds overlap,
pushes and verification add little), and each variant's build time.

Needs what the image tests need (root, docker.io, mmdebstrap, QEMU, docker-compose).
``IMAGE_TEST_CACHE=DIR`` keeps the stand-in root filesystems between runs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.images.rehearsal import publish, rehearsal

TAG = "v2.4.0"
TARGET = 1.2


def main() -> int:
    """Run one release and print the figures."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-release-") as scratch,
        rehearsal(Path(scratch)) as ready,
    ):
        started = time.perf_counter()
        publish(ready.builder, ready.registry, TAG)
        wall = time.perf_counter() - started
        builder = ready.builder
    slowest = max(builder.build_seconds.values())
    for image, seconds in sorted(builder.build_seconds.items()):
        print(f"build {image:40} {seconds:7.1f} s")
    for pushed, seconds in sorted(builder.push_seconds.items()):
        print(f"push {pushed:41} {seconds:7.1f} s")
    print(f"release {TAG} wall time:                   {wall:7.1f} s")
    print(
        f"wall / slowest variant build:              {wall / slowest:7.2f} (target <= {TARGET}; "
        f"{wall - slowest:.1f} s for pushes, tags and verification)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

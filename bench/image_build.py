"""Benchmark: real BuildKit builds of the api image. Prints figures; it is not a timed test.

On one run, from the upstream v2.8 snapshot, with a fresh private dockerd (nothing cached) and the
stand-in base images of ``tests/images/standins.py``:

- cold build of api linux/amd64;
- rebuild after a source-only change (target <= 0.25 of cold: the dependency layers are reused);
- cold build of api linux/arm64 against the amd64 one (target <= 1.5: the locked dependencies are
  installed by a native stage, so QEMU runs only the small final steps);
- the api image's size against upstream's published 733 MB (target: smaller). The stand-in base
  is Debian's python3 rather than the official slim image, so this compares like with like only
  roughly.

Needs root, docker.io, mmdebstrap, qemu-user-static and binfmt-support (as the image tests do).
``IMAGE_TEST_CACHE=DIR`` keeps the stand-in root filesystems between runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tests.images.builds as builds
from tests.images import daemon, standins
from tests.images.environment import image_environment

UPSTREAM_TAG = "v2.8"
UPSTREAM_API_MB = 733
REBUILD_TARGET = 0.25
ARM64_TARGET = 1.5
SOURCE_CHANGE = "\n# bench/image_build.py: a source-only change\n"


def main() -> int:
    """Run the builds and print the figures; 1 if the machine cannot build images."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default=UPSTREAM_TAG, help="upstream snapshot to build")
    arguments = parser.parse_args()
    if missing := daemon.missing_prerequisites():
        print("cannot build images here: " + "; ".join(missing), file=sys.stderr)
        return 1
    print("stand-ins in use:\n" + standins.describe_standins())
    with tempfile.TemporaryDirectory(prefix="bench-image-build-") as scratch:
        cache = Path(os.environ.get("IMAGE_TEST_CACHE") or Path(scratch) / "cache")
        with image_environment(cache) as environment:
            context = builds.prepare_context(
                arguments.tag, Path(scratch) / "context", replaced=environment.replaced_files
            )

            def build(platform: str, tag: str) -> builds.Build:
                return builds.build(
                    environment.docker,
                    context,
                    "Dockerfile.api",
                    platform,
                    tag,
                    environment.build_args,
                )

            cold = build("linux/amd64", "bench/api:amd64")
            init = context / "src" / "qm_nmr_calc" / "__init__.py"
            init.write_text(init.read_text() + SOURCE_CHANGE)
            rebuild = build("linux/amd64", "bench/api:amd64-changed")
            arm64 = build("linux/arm64", "bench/api:arm64")
            size = int(environment.docker.inspect("{{.Size}}", cold.tag)) / 1e6
    rebuild_ratio = rebuild.seconds / cold.seconds
    arm64_ratio = arm64.seconds / cold.seconds
    print(f"api {arguments.tag}, linux/amd64 cold build:          {cold.seconds:7.1f} s")
    print(
        f"rebuild after a source-only change:        {rebuild.seconds:7.1f} s  "
        f"ratio {rebuild_ratio:.2f} (target <= {REBUILD_TARGET})"
    )
    print(
        f"linux/arm64 cold build (QEMU for RUN):     {arm64.seconds:7.1f} s  "
        f"ratio {arm64_ratio:.2f} to amd64 (target <= {ARM64_TARGET})"
    )
    print(
        f"api image size (stand-in base):            {size:7.0f} MB "
        f"(upstream's api image: {UPSTREAM_API_MB} MB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

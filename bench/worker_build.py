"""Benchmark: the worker image built for linux/arm64 against linux/amd64 on one amd64 machine.

From the upstream v2.8 snapshot, with a fresh private dockerd (nothing cached) and the image
tests' stand-ins (``tests/images/standins.py``: the conda channel of Debian's NWChem, OpenMPI and
xTB on loopback): a cold build of the worker for linux/amd64, then a cold build for linux/arm64.
Target: arm64 / amd64 <= 1.5. The conda packages and the locked Python packages are installed by
stages that run natively and install for the target, so QEMU runs only the final stage's few
steps (apt-get, a user, the tools' --version).

Needs what the image tests need (root, docker.io, mmdebstrap, QEMU, patchelf).
``IMAGE_TEST_CACHE=DIR`` keeps the stand-in root filesystems and the channel between runs.
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
ARM64_TARGET = 1.5


def main() -> int:
    """Run both builds and print the figures; 1 if the machine cannot build images."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default=UPSTREAM_TAG, help="upstream snapshot to build")
    arguments = parser.parse_args()
    if missing := daemon.missing_prerequisites():
        print("cannot build images here: " + "; ".join(missing), file=sys.stderr)
        return 1
    print("stand-ins in use:\n" + standins.describe_standins())
    with tempfile.TemporaryDirectory(prefix="bench-worker-build-") as scratch:
        cache = Path(os.environ.get("IMAGE_TEST_CACHE") or Path(scratch) / "cache")
        with image_environment(cache) as environment:
            context = builds.prepare_context(
                arguments.tag, Path(scratch) / "context", replaced=environment.replaced_files
            )
            seconds = {}
            for platform in ("linux/amd64", "linux/arm64"):
                built = builds.build(
                    environment.docker,
                    context,
                    "Dockerfile.worker",
                    platform,
                    f"bench/worker:{platform.rsplit('/', 1)[1]}",
                    environment.build_args,
                )
                seconds[platform] = built.seconds
    ratio = seconds["linux/arm64"] / seconds["linux/amd64"]
    print(f"worker {arguments.tag}, linux/amd64 cold build:   {seconds['linux/amd64']:7.1f} s")
    print(
        f"linux/arm64 cold build (QEMU for RUN): {seconds['linux/arm64']:7.1f} s  "
        f"ratio {ratio:.2f} to amd64 (target <= {ARM64_TARGET})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

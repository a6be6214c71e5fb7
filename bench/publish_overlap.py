"""Benchmark: do variant builds overlap? Prints publish wall time / slowest variant build.

The real ``Pipeline.publish`` runs on the real SDK objects; a stand-in engine takes
``--build-seconds`` per variant build and pushes into a real ``docker-registry`` on loopback.
Builds that overlap give a ratio near 1; builds that add up give about 3 (three variants).
Target: ratio <= 1.3.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import anyio
import dagger
import pytest
from dagger import dag

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.main import Pipeline

from tests.support.registry_server import RegistryServer
from tests.support.standin import StandInEngine

TARGET = 1.3
TOKEN_ID = "bench-token"


async def publish_once(registry: str, build_seconds: float, owner: str) -> float:
    """Seconds one publish of v1.0.0 takes with ``build_seconds`` per variant."""
    engine = StandInEngine(registry, build_seconds=build_seconds, secrets={TOKEN_ID: "t"})
    with pytest.MonkeyPatch.context() as patch:
        engine.install(patch)
        pipeline = Pipeline(
            source=dag.directory(), build_files=dag.directory(), registry=registry, owner=owner
        )
        secret = dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))
        start = time.perf_counter()
        await pipeline.publish("v1.0.0", username="bench", password=secret)
        return time.perf_counter() - start


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build-seconds", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 when over target")
    args = parser.parse_args()
    walls = []
    with RegistryServer() as registry:
        for run in range(args.runs):
            walls.append(anyio.run(publish_once, registry.host, args.build_seconds, f"bench{run}"))
    best = min(walls)
    ratio = best / args.build_seconds
    print(f"variants: 3, build time per variant: {args.build_seconds:.2f} s")
    print(f"publish wall time (best of {args.runs}): {best:.2f} s")
    print(f"ratio wall / slowest variant: {ratio:.2f} (target <= {TARGET}): ", end="")
    print("within target" if ratio <= TARGET else "OVER TARGET")
    return 1 if args.check and ratio > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())

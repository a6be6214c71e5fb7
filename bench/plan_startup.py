"""How long `python -m pipeline plan v2.4.0 --json` takes next to `python -c "import dagger"`.

The offline plan must not pay for the Dagger SDK: its median wall time should be at most
TARGET_RATIO of the time it takes just to import ``dagger``. The two commands run alternately, so
a slow spell of the machine hits both alike.

Usage: python bench/plan_startup.py [--runs N] [--check]
Exit status 0, or with --check 1 when the ratio is over the target.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

TARGET_RATIO = 0.2
PLAN = (sys.executable, "-m", "pipeline", "plan", "v2.4.0", "--json")
IMPORT_DAGGER = (sys.executable, "-c", "import dagger")


def wall_time(command: Sequence[str]) -> float:
    """Seconds one run of ``command`` takes; a failing command stops the benchmark."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    """Time both commands alternately and print their medians and ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (default 15)")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the ratio is over the target"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    wall_time(PLAN)  # warm the file system cache and .pyc files before measuring
    wall_time(IMPORT_DAGGER)
    plan_times: list[float] = []
    dagger_times: list[float] = []
    for _ in range(args.runs):
        plan_times.append(wall_time(PLAN))
        dagger_times.append(wall_time(IMPORT_DAGGER))

    plan = statistics.median(plan_times)
    dagger = statistics.median(dagger_times)
    ratio = plan / dagger
    within = ratio <= TARGET_RATIO
    print(f"runs                                     {args.runs} each, alternately")
    print(f"python -m pipeline plan v2.4.0 --json    median {plan * 1000:8.1f} ms")
    print(f'python -c "import dagger"                median {dagger * 1000:8.1f} ms')
    print(
        f"ratio                                    {ratio:.3f} "
        f"({'within' if within else 'OVER'} target <= {TARGET_RATIO})"
    )
    return 1 if args.check and not within else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: time from submitting methane to its results, on the released stack.

Publishes v2.8.0 (upstream's v2.8 snapshot) through the real-build stand-in engine into a
loopback registry, starts docker-compose.yml from those images, submits methane
(``production`` preset, chcl3) through Caddy and prints the seconds until the job is complete and
its results are served. A figure, not a timed test; NWChem and xTB are Debian's stand-ins
(``tests/images/standins.py``), run with two MPI processes.

Needs what the image tests need (root, docker.io, mmdebstrap, QEMU, docker-compose).
``IMAGE_TEST_CACHE=DIR`` keeps the stand-in root filesystems between runs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.images import standins
from tests.images.probes import HEALTHY_TIMEOUT, wait_for_log, wait_healthy
from tests.images.rehearsal import publish, rehearsal
from tests.images.stack import compose_stack
from tests.images.test_user_job import METHANE, WORKER_SETTINGS, WORKER_STARTED, run_job

TAG = "v2.8.0"
RUNS = 3


def main() -> int:
    """Publish, start the stack and time RUNS methane jobs."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-nmr-job-") as scratch,
        rehearsal(Path(scratch)) as ready,
    ):
        environment = ready.environment
        release = publish(ready.builder, ready.registry, TAG)
        caddy = standins.push_caddy_standin(environment.cache, environment.standin_registry)
        images = {name: release.reference(name) for name in ("api", "worker")}
        with compose_stack(
            environment.docker,
            Path(scratch),
            release.version,
            images | {"caddy": caddy},
            worker_environment=WORKER_SETTINGS[TAG],
        ) as stack:
            wait_healthy(environment.docker, stack.container("api"))
            worker = stack.container("worker")
            wait_for_log(environment.docker, worker, WORKER_STARTED, HEALTHY_TIMEOUT)
            for run in range(1, RUNS + 1):
                started = time.monotonic()
                job = run_job(stack, METHANE)
                code, _ = stack.request(f"/api/v1/jobs/{job.job_id}/results")
                seconds = time.monotonic() - started
                print(
                    f"run {run}: methane ({METHANE['preset']}, {METHANE['solvent']}) "
                    f"{job.status['status']}, results HTTP {code} after {seconds:.1f} s"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

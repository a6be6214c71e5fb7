"""The user's proof: a molecule submitted to the released stack comes back with its shifts.

The stack is this repository's docker-compose.yml (init, api, worker, Caddy), run from the images
the release rehearsal pushed, pulled by tag. A scientist submits methane through upstream's API,
waits for the job, reads the predicted 1H and 13C shifts, and makes two common mistakes.
NWChem, xTB and the worker's Python are stand-ins (``standins.STANDINS``, printed at the start);
the api, RDKit, the queue and the application code are the release's own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.images.daemon import Docker
from tests.images.environment import ImageEnvironment
from tests.images.probes import HEALTHY_TIMEOUT, QMNMR_UID, logs, wait_for_log, wait_healthy
from tests.images.rehearsal import Release
from tests.images.stack import Stack, compose_stack

JOBS = "/api/v1/jobs"
METHANE = {"smiles": "C", "solvent": "chcl3", "preset": "production"}
JOB_TIMEOUT = 600.0
POLL_SECONDS = 2.0
FINISHED = {"complete", "failed"}
WORKER_STARTED = "The following commands are available"
PLAUSIBLE_SHIFTS = {"H": (-1.0, 2.0), "C": (-20.0, 15.0)}
"""Methane's shifts (about 0.2 ppm for 1H, about -2 ppm for 13C) with room for the method."""
WORKER_SETTINGS = {
    # v2.4.0 asks mpirun for 40 processes (hard-coded in its presets, without --oversubscribe);
    # OpenMPI refuses more processes than cores unless told to oversubscribe.
    "v2.4.0": {"OMPI_MCA_rmaps_base_oversubscribe": "1"},
    # v2.8 reads NWCHEM_NPROC, which docker-compose.yml passes; two processes fit this machine.
    "v2.8.0": {"NWCHEM_NPROC": "2"},
}


@dataclass(frozen=True)
class Submitted:
    """A job a user submitted, and how long it took from submission to results."""

    job_id: str
    status: dict[str, Any]
    seconds: float


def post(stack: Stack, payload: dict[str, Any]) -> tuple[int, Any]:
    """POST a job; (status code, parsed body)."""
    code, body = stack.request(JOBS, payload)
    return code, json.loads(body) if body else None


def run_job(stack: Stack, payload: dict[str, Any]) -> Submitted:
    """Submit ``payload`` and poll until the job finishes (or the deadline passes)."""
    started = time.monotonic()
    code, accepted = post(stack, payload)
    assert code == 202, accepted
    job_id = accepted["job_id"]
    status: dict[str, Any] = accepted
    while status["status"] not in FINISHED and time.monotonic() - started < JOB_TIMEOUT:
        time.sleep(POLL_SECONDS)
        code, body = stack.request(f"{JOBS}/{job_id}")
        assert code == 200, body
        status = json.loads(body)
    return Submitted(job_id, status, time.monotonic() - started)


@pytest.fixture(scope="module", params=["release", "release_v28"], ids=["v2.4.0", "v2.8.0"])
def started_stack(
    request: pytest.FixtureRequest,
    environment: ImageEnvironment,
    caddy_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Release, Stack]]:
    """The compose stack of a rehearsed release, with its API healthy and worker consuming."""
    release: Release = request.getfixturevalue(request.param)
    docker = environment.docker
    images = {name: release.reference(name) for name in ("api", "worker")}
    with compose_stack(
        docker,
        tmp_path_factory.mktemp("stack"),
        release.version,
        images | {"caddy": caddy_image},
        worker_environment=WORKER_SETTINGS[f"v{release.version}"],
    ) as stack:
        api, worker = stack.container("api"), stack.container("worker")
        assert wait_healthy(docker, api) == "running healthy", logs(docker, api)
        assert WORKER_STARTED in wait_for_log(docker, worker, WORKER_STARTED, HEALTHY_TIMEOUT)
        yield release, stack


def worker_is_up(docker: Docker, stack: Stack) -> bool:
    """The worker container runs and its Huey consumer is alive (the compose health check)."""
    worker = stack.container("worker")
    if docker.inspect("{{.State.Running}}", worker) != "true":
        return False
    consumer = docker.run("exec", worker, "pgrep", "-f", "huey_consumer", check=False)
    return consumer.returncode == 0


def test_methane_comes_back_with_h_and_c_shifts(
    started_stack: tuple[Release, Stack], environment: ImageEnvironment
) -> None:
    release, stack = started_stack
    docker = environment.docker
    job = run_job(stack, METHANE)
    print(f"\nmethane, production, chcl3 on {release.version}: results after {job.seconds:.1f} s")
    worker_log = logs(docker, stack.container("worker"))
    assert job.status["status"] == "complete", f"{job.status}\n{worker_log[-6000:]}"

    code, body = stack.request(f"{JOBS}/{job.job_id}/results")
    assert code == 200, body
    results = json.loads(body)
    for key, element in (("h1_shifts", "H"), ("c13_shifts", "C")):
        shifts = results[key]
        assert shifts, f"no {element} shifts: {results}"
        low, high = PLAUSIBLE_SHIFTS[element]
        for shift in shifts:
            assert shift["atom"] == element
            assert low <= shift["shift"] <= high, (element, shift)
    assert len(results["c13_shifts"]) == 1
    assert results["solvent"] == "chcl3"

    # the job directory on the shared volume belongs to uid 999, and both containers read it
    job_dir = f"/app/data/jobs/{job.job_id}"
    owner = docker.run("exec", stack.container("worker"), "stat", "-c", "%u:%g", job_dir).stdout
    assert owner.strip() == f"{QMNMR_UID}:{QMNMR_UID}"
    for service in ("api", "worker"):
        container = stack.container(service)
        document = docker.run("exec", container, "cat", f"{job_dir}/status.json").stdout
        assert json.loads(document)["status"] == "complete"


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"smiles": "C1CC(", "solvent": "chcl3", "preset": "production"}, "invalid-smiles"),
        ({"smiles": "C", "solvent": "unobtainium", "preset": "production"}, "invalid-solvent"),
    ],
    ids=["invalid SMILES", "unknown solvent"],
)
def test_a_bad_request_gets_a_problem_answer_and_the_worker_stays_up(
    started_stack: tuple[Release, Stack],
    environment: ImageEnvironment,
    payload: dict[str, Any],
    problem: str,
) -> None:
    _release, stack = started_stack
    code, answer = post(stack, payload)
    assert code == 422, answer
    detail = answer["detail"]
    assert detail["type"].endswith(f"/problems/{problem}")
    assert detail["status"] == 422
    assert detail["detail"], "a problem answer says what was wrong"
    assert worker_is_up(environment.docker, stack)


def test_results_are_refused_for_a_job_that_does_not_exist(
    started_stack: tuple[Release, Stack],
) -> None:
    _release, stack = started_stack
    code, body = stack.request(f"{JOBS}/no-such-job/results")
    assert code == 404, body


SAME_SCIENCE = {"H": 0.05, "C": 0.5}
"""How far (ppm) the arm64 worker's shifts may be from the amd64 worker's."""


def methane_shifts(stack: Stack) -> dict[str, list[float]]:
    """Methane's 1H and 13C shifts from ``stack``, in the order the results list them."""
    job = run_job(stack, METHANE)
    assert job.status["status"] == "complete", job.status
    code, body = stack.request(f"{JOBS}/{job.job_id}/results")
    assert code == 200, body
    results = json.loads(body)
    print(f"methane on {stack.project}: results after {job.seconds:.1f} s")
    return {
        element: [shift["shift"] for shift in results[key]]
        for key, element in (("h1_shifts", "H"), ("c13_shifts", "C"))
    }


def test_methane_gives_the_same_shifts_with_the_arm64_worker(
    release_v28: Release,
    environment: ImageEnvironment,
    caddy_image: str,
    tmp_path: Path,
) -> None:
    docker = environment.docker
    images = {name: release_v28.reference(name) for name in ("api", "worker")}
    images |= {"caddy": caddy_image}
    shifts = {}
    for platform in ("linux/amd64", "linux/arm64"):
        directory = tmp_path / platform.replace("/", "-")
        directory.mkdir()
        with compose_stack(
            docker,
            directory,
            release_v28.version,
            images,
            worker_environment=WORKER_SETTINGS["v2.8.0"],
            platforms={"worker": platform},
        ) as stack:
            api, worker = stack.container("api"), stack.container("worker")
            assert wait_healthy(docker, api) == "running healthy", logs(docker, api)
            assert WORKER_STARTED in wait_for_log(docker, worker, WORKER_STARTED, HEALTHY_TIMEOUT)
            machine = docker.run("exec", worker, "uname", "-m").stdout.strip()
            assert machine == {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}[platform]
            shifts[platform] = methane_shifts(stack)
    print(f"methane shifts: {shifts}")
    amd64, arm64 = shifts["linux/amd64"], shifts["linux/arm64"]
    for element, tolerance in SAME_SCIENCE.items():
        assert len(arm64[element]) == len(amd64[element])
        for ours, theirs in zip(arm64[element], amd64[element], strict=True):
            assert ours == pytest.approx(theirs, abs=tolerance), (element, arm64, amd64)

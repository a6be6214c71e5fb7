"""What a user of the images does: build, run, hit the API, run the worker's tools.

Every variant the catalogue publishes is built by a real BuildKit from the upstream snapshots of
v2.4.0 and v2.8 with this repository's Dockerfiles (the inputs that cannot be had here replaced by
the stand-ins in ``standins.STANDINS``), then run and probed from the host as a user would.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from pipeline.main import WORKER_LOCK, WORKER_LOCK_COMMAND
from pipeline.rules.catalogue import find_image

from tests.images import builds
from tests.images.builds import UPSTREAM_TAGS
from tests.images.conftest import BuildImage
from tests.images.daemon import DaemonError, Docker
from tests.images.probes import (
    HEALTHY_TIMEOUT,
    QMNMR_UID,
    config_of,
    logs,
    running,
    serving_api,
    slow_sleep,
    wait_for_log,
    wait_healthy,
)

API_PAGES = {
    "/health": "application/json",
    "/health/ready": "application/json",
    "/": "text/html",
    "/static/css/base.css": "text/css",
    # reads data/benchmark/delta50 (experimental shifts and a structure) from the image
    "/benchmark/delta50/molecules/compound_01": "application/json",
    "/benchmark/delta50": "text/html",
}
"""What a browser or a load balancer asks the API for, and the content type it must get."""
UPSTREAM_BUGS = {
    ("v2.8", "/benchmark/delta50"): "'system_info' is undefined",
}
"""Pages that fail because of the application, not the image: v2.8's base template needs
``system_info``, which its benchmark router does not pass. The test expects exactly that failure,
so a fix upstream (or a different failure) shows."""
WORKER_STARTED = "The following commands are available"
"""What huey_consumer prints once it has loaded the app's tasks and is consuming."""
H2_SCF_INPUT = """\
start h2
geometry units angstrom
  H 0 0 0
  H 0 0 0.74
end
basis
  * library sto-3g
end
task scf energy
"""
H2_SCF_ENERGY = -1.1167
"""H2 at 0.74 Å with STO-3G: about -1.11676 Eh in any correct SCF."""

MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
API_PLATFORMS = find_image("api").platforms
WORKER_PLATFORMS = find_image("worker").platforms


# --- api ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", UPSTREAM_TAGS)
@pytest.mark.parametrize("platform", API_PLATFORMS)
def test_api_serves_what_a_user_asks_for(
    docker: Docker,
    build_image: BuildImage,
    bridge_network: str,
    platform: str,
    tag: str,
    volume: str,
) -> None:
    image = build_image("Dockerfile.api", platform, tag).tag
    architecture = docker.inspect("{{.Os}}/{{.Architecture}}", image)
    assert architecture == platform
    config = config_of(docker, image)
    assert config["User"] == f"{QMNMR_UID}:{QMNMR_UID}"
    assert not any(label.startswith("org.opencontainers") for label in config["Labels"] or {})

    # The image's own CMD and HEALTHCHECK, probed more often than every 30 s; a new volume at
    # /app/data as compose mounts it.
    with serving_api(
        docker, bridge_network, "--health-interval=2s", f"--volume={volume}:/app/data", image
    ) as served:
        api = served.container
        status = wait_healthy(docker, api)
        assert status == "running healthy", f"{status}\n{logs(docker, api)}"
        for path, content_type in API_PAGES.items():
            code, served_type, body = served.get(path)
            if known_bug := UPSTREAM_BUGS.get((tag, path)):
                assert code == 500, f"GET {path}: {code}; upstream bug fixed? {known_bug}"
                assert known_bug in wait_for_log(docker, api, known_bug)
                continue
            assert code == 200, f"GET {path}: {code} {body[:300]!r}\n{logs(docker, api)}"
            assert served_type.startswith(content_type), (path, served_type)
        code, _, body = served.get("/health/ready")
        assert json.loads(body)["checks"]["data_directory"] == "ok"
        uid_line = docker.run("exec", api, "grep", "^Uid:", "/proc/1/status").stdout
        assert uid_line.split()[1:3] == [str(QMNMR_UID)] * 2, uid_line
        machine = docker.run("exec", api, "uname", "-m").stdout.strip()
        assert machine == {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}[platform]


@pytest.mark.parametrize("tag", UPSTREAM_TAGS)
@pytest.mark.parametrize("platform", API_PLATFORMS)
def test_api_passes_its_own_validation_script(
    docker: Docker, build_image: BuildImage, platform: str, tag: str, tmp_path: Path
) -> None:
    image = build_image("Dockerfile.api", platform, tag).tag
    # The script starts uvicorn on port 8000 itself: give it a network of its own. Its fixed
    # `sleep 3` before asking /health assumes a quick start: on a busy machine, and under QEMU,
    # the start takes longer, so its sleep waits for the API instead (up to 30 times as long).
    arguments = ["run", "--rm", "--network=none", *slow_sleep(tmp_path)]
    result = docker.run(*arguments, image, "/app/scripts/validate-api.sh", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "All Validations Passed" in output


# --- worker -------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", UPSTREAM_TAGS)
@pytest.mark.parametrize("platform", WORKER_PLATFORMS)
def test_worker_passes_its_own_validation_script(
    docker: Docker, build_image: BuildImage, platform: str, tag: str
) -> None:
    image = build_image("Dockerfile.worker", platform, tag).tag
    assert docker.inspect("{{.Os}}/{{.Architecture}}", image) == platform
    config = config_of(docker, image)
    assert config["User"] == f"{QMNMR_UID}:{QMNMR_UID}"
    assert config["StopSignal"] == "SIGINT"
    assert not config["Entrypoint"]
    assert not any(label.startswith("org.opencontainers") for label in config["Labels"] or {})
    result = docker.run(
        "run", "--rm", "--network=none", image, "/app/scripts/validate-worker.sh", check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "All Validations Passed" in output
    uid = docker.run("run", "--rm", "--network=none", image, "id", "-u").stdout.strip()
    assert uid == str(QMNMR_UID)


@pytest.mark.parametrize("tag", UPSTREAM_TAGS)
@pytest.mark.parametrize("platform", WORKER_PLATFORMS)
def test_worker_runs_nwchem_with_two_ranks_and_xtb(
    docker: Docker, build_image: BuildImage, platform: str, tag: str
) -> None:
    image = build_image("Dockerfile.worker", platform, tag).tag
    script = (
        "set -e; uname -m; cd /tmp; printf '%s' \"$H2\" > h2.nw; mpirun -np 2 nwchem h2.nw; "
        "printf '3\\n\\nO 0 0 0.12\\nH 0 0.76 -0.47\\nH 0 -0.76 -0.47\\n' > water.xyz; "
        "xtb water.xyz --gfn 2 --sp"
    )
    result = docker.run(
        "run", "--rm", "--network=none", "--shm-size=256m", f"--env=H2={H2_SCF_INPUT}",
        image, "bash", "-c", script, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert output.splitlines()[0] == MACHINES[platform]
    assert "nproc           =        2" in output, output[-4000:]
    energies = [line for line in output.splitlines() if "Total SCF energy" in line]
    assert energies, output[-4000:]
    assert float(energies[-1].split()[-1]) == pytest.approx(H2_SCF_ENERGY, abs=1e-3)
    assert "normal termination of xtb" in output


@pytest.mark.parametrize("tag", UPSTREAM_TAGS)
def test_worker_consumes_the_queue_on_the_shared_volume(
    docker: Docker, build_image: BuildImage, tag: str, volume: str
) -> None:
    platform = "linux/amd64"  # arm64's worker consumes the queue in test_user_job's arm64 stack
    api_image = build_image("Dockerfile.api", "linux/amd64", tag).tag
    worker_image = build_image("Dockerfile.worker", platform, tag).tag
    data = f"--volume={volume}:/app/data"
    with (
        running(docker, "--network=none", "--health-interval=2s", data, api_image) as api,
        running(docker, "--network=none", "--shm-size=256m", data, worker_image) as worker,
    ):
        assert wait_healthy(docker, api) == "running healthy", logs(docker, api)
        worker_log = wait_for_log(docker, worker, WORKER_STARTED, HEALTHY_TIMEOUT)
        assert WORKER_STARTED in worker_log, worker_log
        # upstream's compose health check for the worker
        docker.run("exec", worker, "pgrep", "-f", "huey_consumer")
        owner = docker.run("exec", worker, "stat", "-c", "%u:%g", "/app/data/huey.db").stdout
        assert owner.strip() == f"{QMNMR_UID}:{QMNMR_UID}"
        # the API, as uid 999 on the same volume, sees what the worker wrote
        docker.run("exec", api, "test", "-r", "/app/data/huey.db")


def test_a_wrong_hash_in_the_lock_fails_the_build_naming_the_package(
    docker: Docker, build_args: dict[str, str], contexts: Callable[[str], Path], tmp_path: Path
) -> None:
    context = copy_context(contexts(UPSTREAM_TAGS[-1]), tmp_path)
    lock = context / WORKER_LOCK
    document = yaml.safe_load(lock.read_text())
    (xtb,) = [p for p in document["packages"] if "/linux-64/xtb-" in p["conda"]]
    lock.write_text(lock.read_text().replace(xtb["sha256"], "0" * 64))
    with pytest.raises(DaemonError) as failure:
        builds.build(
            docker, context, "Dockerfile.worker", "linux/amd64", "image-tests/x", build_args
        )
    message = str(failure.value)
    assert "checksum mismatch: xtb 6.5.1" in message
    assert f"{WORKER_LOCK} says {'0' * 64}" in message


def test_without_the_lock_the_build_stops_naming_the_command(
    docker: Docker, build_args: dict[str, str], contexts: Callable[[str], Path], tmp_path: Path
) -> None:
    context = copy_context(contexts(UPSTREAM_TAGS[-1]), tmp_path)
    (context / WORKER_LOCK).unlink()
    with pytest.raises(DaemonError) as failure:
        builds.build(
            docker, context, "Dockerfile.worker", "linux/arm64", "image-tests/x", build_args
        )
    message = str(failure.value)
    assert f"{WORKER_LOCK} is missing" in message
    assert WORKER_LOCK_COMMAND in message


def copy_context(context: Path, tmp_path: Path) -> Path:
    """A copy of a prepared build context that a test may change."""
    return Path(shutil.copytree(context, tmp_path / "context"))

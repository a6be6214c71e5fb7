"""Benchmark: `python -m pipeline verify` against hostile registries, and against a normal one.

For each scenario of ``tests/support/hostile_registry.py`` (a misbehaving server on 127.0.0.1), runs
``python -m pipeline verify v2.4.0`` with the real limits and prints its exit status, wall time
and peak memory (the child's max RSS). Targets: every run ends within 45 s, under 200 MB.

Then the verify of a normal release in a real ``docker-registry``, by this checkout's client
("after") and by the client of ``--before`` (default: the commit this branch started from,
extracted to a temporary directory), alternately, median of ``--runs``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.oci.client import RegistryClient
from pipeline.rules.plan import make_plan
from pipeline.rules.references import repository_path

from tests.support.hostile_registry import HostileRegistry, release_store, scenarios, serve
from tests.support.oci_images import push_release_image
from tests.support.registry_server import RegistryServer

ROOT = Path(__file__).resolve().parent.parent
TAG = "v2.4.0"
OWNER = "bench"
MAX_SECONDS = 45.0
MAX_MB = 200.0


def run_verify(host: str, pythonpath: str | None = None) -> tuple[int, float, float]:
    """Exit status, wall seconds and peak MB of one ``python -m pipeline verify``."""
    env = dict(os.environ)
    env.pop("REGISTRY_PASSWORD", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-m", "pipeline", "verify", TAG]
    command += ["--registry", host, "--owner", OWNER]
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, seconds, usage.ru_maxrss / 1024


def hostile_figures() -> bool:
    """Print one line per scenario; whether all met the targets."""
    print(f"{'scenario':28} exit  wall s  peak MB")
    all_ok = True
    for name in [name for name, _ in scenarios(release_store(make_plan(TAG, owner=OWNER)))]:
        with HostileRegistry(serve({})) as server:
            plan = make_plan(TAG, owner=OWNER, registry=server.host, overwrite=True)
            server.handler = dict(scenarios(release_store(plan)))[name]
            code, seconds, megabytes = run_verify(server.host)
        ok = code == 1 and seconds < MAX_SECONDS and megabytes < MAX_MB
        all_ok &= ok
        print(f"{name:28} {code:4} {seconds:7.2f} {megabytes:8.1f}{'' if ok else '  FAILS'}")
    return all_ok


def extract_before(commit: str, into: Path) -> str:
    """The pipeline package of ``commit`` under ``into``; its PYTHONPATH."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "pipeline/src/pipeline"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return str(into / "pipeline" / "src")


async def push_normal_release(host: str) -> None:
    """The release of TAG as publish leaves it."""
    plan = make_plan(TAG, owner=OWNER, registry=host)
    async with RegistryClient(host) as client:
        for image in plan.images:
            await push_release_image(
                client,
                repository_path(image.repository),
                list(image.tags),
                list(image.platforms),
                image.labels,
                annotations=image.index_annotations if image.multi_platform else None,
            )


def normal_figures(before: str, runs: int) -> None:
    """Print the median verify time of a normal release, before and after."""
    with RegistryServer() as registry, tempfile.TemporaryDirectory() as temp:
        anyio.run(push_normal_release, registry.host)
        before_path = extract_before(before, Path(temp))
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(runs):
            for label, path in (("before", before_path), ("after", None)):
                code, seconds, _ = run_verify(registry.host, path)
                if code != 0:
                    raise SystemExit(f"verify ({label}) of a normal release exited {code}")
                times[label].append(seconds)
        for label, values in times.items():
            print(
                f"normal release, {label:6} ({before if label == 'before' else 'this checkout'}): "
                f"median {statistics.median(values):.3f} s over {runs} runs "
                f"(min {min(values):.3f}, max {max(values):.3f})"
            )


def merge_base() -> str:
    """The commit this branch started from (its merge base with main), else HEAD."""
    result = subprocess.run(
        ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "HEAD"


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=None, help="commit to compare with (merge base)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-hostile", action="store_true")
    args = parser.parse_args()
    ok = None if args.skip_hostile else hostile_figures()
    normal_figures(args.before or merge_base(), args.runs)
    if ok is not None:
        print(f"hostile targets (exit 1, < {MAX_SECONDS:g} s, < {MAX_MB:g} MB): ", end="")
        print("met" if ok else "NOT met")


if __name__ == "__main__":
    main()

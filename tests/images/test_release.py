"""The release, rehearsed here end to end with real images: publish, pull, run, compose.

``Pipeline.publish`` runs on the real SDK objects; the stand-in engine answers its leaves with
real work (``engine_builds.RealBuilder``): every variant is built by BuildKit from the upstream
v2.4.0 snapshot with this repository's Dockerfiles, and pushed into a loopback registry as the
v0.21 engine pushes. Then a user pulls each platform by tag and runs it, and starts the stack
with this repository's docker-compose.yml.
"""

from __future__ import annotations

import http.client
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import dagger
import pytest
import yaml
from dagger import dag
from dagger.client._core import Field
from pipeline.catalogue import find_image
from pipeline.main import Pipeline
from pipeline.registry import RegistryClient
from registry_server import RegistryServer, free_port
from standin import StandInEngine

from images import standins
from images.engine_builds import RealBuilder, StandInRefusedError, upstream_commits
from images.environment import ImageEnvironment
from images.probes import (
    API_PORT,
    HEALTHY_TIMEOUT,
    QMNMR_UID,
    config_of,
    http_get,
    logs,
    port_is_free,
    running,
    wait_for_log,
    wait_healthy,
)

OWNER = "steinbeck"
TOKEN_ID = "secret-release-token"
TOKEN = "ghp_realBuildStandInTokenNeverPrinted0123"
SNAPSHOTS = {"v2.4.0": "v2.4.0", "v2.3.7": "v2.4.0"}
"""Release tag -> the upstream snapshot built for it. Upstream has no v2.3.7: the second
release is built from the same sources, as a backport would be."""
SOURCE = f"https://github.com/{OWNER}/qm-nmr-calc"
WORKER_STARTED = "The following commands are available"
COMPOSE = shutil.which("docker-compose")
WORKER_HEALTHY_TIMEOUT = 120.0
UPSTREAM_JOB = "/app/data/jobs/upstream-job"
"""A job directory as upstream's root-running worker left it on the data volume."""
"""The compose health check of the worker starts after 30 s and runs every 30 s."""


@dataclass(frozen=True)
class Release:
    """A release the rehearsal published: its registry, references and each image's digest."""

    registry: str
    references: list[str]
    digests: dict[str, str]
    engine: StandInEngine


@pytest.fixture(scope="module")
def builder(environment: ImageEnvironment, tmp_path_factory: pytest.TempPathFactory) -> RealBuilder:
    """Real builds and pushes, shared by the releases of this module."""
    return RealBuilder(
        docker=environment.docker,
        build_args=environment.build_args,
        workdir=tmp_path_factory.mktemp("real-engine"),
        snapshots=SNAPSHOTS,
    )


@pytest.fixture(scope="module")
def release_registry(environment: ImageEnvironment) -> Iterator[RegistryServer]:
    """The registry the release publishes to (GHCR's stand-in), empty at the start."""
    with RegistryServer() as server:
        yield server


def publish(builder: RealBuilder, registry: str, tag: str) -> tuple[StandInEngine, list[str]]:
    """``dagger call publish --tag TAG --username bot --password env:TOKEN``, built for real."""
    engine = StandInEngine(registry, secrets={TOKEN_ID: TOKEN}, real=builder)

    async def call() -> str:
        pipeline = Pipeline(source=dag.directory(), registry=registry, owner=OWNER)
        secret = dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))
        return await pipeline.publish(tag, username="bot", password=secret)

    with pytest.MonkeyPatch.context() as patch:
        engine.install(patch)
        output = anyio.run(call)
    return engine, output.splitlines()


def tag_digests(registry: str, repository: str) -> dict[str, str]:
    """Every tag of ``repository`` and the digest it resolves to."""

    async def read() -> dict[str, str]:
        async with RegistryClient(registry) as client:
            return {
                tag: (await client.get_manifest(repository, tag)).digest
                for tag in await client.list_tags(repository)
            }

    return anyio.run(read)


@pytest.fixture(scope="module")
def release(builder: RealBuilder, release_registry: RegistryServer) -> Release:
    """v2.4.0, published once for this module's tests."""
    engine, references = publish(builder, release_registry.host, "v2.4.0")
    digests = {
        image: tag_digests(release_registry.host, f"{OWNER}/qm-nmr-calc-{image}")["2.4.0"]
        for image in ("api", "worker")
    }
    return Release(release_registry.host, references, digests, engine)


def test_every_variant_is_built_for_real_and_every_tag_published(release: Release) -> None:
    built = sorted((variant.dockerfile, variant.platform) for variant in release.engine.builds)
    assert built == [
        ("Dockerfile.api", "linux/amd64"),
        ("Dockerfile.api", "linux/arm64"),
        ("Dockerfile.worker", "linux/amd64"),
    ]
    assert all(variant.image for variant in release.engine.builds), "a variant was not built"
    for image in ("api", "worker"):
        tags = tag_digests(release.registry, f"{OWNER}/qm-nmr-calc-{image}")
        assert sorted(tags) == ["2.4", "2.4.0", "latest"]
        assert set(tags.values()) == {release.digests[image]}
    assert len(release.references) == 6

    async def api_index() -> dict[str, Any]:
        async with RegistryClient(release.registry) as client:
            return (await client.get_manifest(f"{OWNER}/qm-nmr-calc-api", "2.4.0")).document

    index = anyio.run(api_index)
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]
    }
    assert platforms == set(find_image("api").platforms)
    assert index["annotations"]["org.opencontainers.image.version"] == "2.4.0"
    assert index["annotations"]["org.opencontainers.image.source"] == SOURCE


@pytest.mark.parametrize("platform", find_image("api").platforms)
def test_a_user_pulls_the_api_by_tag_and_runs_it(
    release: Release, environment: ImageEnvironment, platform: str
) -> None:
    docker = environment.docker
    reference = f"{release.registry}/{OWNER}/qm-nmr-calc-api:2.4.0"
    commit, commit_time = upstream_commits()["v2.4.0"]
    docker.run("pull", f"--platform={platform}", reference)
    try:
        assert docker.inspect("{{.Os}}/{{.Architecture}}", reference) == platform
        labels = config_of(docker, reference)["Labels"]
        assert labels["org.opencontainers.image.version"] == "2.4.0"
        assert labels["org.opencontainers.image.source"] == SOURCE
        assert labels["org.opencontainers.image.revision"] == commit
        # the commit's time, as the plan writes it (in UTC)
        created = datetime.fromisoformat(labels["org.opencontainers.image.created"])
        assert created == datetime.fromisoformat(commit_time)
        assert port_is_free(API_PORT)
        with running(docker, "--health-interval=2s", reference) as api:
            status = wait_healthy(docker, api)
            assert status == "running healthy", f"{platform}: {status}\n{logs(docker, api)}"
            code, _, body = http_get("/health")
            assert (code, body) == (200, b'{"status":"alive"}')
    finally:
        docker.run("rmi", reference, check=False)


def test_a_user_pulls_the_worker_and_its_tools_run(
    release: Release, environment: ImageEnvironment
) -> None:
    docker = environment.docker
    reference = f"{release.registry}/{OWNER}/qm-nmr-calc-worker:2.4.0"
    docker.run("pull", reference)
    try:
        output = docker.run("run", "--rm", "--network=none", reference, "xtb", "--version")
        assert "xtb version" in output.stdout + output.stderr
    finally:
        docker.run("rmi", reference, check=False)


def test_an_older_release_leaves_latest_on_the_newest(
    release: Release, builder: RealBuilder
) -> None:
    publish(builder, release.registry, "v2.3.7")
    for image in ("api", "worker"):
        tags = tag_digests(release.registry, f"{OWNER}/qm-nmr-calc-{image}")
        assert sorted(tags) == ["2.3", "2.3.7", "2.4", "2.4.0", "latest"]
        assert tags["latest"] == tags["2.4.0"] == release.digests[image]
        assert tags["2.3"] == tags["2.3.7"] != release.digests[image]


def test_the_real_engine_refuses_a_tag_it_has_no_sources_for(builder: RealBuilder) -> None:
    chain = [
        Field("Query", "git", {"url": SOURCE}),
        Field("GitRepository", "tag", {"name": "v9.9.9"}),
        Field("GitRef", "commit", {}),
    ]
    with pytest.raises(StandInRefusedError, match=r"v9\.9\.9"):
        builder.commit(chain)


# --- docker-compose.yml -----------------------------------------------------------------------


def https_get(url: str) -> tuple[int, bytes]:
    """GET over HTTPS without checking the certificate (Caddy's local CA signs it)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=30, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def compose_release_image(service: str, version: str) -> str:
    """The image docker-compose.yml runs for ``service`` with QM_NMR_CALC_VERSION=version."""
    return standins.compose_image(service).replace("${QM_NMR_CALC_VERSION:-latest}", version)


def loopback_compose_file(directory: Path, project: str, http: int, https: int) -> Path:
    """docker-compose.yml as it is, but Caddy on loopback ports and the volumes per project."""
    document = yaml.safe_load(standins.COMPOSE_FILE.read_text())
    document["services"]["caddy"]["ports"] = [f"127.0.0.1:{http}:80", f"127.0.0.1:{https}:443"]
    for volume in document["volumes"].values():
        volume["name"] = f"{project}-{volume['name']}"
    path = directory / "docker-compose.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    shutil.copyfile(standins.REPO_ROOT / "Caddyfile", directory / "Caddyfile")
    return path


def test_the_compose_stack_runs_the_release_on_an_upstream_volume(
    release: Release, environment: ImageEnvironment, tmp_path: Path
) -> None:
    docker = environment.docker
    assert COMPOSE is not None, "docker-compose is an image-test prerequisite"
    for image in ("api", "worker"):
        pulled = f"{release.registry}/{OWNER}/qm-nmr-calc-{image}:2.4.0"
        docker.run("pull", "--platform=linux/amd64", pulled)
        docker.run("tag", pulled, compose_release_image(image, "2.4.0"))
    caddy_standin = standins.push_caddy_standin(environment.cache, environment.standin_registry)
    docker.run("pull", caddy_standin)
    docker.run("tag", caddy_standin, standins.compose_image("caddy"))

    project = "qmnmr" + secrets.token_hex(3)
    http_port, https_port = free_port(), free_port()
    compose_file = loopback_compose_file(tmp_path, project, http_port, https_port)
    data = f"{project}-qm-nmr-calc-data"
    # A volume as upstream's root-running worker left it: a job directory and files owned by root.
    docker.run("volume", "create", data)
    api_image = compose_release_image("api", "2.4.0")
    docker.run(
        "run", "--rm", "--user=0:0", f"--volume={data}:/app/data", api_image, "sh", "-c",
        f"mkdir -p {UPSTREAM_JOB} && echo '{{}}' > {UPSTREAM_JOB}/status.json",
    )  # fmt: skip
    environment_variables = docker.environment | {"QM_NMR_CALC_VERSION": "2.4.0"}

    def compose(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [COMPOSE, "--project-name", project, "--file", str(compose_file), *arguments],
            cwd=tmp_path, env=environment_variables, capture_output=True, text=True,
            check=False, timeout=600,
        )  # fmt: skip
        assert not check or result.returncode == 0, result.stdout + result.stderr
        return result

    try:
        compose("up", "--detach")
        api, worker, caddy = (f"{project}_{name}_1" for name in ("api", "worker", "caddy"))
        assert wait_healthy(docker, api) == "running healthy", logs(docker, api)
        assert WORKER_STARTED in wait_for_log(docker, worker, WORKER_STARTED, HEALTHY_TIMEOUT)
        # upstream's health check of the worker (pgrep), as compose runs it
        assert wait_healthy(docker, worker, WORKER_HEALTHY_TIMEOUT) == "running healthy"
        # the upstream volume was handed to uid 999; both containers use it
        owner = docker.run("exec", api, "stat", "-c", "%u", UPSTREAM_JOB).stdout
        assert owner.strip() == str(QMNMR_UID)
        assert docker.run("exec", worker, "test", "-w", "/app/data/huey.db").returncode == 0
        code, body = http_get_ready(f"https://localhost:{https_port}/health/ready")
        assert code == 200, body
        assert b'"data_directory":"ok"' in body
        # plain HTTP is redirected to HTTPS
        connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
        connection.request("GET", "/", headers={"Host": "localhost"})
        response = connection.getresponse()
        assert response.status in {301, 302, 308}, logs(docker, caddy)
        assert response.getheader("location", "").startswith("https://localhost")
        connection.close()
    finally:
        compose("down", "--volumes", "--timeout", "30", check=False)
        docker.run("volume", "rm", "--force", data, check=False)


def http_get_ready(url: str, timeout: float = 60.0) -> tuple[int, bytes]:
    """GET through Caddy, waiting while it still starts (connection refused or 502)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            code, body = https_get(url)
        except (urllib.error.URLError, ConnectionError, ssl.SSLError) as error:
            code, body = 0, str(error).encode()
        if code not in {0, 502, 503} or time.monotonic() > deadline:
            return code, body
        time.sleep(1)

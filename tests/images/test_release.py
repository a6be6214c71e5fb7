"""The release, rehearsed here end to end with real images: publish, pull, run, compose.

``Pipeline.publish`` runs on the real SDK objects; the stand-in engine answers its leaves with
real work (``engine_builds.RealBuilder``): every variant is built by BuildKit from the upstream
v2.4.0 snapshot with this repository's Dockerfiles, and pushed into a loopback registry as the
v0.21 engine pushes (``rehearsal.publish``). Then a user pulls each platform by tag and runs
it, and starts the stack with this repository's docker-compose.yml.
"""

from __future__ import annotations

import http.client
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from dagger.client._core import Field
from pipeline.attest.storage import fallback_tag
from pipeline.oci.client import RegistryClient
from pipeline.rules.catalogue import find_image

from tests.images.engine_builds import RealBuilder, StandInRefusedError, upstream_commits
from tests.images.environment import ImageEnvironment
from tests.images.probes import (
    HEALTHY_TIMEOUT,
    QMNMR_UID,
    config_of,
    logs,
    serving_api,
    wait_for_log,
    wait_healthy,
)
from tests.images.rehearsal import (
    OWNER,
    SOURCE,
    Release,
    publish,
    release_tags,
    tag_digests,
)
from tests.images.stack import compose_stack

WORKER_STARTED = "The following commands are available"
WORKER_HEALTHY_TIMEOUT = 120.0
"""The compose health check of the worker starts after 30 s and runs every 30 s."""
UPSTREAM_JOB = "/app/data/jobs/upstream-job"
"""A job directory as upstream's root-running worker left it on the data volume."""


def test_every_variant_is_built_for_real_and_every_tag_published(release: Release) -> None:
    built = sorted((variant.dockerfile, variant.platform) for variant in release.engine.builds)
    assert built == [
        ("Dockerfile.api", "linux/amd64"),
        ("Dockerfile.api", "linux/arm64"),
        ("Dockerfile.worker", "linux/amd64"),
        ("Dockerfile.worker", "linux/arm64"),
    ]
    assert all(variant.image for variant in release.engine.builds), "a variant was not built"
    assert len(release.references) == 6

    async def index_of(image: str) -> dict[str, Any]:
        async with RegistryClient(release.registry) as client:
            return (await client.get_manifest(f"{OWNER}/qm-nmr-calc-{image}", "2.4.0")).document

    for image in ("api", "worker"):
        index = anyio.run(index_of, image)
        repository = f"{OWNER}/qm-nmr-calc-{image}"
        tags = release_tags(release.registry, repository)
        assert sorted(tags) == ["2.4", "2.4.0", "latest"]
        assert set(tags.values()) == {release.digests[image]}
        # The attestations of the index and of each platform, under the referrers tag fallback.
        attested = [release.digests[image], *(entry["digest"] for entry in index["manifests"])]
        attestation_tags = set(tag_digests(release.registry, repository)) - set(tags)
        assert attestation_tags == {fallback_tag(digest) for digest in attested}
        platforms = {
            f"{entry['platform']['os']}/{entry['platform']['architecture']}"
            for entry in index["manifests"]
        }
        assert platforms == set(find_image(image).platforms) == {"linux/amd64", "linux/arm64"}
        assert index["annotations"]["org.opencontainers.image.version"] == "2.4.0"
        assert index["annotations"]["org.opencontainers.image.source"] == SOURCE


@pytest.mark.parametrize("platform", find_image("api").platforms)
def test_a_user_pulls_the_api_by_tag_and_runs_it(
    release: Release, environment: ImageEnvironment, bridge_network: str, platform: str
) -> None:
    docker = environment.docker
    reference = release.reference("api")
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
        with serving_api(docker, bridge_network, "--health-interval=2s", reference) as served:
            status = wait_healthy(docker, served.container)
            assert status == "running healthy", f"{platform}: {logs(docker, served.container)}"
            code, _, body = served.get("/health")
            assert (code, body) == (200, b'{"status":"alive"}')
    finally:
        docker.run("rmi", reference, check=False)


@pytest.mark.parametrize("platform", find_image("worker").platforms)
def test_a_user_pulls_the_worker_by_tag_and_its_tools_run(
    release: Release, environment: ImageEnvironment, platform: str
) -> None:
    docker = environment.docker
    reference = release.reference("worker")
    docker.run("pull", f"--platform={platform}", reference)
    try:
        assert docker.inspect("{{.Os}}/{{.Architecture}}", reference) == platform
        labels = config_of(docker, reference)["Labels"]
        assert labels["org.opencontainers.image.version"] == "2.4.0"
        output = docker.run("run", "--rm", "--network=none", reference, "xtb", "--version")
        assert "xtb version" in output.stdout + output.stderr
    finally:
        docker.run("rmi", reference, check=False)


def test_an_older_release_leaves_latest_on_the_newest(
    release: Release, builder: RealBuilder
) -> None:
    publish(builder, release.registry, "v2.3.7")
    for image in ("api", "worker"):
        tags = release_tags(release.registry, f"{OWNER}/qm-nmr-calc-{image}")
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


def test_the_compose_stack_runs_the_release_on_an_upstream_volume(
    release: Release, environment: ImageEnvironment, caddy_image: str, tmp_path: Path
) -> None:
    docker = environment.docker
    images = {"api": release.reference("api"), "worker": release.reference("worker")}
    seed = f"mkdir -p {UPSTREAM_JOB} && echo '{{}}' > {UPSTREAM_JOB}/status.json"
    with compose_stack(
        docker, tmp_path, "2.4.0", images | {"caddy": caddy_image}, seed=seed
    ) as stack:
        api, worker, caddy = (stack.container(name) for name in ("api", "worker", "caddy"))
        assert wait_healthy(docker, api) == "running healthy", logs(docker, api)
        assert WORKER_STARTED in wait_for_log(docker, worker, WORKER_STARTED, HEALTHY_TIMEOUT)
        # upstream's health check of the worker (pgrep), as compose runs it
        assert wait_healthy(docker, worker, WORKER_HEALTHY_TIMEOUT) == "running healthy"
        # the volume left by upstream's root worker was handed to uid 999; both use it
        owner = docker.run("exec", api, "stat", "-c", "%u", UPSTREAM_JOB).stdout
        assert owner.strip() == str(QMNMR_UID)
        assert docker.run("exec", worker, "test", "-w", "/app/data/huey.db").returncode == 0
        code, body = stack.request("/health/ready")
        assert code == 200, body
        assert b'"data_directory":"ok"' in body
        # plain HTTP is redirected to HTTPS
        connection = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=30)
        connection.request("GET", "/", headers={"Host": "localhost"})
        response = connection.getresponse()
        assert response.status in {301, 302, 308}, logs(docker, caddy)
        assert response.getheader("location", "").startswith("https://localhost")
        connection.close()

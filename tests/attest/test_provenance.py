"""The SLSA v1 provenance of an image: what it records of the build's inputs and its builder."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipeline.attest.errors import AttestationError
from pipeline.attest.provenance import (
    BUILD_TYPE,
    GITHUB_ISSUER,
    REHEARSAL_RUN,
    BuildInputs,
    Download,
    RunDetails,
    conda_downloads,
    github_run,
    provenance_predicate,
    token_claims,
)
from pipeline.rules.plan import ImagePlan, make_plan

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CREATED = "2026-11-20T15:03:00+01:00"
PYTHON = "docker.io/library/python:3.11-slim-bookworm@sha256:" + "a" * 64
UV = "ghcr.io/astral-sh/uv:0.13.9@sha256:" + "b" * 64
AMD64 = Download("https://conda.example/linux-64/xtb-6.7.1-0.conda", "1" * 64)
ARM64 = Download("https://conda.example/linux-aarch64/xtb-6.7.1-0.conda", "2" * 64)
INPUTS = BuildInputs(
    dockerfile="Dockerfile.worker",
    dockerfile_sha256="3" * 64,
    base_images={"PYTHON_IMAGE": PYTHON, "UV_IMAGE": UV},
    locks={"uv.lock": "4" * 64, "worker/conda.lock": "5" * 64},
    downloads={"linux/amd64": [AMD64], "linux/arm64": [ARM64]},
)
RUN = RunDetails(
    builder_id="https://github.com/steinbeck/qm-nmr-calc/.github/workflows/release.yml@refs/tags/v2.4.0",
    invocation_id="https://github.com/steinbeck/qm-nmr-calc/actions/runs/7/attempts/1",
    pipeline_revision="f" * 40,
)
LOCK = f"""version: 6
environments:
  default:
    channels:
    - url: https://conda.example/
    packages:
      linux-64:
      - conda: {AMD64.url}
      linux-aarch64:
      - conda: {ARM64.url}
packages:
- conda: {AMD64.url}
  sha256: {AMD64.sha256}
- conda: {ARM64.url}
  sha256: {ARM64.sha256}
"""


def worker_plan() -> ImagePlan:
    """The worker's plan of v2.4.0 at ``COMMIT``."""
    return make_plan("v2.4.0", revision=COMMIT, created=CREATED).image("worker")


def dependencies(predicate: dict[str, Any]) -> list[dict[str, Any]]:
    """The resolved dependencies of a predicate."""
    found: list[dict[str, Any]] = predicate["buildDefinition"]["resolvedDependencies"]
    return found


def test_the_source_is_upstream_at_the_release_tag_with_its_commit() -> None:
    predicate = provenance_predicate(worker_plan(), "v2.4.0", INPUTS, RUN)
    source = dependencies(predicate)[0]
    assert source == {
        "name": "source",
        "uri": "git+https://github.com/steinbeck/qm-nmr-calc@refs/tags/v2.4.0",
        "digest": {"gitCommit": COMMIT},
    }
    external = predicate["buildDefinition"]["externalParameters"]
    assert external["source"] == source["uri"]
    assert predicate["buildDefinition"]["buildType"] == BUILD_TYPE


def test_a_build_without_a_known_commit_records_no_digest_rather_than_a_made_up_one() -> None:
    image = make_plan("v2.4.0").image("api")
    assert "digest" not in dependencies(provenance_predicate(image, "v2.4.0", INPUTS, RUN))[0]


def test_each_base_image_is_recorded_by_its_digest_and_built_from_the_pinned_reference() -> None:
    predicate = provenance_predicate(worker_plan(), "v2.4.0", INPUTS, RUN)
    bases = {
        entry["name"]: entry
        for entry in dependencies(predicate)
        if entry.get("name", "").endswith("_IMAGE")
    }
    assert bases["PYTHON_IMAGE"] == {
        "name": "PYTHON_IMAGE",
        "uri": "docker://docker.io/library/python:3.11-slim-bookworm",
        "digest": {"sha256": "a" * 64},
    }
    assert bases["UV_IMAGE"]["digest"] == {"sha256": "b" * 64}
    assert predicate["buildDefinition"]["externalParameters"]["buildArgs"] == {
        "PYTHON_IMAGE": PYTHON,
        "UV_IMAGE": UV,
    }


def test_an_unpinned_base_image_is_refused() -> None:
    inputs = BuildInputs("Dockerfile.api", "3" * 64, {"PYTHON_IMAGE": "python:3.11"})
    with pytest.raises(AttestationError, match=r"PYTHON_IMAGE=.python:3\.11. is not pinned"):
        provenance_predicate(worker_plan(), "v2.4.0", inputs, RUN)


def test_the_dockerfile_and_the_locks_are_recorded_by_sha256() -> None:
    named = {
        entry["name"]: entry["digest"]
        for entry in dependencies(provenance_predicate(worker_plan(), "v2.4.0", INPUTS, RUN))
        if "name" in entry
    }
    assert named["Dockerfile.worker"] == {"sha256": "3" * 64}
    assert named["uv.lock"] == {"sha256": "4" * 64}
    assert named["worker/conda.lock"] == {"sha256": "5" * 64}


def test_a_platform_manifest_records_only_its_own_platform_and_downloads() -> None:
    predicate = provenance_predicate(worker_plan(), "v2.4.0", INPUTS, RUN, platform="linux/arm64")
    downloads = [entry for entry in dependencies(predicate) if "annotations" in entry]
    assert downloads == [
        {
            "uri": ARM64.url,
            "digest": {"sha256": ARM64.sha256},
            "annotations": {"platform": "linux/arm64"},
        }
    ]
    assert predicate["buildDefinition"]["externalParameters"]["platforms"] == ["linux/arm64"]


def test_the_index_records_every_platform() -> None:
    predicate = provenance_predicate(worker_plan(), "v2.4.0", INPUTS, RUN)
    urls = [entry["uri"] for entry in dependencies(predicate) if "annotations" in entry]
    assert urls == [AMD64.url, ARM64.url]
    assert predicate["buildDefinition"]["externalParameters"]["platforms"] == [
        "linux/amd64",
        "linux/arm64",
    ]


def test_the_builder_is_the_run_that_signed() -> None:
    predicate = provenance_predicate(worker_plan(), "v2.4.0", INPUTS, RUN)
    assert predicate["runDetails"] == {
        "builder": {"id": RUN.builder_id},
        "metadata": {"invocationId": RUN.invocation_id},
    }
    internal = predicate["buildDefinition"]["internalParameters"]
    assert internal["pipelineRevision"] == "f" * 40
    assert internal["sourceCommitTime"] == "2026-11-20T14:03:00Z"  # the label, in UTC


def test_a_rehearsal_says_so_as_its_builder() -> None:
    predicate = provenance_predicate(worker_plan(), "v2.4.0", INPUTS, REHEARSAL_RUN)
    assert "rehearsal" in predicate["runDetails"]["builder"]["id"]
    assert predicate["runDetails"]["metadata"] == {}


URN = re.compile(r"urn:[a-z0-9][a-z0-9-]{0,30}[a-z0-9]:[A-Za-z0-9._~:@!$&'*+,;=/-]+")
"""RFC 8141, without the characters that would need care to quote: no space, no parentheses."""


@pytest.mark.parametrize("run", [REHEARSAL_RUN, RUN], ids=["rehearsal", "workflow"])
def test_the_builder_id_is_a_uri(run: RunDetails) -> None:
    """SLSA's builder.id is a TypeURI: a rehearsal's is a URN, a workflow's its URL."""
    builder = run.builder_id
    assert URN.fullmatch(builder) or builder.startswith("https://"), builder
    assert not re.search(r"\s", builder), builder


def test_the_conda_lock_gives_each_platform_its_packages_by_url_and_hash() -> None:
    assert conda_downloads(LOCK, ["linux/amd64", "linux/arm64"]) == {
        "linux/amd64": [AMD64],
        "linux/arm64": [ARM64],
    }


@pytest.mark.parametrize(
    "lock", ["", "packages: []\n", "- just\n- a list\n", LOCK.replace("sha256:", "md5:")]
)
def test_a_conda_lock_of_another_shape_is_refused_naming_what_is_expected(lock: str) -> None:
    with pytest.raises(AttestationError, match="expected the lock `dagger call worker-lock`"):
        conda_downloads(lock, ["linux/amd64"])


def jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT carrying ``claims``."""
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"e30.{body}.c2ln"


GITHUB_CLAIMS = {
    "iss": GITHUB_ISSUER,
    "repository": "steinbeck/qm-nmr-calc",
    "job_workflow_ref": "steinbeck/qm-nmr-calc/.github/workflows/release.yml@refs/tags/v2.4.0",
    "job_workflow_sha": "e" * 40,
    "run_id": "123",
    "run_attempt": "2",
}


def test_a_github_token_names_the_workflow_run() -> None:
    run = github_run(token_claims(jwt(GITHUB_CLAIMS)))
    assert run == RunDetails(
        builder_id="https://github.com/steinbeck/qm-nmr-calc/.github/workflows/release.yml@refs/tags/v2.4.0",
        invocation_id="https://github.com/steinbeck/qm-nmr-calc/actions/runs/123/attempts/2",
        pipeline_revision="e" * 40,
    )


def test_a_token_of_another_issuer_is_refused() -> None:
    with pytest.raises(AttestationError, match="not by GitHub Actions"):
        github_run({**GITHUB_CLAIMS, "iss": "https://accounts.google.com"})


def test_a_token_without_its_workflow_is_refused() -> None:
    claims = {key: value for key, value in GITHUB_CLAIMS.items() if key != "job_workflow_ref"}
    with pytest.raises(AttestationError, match="job_workflow_ref"):
        github_run(claims)


@given(st.text(max_size=40))
def test_anything_but_a_jwt_of_json_claims_is_refused(text: str) -> None:
    try:
        claims = token_claims(text)
    except AttestationError:
        return
    assert isinstance(claims, dict)
    assert text.count(".") == 2

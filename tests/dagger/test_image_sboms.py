"""The SBOM of a pushed image: ``pipeline.sboms.scan`` runs syft in a container on the engine.

Here the stand-in engine runs the host's syft 1.18.1 with the chain's arguments against a REAL
registry on loopback holding small synthetic images with Debian and Python packages
(``tests.support.package_images``): what syft finds, how the registry is reached (credentials,
the rehearsal's service) and what a failure says are real syft's; the chain is the module's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import dagger
import pytest
from dagger import dag
from dagger.client._core import Field
from pipeline.attest.errors import AttestationError
from pipeline.oci.client import RegistryClient
from pipeline.sboms import DOCKER_CONFIG_FILE, SYFT_IMAGE, docker_config, registry_login, scan

from tests.support.oci_images import push_image
from tests.support.package_images import DEBIAN_PACKAGES, PYTHON_PACKAGES, push_packaged_image
from tests.support.registry_server import RegistryServer
from tests.support.standin import StandInEngine
from tests.support.standin_syft import RecordedScans

pytestmark = pytest.mark.anyio

TOKEN_ID = "secret-registry-token"
REHEARSAL_PORT = 5000
PACKAGES = sorted([*DEBIAN_PACKAGES, *PYTHON_PACKAGES])


async def push(registry: RegistryServer, repository: str, platform: str) -> str:
    """Push a packaged image for ``platform``; its digest."""
    async with RegistryClient(
        registry.host, username=registry.username, password=registry.password
    ) as client:
        return await push_packaged_image(client, repository, platform)


def engine_for(
    registry: RegistryServer, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> StandInEngine:
    """A stand-in engine for ``registry``, knowing the token secret, installed."""
    engine = StandInEngine(registry.host, secrets={TOKEN_ID: str(registry.password)}, **options)
    engine.install(monkeypatch)
    return engine


def rehearsal_registry() -> dagger.Service:
    """The rehearsal's throwaway registry, as ``Pipeline._rehearse`` makes it."""
    return dag.container().from_("registry:2").with_exposed_port(REHEARSAL_PORT).as_service()


def packages(document: dict[str, Any], purl_type: str) -> dict[str, str]:
    """Name -> purl of the packages of one purl type (``deb``, ``pypi``)."""
    found = {}
    for package in document["packages"]:
        for ref in package.get("externalRefs", []):
            if ref["referenceType"] == "purl" and ref["referenceLocator"].startswith(
                f"pkg:{purl_type}/"
            ):
                found[package["name"]] = ref["referenceLocator"]
    return found


def syft_commands(engine: StandInEngine) -> list[list[Field]]:
    """Every syft container chain the engine was asked to run."""
    return [
        chain
        for chain in engine.queries
        if any(step.name == "from" and step.args["address"] == SYFT_IMAGE for step in chain)
    ]


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
async def test_the_sbom_of_a_pushed_platform_lists_its_debian_and_python_packages(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    engine = engine_for(registry, monkeypatch)
    repository = f"{owner}/qm-nmr-calc-api"
    digest = await push(registry, repository, platform)

    document = await scan(
        f"{registry.host}/{repository}@{digest}", platform, login=None, registry_service=None
    )

    assert document["spdxVersion"] == "SPDX-2.3"
    assert document["name"] == f"{registry.host}/{repository}"
    architecture = platform.split("/")[1]
    debian = packages(document, "deb")
    assert sorted(debian) == sorted(DEBIAN_PACKAGES)
    assert all(f"arch={architecture}" in purl for purl in debian.values())
    assert packages(document, "pypi") == {
        name: f"pkg:pypi/{name}@{version}" for name, version in PYTHON_PACKAGES.items()
    }
    (chain,) = syft_commands(engine)
    assert chain[-2].args["args"][:6] == [
        "/syft",
        "scan",
        f"registry:{registry.host}/{repository}@{digest}",
        "--platform",
        platform,
        "--output",
    ]


async def test_the_login_reaches_syft_only_as_a_mounted_docker_config_secret(
    auth_registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(auth_registry, monkeypatch)
    repository = f"{owner}/qm-nmr-calc-api"
    digest = await push(auth_registry, repository, "linux/amd64")
    login = registry_login(
        auth_registry.host, str(auth_registry.username), str(auth_registry.password)
    )
    reference = f"{auth_registry.host}/{repository}@{digest}"

    document = await scan(reference, "linux/amd64", login=login, registry_service=None)

    assert {p["name"] for p in document["packages"]} >= set(PACKAGES)
    (chain,) = syft_commands(engine)
    mounted = [step.args for step in chain if step.name == "withMountedSecret"]
    assert mounted == [{"path": DOCKER_CONFIG_FILE, "source": login}]
    variables = {
        s.args["name"] for s in chain if s.name in {"withEnvVariable", "withSecretVariable"}
    }
    assert not any(name.startswith("SYFT_REGISTRY_AUTH") for name in variables)
    assert str(auth_registry.username) not in repr(chain)


async def test_a_registry_user_named_like_the_owner_is_not_masked_in_the_sbom(
    owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a release by the owner (github.actor == steinbeck): syft masks its own credential
    # variables' values everywhere it prints, so with those the SBOM would name
    # HOST/*******/qm-nmr-calc-api.
    with RegistryServer(username=owner, password="owner-token-0123456789") as registry:
        engine_for(registry, monkeypatch)
        repository = f"{owner}/qm-nmr-calc-api"
        digest = await push(registry, repository, "linux/amd64")
        login = registry_login(registry.host, owner, "owner-token-0123456789")
        reference = f"{registry.host}/{repository}@{digest}"

        document = await scan(reference, "linux/amd64", login=login, registry_service=None)

    printed = json.dumps(document)
    assert document["name"] == f"{registry.host}/{repository}"
    assert "*******" not in printed
    assert printed.count(owner) >= 2  # the name and the namespace


def test_the_docker_config_logs_in_to_the_registry_only() -> None:
    config = json.loads(docker_config("ghcr.io", "steinbeck", "ghp_token"))

    assert list(config) == ["auths"]
    assert list(config["auths"]) == ["ghcr.io"]
    assert base64.b64decode(config["auths"]["ghcr.io"]["auth"]) == b"steinbeck:ghp_token"


async def test_a_login_with_the_rehearsal_service_is_refused(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(registry, monkeypatch)
    reference = f"localhost:{REHEARSAL_PORT}/{owner}/qm-nmr-calc-api@sha256:{'a' * 64}"

    with pytest.raises(ValueError, match="takes no login"):
        await scan(
            reference,
            "linux/amd64",
            login=registry_login(registry.host, "bot", "token"),
            registry_service=rehearsal_registry(),
        )

    assert engine.queries == []


async def test_without_credentials_a_private_registry_s_refusal_is_told(
    auth_registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_for(auth_registry, monkeypatch)
    repository = f"{owner}/qm-nmr-calc-api"
    digest = await push(auth_registry, repository, "linux/amd64")
    reference = f"{auth_registry.host}/{repository}@{digest}"

    with pytest.raises(AttestationError) as refused:
        await scan(reference, "linux/amd64", login=None, registry_service=None)

    message = str(refused.value)
    assert message.startswith(f"syft could not scan {reference} for linux/amd64 (exit code 1): ")
    assert "UNAUTHORIZED: authentication required" in message


async def test_the_rehearsal_registry_is_read_through_its_bound_service_over_http(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(registry, monkeypatch)
    repository = f"{owner}/qm-nmr-calc-api"
    digest = await push(registry, repository, "linux/arm64")
    # as the rehearsal publishes: to localhost:5000, aliased to the service
    reference = f"localhost:{REHEARSAL_PORT}/{repository}@{digest}"

    document = await scan(
        reference, "linux/arm64", login=None, registry_service=rehearsal_registry()
    )

    assert document["name"] == f"localhost:{REHEARSAL_PORT}/{repository}"
    assert sorted(packages(document, "deb")) == sorted(DEBIAN_PACKAGES)
    (chain,) = syft_commands(engine)
    bindings = [step.args["alias"] for step in chain if step.name == "withServiceBinding"]
    assert (
        chain[-2].args["args"][2]
        == f"registry:{bindings[0]}:{REHEARSAL_PORT}/{repository}@{digest}"
    )


async def test_the_rehearsal_reference_without_its_service_reaches_an_empty_loopback(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_for(registry, monkeypatch)
    digest = await push(registry, f"{owner}/qm-nmr-calc-api", "linux/amd64")
    reference = f"localhost:{REHEARSAL_PORT}/{owner}/qm-nmr-calc-api@{digest}"

    with pytest.raises(AttestationError, match="connect: connection refused"):
        await scan(reference, "linux/amd64", login=None, registry_service=None)


async def test_an_image_the_registry_lacks_is_an_error_naming_it(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_for(registry, monkeypatch)
    reference = f"{registry.host}/{owner}/qm-nmr-calc-api@sha256:{'0' * 64}"

    with pytest.raises(AttestationError) as missing:
        await scan(reference, "linux/amd64", login=None, registry_service=None)

    assert f"syft could not scan {reference}" in str(missing.value)
    assert "MANIFEST_UNKNOWN" in str(missing.value)


@pytest.mark.parametrize(
    "reference",
    ["ghcr.io/steinbeck/qm-nmr-calc-api:2.4.0", "qm-nmr-calc-api@sha256:" + "a" * 64],
)
async def test_a_reference_that_is_not_a_digest_in_a_repository_is_refused(
    registry: RegistryServer, monkeypatch: pytest.MonkeyPatch, reference: str
) -> None:
    engine = engine_for(registry, monkeypatch)

    with pytest.raises(ValueError, match="give HOST/REPOSITORY@sha256:<hex>"):
        await scan(reference, "linux/amd64", login=None, registry_service=None)

    assert engine.queries == []


# --- what the stand-in models -------------------------------------------------------------------


async def test_a_bound_alias_resolves_only_in_the_container_it_is_bound_to(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_for(registry, monkeypatch)
    digest = await push(registry, f"{owner}/api", "linux/amd64")
    target = f"registry:registry:{REHEARSAL_PORT}/{owner}/api@{digest}"
    base = dag.container().from_(SYFT_IMAGE)
    command = ["/syft", "scan", target, "--platform", "linux/amd64", "--output", "spdx-json"]

    with pytest.raises(dagger.ExecError) as unbound:
        await (
            base.with_env_variable("SYFT_REGISTRY_INSECURE_USE_HTTP", "true")
            .with_exec(command)
            .stdout()
        )
    assert "lookup registry: no such host" in unbound.value.stderr

    bound = base.with_service_binding("registry", rehearsal_registry())
    with pytest.raises(dagger.ExecError) as over_tls:
        await bound.with_exec(command).stdout()
    assert "server gave HTTP response to HTTPS client" in over_tls.value.stderr

    printed = (
        await bound.with_env_variable("SYFT_REGISTRY_INSECURE_USE_HTTP", "true")
        .with_exec(command)
        .stdout()
    )
    assert json.loads(printed)["spdxVersion"] == "SPDX-2.3"


async def test_syft_masks_the_values_of_its_own_credential_variables_in_the_sbom(
    owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Why the login is a Docker config file: the same scan with syft's variables.
    with RegistryServer(username=owner, password="owner-token-0123456789") as registry:
        engine_for(registry, monkeypatch)
        digest = await push(registry, f"{owner}/api", "linux/amd64")
        printed = await (
            dag.container()
            .from_(SYFT_IMAGE)
            .with_env_variable("SYFT_CHECK_FOR_APP_UPDATE", "false")
            .with_env_variable("SYFT_REGISTRY_AUTH_AUTHORITY", registry.host)
            .with_env_variable("SYFT_REGISTRY_AUTH_USERNAME", owner)
            .with_secret_variable(
                "SYFT_REGISTRY_AUTH_PASSWORD",
                dag.load_secret_from_id(dagger.SecretID(TOKEN_ID)),
            )
            .with_exec(
                [
                    "/syft",
                    "scan",
                    f"registry:{registry.host}/{owner}/api@{digest}",
                    "--platform",
                    "linux/amd64",
                    "--output",
                    "spdx-json",
                ]
            )
            .stdout()
        )

    assert json.loads(printed)["name"] == f"{registry.host}/*******/api"
    assert owner not in printed


SCAN = ["/syft", "scan", "registry:x/y@sha256:" + "a" * 64, "--platform", "linux/amd64"]
UNMODELLED: dict[str, Callable[[dagger.Container], dagger.Container]] = {
    "another output": lambda syft: syft.with_exec([*SCAN, "--output", "cyclonedx-json"]),
    "another option": lambda syft: syft.with_exec([*SCAN, "--output", "spdx-json", "-s", "all"]),
    "another source": lambda syft: syft.with_exec(["/syft", "scan", "dir:/"]),
    "another variable": lambda syft: syft.with_env_variable("SYFT_PARALLELISM", "4").with_exec(
        [*SCAN, "--output", "spdx-json"]
    ),
    "a step after the command": lambda syft: syft.with_exec(
        [*SCAN, "--output", "spdx-json"]
    ).with_workdir("/tmp"),
    "the entrypoint": lambda syft: syft.with_exec(SCAN[1:], use_entrypoint=True),
    "another image": lambda _syft: (
        dag.container().from_("anchore/syft:latest").with_exec([*SCAN, "--output", "spdx-json"])
    ),
}
"""Syft containers the stand-in refuses rather than guess what they would print."""


@pytest.mark.parametrize("unmodelled", UNMODELLED)
async def test_a_syft_chain_the_stand_in_does_not_model_is_refused(
    registry: RegistryServer, monkeypatch: pytest.MonkeyPatch, unmodelled: str
) -> None:
    engine_for(registry, monkeypatch)
    container = UNMODELLED[unmodelled](dag.container().from_(SYFT_IMAGE))

    with pytest.raises(NotImplementedError):
        await container.stdout()


async def push_empty(registry: RegistryServer, repository: str, platform: str) -> str:
    """Push a synthetic image with no packages (one small file) for ``platform``; its digest."""
    async with RegistryClient(registry.host) as client:
        digest, _size, _media_type = await push_image(
            client, repository, platform=platform, labels={"repository": repository}
        )
    return digest


def without_random_parts(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` without what syft makes anew at every run: its namespace's UUID, its time."""
    namespace = document["documentNamespace"]
    return document | {
        "documentNamespace": namespace[: -len("00000000-0000-0000-0000-000000000000")],
        "creationInfo": document["creationInfo"] | {"created": None},
    }


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
async def test_a_recorded_scan_renamed_is_what_syft_writes_for_another_image_without_packages(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    recorded = RecordedScans()
    engine_for(registry, monkeypatch, recorded_scans=recorded)
    first, second = f"{owner}/qm-nmr-calc-api", f"{owner}-other/qm-nmr-calc-worker"
    first_digest = await push_empty(registry, first, platform)
    second_digest = await push_empty(registry, second, platform)
    await scan(
        f"{registry.host}/{first}@{first_digest}", platform, login=None, registry_service=None
    )

    renamed = await scan(
        f"{registry.host}/{second}@{second_digest}", platform, login=None, registry_service=None
    )
    engine_for(registry, monkeypatch)  # no recording: syft itself
    real = await scan(
        f"{registry.host}/{second}@{second_digest}", platform, login=None, registry_service=None
    )

    assert recorded.real_scans == 1
    assert renamed["documentNamespace"] != real["documentNamespace"]  # a UUID of its own
    assert without_random_parts(renamed) == without_random_parts(real)
    assert second_digest.removeprefix("sha256:") in json.dumps(renamed)
    assert first_digest.removeprefix("sha256:") not in json.dumps(renamed)


async def test_an_image_with_packages_is_always_scanned_by_syft(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = RecordedScans()
    engine_for(registry, monkeypatch, recorded_scans=recorded)
    repository = f"{owner}/qm-nmr-calc-api"
    digest = await push(registry, repository, "linux/amd64")

    for _ in range(2):
        document = await scan(
            f"{registry.host}/{repository}@{digest}",
            "linux/amd64",
            login=None,
            registry_service=None,
        )
        assert {p["name"] for p in document["packages"]} >= set(PACKAGES)

    assert recorded.real_scans == 2
    assert recorded.recorded == {}

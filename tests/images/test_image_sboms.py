"""The SBOM of the real api image: ``pipeline.sboms.scan`` on what the release pushes.

The api is built for real from the upstream v2.4.0 snapshot (as ``test_images`` builds it),
pushed into a loopback registry as the engine pushes it (``RealBuilder.push``), and scanned by
``scan`` through the stand-in engine, which runs the host's syft 1.18.1 with the chain's
arguments. The SBOM must list what the image is made of: Debian's packages of the base image
and the application's Python dependencies, not every file they own.
"""

from __future__ import annotations

from functools import partial

import anyio
import pytest
from pipeline.attest.sbom import sbom_packages
from pipeline.rules.catalogue import find_image
from pipeline.sboms import scan

from tests.images.conftest import BuildImage
from tests.images.engine_builds import RealBuilder
from tests.support.registry_server import RegistryServer
from tests.support.standin import StandInEngine

REPOSITORY = "steinbeck/qm-nmr-calc-api"
PYTHON_DEPENDENCIES = {"fastapi", "rdkit", "uvicorn"}
"""Direct dependencies of upstream's API the SBOM must list."""
DEBIAN_PACKAGES = {"base-files", "libc6", "bash"}
"""Packages of any Debian base image."""


@pytest.mark.parametrize("platform", find_image("api").platforms)
def test_the_sbom_of_the_real_api_lists_its_debian_and_python_packages(
    build_image: BuildImage,
    builder: RealBuilder,
    monkeypatch: pytest.MonkeyPatch,
    platform: str,
) -> None:
    built = build_image("Dockerfile.api", platform, "v2.4.0")
    with RegistryServer() as registry:
        digest = builder.push(registry.host, REPOSITORY, "2.4.0", [built.tag])
        StandInEngine(registry.host).install(monkeypatch)
        reference = f"{registry.host}/{REPOSITORY}@{digest}"
        document = anyio.run(partial(scan, reference, platform, login=None, registry_service=None))

    purls = [
        ref["referenceLocator"]
        for package in document["packages"]
        for ref in package.get("externalRefs", [])
        if ref["referenceType"] == "purl"
    ]
    python = {purl.split("/")[1].split("@")[0] for purl in purls if purl.startswith("pkg:pypi/")}
    debian = [purl for purl in purls if purl.startswith("pkg:deb/debian/")]
    assert python >= PYTHON_DEPENDENCIES
    assert {purl.split("/")[2].split("@")[0] for purl in debian} >= DEBIAN_PACKAGES
    architecture = platform.split("/")[1]
    assert all(f"arch={architecture}" in purl or "arch=all" in purl for purl in debian)
    assert set(sbom_packages(document)) >= PYTHON_DEPENDENCIES | DEBIAN_PACKAGES
    # Packages, not every file they own (what would make the signed SBOM several MB).
    package_ids = {package["SPDXID"] for package in document["packages"]}
    file_ids = {file["SPDXID"] for file in document.get("files", [])}
    assert not [
        relationship
        for relationship in document["relationships"]
        if relationship["relationshipType"] == "CONTAINS"
        and relationship["spdxElementId"] in package_ids
        and relationship["relatedSpdxElement"] in file_ids
    ]

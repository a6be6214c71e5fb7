"""Tiny synthetic images that hold packages an SBOM scanner finds: Debian and Python.

``oci_images`` images hold one JSON file and nothing a scanner recognises. These hold what syft
reads to list packages: ``/etc/os-release`` (the distribution), dpkg's status database
(``/var/lib/dpkg/status``) and a Python distribution's ``*.dist-info/METADATA``, with a version
per platform so two platforms' SBOMs differ. Deterministic, as the images of ``oci_images``.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping
from typing import Any

from pipeline.oci.client import OCI_MANIFEST, RegistryClient, serialize_json

from tests.support.oci_images import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    BuiltImage,
    parse_platform,
    push_built,
    sha256_digest,
)

DEBIAN_PACKAGES = {"libc6": "2.36-9+deb12u9", "python3-minimal": "3.11.2-1+b1"}
"""Debian packages every packaged image lists in dpkg's status database, with their versions."""
PYTHON_PACKAGES = {"fastapi": "0.115.6", "rdkit": "2024.9.4"}
"""Python distributions every packaged image holds, with their versions."""
SITE_PACKAGES = "usr/local/lib/python3.11/site-packages"
OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""


def dpkg_status(architecture: str) -> str:
    """dpkg's status database listing ``DEBIAN_PACKAGES`` as installed for ``architecture``."""
    return "\n".join(
        f"Package: {name}\nStatus: install ok installed\nPriority: optional\n"
        f"Installed-Size: 100\nMaintainer: Stand-in <standin@example.invalid>\n"
        f"Architecture: {architecture}\nVersion: {version}\nDescription: stand-in {name}\n"
        for name, version in DEBIAN_PACKAGES.items()
    )


def package_files(platform: str) -> dict[str, bytes]:
    """The files of a packaged image for ``platform``, by path without a leading slash."""
    architecture = parse_platform(platform)["architecture"]
    files = {
        "etc/os-release": OS_RELEASE.encode(),
        "var/lib/dpkg/status": dpkg_status(architecture).encode(),
    }
    for name, version in PYTHON_PACKAGES.items():
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        files[f"{SITE_PACKAGES}/{name}-{version}.dist-info/METADATA"] = metadata.encode()
    return files


def files_tar(files: Mapping[str, bytes]) -> bytes:
    """A tar of ``files`` (path -> content), parents included, fixed owner, mode and time."""
    buffer = io.BytesIO()
    parts = [path.split("/") for path in files]
    directories = sorted({"/".join(path[:n]) for path in parts for n in range(1, len(path))})
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            archive.addfile(info)
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(files[path]), 0o644, 0
            archive.addfile(info, io.BytesIO(files[path]))
    return buffer.getvalue()


def build_packaged_image(platform: str) -> BuiltImage:
    """The layer, config and manifest of a packaged image for ``platform``."""
    tar = files_tar(package_files(platform))
    layer = gzip.compress(tar, mtime=0)
    config = serialize_json(
        {
            **parse_platform(platform),
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]},
        }
    )
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER_GZIP, "digest": sha256_digest(layer), "size": len(layer)}
        ],
    }
    return BuiltImage(layer=layer, config=config, manifest=serialize_json(manifest))


async def push_packaged_image(client: RegistryClient, repository: str, platform: str) -> str:
    """Push a packaged image for ``platform`` by digest; returns its manifest digest."""
    return await push_built(client, repository, build_packaged_image(platform))

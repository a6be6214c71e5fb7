"""What a repository holds (``pipeline.steps.published``) against a REAL registry: what is
concluded, and what is read.

Reading a repository's state is on the path of every ``plan``, ``publish`` and ``verify``; a
floating tag's holder is named from the cheapest evidence that is sure (its own version tag),
so the reads themselves are part of the contract: a client that records them is wrapped around
the real one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pytest
from pipeline.oci.client import OCI_INDEX, OCI_MANIFEST, RegistryClient, RegistryError
from pipeline.oci.documents import Manifest
from pipeline.rules.versions import FloatingHolder
from pipeline.steps.published import (
    config_labels,
    image_labels_of,
    read_holder,
    read_published,
    version_digests,
)
from semver import Version

from tests.support.oci_images import build_index, push_blob, push_image, sha256_digest
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.anyio

VERSION = "org.opencontainers.image.version"
AMD64 = {VERSION: "2.4.0", "org.opencontainers.image.revision": "a" * 40}
ARM64 = {VERSION: "2.4.0", "org.opencontainers.image.revision": "b" * 40}
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


class RecordingClient(RegistryClient):
    """The real client, recording which manifests (by tag or digest) and configs it reads.

    ``get_manifest`` reads through ``get_manifest_or_none``: every manifest read is recorded once.
    """

    def __init__(self, registry: str) -> None:
        super().__init__(registry)
        self.manifest_reads: list[str] = []
        self.config_reads = 0

    async def get_manifest_or_none(self, repository: str, reference: str) -> Manifest | None:
        self.manifest_reads.append(reference)
        return await super().get_manifest_or_none(repository, reference)

    async def get_json_blob(self, repository: str, digest: str) -> dict[str, object]:
        self.config_reads += 1
        return await super().get_json_blob(repository, digest)

    def forget(self) -> None:
        """Start recording afresh."""
        self.manifest_reads.clear()
        self.config_reads = 0


async def push_tagged(
    client: RegistryClient,
    path: str,
    tags: Sequence[str],
    platforms: Mapping[str, Mapping[str, str]],
    *,
    attestation: bool = False,
) -> str:
    """Push an index of ``platforms`` (and an attestation entry) under ``tags``; its digest."""
    named = []
    for platform, labels in platforms.items():
        digest, size, _ = await push_image(client, path, platform=platform, labels=labels)
        named.append((platform, digest, size))
    if attestation:
        digest, size, _ = await push_image(client, path, platform="linux/amd64", labels={})
        named.append(("unknown/unknown", digest, size))
    raw = build_index(named)
    digests = {await client.put_manifest(path, tag, raw, OCI_INDEX) for tag in tags}
    (digest,) = digests
    return digest


async def test_a_semver_label_makes_one_platform_and_its_own_version_tag_enough(
    registry: RegistryServer, owner: str
) -> None:
    path = f"{owner}/qm-nmr-calc-api"
    client = RecordingClient(registry.host)
    async with client:
        await push_tagged(client, path, ["2.3.0"], {"linux/amd64": {VERSION: "2.3.0"}})
        digest = await push_tagged(
            client, path, ["2.4.0", "latest"], {"linux/amd64": AMD64, "linux/arm64": ARM64}
        )
        tags = tuple(await client.list_tags(path))
        client.forget()

        holder = await read_holder(client, path, "latest", tags)

    assert holder == FloatingHolder(digest, Version(2, 4, 0), "version tag 2.4.0 shares its digest")
    latest, platform, own_tag = client.manifest_reads
    assert (latest, own_tag) == ("latest", "2.4.0")
    assert platform.startswith("sha256:")  # one platform's manifest, read by digest
    assert client.config_reads == 1


async def test_a_label_naming_a_version_with_no_tag_reads_no_version_tag(
    registry: RegistryServer, owner: str
) -> None:
    path = f"{owner}/qm-nmr-calc-api"
    client = RecordingClient(registry.host)
    async with client:
        await push_tagged(client, path, ["2.4.0"], {"linux/amd64": AMD64})
        digest = await push_tagged(client, path, ["latest"], {"linux/amd64": {VERSION: "2.9.0"}})
        tags = tuple(await client.list_tags(path))
        client.forget()

        holder = await read_holder(client, path, "latest", tags)

    assert holder == FloatingHolder(digest, Version(2, 9, 0), "its version label is 2.9.0")
    assert [read for read in client.manifest_reads if "sha256:" not in read] == ["latest"]


async def test_without_a_version_label_the_version_tag_sharing_the_digest_names_it(
    registry: RegistryServer, owner: str
) -> None:
    path = f"{owner}/qm-nmr-calc-worker"
    async with RegistryClient(registry.host) as client:
        await push_tagged(client, path, ["2.6.4"], {"linux/amd64": {"other": "2.6.4"}})
        digest = await push_tagged(client, path, ["2.6.5", "latest"], {"linux/amd64": {}})
        holder = await read_holder(client, path, "latest", tuple(await client.list_tags(path)))

    assert holder == FloatingHolder(digest, Version(2, 6, 5), "version tag 2.6.5 shares its digest")


async def test_an_index_of_attestations_only_has_no_version(
    registry: RegistryServer, owner: str
) -> None:
    path = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        digest = await push_tagged(client, path, ["latest"], {}, attestation=True)
        holder = await read_holder(client, path, "latest", ("latest",))

    assert holder == FloatingHolder(
        digest,
        None,
        "no version tag shares its digest, and it has no version label, not a SemVer version",
    )


async def test_version_labels_are_every_platforms_and_no_attestations(
    registry: RegistryServer, owner: str
) -> None:
    path = f"{owner}/qm-nmr-calc-api"
    platforms = {"linux/amd64": AMD64, "linux/arm64": ARM64}
    async with RegistryClient(registry.host) as client:
        digest = await push_tagged(client, path, ["2.4.0"], platforms, attestation=True)
        state = await read_published(client, path, "2.4.0", ["2.4", "latest"])

    assert state.tags == ("2.4.0",)
    assert state.version_digest == digest
    assert state.version_labels == (AMD64, ARM64)
    assert state.holders == {}


async def test_a_version_tag_gone_since_the_listing_is_left_out(
    registry: RegistryServer, owner: str
) -> None:
    path = f"{owner}/qm-nmr-calc-worker"
    async with RegistryClient(registry.host) as client:
        digest = await push_tagged(client, path, ["2.4.0"], {"linux/amd64": AMD64})
        found = await version_digests(client, path, ["2.4.0", "2.4.1"])

    assert found == {"2.4.0": digest}


async def test_a_manifest_without_a_config_digest_is_refused_by_name(
    registry: RegistryServer, owner: str
) -> None:
    path = f"{owner}/qm-nmr-calc-worker"
    raw = json.dumps({"schemaVersion": 2, "config": {"mediaType": OCI_CONFIG}}).encode()
    manifest = Manifest(digest=sha256_digest(raw), media_type=OCI_MANIFEST, raw=raw)
    async with RegistryClient(registry.host) as client:
        with pytest.raises(RegistryError) as refused:
            await config_labels(client, path, manifest)

    assert str(refused.value) == f"{path}@{manifest.digest}: the manifest has no config descriptor"


async def test_labels_that_are_not_an_object_are_refused_by_name(
    registry: RegistryServer, owner: str
) -> None:
    path = f"{owner}/qm-nmr-calc-worker"
    async with RegistryClient(registry.host) as client:
        config_document = {"os": "linux", "architecture": "amd64", "config": {"Labels": ["a"]}}
        config = await push_blob(client, path, json.dumps(config_document).encode())
        document = {"schemaVersion": 2, "config": {"mediaType": OCI_CONFIG, "digest": config}}
        raw = json.dumps(document).encode()
        manifest = Manifest(digest=sha256_digest(raw), media_type=OCI_MANIFEST, raw=raw)
        with pytest.raises(RegistryError) as refused:
            await config_labels(client, path, manifest)

    assert str(refused.value) == (
        f"{path}@{manifest.digest}: its image config {config} is not accepted: "
        "config.config.Labels is list; accepted: an object of strings"
    )


@pytest.mark.parametrize(
    "manifests",
    [
        pytest.param({}, id="an-object"),
        pytest.param([{"mediaType": OCI_MANIFEST}], id="a-descriptor-without-digest"),
        pytest.param(["sha256:" + "0" * 64], id="a-bare-digest"),
    ],
)
async def test_an_index_whose_entries_are_not_descriptors_is_refused_by_name(
    registry: RegistryServer, owner: str, manifests: object
) -> None:
    raw = json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()
    index = Manifest(digest=sha256_digest(raw), media_type=OCI_INDEX, raw=raw)
    async with RegistryClient(registry.host) as client:
        with pytest.raises(RegistryError) as refused:
            await image_labels_of(client, f"{owner}/qm-nmr-calc-api", index)

    assert str(refused.value) == (
        f"index {index.digest}: its manifests are not a list of descriptors"
    )

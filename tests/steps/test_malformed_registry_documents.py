"""A registry that serves an image config of the wrong shape: every reader names the problem.

Every document a registry serves goes through the shape checks of ``pipeline.oci.documents``:
what a repository already holds (``steps/published.py``, read before any plan), what a
verification reads (``steps/verify.py``), and so every Dagger function that reads a registry.
A config of the wrong shape is one line naming the image, the config and the field, never a
traceback. Pushed into the real loopback registry, read back through the real client.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from dagger import dag
from pipeline.main import Pipeline
from pipeline.oci.client import OCI_INDEX, OCI_MANIFEST, RegistryClient, RegistryError
from pipeline.oci.documents import serialize_json
from pipeline.rules.plan import make_plan
from pipeline.steps.published import read_published
from pipeline.steps.verify import verify_release

from tests.support.oci_images import OCI_CONFIG, build_index, push_blob, push_image, sha256_digest
from tests.support.registry_server import RegistryServer
from tests.support.standin import StandInEngine

pytestmark = pytest.mark.anyio

PLATFORM = {"os": "linux", "architecture": "amd64"}
MALFORMED_CONFIGS = [
    pytest.param({**PLATFORM, "config": ["Labels"]}, "config.config is list", id="runtime-a-list"),
    pytest.param(
        {**PLATFORM, "config": {"Labels": ["a=b"]}},
        "config.config.Labels is list; accepted: an object of strings",
        id="labels-a-list",
    ),
    pytest.param(
        {**PLATFORM, "config": {"Labels": {"org.opencontainers.image.version": 2}}},
        "config.config.Labels 'org.opencontainers.image.version'=2 is not accepted",
        id="label-a-number",
    ),
    pytest.param(
        {"config": {"Labels": {}}}, "not an image config: no os and architecture", id="no-platform"
    ),
    pytest.param({**PLATFORM, "os": 7}, "config.os is 7; accepted: a string", id="os-a-number"),
    pytest.param(
        {**PLATFORM, "config": {"Labels": {"x": "a\x1b[31m"}}, "os": ["\x07"]},
        "config.os is ['\\x07']",
        id="control-characters-escaped",
    ),
]


async def push_config(
    client: RegistryClient, path: str, tags: Sequence[str], config: object
) -> tuple[str, str]:
    """Push an image whose config blob is ``config`` under ``tags``: (manifest, config) digests."""
    blob = json.dumps(config).encode()
    config_digest = await push_blob(client, path, blob)
    manifest = serialize_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(blob)},
            "layers": [],
        }
    )
    digest = ""
    for tag in tags:
        digest = await client.put_manifest(path, tag, manifest, OCI_MANIFEST)
    return digest, config_digest


@pytest.mark.parametrize(("config", "named"), MALFORMED_CONFIGS)
@pytest.mark.parametrize("tag", ["2.4.0", "latest"], ids=["version-tag", "floating-tag"])
async def test_what_a_repository_holds_is_read_or_refused_in_one_line(
    registry: RegistryServer, owner: str, config: object, named: str, tag: str
) -> None:
    path = f"{owner}/qm-nmr-calc-worker"
    async with RegistryClient(registry.host) as client:
        digest, config_digest = await push_config(client, path, [tag], config)
        with pytest.raises(RegistryError) as refused:
            await read_published(client, path, "2.4.0", ["2.4", "latest"])

    message = str(refused.value)
    assert message.startswith(
        f"{path}@{digest}: its image config {config_digest} is not accepted: "
    )
    assert named in message
    assert message.isprintable()


@pytest.mark.parametrize(("config", "named"), MALFORMED_CONFIGS)
async def test_verification_names_a_malformed_config_as_a_mismatch(
    registry: RegistryServer, owner: str, config: object, named: str
) -> None:
    plan = make_plan("v2.4.0", owner=owner, registry=registry.host)
    worker = plan.images[1]
    async with RegistryClient(registry.host) as client:
        await push_config(client, f"{owner}/qm-nmr-calc-worker", worker.tags, config)
        report = await verify_release(client, plan)

    (image,) = [image for image in report.images if image.name == "worker"]
    unreadable = [text for text in image.mismatches if "cannot read its config" in text]
    assert len(unreadable) == 1
    assert named in unreadable[0]


async def test_plan_and_publish_refuse_a_malformed_config_naming_it(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = StandInEngine(registry.host)
    engine.install(monkeypatch)
    path = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        digest, _ = await push_config(client, path, ["latest"], {**PLATFORM, "config": [1]})
    pipeline = Pipeline(
        source=dag.directory(), registry=registry.host, owner=owner, build_files=dag.directory()
    )

    with pytest.raises(RegistryError) as refused:
        await pipeline.plan("v2.4.0")

    assert str(refused.value).startswith(f"{path}@{digest}: its image config ")
    assert "config.config is list; accepted: an object" in str(refused.value)
    assert engine.builds == []


async def test_an_index_inside_an_index_is_refused_naming_it(
    registry: RegistryServer, owner: str
) -> None:
    path = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        image, size, _ = await push_image(client, path, platform="linux/amd64", labels={})
        inner = build_index([("linux/amd64", image, size)])
        inner_digest = await client.put_manifest(path, sha256_digest(inner), inner, OCI_INDEX)
        outer = build_index([("linux/amd64", inner_digest, len(inner))])
        await client.put_manifest(path, "2.4.0", outer, OCI_INDEX)
        with pytest.raises(RegistryError) as refused:
            await read_published(client, path, "2.4.0", ["2.4", "latest"])

    assert str(refused.value).startswith(
        f"{path}@{inner_digest}: an index where an image manifest belongs"
    )

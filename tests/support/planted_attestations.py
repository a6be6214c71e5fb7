"""What someone with write access to a package can do to the attestations stored beside it.

Each function changes the registry as such a writer (or a registry that lies) could: drop a
predicate type from a digest's ``sha256-<hex>`` listing, plant an artifact manifest holding any
bundle (stored as attesting any digest, its bundle's size declared as anything), swap two
digests' listings, list an artifact the repository does not hold. ``attach`` would refuse most
of these, so the documents are written here by hand, in the layout ``pipeline.attest.storage``
reads. Also the release helpers the adversarial tests share: a publish through the stand-in.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import dagger
import pytest
from dagger import dag
from pipeline.attest.signing import BUNDLE_MEDIA_TYPE
from pipeline.attest.storage import (
    CONTENT_ANNOTATION,
    CONTENT_DSSE,
    EMPTY_CONFIG,
    EMPTY_MEDIA_TYPE,
    PREDICATE_ANNOTATION,
    Descriptor,
    fallback_tag,
)
from pipeline.main import Pipeline
from pipeline.oci.client import OCI_INDEX, OCI_MANIFEST, RegistryClient, digest_of, serialize_json

from tests.support.standin import StandInEngine, signing_flags
from tests.support.standin_syft import RecordedScans

RELEASE_TOKEN_ID = "secret-adversarial-token"
RECORDED_SCANS = RecordedScans()
"""syft runs once per platform for these tests: the SBOMs' contents are not what they test."""


def installed_engine(registry_host: str, monkeypatch: pytest.MonkeyPatch) -> StandInEngine:
    """A stand-in engine that pushes into the test registry, installed for this test."""
    standin = StandInEngine(
        registry_host, secrets={RELEASE_TOKEN_ID: "t"}, recorded_scans=RECORDED_SCANS
    )
    standin.install(monkeypatch)
    return standin


"""The id of the stand-in secret that ``publish`` below passes as the registry password."""


@dataclass(frozen=True)
class Published:
    """The digests one image of a release serves: its index and its platform manifests."""

    path: str
    """``owner/qm-nmr-calc-NAME``."""
    index: Descriptor
    platforms: dict[str, Descriptor]
    """By platform (``linux/arm64``)."""


async def publish(registry: str, owner: str, tag: str) -> str:
    """``dagger call publish --tag TAG`` into ``registry`` (the stand-in must be installed)."""
    pipeline = Pipeline(
        source=dag.directory(), build_files=dag.directory(), registry=registry, owner=owner
    )
    secret = dag.load_secret_from_id(dagger.SecretID(RELEASE_TOKEN_ID))
    return await pipeline.publish(tag, username="bot", password=secret, **signing_flags())


async def served(client: RegistryClient, path: str, tag: str) -> Published:
    """What ``path:tag`` serves: the index and each platform manifest's descriptor."""
    index = await client.get_manifest(path, tag)
    platforms = {
        f"{entry['platform']['os']}/{entry['platform']['architecture']}": Descriptor(
            entry["mediaType"], entry["digest"], entry["size"]
        )
        for entry in index.document["manifests"]
    }
    return Published(path, Descriptor(index.media_type, index.digest, len(index.raw)), platforms)


async def listing(client: RegistryClient, path: str, digest: str) -> dict[str, Any]:
    """The ``sha256-<hex>`` index of ``digest`` (an empty one if there is none)."""
    index = await client.get_manifest_or_none(path, fallback_tag(digest))
    if index is None:
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    return index.document


async def write_listing(
    client: RegistryClient, path: str, digest: str, document: dict[str, Any]
) -> None:
    """Store ``document`` as the ``sha256-<hex>`` index of ``digest``."""
    await client.put_manifest(path, fallback_tag(digest), serialize_json(document), OCI_INDEX)


def predicate_of(entry: dict[str, Any]) -> object:
    """The predicate type an index entry is annotated with."""
    return (entry.get("annotations") or {}).get(PREDICATE_ANNOTATION)


async def drop(client: RegistryClient, path: str, digest: str, predicate_type: str) -> None:
    """Remove the entry of ``predicate_type`` from the listing of ``digest``."""
    document = await listing(client, path, digest)
    document["manifests"] = [e for e in document["manifests"] if predicate_of(e) != predicate_type]
    await write_listing(client, path, digest, document)


async def plant(
    client: RegistryClient,
    path: str,
    subject: Descriptor,
    bundle: bytes,
    predicate_type: str,
    *,
    stored_as: Descriptor | None = None,
    declared_size: int | None = None,
) -> str:
    """Store ``bundle`` as an artifact listed for ``subject``, replacing its ``predicate_type``.

    ``stored_as``: the artifact's ``subject`` (default: ``subject``); ``declared_size``: the
    layer's size as the manifest states it (default: the bundle's). Returns the artifact digest.
    """
    config = await client.put_blob(path, EMPTY_CONFIG)
    layer = await client.put_blob(path, bundle)
    target = stored_as or subject
    annotations = {CONTENT_ANNOTATION: CONTENT_DSSE, PREDICATE_ANNOTATION: predicate_type}
    manifest = serialize_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_MEDIA_TYPE,
            "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config, "size": 2},
            "layers": [
                {
                    "mediaType": BUNDLE_MEDIA_TYPE,
                    "digest": layer,
                    "size": len(bundle) if declared_size is None else declared_size,
                }
            ],
            "subject": {
                "mediaType": target.media_type,
                "digest": target.digest,
                "size": target.size,
            },
            "annotations": annotations,
        }
    )
    digest = await client.put_manifest(path, digest_of(manifest), manifest, OCI_MANIFEST)
    await list_entry(client, path, subject.digest, digest, len(manifest), predicate_type)
    return digest


async def list_entry(
    client: RegistryClient, path: str, subject: str, digest: str, size: int, predicate_type: str
) -> None:
    """List artifact ``digest`` for ``subject`` as ``predicate_type``, replacing that type."""
    document = await listing(client, path, subject)
    kept = [e for e in document["manifests"] if predicate_of(e) != predicate_type]
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": size,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "annotations": {CONTENT_ANNOTATION: CONTENT_DSSE, PREDICATE_ANNOTATION: predicate_type},
    }
    document["manifests"] = [*kept, entry]
    await write_listing(client, path, subject, document)


async def swap_listings(client: RegistryClient, path: str, one: str, other: str) -> None:
    """Store the listing of digest ``other`` under the ``sha256-<hex>`` tag of ``one``."""
    await write_listing(client, path, one, await listing(client, path, other))


def tampered(bundle: bytes, change: dict[str, Any]) -> bytes:
    """``bundle`` with its statement's predicate updated by ``change``, the signature kept."""
    document = json.loads(bundle)
    envelope = document["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"].update(change)
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps(document).encode()


async def stored_bundle(
    client: RegistryClient, path: str, digest: str, predicate_type: str
) -> bytes:
    """The bundle the listing of ``digest`` holds for ``predicate_type``."""
    document = await listing(client, path, digest)
    (entry,) = [e for e in document["manifests"] if predicate_of(e) == predicate_type]
    manifest = await client.get_manifest(path, entry["digest"])
    return await client.get_blob(path, manifest.document["layers"][0]["digest"])

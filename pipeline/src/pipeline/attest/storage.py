"""Bundles stored in the registry beside the digest they attest, as GitHub and cosign store them.

Each bundle is an OCI artifact manifest (artifactType and one layer of ``BUNDLE_MEDIA_TYPE``,
the empty config, ``subject`` = the attested digest, the predicate type in its annotations).
Neither GHCR nor Docker's registry 2.8 has the referrers API, so the artifacts are listed, as
clients fall back to, in an OCI index tagged ``sha256-<hex of the subject>``: one entry per
predicate type, replaced when attached again. Never an ``unknown/unknown`` platform entry in an
image index: the image's own index is not touched.

Attach one predicate type at a time per subject: the fallback index is read, changed and
written back, so two attaches to one subject at once could lose an entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.attest.errors import AttestationError
from pipeline.attest.signing import BUNDLE_MEDIA_TYPE, MAX_BUNDLE, unverified_statement
from pipeline.oci import RegistryClient, serialize_json
from pipeline.oci.client import MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST, Manifest, digest_of
from pipeline.oci.text import printable

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "Descriptor",
    "StoredBundle",
    "attach",
    "attached",
    "fallback_tag",
]

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
CONTENT_DSSE = "dsse-envelope"
PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
CREATED_ANNOTATION = "org.opencontainers.image.created"
MAX_ATTACHED = 64
FALLBACK_TAG_PREFIX = "sha256-"
"""Tags made of it and a digest's hex list attachments; never a release's tags."""
"""Entries of a fallback index read at most; a longer list is refused as not ours."""
_SHA256 = re.compile(r"^sha256:([0-9a-f]{64})\Z", re.ASCII)


@dataclass(frozen=True)
class Descriptor:
    """The attested manifest or index: its media type, digest and size in bytes."""

    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class StoredBundle:
    """One stored attestation: its artifact manifest, the labels on it and the bundle."""

    manifest_digest: str
    predicate_type: str
    subject_digest: str
    """The artifact manifest's ``subject`` digest (what it is stored as attesting)."""
    bundle: bytes


def fallback_tag(digest: str) -> str:
    """The tag listing what is attached to ``digest``: ``sha256-<hex>``."""
    match = _SHA256.match(digest)
    if match is None:
        raise AttestationError(
            f"subject digest {printable(digest)[:80]!r} is not accepted; "
            "give sha256:<64 lowercase hex digits>"
        )
    return f"{FALLBACK_TAG_PREFIX}{match.group(1)}"


async def attach(
    client: RegistryClient,
    repository: str,
    subject: Descriptor,
    bundle: bytes,
    predicate_type: str,
    *,
    created: datetime | None = None,
) -> str:
    """Store ``bundle`` as an artifact of ``subject`` and list it; returns the artifact digest.

    ``repository`` is the path (``steinbeck/qm-nmr-calc-api``). The bundle must carry a
    statement about ``subject`` of ``predicate_type`` (its signature is not checked here).
    ``created`` (default: now) goes into ``org.opencontainers.image.created``.
    """
    tag = fallback_tag(subject.digest)
    if subject.media_type not in MANIFEST_TYPES or subject.size < 1:
        raise AttestationError(
            f"subject {subject!r} is not accepted; give a manifest or index descriptor "
            f"(media type one of {', '.join(MANIFEST_TYPES)}, its size in bytes)"
        )
    _check_bundle(bundle, subject.digest, predicate_type)
    config_digest = await client.put_blob(repository, EMPTY_CONFIG)
    bundle_digest = await client.put_blob(repository, bundle)
    manifest = _artifact_manifest(
        subject, config_digest, bundle_digest, len(bundle), predicate_type, created
    )
    digest = await client.put_manifest(repository, digest_of(manifest), manifest, OCI_MANIFEST)
    index = await client.get_manifest_or_none(repository, tag)
    document = _listed(index, repository, tag, predicate_type, digest, len(manifest))
    await client.put_manifest(repository, tag, serialize_json(document), OCI_INDEX)
    return digest


async def attached(
    client: RegistryClient, repository: str, subject_digest: str
) -> list[StoredBundle]:
    """Every bundle listed under the subject's fallback tag; [] when nothing is attached.

    A listed artifact this repository does not hold (another repository's), or a bundle
    declared larger than ``MAX_BUNDLE``, is an AttestationError: nothing is read past it.
    """
    tag = fallback_tag(subject_digest)
    index = await client.get_manifest_or_none(repository, tag)
    if index is None:
        return []
    stored = []
    for entry in _bundle_entries(index, repository, tag):
        manifest = await client.get_manifest_or_none(repository, entry)
        if manifest is None:
            raise AttestationError(
                f"{repository}:{tag} lists {entry}, which {repository} does not hold; accepted: "
                "artifacts stored in the attested image's own repository"
            )
        subject, layer, predicate_type = _artifact_parts(manifest, repository)
        bundle = await client.get_blob(repository, layer)
        stored.append(StoredBundle(manifest.digest, predicate_type, subject, bundle))
    return stored


def _check_bundle(bundle: bytes, subject_digest: str, predicate_type: str) -> None:
    """Refuse to store a bundle under a label its statement does not bear out."""
    if len(bundle) > MAX_BUNDLE:
        raise AttestationError(f"bundle is over {MAX_BUNDLE} bytes; it could not be read back")
    claimed = unverified_statement(bundle)
    if claimed.subject_digest != subject_digest:
        raise AttestationError(
            f"bundle's statement is about {claimed.subject_digest}, not {subject_digest}"
        )
    if claimed.predicate_type != predicate_type:
        raise AttestationError(
            f"bundle's statement has predicate type {printable(claimed.predicate_type)[:80]!r}, "
            f"not {predicate_type!r}"
        )


def _artifact_manifest(
    subject: Descriptor,
    config_digest: str,
    bundle_digest: str,
    bundle_size: int,
    predicate_type: str,
    created: datetime | None,
) -> bytes:
    """The artifact manifest of one bundle (keys in the order the OCI spec lists them)."""
    when = (created or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": config_digest,
            "size": len(EMPTY_CONFIG),
        },
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": bundle_digest, "size": bundle_size}],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
        "annotations": {
            CONTENT_ANNOTATION: CONTENT_DSSE,
            PREDICATE_ANNOTATION: predicate_type,
            CREATED_ANNOTATION: when,
        },
    }
    return serialize_json(document)


def _listed(
    index: Manifest | None,
    repository: str,
    tag: str,
    predicate_type: str,
    digest: str,
    size: int,
) -> dict[str, Any]:
    """The fallback index with the entry for ``predicate_type`` added, or replacing the old one.

    Entries of other artifact types (another tool's) are kept as they are.
    """
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    if index is not None:
        _check_index(index, repository, tag)
        document = index.document
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": size,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "annotations": {CONTENT_ANNOTATION: CONTENT_DSSE, PREDICATE_ANNOTATION: predicate_type},
    }
    kept = [
        old
        for old in document["manifests"]
        if not (_is_bundle_entry(old) and _predicate_of(old) == predicate_type)
    ]
    document["manifests"] = [*kept, entry]
    return document


def _check_index(index: Manifest, repository: str, tag: str) -> list[dict[str, Any]]:
    """The entries of the fallback index, refused if it is not one we can extend."""
    if index.media_type != OCI_INDEX:
        raise AttestationError(
            f"{repository}:{tag} is a {index.media_type}, not an OCI index of attestations"
        )
    entries: list[dict[str, Any]] = index.document["manifests"]  # shape checked by the client
    if len(entries) > MAX_ATTACHED:
        raise AttestationError(
            f"{repository}:{tag} lists {len(entries)} manifests; at most {MAX_ATTACHED} are read"
        )
    return entries


def _bundle_entries(index: Manifest, repository: str, tag: str) -> list[str]:
    """The digests of the Sigstore bundle artifacts a fallback index lists."""
    return [
        str(entry["digest"])
        for entry in _check_index(index, repository, tag)
        if _is_bundle_entry(entry)
    ]


def _is_bundle_entry(entry: dict[str, Any]) -> bool:
    """Whether an index entry is a Sigstore bundle artifact."""
    return entry.get("artifactType") == BUNDLE_MEDIA_TYPE


def _predicate_of(entry: dict[str, Any]) -> object:
    """The predicate type an entry's annotations name, if any."""
    annotations = entry.get("annotations") or {}
    return annotations.get(PREDICATE_ANNOTATION)


def _artifact_parts(manifest: Manifest, repository: str) -> tuple[str, str, str]:
    """The subject digest, bundle layer digest and predicate type of one artifact manifest."""
    where = f"{repository}@{manifest.digest}"
    document = manifest.document
    if manifest.media_type != OCI_MANIFEST or document.get("artifactType") != BUNDLE_MEDIA_TYPE:
        raise AttestationError(
            f"{where} is not a Sigstore bundle artifact; accepted: an OCI manifest with "
            f"artifactType {BUNDLE_MEDIA_TYPE}"
        )
    layers = document.get("layers")
    if (
        not isinstance(layers, list)
        or len(layers) != 1
        or layers[0].get("mediaType") != BUNDLE_MEDIA_TYPE
    ):
        raise AttestationError(f"{where} does not hold exactly one {BUNDLE_MEDIA_TYPE} layer")
    size = layers[0].get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_BUNDLE:
        raise AttestationError(
            f"{where} declares a bundle of {printable(repr(size))[:40]} bytes; accepted: "
            f"1 to {MAX_BUNDLE} bytes (it is not read)"
        )
    subject = document.get("subject")
    subject_digest = subject.get("digest") if isinstance(subject, dict) else None
    if not isinstance(subject_digest, str) or not _SHA256.match(subject_digest):
        raise AttestationError(f"{where} has no subject with a sha256 digest")
    predicate_type = (document.get("annotations") or {}).get(PREDICATE_ANNOTATION)
    if not isinstance(predicate_type, str) or not predicate_type:
        raise AttestationError(f"{where} has no {PREDICATE_ANNOTATION} annotation")
    return subject_digest, str(layers[0]["digest"]), predicate_type

"""Attest every digest a release publishes: its SBOM, its provenance and its signature.

Runs after the version tags are pushed (and an index annotated), before any floating tag moves:
the subjects are the digests users pull (the index and each platform manifest). Each artifact is
an in-toto statement about one digest, signed into a Sigstore bundle and stored beside the image
(``pipeline.attest.storage``). What is already attached and verifies is kept: a re-run of a
release that stopped half-way signs only what is missing, and never duplicates an artifact.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio

from pipeline.attest.errors import AttestationError
from pipeline.attest.provenance import BuildInputs, RunDetails, provenance_predicate
from pipeline.attest.sbom import merged_sbom, sbom_packages
from pipeline.attest.signing import Signer, Verifier
from pipeline.attest.statements import PROVENANCE, SBOM, SIGNATURE, Statement, statement
from pipeline.attest.storage import Descriptor, attach, attached
from pipeline.oci import Manifest, RegistryClient, platform_of
from pipeline.rules.plan import ImagePlan
from pipeline.rules.references import repository_path
from pipeline.steps.concurrency import gather
from pipeline.steps.progress import step

Scan = Callable[[str, str], Awaitable[Mapping[str, Any]]]
"""Makes the SBOM of a pushed image: (``repository@digest``, platform) -> SPDX 2.3 JSON."""

SIGNATURE_PREDICATE: Mapping[str, Any] = {}
"""cosign's signature statement says nothing but its subject."""


@dataclass(frozen=True)
class Attesting:
    """How a release attests: who signs, how bundles are checked, what the builds were made of."""

    tag: str
    signer: Signer
    verifier: Verifier
    """Checks bundles already attached: only one that verifies is kept."""
    run: RunDetails
    scan: Scan
    inputs: Mapping[str, BuildInputs]
    """Each image's build inputs, by image name."""


@dataclass(frozen=True)
class Subject:
    """One digest a release publishes: the index (``platform`` None) or a platform manifest."""

    platform: str | None
    descriptor: Descriptor


def subjects_of(image: ImagePlan, top: Manifest) -> list[Subject]:
    """The platform manifests of ``top`` (the image's planned platforms), then the index."""
    if not top.is_index:
        return [Subject(image.platforms[0], Descriptor(top.media_type, top.digest, len(top.raw)))]
    platforms = []
    for entry in top.document["manifests"]:
        platform = platform_of(entry.get("platform") or {})
        if platform in image.platforms:
            descriptor = Descriptor(
                str(entry["mediaType"]), str(entry["digest"]), int(entry["size"])
            )
            platforms.append(Subject(platform, descriptor))
    return [*platforms, Subject(None, Descriptor(top.media_type, top.digest, len(top.raw)))]


async def kept_statements(
    client: RegistryClient, path: str, digest: str, verifier: Verifier, name: str
) -> dict[str, Statement]:
    """The statements already attached to ``digest`` that verify and name it, by predicate type.

    ``name`` is the repository the statements must name (without tag or digest).
    """
    kept: dict[str, Statement] = {}
    for stored in await attached(client, path, digest):
        try:
            found = verifier.verify(stored.bundle)
        except AttestationError:
            continue  # replaced below
        if found.subject_digest == stored.subject_digest == digest and found.subject_name == name:
            kept[found.predicate_type] = found
    return kept


async def attest_subject(
    client: RegistryClient,
    attesting: Attesting,
    image: ImagePlan,
    subject: Subject,
    sboms: dict[str, Mapping[str, Any]],
) -> int:
    """Attach what ``subject`` lacks; the number of artifacts attached.

    A platform manifest's SBOM is recorded in ``sboms`` (by platform), which the index's merges.
    """
    path = repository_path(image.repository)
    digest = subject.descriptor.digest
    kept = await kept_statements(client, path, digest, attesting.verifier, image.repository)
    where = f"{image.repository}@{digest}"
    if subject.platform is not None:
        if SBOM in kept:
            sboms[subject.platform] = kept[SBOM].predicate
        else:
            with step(f"SBOM of {image.name} {subject.platform}", digest=digest):
                document = await attesting.scan(where, subject.platform)
            sbom_packages(document)  # an SBOM that is not SPDX 2.3 stops here, unsigned
            sboms[subject.platform] = document
    predicates: dict[str, Mapping[str, Any]] = {
        SBOM: sboms[subject.platform]
        if subject.platform is not None
        else merged_sbom(image.reference(image.decision.version_tag), sboms),
        PROVENANCE: provenance_predicate(
            image,
            attesting.tag,
            attesting.inputs[image.name],
            attesting.run,
            platform=subject.platform,
        ),
        SIGNATURE: SIGNATURE_PREDICATE,
    }
    missing = [kind for kind in predicates if kind not in kept]
    for kind in missing:
        payload = statement(image.repository, digest, kind, predicates[kind])
        with step(f"sign {kind} of {where}"):
            try:
                bundle = await anyio.to_thread.run_sync(attesting.signer.sign, payload)
            except AttestationError as error:
                # The signer's own words (an expired token, an OIDC outage) and where it was.
                raise AttestationError(f"sign {kind} of {where}: {error}") from error
            await attach(client, path, subject.descriptor, bundle, kind)
    return len(missing)


async def attest_image(
    client: RegistryClient, attesting: Attesting, image: ImagePlan, top: Manifest
) -> str:
    """Attest every digest of ``image`` as ``top`` (its version tag's manifest) lists them.

    Returns one line for the release's output: how many artifacts were attached, how many kept.
    """
    subjects = subjects_of(image, top)
    sboms: dict[str, Mapping[str, Any]] = {}
    platforms = [subject for subject in subjects if subject.platform is not None]
    attached_now = await gather(
        {
            subject.descriptor.digest: partial(
                attest_subject, client, attesting, image, subject, sboms
            )
            for subject in platforms
        }
    )
    total = sum(attached_now.values())
    if top.is_index:
        total += await attest_subject(client, attesting, image, subjects[-1], sboms)
    expected = 3 * len(subjects)
    return (
        f"{image.repository}: {len(subjects)} digests attested (SBOM, provenance, signature): "
        f"{total} signed now, {expected - total} kept"
    )

"""Prove a release: compare what a registry serves with the release plan.

For each image: every planned tag exists and all resolve to one digest; the platform set is
exactly the catalogue's; each platform's config carries the planned labels; an index carries
its annotations. Every mismatch is collected and named, none stops the others being checked: a
tag, manifest or config the registry fails to serve, or serves malformed, is a mismatch too.
Reports are printable as they are: registry text in them is escaped (``pipeline.oci.text``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from pipeline.attest.check import check_attestations
from pipeline.attest.signing import Verifier
from pipeline.oci import (
    Manifest,
    RegistryClient,
    RegistryError,
    config_platform_and_labels,
    platform_of,
    safe_line,
)
from pipeline.rules.plan import ImagePlan, ReleasePlan, make_plan
from pipeline.rules.references import repository_path
from pipeline.rules.versions import in_scope, published_versions
from pipeline.steps.concurrency import gather
from pipeline.steps.published import read_release_state

MAX_INDEX_ENTRIES = 64
"""Entries of an index checked at most: a release has a few platforms and attestations."""


class VerificationError(RuntimeError):
    """What the registry serves does not match the release plan."""


@dataclass(frozen=True)
class ImageReport:
    """The verification of one image."""

    name: str
    repository: str
    digest: str | None
    platforms: tuple[str, ...]
    mismatches: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether everything planned for the image holds."""
        return not self.mismatches


@dataclass(frozen=True)
class VerifyReport:
    """The verification of every image of a release."""

    images: tuple[ImageReport, ...]

    @property
    def ok(self) -> bool:
        """Whether every image holds."""
        return all(image.ok for image in self.images)

    @property
    def mismatches(self) -> list[str]:
        """Every mismatch, prefixed with its image's name, safe to print."""
        return [
            safe_line(f"{image.name}: {text}") for image in self.images for text in image.mismatches
        ]

    def render(self) -> str:
        """A readable report, one block per image, each line safe to print."""
        lines = []
        for image in self.images:
            status = "OK" if image.ok else "MISMATCH"
            lines.append(f"{image.name}: {status} {image.repository}@{image.digest or '-'}")
            lines.append(f"  platforms {', '.join(image.platforms) or '-'}")
            lines += [f"  - {text}" for text in image.mismatches]
        return "\n".join(safe_line(line) for line in lines) + "\n"


def compare(what: str, actual: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    """Mismatches between the ``expected`` entries and ``actual`` (extra entries are allowed)."""
    mismatches = []
    for key, value in expected.items():
        if key not in actual:
            mismatches.append(f"{what} {key} is missing")
        elif actual[key] != value:
            mismatches.append(f"{what} {key} is {actual[key]!r}, expected {value!r}")
    return mismatches


async def check_tags(
    client: RegistryClient, path: str, image: ImagePlan, expected_digest: str | None
) -> tuple[Manifest | None, list[str]]:
    """The manifest the version tag serves, and every tag-level mismatch."""
    unreadable: dict[str, RegistryError] = {}

    async def resolve(tag: str) -> Manifest | None:
        try:
            return await client.get_manifest_or_none(path, tag)
        except RegistryError as error:
            unreadable[tag] = error
            return None

    found = await gather({tag: partial(resolve, tag) for tag in image.tags})
    mismatches = [
        f"tag {tag} cannot be read: {unreadable[tag]}"
        if tag in unreadable
        else f"tag {tag} is missing"
        for tag in image.tags
        if found[tag] is None
    ]
    resolved = {tag: manifest for tag in image.tags if (manifest := found[tag]) is not None}
    version = resolved.get(image.decision.version_tag)
    if version is None:
        return None, mismatches
    if expected_digest is not None and version.digest != expected_digest:
        mismatches.append(
            f"tag {image.decision.version_tag} is at {version.digest}, "
            f"but publish pushed {expected_digest}"
        )
    for tag, manifest in resolved.items():
        if manifest.digest == version.digest:
            continue
        try:
            if tag != image.decision.version_tag and await held_by_higher_release(
                client, path, image, tag, manifest.digest
            ):
                continue  # a concurrent, higher release took it: not this release's tag any more
        except RegistryError as error:
            mismatches.append(f"tag {tag}: cannot tell whether a higher release holds it: {error}")
            continue
        mismatches.append(
            f"tag {tag} is at {manifest.digest}, not {version.digest} (the version tag's digest)"
        )
    return version, mismatches


async def held_by_higher_release(
    client: RegistryClient, path: str, image: ImagePlan, tag: str, digest: str
) -> bool:
    """Whether floating ``tag`` holds ``digest`` because a higher release in its scope owns it."""
    version = image.decision.version
    published = published_versions(await client.list_tags(path))
    scope = [
        other
        for other in published
        if other > version and other.prerelease is None and in_scope(tag, version, other)
    ]
    for other in scope:
        owner = await client.get_manifest_or_none(path, str(other))
        if owner is not None and owner.digest == digest:
            return True
    return False


async def check_platforms(
    client: RegistryClient, path: str, image: ImagePlan, top: Manifest
) -> tuple[tuple[str, ...], list[str]]:
    """The platforms ``top`` serves, and every shape, platform and label mismatch."""
    mismatches: list[str] = []
    if top.is_index:
        if not image.multi_platform:
            mismatches.append("expected a single manifest, found an index")
        # The registry client has checked the shape: descriptors with digests, string fields.
        entries = [
            (platform_of(entry.get("platform") or {}), str(entry["digest"]))
            for entry in top.document["manifests"]
        ]
        if len(entries) > MAX_INDEX_ENTRIES:
            mismatches.append(
                f"the index has {len(entries)} entries; only the first {MAX_INDEX_ENTRIES} "
                "are checked"
            )
            entries = entries[:MAX_INDEX_ENTRIES]
        mismatches += compare(
            "index annotation", top.document.get("annotations", {}), image.index_annotations
        )
    else:
        if image.multi_platform:
            mismatches.append(
                f"expected an index of {len(image.platforms)} platforms, found a single manifest"
            )
        entries = [("", top.digest)]
    served = []
    for declared, digest in entries:
        served.append(declared)
        if declared and declared not in image.platforms:
            continue  # named below; an attestation or foreign entry has no labels to check
        try:
            manifest = top if digest == top.digest else await client.get_manifest(path, digest)
            if manifest.is_index:
                raise ValueError(f"{digest} is an index, not an image manifest")
            config_digest = manifest.document["config"]["digest"]
            config = await client.get_json_blob(path, config_digest)
            config_platform, labels = config_platform_and_labels(config)
        except (RegistryError, ValueError) as error:
            mismatches.append(f"{declared or 'the image'}: cannot read its config: {error}")
            continue
        platform = served[-1] = declared or config_platform
        mismatches += compare(f"{platform}: label", labels, image.labels)
    duplicates = sorted({p for p in served if served.count(p) > 1})
    mismatches += [f"platform {p} appears more than once" for p in duplicates]
    mismatches += [f"platform {p} is missing" for p in image.platforms if p not in served]
    mismatches += [  # "": an image whose config could not be read, named above
        f"platform {p} is not in the catalogue" for p in served if p and p not in image.platforms
    ]
    return tuple(served), mismatches


def attested_digests(image: ImagePlan, top: Manifest) -> list[str]:
    """The digests a release attests: each planned platform's manifest, and the index."""
    if not top.is_index:
        return [top.digest]
    entries = top.document["manifests"][:MAX_INDEX_ENTRIES]
    return [
        str(entry["digest"])
        for entry in entries
        if platform_of(entry.get("platform") or {}) in image.platforms
    ] + [top.digest]


async def check_attested(
    client: RegistryClient, path: str, image: ImagePlan, top: Manifest, verifier: Verifier
) -> list[str]:
    """Every digest's missing, misdirected or unverifiable SBOM, provenance or signature."""
    found = await gather(
        {
            digest: partial(
                check_attestations, client, path, digest, verifier, subject_name=image.repository
            )
            for digest in attested_digests(image, top)
        }
    )
    return [problem for problems in found.values() for problem in problems]


async def verify_image(
    client: RegistryClient,
    image: ImagePlan,
    expected_digest: str | None = None,
    attestations: Verifier | None = None,
) -> ImageReport:
    """Verify one image of a release; with a verifier, its attestations too."""
    path = repository_path(image.repository)
    top, mismatches = await check_tags(client, path, image, expected_digest)
    platforms: tuple[str, ...] = ()
    if top is not None:
        platforms, more = await check_platforms(client, path, image, top)
        mismatches += more
        if attestations is not None:
            mismatches += await check_attested(client, path, image, top, attestations)
    return ImageReport(
        name=image.name,
        repository=image.repository,
        digest=top.digest if top is not None else None,
        platforms=platforms,
        mismatches=tuple(mismatches),
    )


async def verify_release(
    client: RegistryClient,
    plan: ReleasePlan,
    *,
    expected_digests: Mapping[str, str] | None = None,
    attestations: Verifier | None = None,
) -> VerifyReport:
    """Verify every image of ``plan``; ``expected_digests`` maps image names to pushed digests.

    With ``attestations``, every published digest must carry an SBOM, a provenance and a
    signature that name it, each a bundle that ``attestations`` verifies.
    """
    expected = expected_digests or {}
    reports = await gather(
        {
            image.name: partial(verify_image, client, image, expected.get(image.name), attestations)
            for image in plan.images
        }
    )
    return VerifyReport(images=tuple(reports[image.name] for image in plan.images))


async def verification_plan(
    client: RegistryClient,
    tag: str,
    *,
    owner: str,
    registry: str,
    revision: str | None = None,
    created: str | None = None,
) -> ReleasePlan:
    """The plan of an already published ``tag``, as the registry's current state says it should be.

    Read as ``publish`` reads it: a floating tag on an image of unknown version (one that no
    release of this pipeline moved) is not expected to hold the release.
    """
    skeleton = make_plan(tag, owner=owner, registry=registry)  # no state: just the repositories
    published = await read_release_state(client, skeleton)
    return make_plan(
        tag,
        published=published,
        owner=owner,
        registry=registry,
        revision=revision,
        created=created,
        overwrite=True,
    )

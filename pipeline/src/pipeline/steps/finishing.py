"""After the engine has pushed an image's version tag: annotate it and move its floating tags.

Plain registry operations, no Dagger: the engine pushes each image once, under its version tag;
every other tag is then written here from the same manifest bytes, so all tags of an image
resolve to one digest by construction.

Floating tags never move backwards, even when several releases run at once. The plan decided a
floating tag's move when the release started; right before writing it, the scope's version tags
are read again and the move is decided anew, so a release that appeared meanwhile wins. The
distribution API has no conditional write, so after the moves each one is read back: if a
higher release has appeared and the tag holds this release, it is put back on the highest
release in its scope. Every release does the same, so any interleaving of concurrent releases
ends as publishing them one after the other would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import semver

from pipeline.oci import Manifest, RegistryClient, check_annotations, serialize_json
from pipeline.rules.plan import ImagePlan
from pipeline.rules.references import repository_path
from pipeline.rules.versions import FloatingTag, floating_tags, in_scope, published_versions
from pipeline.steps.progress import step


@dataclass(frozen=True)
class FinishedImage:
    """An image once its tags are written: the tags it holds, its digest, and what happened."""

    image: ImagePlan
    """The plan with the floating-tag decisions as they stand after the moves."""
    digest: str
    notes: tuple[str, ...]
    """Why a planned move did not happen, or was undone, in words for the release log."""

    @property
    def references(self) -> list[str]:
        """``repository:tag@digest`` for every tag this release holds, version first."""
        return [f"{self.image.reference(tag)}@{self.digest}" for tag in self.image.tags]


def digest_of(published: str) -> str:
    """The digest of a reference that the engine returned (``repo:tag@sha256:…``)."""
    _, separator, digest = published.rpartition("@")
    if not separator or not digest.startswith("sha256:"):
        raise ValueError(f"expected a reference ending in @sha256:..., got {published!r}")
    return digest


async def finish_image(
    client: RegistryClient, image: ImagePlan, pushed_digest: str
) -> FinishedImage:
    """Annotate ``image`` (index only), then move its floating tags; what it holds in the end.

    The version tag already holds ``pushed_digest``. An index gets its annotations under the
    version tag first (``version_manifest``); then ``move_floating``.
    """
    final = await version_manifest(client, repository_path(image.repository), image, pushed_digest)
    return await move_floating(client, image, final)


async def move_floating(client: RegistryClient, image: ImagePlan, final: Manifest) -> FinishedImage:
    """Move the floating tags of ``image`` to ``final``, its version tag's manifest.

    Each floating tag the plan moves is decided again and written with the same bytes, and
    finally read back and settled.
    """
    path = repository_path(image.repository)
    decisions = {tag.name: tag for tag in image.floating}
    notes: list[str] = []
    for planned in image.floating:
        if not planned.moves:
            continue
        now = await decide_now(client, path, image.decision.version, planned.name)
        if now.moves:
            with step(f"move {image.reference(planned.name)}", digest=final.digest):
                await client.put_manifest(path, planned.name, final.raw, final.media_type)
        else:
            decisions[planned.name] = now
            notes.append(f"{planned.name} not moved: {now.reason} (published while this ran)")
    for name, decision in list(decisions.items()):
        if decision.moves:
            settled = await settle(client, path, image, name, final)
            if settled is not None:
                decisions[name] = settled
                notes.append(f"{name}: {settled.reason}")
    floating = tuple(decisions[tag.name] for tag in image.floating)
    finished = replace(image, decision=replace(image.decision, floating=floating))
    return FinishedImage(image=finished, digest=final.digest, notes=tuple(notes))


async def version_manifest(
    client: RegistryClient, path: str, image: ImagePlan, pushed_digest: str
) -> Manifest:
    """The manifest the version tag ends with: for an index, annotated and stored under it.

    The index is read by the digest the engine returned, never by tag, so that a concurrent
    push under the same tag cannot be annotated by mistake.
    """
    manifest = await client.get_manifest(path, pushed_digest)
    if not image.multi_platform:
        return manifest
    annotations = image.index_annotations
    check_annotations(annotations)
    document = manifest.document
    document["annotations"] = {**(document.get("annotations") or {}), **annotations}
    raw = serialize_json(document)
    version_tag = image.decision.version_tag
    with step(f"annotate {image.reference(version_tag)}", digest=pushed_digest):
        digest = await client.put_manifest(path, version_tag, raw, manifest.media_type)
    return Manifest(digest=digest, media_type=manifest.media_type, raw=raw)


async def decide_now(
    client: RegistryClient, path: str, version: semver.Version, name: str
) -> FloatingTag:
    """Floating tag ``name``'s decision for ``version`` given the version tags published now."""
    published = published_versions(await client.list_tags(path))
    (decision,) = [tag for tag in floating_tags(version, published) if tag.name == name]
    return decision


async def settle(
    client: RegistryClient, path: str, image: ImagePlan, name: str, final: Manifest
) -> FloatingTag | None:
    """Read back floating tag ``name`` after the moves; the new decision, None if unchanged.

    If this release is still the highest in the tag's scope, the tag must hold it: written again
    if an older release overwrote it. If a higher release has appeared and the tag still holds
    this one, the tag is put back on the highest release of its scope.
    """
    version = image.decision.version
    now = await decide_now(client, path, version, name)
    current = await client.get_manifest_or_none(path, name)
    holds_this = current is not None and current.digest == final.digest
    if now.moves:
        if holds_this:
            return None
        with step(f"move {image.reference(name)} again", digest=final.digest):
            await client.put_manifest(path, name, final.raw, final.media_type)
        return FloatingTag(name, True, "written again: an older release had overwritten it")
    if not holds_this:
        return FloatingTag(name, False, now.reason)  # the higher release holds it already
    highest = highest_in_scope(published_versions(await client.list_tags(path)), version, name)
    owner = await client.get_manifest(path, str(highest))
    with step(f"move {image.reference(name)} back to {highest}", digest=owner.digest):
        await client.put_manifest(path, name, owner.raw, owner.media_type)
    return FloatingTag(name, False, f"put back on {highest}, published while this ran")


def highest_in_scope(
    published: list[semver.Version], version: semver.Version, name: str
) -> semver.Version:
    """The highest stable version in floating tag ``name``'s scope (``latest`` or ``X.Y``)."""
    return max(
        other for other in published if other.prerelease is None and in_scope(name, version, other)
    )

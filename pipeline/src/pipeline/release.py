"""After the engine has pushed an image's version tag: annotate it and move its floating tags.

Plain registry operations, no Dagger: the engine pushes each image once, under its version tag;
every other tag is then written here from the same manifest bytes, so all tags of an image
resolve to one digest by construction.
"""

from __future__ import annotations

from pipeline.plan import ImagePlan
from pipeline.references import repository_path
from pipeline.registry import RegistryClient, annotate_index


def digest_of(published: str) -> str:
    """The digest of a reference that the engine returned (``repo:tag@sha256:…``)."""
    _, separator, digest = published.rpartition("@")
    if not separator or not digest.startswith("sha256:"):
        raise ValueError(f"expected a reference ending in @sha256:..., got {published!r}")
    return digest


async def finish_image(client: RegistryClient, image: ImagePlan, pushed_digest: str) -> list[str]:
    """Annotate ``image`` (index only) and point its floating tags at it; return its references.

    The version tag already holds ``pushed_digest``. An index gets its annotations and is
    re-put under every tag, version first; a single manifest is put under the floating tags.
    """
    path = repository_path(image.repository)
    if image.multi_platform:
        digest = await annotate_index(client, path, image.tags, image.index_annotations)
    else:
        manifest = await client.get_manifest(path, pushed_digest)
        for tag in image.tags[1:]:
            await client.put_manifest(path, tag, manifest.raw, manifest.media_type)
        digest = manifest.digest
    return [f"{image.reference(tag)}@{digest}" for tag in image.tags]

"""The base images of a release, each resolved to the digest its tag names now.

Read once per release, before anything is built: every build of the release then uses the pinned
reference as its build argument, so all variants share one base image and the provenance names
exactly the digest that was built from. A reference already pinned by digest is kept as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from pipeline.oci import RegistryClient
from pipeline.oci.names import DOCKER_HUB, parse_image_reference
from pipeline.rules.dockerfiles import is_pinned
from pipeline.steps.concurrency import gather
from pipeline.steps.progress import step

API_HOSTS: Mapping[str, str] = {DOCKER_HUB: "registry-1.docker.io"}
"""Registries whose distribution API is served on another host than their name."""


def api_host(registry: str) -> str:
    """The host that serves ``registry``'s distribution API."""
    return API_HOSTS.get(registry, registry)


async def pin_reference(reference: str) -> str:
    """``reference`` pinned to the digest its tag resolves to now (kept if already pinned)."""
    if is_pinned(reference):
        return reference
    name = parse_image_reference(reference)
    with step(f"resolve {reference}"):
        async with RegistryClient(api_host(name.registry)) as client:
            manifest = await client.get_manifest(name.repository, name.tag or "latest")
    return name.pinned(manifest.digest)


async def pin_base_images(references: Mapping[str, str]) -> dict[str, str]:
    """Each base-image build argument with its reference pinned by digest; one read each."""
    unique = sorted(set(references.values()))
    pinned = await gather({reference: partial(pin_reference, reference) for reference in unique})
    return {argument: pinned[reference] for argument, reference in references.items()}

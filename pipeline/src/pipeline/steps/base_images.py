"""The base images of a release, each resolved to the digest its tag names now.

Read once per release, before anything is built: every build of the release then uses the pinned
reference as its build argument, so all variants share one base image and the provenance names
exactly the digest that was built from. A reference already pinned by digest is kept as it is.
Reads are anonymous, except on a registry the release has a login for (GHCR, where ``uv``'s image
is): there the login is used, as ``docker login`` would make ``docker pull`` do.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from pipeline.oci import RegistryClient
from pipeline.oci.names import DOCKER_HUB, parse_image_reference
from pipeline.rules.dockerfiles import is_pinned
from pipeline.steps.concurrency import gather
from pipeline.steps.progress import step

Logins = Mapping[str, tuple[str, str]]
"""Username and password by registry API host."""

API_HOSTS: Mapping[str, str] = {DOCKER_HUB: "registry-1.docker.io"}
"""Registries whose distribution API is served on another host than their name."""


def api_host(registry: str) -> str:
    """The host that serves ``registry``'s distribution API."""
    return API_HOSTS.get(registry, registry)


async def pin_reference(reference: str, *, logins: Logins) -> str:
    """``reference`` pinned to the digest its tag resolves to now (kept if already pinned)."""
    if is_pinned(reference):
        return reference
    name = parse_image_reference(reference)
    host = api_host(name.registry)
    username, password = logins.get(host, (None, None))
    with step(f"resolve {reference}"):
        async with RegistryClient(host, username=username, password=password) as client:
            manifest = await client.get_manifest(name.repository, name.tag or "latest")
    return name.pinned(manifest.digest)


async def pin_base_images(
    references: Mapping[str, str], *, logins: Logins | None = None
) -> dict[str, str]:
    """Each base-image build argument with its reference pinned by digest; one read each."""
    unique = sorted(set(references.values()))
    pinned = await gather(
        {reference: partial(pin_reference, reference, logins=logins or {}) for reference in unique}
    )
    return {argument: pinned[reference] for argument, reference in references.items()}

"""Base images are pinned to the digest their tag names when the release starts."""

from __future__ import annotations

import pytest
from pipeline.oci import RegistryClient
from pipeline.oci.names import DOCKER_HUB
from pipeline.steps import base_images
from pipeline.steps.base_images import pin_base_images

from tests.support.oci_images import push_release_image
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.anyio
PLATFORMS = ("linux/amd64", "linux/arm64")


async def test_each_tag_is_pinned_to_the_digest_it_names_now(
    registry: RegistryServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base_images, "API_HOSTS", {DOCKER_HUB: registry.host})
    async with RegistryClient(registry.host) as client:
        python = await push_release_image(
            client, f"library/{owner}", ["3.11"], PLATFORMS, {"n": "python"}
        )
        uv = await push_release_image(client, f"{owner}/uv", ["0.13.9"], PLATFORMS, {"n": "uv"})
    pinned = await pin_base_images(
        {
            "PYTHON_IMAGE": f"{owner}:3.11",
            "UV_IMAGE": f"{registry.host}/{owner}/uv:0.13.9",
            "BASE_IMAGE": f"{owner}:3.11",
        }
    )
    assert pinned == {
        "PYTHON_IMAGE": f"docker.io/library/{owner}:3.11@{python}",
        "UV_IMAGE": f"{registry.host}/{owner}/uv:0.13.9@{uv}",
        "BASE_IMAGE": f"docker.io/library/{owner}:3.11@{python}",
    }


async def test_a_reference_already_pinned_is_kept_without_a_read() -> None:
    pinned = "nowhere.invalid/x:1@sha256:" + "e" * 64
    assert await pin_base_images({"X_IMAGE": pinned}) == {"X_IMAGE": pinned}


async def test_a_tag_the_registry_lacks_is_an_error_naming_it(
    registry: RegistryServer, owner: str
) -> None:
    with pytest.raises(Exception, match=rf"{owner}/missing:1.*404"):
        await pin_base_images({"X_IMAGE": f"{registry.host}/{owner}/missing:1"})

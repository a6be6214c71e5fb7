"""The image catalogue: the one place to add an image or a platform.

Every other module reads images from here; nothing else names a Dockerfile or a platform.
"""

from __future__ import annotations

from dataclasses import dataclass

PROJECT = "qm-nmr-calc"
"""The application's name: images are published as ``{owner}/{PROJECT}-{image}``."""


@dataclass(frozen=True)
class ImageSpec:
    """One published image: what to build and for which platforms."""

    name: str
    dockerfile: str
    platforms: tuple[str, ...]
    description: str
    lock_files: tuple[str, ...] = ()
    """The lock files the build installs from (paths in the build context): recorded, with
    their digests, in the image's provenance; a conda lock's packages too, by URL and hash."""

    def repository_name(self) -> str:
        """The image's repository name below the owner, e.g. ``qm-nmr-calc-api``."""
        return f"{PROJECT}-{self.name}"


CATALOGUE: tuple[ImageSpec, ...] = (
    ImageSpec(
        name="api",
        dockerfile="Dockerfile.api",
        platforms=("linux/amd64", "linux/arm64"),
        description=(
            "qm-nmr-calc API: FastAPI service that accepts molecules and serves "
            "quantum-chemistry NMR chemical shift predictions."
        ),
        lock_files=("uv.lock",),
    ),
    ImageSpec(
        name="worker",
        dockerfile="Dockerfile.worker",
        # The same locked conda-forge stack (NWChem, xTB, CREST) on both: worker/conda.lock.
        platforms=("linux/amd64", "linux/arm64"),
        description=(
            "qm-nmr-calc worker: Huey consumer that runs NWChem, CREST and xTB "
            "to compute NMR chemical shifts."
        ),
        lock_files=("uv.lock", "worker/conda.lock"),
    ),
)


class UnknownImageError(ValueError):
    """An image or platform that the catalogue does not have."""


def image_names() -> tuple[str, ...]:
    """The names of every image in the catalogue, in catalogue order."""
    return tuple(spec.name for spec in CATALOGUE)


def find_image(name: str) -> ImageSpec:
    """The catalogue entry called ``name``; refuses an unknown name, listing the known ones."""
    for spec in CATALOGUE:
        if spec.name == name:
            return spec
    raise UnknownImageError(f"unknown image {name!r}: the catalogue has {', '.join(image_names())}")


def check_platform(spec: ImageSpec, platform: str) -> str:
    """``platform`` if ``spec`` is built for it; otherwise refused, listing the valid ones."""
    if platform not in spec.platforms:
        raise UnknownImageError(
            f"image {spec.name!r} is not built for platform {platform!r}: "
            f"it is built for {', '.join(spec.platforms)}"
        )
    return platform

"""The release plan: catalogue x tag rules x labels, decided before anything is built.

Pure data: the Dagger functions and the offline CLI both build a ``ReleasePlan`` here, so the
plan a maintainer reads is exactly what is built and pushed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.catalogue import CATALOGUE, ImageSpec
from pipeline.labels import image_labels, index_annotations
from pipeline.references import DEFAULT_OWNER, DEFAULT_REGISTRY, repository
from pipeline.versions import FloatingTag, TagDecision, decide_tags, parse_release_tag


@dataclass(frozen=True)
class ImagePlan:
    """What one image of a release is: where it goes, for which platforms, with which tags."""

    spec: ImageSpec
    repository: str
    decision: TagDecision
    labels: Mapping[str, str]

    @property
    def name(self) -> str:
        """The image's catalogue name (``api``, ``worker``)."""
        return self.spec.name

    @property
    def platforms(self) -> tuple[str, ...]:
        """The platforms the image is built for."""
        return self.spec.platforms

    @property
    def tags(self) -> tuple[str, ...]:
        """Tags in push order: the version first, the floating tags that move last."""
        return self.decision.tags

    @property
    def floating(self) -> tuple[FloatingTag, ...]:
        """Every floating tag decision, moved or not, with its reason."""
        return self.decision.floating

    @property
    def multi_platform(self) -> bool:
        """Whether the image is published as an index (several platforms)."""
        return len(self.platforms) > 1

    @property
    def index_annotations(self) -> dict[str, str]:
        """Annotations for the image index; empty for a single-platform image (no index)."""
        return index_annotations(dict(self.labels)) if self.multi_platform else {}

    def reference(self, tag: str) -> str:
        """``repository:tag``."""
        return f"{self.repository}:{tag}"

    def to_json(self) -> dict[str, Any]:
        """The image's part of the plan's JSON form."""
        return {
            "name": self.name,
            "repository": self.repository,
            "dockerfile": self.spec.dockerfile,
            "platforms": list(self.platforms),
            "tags": list(self.tags),
            "labels": dict(self.labels),
        }


@dataclass(frozen=True)
class ReleasePlan:
    """Every image of one release."""

    tag: str
    version: str
    prerelease: bool
    images: tuple[ImagePlan, ...]

    def image(self, name: str) -> ImagePlan:
        """The plan of the image called ``name``."""
        for image in self.images:
            if image.name == name:
                return image
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The plan as ``python -m pipeline plan --json`` prints it."""
        return {
            "tag": self.tag,
            "version": self.version,
            "prerelease": self.prerelease,
            "images": [image.to_json() for image in self.images],
        }


def make_plan(
    tag: str,
    *,
    existing_tags: Mapping[str, Iterable[str]] | None = None,
    owner: str = DEFAULT_OWNER,
    registry: str = DEFAULT_REGISTRY,
    revision: str | None = None,
    created: str | None = None,
    overwrite: bool = False,
    catalogue: Iterable[ImageSpec] = CATALOGUE,
) -> ReleasePlan:
    """Plan release ``tag``; ``existing_tags`` maps an image name to its repository's tags."""
    version = parse_release_tag(tag)  # refuse a bad tag before looking at anything else
    existing = existing_tags or {}
    images = []
    for spec in catalogue:
        decision = decide_tags(tag, existing.get(spec.name, ()), overwrite=overwrite)
        images.append(
            ImagePlan(
                spec=spec,
                repository=repository(registry, owner, spec),
                decision=decision,
                labels=image_labels(
                    spec,
                    owner=owner,
                    version=decision.version_tag,
                    revision=revision,
                    created=created,
                ),
            )
        )
    return ReleasePlan(
        tag=tag,
        version=str(version),
        prerelease=version.prerelease is not None,
        images=tuple(images),
    )


def render_table(plan: ReleasePlan) -> str:
    """A readable plan: repository, platforms and tags of each image, and why tags float."""
    kind = "prerelease" if plan.prerelease else "stable release"
    lines = [f"Release {plan.tag} -> version {plan.version} ({kind})", ""]
    for image in plan.images:
        lines.append(f"{image.name}: {image.repository}")
        lines.append(f"  dockerfile  {image.spec.dockerfile}")
        lines.append(f"  platforms   {', '.join(image.platforms)}")
        lines.append(f"  tags        {', '.join(image.tags)}")
        for floating in image.floating:
            lines.append(f"  {floating.name:<11} {floating.reason}")
        for key, value in image.labels.items():
            lines.append(f"  label       {key}={value}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"

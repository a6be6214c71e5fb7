"""The release plan: catalogue x tag rules x labels, decided before anything is built.

Pure data: the Dagger functions and the offline CLI both build a ``ReleasePlan`` here, so the
plan a maintainer reads is exactly what is built and pushed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.rules.catalogue import CATALOGUE, ImageSpec
from pipeline.rules.labels import image_labels, index_annotations, published_version
from pipeline.rules.references import DEFAULT_OWNER, DEFAULT_REGISTRY, repository
from pipeline.rules.versions import (
    FloatingHolder,
    FloatingTag,
    TagDecision,
    decide_tags,
    parse_release_tag,
)


@dataclass(frozen=True)
class PublishedState:
    """One repository's tags, its version tag's image labels, and its floating tags' holders."""

    tags: tuple[str, ...]
    version_digest: str | None = None
    version_labels: tuple[Mapping[str, str], ...] = ()
    """The labels of every platform of the image at the version tag (when it exists)."""
    holders: Mapping[str, FloatingHolder] = field(default_factory=dict)
    """What each floating tag that exists points at."""


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
    def kept_digest(self) -> str | None:
        """The digest already at the version tag when this release is completed, else None."""
        return self.decision.kept.digest if self.decision.kept is not None else None

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
    published: Mapping[str, PublishedState] | None = None,
    owner: str = DEFAULT_OWNER,
    registry: str = DEFAULT_REGISTRY,
    revision: str | None = None,
    created: str | None = None,
    overwrite: bool = False,
    take_over_floating: bool = False,
    catalogue: Iterable[ImageSpec] = CATALOGUE,
) -> ReleasePlan:
    """Plan release ``tag`` from what each image's repository holds.

    ``published`` (read from the registry) maps an image name to its repository's state;
    ``existing_tags`` is the what-if form, tags only: floating tags then count as holding
    versions that are known.
    """
    version = parse_release_tag(tag)  # refuse a bad tag before looking at anything else
    states = dict(published or {})
    for name, tags in (existing_tags or {}).items():
        states.setdefault(name, PublishedState(tags=tuple(tags)))
    images = []
    for spec in catalogue:
        state = states.get(spec.name, PublishedState(tags=()))
        labels = image_labels(
            spec, owner=owner, version=str(version), revision=revision, created=created
        )
        kept = (
            published_version(state.version_digest, state.version_labels, labels)
            if state.version_digest is not None
            else None
        )
        decision = decide_tags(
            tag,
            state.tags,
            overwrite=overwrite,
            published_version=kept,
            holders=state.holders,
            take_over_floating=take_over_floating,
        )
        images.append(
            ImagePlan(
                spec=spec,
                repository=repository(registry, owner, spec),
                decision=decision,
                labels=labels,
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
        if image.decision.kept is not None:
            lines.append(f"  {image.decision.version_tag:<11} {image.decision.kept.reason}")
        for floating in image.floating:
            lines.append(f"  {floating.name:<11} {floating.reason}")
        for key, value in image.labels.items():
            lines.append(f"  label       {key}={value}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"

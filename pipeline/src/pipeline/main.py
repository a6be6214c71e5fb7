"""The Dagger module: build, check, plan, publish and verify qm-nmr-calc's images.

Thin by design: the release plan (tags, labels, platforms) is decided in ``pipeline.plan``;
this module turns it into Dagger calls, and hands the pushed digests to ``pipeline.release``
(floating tags, index annotations) and ``pipeline.verify``.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import anyio
import dagger
from dagger import DefaultPath, Doc, Ignore, check, dag, function, object_type

from pipeline.catalogue import CATALOGUE, PROJECT, check_platform, find_image
from pipeline.labels import commit_epoch, image_labels
from pipeline.plan import ImagePlan, ReleasePlan, make_plan, render_table
from pipeline.references import (
    DEFAULT_OWNER,
    DEFAULT_REGISTRY,
    normalize_owner,
    normalize_registry,
    repository,
    repository_path,
)
from pipeline.registry import RegistryClient
from pipeline.release import digest_of, finish_image
from pipeline.verify import VerificationError, VerifyReport, verification_plan, verify_release
from pipeline.versions import parse_release_tag

APP_MARKER = "src/qm_nmr_calc"
"""A path that exists only where the application's sources are (the build context)."""

DOCKER_FILES = (*(spec.dockerfile for spec in CATALOGUE), ".dockerignore")
"""Files of this repository laid over the upstream sources when those are the context."""

GIT_IMAGE = "alpine/git:v2.49.1"
"""Reads a commit's time, which the Dagger API does not expose."""

REHEARSAL_REGISTRY_IMAGE = "registry:2"
"""The throwaway registry ``rehearse`` publishes into, inside the engine."""
REHEARSAL_PORT = 5000

SETTLE_CHECKS = 3
SETTLE_SECONDS = 1.0
"""How often, and how far apart, a failed final verification is repeated before it counts."""

SOURCE_IGNORE = [
    ".git",
    ".venv",
    "**/__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "pipeline/sdk",
]


FunctionT = TypeVar("FunctionT", bound=Callable[..., Any])
T = TypeVar("T")


def typed_function(func: FunctionT) -> FunctionT:
    """``@function``, keeping the method's signature visible to type checkers."""
    # The SDK's `function` returns an unsolved type variable, so mypy would lose every
    # argument and return type of the decorated method.
    return cast(FunctionT, function(func))


def uncached_function(func: FunctionT) -> FunctionT:
    """``@function(cache="never")``: side effects must run on every call, never from cache."""
    # The SDK's typed overloads of `function` omit its `cache` argument.
    decorate: Callable[[FunctionT], FunctionT] = function(cache="never")  # type: ignore[call-overload]
    return decorate(func)


def checked_function(func: FunctionT) -> FunctionT:
    """``@function`` over ``@check``: a function that ``dagger check`` runs."""
    # `check` returns a union of its two call forms, which hides the method's type too.
    return typed_function(cast(FunctionT, check(func)))


class BuildFailedError(RuntimeError):
    """One or more image variants failed to build; nothing was pushed."""


@dataclass(frozen=True)
class Commit:
    """What is known of the commit a release is built from."""

    revision: str | None = None
    created: str | None = None


def progress(message: str) -> None:
    """One line of progress on stderr, which Dagger shows while the function runs."""
    print(f"[pipeline] {message}", file=sys.stderr, flush=True)


Variants = Mapping[tuple[str, str], dagger.Container]
"""Built containers keyed by (image name, platform)."""


@object_type
class Pipeline:
    """Release pipeline of qm-nmr-calc: one plan, every image, every platform."""

    source: Annotated[
        dagger.Directory,
        Doc(
            "Build context: the repository root by default. Without the application's "
            "sources in it, the upstream repository at the release tag is used, with the "
            "Dockerfiles of this one."
        ),
        DefaultPath("/"),
        Ignore(SOURCE_IGNORE),
    ]
    registry: Annotated[str, Doc("Registry host to publish to")] = DEFAULT_REGISTRY
    owner: Annotated[str, Doc("Repository owner; lowercased for the registry")] = DEFAULT_OWNER

    if TYPE_CHECKING:  # `object_type` makes the dataclass; mypy cannot see it do so.

        def __init__(
            self,
            *,
            source: dagger.Directory,
            registry: str = DEFAULT_REGISTRY,
            owner: str = DEFAULT_OWNER,
        ) -> None: ...

    @typed_function
    async def plan(
        self,
        tag: Annotated[str, Doc("Release tag, e.g. v2.4.0")],
        existing_tags: Annotated[
            list[str] | None, Doc("Tags already published; by default read from the registry")
        ] = None,
        overwrite: Annotated[bool, Doc("Allow re-publishing an existing version")] = False,
    ) -> str:
        """The release plan of TAG: every image, platform, tag and label, and why."""
        parse_release_tag(tag)
        _, commit = await self._context(tag)
        if existing_tags is not None:
            existing = {spec.name: existing_tags for spec in CATALOGUE}
        else:
            async with RegistryClient(self._host) as client:
                existing = await self._published_tags(client)
        return render_table(self._plan(tag, existing, commit, overwrite=overwrite))

    @typed_function
    async def build(
        self,
        image: Annotated[str, Doc("Image name from the catalogue: api or worker")],
        platform: Annotated[str, Doc("Platform, e.g. linux/amd64")],
        tag: Annotated[str | None, Doc("Release tag the image is labelled with")] = None,
    ) -> dagger.Container:
        """One image for one platform, labelled as the release plan says."""
        spec = find_image(image)
        check_platform(spec, platform)
        if tag is not None:
            parse_release_tag(tag)
        context, commit = await self._context(tag)
        labels = self._plan_or_labels(tag, commit)[spec.name]
        return build_variant(context, spec.dockerfile, platform, labels, commit)

    @checked_function
    async def builds(self) -> None:
        """Check that every image builds for every platform (nothing is pushed)."""
        context, commit = await self._context(None)
        labels = self._plan_or_labels(None, commit)
        variants = {
            (spec.name, platform): build_variant(
                context, spec.dockerfile, platform, labels[spec.name], commit
            )
            for spec in CATALOGUE
            for platform in spec.platforms
        }
        await build_all(variants)

    @uncached_function
    async def publish(
        self,
        tag: Annotated[str, Doc("Release tag, e.g. v2.4.0")],
        username: Annotated[str | None, Doc("Registry user (GHCR: the GitHub actor)")] = None,
        password: Annotated[
            dagger.Secret | None, Doc("Registry token, e.g. env:GITHUB_TOKEN")
        ] = None,
        dry_run: Annotated[bool, Doc("Print the plan; build and push nothing")] = False,
        overwrite: Annotated[bool, Doc("Allow re-publishing an existing version")] = False,
    ) -> str:
        """Build every image for every platform, push them, move the tags; one line per tag.

        Everything is built before anything is pushed: one failed variant means nothing is
        published. Each image's version tag is pushed first; floating tags move last.
        """
        parse_release_tag(tag)
        credentials = None if dry_run else require_credentials(username, password)
        context, commit = await self._context(tag)
        token = await password.plaintext() if password is not None else None
        async with RegistryClient(
            self._host, username=username if token else None, password=token
        ) as client:
            existing = await self._published_tags(client)
            release = self._plan(tag, existing, commit, overwrite=overwrite)
            if credentials is None:  # a dry run
                return render_table(release)
            username, password = credentials
            auth = dag.container().with_registry_auth(self._host, username, password)
            references = await release_images(release, context, commit, auth, client)
        return "\n".join(references)

    @typed_function
    async def verify(
        self,
        tag: Annotated[str, Doc("Release tag that was published, e.g. v2.4.0")],
        username: Annotated[str | None, Doc("Registry user, for a private package")] = None,
        password: Annotated[dagger.Secret | None, Doc("Registry token")] = None,
    ) -> str:
        """Check that the registry serves what the plan of TAG says; fail naming every mismatch."""
        parse_release_tag(tag)
        _, commit = await self._context(tag)
        token = await password.plaintext() if password is not None else None
        async with RegistryClient(
            self._host, username=username if token else None, password=token
        ) as client:
            release = await verification_plan(
                client,
                tag,
                owner=self.owner,
                registry=self.registry,
                revision=commit.revision,
                created=commit.created,
            )
            report = await verify_release(client, release)
        raise_unless_ok(report)
        return report.render()

    @uncached_function
    async def rehearse(
        self,
        tag: Annotated[str, Doc("Release tag to rehearse, e.g. v2.4.0")],
    ) -> str:
        """Rehearse the release of TAG into a throwaway registry inside the engine.

        The whole release (builds, push, tags, annotations, verify) with no credentials;
        nothing leaves the machine. Run it before pushing a release tag.
        """
        parse_release_tag(tag)
        context, commit = await self._context(tag)
        service = await (
            dag.container()
            .from_(REHEARSAL_REGISTRY_IMAGE)
            .with_exposed_port(REHEARSAL_PORT)
            .as_service()
            .start()
        )
        endpoint = await service.endpoint(port=REHEARSAL_PORT)
        release = make_plan(
            tag,
            owner=self.owner,
            registry=endpoint,
            revision=commit.revision,
            created=commit.created,
        )
        async with RegistryClient(endpoint, plain_http=True) as client:
            references = await release_images(
                release, context, commit, dag.container(), client, registry_service=service
            )
        await service.stop()
        return "\n".join(references)

    @property
    def _host(self) -> str:
        """The registry host, validated and lowercased."""
        return normalize_registry(self.registry)

    def _plan(
        self,
        tag: str,
        existing: Mapping[str, Sequence[str]],
        commit: Commit,
        *,
        overwrite: bool,
    ) -> ReleasePlan:
        """The release plan for this module's registry and owner."""
        return make_plan(
            tag,
            existing_tags=existing,
            owner=self.owner,
            registry=self.registry,
            revision=commit.revision,
            created=commit.created,
            overwrite=overwrite,
        )

    def _plan_or_labels(self, tag: str | None, commit: Commit) -> dict[str, dict[str, str]]:
        """Labels per image: the plan's for a release tag, the version-less ones otherwise."""
        if tag is not None:
            release = self._plan(tag, {}, commit, overwrite=True)
            return {image.name: dict(image.labels) for image in release.images}
        return {
            spec.name: image_labels(
                spec, owner=self.owner, revision=commit.revision, created=commit.created
            )
            for spec in CATALOGUE
        }

    async def _published_tags(self, client: RegistryClient) -> dict[str, list[str]]:
        """Tags already in each image's repository ([] for a repository not created yet)."""
        return await concurrently(
            {
                spec.name: partial(
                    client.list_tags,
                    repository_path(repository(self.registry, self.owner, spec)),
                )
                for spec in CATALOGUE
            }
        )

    async def _context(self, tag: str | None) -> tuple[dagger.Directory, Commit]:
        """The build context and its commit: local sources, or upstream at ``tag``."""
        if await self.source.exists(APP_MARKER):
            return self.source, Commit()
        url = f"https://github.com/{normalize_owner(self.owner)}/{PROJECT}"
        repo = dag.git(url)
        ref = repo.tag(tag) if tag is not None else repo.head()
        tree = ref.tree()
        for name in DOCKER_FILES:
            tree = tree.with_file(name, self.source.file(name))
        progress(f"building from {url} at {tag or 'HEAD'}")
        return tree, await commit_of(ref)


def require_credentials(
    username: str | None, password: dagger.Secret | None
) -> tuple[str, dagger.Secret]:
    """Both registry credentials, or an error saying which flags are missing."""
    if username is None or password is None:
        raise ValueError(
            "publish needs --username and --password (e.g. --password env:GITHUB_TOKEN); "
            "pass --dry-run to see the plan without them"
        )
    return username, password


async def commit_of(ref: dagger.GitRef) -> Commit:
    """The commit SHA of ``ref`` and its commit time (RFC 3339)."""
    revision = await ref.commit()
    created = await (
        dag.container()
        .from_(GIT_IMAGE)
        .with_mounted_directory("/src", ref.tree(discard_git_dir=False))
        .with_workdir("/src")
        .with_exec(["git", "show", "-s", "--format=%cI", revision])
        .stdout()
    )
    return Commit(revision=revision, created=created.strip())


def build_variant(
    context: dagger.Directory,
    dockerfile: str,
    platform: str,
    labels: Mapping[str, str],
    commit: Commit,
) -> dagger.Container:
    """One (image, platform) build from its Dockerfile, carrying every planned label."""
    build_args = []
    if commit.created is not None:
        # For Dockerfiles that read it. Dagger v0.21's docker_build does not hand it to BuildKit
        # as the build epoch, so image times and digests are not reproducible; labels are.
        build_args.append(
            dagger.BuildArg(name="SOURCE_DATE_EPOCH", value=str(commit_epoch(commit.created)))
        )
    container = context.docker_build(
        dockerfile=dockerfile, platform=dagger.Platform(platform), build_args=build_args
    )
    for name, value in labels.items():
        container = container.with_label(name, value)
    return container


async def build_all(variants: Variants) -> None:
    """Build every variant concurrently and wait for all; raise naming each one that failed."""
    failures: dict[tuple[str, str], str] = {}

    async def build_one(key: tuple[str, str], container: dagger.Container) -> None:
        image, platform = key
        progress(f"building {image} {platform}")
        try:
            await container.sync()
        except dagger.DaggerError as error:
            failures[key] = str(error).splitlines()[0] if str(error) else type(error).__name__
            progress(f"FAILED {image} {platform}")
        else:
            progress(f"built {image} {platform}")

    async with anyio.create_task_group() as group:
        for key, container in variants.items():
            group.start_soon(build_one, key, container)
    if failures:
        listing = "; ".join(
            f"{image} {platform}: {why}" for (image, platform), why in failures.items()
        )
        raise BuildFailedError(
            f"{len(failures)} of {len(variants)} builds failed, nothing was pushed: {listing}"
        )


async def release_images(
    release: ReleasePlan,
    context: dagger.Directory,
    commit: Commit,
    auth: dagger.Container,
    client: RegistryClient,
    *,
    registry_service: dagger.Service | None = None,
) -> list[str]:
    """Build every variant, push, move the floating tags, verify; the references, one per tag.

    Everything is built before anything is pushed, and floating tags move only once every
    image's version tag is pushed: a failure on the way leaves no tag moved.
    """
    variants = {
        (image.name, platform): build_variant(
            context, image.spec.dockerfile, platform, image.labels, commit
        )
        for image in release.images
        for platform in image.platforms
    }
    await build_all(variants)
    pushed = await push_versions(release, variants, auth, registry_service)
    finished = await concurrently(
        {
            image.name: partial(finish_image, client, image, pushed[image.name])
            for image in release.images
        }
    )
    references = [ref for image in release.images for ref in finished[image.name].references]
    for image in release.images:
        for note in finished[image.name].notes:
            progress(f"{image.name}: {note}")
    for reference in references:
        progress(f"published {reference}")
    # Verified against the plan, not against what finishing reports: a floating tag that a
    # concurrent, higher release took is recognised by the verification itself.
    final_digests = {name: image.digest for name, image in finished.items()}
    raise_unless_ok(await settled_verification(client, release, final_digests))
    return references


async def settled_verification(
    client: RegistryClient, release: ReleasePlan, digests: Mapping[str, str]
) -> VerifyReport:
    """Verify the release; on a mismatch, check again a few times before reporting it.

    A concurrent, older release can overwrite a floating tag just before it reads the tag back
    and puts it back: a moment in which this release's tags look wrong without being so.
    """
    report = await verify_release(client, release, expected_digests=digests)
    for _attempt in range(SETTLE_CHECKS):
        if report.ok:
            break
        progress(f"verification found mismatches; checking again in {SETTLE_SECONDS} s")
        await anyio.sleep(SETTLE_SECONDS)
        report = await verify_release(client, release, expected_digests=digests)
    return report


def raise_unless_ok(report: VerifyReport) -> None:
    """Show the verification report; raise naming every mismatch if anything does not hold."""
    for line in report.render().splitlines():
        progress(f"verify {line}")
    if not report.ok:
        raise VerificationError(
            "the registry does not serve what was planned: " + "; ".join(report.mismatches)
        )


async def push_versions(
    release: ReleasePlan,
    variants: Variants,
    auth: dagger.Container,
    registry_service: dagger.Service | None = None,
) -> dict[str, str]:
    """Push each image once, under its version tag (an index when multi-platform).

    Returns each image's pushed digest. ``auth`` must be an empty container: a non-empty
    receiver would count as one more platform variant.
    """

    async def push(image: ImagePlan) -> str:
        reference = image.reference(image.decision.version_tag)
        progress(f"pushing {reference} ({', '.join(image.platforms)})")
        published = await auth.publish(
            reference,
            platform_variants=[variants[(image.name, platform)] for platform in image.platforms],
            registry_service=registry_service,
        )
        return digest_of(published)

    return await concurrently({image.name: partial(push, image) for image in release.images})


async def concurrently(calls: Mapping[str, Callable[[], Awaitable[T]]]) -> dict[str, T]:
    """Run every call at once, wait for all, and return their results under the same keys."""
    results: dict[str, T] = {}

    async def run(key: str, call: Callable[[], Awaitable[T]]) -> None:
        results[key] = await call()

    async with anyio.create_task_group() as group:
        for key, call in calls.items():
            group.start_soon(run, key, call)
    return {key: results[key] for key in calls}

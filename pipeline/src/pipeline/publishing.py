"""A planned release as Dagger calls: build every variant, push, finish, verify.

Data flows one way: the plan (``pipeline.rules.plan``) says what to build and which tags to write;
this module builds the variants and pushes each image once under its version tag; finishing
(``pipeline.steps.finishing``) annotates and moves the floating tags; ``pipeline.steps.verify``
proves the result. Every step is an OpenTelemetry span, so the Dagger TUI and traces show the
release; what a user must read (a tag that stays and why, an image not pushed again, the
verification report) is also in the text a release returns (``ReleaseOutcome.render``), since
the TUI shows span names only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial

import anyio
import dagger
from dagger import dag

from pipeline.attest.errors import AttestationError
from pipeline.attest.provenance import BuildInputs, conda_downloads, sha256_hex
from pipeline.attest.signing import Verifier
from pipeline.oci import WRITE_ACCESS_HINT, Manifest, RegistryClient, safe_line
from pipeline.rules.dockerfiles import base_images
from pipeline.rules.plan import ImagePlan, ReleasePlan
from pipeline.rules.references import repository_path
from pipeline.steps.attesting import Attesting, attest_image
from pipeline.steps.base_images import Logins, pin_base_images
from pipeline.steps.concurrency import first_line, gather
from pipeline.steps.finishing import FinishedImage, digest_of, move_floating, version_manifest
from pipeline.steps.progress import note, step
from pipeline.steps.verify import (
    VerificationError,
    VerifyReport,
    check_attested,
    verify_release,
)

CONDA_LOCK_SUFFIX = "conda.lock"
"""A lock file whose packages the build downloads (``worker/conda.lock``)."""
GIT_IMAGE = "alpine/git:v2.49.1"
"""Reads a commit's time, which the Dagger API does not expose."""

SETTLE_CHECKS = 3
SETTLE_SECONDS = 1.0
"""How often, and how far apart, a failed final verification is repeated before it counts."""


REFUSED_PUSH = re.compile(r"\b(?:401|403)\b|unauthorized|forbidden|denied", re.IGNORECASE)
"""How an engine's push error reads when the registry refused the credentials or the write."""


class PushRefusedError(RuntimeError):
    """The registry refused a push: the credentials, or their write access to the package."""


class BuildFailedError(RuntimeError):
    """One or more image variants failed to build; nothing was pushed."""


def engine_failure(error: BaseException) -> str:
    """An engine error in one line; for a failed command, with the last line of its stderr.

    ``ExecError``'s message says only that the process exited non-zero: what the command said
    about why is in its ``stderr``.
    """
    text = first_line(error)
    if isinstance(error, dagger.ExecError):
        said = [line.strip() for line in error.stderr.splitlines() if line.strip()]
        if said:
            text += f": {said[-1]}"
    return text


@dataclass(frozen=True)
class Commit:
    """What is known of the commit a release is built from."""

    revision: str | None = None
    created: str | None = None


Variants = Mapping[tuple[str, str], dagger.Container]
"""Built containers keyed by (image name, platform)."""


@dataclass(frozen=True)
class ReleaseOutcome:
    """What a release did: the references it holds, what a reader must know, its verification."""

    references: tuple[str, ...]
    """``repository:tag@digest`` for every tag the release holds, version tag first."""
    attestations: tuple[str, ...]
    """Who signed, then per image how many attestations were attached and how many kept."""
    notes: tuple[str, ...]
    """Tags that stay and why, images not pushed again, moves undone while this ran."""
    report: VerifyReport

    def render(self) -> str:
        """The output: references one per line, the attestations, the notes, the report."""
        blocks = ["\n".join(self.references)]
        blocks.append("attestations:\n" + "\n".join(safe_line(t) for t in self.attestations))
        if self.notes:
            blocks.append("\n".join(safe_line(text) for text in self.notes))
        blocks.append("verification:\n" + self.report.render().rstrip("\n"))
        return "\n\n".join(blocks) + "\n"


def references_of(output: str) -> list[str]:
    """The references a rendered ``ReleaseOutcome`` starts with, one per tag."""
    return output.split("\n\n", 1)[0].splitlines()


def plan_notes(release: ReleasePlan) -> list[str]:
    """What the plan decided not to write, and why: kept version tags, floating tags that stay."""
    notes = []
    for image in release.images:
        kept = image.decision.kept
        if kept is not None:
            notes.append(f"{image.reference(image.decision.version_tag)}: {kept.reason}")
    return notes + staying_tags(release)


def verification_output(release: ReleasePlan, report: VerifyReport) -> str:
    """``verify``'s output: each floating tag not expected to hold the release, then the report."""
    stays = "".join(f"{safe_line(text)}\n" for text in staying_tags(release))
    return stays + ("\n" if stays else "") + report.render()


def staying_tags(release: ReleasePlan) -> list[str]:
    """Each floating tag the plan leaves where it is, and why."""
    return [
        f"{image.reference(tag.name)}: {tag.reason}"
        for image in release.images
        for tag in image.floating
        if not tag.moves
    ]


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
    build_args: Mapping[str, str] | None = None,
) -> dagger.Container:
    """One (image, platform) build from its Dockerfile, carrying every planned label.

    A release passes each base image pinned by digest as its build argument (``BuildInputs``).

    No SOURCE_DATE_EPOCH: Dagger v0.21's ``docker_build`` never hands BuildKit an epoch, and
    ``publish`` rebuilds the config's ``created`` and history from layer times, so image times
    and digests differ from build to build. The labels (the commit's time included) do not.
    """
    container = context.docker_build(
        dockerfile=dockerfile,
        platform=dagger.Platform(platform),
        build_args=[
            dagger.BuildArg(name=name, value=value) for name, value in (build_args or {}).items()
        ],
    )
    for name, value in labels.items():
        container = container.with_label(name, value)
    return container


def refused_push(error: dagger.QueryError) -> PushRefusedError | None:
    """For a push the registry refused, the same error with what to check; else None."""
    cause = first_line(error)
    if REFUSED_PUSH.search(cause) is None:
        return None
    return PushRefusedError(f"{cause}; {WRITE_ACCESS_HINT}")


def release_variants(
    release: ReleasePlan, context: dagger.Directory, inputs: Mapping[str, BuildInputs]
) -> Variants:
    """The variants a release builds: every platform of every image not already published."""
    return {
        (image.name, platform): build_variant(
            context, image.spec.dockerfile, platform, image.labels, inputs[image.name].build_args
        )
        for image in release.images
        if image.kept_digest is None
        for platform in image.platforms
    }


async def read_build_inputs(
    context: dagger.Directory, release: ReleasePlan, logins: Logins
) -> dict[str, BuildInputs]:
    """What each image is built from: its Dockerfile, bases pinned by digest, locks, downloads."""

    async def read(image: ImagePlan) -> BuildInputs:
        dockerfile = await context.file(image.spec.dockerfile).contents()
        pinned = await pin_base_images(base_images(dockerfile), logins=logins)
        locks, downloads = {}, {}
        for path in image.spec.lock_files:
            text = await context.file(path).contents()
            locks[path] = sha256_hex(text.encode())
            if path.endswith(CONDA_LOCK_SUFFIX):
                downloads = conda_downloads(text, image.platforms)
        return BuildInputs(
            dockerfile=image.spec.dockerfile,
            dockerfile_sha256=sha256_hex(dockerfile.encode()),
            base_images=pinned,
            locks=locks,
            downloads=downloads,
        )

    with step(f"read the build inputs of {release.tag}"):
        return await gather({image.name: partial(read, image) for image in release.images})


async def build_all(variants: Variants) -> None:
    """Build every variant concurrently and wait for all; raise naming each one that failed."""

    async def build_one(image: str, platform: str, container: dagger.Container) -> str | None:
        with step(f"build {image} {platform}"):
            try:
                await container.sync()
            except dagger.DaggerError as error:
                return engine_failure(error)
        return None

    outcomes = await gather(
        {key: partial(build_one, *key, container) for key, container in variants.items()}
    )
    failures = {key: why for key, why in outcomes.items() if why is not None}
    if failures:
        listing = "; ".join(
            f"{image} {platform}: {why}" for (image, platform), why in failures.items()
        )
        raise BuildFailedError(
            f"{len(failures)} of {len(variants)} builds failed, nothing was pushed: {listing}"
        )


async def push_version(
    image: ImagePlan,
    variants: Variants,
    auth: dagger.Container,
    registry_service: dagger.Service | None = None,
) -> str:
    """Push ``image`` once, under its version tag (an index when multi-platform); its digest.

    An image whose version tag already holds this release (a release that stopped half-way) is
    not pushed again. ``auth`` must be an empty container: a non-empty receiver would count as
    one more platform variant.
    """
    reference = image.reference(image.decision.version_tag)
    if image.kept_digest is not None:
        note(f"{reference} already holds this release: not pushed again")
        return image.kept_digest
    with step(f"push {reference}", platforms=", ".join(image.platforms)):
        try:
            published = await auth.publish(
                reference,
                platform_variants=[variants[(image.name, p)] for p in image.platforms],
                registry_service=registry_service,
            )
        except dagger.QueryError as error:
            refused = refused_push(error)
            if refused is None:
                raise
            raise refused from error
    return digest_of(published)


@dataclass(frozen=True)
class AttestedImage:
    """An image pushed under its version tag and attested: what finishing starts from."""

    manifest: Manifest
    """The version tag's manifest (for an index, as annotated)."""
    attestations: str
    """One line for the release's output: how many attestations were attached, how many kept."""


async def push_and_attest(
    image: ImagePlan,
    variants: Variants,
    auth: dagger.Container,
    client: RegistryClient,
    attesting: Attesting,
    registry_service: dagger.Service | None = None,
) -> AttestedImage:
    """Push one image under its version tag, annotate its index, attest every digest.

    Each image goes through these on its own, so one image's attestations overlap the other's
    push; no floating tag moves here, and none moves unless every digest's attestations, as the
    registry now serves them, verify.
    """
    pushed = await push_version(image, variants, auth, registry_service)
    final = await version_manifest(client, repository_path(image.repository), image, pushed)
    attestations = await attest_image(client, attesting, image, final)
    await require_attested(client, image, final, attesting.verifier)
    return AttestedImage(final, attestations)


async def require_attested(
    client: RegistryClient, image: ImagePlan, top: Manifest, verifier: Verifier
) -> None:
    """Raise, naming each problem, unless every digest of ``top`` carries good attestations.

    Read back after attesting, as verify reads them: what the registry serves (a bundle planted
    or changed meanwhile, one of a predicate type the release does not make) stops the release
    before any floating tag moves.
    """
    path = repository_path(image.repository)
    with step(f"check the attestations of {image.repository}"):
        problems = await check_attested(client, path, image, top, verifier)
    if problems:
        raise AttestationError(
            f"{image.repository}: attestations do not verify, so no floating tag moves: "
            + "; ".join(problems)
        )


async def release_images(
    release: ReleasePlan,
    context: dagger.Directory,
    auth: dagger.Container,
    client: RegistryClient,
    attesting: Attesting,
    *,
    registry_service: dagger.Service | None = None,
) -> ReleaseOutcome:
    """Build every variant, push, attest, move the floating tags, verify; what the release did.

    Everything is built before anything is pushed, and floating tags move only once every
    image's version tag is pushed and every digest attested: a failure on the way leaves no
    tag moved, and running the release again completes it.
    """
    variants = release_variants(release, context, attesting.inputs)
    await build_all(variants)
    with step(
        f"version tags of {release.tag}: push, annotate, attest", signer=attesting.signer.identity
    ):
        attested = await gather(
            {
                image.name: partial(
                    push_and_attest, image, variants, auth, client, attesting, registry_service
                )
                for image in release.images
            }
        )
    finished = await gather(
        {
            image.name: partial(move_floating, client, image, attested[image.name].manifest)
            for image in release.images
        }
    )
    attestations = [f"signed by {attesting.signer.identity}"] + [
        attested[image.name].attestations for image in release.images
    ]
    for text in attestations:
        note(text)
    notes = plan_notes(release)
    for text in notes:
        note(text)
    for image in release.images:
        for text in finished[image.name].notes:
            notes.append(f"{image.repository}:{text}")
            note(notes[-1])
    final_digests = {name: image.digest for name, image in finished.items()}
    verified = as_finished(release, finished)
    report = await settled_verification(client, verified, final_digests, attesting.verifier)
    raise_unless_ok(report)
    return ReleaseOutcome(
        references=tuple(
            ref for image in release.images for ref in finished[image.name].references
        ),
        attestations=tuple(attestations),
        notes=tuple(notes),
        report=report,
    )


def as_finished(release: ReleasePlan, finished: Mapping[str, FinishedImage]) -> ReleasePlan:
    """The plan, but each floating tag that finishing decided anew as finishing left it.

    A higher release published while this one ran owns the floating tags of its scope; it may
    not have moved them yet (its attestations take a while), so this release does not answer
    for them. A planned tag that finishing does not report on stays as planned and is verified.
    """

    def image_as_finished(image: ImagePlan) -> ImagePlan:
        decided = {tag.name: tag for tag in finished[image.name].image.floating}
        floating = tuple(decided.get(tag.name, tag) for tag in image.floating)
        return replace(image, decision=replace(image.decision, floating=floating))

    return replace(release, images=tuple(image_as_finished(image) for image in release.images))


async def settled_verification(
    client: RegistryClient,
    release: ReleasePlan,
    digests: Mapping[str, str],
    verifier: Verifier | None = None,
) -> VerifyReport:
    """Verify the release; on a mismatch, check again a few times before reporting it.

    A concurrent, older release can overwrite a floating tag just before it reads the tag back
    and puts it back: a moment in which this release's tags look wrong without being so.
    """
    with step(f"verify {release.tag}"):
        report = await verify_release(
            client, release, expected_digests=digests, attestations=verifier
        )
        for _attempt in range(SETTLE_CHECKS):
            if report.ok:
                break
            note(f"verification found mismatches; checking again in {SETTLE_SECONDS} s")
            await anyio.sleep(SETTLE_SECONDS)
            report = await verify_release(
                client, release, expected_digests=digests, attestations=verifier
            )
    return report


def raise_unless_ok(report: VerifyReport) -> None:
    """Raise naming every mismatch if anything the plan says does not hold."""
    if not report.ok:
        raise VerificationError(
            "the registry does not serve what was planned: " + "; ".join(report.mismatches)
        )

"""The Dagger module: build, check, plan, publish, rehearse and verify qm-nmr-calc's images.

Only the Dagger API surface: each function reads its inputs (sources, registry state), has the
release planned by ``pipeline.rules.plan``, and hands the plan to ``pipeline.publishing`` (builds,
pushes, finishing) or ``pipeline.steps.verify``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import anyio
import dagger
from dagger import DefaultPath, Doc, Ignore, check, dag, function, object_type

from pipeline import sboms
from pipeline.attest.errors import AttestationError
from pipeline.attest.identity import JustInTimeSigner, wall_clock
from pipeline.attest.provenance import (
    GITHUB,
    GITHUB_ISSUER,
    REHEARSAL_RUN,
    RunDetails,
    github_run,
    token_claims,
)
from pipeline.attest.signing import (
    KeylessSigner,
    Signer,
    SigstoreVerifier,
    ThrowawaySigner,
    Verifier,
    github_oidc_token,
)
from pipeline.oci import RegistryClient, RegistryError
from pipeline.publishing import (
    BuildFailedError,
    Commit,
    build_all,
    build_variant,
    commit_of,
    engine_failure,
    raise_unless_ok,
    read_build_inputs,
    release_images,
    verification_output,
)
from pipeline.rules.catalogue import CATALOGUE, PROJECT, check_platform, find_image
from pipeline.rules.labels import image_labels
from pipeline.rules.plan import PublishedState, ReleasePlan, make_plan, render_table
from pipeline.rules.references import (
    DEFAULT_OWNER,
    DEFAULT_REGISTRY,
    normalize_owner,
    normalize_registry,
    on_host_loopback,
)
from pipeline.rules.versions import ReleaseInputError, parse_release_tag
from pipeline.steps.attesting import Attesting, Scan
from pipeline.steps.base_images import Logins
from pipeline.steps.concurrency import ConcurrentStepsError, first_line
from pipeline.steps.progress import step
from pipeline.steps.published import read_release_state
from pipeline.steps.verify import verification_plan, verify_release

__all__ = ["BuildFailedError", "Pipeline", "UnreachableRegistryError"]

APP_MARKER = "src/qm_nmr_calc"
"""A path that exists only where the application's sources are (the build context)."""

WORKER_LOCK = "worker/conda.lock"
"""The worker's conda lock: every package of its scientific stack by URL and SHA-256."""
WORKER_LOCK_COMMAND = f"dagger call worker-lock export --path {WORKER_LOCK}"
"""Makes the lock where the module lives (its repository's root, beside dagger.json)."""
WORKER_LOCK_WORKFLOW = ".github/workflows/worker-lock.yml"
"""Makes the lock on a GitHub runner, in the module's repository: no Docker or Dagger needed."""
WORKER_LOCK_MISSING = (
    f"{WORKER_LOCK} is missing from this module's build files: the worker image installs "
    "NWChem, xTB and CREST only from that lock, which lives beside the module's dagger.json. "
    f"In the repository that holds the module, run its `worker-lock` workflow "
    f"({WORKER_LOCK_WORKFLOW}: Actions, Run workflow) or `{WORKER_LOCK_COMMAND}` at its root "
    "(it needs conda-forge); review and commit the lock, then build again. Calling the module "
    "remotely (`dagger -m github.com/OWNER/REPOSITORY@COMMIT`, way A of docs/adopting.md), "
    "choose a module commit that holds the lock: a lock in your own checkout is never read"
)
"""Why a build is refused without the lock, and what makes it in each way of adopting."""
WORKER_FILES = ("worker/environment.yml", "worker/conda_env.py", "worker/requirements.txt")
"""The worker's lock spec, installer and the installer's pinned requirements."""
DOCKER_FILES = (
    *(spec.dockerfile for spec in CATALOGUE),
    ".dockerignore",
    *WORKER_FILES,
    WORKER_LOCK,
)
"""This module's build files (a directory ends with ``/``), laid over every build context."""

BUILD_FILES_IGNORE = ["*", *(f"!{name.rstrip('/')}" for name in DOCKER_FILES)]
"""Keeps only ``DOCKER_FILES`` of the module's own directory."""

REVISION = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
"""A full commit id: SHA-1, or SHA-256 for repositories that use it; lowercase."""
LOCK_PYTHON_IMAGE = "python:3.11-slim-bookworm"
"""Runs the lock maker; the same Python image the Dockerfiles name. UNVERIFIED: no digest of it
could be read here (no registry reachable), so ``worker_lock`` resolves this tag to its digest
once, runs from that digest and records it in the lock (``made-by: image``). To pin it ahead,
append the ``@sha256:...`` a lock recorded: this is the one place."""

REHEARSAL_REGISTRY_IMAGE = "registry:2"
"""The throwaway registry ``rehearse`` publishes into, inside the engine."""
REHEARSAL_PORT = 5000
REHEARSAL_HOST = f"localhost:{REHEARSAL_PORT}"
"""What rehearsal references name as their registry: the engine pushes over plain HTTP only to
``localhost``, and ``registry_service`` makes that host the throwaway registry."""
LOOPBACK_REGISTRY = (
    "a registry on the host's loopback (localhost, 127.0.0.1) is reachable neither from the "
    "Dagger engine nor from this module's container (each has its own network); to release "
    "without GHCR, run `dagger call rehearse --tag TAG`: a throwaway registry inside the engine"
)
"""Why a release to a loopback registry fails on an engine, and what to run instead."""
REHEARSAL_TAG = "v0.0.0-rehearsal"
RELEASE_WORKFLOW = ".github/workflows/release.yml"
"""The workflow that publishes, in the repository ``verify`` expects as the signer's."""
SIGNING_FLAGS = (
    "publish signs every image keylessly with the release workflow's GitHub OIDC identity: "
    "pass --id-token-request-url env:ACTIONS_ID_TOKEN_REQUEST_URL and "
    "--id-token-request-token env:ACTIONS_ID_TOKEN_REQUEST_TOKEN from a job with "
    "`permissions: id-token: write` (see .github/workflows/release.yml); to try a release "
    "anywhere else, run `dagger call rehearse --tag TAG`"
)
"""Why publish refuses without the identity flags, and what to pass."""
KEYLESS_REHEARSAL_FLAGS = (
    "rehearse signs keylessly only with both --id-token-request-url and "
    "--id-token-request-token (a job with `permissions: id-token: write`); pass both, or "
    "neither to sign with a throwaway identity"
)
"""Why rehearse refuses one identity flag without the other."""
"""The version the ``rehearsal`` check releases the current sources as."""

CACHE_NEVER = "never"
"""Cache policy of side effects and of reads of live registry state: never replayed."""
CACHE_SESSION = "session"
"""Cache policy of what reads upstream's tags or HEAD: once per ``dagger`` session."""

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


def cached_function(policy: str) -> Callable[[FunctionT], FunctionT]:
    """``@function(cache=policy)``: "never", "session", or a time to live such as "10m"."""
    # The SDK's typed overloads of `function` omit its `cache` argument.
    decorate: Callable[[FunctionT], FunctionT] = function(cache=policy)  # type: ignore[call-overload]
    return decorate


def uncached_function(func: FunctionT) -> FunctionT:
    """``@function(cache="never")``: for side effects, and for reads of live registry state."""
    return cached_function(CACHE_NEVER)(func)


def session_function(func: FunctionT) -> FunctionT:
    """``@function(cache="session")``: for reads of upstream's tags and HEAD.

    Without a policy the engine keeps a result up to 7 days, keyed on the module's source and
    arguments: a build of upstream's HEAD, or of a tag moved since, would come from that cache.
    """
    return cached_function(CACHE_SESSION)(func)


def checked_function(func: FunctionT) -> FunctionT:
    """``@function(cache="session")`` over ``@check``: a function that ``dagger check`` runs.

    Checks build upstream's HEAD when the sources are not here: read again in every session.
    """
    # `check` returns a union of its two call forms, which hides the method's type too.
    return session_function(cast(FunctionT, check(func)))


@object_type
class Pipeline:
    """Release pipeline of qm-nmr-calc: one plan, every image, every platform."""

    source: Annotated[
        dagger.Directory,
        Doc(
            "Build context: the repository root by default. Without the application's "
            "sources in it, the upstream repository at the release tag is used. Either way "
            "the Dockerfiles and .dockerignore come from --build-files."
        ),
        DefaultPath("/"),
        Ignore(SOURCE_IGNORE),
    ]
    build_files: Annotated[
        dagger.Directory,
        Doc(
            "This module's Dockerfiles and .dockerignore, laid over the build context: by "
            "default read beside dagger.json, in this module's own repository even when it "
            "is called as a remote module with another --source"
        ),
        # "." is the directory of dagger.json in the module's own context (its git repository
        # at the ref called), never the caller's; "/" would be that repository's root.
        DefaultPath("."),
        Ignore(BUILD_FILES_IGNORE),
    ]
    revision: Annotated[
        str | None,
        Doc(
            "Full commit id of --source when it is a checkout of upstream (in a workflow: "
            "$GITHUB_SHA); labels the images with it and its commit time, read from upstream"
        ),
    ] = None
    registry: Annotated[
        str,
        Doc(
            "Registry host to publish to, reachable from the Dagger engine and from this "
            "module's container: not one on the host's loopback (localhost, 127.0.0.1), which "
            "neither reaches; `rehearse` releases into a throwaway registry instead"
        ),
    ] = DEFAULT_REGISTRY
    owner: Annotated[str, Doc("Repository owner; lowercased for the registry")] = DEFAULT_OWNER

    if TYPE_CHECKING:  # `object_type` makes the dataclass; mypy cannot see it do so.

        def __init__(
            self,
            *,
            source: dagger.Directory,
            build_files: dagger.Directory,
            revision: str | None = None,
            registry: str = DEFAULT_REGISTRY,
            owner: str = DEFAULT_OWNER,
        ) -> None: ...

    @uncached_function
    async def plan(
        self,
        tag: Annotated[str, Doc("Release tag, e.g. v2.4.0")],
        existing_tags: Annotated[
            list[str] | None,
            Doc("What-if: tags already published; by default the registry is read"),
        ] = None,
        overwrite: Annotated[bool, Doc("Allow re-publishing an existing version")] = False,
        take_over_floating: Annotated[
            bool, Doc("Move floating tags that hold an image of unknown version")
        ] = False,
    ) -> str:
        """The release plan of TAG: every image, platform, tag and label, and why."""
        parse_release_tag(tag)
        _, commit = await self._context(tag, building=False)
        if existing_tags is not None:
            published = {spec.name: PublishedState(tags=tuple(existing_tags)) for spec in CATALOGUE}
        else:
            async with self._registry() as client:
                published = await self._published(client, tag)
        release = self._plan(
            tag, published, commit, overwrite=overwrite, take_over_floating=take_over_floating
        )
        return render_table(release)

    @session_function
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
        labels = self._labels_by_image(tag, commit)[spec.name]
        return build_variant(context, spec.dockerfile, platform, labels)

    @checked_function
    async def builds(self) -> None:
        """Check that every image builds for every platform (nothing is pushed)."""
        context, commit = await self._context(None)
        labels = self._labels_by_image(None, commit)
        variants = {
            (spec.name, platform): build_variant(
                context, spec.dockerfile, platform, labels[spec.name]
            )
            for spec in CATALOGUE
            for platform in spec.platforms
        }
        await build_all(variants)

    @checked_function
    async def rehearsal(self) -> None:
        """Check: release the current sources as v0.0.0-rehearsal into a throwaway registry.

        Pushes, tags, annotates and verifies on the engine, as ``publish`` would on GHCR.
        """
        context, commit = await self._context(None)
        await self._rehearse(REHEARSAL_TAG, context, commit)

    @uncached_function
    async def publish(
        self,
        tag: Annotated[str, Doc("Release tag, e.g. v2.4.0")],
        username: Annotated[str | None, Doc("Registry user (GHCR: the GitHub actor)")] = None,
        password: Annotated[
            dagger.Secret | None, Doc("Registry token, e.g. env:GITHUB_TOKEN")
        ] = None,
        id_token_request_url: Annotated[
            dagger.Secret | None,
            Doc("GitHub's OIDC token endpoint: env:ACTIONS_ID_TOKEN_REQUEST_URL"),
        ] = None,
        id_token_request_token: Annotated[
            dagger.Secret | None,
            Doc("The token that asks it for one: env:ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
        ] = None,
        dry_run: Annotated[bool, Doc("Print the plan; build and push nothing")] = False,
        overwrite: Annotated[bool, Doc("Allow re-publishing an existing version")] = False,
        take_over_floating: Annotated[
            bool, Doc("Move floating tags that hold an image of unknown version")
        ] = False,
    ) -> str:
        """Build every image for every platform, push, attest and move the tags; what it did.

        The output: one ``repository:tag@digest`` line per tag the release holds; then each tag
        left where it is and why; then the verification report.

        Everything is built before anything is pushed: one failed variant means nothing is
        published. Each image's version tag is pushed first, then every digest gets its SBOM,
        provenance and signature (Sigstore, keyless, with the workflow's OIDC identity);
        floating tags move last. A release that stopped half-way is completed by running it
        again: an image whose version tag already holds this commit's build is kept, and so is
        every attestation already attached.
        """
        parse_release_tag(tag)
        credentials = None if dry_run else require_credentials(username, password)
        identity = (
            None if dry_run else require_identity(id_token_request_url, id_token_request_token)
        )
        context, commit = await self._context(tag, building=not dry_run)
        token = await password.plaintext() if password is not None else None
        async with self._registry(username, token) as client:
            published = await self._published(client, tag)
            release = self._plan(
                tag, published, commit, overwrite=overwrite, take_over_floating=take_over_floating
            )
            if credentials is None or identity is None or token is None:  # a dry run
                return render_table(release)
            username, password = credentials
            attesting = await self._attesting(
                tag,
                release,
                context,
                await keyless_signing(*identity),
                partial(
                    sboms.scan,
                    login=sboms.registry_login(self._host, username, token),
                    registry_service=None,
                ),
                {self._host: (username, token)},
            )
            auth = dag.container().with_registry_auth(self._host, username, password)
            outcome = await release_images(release, context, auth, client, attesting)
        return outcome.render()

    @uncached_function
    async def verify(
        self,
        tag: Annotated[str, Doc("Release tag that was published, e.g. v2.4.0")],
        username: Annotated[str | None, Doc("Registry user, for a private package")] = None,
        password: Annotated[dagger.Secret | None, Doc("Registry token")] = None,
        release_repository: Annotated[
            str | None,
            Doc(
                "OWNER/REPO whose .github/workflows/release.yml signed the release; by default "
                "upstream's ({owner}/qm-nmr-calc)"
            ),
        ] = None,
    ) -> str:
        """Check that the registry serves what the plan of TAG says; fail naming every mismatch.

        Every published digest must carry an SBOM, a provenance and a signature naming it,
        signed by the release workflow of TAG (Sigstore's public trust root).
        The output: each floating tag not expected to hold TAG and why, then the report.
        """
        parse_release_tag(tag)
        _, commit = await self._context(tag, building=False)
        token = await password.plaintext() if password is not None else None
        async with self._registry(username, token) as client:
            release = await verification_plan(
                client,
                tag,
                owner=self.owner,
                registry=self.registry,
                revision=commit.revision,
                created=commit.created,
            )
            repository = release_repository or f"{normalize_owner(self.owner)}/{PROJECT}"
            verifier = release_verifier(f"{GITHUB}/{repository}/{RELEASE_WORKFLOW}@refs/tags/{tag}")
            with step(f"verify {tag}"):
                report = await verify_release(client, release, attestations=verifier)
        raise_unless_ok(report)
        return verification_output(release, report)

    @uncached_function
    async def rehearse(
        self,
        tag: Annotated[str, Doc("Release tag to rehearse, e.g. v2.4.0")],
        id_token_request_url: Annotated[
            dagger.Secret | None,
            Doc(
                "Sign keylessly (public Sigstore) instead of with a throwaway identity: "
                "env:ACTIONS_ID_TOKEN_REQUEST_URL, in a job with id-token: write"
            ),
        ] = None,
        id_token_request_token: Annotated[
            dagger.Secret | None,
            Doc("With --id-token-request-url: env:ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
        ] = None,
    ) -> str:
        """Rehearse the release of TAG into a throwaway registry inside the engine.

        The whole release (builds, push, tags, annotations, attestations, verify) with no
        registry credentials; no image leaves the machine. Run it before pushing a release
        tag. Signed with a throwaway identity, or, given the workflow's OIDC pair, keylessly
        with that workflow's identity (Fulcio and Rekor entries are real and public; the
        bundles are verified against that identity). The output is ``publish``'s: references,
        what stays and why, the attestations, the verification report.
        """
        parse_release_tag(tag)
        identity = None
        if id_token_request_url is not None or id_token_request_token is not None:
            if id_token_request_url is None or id_token_request_token is None:
                raise ValueError(KEYLESS_REHEARSAL_FLAGS)
            identity = (id_token_request_url, id_token_request_token)
        context, commit = await self._context(tag)
        return await self._rehearse(tag, context, commit, identity)

    async def _rehearse(
        self,
        tag: str,
        context: dagger.Directory,
        commit: Commit,
        identity: tuple[dagger.Secret, dagger.Secret] | None = None,
    ) -> str:
        """Release ``tag`` from ``context`` into a throwaway ``registry:2`` service.

        Signed keylessly with ``identity`` (GitHub's OIDC request pair) if given, else with a
        throwaway signer.
        """
        signing = await keyless_signing(*identity) if identity is not None else throwaway_signing()
        service = await (
            dag.container()
            .from_(REHEARSAL_REGISTRY_IMAGE)
            .with_exposed_port(REHEARSAL_PORT)
            .as_service()
            .start()
        )
        try:
            # The engine pushes to `localhost:PORT`, which registry_service aliases to the
            # service over plain HTTP; this module's own client reaches it at its endpoint.
            endpoint = await service.endpoint(port=REHEARSAL_PORT)
            release = make_plan(
                tag,
                owner=self.owner,
                registry=REHEARSAL_HOST,
                revision=commit.revision,
                created=commit.created,
            )
            attesting = await self._attesting(
                tag,
                release,
                context,
                signing,
                partial(sboms.scan, login=None, registry_service=service),
                {},
            )
            async with RegistryClient(endpoint, plain_http=True) as client:
                outcome = await release_images(
                    release, context, dag.container(), client, attesting, registry_service=service
                )
        finally:
            await service.stop()
        return outcome.render()

    async def _attesting(
        self,
        tag: str,
        release: ReleasePlan,
        context: dagger.Directory,
        signing: tuple[Signer, Verifier, RunDetails],
        scan: Scan,
        logins: Logins,
    ) -> Attesting:
        """How ``release`` attests: its build inputs read, with this signer and SBOM scanner."""
        signer, verifier, run = signing
        inputs = await read_build_inputs(context, release, logins)
        return Attesting(
            tag=tag, signer=signer, verifier=verifier, run=run, scan=scan, inputs=inputs
        )

    @property
    def _host(self) -> str:
        """The registry host, validated and lowercased."""
        return normalize_registry(self.registry)

    @asynccontextmanager
    async def _registry(
        self, username: str | None = None, token: str | None = None
    ) -> AsyncIterator[RegistryClient]:
        """A client of this module's registry; a loopback one that cannot be reached, explained.

        Whatever fails inside (the module's own reads, the engine's pushes) for want of a
        connection to a registry on the host's loopback is an ``UnreachableRegistryError``.
        """
        try:
            async with RegistryClient(
                self._host, username=username if token else None, password=token
            ) as client:
                yield client
        except Exception as error:
            if on_host_loopback(self._host) and unreachable(error):
                raise UnreachableRegistryError(
                    f"{first_line(error)}; {LOOPBACK_REGISTRY}"
                ) from error
            raise

    def _plan(
        self,
        tag: str,
        published: Mapping[str, PublishedState],
        commit: Commit,
        *,
        overwrite: bool,
        take_over_floating: bool,
    ) -> ReleasePlan:
        """The release plan for this module's registry and owner."""
        return make_plan(
            tag,
            published=published,
            owner=self.owner,
            registry=self.registry,
            revision=commit.revision,
            created=commit.created,
            overwrite=overwrite,
            take_over_floating=take_over_floating,
        )

    def _labels_by_image(self, tag: str | None, commit: Commit) -> dict[str, dict[str, str]]:
        """Labels per image: the plan's for a release tag, the version-less ones otherwise."""
        if tag is not None:
            # No registry state: labels depend only on the tag, the owner and the commit.
            release = make_plan(
                tag, owner=self.owner, revision=commit.revision, created=commit.created
            )
            return {image.name: dict(image.labels) for image in release.images}
        return {
            spec.name: image_labels(
                spec, owner=self.owner, revision=commit.revision, created=commit.created
            )
            for spec in CATALOGUE
        }

    async def _published(self, client: RegistryClient, tag: str) -> dict[str, PublishedState]:
        """What each image's repository holds that the plan of ``tag`` depends on."""
        skeleton = make_plan(tag, owner=self.owner, registry=self.registry)  # just the repositories
        return await read_release_state(client, skeleton)

    @uncached_function
    async def worker_lock(self) -> dagger.File:
        """Solve worker/environment.yml for linux-64 and linux-aarch64: worker/conda.lock.

        Up to the spec's exclude-newer cut-off, the same versions on both platforms where
        conda-forge has them (what differs is listed in the lock, with the reason). Needs the
        channel (conda-forge). Review the result and commit it; the worker is built only from
        it. ``dagger call worker-lock export --path worker/conda.lock``
        """
        worker = self.build_files.directory("worker")
        # Resolved to its digest once: the lock is made in, and records, exactly that image.
        image = await dag.container().from_(LOCK_PYTHON_IMAGE).image_ref()
        return (
            dag.container()
            .from_(image)
            .with_directory("/worker", worker)
            .with_exec(
                [
                    "pip",
                    "install",
                    "--no-cache-dir",
                    "--require-hashes",
                    "--only-binary=:all:",
                    "--requirement=/worker/requirements.txt",
                ]
            )
            .with_exec(
                [
                    "python",
                    "/worker/conda_env.py",
                    "lock",
                    "/worker/environment.yml",
                    "/conda.lock",
                    f"--made-in={image}",
                ]
            )
            .file("/conda.lock")
        )

    async def _context(
        self, tag: str | None, *, building: bool = True
    ) -> tuple[dagger.Directory, Commit]:
        """The build context and its commit, with this module's build files laid over it.

        Local sources (``--source`` holds the application) are used as they are, with the
        commit ``--revision`` names if given; otherwise upstream's repository at ``tag``. A build
        needs the worker's lock among the build files: without it, refused here, before anything
        is built.
        """
        if building and not await self.build_files.exists(WORKER_LOCK):
            raise ReleaseInputError(WORKER_LOCK_MISSING)
        if await self.source.exists(APP_MARKER):
            return self._with_build_files(self.source), await self._source_commit()
        url = self._upstream_url
        if self.revision is not None:
            raise ReleaseInputError(
                f"--revision names the commit of a --source checkout that holds the "
                f"application ({APP_MARKER}); this --source has none, so the commit of "
                f"{url} at the release tag is used: drop --revision or pass --source"
            )
        repo = dag.git(url)
        ref = repo.tag(tag) if tag is not None else repo.head()
        with step(f"read {url} at {tag or 'HEAD'}"):
            commit = await upstream_commit(ref, url, tag)
        return self._with_build_files(ref.tree()), commit

    async def _source_commit(self) -> Commit:
        """The commit ``--revision`` names, read from upstream; none without ``--revision``."""
        if self.revision is None:
            return Commit()
        revision = check_revision(self.revision)
        url = self._upstream_url
        with step(f"read {url} at {revision}"):
            try:
                return await commit_of(dag.git(url).commit(revision))
            except dagger.QueryError as error:
                raise ReleaseInputError(
                    f"commit {revision} cannot be read from {url} ({first_line(error)}); "
                    "--revision must name the commit --source was checked out at, which "
                    "upstream's repository must hold"
                ) from error

    def _with_build_files(self, tree: dagger.Directory) -> dagger.Directory:
        """``tree`` with this module's ``DOCKER_FILES`` in place of any of its own."""
        for name in DOCKER_FILES:
            if name.endswith("/"):
                tree = tree.with_directory(name, self.build_files.directory(name))
            else:
                tree = tree.with_file(name, self.build_files.file(name))
        return tree

    @property
    def _upstream_url(self) -> str:
        """Upstream's repository for this module's owner."""
        return f"https://github.com/{normalize_owner(self.owner)}/{PROJECT}"


class UnreachableRegistryError(RuntimeError):
    """The registry is on the host's loopback, which neither the engine nor the module reaches."""


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` is a failure to connect to the registry, not an answer from it."""
    if isinstance(error, ConcurrentStepsError):
        return any(unreachable(failure) for failure in error.failures.values())
    if isinstance(error, RegistryError):
        return error.status is None and "no answer" in str(error)
    return isinstance(error, dagger.QueryError) and "connection refused" in str(error)


async def upstream_commit(ref: dagger.GitRef, url: str, tag: str | None) -> Commit:
    """The commit of upstream's ``tag``; a tag upstream lacks is refused before any build."""
    try:
        return await commit_of(ref)
    except dagger.QueryError as error:
        if tag is None:
            raise
        raise ReleaseInputError(
            f"tag {tag} cannot be read from {url} ({engine_failure(error)}); the images are built "
            "from upstream's sources at the release tag, so the tag must exist there first"
        ) from error


def check_revision(revision: str) -> str:
    """``revision`` if it is a full, lowercase commit id; else an error saying what is accepted."""
    if REVISION.fullmatch(revision) is None:
        raise ReleaseInputError(
            f"--revision {revision[:80]!r} is not a full commit id; accepted: 40 (or 64) "
            "lowercase hexadecimal digits, e.g. from `git rev-parse HEAD` or $GITHUB_SHA"
        )
    return revision


def require_identity(
    request_url: dagger.Secret | None, request_token: dagger.Secret | None
) -> tuple[dagger.Secret, dagger.Secret]:
    """Both halves of GitHub's OIDC token request, or an error saying what to pass."""
    if request_url is None or request_token is None:
        raise ValueError(SIGNING_FLAGS)
    return request_url, request_token


async def keyless_signing(
    request_url: dagger.Secret, request_token: dagger.Secret
) -> tuple[Signer, Verifier, RunDetails]:
    """Sigstore keyless signing as the workflow run GitHub's OIDC token names.

    The token requested here only says which run signs (and proves, before anything is built,
    that the job may sign); it is never signed with: it expires in 5 minutes, long before a
    cold release signs anything. Each certificate is bought with a token requested just
    before it (``JustInTimeSigner``). The bundles are checked against that same identity (the
    workflow file at its ref), as ``verify`` and users' ``cosign verify`` check them.
    """
    url, secret = await request_url.plaintext(), await request_token.plaintext()
    with step("request the workflow's OIDC identity token (which run signs)"):
        token = await anyio.to_thread.run_sync(github_oidc_token, url, secret)
    run = github_run(token_claims(token))
    signer = JustInTimeSigner(
        f"keyless: {run.builder_id} (issuer {GITHUB_ISSUER}; Fulcio certificates obtained just "
        "in time, Rekor entries)",
        partial(same_run_token, partial(github_oidc_token, url, secret), run),
        KeylessSigner,
        clock=wall_clock,
    )
    return signer, release_verifier(run.builder_id), run


def same_run_token(request: Callable[[], str], run: RunDetails) -> str:
    """A fresh identity token from ``request``, refused unless it names the same workflow run."""
    token = request()
    if github_run(token_claims(token)).builder_id != run.builder_id:
        raise AttestationError(
            f"a fresh identity token names another workflow than {run.builder_id}; every "
            "signature of a release must come from one workflow run"
        )
    return token


def throwaway_signing() -> tuple[Signer, Verifier, RunDetails]:
    """A rehearsal's throwaway signer, the verifier of its CA, and the rehearsal as builder."""
    signer = ThrowawaySigner()
    return signer, signer.verifier(), REHEARSAL_RUN


def release_verifier(identity: str) -> Verifier:
    """Checks bundles signed keylessly by ``identity`` (a workflow URL at its ref) on GitHub."""
    return SigstoreVerifier(identity=identity, issuer=GITHUB_ISSUER)


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

"""``pipeline.steps.verify`` against a REAL registry: what is published must be what the plan says.

Each test pushes small real images (``tests/support/oci_images.py``) into the session's
``docker-registry`` under a fresh owner, in a state that matches a plan or breaks it in one named
way, then checks that ``verify_release`` (and ``python -m pipeline verify``) find exactly that,
and that the report says it line by line: ``VerifyReport.render`` is what ``verify`` prints and
what the release log carries. Also a tag or config the registry fails to serve, and indexes
checked up to their limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import dagger
import pytest
from dagger import dag
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pipeline.attest.storage import FALLBACK_TAG_PREFIX
from pipeline.main import Pipeline
from pipeline.oci.client import OCI_INDEX, OCI_MANIFEST, RegistryClient, RegistryError
from pipeline.oci.documents import Manifest
from pipeline.publishing import references_of
from pipeline.rules.catalogue import find_image
from pipeline.rules.plan import ImagePlan, ReleasePlan, make_plan
from pipeline.rules.references import repository_path
from pipeline.steps.finishing import FinishedImage, move_floating
from pipeline.steps.verify import (
    ImageReport,
    VerificationError,
    VerifyReport,
    check_platforms,
    verification_plan,
    verify_image,
    verify_release,
)

from tests.support.oci_images import OCI_CONFIG, build_index, push_image, sha256_digest
from tests.support.registry_server import RegistryServer
from tests.support.standin import CREATED, REVISION, StandInEngine, signing_flags

pytestmark = pytest.mark.anyio

TAG = "v2.4.0"
VERSION_LABEL = "org.opencontainers.image.version"
DESCRIPTION = "org.opencontainers.image.description"
PASSWORD_VARIABLE = "REGISTRY_PASSWORD"
CLI_TIMEOUT = 60.0
CLOSED_PORT_REGISTRY = "127.0.0.1:1"
TOKEN = "ghp_standInTokenThatMustNeverLeak0123456789"
TOKEN_ID = "secret-release-token"


# --- registry states ------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageState:
    """What one image's repository holds: tags, shape, per-platform labels, index annotations.

    ``elsewhere`` tags are pushed last, at an image that differs from the main one (labelled
    version 2.3.0), as a floating tag left behind by an older release.
    """

    tags: tuple[str, ...]
    platforms: Mapping[str, Mapping[str, str]]
    index: bool
    annotations: Mapping[str, str] = field(default_factory=dict)
    elsewhere: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pushed:
    """Digests of one pushed image: its tags' and, if any, the ``elsewhere`` tags'."""

    digest: str | None
    elsewhere: str | None = None


def published_state(image: ImagePlan) -> ImageState:
    """The state the release pipeline leaves for ``image``: the plan, exactly."""
    return ImageState(
        tags=image.tags,
        platforms={platform: dict(image.labels) for platform in image.platforms},
        index=image.multi_platform,
        annotations=image.index_annotations,
    )


async def push_state(client: RegistryClient, path: str, state: ImageState) -> Pushed:
    """Push ``state`` into repository ``path``; nothing at all when it has no tags."""
    if not state.tags:
        return Pushed(digest=None)
    digest = await push_shape(client, path, state.tags, state)
    if not state.elsewhere:
        return Pushed(digest=digest)
    stale = {
        platform: {**labels, VERSION_LABEL: "2.3.0"} for platform, labels in state.platforms.items()
    }
    other = await push_shape(client, path, state.elsewhere, replace(state, platforms=stale))
    assert other != digest, "the elsewhere image must be a different image"
    return Pushed(digest=digest, elsewhere=other)


async def push_shape(
    client: RegistryClient, path: str, tags: Sequence[str], state: ImageState
) -> str:
    """Push ``state``'s platforms as an index or a single manifest under ``tags``."""
    entries = []
    for platform, labels in state.platforms.items():
        digest, size, _ = await push_image(client, path, platform=platform, labels=labels)
        entries.append((platform, digest, size))
    if state.index:
        raw, media_type = build_index(entries, state.annotations), OCI_INDEX
    else:
        ((_, digest, _),) = entries
        raw, media_type = (await client.get_manifest(path, digest)).raw, OCI_MANIFEST
    digests = {await client.put_manifest(path, tag, raw, media_type) for tag in tags}
    (digest,) = digests
    return digest


async def push_release(
    client: RegistryClient,
    plan: ReleasePlan,
    states: Mapping[str, Callable[[ImagePlan], ImageState]] | None = None,
) -> dict[str, Pushed]:
    """Push every image of ``plan``: as published, unless ``states`` breaks it."""
    pushed = {}
    for image in plan.images:
        state = (states or {}).get(image.name, published_state)(image)
        pushed[image.name] = await push_state(client, repository_path(image.repository), state)
    return pushed


def plan_for(registry: RegistryServer, owner: str, tag: str = TAG, **options: Any) -> ReleasePlan:
    """The plan of a first release of ``tag`` into the test registry under ``owner``."""
    return make_plan(tag, owner=owner, registry=registry.host, **options)


# --- broken states, one change each --------------------------------------------------------


def without_tag(tag: str) -> Callable[[ImagePlan], ImageState]:
    return lambda image: replace(
        published_state(image), tags=tuple(t for t in image.tags if t != tag)
    )


def tag_elsewhere(tag: str) -> Callable[[ImagePlan], ImageState]:
    def state(image: ImagePlan) -> ImageState:
        published = published_state(image)
        tags = tuple(t for t in image.tags if t != tag)
        return replace(published, tags=tags, elsewhere=(tag,))

    return state


def only_platforms(*platforms: str, index: bool) -> Callable[[ImagePlan], ImageState]:
    return lambda image: replace(
        published_state(image),
        platforms={platform: dict(image.labels) for platform in platforms},
        index=index,
    )


def extra_platform(
    platform: str, labels: Mapping[str, str] | None = None
) -> Callable[[ImagePlan], ImageState]:
    def state(image: ImagePlan) -> ImageState:
        published = published_state(image)
        extra = dict(image.labels) if labels is None else dict(labels)
        platforms = {**published.platforms, platform: extra}
        return replace(published, platforms=platforms, index=True)

    return state


def as_index(image: ImagePlan) -> ImageState:
    return replace(published_state(image), index=True)


def label_on(platform: str, key: str, value: str | None) -> Callable[[ImagePlan], ImageState]:
    """``platform``'s config with label ``key`` set to ``value``, or without it (None)."""

    def state(image: ImagePlan) -> ImageState:
        published = published_state(image)
        labels = {k: v for k, v in image.labels.items() if k != key}
        if value is not None:
            labels[key] = value
        return replace(published, platforms={**published.platforms, platform: labels})

    return state


def with_annotations(change: Mapping[str, str | None]) -> Callable[[ImagePlan], ImageState]:
    """The index annotations with ``change`` applied (None drops a key; {} drops them all)."""

    def state(image: ImagePlan) -> ImageState:
        published = published_state(image)
        if not change:
            return replace(published, annotations={})
        merged = {**published.annotations, **change}
        return replace(published, annotations={k: v for k, v in merged.items() if v is not None})

    return state


def nothing(image: ImagePlan) -> ImageState:
    return replace(published_state(image), tags=())


def with_extra_labels(image: ImagePlan) -> ImageState:
    extra = {**image.labels, "com.example.built-by": "someone", "maintainer": "x"}
    return replace(published_state(image), platforms=dict.fromkeys(image.platforms, extra))


# (image broken, how, expected texts): {digest} is the version tag's digest, {elsewhere} the
# digest a stray tag points at, {description} the planned description.
BROKEN: list[Any] = [
    pytest.param("api", without_tag("2.4"), ["tag 2.4 is missing"], id="api-minor-tag-missing"),
    pytest.param(
        "worker", without_tag("latest"), ["tag latest is missing"], id="worker-latest-missing"
    ),
    pytest.param("worker", nothing, ["tag 2.4.0 is missing"], id="worker-not-pushed"),
    pytest.param(
        "worker",
        tag_elsewhere("latest"),
        ["tag latest is at {elsewhere}, not {digest} (the version tag's digest)"],
        id="worker-latest-at-another-digest",
    ),
    pytest.param(
        "api",
        tag_elsewhere("2.4"),
        ["tag 2.4 is at {elsewhere}, not {digest} (the version tag's digest)"],
        id="api-minor-tag-at-another-digest",
    ),
    pytest.param(
        "api",
        only_platforms("linux/amd64", index=True),
        ["platform linux/arm64 is missing"],
        id="api-index-without-arm64",
    ),
    pytest.param(
        "api",
        extra_platform("unknown/unknown", {}),
        ["platform unknown/unknown is not in the catalogue"],
        id="api-index-with-attestation-entry",
    ),
    pytest.param(
        "api",
        extra_platform("linux/386"),
        ["platform linux/386 is not in the catalogue"],
        id="api-index-with-extra-platform",
    ),
    pytest.param(
        "worker",
        extra_platform("linux/s390x"),
        ["platform linux/s390x is not in the catalogue"],
        id="worker-index-with-extra-platform",
    ),
    pytest.param(
        "api",
        only_platforms("linux/amd64", index=False),
        ["expected an index of 2 platforms, found a single manifest"],
        id="api-single-manifest",
    ),
    pytest.param(
        "worker",
        only_platforms("linux/arm64", index=False),
        ["expected an index of 2 platforms, found a single manifest"],
        id="worker-single-manifest",
    ),
    pytest.param(
        "api",
        label_on("linux/arm64", VERSION_LABEL, None),
        [f"linux/arm64: label {VERSION_LABEL} is missing"],
        id="api-arm64-config-lacks-version-label",
    ),
    pytest.param(
        "api",
        label_on("linux/amd64", VERSION_LABEL, "2.3.0"),
        [f"linux/amd64: label {VERSION_LABEL} is '2.3.0', expected '2.4.0'"],
        id="api-amd64-config-has-old-version",
    ),
    pytest.param(
        "worker",
        label_on("linux/amd64", "org.opencontainers.image.source", None),
        ["linux/amd64: label org.opencontainers.image.source is missing"],
        id="worker-config-lacks-source-label",
    ),
    pytest.param(
        "api",
        with_annotations({}),
        [f"index annotation {DESCRIPTION} is missing"],
        id="api-index-without-annotations",
    ),
    pytest.param(
        "api",
        with_annotations({DESCRIPTION: "x"}),
        [f"index annotation {DESCRIPTION} is 'x', expected '{{description}}'"],
        id="api-index-with-wrong-description",
    ),
    pytest.param(
        "api",
        with_annotations({"org.opencontainers.image.licenses": None}),
        ["index annotation org.opencontainers.image.licenses is missing"],
        id="api-index-lacks-licenses",
    ),
]


def image_report(report: VerifyReport, name: str) -> ImageReport:
    """The report of image ``name``; exactly one."""
    (found,) = [image for image in report.images if image.name == name]
    return found


# --- verify_release ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "states"),
    [
        pytest.param({}, {}, id="as-published"),
        pytest.param({"revision": REVISION, "created": CREATED}, {}, id="with-commit-labels"),
        pytest.param(
            {}, {"api": with_extra_labels, "worker": with_extra_labels}, id="extra-labels-allowed"
        ),
    ],
)
async def test_registry_as_planned_verifies(
    registry: RegistryServer,
    owner: str,
    options: dict[str, str],
    states: dict[str, Callable[[ImagePlan], ImageState]],
) -> None:
    plan = plan_for(registry, owner, **options)
    async with RegistryClient(registry.host) as client:
        pushed = await push_release(client, plan, states)
        report = await verify_release(client, plan)

    assert report.ok, report.render()
    assert report.mismatches == []
    assert [image.name for image in report.images] == ["api", "worker"]
    for image in plan.images:
        found = image_report(report, image.name)
        assert found.ok
        assert found.mismatches == ()
        assert found.repository == image.repository
        assert found.digest == pushed[image.name].digest
        assert sorted(found.platforms) == sorted(image.platforms)
    rendered = report.render()
    assert "MISMATCH" not in rendered
    assert rendered.count("OK") >= len(plan.images), rendered


@pytest.mark.parametrize(("broken", "state", "expected"), BROKEN)
async def test_each_broken_state_is_found_and_named(
    registry: RegistryServer,
    owner: str,
    broken: str,
    state: Callable[[ImagePlan], ImageState],
    expected: list[str],
) -> None:
    plan = plan_for(registry, owner)
    async with RegistryClient(registry.host) as client:
        pushed = await push_release(client, plan, {broken: state})
        report = await verify_release(client, plan)

    values = {
        "digest": pushed[broken].digest,
        "elsewhere": pushed[broken].elsewhere,
        "description": plan.image(broken).labels[DESCRIPTION],
    }
    texts = [text.format(**values) for text in expected]
    assert not report.ok
    found = image_report(report, broken)
    assert not found.ok
    for text in texts:
        assert text in found.mismatches, (text, found.mismatches)
        assert f"{broken}: {text}" in report.mismatches, (text, report.mismatches)
        assert f"\n  - {text}\n" in report.render()
    assert "MISMATCH" in report.render()
    # Only the broken image is reported; the other one was published as planned.
    assert all(mismatch.startswith(f"{broken}: ") for mismatch in report.mismatches)
    for other in plan.images:
        if other.name != broken:
            assert image_report(report, other.name).ok, report.render()


async def test_a_missing_version_tag_leaves_no_digest(registry: RegistryServer, owner: str) -> None:
    plan = plan_for(registry, owner)
    async with RegistryClient(registry.host) as client:
        await push_release(client, plan, {"worker": nothing})
        report = await verify_release(client, plan)

    assert image_report(report, "worker").digest is None
    assert image_report(report, "api").digest is not None


@pytest.mark.parametrize(
    ("expected_for", "matching"),
    [
        pytest.param(("api", "worker"), True, id="both-as-pushed"),
        pytest.param(("worker",), True, id="worker-only-as-pushed"),
        pytest.param(("api",), False, id="api-other-digest"),
        pytest.param(("worker",), False, id="worker-other-digest"),
    ],
)
async def test_expected_digests_are_checked(
    registry: RegistryServer, owner: str, expected_for: tuple[str, ...], matching: bool
) -> None:
    plan = plan_for(registry, owner)
    async with RegistryClient(registry.host) as client:
        pushed = await push_release(client, plan)
        # A different, real image in the same repository: what a racing publish might leave.
        other = {
            image.name: await push_state(
                client,
                repository_path(image.repository),
                replace(with_extra_labels(image), tags=("other",)),
            )
            for image in plan.images
        }
        expected = {
            name: (pushed[name].digest if matching else other[name].digest) or ""
            for name in expected_for
        }
        report = await verify_release(client, plan, expected_digests=expected)

    if matching:
        assert report.ok, report.render()
        return
    assert not report.ok
    (name,) = expected_for
    text = f"tag 2.4.0 is at {pushed[name].digest}, but publish pushed {expected[name]}"
    assert any(text in mismatch for mismatch in image_report(report, name).mismatches), (
        report.mismatches
    )
    assert all(mismatch.startswith(f"{name}: ") for mismatch in report.mismatches)


async def test_extra_labels_do_not_hide_a_missing_one(registry: RegistryServer, owner: str) -> None:
    def state(image: ImagePlan) -> ImageState:
        platforms = dict(with_extra_labels(image).platforms)
        labels = dict(platforms["linux/amd64"])
        del labels[VERSION_LABEL]
        return replace(published_state(image), platforms=platforms | {"linux/amd64": labels})

    plan = plan_for(registry, owner)
    async with RegistryClient(registry.host) as client:
        await push_release(client, plan, {"worker": state})
        report = await verify_release(client, plan)

    assert report.mismatches == [f"worker: linux/amd64: label {VERSION_LABEL} is missing"]


# --- verification_plan ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "tags"),
    [
        pytest.param("v2.4.0", ("2.4.0", "2.4"), id="older-release-keeps-no-latest"),
        pytest.param("v2.5.0", ("2.5.0", "2.5", "latest"), id="newest-release-has-latest"),
        pytest.param("2.5.0", ("2.5.0", "2.5", "latest"), id="without-v"),
    ],
)
async def test_verification_plan_follows_the_registry(
    registry: RegistryServer, owner: str, tag: str, tags: tuple[str, ...]
) -> None:
    async with RegistryClient(registry.host) as client:
        await push_release(client, plan_for(registry, owner, "v2.4.0"))
        newer = make_plan(
            "v2.5.0",
            owner=owner,
            registry=registry.host,
            existing_tags={"api": ["2.4.0", "2.4", "latest"], "worker": ["2.4.0"]},
        )
        await push_release(client, newer)

        plan = await verification_plan(client, tag, owner=owner, registry=registry.host)
        report = await verify_release(client, plan)

    assert [image.name for image in plan.images] == ["api", "worker"]
    for image in plan.images:
        assert image.tags == tags, image.name
        assert image.repository == f"{registry.host}/{owner}/qm-nmr-calc-{image.name}"
    assert report.ok, report.render()


async def test_a_floating_tag_a_higher_release_took_is_not_a_mismatch(
    registry: RegistryServer, owner: str
) -> None:
    """A release verified after a higher one moved latest: latest is the higher one's now."""
    async with RegistryClient(registry.host) as client:
        await push_release(client, plan_for(registry, owner, "v2.4.0"))
        newer = plan_for(registry, owner, "v2.5.0", existing_tags={"api": ["2.4.0"]})
        await push_release(client, newer)
        report = await verify_release(client, plan_for(registry, owner, "v2.4.0"))

    assert report.ok, report.mismatches


async def test_a_line_tag_a_higher_patch_took_is_not_a_mismatch(
    registry: RegistryServer, owner: str
) -> None:
    """2.4.1 moved 2.4 (and latest) after 2.4.0 was published: 2.4.0 still verifies."""
    async with RegistryClient(registry.host) as client:
        await push_release(client, plan_for(registry, owner, "v2.4.0"))
        patch = plan_for(registry, owner, "v2.4.1", existing_tags={"api": ["2.4.0"]})
        await push_release(client, patch)
        report = await verify_release(client, plan_for(registry, owner, "v2.4.0"))

    assert report.ok, report.mismatches


async def test_a_line_tag_at_a_release_of_another_line_is_a_mismatch(
    registry: RegistryServer, owner: str
) -> None:
    """2.4 holding 2.5.0 is wrong however high 2.5.0 is: it is not in the 2.4 line."""
    async with RegistryClient(registry.host) as client:
        pushed = await push_release(client, plan_for(registry, owner, "v2.4.0"))
        newer = plan_for(registry, owner, "v2.5.0", existing_tags={"worker": ["2.4.0"]})
        pushed_newer = await push_release(client, newer)
        path = repository_path(newer.image("worker").repository)
        await retag(client, path, "2.4", "2.5.0")
        report = await verify_release(client, plan_for(registry, owner, "v2.4.0"))

    assert report.mismatches == [
        f"worker: tag 2.4 is at {pushed_newer['worker'].digest}, "
        f"not {pushed['worker'].digest} (the version tag's digest)"
    ]


async def test_a_floating_tag_no_higher_release_holds_is_a_mismatch_beside_one(
    registry: RegistryServer, owner: str
) -> None:
    """A higher release exists, but latest holds neither it nor this one: still a mismatch."""
    async with RegistryClient(registry.host) as client:
        pushed = await push_release(client, plan_for(registry, owner, "v2.4.0"))
        newer = plan_for(registry, owner, "v2.5.0", existing_tags={"worker": ["2.4.0"]})
        await push_release(client, newer)
        below = {"api": ["2.4.0"], "worker": ["2.4.0"]}  # 2.3.9 moves no latest itself
        older = await push_release(client, plan_for(registry, owner, "v2.3.9", existing_tags=below))
        path = repository_path(newer.image("worker").repository)
        await retag(client, path, "latest", "2.3.9")
        report = await verify_release(client, plan_for(registry, owner, "v2.4.0"))

    assert report.mismatches == [
        f"worker: tag latest is at {older['worker'].digest}, "
        f"not {pushed['worker'].digest} (the version tag's digest)"
    ]


async def retag(client: RegistryClient, path: str, tag: str, source: str) -> str:
    """Write what tag ``source`` serves under ``tag`` too; its digest."""
    manifest = await client.get_manifest(path, source)
    return await client.put_manifest(path, tag, manifest.raw, manifest.media_type)


async def test_a_floating_tag_a_lower_release_took_is_a_mismatch(
    registry: RegistryServer, owner: str
) -> None:
    """latest moved backwards (2.3.9 pushed it after 2.4.0): that is never legitimate."""
    async with RegistryClient(registry.host) as client:
        pushed_new = await push_release(client, plan_for(registry, owner, "v2.4.0"))
        older = plan_for(registry, owner, "v2.3.9")  # planned as if nothing were published
        pushed_old = await push_release(client, older)
        report = await verify_release(client, plan_for(registry, owner, "v2.4.0"))

    for name in ("api", "worker"):
        text = (
            f"tag latest is at {pushed_old[name].digest}, not {pushed_new[name].digest} "
            "(the version tag's digest)"
        )
        assert f"{name}: {text}" in report.mismatches, report.mismatches


@pytest.mark.parametrize(
    ("revision", "created", "expected"),
    [
        pytest.param(None, None, [], id="no-commit-facts"),
        pytest.param(
            REVISION,
            None,
            ["linux/amd64: label org.opencontainers.image.revision is missing"],
            id="revision-not-on-images",
        ),
        pytest.param(
            None,
            CREATED,
            ["linux/amd64: label org.opencontainers.image.created is missing"],
            id="created-not-on-images",
        ),
    ],
)
async def test_verification_plan_carries_commit_labels(
    registry: RegistryServer,
    owner: str,
    revision: str | None,
    created: str | None,
    expected: list[str],
) -> None:
    async with RegistryClient(registry.host) as client:
        await push_release(client, plan_for(registry, owner))  # published without commit facts
        plan = await verification_plan(
            client, TAG, owner=owner, registry=registry.host, revision=revision, created=created
        )
        report = await verify_release(client, plan)

    if revision is not None:
        assert plan.image("api").labels["org.opencontainers.image.revision"] == REVISION
    if created is not None:
        assert plan.image("api").labels["org.opencontainers.image.created"] == (
            "2026-11-20T14:03:00Z"
        )
    assert report.ok == (not expected)
    for text in expected:
        for name in ("api", "worker"):
            assert any(text in m for m in image_report(report, name).mismatches), report.mismatches


# --- python -m pipeline verify ----------------------------------------------------------------


async def run_cli(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS`` as a user runs it; the password only from the environment."""
    env = {key: value for key, value in os.environ.items() if key != PASSWORD_VARIABLE}
    if password is not None:
        env[PASSWORD_VARIABLE] = password
    with anyio.fail_after(CLI_TIMEOUT):
        result = await anyio.run_process(
            [sys.executable, "-m", "pipeline", *args], check=False, env=env
        )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def target(registry: str, owner: str) -> list[str]:
    return ["--registry", registry, "--owner", owner]


async def test_cli_exits_0_on_a_matching_release(registry: RegistryServer, owner: str) -> None:
    async with RegistryClient(registry.host) as client:
        await push_release(client, plan_for(registry, owner))

    result = await run_cli("verify", TAG, *target(registry.host, owner))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert "MISMATCH" not in result.stdout
    assert f"{registry.host}/{owner}/qm-nmr-calc-api" in result.stdout


async def test_cli_verifies_an_older_release_against_the_registrys_tags(
    registry: RegistryServer, owner: str
) -> None:
    async with RegistryClient(registry.host) as client:
        await push_release(client, plan_for(registry, owner, "v2.5.0"))
        older = plan_for(registry, owner, "v2.4.0")
        await push_release(client, older, dict.fromkeys(("api", "worker"), without_tag("latest")))

    result = await run_cli("verify", "v2.4.0", *target(registry.host, owner))

    assert result.returncode == 0, result.stdout + result.stderr


async def test_cli_exits_1_listing_the_mismatches(registry: RegistryServer, owner: str) -> None:
    async with RegistryClient(registry.host) as client:
        await push_release(
            client,
            plan_for(registry, owner),
            {"api": only_platforms("linux/amd64", index=True), "worker": without_tag("2.4")},
        )

    result = await run_cli("verify", TAG, *target(registry.host, owner))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "MISMATCH" in result.stdout
    assert "platform linux/arm64 is missing" in result.stdout
    assert "tag 2.4 is missing" in result.stdout
    assert "Traceback" not in result.stderr


async def test_cli_checks_the_commit_labels_it_is_given(
    registry: RegistryServer, owner: str
) -> None:
    async with RegistryClient(registry.host) as client:
        await push_release(client, plan_for(registry, owner))  # without revision and created

    result = await run_cli(
        "verify", TAG, *target(registry.host, owner), "--revision", REVISION, "--created", CREATED
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "label org.opencontainers.image.revision is missing" in result.stdout
    assert "label org.opencontainers.image.created is missing" in result.stdout


async def test_cli_reads_the_password_from_the_environment(
    auth_registry: RegistryServer, owner: str
) -> None:
    assert auth_registry.username is not None
    assert auth_registry.password is not None
    async with RegistryClient(
        auth_registry.host, username=auth_registry.username, password=auth_registry.password
    ) as client:
        await push_release(client, plan_for(auth_registry, owner))

    result = await run_cli(
        "verify",
        TAG,
        *target(auth_registry.host, owner),
        "--username",
        auth_registry.username,
        password=auth_registry.password,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert auth_registry.password not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("registry_of", "username"),
    [
        pytest.param(lambda _r, _a: CLOSED_PORT_REGISTRY, None, id="closed-port"),
        pytest.param(lambda _r, auth: auth.host, None, id="credentials-wanted"),
    ],
)
async def test_cli_exits_1_when_the_registry_cannot_be_read(
    registry: RegistryServer,
    auth_registry: RegistryServer,
    owner: str,
    registry_of: Callable[[RegistryServer, RegistryServer], str],
    username: str | None,
) -> None:
    host = registry_of(registry, auth_registry)

    result = await run_cli("verify", TAG, *target(host, owner))

    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if "cannot verify: " in line]
    # One line per problem: each image's repository could not be read.
    assert len(lines) == 2, output
    assert all(host in line for line in lines), output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["verify", "v2.4"], id="not-semver"),
        pytest.param(["verify", "v1.2.3+b5"], id="build-metadata"),
        pytest.param(["verify", "release-1"], id="not-a-version"),
        pytest.param(["verify"], id="no-tag"),
        pytest.param(["verify", TAG, "--registry", "https://ghcr.io"], id="registry-with-scheme"),
        pytest.param(["verify", TAG, "--owner", "no/slash"], id="bad-owner"),
        pytest.param(["verify", TAG, "--revision", "abc123"], id="short-revision"),
        pytest.param(["verify", TAG, "--created", "yesterday"], id="bad-created"),
        pytest.param(["verify", TAG, "--password", "hunter2"], id="password-on-command-line"),
        pytest.param(["verify", TAG, "--overwrite"], id="unknown-option"),
    ],
)
async def test_cli_bad_input_exits_2_with_one_line(
    registry: RegistryServer, args: list[str]
) -> None:
    # A real registry is reachable, so an exit 2 cannot be a connection failure in disguise.
    result = await run_cli(*args, *([] if "--registry" in args else ["--registry", registry.host]))

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("python -m pipeline: error:")
    assert "hunter2" not in result.stderr


# --- publish ends with a verification (stand-in engine, real registry) -------------------------


@pytest.fixture
def engine(registry: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> StandInEngine:
    """A stand-in engine that pushes into the test registry."""
    standin = StandInEngine(registry.host, secrets={TOKEN_ID: TOKEN})
    standin.install(monkeypatch)
    return standin


async def publish_output(registry: RegistryServer, owner: str, tag: str) -> str:
    """What ``dagger call publish --tag TAG --username bot --password env:...`` prints."""
    pipeline = Pipeline(
        source=dag.directory(), registry=registry.host, owner=owner, build_files=dag.directory()
    )
    secret = dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))
    return await pipeline.publish(tag, username="bot", password=secret, **signing_flags())


async def publish(registry: RegistryServer, owner: str, tag: str) -> list[str]:
    """``dagger call publish``: the references it prints, one per tag."""
    return references_of(await publish_output(registry, owner, tag))


async def test_what_publish_pushed_verifies(
    registry: RegistryServer,
    owner: str,
    engine: StandInEngine,
    spans: InMemorySpanExporter,
) -> None:
    output = await publish_output(registry, owner, TAG)
    references = references_of(output)

    async with RegistryClient(registry.host) as client:
        plan = await verification_plan(
            client, TAG, owner=owner, registry=registry.host, revision=REVISION, created=CREATED
        )
        digests = {
            image.name: (
                await client.get_manifest(repository_path(image.repository), "2.4.0")
            ).digest
            for image in plan.images
        }
        report = await verify_release(client, plan, expected_digests=digests)
        first_release = await verify_release(
            client,
            make_plan(TAG, owner=owner, registry=registry.host, revision=REVISION, created=CREATED),
        )

    assert report.ok, report.render()
    assert first_release.ok, first_release.render()
    assert [image.tags for image in plan.images] == [("2.4.0", "2.4", "latest")] * 2
    assert len(references) == 6
    assert [span.name for span in spans.get_finished_spans()].count(f"verify {TAG}") == 1
    report_lines = output.split("\n\nverification:\n", 1)[1].splitlines()
    for name in ("api", "worker"):
        assert any(line.startswith(f"{name}: OK") for line in report_lines), report_lines
    assert not any("MISMATCH" in line for line in report_lines), report_lines


async def test_publish_fails_when_the_floating_tags_did_not_move(
    registry: RegistryServer,
    owner: str,
    engine: StandInEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def finish_version_tag_only(
        client: RegistryClient, image: ImagePlan, final: Manifest
    ) -> FinishedImage:
        """``move_floating`` that forgets to move the floating tags."""
        only = replace(image, decision=replace(image.decision, floating=()))
        return await move_floating(client, only, final)

    monkeypatch.setattr("pipeline.publishing.move_floating", finish_version_tag_only)

    with pytest.raises(VerificationError, match=r"tag 2\.4 is missing") as failure:
        await publish(registry, owner, TAG)

    message = str(failure.value)
    assert "tag latest is missing" in message
    assert "api" in message
    assert "worker" in message
    async with RegistryClient(registry.host) as client:
        tags = await client.list_tags(f"{owner}/qm-nmr-calc-api")
    release_tags = [tag for tag in tags if not tag.startswith(FALLBACK_TAG_PREFIX)]
    assert release_tags == ["2.4.0"]  # beside the attestations of its digests


DIGEST = "sha256:" + "ab" * 32


def test_a_report_renders_each_image_its_platforms_and_mismatches() -> None:
    report = VerifyReport(
        images=(
            ImageReport(
                "api",
                "ghcr.io/o/qm-nmr-calc-api",
                DIGEST,
                ("linux/amd64", "linux/arm64"),
                (),
            ),
            ImageReport(
                "worker", "ghcr.io/o/qm-nmr-calc-worker", None, (), ("tag 2.4.0 is missing",)
            ),
        )
    )

    assert report.render() == (
        f"api: OK ghcr.io/o/qm-nmr-calc-api@{DIGEST}\n"
        "  platforms linux/amd64, linux/arm64\n"
        "worker: MISMATCH ghcr.io/o/qm-nmr-calc-worker@-\n"
        "  platforms -\n"
        "  - tag 2.4.0 is missing\n"
    )
    assert report.mismatches == ["worker: tag 2.4.0 is missing"]
    assert not report.ok


class FailingTagClient(RegistryClient):
    """The real client, but the registry fails every read of tag ``failing``."""

    failure = RegistryError("GET manifest x: 500 internal server error", status=500)

    def __init__(self, registry: str, failing: str) -> None:
        super().__init__(registry)
        self.failing = failing

    async def get_manifest_or_none(self, repository: str, reference: str) -> Manifest | None:
        if reference == self.failing:
            raise self.failure
        return await super().get_manifest_or_none(repository, reference)


async def test_a_tag_that_cannot_be_read_is_named_with_why_not_as_missing(
    registry: RegistryServer, owner: str
) -> None:
    plan = plan_for(registry, owner)
    async with FailingTagClient(registry.host, "2.4") as client:
        await push_release(client, plan)
        report = await verify_image(client, plan.image("worker"))

    assert report.mismatches == (f"tag 2.4 cannot be read: {FailingTagClient.failure}",)
    assert report.digest is not None  # the version tag was read: the rest was checked


async def stage_line_and_latest(
    client: RegistryClient, registry: RegistryServer, owner: str
) -> tuple[str, str]:
    """2.4.0 published; 2.4.1 then took 2.4; the worker's latest ends at 2.3.9.

    The digests of the worker's latest (2.3.9) and of its version tag 2.4.0.
    """
    await push_release(client, plan_for(registry, owner, "v2.4.0"))
    published = {"api": ["2.4.0"], "worker": ["2.4.0"]}
    await push_release(client, plan_for(registry, owner, "v2.4.1", existing_tags=published))
    older = {"api": ["2.4.1"], "worker": ["2.4.1"]}  # 2.3.9 moves no latest itself
    await push_release(client, plan_for(registry, owner, "v2.3.9", existing_tags=older))
    path = repository_path(plan_for(registry, owner).image("worker").repository)
    stale = await retag(client, path, "latest", "2.3.9")
    return stale, (await client.get_manifest(path, "2.4.0")).digest


async def test_a_tag_a_higher_release_holds_does_not_end_the_check_of_the_next(
    registry: RegistryServer, owner: str
) -> None:
    plan = plan_for(registry, owner)
    async with RegistryClient(registry.host) as client:
        stale, version = await stage_line_and_latest(client, registry, owner)
        report = await verify_image(client, plan.image("worker"))

    assert report.mismatches == (
        f"tag latest is at {stale}, not {version} (the version tag's digest)",
    )


async def test_a_higher_release_that_cannot_be_read_is_named_and_the_next_tag_still_checked(
    registry: RegistryServer, owner: str
) -> None:
    plan = plan_for(registry, owner)
    async with FailingTagClient(registry.host, "2.4.1") as client:
        stale, version = await stage_line_and_latest(client, registry, owner)
        report = await verify_image(client, plan.image("worker"))

    assert report.mismatches == (
        f"tag 2.4: cannot tell whether a higher release holds it: {FailingTagClient.failure}",
        f"tag latest: cannot tell whether a higher release holds it: {FailingTagClient.failure}",
    )
    assert stale != version  # latest is wrong too, but 2.4.1 might own it: not said


async def test_a_foreign_platform_listed_first_does_not_end_the_check_of_the_rest(
    registry: RegistryServer, owner: str
) -> None:
    def foreign_first(image: ImagePlan) -> ImageState:
        published = published_state(image)
        platforms = {"linux/s390x": dict(image.labels), **published.platforms}
        arm64 = {**image.labels, VERSION_LABEL: "2.3.0"}
        return replace(published, platforms={**platforms, "linux/arm64": arm64})

    plan = plan_for(registry, owner)
    async with RegistryClient(registry.host) as client:
        await push_release(client, plan, {"api": foreign_first})
        report = await verify_image(client, plan.image("api"))

    assert report.platforms == ("linux/s390x", "linux/amd64", "linux/arm64")
    assert report.mismatches == (
        f"linux/arm64: label {VERSION_LABEL} is '2.3.0', expected '2.4.0'",
        "platform linux/s390x is not in the catalogue",
    )


# --- check_platforms on indexes made by hand --------------------------------------------------


def index_of(entries: list[tuple[str, str, int]], image: ImagePlan) -> Manifest:
    """An index of ``entries`` with the release's annotations, as the registry would serve it."""
    raw = build_index(entries, image.index_annotations)
    return Manifest(digest=sha256_digest(raw), media_type=OCI_INDEX, raw=raw)


async def pushed_platforms(
    client: RegistryClient, path: str, image: ImagePlan
) -> list[tuple[str, str, int]]:
    """Each of ``image``'s platforms pushed by digest, labelled as planned."""
    entries = []
    for platform in image.platforms:
        digest, size, _ = await push_image(client, path, platform=platform, labels=image.labels)
        entries.append((platform, digest, size))
    return entries


@pytest.mark.parametrize(("extra", "truncated"), [(62, False), (63, True)])
async def test_an_index_is_checked_up_to_its_first_64_entries(
    registry: RegistryServer, owner: str, extra: int, truncated: bool
) -> None:
    api = plan_for(registry, owner).image("api")
    path = repository_path(api.repository)
    async with RegistryClient(registry.host) as client:
        entries = await pushed_platforms(client, path, api)
        foreign = [(f"linux/x{n}", "sha256:" + f"{n:064x}", 1) for n in range(extra)]
        served, mismatches = await check_platforms(
            client, path, api, index_of(entries + foreign, api)
        )

    checked = foreign[:62]
    assert served == tuple(platform for platform, _, _ in entries + checked)
    expected = [f"platform {platform} is not in the catalogue" for platform, _, _ in checked]
    if truncated:
        expected.insert(0, "the index has 65 entries; only the first 64 are checked")
    assert mismatches == expected


async def test_an_entry_that_is_an_index_is_named_and_the_next_still_checked(
    registry: RegistryServer, owner: str
) -> None:
    api = plan_for(registry, owner).image("api")
    path = repository_path(api.repository)
    async with RegistryClient(registry.host) as client:
        amd64, _ = await pushed_platforms(client, path, api)
        nested = index_of([amd64], api)
        await client.put_manifest(path, nested.digest, nested.raw, OCI_INDEX)
        stale = {**api.labels, VERSION_LABEL: "2.3.0"}
        old_arm64, size, _ = await push_image(client, path, platform="linux/arm64", labels=stale)
        top = index_of(
            [("linux/amd64", nested.digest, len(nested.raw)), ("linux/arm64", old_arm64, size)], api
        )
        served, mismatches = await check_platforms(client, path, api, top)

    assert served == ("linux/amd64", "linux/arm64")
    assert mismatches == [
        f"linux/amd64: cannot read its config: {nested.digest} is an index, not an image manifest",
        f"linux/arm64: label {VERSION_LABEL} is '2.3.0', expected '2.4.0'",
    ]


async def test_a_single_image_whose_config_cannot_be_read_is_named_the_image(
    registry: RegistryServer, owner: str
) -> None:
    # a one-platform image (the catalogue has none now; the single-manifest path stays)
    single = replace(find_image("worker"), platforms=("linux/amd64",))
    worker = make_plan("v2.4.0", owner=owner, registry=registry.host, catalogue=[single]).image(
        "worker"
    )
    path = repository_path(worker.repository)
    missing = "sha256:" + "0" * 64
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}
    document["config"] = {"mediaType": OCI_CONFIG, "digest": missing, "size": 2}
    raw = json.dumps(document).encode()
    top = Manifest(digest=sha256_digest(raw), media_type=OCI_MANIFEST, raw=raw)
    async with RegistryClient(registry.host) as client:
        served, mismatches = await check_platforms(client, path, worker, top)

    assert served == ("",)
    (unreadable, *rest) = mismatches
    assert unreadable.startswith(f"the image: cannot read its config: registry {registry.host}")
    assert missing in unreadable
    assert rest == ["platform linux/amd64 is missing"]  # and no nameless platform named


async def test_a_platform_listed_twice_is_named_once(registry: RegistryServer, owner: str) -> None:
    api = plan_for(registry, owner).image("api")
    path = repository_path(api.repository)
    async with RegistryClient(registry.host) as client:
        (amd64, arm64) = await pushed_platforms(client, path, api)
        served, mismatches = await check_platforms(
            client, path, api, index_of([amd64, arm64, amd64], api)
        )

    assert served == ("linux/amd64", "linux/arm64", "linux/amd64")
    assert mismatches == ["platform linux/amd64 appears more than once"]

"""The verification report word for word, and a tag the registry fails to serve.

``VerifyReport.render`` is what ``verify`` prints and what the release log carries; the CLI
tests read it through a subprocess, so here it is checked in-process, line by line.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from oci_images import OCI_CONFIG, build_index, push_image, sha256_digest
from pipeline.oci.client import OCI_INDEX, OCI_MANIFEST, RegistryClient, RegistryError
from pipeline.oci.documents import Manifest
from pipeline.rules.catalogue import find_image
from pipeline.rules.plan import ImagePlan, make_plan
from pipeline.rules.references import repository_path
from pipeline.steps.verify import ImageReport, VerifyReport, check_platforms, verify_image
from registry_server import RegistryServer
from test_verify import VERSION_LABEL, ImageState, plan_for, published_state, push_release, retag

pytestmark = pytest.mark.anyio

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

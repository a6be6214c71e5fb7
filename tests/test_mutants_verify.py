"""The verification report word for word, and a tag the registry fails to serve.

``VerifyReport.render`` is what ``verify`` prints and what the release log carries; the CLI
tests read it through a subprocess, so here it is checked in-process, line by line.
"""

from __future__ import annotations

import pytest
from pipeline.oci_documents import Manifest
from pipeline.registry import RegistryClient, RegistryError
from pipeline.verify import ImageReport, VerifyReport, verify_image
from registry_server import RegistryServer
from test_verify import plan_for, push_release

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
    """The real client, but the registry fails every read of tag ``2.4``."""

    failure = RegistryError("GET manifest x:2.4: 500 internal server error", status=500)

    async def get_manifest_or_none(self, repository: str, reference: str) -> Manifest | None:
        if reference == "2.4":
            raise self.failure
        return await super().get_manifest_or_none(repository, reference)


async def test_a_tag_that_cannot_be_read_is_named_with_why_not_as_missing(
    registry: RegistryServer, owner: str
) -> None:
    plan = plan_for(registry, owner)
    async with FailingTagClient(registry.host) as client:
        await push_release(client, plan)
        report = await verify_image(client, plan.image("worker"))

    assert report.mismatches == (f"tag 2.4 cannot be read: {FailingTagClient.failure}",)
    assert report.digest is not None  # the version tag was read: the rest was checked

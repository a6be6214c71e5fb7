"""The release plan: JSON shape, repositories, OCI labels and index annotations."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pipeline.rules.catalogue import CATALOGUE, ImageSpec, find_image
from pipeline.rules.labels import INDEX_ANNOTATION_KEYS, MAX_DESCRIPTION
from pipeline.rules.plan import make_plan
from pipeline.rules.versions import ReleaseInputError

SHA = "0123456789abcdef0123456789abcdef01234567"
CREATED = "2026-11-20T15:03:00+01:00"
CREATED_UTC = "2026-11-20T14:03:00Z"
P = "org.opencontainers.image."


def _labels(image: str, version: str, owner: str = "steinbeck", **known: str) -> dict[str, str]:
    """The full label set expected for ``image`` of ``version``."""
    url = f"https://github.com/{owner}/qm-nmr-calc"
    labels = {
        P + "source": url,
        P + "url": url,
        P + "title": f"qm-nmr-calc-{image}",
        P + "description": find_image(image).description,
        P + "licenses": "MIT",
        P + "version": version,
    }
    labels.update({P + key: value for key, value in known.items()})
    return labels


def test_json_shape_exactly() -> None:
    plan = make_plan("v2.4.0")
    expected: dict[str, Any] = {
        "tag": "v2.4.0",
        "version": "2.4.0",
        "prerelease": False,
        "images": [
            {
                "name": "api",
                "repository": "ghcr.io/steinbeck/qm-nmr-calc-api",
                "dockerfile": "Dockerfile.api",
                "platforms": ["linux/amd64", "linux/arm64"],
                "tags": ["2.4.0", "2.4", "latest"],
                "labels": _labels("api", "2.4.0"),
            },
            {
                "name": "worker",
                "repository": "ghcr.io/steinbeck/qm-nmr-calc-worker",
                "dockerfile": "Dockerfile.worker",
                "platforms": ["linux/amd64", "linux/arm64"],
                "tags": ["2.4.0", "2.4", "latest"],
                "labels": _labels("worker", "2.4.0"),
            },
        ],
    }
    document = plan.to_json()
    assert document == expected
    # Key order is part of the shape, and the document survives a JSON round trip unchanged.
    assert list(document) == ["tag", "version", "prerelease", "images"]
    for image in document["images"]:
        assert list(image) == ["name", "repository", "dockerfile", "platforms", "tags", "labels"]
    assert json.loads(json.dumps(document)) == expected


def test_images_follow_the_catalogue() -> None:
    plan = make_plan("v2.4.0")
    assert [image.name for image in plan.images] == ["api", "worker"]
    for image, spec in zip(plan.images, CATALOGUE, strict=True):
        assert image.to_json()["platforms"] == list(spec.platforms)
        assert image.to_json()["dockerfile"] == spec.dockerfile


@pytest.mark.parametrize(
    ("tag", "existing", "version", "prerelease", "tags"),
    [
        pytest.param("v2.4.0", [], "2.4.0", False, ["2.4.0", "2.4", "latest"], id="stable"),
        pytest.param("2.3.7", ["2.4.0", "latest"], "2.3.7", False, ["2.3.7", "2.3"], id="old"),
        pytest.param("v2.5.0-rc.1", ["2.4.0"], "2.5.0-rc.1", True, ["2.5.0-rc.1"], id="rc"),
    ],
)
def test_plan_version_and_tags(
    tag: str, existing: list[str], version: str, prerelease: bool, tags: list[str]
) -> None:
    plan = make_plan(tag, existing_tags={"api": existing, "worker": existing})
    document = plan.to_json()
    assert (document["tag"], document["version"], document["prerelease"]) == (
        tag,
        version,
        prerelease,
    )
    for image in document["images"]:
        assert image["tags"] == tags
        assert image["labels"][P + "version"] == version


def test_existing_tags_are_per_image() -> None:
    plan = make_plan("v2.3.7", existing_tags={"api": ["2.4.0"]})
    assert plan.image("api").tags == ("2.3.7", "2.3")
    assert plan.image("worker").tags == ("2.3.7", "2.3", "latest")


@pytest.mark.parametrize(
    ("owner", "registry", "api"),
    [
        pytest.param("steinbeck", "ghcr.io", "ghcr.io/steinbeck/qm-nmr-calc-api", id="default"),
        pytest.param("Steinbeck", "ghcr.io", "ghcr.io/steinbeck/qm-nmr-calc-api", id="lowercased"),
        pytest.param("NMR-Lab", "GHCR.io", "ghcr.io/nmr-lab/qm-nmr-calc-api", id="both-lower"),
        pytest.param("a-b-c", "127.0.0.1:5000", "127.0.0.1:5000/a-b-c/qm-nmr-calc-api", id="local"),
        pytest.param("x", "[::1]:5000", "[::1]:5000/x/qm-nmr-calc-api", id="ipv6"),
    ],
)
def test_repository_naming(owner: str, registry: str, api: str) -> None:
    plan = make_plan("v2.4.0", owner=owner, registry=registry)
    assert plan.image("api").repository == api
    assert plan.image("worker").repository == api.removesuffix("api") + "worker"
    url = f"https://github.com/{owner.lower()}/qm-nmr-calc"
    for image in plan.images:
        assert image.labels[P + "source"] == url
        assert image.labels[P + "url"] == url
        assert image.reference("2.4.0") == f"{image.repository}:2.4.0"


def test_defaults_are_ghcr_and_steinbeck() -> None:
    assert make_plan("v2.4.0") == make_plan("v2.4.0", owner="steinbeck", registry="ghcr.io")


@pytest.mark.parametrize(
    ("options", "word"),
    [
        pytest.param({"owner": "a/b"}, "owner", id="owner-slash"),
        pytest.param({"owner": "-x"}, "owner", id="owner-leading-dash"),
        pytest.param({"owner": ""}, "owner", id="owner-empty"),
        pytest.param({"owner": "Ste inbeck"}, "owner", id="owner-space"),
        pytest.param({"owner": "x-"}, "owner", id="owner-trailing-dash"),
        pytest.param({"owner": "steinbeck\n"}, "owner", id="owner-newline"),
        pytest.param({"registry": "https://ghcr.io"}, "registry", id="registry-scheme"),
        pytest.param({"registry": "ghcr.io/"}, "registry", id="registry-path"),
        pytest.param({"registry": ""}, "registry", id="registry-empty"),
        pytest.param({"registry": "ghcr.io:abc"}, "registry", id="registry-port"),
        pytest.param({"registry": "ghcr.io\n"}, "registry", id="registry-newline"),
        pytest.param({"revision": "abc123"}, "revision", id="short-sha"),
        pytest.param({"revision": "g" * 40}, "revision", id="not-hex"),
        pytest.param({"revision": SHA + "\n"}, "revision", id="sha-newline"),
        pytest.param({"created": "yesterday"}, "created", id="created-word"),
        pytest.param({"created": "2026-11-20T15:03:00"}, "created", id="created-no-zone"),
        pytest.param({"created": "2026-11-20"}, "created", id="created-date-only"),
        pytest.param({"created": "20261120T150300+0100"}, "created", id="created-basic"),
        pytest.param({"created": "2026-11-20T15:03+01:00"}, "created", id="created-no-seconds"),
        pytest.param({"created": "2026-02-30T15:03:00Z"}, "created", id="created-bad-day"),
        pytest.param({"created": "0001-01-01T00:00:00+01:00"}, "created", id="created-overflow"),
    ],
)
def test_bad_targets_are_refused(options: dict[str, str], word: str) -> None:
    with pytest.raises(ValueError, match=f"^{word} ") as refusal:
        make_plan("v2.4.0", **options)  # type: ignore[arg-type]
    assert "\n" not in str(refusal.value)
    assert "accepted" in str(refusal.value)


def test_bad_tag_is_refused_before_the_rest() -> None:
    with pytest.raises(ReleaseInputError, match="build metadata"):
        make_plan("v1.2.3+b5", owner="a/b", registry="https://ghcr.io")


@pytest.mark.parametrize(
    ("revision", "created", "known"),
    [
        pytest.param(None, None, {}, id="neither"),
        pytest.param(SHA, None, {"revision": SHA}, id="revision"),
        pytest.param(SHA.upper(), None, {"revision": SHA}, id="revision-lowercased"),
        pytest.param(None, CREATED, {"created": CREATED_UTC}, id="created"),
        pytest.param(SHA, CREATED, {"revision": SHA, "created": CREATED_UTC}, id="both"),
    ],
)
def test_labels_exactly(revision: str | None, created: str | None, known: dict[str, str]) -> None:
    plan = make_plan("v2.4.0", owner="Steinbeck", revision=revision, created=created)
    for image in plan.images:
        assert dict(image.labels) == _labels(image.name, "2.4.0", **known)


@pytest.mark.parametrize(
    ("created", "utc"),
    [
        pytest.param("2026-11-20T15:03:00+01:00", "2026-11-20T14:03:00Z", id="plus-one"),
        pytest.param("2026-11-20T14:03:00Z", "2026-11-20T14:03:00Z", id="zulu"),
        pytest.param("2026-11-20T14:03:00z", "2026-11-20T14:03:00Z", id="lower-z"),
        pytest.param("2026-11-20T14:03:00+00:00", "2026-11-20T14:03:00Z", id="zero-offset"),
        pytest.param("2026-11-20T09:33:00-04:30", "2026-11-20T14:03:00Z", id="minus-half"),
        pytest.param("2026-11-21T00:30:00+02:00", "2026-11-20T22:30:00Z", id="day-before"),
        pytest.param("2026-12-31T23:30:00-01:00", "2027-01-01T00:30:00Z", id="year-after"),
        pytest.param("2026-11-20T14:03:00.987+00:00", "2026-11-20T14:03:00Z", id="fraction"),
    ],
)
def test_created_is_normalised_to_utc(created: str, utc: str) -> None:
    for image in make_plan("v2.4.0", created=created).images:
        assert image.labels[P + "created"] == utc


def test_the_same_instant_in_another_zone_gives_the_same_labels() -> None:
    local = make_plan("v2.4.0", owner="steinbeck", revision=SHA, created=CREATED)
    other_zone = make_plan("v2.4.0", owner="steinbeck", revision=SHA, created=CREATED_UTC)

    assert CREATED != CREATED_UTC
    assert other_zone == local


@pytest.mark.parametrize(
    ("length", "accepted"),
    [
        pytest.param(MAX_DESCRIPTION, True, id="512"),
        pytest.param(MAX_DESCRIPTION + 1, False, id="513"),
    ],
)
def test_description_at_most_512(length: int, accepted: bool) -> None:
    spec = ImageSpec(
        name="long",
        dockerfile="Dockerfile.long",
        platforms=("linux/amd64",),
        description="d" * length,
    )
    if accepted:
        plan = make_plan("v2.4.0", catalogue=[spec])
        assert plan.image("long").labels[P + "description"] == "d" * length
    else:
        with pytest.raises(ValueError, match=r"description .* at most 512"):
            make_plan("v2.4.0", catalogue=[spec])


def test_catalogue_descriptions_fit() -> None:
    assert all(0 < len(spec.description) <= MAX_DESCRIPTION for spec in CATALOGUE)


@pytest.mark.parametrize(
    ("revision", "created"),
    [
        pytest.param(None, None, id="unknown"),
        pytest.param(SHA, CREATED, id="known"),
    ],
)
def test_index_annotations_only_for_multi_platform(
    revision: str | None, created: str | None
) -> None:
    single = ImageSpec("worker", "Dockerfile.worker", ("linux/amd64",), "one platform")
    api = make_plan("v2.4.0", revision=revision, created=created).image("api")
    worker = make_plan("v2.4.0", revision=revision, created=created, catalogue=[single]).image(
        "worker"
    )
    assert api.multi_platform
    assert not worker.multi_platform
    assert worker.index_annotations == {}
    expected = {key: api.labels[key] for key in INDEX_ANNOTATION_KEYS if key in api.labels}
    assert api.index_annotations == expected
    assert (P + "revision" in api.index_annotations) == (revision is not None)
    assert (P + "created" in api.index_annotations) == (created is not None)
    assert P + "version" in api.index_annotations


def test_no_label_is_invented() -> None:
    for image in make_plan("v2.4.0").images:
        assert P + "revision" not in image.labels
        assert P + "created" not in image.labels
        assert all(key.startswith(P) for key in image.labels)
        assert all(value and not re.search(r"\s$", value) for value in image.labels.values())

"""The release plan: its JSON shape, images, tags, repositories and labels, what ``make_plan``
does by default, and the table a maintainer reads.

``render_table`` is what ``python -m pipeline plan`` prints; ``tests/test_cli.py`` checks that
output in a subprocess, here the whole text is checked in the test process.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pipeline.rules.catalogue import CATALOGUE, ImageSpec, find_image
from pipeline.rules.plan import PublishedState, make_plan, render_table
from pipeline.rules.versions import ReleaseInputError, holder_of

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


DIGEST = "sha256:" + "cd" * 32
WEB = ImageSpec("web", "Dockerfile.web", ("linux/amd64", "linux/arm64"), "The web front.")
CLI = ImageSpec("cli", "Dockerfile.cli", ("linux/amd64",), "The command line.")
URL = "https://github.com/acme/qm-nmr-calc"


def _table_labels(name: str, description: str, version: str) -> str:
    """The label lines of one image of the table, without revision and commit time."""
    return (
        f"  label       {P}source={URL}\n"
        f"  label       {P}url={URL}\n"
        f"  label       {P}title=qm-nmr-calc-{name}\n"
        f"  label       {P}description={description}\n"
        f"  label       {P}licenses=MIT\n"
        f"  label       {P}version={version}\n"
    )


def test_the_table_of_a_backport_says_which_floating_tags_move_and_why() -> None:
    plan = make_plan(
        "v2.3.7",
        existing_tags={"web": ["2.4.0", "2.3.6"], "cli": ["2.3.6"]},
        owner="acme",
        registry="registry.example:5000",
        catalogue=[WEB, CLI],
    )
    assert render_table(plan) == (
        "Release v2.3.7 -> version 2.3.7 (stable release)\n"
        "\n"
        "web: registry.example:5000/acme/qm-nmr-calc-web\n"
        "  dockerfile  Dockerfile.web\n"
        "  platforms   linux/amd64, linux/arm64\n"
        "  tags        2.3.7, 2.3\n"
        "  2.3         moves: 2.3.7 is the highest stable version in 2.3.x\n"
        "  latest      stays: 2.4.0 is higher than 2.3.7 in all versions\n"
        + _table_labels("web", "The web front.", "2.3.7")
        + "\n"
        "cli: registry.example:5000/acme/qm-nmr-calc-cli\n"
        "  dockerfile  Dockerfile.cli\n"
        "  platforms   linux/amd64\n"
        "  tags        2.3.7, 2.3, latest\n"
        "  2.3         moves: 2.3.7 is the highest stable version in 2.3.x\n"
        "  latest      moves: 2.3.7 is the highest stable version in all versions\n"
        + _table_labels("cli", "The command line.", "2.3.7")
    )


def test_the_table_of_a_prerelease_completing_a_stopped_release() -> None:
    identity = {P + "version": "2.5.0-rc.1", P + "revision": SHA}
    state = PublishedState(("2.5.0-rc.1",), version_digest=DIGEST, version_labels=(identity,))
    plan = make_plan(
        "v2.5.0-rc.1", published={"cli": state}, owner="acme", revision=SHA, catalogue=[CLI]
    )
    reason = "2.5.0-rc.1 is a prerelease; prereleases never move floating tags"
    assert render_table(plan) == (
        "Release v2.5.0-rc.1 -> version 2.5.0-rc.1 (prerelease)\n"
        "\n"
        "cli: ghcr.io/acme/qm-nmr-calc-cli\n"
        "  dockerfile  Dockerfile.cli\n"
        "  platforms   linux/amd64\n"
        "  tags        2.5.0-rc.1\n"
        "  2.5.0-rc.1  cdcdcdcdcdcd already holds this release, version 2.5.0-rc.1 of revision "
        "0123456789ab: kept, and the release completed\n"
        f"  2.5         {reason}\n"
        f"  latest      {reason}\n"
        + _table_labels("cli", "The command line.", "2.5.0-rc.1")
        + f"  label       {P}revision={SHA}\n"
    )


def test_a_published_version_is_refused_unless_overwrite_is_asked() -> None:
    with pytest.raises(ReleaseInputError, match=r"version 2\.4\.0 is already published"):
        make_plan("v2.4.0", existing_tags={"cli": ["2.4.0"]}, catalogue=[CLI])
    plan = make_plan("v2.4.0", existing_tags={"cli": ["2.4.0"]}, overwrite=True, catalogue=[CLI])
    assert plan.image("cli").tags == ("2.4.0", "2.4", "latest")


def test_a_floating_tag_of_unknown_version_stays_unless_taken_over() -> None:
    unknown = holder_of(DIGEST, {}, "latest")
    state = PublishedState(("latest",), holders={"latest": unknown})
    kept = make_plan("v2.4.0", published={"cli": state}, catalogue=[CLI]).image("cli")
    assert kept.tags == ("2.4.0", "2.4")
    assert [tag.reason for tag in kept.floating][1] == (
        "stays: it points at cdcdcdcdcdcd, of unknown version (no version tag shares its digest, "
        "and it has version label 'latest', not a SemVer version); never moved silently: pass "
        "--take-over-floating to move it"
    )
    taken = make_plan(
        "v2.4.0", published={"cli": state}, take_over_floating=True, catalogue=[CLI]
    ).image("cli")
    assert taken.tags == ("2.4.0", "2.4", "latest")
    assert taken.floating[1].reason.startswith("moves: taken over (--take-over-floating) from")


def test_an_unlabelled_holder_is_said_to_have_no_version_label() -> None:
    state = PublishedState(("latest",), holders={"latest": holder_of(DIGEST, {}, None)})
    reason = make_plan("v2.4.0", published={"cli": state}, catalogue=[CLI]).image("cli")
    assert (
        "(no version tag shares its digest, and it has no version label, not a SemVer version)"
        in reason.floating[1].reason
    )


def test_asking_the_plan_for_an_image_it_does_not_have_names_it() -> None:
    with pytest.raises(KeyError, match="'api'"):
        make_plan("v2.4.0", catalogue=[CLI]).image("api")

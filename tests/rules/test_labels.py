"""OCI labels: whether a version tag already holds this release, and what the plan writes.

The plan compares the labels of every platform at the version tag with the labels it would
write: the same version, revision and commit time is a release that stopped half-way and is
completed; anything else is another build, refused with what is there and what was planned.
Then the labels themselves: commit times in UTC (whatever the zone given or the machine's) and
within RFC 3339's ranges, full revisions, descriptions within OCI's limit, index annotations only
for multi-platform images, and no label invented.
"""

from __future__ import annotations

import re
import time

import pytest
from pipeline.rules.catalogue import CATALOGUE, ImageSpec, find_image
from pipeline.rules.labels import (
    INDEX_ANNOTATION_KEYS,
    MAX_DESCRIPTION,
    check_revision,
    normalize_created,
)
from pipeline.rules.plan import PublishedState, make_plan
from pipeline.rules.versions import ReleaseInputError

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"
CREATED = "2026-11-20T14:03:00Z"
DIGEST = "sha256:" + "ab" * 32
P = "org.opencontainers.image."
CREATED_LOCAL = "2026-11-20T15:03:00+01:00"


def _identity(version: str = "2.4.0", revision: str = SHA, **more: str) -> dict[str, str]:
    """The identity labels of an image of ``version`` at ``revision``, built at CREATED."""
    labels = {P + "version": version, P + "revision": revision, P + "created": CREATED}
    labels.update(more)
    return labels


def _plan(*platform_labels: dict[str, str], revision: str | None = SHA) -> str:
    """The version tag's decision for the api of v2.4.0 whose 2.4.0 holds ``platform_labels``."""
    state = PublishedState(("2.4.0",), version_digest=DIGEST, version_labels=platform_labels)
    plan = make_plan(
        "v2.4.0",
        published={"api": state},
        revision=revision,
        created=CREATED if revision is not None else None,
        catalogue=[find_image("api")],
    )
    api = plan.image("api")
    assert api.kept_digest == DIGEST
    assert api.tags == ("2.4.0", "2.4", "latest")
    return api.decision.kept.reason if api.decision.kept is not None else ""


def _refusal(*platform_labels: dict[str, str], revision: str | None = SHA) -> str:
    """The message refusing v2.4.0 when its version tag holds ``platform_labels``."""
    with pytest.raises(ReleaseInputError) as refused:
        _plan(*platform_labels, revision=revision)
    return str(refused.value)


def test_the_same_release_on_every_platform_is_kept_and_said_so() -> None:
    reason = _plan(_identity(), _identity())
    assert reason == (
        "abababababab already holds this release, version 2.4.0 of revision 0123456789ab: "
        "kept, and the release completed"
    )


def test_labels_beyond_the_identity_do_not_matter() -> None:
    assert "already holds this release" in _plan(_identity(**{P + "title": "renamed"}))


def test_another_revision_is_refused_naming_both() -> None:
    assert _refusal(_identity(revision=OTHER_SHA)) == (
        "version 2.4.0 is already published (abababababab holds version 2.4.0, revision "
        f"{OTHER_SHA}, created {CREATED}; this release is version 2.4.0, revision {SHA}, "
        f"created {CREATED}) and published versions are immutable; release a new version, "
        "or pass --overwrite to replace it"
    )


def test_one_platform_of_another_build_is_refused_listing_each_build() -> None:
    message = _refusal(_identity(), _identity(**{P + "created": "2026-11-21T09:00:00Z"}))
    assert (
        f"holds version 2.4.0, revision {SHA}, created {CREATED}; "
        f"version 2.4.0, revision {SHA}, created 2026-11-21T09:00:00Z; this release is"
    ) in message


def test_an_unlabelled_image_is_refused_with_none_for_each_missing_label() -> None:
    message = _refusal({})
    assert "abababababab holds version none, revision none, created none; " in message


def test_no_image_at_all_is_refused_as_no_labelled_image() -> None:
    message = _refusal()
    assert "holds no labelled image; this release is version 2.4.0" in message


def test_without_a_revision_nothing_identifies_the_release() -> None:
    message = _refusal(_identity(), revision=None)
    assert "(abababababab is there, and this release has no revision to compare it with)" in (
        message
    )


@pytest.mark.parametrize(
    ("created", "utc"),
    [
        ("2026-11-20T15:03:00+01:00", "2026-11-20T14:03:00Z"),
        ("2026-11-20t14:03:00z", "2026-11-20T14:03:00Z"),
        ("2026-01-01 00:00:00.5-01:30", "2026-01-01T01:30:00Z"),
        ("2026-12-31T23:59:59+23:59", "2026-12-31T00:00:59Z"),
        ("2026-11-20T14:03:00-00:59", "2026-11-20T15:02:00Z"),
        ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"),
        ("2000-02-29T00:00:00Z", "2000-02-29T00:00:00Z"),
        *(
            (f"2026-{month:02}-{days}T12:00:00Z", f"2026-{month:02}-{days}T12:00:00Z")
            for month, days in enumerate((31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), 1)
        ),
    ],
)
def test_a_commit_time_is_labelled_in_utc(created: str, utc: str) -> None:
    assert normalize_created(created) == utc


def test_a_commit_time_is_utc_whatever_the_machine_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert normalize_created("2026-11-20T15:03:00+01:00") == "2026-11-20T14:03:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    "created",
    [
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-01-00T00:00:00Z",
        *(
            f"2026-{month:02}-{days + 1}T12:00:00Z"
            for month, days in enumerate((31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), 1)
        ),
        "2024-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-11-20T24:00:00Z",
        "2026-11-20T14:60:00Z",
        "2026-11-20T14:03:61Z",
        "2026-11-20T14:03:00+24:00",
        "2026-11-20T14:03:00+01:60",
        "2026-11-20T14:03:00",
    ],
)
def test_a_time_outside_rfc3339_ranges_is_refused(created: str) -> None:
    with pytest.raises(ValueError, match=r"is not an RFC 3339 time with a zone; accepted: e\.g\. "):
        normalize_created(created)


def test_a_leap_second_is_rfc3339_but_said_to_be_beyond_python() -> None:
    with pytest.raises(ValueError, match="cannot hold") as refused:
        normalize_created("2016-12-31T23:59:60Z")
    assert str(refused.value) == (
        "created '2016-12-31T23:59:60Z' is a valid RFC 3339 time, but one this tool cannot hold: "
        "Python's datetime has no leap second (:60) and no year outside 0001-9999 in UTC; "
        "accepted: e.g. 2026-11-20T14:03:00Z or 2026-11-20T15:03:00+01:00 "
        "(`git show -s --format=%cI`)"
    )


def test_a_short_revision_is_refused_saying_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="not a full commit SHA") as refused:
        check_revision("0123456")
    assert str(refused.value) == (
        "revision '0123456' is not a full commit SHA; accepted: 40 hex digits "
        "as `git rev-parse HEAD` prints them"
    )


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
    local = make_plan("v2.4.0", owner="steinbeck", revision=SHA, created=CREATED_LOCAL)
    other_zone = make_plan("v2.4.0", owner="steinbeck", revision=SHA, created=CREATED)

    assert CREATED_LOCAL != CREATED
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
        pytest.param(SHA, CREATED_LOCAL, id="known"),
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

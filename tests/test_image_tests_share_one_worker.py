"""With ``-n``, pytest-xdist sends every image test to one worker (one daemon, one emulation)."""

from __future__ import annotations

import pytest

from tests.support.scheduling import IMAGE_SCOPE, scope_of


@pytest.mark.parametrize(
    "nodeid",
    [
        "tests/images/test_release.py::test_every_variant_is_built_for_real_and_every_tag_published",
        "tests/images/test_images.py::test_api_serves_what_a_user_asks_for[linux/arm64-v2.4.0]",
        "tests/images/test_user_job.py::test_methane_comes_back_with_h_and_c_shifts[v2.8.0]",
    ],
)
def test_every_image_test_is_in_the_one_image_scope(nodeid: str) -> None:
    assert scope_of(nodeid) == IMAGE_SCOPE


@pytest.mark.parametrize(
    "nodeid",
    [
        "tests/dagger/test_publish.py::test_publish_pushes_what_a_user_pulls",
        "tests/steps/test_verify.py::test_x[images]",
        "tests/imagesque/test_x.py::test_y",
    ],
)
def test_every_other_test_is_a_scope_of_its_own(nodeid: str) -> None:
    assert scope_of(nodeid) == nodeid

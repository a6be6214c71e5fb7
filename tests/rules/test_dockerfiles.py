"""The base images a Dockerfile names in its preamble, read as the release pins them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipeline.rules.catalogue import CATALOGUE
from pipeline.rules.dockerfiles import DockerfileError, base_images, is_pinned

from tests.support.standin import repository_root

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_each_dockerfile_names_its_base_images_in_the_preamble(spec: object) -> None:
    text = (repository_root() / spec.dockerfile).read_text()  # type: ignore[attr-defined]
    assert base_images(text) == {
        "UV_IMAGE": "ghcr.io/astral-sh/uv:0.13.9",
        "PYTHON_IMAGE": "python:3.11-slim-bookworm",
    }


def test_arguments_after_the_first_from_are_not_base_images() -> None:
    text = "ARG A_IMAGE=a:1\nFROM ${A_IMAGE}\nARG B_IMAGE=b:2\n"
    assert base_images(text) == {"A_IMAGE": "a:1"}


def test_earlier_arguments_are_expanded_in_later_ones() -> None:
    text = "ARG V=1.2\nARG X_IMAGE=x:$V-${V}\nARG OTHER=y\nFROM ${X_IMAGE}\n"
    assert base_images(text) == {"X_IMAGE": "x:1.2-1.2"}


def test_a_variable_no_earlier_argument_defines_is_refused() -> None:
    with pytest.raises(DockerfileError, match=r"ARG X_IMAGE uses \$\{V\}"):
        base_images("ARG X_IMAGE=x:${V}\nARG V=1\nFROM x\n")


def test_a_dockerfile_without_base_image_arguments_is_refused() -> None:
    with pytest.raises(DockerfileError, match="no base image is named"):
        base_images("FROM python:3.11\n")


@given(st.text(alphabet="abcdef0123456789", min_size=0, max_size=70))
def test_only_a_full_sha256_digest_pins(hexdigits: str) -> None:
    assert is_pinned(f"python:3.11@sha256:{hexdigits}") == (len(hexdigits) == 64)


def test_a_pinned_reference_is_recognised() -> None:
    assert is_pinned(f"docker.io/library/python:3.11@{DIGEST}")
    assert not is_pinned("python:3.11")

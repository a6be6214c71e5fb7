"""The image tests' plumbing that needs no daemon: Dockerfile ARGs and stand-in names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.images import builds, standins


def test_stand_ins_replace_every_base_image_arg_of_the_dockerfiles() -> None:
    defaults = standins.dockerfile_base_defaults()
    base_args = {name for name in defaults if name.endswith("_IMAGE")}
    covered = {arg for standin in standins.STANDINS for arg in standin.used_through}
    assert base_args == {base.build_arg for base in standins.BASE_IMAGES}
    assert base_args <= covered
    # every download ARG of the worker is covered by a stand-in too
    downloads = {name for name in defaults if name.endswith(("_URL", "_SHA256"))}
    assert downloads <= covered


def test_arg_defaults_expand_earlier_args(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG V=1.2\nARG IMAGE=example.org/x:${V}\nARG TARGETARCH\n")
    assert standins.dockerfile_defaults(dockerfile) == {"V": "1.2", "IMAGE": "example.org/x:1.2"}


@pytest.mark.parametrize(
    ("real", "standin"),
    [
        ("python:3.11-slim-bookworm", "h:1/standins/library/python:3.11-slim-bookworm"),
        ("ghcr.io/astral-sh/uv:0.13.9", "h:1/standins/astral-sh/uv:0.13.9"),
        ("ghcr.io/a/b/c:latest@sha256:" + "0" * 64, "h:1/standins/a/b/c:latest"),
        ("localhost:5000/x:1", "h:1/standins/x:1"),
    ],
)
def test_standin_reference_keeps_the_path_and_tag(real: str, standin: str) -> None:
    assert standins.standin_reference("h:1", real) == standin


def test_only_the_leading_syntax_line_is_dropped() -> None:
    text = "# syntax=docker/dockerfile:1\n# a comment\nFROM x\n# syntax=kept\n"
    assert builds.without_syntax_line(text) == "# a comment\nFROM x\n# syntax=kept\n"
    assert builds.without_syntax_line("FROM x\n") == "FROM x\n"


def test_every_upstream_snapshot_is_there() -> None:
    for tag in builds.UPSTREAM_TAGS:
        assert builds.upstream_tarball(tag).is_file()

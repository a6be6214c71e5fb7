"""What a Dockerfile says about its inputs: the base images it names in its preamble.

Both Dockerfiles name every base image once, as an ``ARG NAME_IMAGE=reference`` before the first
``FROM``. The release resolves each to a digest and builds with the pinned reference as that
build argument, so the image is built from exactly the base image its provenance names.
"""

from __future__ import annotations

import re

BASE_IMAGE_ARGUMENT = re.compile(r"^[A-Z][A-Z0-9_]*_IMAGE\Z")
"""A build argument that names a base image (``PYTHON_IMAGE``, ``UV_IMAGE``)."""
_ARG = re.compile(r"^\s*ARG\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<value>\S*))?\s*$")
_FROM = re.compile(r"^\s*FROM\s", re.IGNORECASE)
_VARIABLE = re.compile(
    r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}\Z")


class DockerfileError(ValueError):
    """A Dockerfile whose base images cannot be read as this pipeline expects them."""


def preamble_arguments(dockerfile: str) -> dict[str, str]:
    """The ``ARG name=value`` lines before the first ``FROM``, earlier ones expanded in later.

    A variable that no earlier argument defines is refused: the value would depend on the build.
    """
    arguments: dict[str, str] = {}
    for line in dockerfile.splitlines():
        if _FROM.match(line):
            break
        match = _ARG.match(line)
        if match is None or match["value"] is None:
            continue

        def expand(variable: re.Match[str], name: str = match["name"]) -> str:
            used = variable["braced"] or variable["bare"]
            if used not in arguments:
                raise DockerfileError(
                    f"ARG {name} uses ${{{used}}}, which no earlier ARG of the preamble defines"
                )
            return arguments[used]

        arguments[match["name"]] = _VARIABLE.sub(expand, match["value"])
    return arguments


def base_images(dockerfile: str) -> dict[str, str]:
    """Each base-image argument of the preamble (``*_IMAGE``) and the reference it names."""
    found = {
        name: value
        for name, value in preamble_arguments(dockerfile).items()
        if BASE_IMAGE_ARGUMENT.match(name)
    }
    if not found:
        raise DockerfileError(
            "no base image is named in the Dockerfile's preamble; expected lines such as "
            "`ARG PYTHON_IMAGE=python:3.11-slim-bookworm` before the first FROM"
        )
    return found


def is_pinned(reference: str) -> bool:
    """Whether ``reference`` names its image by a sha256 digest."""
    return _DIGEST.search(reference) is not None

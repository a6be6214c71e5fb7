"""Build contexts and builds: the upstream sources at a tag, with this repository's Dockerfiles.

A context is what the release builds from: the upstream snapshot of a tag
(``shared/fixtures/upstream/``), this repository's ``Dockerfile.api``, ``Dockerfile.worker`` and
``.dockerignore`` and the worker's files (``pipeline.main.DOCKER_FILES``) laid over it;
the worker's lock is the one the image tests made from their stand-in channel. The copies of
the Dockerfiles lose their ``# syntax=`` line only: it makes BuildKit fetch a frontend image
from a registry, and the daemon's built-in frontend supports every feature they use.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.main import DOCKER_FILES

from tests.images.daemon import Docker

REPO_ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "upstream"
UPSTREAM_TAGS = ("v2.4.0", "v2.8")
"""The upstream tags whose snapshots the image tests build."""
OVERLAID_FILES = DOCKER_FILES
_SYNTAX_LINE = re.compile(r"\A# syntax=[^\n]*\n")


def upstream_tarball(tag: str) -> Path:
    """The snapshot of upstream ``tag``; an error naming the folder when it is missing."""
    path = UPSTREAM_FIXTURES / f"qm-nmr-calc-{tag}.tar.gz"
    if not path.is_file():
        raise FileNotFoundError(f"no upstream snapshot for {tag}: {path} is missing")
    return path


def without_syntax_line(dockerfile: str) -> str:
    """The Dockerfile without its leading ``# syntax=`` directive."""
    return _SYNTAX_LINE.sub("", dockerfile, count=1)


def prepare_context(
    tag: str,
    destination: Path,
    overlays: Sequence[str] = OVERLAID_FILES,
    replaced: Mapping[str, Path] | None = None,
) -> Path:
    """Unpack upstream ``tag`` into ``destination`` and lay this repository's files over it.

    ``replaced`` maps a file's name to where to take it from instead of this repository.
    """
    with tarfile.open(upstream_tarball(tag)) as archive:
        archive.extractall(destination, filter="data")
    context = destination / "qm-nmr-calc"
    for name in overlays:
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile((replaced or {}).get(name, REPO_ROOT / name), context / name)
        if name.startswith("Dockerfile"):
            path = context / name
            path.write_text(without_syntax_line(path.read_text()))
    return context


@dataclass(frozen=True)
class Build:
    """One finished build: its image tag, how long it took and what BuildKit printed."""

    tag: str
    seconds: float
    log: str


def build(
    docker: Docker,
    context: Path,
    dockerfile: str,
    platform: str,
    tag: str,
    build_args: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
) -> Build:
    """``docker build`` of ``dockerfile`` in ``context`` for ``platform``, tagged ``tag``."""
    # The client reads --file relative to its own working directory, not the context.
    arguments = [
        "build",
        "--network=host",
        f"--platform={platform}",
        f"--file={context / dockerfile}",
    ]
    arguments += [f"--build-arg={name}={value}" for name, value in build_args.items()]
    arguments += [f"--label={name}={value}" for name, value in (labels or {}).items()]
    started = time.monotonic()
    result = docker.run(*arguments, f"--tag={tag}", str(context))
    return Build(tag=tag, seconds=time.monotonic() - started, log=result.stdout + result.stderr)

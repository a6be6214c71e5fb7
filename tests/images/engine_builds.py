"""Real builds and pushes for the stand-in engine (``tests/support/standin.py``), where a daemon
runs.

The stand-in engine hands over the chains that ``Pipeline.publish`` recorded. A container chain
is answered by a real ``docker build``:

- its context is what the chain says: ``dag.git(url).tag(T).tree()`` becomes the upstream
  snapshot standing in for tag T (``snapshots``), and every ``with_file(name, source.file(name))``
  lays this repository's file of that name over it;
- ``docker_build``'s Dockerfile, platform and build arguments are used as recorded, plus the
  stand-in build arguments (base images, downloads); ``with_label`` becomes ``--label``.

A publish is answered as the v0.21 engine answers it: each variant is pushed by digest as an OCI
manifest over its own image config (labels and Docker's fields such as Healthcheck kept) and
gzip layers; one variant is tagged as a plain
manifest, several as one OCI index. A commit and its time come from the snapshots' SOURCES.md.
Anything else in a chain is refused: the stand-in does not guess what the engine would do.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import tarfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from dagger.client._core import Field

from tests.images import builds, standins
from tests.images.daemon import Docker

SOURCES_ROW = re.compile(
    r"^\|\s*qm-nmr-calc-(?P<tag>\S+)\.tar\.gz\s*\|[^|]*\|\s*(?P<commit>[0-9a-f]{40})\s*\|"
    r"\s*(?P<time>\S+)\s*\|",
    re.MULTILINE,
)
COMMIT_TIME_COMMAND = ("git", "show", "-s", "--format=%cI")
CONTEXT_STEPS = frozenset({"git", "tag", "tree", "withFile"})
PUSH_TIMEOUT = 900.0


class StandInRefusedError(NotImplementedError):
    """A chain the real-build stand-in does not know how the engine would answer."""


def upstream_commits() -> dict[str, tuple[str, str]]:
    """Each snapshot tag's (commit, commit time), from the fixtures' SOURCES.md."""
    text = (builds.UPSTREAM_FIXTURES / "SOURCES.md").read_text()
    return {row["tag"]: (row["commit"], row["time"]) for row in SOURCES_ROW.finditer(text)}


@dataclass
class RealBuilder:
    """Answers build, publish, commit and commit-time leaves with real work."""

    docker: Docker
    build_args: Mapping[str, str]
    workdir: Path
    snapshots: Mapping[str, str]
    """Release tag asked for -> upstream snapshot tag that stands in for it."""
    replaced: Mapping[str, Path] = field(default_factory=dict)
    """Files of this repository the builds take from elsewhere (the stand-in worker lock)."""
    build_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds each built image (by its local tag) took: for the benchmark."""
    _contexts: dict[tuple[str, tuple[str, ...]], Path] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- commits ------------------------------------------------------------------------------

    def snapshot_for(self, chain: Sequence[Field]) -> str:
        """The snapshot standing in for the tag in ``chain``; refused for any other source."""
        tags = [step.args["name"] for step in chain if step.name == "tag"]
        if len(tags) != 1 or not any(step.name == "git" for step in chain):
            raise StandInRefusedError(
                "real builds take upstream sources at one tag: dag.git(url).tag(T)"
            )
        if tags[0] not in self.snapshots:
            raise StandInRefusedError(f"no upstream snapshot stands in for tag {tags[0]!r}")
        return self.snapshots[tags[0]]

    def commit(self, chain: Sequence[Field]) -> str:
        """``GitRef.commit``: the snapshot's commit."""
        return upstream_commits()[self.snapshot_for(chain)][0]

    def commit_time(self, chain: Sequence[Field]) -> str:
        """``stdout`` of ``git show -s --format=%cI REV``: that commit's time, as git prints it."""
        execs = [step.args["args"] for step in chain if step.name == "withExec"]
        if len(execs) != 1 or tuple(execs[0][:-1]) != COMMIT_TIME_COMMAND:
            raise StandInRefusedError(f"the stand-in runs only {' '.join(COMMIT_TIME_COMMAND)} REV")
        times = {commit: time for commit, time in upstream_commits().values()}
        revision = execs[0][-1]
        if revision not in times:
            raise StandInRefusedError(f"no snapshot has commit {revision}")
        return times[revision] + "\n"

    # --- builds -------------------------------------------------------------------------------

    def context(self, chain: Sequence[Field]) -> Path:
        """The directory the chain's ``docker_build`` runs on (prepared once per content)."""
        steps = [step for step in chain if step.name in CONTEXT_STEPS]
        unknown = [s.name for s in chain[: chain.index(steps[-1]) + 1] if s not in steps]
        if unknown:
            raise StandInRefusedError(f"context steps the stand-in does not build: {unknown}")
        overlays = tuple(step.args["path"] for step in steps if step.name == "withFile")
        for step in steps:
            if step.name == "withFile":
                self._check_overlay(step)
        key = (self.snapshot_for(chain), overlays)
        with self._lock:
            if key not in self._contexts:
                digest = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
                destination = self.workdir / f"context-{digest}"
                destination.mkdir(parents=True)
                self._contexts[key] = builds.prepare_context(
                    key[0], destination, overlays, self.replaced
                )
            return self._contexts[key]

    @staticmethod
    def _check_overlay(step: Field) -> None:
        """``with_file(name, source.file(name))``: this repository's file of the same name."""
        source_chain = step.args["source"]._ctx.selections
        last = source_chain[-1]
        if last.name != "file" or last.args["path"] != step.args["path"]:
            raise StandInRefusedError(f"withFile {step.args['path']} from something else: {last}")

    def build(self, chain: Sequence[Field], labels: Mapping[str, str], name: str) -> str:
        """Build the chain's ``docker_build`` with ``labels``; the local image tag."""
        (docker_build,) = [step for step in chain if step.name == "dockerBuild"]
        arguments = docker_build.args
        context = self.context(chain[: chain.index(docker_build)])
        recorded = {arg["name"]: arg["value"] for arg in arguments.get("buildArgs", [])}
        result = builds.build(
            self.docker,
            context,
            arguments.get("dockerfile", "Dockerfile"),
            str(arguments["platform"]),
            f"standin-engine:{name}",
            dict(self.build_args) | recorded,
            labels,
        )
        self.build_seconds[result.tag] = result.seconds
        return result.tag

    # --- pushes -------------------------------------------------------------------------------

    def push(self, registry: str, repository: str, tag: str, images: Sequence[str]) -> str:
        """Push built ``images`` as the engine does; the digest now under ``tag``."""
        entries = []
        with httpx.Client(base_url=f"http://{registry}", timeout=PUSH_TIMEOUT) as client:
            for image in images:
                entries.append(self._push_image(client, repository, image))
            if len(entries) == 1:
                raw, media_type = entries[0][1], standins.OCI_MANIFEST
            else:
                index = {
                    "schemaVersion": 2,
                    "mediaType": standins.OCI_INDEX,
                    "manifests": [descriptor for descriptor, _raw in entries],
                }
                raw, media_type = standins.canonical_json(index), standins.OCI_INDEX
            return standins.put_raw_manifest(client, repository, tag, raw, media_type)

    def _push_image(
        self, client: httpx.Client, repository: str, image: str
    ) -> tuple[dict[str, Any], bytes]:
        """Push ``image`` by digest as BuildKit does; (its index entry, its manifest).

        The image's own config JSON is the config blob (Docker's fields such as Healthcheck
        included, as BuildKit keeps them; a converting copy would drop them), each layer is
        gzipped, and the manifest is an OCI one.
        """
        saved = self.workdir / "saved" / image.replace("/", "_").replace(":", "_")
        shutil.rmtree(saved, ignore_errors=True)
        saved.mkdir(parents=True)
        archive = saved / "image.tar"
        self.docker.run("save", f"--output={archive}", image)
        with tarfile.open(archive) as tar:
            tar.extractall(saved, filter="data")
        (entry,) = json.loads((saved / "manifest.json").read_text())
        config_raw = (saved / entry["Config"]).read_bytes()
        config = json.loads(config_raw)
        layers = []
        for layer in entry["Layers"]:
            compressed = gzip_layer(saved / layer)
            digest, size = standins.push_blob(client, repository, compressed)
            layers.append({"mediaType": standins.OCI_LAYER_GZIP, "digest": digest, "size": size})
        config_digest, config_size = standins.push_blob(client, repository, config_raw)
        manifest = {
            "schemaVersion": 2,
            "mediaType": standins.OCI_MANIFEST,
            "config": {
                "mediaType": standins.OCI_CONFIG,
                "digest": config_digest,
                "size": config_size,
            },
            "layers": layers,
        }
        raw = standins.canonical_json(manifest)
        digest = standins.put_raw_manifest(
            client, repository, standins.sha256_digest(raw), raw, standins.OCI_MANIFEST
        )
        shutil.rmtree(saved, ignore_errors=True)
        descriptor = {
            "mediaType": standins.OCI_MANIFEST,
            "digest": digest,
            "size": len(raw),
            "platform": {"architecture": config["architecture"], "os": config["os"]},
        }
        return descriptor, raw


def gzip_layer(layer: Path) -> Path:
    """``layer`` gzipped beside it (fast level: these are test pushes, not downloads)."""
    output = layer.with_name(layer.name + ".gz")
    with layer.open("rb") as source, gzip.open(output, "wb", compresslevel=1) as target:
        shutil.copyfileobj(source, target, 1 << 20)
    return output

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

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from dagger.client._core import Field
from pipeline.oci.names import parse_image_reference
from pipeline.rules.dockerfiles import is_pinned
from pipeline.steps.base_images import Logins

from tests.images import builds, standins
from tests.images.daemon import DOCKER_CLIENT, Docker

SOURCES_ROW = re.compile(
    r"^\|\s*qm-nmr-calc-(?P<tag>\S+)\.tar\.gz\s*\|[^|]*\|\s*(?P<commit>[0-9a-f]{40})\s*\|"
    r"\s*(?P<time>\S+)\s*\|",
    re.MULTILINE,
)
COMMIT_TIME_COMMAND = ("git", "show", "-s", "--format=%cI")
CONTEXT_STEPS = frozenset({"git", "tag", "tree", "withFile"})
PUSH_TIMEOUT = 900.0
SMALL_FILE = 1 << 20
"""Files of a saved image up to this size (configs, manifest.json, tiny layers) are kept as is."""
CONTENT_ADDRESSED = "blobs/sha256/"
"""Where ``docker save`` (OCI layout) puts a layer, named by its uncompressed digest."""


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
    push_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds each push (by repository and tag) took: for the benchmark."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _compressed: dict[str, Path] = field(default_factory=dict)
    """Each layer compressed so far, by its name in ``docker save`` (its diff id)."""
    _compressing: dict[str, threading.Lock] = field(default_factory=dict)
    """One lock per layer name: a layer two pushes meet at once is compressed by one of them."""
    _stored: dict[str, standins.StoredLayer] | None = None
    """The base images' layer blobs, by diff id (read from their registry when first needed)."""

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
        for argument, value in recorded.items():
            if argument in self.build_args and is_pinned(value):
                recorded[argument] = self.pinned_standin(argument, value)
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

    # --- base images ----------------------------------------------------------------------------

    async def pin_reference(self, reference: str, *, logins: Logins) -> str:
        """A base image resolved as on Docker Hub or GHCR: to its stand-in's digest."""
        (argument,) = [
            name
            for name, default in standins.dockerfile_base_defaults().items()
            if default == reference and name in self.build_args
        ]
        host, _, path = self.build_args[argument].partition("/")
        repository, _, tag = path.rpartition(":")
        async with httpx.AsyncClient(base_url=f"http://{host}") as client:
            answer = await client.head(
                f"/v2/{repository}/manifests/{tag}", headers={"Accept": standins.OCI_INDEX}
            )
            answer.raise_for_status()
        return parse_image_reference(reference).pinned(answer.headers["Docker-Content-Digest"])

    def pinned_standin(self, argument: str, pinned: str) -> str:
        """The stand-in of base image ``pinned`` (``name@digest``), at that same digest.

        Refused unless ``pinned`` is the Dockerfile's own base image: the stand-in stands in for
        that one only.
        """
        default = standins.dockerfile_base_defaults()[argument]
        name = parse_image_reference(pinned)
        expected = parse_image_reference(default)
        if (name.registry, name.repository, name.tag) != (
            expected.registry,
            expected.repository,
            expected.tag,
        ):
            raise StandInRefusedError(f"{argument}={pinned} is not the Dockerfile's {default}")
        return f"{self.build_args[argument]}@{name.digest}"

    # --- pushes -------------------------------------------------------------------------------

    def push(self, registry: str, repository: str, tag: str, images: Sequence[str]) -> str:
        """Push built ``images`` as the engine does; the digest now under ``tag``.

        The variants are pushed concurrently, as BuildKit pushes the platforms of one publish.
        """
        started = time.monotonic()
        with (
            httpx.Client(base_url=f"http://{registry}", timeout=PUSH_TIMEOUT) as client,
            ThreadPoolExecutor(max_workers=max(1, len(images))) as pool,
        ):
            entries = list(pool.map(partial(self._push_image, client, repository), images))
            if len(entries) == 1:
                raw, media_type = entries[0][1], standins.OCI_MANIFEST
            else:
                index = {
                    "schemaVersion": 2,
                    "mediaType": standins.OCI_INDEX,
                    "manifests": [descriptor for descriptor, _raw in entries],
                }
                raw, media_type = standins.canonical_json(index), standins.OCI_INDEX
            digest = standins.put_raw_manifest(client, repository, tag, raw, media_type)
        self.push_seconds[f"{repository}:{tag}"] = time.monotonic() - started
        return digest

    def _push_image(
        self, client: httpx.Client, repository: str, image: str
    ) -> tuple[dict[str, Any], bytes]:
        """Push ``image`` by digest as BuildKit does; (its index entry, its manifest).

        The image's own config JSON is the config blob (Docker's fields such as Healthcheck
        included, as BuildKit keeps them; a converting copy would drop them), each layer is
        gzipped, and the manifest is an OCI one. Only layers not yet in the repository are
        uploaded (``push_blob`` asks first), as BuildKit does.
        """
        # One directory per push: concurrent pushes never share one.
        (self.workdir / "saved").mkdir(exist_ok=True)
        prefix = image.replace("/", "_").replace(":", "_") + "-"
        saved = Path(tempfile.mkdtemp(prefix=prefix, dir=self.workdir / "saved"))
        blobs = self._saved_blobs(image, saved)
        (entry,) = json.loads(blobs["manifest.json"].read_bytes())
        config_raw = blobs[entry["Config"]].read_bytes()
        config = json.loads(config_raw)
        layers = []
        for layer in entry["Layers"]:
            digest, size = standins.push_blob(client, repository, blobs[layer].compressed())
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

    def _saved_blobs(self, image: str, saved: Path) -> dict[str, SavedBlob]:
        """``docker save`` of ``image`` read as a stream: each file of the archive by its name.

        Large files (layers) are gzipped as they stream by, never written uncompressed; a layer
        named by its content (``blobs/sha256/<diff id>``) that an earlier push already compressed
        is taken from there, as BuildKit computes a layer's compressed blob once.
        """
        blobs: dict[str, SavedBlob] = {}
        with subprocess.Popen(
            [DOCKER_CLIENT, "save", image],
            env=self.docker.environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as process:
            assert process.stdout is not None
            with tarfile.open(fileobj=process.stdout, mode="r|") as archive:
                for number, member in enumerate(archive):
                    if member.isfile():
                        blobs[member.name] = self._saved_blob(archive, member, saved, number)
            error = process.stderr.read() if process.stderr else b""
        if process.returncode != 0:
            raise RuntimeError(f"docker save {image} failed: {error.decode()[-2000:]}")
        return blobs

    def _saved_blob(
        self, archive: tarfile.TarFile, member: tarfile.TarInfo, saved: Path, number: int
    ) -> SavedBlob:
        """One file of a saved image: kept as it is when small, else gzipped (once per layer)."""
        stream = archive.extractfile(member)
        assert stream is not None
        if member.size <= SMALL_FILE:
            path = saved / f"file-{number}"
            path.write_bytes(stream.read())
            return SavedBlob(path)
        if not member.name.startswith(CONTENT_ADDRESSED):
            saved.mkdir(parents=True, exist_ok=True)
            output = saved / f"layer-{number}.gz"
            standins.gzip_stream(stream, output)
            return SavedBlob(output.with_suffix(""), output)
        # As BuildKit's flight control: concurrent pushes of one layer wait for one compression.
        with self._lock:
            compressing = self._compressing.setdefault(member.name, threading.Lock())
        with compressing:
            known = self._compressed.get(member.name)
            if known is None:
                directory = self.workdir / "compressed"
                directory.mkdir(parents=True, exist_ok=True)
                diff_id = member.name.removeprefix(CONTENT_ADDRESSED)
                known = directory / f"{diff_id}.gz"
                stored = self.stored_layers().get(f"sha256:{diff_id}")
                if stored is not None:
                    # A base image's layer: the engine pushes the blob it pulled, as it is.
                    stored.download(known)
                else:
                    standins.gzip_stream(stream, known)
                with self._lock:
                    self._compressed[member.name] = known
        return SavedBlob(known.with_suffix(""), known)

    def stored_layers(self) -> Mapping[str, standins.StoredLayer]:
        """The gzip blobs of the base images the builds start from, by diff id (read once)."""
        with self._lock:
            if self._stored is None:
                self._stored = standins.stored_layers(
                    [
                        self.build_args[base.build_arg]
                        for base in standins.BASE_IMAGES
                        if base.build_arg in self.build_args
                    ]
                )
            return self._stored


@dataclass(frozen=True)
class SavedBlob:
    """A file of a saved image: its bytes at ``path`` (small files), or gzipped at ``gzipped``."""

    path: Path
    gzipped: Path | None = None

    def read_bytes(self) -> bytes:
        """The file's own bytes (small files only: configs, manifest.json)."""
        return self.path.read_bytes()

    def compressed(self) -> Path:
        """The file gzipped as a layer blob (small layers are gzipped here, once)."""
        if self.gzipped is not None:
            return self.gzipped
        output = self.path.with_name(self.path.name + ".gz")
        if not output.exists():
            with self.path.open("rb") as source:
                standins.gzip_stream(source, output)
        return output

"""Stand-ins for the images' external inputs that cannot be had on this machine.

No container registry is reachable here, so the base images that the Dockerfiles name (each
through one ``ARG``) are made from Debian's packages and pushed, one OCI index per image with one
manifest per platform, into a loopback ``docker-registry``; the builds then take them through the
same ``ARG``s. Their layers are stored gzipped, as Docker Hub's and GHCR's are, so a push reuses
them as the engine reuses a pulled layer's blob. The worker's conda packages come from a loopback
channel (``conda_standins.py``) through the lock made from it, laid over the build context.

``STANDINS`` below is the one place that says what stands in for what and how it differs from the
real thing; the tests print it, so that a reader of a green run knows exactly what was not real.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
"""The mirrors this machine's own apt uses (checked here); the stand-ins' apt uses them too."""
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""This machine reaches PyPI and Debian through its own TLS setup: builds must trust it."""
HOST_APT_SETTINGS = (
    Path("/etc/apt/apt.conf.d/99artifact-registry"),
    Path("/etc/apt/apt.conf.d/docker-clean"),
    Path("/etc/apt/apt.conf.d/docker-gzip-indexes"),
    Path("/etc/apt/apt.conf.d/docker-no-languages"),
    Path("/etc/apt/apt.conf.d/docker-autoremove-suggests"),
)
"""apt settings copied where this machine has them: what its mirror needs (stale Release dates)
and the docker-* files that Docker's official Debian-based images carry (no translations, no
kept .debs), which the stand-ins would otherwise lack."""
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TRUST_HOST_CA = f"SSL_CERT_FILE={HOST_CA_BUNDLE}"
"""uv trusts its own root list unless told otherwise: point it at the host's bundle."""
STANDIN_REGISTRY_PREFIX = "standins"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
UPLOAD_TIMEOUT = 600.0

DEBIAN_ARCH = {"linux/amd64": "amd64", "linux/arm64": "arm64"}
WHEEL_PLATFORM = {"linux/amd64": "manylinux_2_17_x86_64", "linux/arm64": "manylinux_2_17_aarch64"}
_ARG_LINE = re.compile(r"^ARG\s+([A-Z0-9_]+)=(\S+)\s*$", re.MULTILINE)
_ARG_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)\}")


@dataclass(frozen=True)
class StandIn:
    """What replaces one external input in the image tests, and how it differs from it."""

    used_through: tuple[str, ...]
    """The Dockerfile ``ARG``s (or compose service) through which the stand-in is used."""
    replaces: str
    differs: str


STANDINS: tuple[StandIn, ...] = (
    StandIn(
        ("PYTHON_IMAGE",),
        "python:3.11-slim-bookworm (linux/amd64, linux/arm64)",
        "Debian bookworm minbase with Debian's python3 3.11.2 linked into /usr/local/bin (the "
        "official image builds the newest CPython 3.11 into /usr/local). It HAS libexpat1 "
        "(Debian's python3.11 links it; the official image has none since late 2024), so a "
        "missing libexpat1 cannot show here: tests/repository/test_dockerfiles.py holds the api's "
        "runtime packages to the list RDKit needs. The host's CA bundle and apt settings added, "
        "and SSL_CERT_FILE set so that uv trusts it; no docs or locales.",
    ),
    StandIn(
        ("UV_IMAGE",),
        "ghcr.io/astral-sh/uv:<UV_VERSION> (linux/amd64, linux/arm64)",
        "FROM scratch with /uv and /uvx from PyPI's uv wheel of the same version and "
        "architecture: the real image's layout; the binaries are the wheel's (glibc) build.",
    ),
    StandIn(
        ("docker-compose.yml: caddy",),
        "caddy:2-alpine (docker-compose.yml's reverse proxy)",
        "Debian's caddy 2.6.2 on Debian bookworm minbase, with the official image's command, "
        "/data, /config and XDG variables.",
    ),
    StandIn(
        ("worker/conda.lock",),
        "conda-forge's nwchem 7.3.1 (OpenMPI 5), xtb 6.7.1 and crest 3.0.2 for linux-64 and "
        "linux-aarch64, locked by worker_lock",
        "A conda channel on 127.0.0.1 (tests/images/conda_standins.py), locked by the real lock "
        "maker (worker/conda_env.py) and installed by the real installer: Debian bookworm's "
        "nwchem-openmpi 7.0.2 with OpenMPI 4.1.4 and PMIx relocated into the prefix (binaries "
        "behind bin/ wrappers that set LD_LIBRARY_PATH and PMIx's prefix; OpenMPI found through "
        "OPAL_PREFIX), Debian's xtb 6.5.1 with its libraries ($ORIGIN run paths), and a FAKE "
        "crest (a script that only answers --version: no CREST binary can be had here). The "
        "lock asks for these versions, not worker/environment.yml's.",
    ),
)


def describe_standins() -> str:
    """``STANDINS`` as text, one paragraph each, for test output and the benchmark."""
    return "\n".join(
        f"- {standin.replaces} [{', '.join(standin.used_through)}]: {standin.differs}"
        for standin in STANDINS
    )


def dockerfile_defaults(dockerfile: Path) -> dict[str, str]:
    """The ``ARG NAME=default`` values of a Dockerfile, ``${NAME}`` of earlier ones expanded."""
    defaults: dict[str, str] = {}
    for name, value in _ARG_LINE.findall(dockerfile.read_text()):
        defaults[name] = _ARG_REFERENCE.sub(lambda match: defaults[match[1]], value)
    return defaults


def standin_reference(registry_host: str, real: str) -> str:
    """Where the stand-in for image ``real`` lives in the loopback registry (digest dropped)."""
    name = real.split("@", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        name = rest
    elif not rest:
        name = f"library/{name}"
    return f"{registry_host}/{STANDIN_REGISTRY_PREFIX}/{name}"


# --- root filesystems ---------------------------------------------------------------------


def _copy_host_settings_hooks() -> list[str]:
    """mmdebstrap hooks that copy this machine's CA bundle and apt settings into the root."""
    hooks = [f'cp {HOST_CA_BUNDLE} "$1{HOST_CA_BUNDLE}"']
    hooks += [f'cp {path} "$1{path}"' for path in HOST_APT_SETTINGS if path.exists()]
    # apt's binary caches (70 MB) are rebuilt on use; official images ship none.
    hooks.append('rm -f "$1"/var/cache/apt/*.bin')
    return hooks


def debian_rootfs(
    output: Path, architecture: str, packages: tuple[str, ...], hooks: tuple[str, ...]
) -> Path:
    """A Debian bookworm minbase root as a tar at ``output`` (kept: built once per cache)."""
    if output.exists():
        return output
    partial = output.with_name(output.name + ".partial")
    command = [
        "mmdebstrap",
        "--quiet",
        "--format=tar",
        "--variant=minbase",
        f"--architectures={architecture}",
        f"--include={','.join(packages)}",
        *(f"--dpkgopt={option}" for option in SLIM_DPKG_OPTIONS),
        *(f"--customize-hook={hook}" for hook in (*_copy_host_settings_hooks(), *hooks)),
        DEBIAN_SUITE,
        str(partial),
        *DEBIAN_MIRRORS,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(
            f"mmdebstrap for {architecture} ({', '.join(packages)}) failed with status "
            f"{result.returncode}:\n{result.stderr[-3000:]}"
        )
    partial.rename(output)
    return output


def _add_file(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    archive.addfile(info, io.BytesIO(data))


def _add_symlink(archive: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, 0
    archive.addfile(info)


def _download(command: list[str], directory: Path, pattern: str) -> Path:
    """Run a download command in ``directory`` and return the one file matching ``pattern``."""
    directory.mkdir(parents=True, exist_ok=True)
    found = sorted(directory.glob(pattern))
    if not found:
        subprocess.run(command, cwd=directory, check=True, capture_output=True)
        found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"expected one {pattern} in {directory}, found {found}")
    return found[0]


def uv_layer(cache: Path, platform: str, version: str) -> Path:
    """A layer with ``/uv`` and ``/uvx`` from PyPI's uv wheel for ``platform``."""
    output = cache / f"uv-{version}-{DEBIAN_ARCH[platform]}.tar"
    if output.exists():
        return output
    wheel = _download(
        [
            "python3",
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            f"--platform={WHEEL_PLATFORM[platform]}",
            f"uv=={version}",
        ],
        cache / f"uv-wheel-{version}-{DEBIAN_ARCH[platform]}",
        "uv-*.whl",
    )
    import zipfile

    with zipfile.ZipFile(wheel) as archive, tarfile.open(output, "w") as layer:
        for binary in ("uv", "uvx"):
            (member,) = [n for n in archive.namelist() if n.endswith(f".data/scripts/{binary}")]
            _add_file(layer, binary, archive.read(member))
    return output


def python_rootfs(cache: Path, platform: str) -> Path:
    """The ``python:3.11-slim-bookworm`` stand-in's root filesystem for ``platform``."""
    return debian_rootfs(
        cache / f"python-{DEBIAN_ARCH[platform]}.tar",
        DEBIAN_ARCH[platform],
        ("python3", "ca-certificates", "netbase", "tzdata"),
        (
            'ln -s /usr/bin/python3 "$1/usr/local/bin/python3"',
            'ln -s /usr/bin/python3.11 "$1/usr/local/bin/python3.11"',
            'ln -s /usr/bin/python3 "$1/usr/local/bin/python"',
        ),
    )


def caddy_rootfs(cache: Path) -> Path:
    """The Caddy stand-in's root filesystem (linux/amd64)."""
    return debian_rootfs(
        cache / "caddy-amd64.tar",
        "amd64",
        ("caddy", "ca-certificates"),
        ('mkdir -p "$1/data" "$1/config" "$1/srv"',),
    )


# --- pushing into the loopback registry -----------------------------------------------------


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def push_blob(client: httpx.Client, repository: str, data: bytes | Path) -> tuple[str, int]:
    """Upload a blob (bytes, or a file streamed from disk) unless present; (digest, size)."""
    if isinstance(data, Path):
        digest, size = _file_digest(data), data.stat().st_size
    else:
        digest, size = sha256_digest(data), len(data)
    if client.head(f"/v2/{repository}/blobs/{digest}").status_code == 200:
        return digest, size
    started = client.post(f"/v2/{repository}/blobs/uploads/")
    started.raise_for_status()
    # The upload URL carries its own state in the query: add the digest to it, keep the rest.
    location = httpx.URL(started.headers["location"]).copy_merge_params({"digest": digest})
    if isinstance(data, Path):
        with data.open("rb") as stream:
            response = client.put(location, content=stream)
    else:
        response = client.put(location, content=data)
    response.raise_for_status()
    return digest, size


def gzip_stream(source: IO[bytes], output: Path) -> None:
    """``source`` gzipped into ``output`` as BuildKit writes layer blobs: no name, time zero.

    Fast level: these are test pushes, not downloads. With no time or name in the header, one
    layer always gives one blob digest, as the engine's cached compressed blob does.
    """
    with (
        output.open("wb") as file,
        gzip.GzipFile(filename="", mode="wb", fileobj=file, compresslevel=1, mtime=0) as target,
    ):
        shutil.copyfileobj(source, target, 1 << 20)


def gzipped_layer(layer: Path) -> Path:
    """``layer`` (a tar) gzipped beside it, made once: how registries store base image layers."""
    output = layer.with_name(layer.name + ".gz")
    if not output.exists():
        unfinished = layer.with_name(layer.name + ".gz.partial")
        with layer.open("rb") as source:
            gzip_stream(source, unfinished)
        unfinished.rename(output)
    return output


@dataclass(frozen=True)
class StoredLayer:
    """Where a base image's layer blob is stored: registry host, repository, blob digest."""

    host: str
    repository: str
    digest: str

    def download(self, output: Path) -> None:
        """The blob, as stored, into ``output``."""
        url = f"http://{self.host}/v2/{self.repository}/blobs/{self.digest}"
        with (
            httpx.stream("GET", url, timeout=UPLOAD_TIMEOUT) as response,
            output.open("wb") as file,
        ):
            response.raise_for_status()
            for chunk in response.iter_bytes(1 << 20):
                file.write(chunk)


def stored_layers(references: Sequence[str]) -> dict[str, StoredLayer]:
    """Each gzip layer of the images ``references`` name (every platform), by its diff id."""
    layers = {}
    for reference in references:
        host, _, path = reference.partition("/")
        repository, _, tag = path.rpartition(":")
        with httpx.Client(base_url=f"http://{host}", timeout=UPLOAD_TIMEOUT) as client:
            index = _registry_json(client, f"/v2/{repository}/manifests/{tag}", OCI_INDEX)
            for entry in index["manifests"]:
                manifest_path = f"/v2/{repository}/manifests/{entry['digest']}"
                manifest = _registry_json(client, manifest_path, OCI_MANIFEST)
                config_path = f"/v2/{repository}/blobs/{manifest['config']['digest']}"
                config = _registry_json(client, config_path, OCI_CONFIG)
                diff_ids = config["rootfs"]["diff_ids"]
                for diff_id, layer in zip(diff_ids, manifest["layers"], strict=True):
                    if layer["mediaType"] == OCI_LAYER_GZIP:
                        layers[diff_id] = StoredLayer(host, repository, layer["digest"])
    return layers


def _registry_json(client: httpx.Client, path: str, accept: str) -> Any:
    answer = client.get(path, headers={"Accept": accept})
    answer.raise_for_status()
    return answer.json()


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """``document`` as compact JSON with sorted keys: the same document, the same digest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def put_raw_manifest(
    client: httpx.Client, repository: str, reference: str, raw: bytes, media_type: str
) -> str:
    """Store manifest bytes under a tag or digest; returns their digest."""
    response = client.put(
        f"/v2/{repository}/manifests/{reference}",
        content=raw,
        headers={"Content-Type": media_type},
    )
    response.raise_for_status()
    return sha256_digest(raw)


def _put_manifest(
    client: httpx.Client, repository: str, reference: str, document: Mapping[str, Any]
) -> tuple[str, int]:
    raw = canonical_json(document)
    return put_raw_manifest(client, repository, reference, raw, document["mediaType"]), len(raw)


def push_standin(
    registry_url: str,
    reference: str,
    layers: Mapping[str, Path],
    config: Mapping[str, Any],
) -> str:
    """Push one single-layer image per platform and an OCI index of them as ``reference``.

    Each layer is stored gzipped, as Docker Hub and GHCR store the real images' layers.
    """
    repository, _, tag = reference.split("/", 1)[1].rpartition(":")
    entries = []
    with httpx.Client(base_url=registry_url, timeout=UPLOAD_TIMEOUT) as client:
        for platform, layer in layers.items():
            layer_digest, layer_size = push_blob(client, repository, gzipped_layer(layer))
            operating_system, architecture = platform.split("/")
            config_document = {
                "architecture": architecture,
                "os": operating_system,
                "config": dict(config),
                "rootfs": {"type": "layers", "diff_ids": [_file_digest(layer)]},
                "history": [{"created_by": f"image-tests stand-in {reference}"}],
            }
            config_raw = json.dumps(config_document, sort_keys=True).encode()
            config_digest, config_size = push_blob(client, repository, config_raw)
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
                "layers": [
                    {"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": layer_size}
                ],
            }
            digest, size = _put_manifest(
                client, repository, sha256_digest(canonical_json(manifest)), manifest
            )
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": size,
                    "platform": {"architecture": architecture, "os": operating_system},
                }
            )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        digest, _ = _put_manifest(client, repository, tag, index)
    return digest


@dataclass(frozen=True)
class _BaseImage:
    """How to make one base-image stand-in: its ARG, platforms, layer and image config."""

    build_arg: str
    platforms: tuple[str, ...]
    layer: Callable[[Path, str, Mapping[str, str]], Path]
    config: Mapping[str, Any]


BASE_IMAGES: tuple[_BaseImage, ...] = (
    _BaseImage(
        "PYTHON_IMAGE",
        ("linux/amd64", "linux/arm64"),
        lambda cache, platform, _defaults: python_rootfs(cache, platform),
        {"Env": [f"PATH={DEFAULT_PATH}", "LANG=C.UTF-8", TRUST_HOST_CA], "Cmd": ["python3"]},
    ),
    _BaseImage(
        "UV_IMAGE",
        ("linux/amd64", "linux/arm64"),
        lambda cache, platform, defaults: uv_layer(cache, platform, defaults["UV_VERSION"]),
        {"Env": [f"PATH={DEFAULT_PATH}"], "Entrypoint": ["/uv"]},
    ),
)


def dockerfile_base_defaults() -> dict[str, str]:
    """Every ``ARG`` default of the two Dockerfiles (the same name has one value in both)."""
    defaults: dict[str, str] = {}
    for name in ("Dockerfile.api", "Dockerfile.worker"):
        for key, value in dockerfile_defaults(REPO_ROOT / name).items():
            if defaults.setdefault(key, value) != value:
                raise ValueError(f"ARG {key} differs between the Dockerfiles: {value!r}")
    return defaults


def push_base_standins(cache: Path, registry_host: str) -> dict[str, str]:
    """Make and push every base-image stand-in; the build args that point the builds at them."""
    defaults = dockerfile_base_defaults()
    build_args = {}
    for base in BASE_IMAGES:
        reference = standin_reference(registry_host, defaults[base.build_arg])
        layers = {platform: base.layer(cache, platform, defaults) for platform in base.platforms}
        push_standin(f"http://{registry_host}", reference, layers, base.config)
        build_args[base.build_arg] = reference
    return build_args


COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
CADDY_CONFIG = {
    "Env": [f"PATH={DEFAULT_PATH}", "XDG_CONFIG_HOME=/config", "XDG_DATA_HOME=/data"],
    "Cmd": ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"],
    "WorkingDir": "/srv",
}
"""What the official Caddy image runs, with its XDG directories."""


def compose_image(service: str) -> str:
    """The image docker-compose.yml names for ``service``."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    return str(document["services"][service]["image"])


def push_caddy_standin(cache: Path, registry_host: str) -> str:
    """Make and push the Caddy stand-in; its reference in the loopback registry."""
    reference = standin_reference(registry_host, compose_image("caddy"))
    push_standin(
        f"http://{registry_host}", reference, {"linux/amd64": caddy_rootfs(cache)}, CADDY_CONFIG
    )
    return reference

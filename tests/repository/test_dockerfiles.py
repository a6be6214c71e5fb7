"""The Dockerfiles, .dockerignore and docker-compose.yml agree with the catalogue and the layout.

Nothing is built here (that needs a container engine): these tests read the files and hold them
to the rules a build would reveal late or never: platforms that disagree with the catalogue,
a COPY of a file the build context does not carry, labels that fight the pipeline's, a compose
file that runs images the pipeline does not publish.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipeline.main import WORKER_FILES, WORKER_LOCK
from pipeline.rules.catalogue import CATALOGUE, ImageSpec, find_image
from pipeline.rules.references import DEFAULT_OWNER, DEFAULT_REGISTRY, repository

ROOT = Path(__file__).resolve().parents[2]

LAYOUT_FILES = (
    "pyproject.toml",
    "uv.lock",
    "scripts/validate-api.sh",
    "scripts/validate-worker.sh",
)
LAYOUT_DIRS = ("src/qm_nmr_calc", "data/benchmark/delta50")
"""What the build context (a qm-nmr-calc checkout) carries into the images, and nothing else."""

VERSION_VARIABLE = "QM_NMR_CALC_VERSION"
APP_SETTINGS = {
    "SMTP_HOST": "localhost",
    "SMTP_PORT": "587",
    "SMTP_USER": "",
    "SMTP_PASSWORD": "",
    "NOTIFICATION_FROM": "noreply@qm-nmr-calc.example",
    "BASE_URL": "http://localhost:8000",
}
"""What the application reads from its environment (notifications.py), with its own defaults."""
DATA_DIR = "/app/data"
CASE_PLATFORM = re.compile(r"(?P<platform>linux/[a-z0-9/]+)\)")
BASE_IMAGE_ARG = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+)\}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
RUNTIME_PACKAGES = {
    # RDKit's drawing code (imported at start-up) needs libexpat1, libxrender1 and libxext6; the
    # Python image has no libexpat1, which the image tests' stand-in base cannot show.
    "api": {"libexpat1", "libxrender1", "libxext6", "curl"},
    "worker": {"libexpat1", "libxrender1", "libxext6", "ca-certificates", "procps"},
}
"""What each image's final stage must install explicitly, and why."""


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined, e.g. ``RUN`` and its arguments."""

    keyword: str
    arguments: str


def parse(text: str) -> list[Instruction]:
    """A Dockerfile's instructions; comments (parser directives too) and blank lines dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation line"
    return instructions


def dockerfile(spec: ImageSpec) -> list[Instruction]:
    return parse((ROOT / spec.dockerfile).read_text())


def copy_sources(instruction: Instruction) -> list[str]:
    """The build-context paths a COPY or ADD reads; none for a copy from another stage."""
    arguments = instruction.arguments
    words = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
    if any(word.startswith("--from=") for word in words):
        return []
    paths = [word for word in words if not word.startswith("--")]
    return paths[:-1]


def bind_sources(instruction: Instruction) -> list[str]:
    """The build-context paths a RUN bind-mounts (``--mount=type=bind`` without ``from=``)."""
    sources = []
    for word in instruction.arguments.split():
        if not word.startswith("--mount="):
            continue
        options = {}
        for option in word.removeprefix("--mount=").split(","):
            key, _, value = option.partition("=")
            options[key] = value
        if options.get("type", "bind") == "bind" and "from" not in options:
            sources.append(options.get("source", options.get("src", ".")))
    return sources


def in_layout(path: str) -> bool:
    path = path.removeprefix("./").rstrip("/")
    if path in (*WORKER_FILES, WORKER_LOCK, "worker"):
        return True  # this repository's files, laid over the checkout (pipeline.main)
    return path in LAYOUT_FILES or any(
        path == directory or path.startswith(directory + "/") for directory in LAYOUT_DIRS
    )


def stages(instructions: list[Instruction]) -> list[tuple[str, list[Instruction]]]:
    """Each build stage, as its name (``AS name``, or its index) and its instructions."""
    found: list[tuple[str, list[Instruction]]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            is_named = len(words) >= 2 and words[-2].upper() == "AS"
            found.append((words[-1] if is_named else str(len(found)), []))
        elif found:
            found[-1][1].append(instruction)
    return found


def guard(instructions: list[Instruction]) -> tuple[str, Instruction] | None:
    """The stage name and RUN that stop a build for another platform, if there is one."""
    for name, body in stages(instructions):
        for instruction in body:
            arguments = instruction.arguments
            if instruction.keyword == "RUN" and "TARGET" in arguments and "exit 1" in arguments:
                return name, instruction
    return None


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """The .dockerignore patterns in order, as (is an exception ``!``, regular expression)."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        # Go's filepath.Match, plus `**` for any number of directories, as Docker reads them.
        regex = pattern.replace(".", r"\.").replace("?", "[^/]")
        regex = regex.replace("**/", "\0").replace("*", "[^/]*").replace("\0", "(?:.*/)?")
        rules.append((negated, re.compile(regex + r"\Z")))
    return rules


def ignored(path: str) -> bool:
    """Whether Docker leaves ``path`` out: the last pattern matching it or a parent decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: count + 1]) for count in range(len(parts))]
    excluded = False
    for negated, regex in ignore_rules():
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_every_catalogue_dockerfile_exists_at_the_root(spec: ImageSpec) -> None:
    assert "/" not in spec.dockerfile
    assert (ROOT / spec.dockerfile).is_file(), f"{spec.dockerfile} is missing"


def test_worker_installs_the_same_dependencies_as_the_api() -> None:
    # One way to install the locked Python packages for a target platform: the worker's
    # dependencies and application stages are the api's, instruction for instruction.
    api = dict(stages(dockerfile(find_image("api"))))
    worker = dict(stages(dockerfile(find_image("worker"))))
    for name in ("dependencies", "application"):
        assert worker[name] == api[name], f"the worker's {name} stage differs from the api's"


def test_worker_conda_stack_is_installed_natively_from_the_lock_only() -> None:
    instructions = dockerfile(find_image("worker"))
    (stack_from,) = [
        i.arguments
        for i in instructions
        if i.keyword == "FROM" and "scientific-stack" in i.arguments
    ]
    assert stack_from.startswith("--platform=$BUILDPLATFORM ")
    body = dict(stages(instructions))["scientific-stack"]
    runs = [i.arguments for i in body if i.keyword == "RUN"]
    assert any("--require-hashes" in run and "--only-binary=:all:" in run for run in runs)
    (install,) = [run for run in runs if "conda_env.py install" in run]
    assert f"/{WORKER_LOCK} " in install
    assert '"${TARGETPLATFORM}"' in install
    assert not any("conda_env.py lock" in run or "solve" in run for run in runs)
    _, final = stages(instructions)[-1]
    assert Instruction("COPY", "--from=scientific-stack /opt/conda /opt/conda") in final


def test_api_installs_dependencies_for_exactly_the_catalogue_platforms() -> None:
    spec = find_image("api")
    found = guard(dockerfile(spec))
    assert found is not None, "the api's dependency stage must refuse an unknown platform"
    name, run = found
    assert name == "dependencies"
    assert tuple(CASE_PLATFORM.findall(run.arguments)) == spec.platforms
    assert "--python-platform" in run.arguments


def from_stages(instructions: list[Instruction]) -> list[str]:
    """The image each FROM starts from (flags and ``AS name`` dropped)."""
    images = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = [word for word in instruction.arguments.split() if not word.startswith("--")]
            images.append(words[0])
    return images


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    """``ARG NAME=default`` of a Dockerfile."""
    return dict(
        i.arguments.split("=", 1) for i in instructions if i.keyword == "ARG" and "=" in i.arguments
    )


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_every_base_image_is_named_once_in_an_arg(spec: ImageSpec) -> None:
    instructions = dockerfile(spec)
    defaults = arg_defaults(instructions)
    stage_names = {name for name, _ in stages(instructions)}
    for image in from_stages(instructions):
        if image in stage_names:
            continue
        match = BASE_IMAGE_ARG.match(image)
        assert match, f"FROM {image}: name base images through an ARG, ready for a digest pin"
        assert match["name"].endswith("_IMAGE")
        assert defaults.get(match["name"]), f"ARG {match['name']} needs a default"


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_dependencies_never_build_the_project(spec: ImageSpec) -> None:
    # Building upstream's wheel needs hatchling, unpinned, which refuses its pyproject from 1.30.
    syncs = [i.arguments for i in dockerfile(spec) if "uv sync" in i.arguments]
    assert syncs
    for sync in syncs:
        assert "--locked" in sync
        assert "--no-install-project" in sync
        assert "--no-dev" in sync
    # the one pip install is the worker's conda installer, pinned by hash
    pip_installs = [i.arguments for i in dockerfile(spec) if "pip install" in i.arguments]
    assert all("--require-hashes" in arguments for arguments in pip_installs)


def test_every_requirement_of_the_installer_is_pinned_by_hash() -> None:
    text = (ROOT / "worker" / "requirements.txt").read_text()
    requirements = [
        line for line in text.replace("\\\n", " ").splitlines() if line and line[0] != "#"
    ]
    assert requirements
    for requirement in requirements:
        name, _, rest = requirement.partition("==")
        assert rest, f"{name}: pin an exact version"
        hashes = re.findall(r"--hash=sha256:(\S+)", rest)
        assert len(hashes) >= 2, f"{name}: one hash per build-machine architecture"
        assert all(SHA256.match(digest) for digest in hashes)


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_runtime_dependencies_are_explicit(spec: ImageSpec) -> None:
    _, final = stages(dockerfile(spec))[-1]
    installs = " ".join(i.arguments for i in final if "apt-get install" in i.arguments)
    assert RUNTIME_PACKAGES[spec.name] <= set(installs.split())


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_context_paths_belong_to_the_layout(spec: ImageSpec) -> None:
    sources = [
        source
        for instruction in dockerfile(spec)
        for source in (
            copy_sources(instruction)
            if instruction.keyword in ("COPY", "ADD")
            else bind_sources(instruction)
            if instruction.keyword == "RUN"
            else []
        )
    ]
    assert sources, f"{spec.dockerfile} reads nothing from the build context"
    assert [source for source in sources if not in_layout(source)] == []


def test_the_worker_files_laid_over_the_context_pass_the_dockerignore() -> None:
    for name in (*WORKER_FILES, WORKER_LOCK):
        assert not ignored(name), f".dockerignore leaves out {name}"
    assert ignored("worker/notes.md")


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_oci_labels_are_left_to_the_pipeline(spec: ImageSpec) -> None:
    labels = [i.arguments for i in dockerfile(spec) if i.keyword == "LABEL"]
    assert [label for label in labels if "org.opencontainers.image." in label] == []


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_compose_runs_the_published_image_defaulting_to_latest(spec: ImageSpec) -> None:
    service = compose()["services"][spec.name]
    published = repository(DEFAULT_REGISTRY, DEFAULT_OWNER, spec)
    assert service["image"] == f"{published}:${{{VERSION_VARIABLE}:-latest}}"
    assert f"data:{DATA_DIR}" in service["volumes"]


def test_compose_shares_upstreams_data_volume_and_gives_it_to_uid_999() -> None:
    services = compose()["services"]
    assert set(services) == {"init", "api", "caddy", "worker"}
    for name in ("init", "api", "worker"):
        assert f"data:{DATA_DIR}" in services[name]["volumes"], name
    # upstream's name: a volume its root-running worker wrote is the one mounted here
    assert compose()["volumes"]["data"]["name"] == "qm-nmr-calc-data"
    init = services["init"]
    assert init["user"] == "0:0"
    assert init["command"] == ["chown", "-R", "999:999", DATA_DIR]
    assert init["image"] == services["api"]["image"], "init needs no other image"
    assert services["api"]["depends_on"]["init"]["condition"] == "service_completed_successfully"


def test_compose_serves_the_api_through_caddy() -> None:
    services = compose()["services"]
    caddy = services["caddy"]
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert caddy["depends_on"]["api"]["condition"] == "service_healthy"
    assert caddy["environment"]["DOMAIN"] == "${DOMAIN:-localhost}"
    assert "ports" not in services["api"], "the API is reached through Caddy only"
    caddyfile = (ROOT / "Caddyfile").read_text()
    assert "{$DOMAIN:localhost} {" in caddyfile
    assert "reverse_proxy api:8000" in caddyfile


def test_compose_worker_runs_as_upstream_deploys_it() -> None:
    worker = compose()["services"]["worker"]
    assert "platform" not in worker, "the engine pulls its own platform of the worker"
    assert worker["stop_signal"] == "SIGINT"
    assert worker["healthcheck"]["test"] == ["CMD", "pgrep", "-f", "huey_consumer"]
    assert worker["mem_limit"] == "${WORKER_MEMORY_LIMIT:-8g}"
    assert worker["environment"]["NWCHEM_NPROC"] == "${NWCHEM_NPROC:-}"
    assert worker["environment"]["OMP_NUM_THREADS"] == "${OMP_NUM_THREADS:-1}"
    assert worker["depends_on"]["api"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_compose_passes_every_setting_the_app_reads(service: str) -> None:
    environment = compose()["services"][service]["environment"]
    for variable in APP_SETTINGS:
        assert environment[variable] == f"${{{variable}:-{APP_SETTINGS[variable]}}}", variable
    example = (ROOT / ".env.example").read_text()
    for variable in APP_SETTINGS:
        assert f"\n{variable}=" in example, f".env.example does not show {variable}"


def test_compose_file_is_valid_for_a_real_compose_implementation(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian package docker-compose) is needed to validate the file"
    result = subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"),
         "config"],
        capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin",
        "QM_NMR_CALC_VERSION": "2.4.0", "DOMAIN": "nmr.example.org", "SMTP_PORT": "2525"},
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert resolved["api"]["image"].endswith("qm-nmr-calc-api:2.4.0")
    assert resolved["worker"]["image"].endswith("qm-nmr-calc-worker:2.4.0")
    assert resolved["caddy"]["environment"]["DOMAIN"] == "nmr.example.org"
    assert resolved["worker"]["environment"]["SMTP_PORT"] == "2525"
    assert resolved["api"]["environment"]["SMTP_PORT"] == "2525"


@pytest.mark.parametrize(
    "path",
    [
        *LAYOUT_FILES,
        *LAYOUT_DIRS,
        "src/qm_nmr_calc/api/app.py",
        "data/benchmark/delta50/experimental_shifts.json",
    ],
)
def test_dockerignore_keeps_the_layout(path: str) -> None:
    assert not ignored(path)


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".env",
        "data/huey.db",
        "data/jobs/x/status.json",
        "tests/test_api.py",
        "src/qm_nmr_calc/x.pyc",
    ],
)
def test_dockerignore_leaves_out_everything_else(path: str) -> None:
    assert ignored(path)


def test_both_images_pin_the_same_uv() -> None:
    for name in ("UV_VERSION", "UV_IMAGE"):
        pins = {spec.name: arg_defaults(dockerfile(spec)).get(name) for spec in CATALOGUE}
        assert None not in pins.values(), pins
        assert len(set(pins.values())) == 1, pins

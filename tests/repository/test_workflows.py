"""The GitHub workflows stay thin, pinned and least-privileged.

The release workflow only hands the tag, the actor and the token to `dagger call publish`; CI runs
`scripts/test` and `dagger check`; the example upstream adds (`examples/upstream-release.yml`)
calls this repository as a remote module on upstream's checkout. These tests read the YAML
files and hold them to those rules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipeline.main import WORKER_LOCK, WORKER_LOCK_WORKFLOW
from pipeline.rules.catalogue import find_image

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
RELEASE = WORKFLOWS / "release.yml"
EXAMPLES = ROOT / "examples"
UPSTREAM_RELEASE = EXAMPLES / "upstream-release.yml"
WORKER_LOCK_WORKFLOWS = {
    ROOT / WORKER_LOCK_WORKFLOW: ({"contents": "read"}, WORKER_LOCK),
    EXAMPLES / "upstream-worker-lock.yml": ({}, "conda.lock"),
}
"""The workflows that make the lock, with their job's permissions and where they export it."""
LOCK_ARTIFACT = "worker-conda-lock"
TEST_SCRIPT = ROOT / "scripts" / "test"
REMOTE_MODULE = re.compile(r"^github\.com/[^/@\s]+/[^/@\s]+@[^\s]+$")
DAGGER_ACTION = "dagger/dagger-for-github"
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
KEYLESS_REHEARSAL = "keyless-rehearsal"
"""The CI job that signs a rehearsal keylessly."""
TOKEN_EXPRESSION = re.compile(r"\$\{\{\s*secrets\.GITHUB_TOKEN\s*\}\}")


def load(path: Path) -> dict[str, Any]:
    """Parse a workflow; YAML 1.1 reads the key `on` as True, so it is renamed back."""
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    if True in data:
        data["on"] = data.pop(True)
    return data


def workflow_files() -> list[Path]:
    """This repository's workflows and the example workflows it gives others."""
    return sorted(
        path
        for folder in (WORKFLOWS, EXAMPLES)
        for pattern in ("*.yml", "*.yaml")
        for path in folder.glob(pattern)
    )


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def dagger_steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in steps(workflow) if str(s.get("uses", "")).startswith(DAGGER_ACTION + "@")]


def normalize_version(version: object) -> str:
    return str(version).removeprefix("v")


def effective_permissions(workflow: dict[str, Any], job: dict[str, Any]) -> object:
    """A job's permissions: its own block if it has one, else the workflow's."""
    return job["permissions"] if "permissions" in job else workflow.get("permissions")


def publish_step(workflow: dict[str, Any]) -> dict[str, Any]:
    calls = [s for s in dagger_steps(workflow) if s.get("with", {}).get("verb", "call") == "call"]
    assert len(calls) == 1, "the release workflow needs exactly one `dagger call` step"
    return calls[0]


def test_the_workflows_exist() -> None:
    names = {path.name for path in workflow_files()}
    assert {"release.yml", "ci.yml", "upstream-release.yml"} <= names


def test_the_test_script_lints_every_workflow_and_example() -> None:
    script = TEST_SCRIPT.read_text().splitlines()
    (actionlint,) = [line for line in script if line.startswith("actionlint ")]
    (zizmor,) = [line for line in script if " zizmor " in f" {line} "]
    for line in (actionlint, zizmor):
        assert ".github/workflows" in line, line
        assert "examples/*.yml" in line, line


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_every_third_party_action_is_pinned_to_a_full_commit_sha(path: Path) -> None:
    for step in steps(load(path)):
        uses = step.get("uses")
        if uses is None or uses.startswith(("./", "docker://")):
            continue
        action, _, ref = uses.partition("@")
        assert FULL_SHA.match(ref), f"{path.name}: {action} is pinned to {ref!r}, not a commit SHA"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_checkout_never_persists_credentials(path: Path) -> None:
    for step in steps(load(path)):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, path.name


def test_the_engine_version_in_the_workflows_is_dagger_json_s() -> None:
    engine = json.loads((ROOT / "dagger.json").read_text())["engineVersion"]
    seen = 0
    for path in workflow_files():
        for step in dagger_steps(load(path)):
            version = step.get("with", {}).get("version")
            assert version is not None, f"{path.name}: {DAGGER_ACTION} without a pinned version"
            assert normalize_version(version) == normalize_version(engine), path.name
            seen += 1
    assert seen >= 2, "both the release and the CI workflow run dagger"


def test_ci_runs_the_test_script_dagger_check_and_the_engine_tests() -> None:
    ci = load(WORKFLOWS / "ci.yml")
    assert set(ci["on"]) == {"pull_request", "push"}
    assert ci["on"]["push"]["branches"] == ["main"]
    runs = [str(step.get("run", "")) for step in steps(ci)]
    assert any(run.strip().endswith(" scripts/test") for run in runs)
    verbs = [step.get("with", {}).get("verb") for step in dagger_steps(ci)]
    assert set(verbs) == {None}  # the action only installs the CLI
    assert "dagger check" in [run.strip() for run in runs]
    (engine,) = [
        job
        for job in ci["jobs"].values()
        if any(s in dagger_steps({"jobs": {"j": job}}) for s in job["steps"])
        and any("tests/engine" in str(step.get("run", "")) for step in job["steps"])
    ]
    (engine_run,) = [step for step in engine["steps"] if "tests/engine" in str(step.get("run", ""))]
    assert engine_run["env"]["REQUIRE_DAGGER"] == "1"  # a missing CLI fails, never skips
    for name, job in ci["jobs"].items():
        if name != KEYLESS_REHEARSAL:
            assert effective_permissions(ci, job) == {"contents": "read"}, name


def test_ci_rehearses_signed_keylessly_only_on_pushes_to_main() -> None:
    """The first real Fulcio, Rekor and OIDC token: only where GitHub grants an identity to the
    repository's own code (a push to main), never for a pull request; it cannot skip."""
    ci = load(WORKFLOWS / "ci.yml")
    job = ci["jobs"][KEYLESS_REHEARSAL]
    assert job["if"] == "github.event_name == 'push'"
    assert effective_permissions(ci, job) == {"contents": "read", "id-token": "write"}
    (rehearse,) = [s for s in job["steps"] if "dagger call rehearse" in str(s.get("run", ""))]
    command = " ".join(str(rehearse["run"]).replace("\\\n", " ").split())
    assert command.startswith("dagger call rehearse --tag v")
    assert "--id-token-request-url env:ACTIONS_ID_TOKEN_REQUEST_URL" in command
    assert "--id-token-request-token env:ACTIONS_ID_TOKEN_REQUEST_TOKEN" in command
    assert "continue-on-error" not in job
    assert not any("continue-on-error" in step for step in job["steps"])


def test_release_runs_only_on_pushed_v_tags() -> None:
    trigger = load(RELEASE)["on"]
    assert isinstance(trigger, dict), "release: `on` must be a mapping with only `push`"
    assert set(trigger) == {"push"}
    assert trigger["push"] == {"tags": ["v*"]}


RELEASE_PERMISSIONS = {"contents": "read", "packages": "write", "id-token": "write"}
"""Check out, push to GHCR, and sign keylessly with the workflow's OIDC identity: no more."""


def test_release_job_permissions_are_exactly_read_push_and_sign() -> None:
    release = load(RELEASE)
    assert release.get("permissions") in ({}, RELEASE_PERMISSIONS)
    assert len(release["jobs"]) == 1
    for job in release["jobs"].values():
        assert effective_permissions(release, job) == RELEASE_PERMISSIONS


def test_release_runs_of_one_tag_never_race() -> None:
    release = load(RELEASE)
    assert release["concurrency"] == {
        "group": "release-${{ github.ref_name }}",
        "cancel-in-progress": False,
    }


def test_release_calls_publish_with_the_tag_the_actor_and_the_token_from_env() -> None:
    step = publish_step(load(RELEASE))
    args = str(step["with"]["args"]).split()
    assert args[0] == "publish"
    for flag in ("--tag", "--username", "--password"):
        assert args.count(flag) == 1, f"{flag} missing or repeated"
    assert args[args.index("--password") + 1] == "env:GITHUB_TOKEN"
    env = step.get("env", {})
    # The tag and the actor reach the command through env, never as template text in args.
    assert "${{" not in str(step["with"]["args"])
    tag_var = args[args.index("--tag") + 1].strip('"')
    user_var = args[args.index("--username") + 1].strip('"')
    assert tag_var.startswith("$")
    assert env.get(tag_var[1:]) == "${{ github.ref_name }}"
    assert user_var.startswith("$")
    assert env.get(user_var[1:]) == "${{ github.actor }}"
    assert TOKEN_EXPRESSION.fullmatch(str(env.get("GITHUB_TOKEN", "")))
    # The OIDC request pair comes from the runner's environment, never through args as text.
    assert args[args.index("--id-token-request-url") + 1] == "env:ACTIONS_ID_TOKEN_REQUEST_URL"
    assert args[args.index("--id-token-request-token") + 1] == "env:ACTIONS_ID_TOKEN_REQUEST_TOKEN"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_the_token_appears_only_in_step_env(path: Path) -> None:
    workflow = load(path)
    in_env = sum(
        len(TOKEN_EXPRESSION.findall(str(value)))
        for step in steps(workflow)
        for value in step.get("env", {}).values()
    )
    everywhere = len(TOKEN_EXPRESSION.findall(path.read_text()))
    assert everywhere == in_env, f"{path.name}: the token is used outside a step's env"
    assert "secrets." not in path.read_text().replace("secrets.GITHUB_TOKEN", "")


def args_of(step: dict[str, Any]) -> list[str]:
    """The step's `dagger call` arguments, split as bash splits them (quotes dropped)."""
    return [arg.strip('"') for arg in str(step["with"]["args"]).split()]


def flag_value(args: list[str], flag: str) -> str:
    """The one value ``flag`` is given."""
    assert args.count(flag) == 1, f"{flag} missing or repeated"
    return args[args.index(flag) + 1]


def test_upstream_release_runs_on_v_tags_with_least_privilege() -> None:
    upstream = load(UPSTREAM_RELEASE)
    assert upstream["on"] == {"push": {"tags": ["v*"]}}
    assert upstream["concurrency"] == {
        "group": "release-${{ github.ref_name }}",
        "cancel-in-progress": False,
    }
    assert len(upstream["jobs"]) == 1
    for job in upstream["jobs"].values():
        assert effective_permissions(upstream, job) == RELEASE_PERMISSIONS


def test_upstream_release_is_a_checkout_and_one_pinned_dagger_call() -> None:
    upstream = load(UPSTREAM_RELEASE)
    uses = [str(step["uses"]).split("@")[0] for step in steps(upstream) if "uses" in step]
    assert uses == ["actions/checkout", DAGGER_ACTION]
    assert [s["uses"] for s in dagger_steps(upstream)] == [
        s["uses"] for s in dagger_steps(load(RELEASE))
    ]


def test_upstream_release_calls_this_module_on_its_checkout_at_the_tag_s_commit() -> None:
    step = publish_step(load(UPSTREAM_RELEASE))
    assert REMOTE_MODULE.match(str(step["with"]["module"])), step["with"]["module"]
    args = args_of(step)
    env = step.get("env", {})
    assert "${{" not in str(step["with"]["args"])
    assert args.index("publish") > args.index("--source")  # constructor flags come first
    assert flag_value(args, "--source") == "."
    expected = {
        "--revision": "${{ github.sha }}",
        "--owner": "${{ github.repository_owner }}",
        "--tag": "${{ github.ref_name }}",
        "--username": "${{ github.actor }}",
    }
    for flag, expression in expected.items():
        variable = flag_value(args, flag)
        assert variable.startswith("$"), flag
        assert env.get(variable[1:]) == expression, flag
    assert flag_value(args, "--password") == "env:GITHUB_TOKEN"
    assert TOKEN_EXPRESSION.fullmatch(str(env.get("GITHUB_TOKEN", "")))


def test_ci_image_tests_run_on_the_runner_s_docker_without_installing_another() -> None:
    """docker.io would replace the runner's Docker CE (containerd.io conflicts with containerd)."""
    ci = load(WORKFLOWS / "ci.yml")
    runs = " ".join(str(step.get("run", "")) for step in steps(ci))
    assert "apt-get" not in runs  # scripts/test installs, without recommends and docker.io
    (test_step,) = [step for step in steps(ci) if str(step.get("run", "")).endswith("scripts/test")]
    assert test_step["env"]["IMAGE_TESTS_DOCKER_HOST"] == "unix:///var/run/docker.sock"
    preserved = re.search(r"--preserve-env=(\S+)", test_step["run"])
    assert preserved is not None, "sudo drops the environment the tests need"
    assert {"CI", "IMAGE_TESTS_DOCKER_HOST"} <= set(preserved.group(1).split(","))


def test_the_adoption_guide_names_the_example_s_one_placeholder() -> None:
    """The module address is the one name nobody could check: the guide says to replace it."""
    module = str(publish_step(load(UPSTREAM_RELEASE))["with"]["module"])
    guide = (ROOT / "docs" / "adopting.md").read_text()
    assert f"`module: {module}`" in guide
    assert "docs/adopting.md" in UPSTREAM_RELEASE.read_text()


def test_ci_runs_the_worker_science_natively_on_every_worker_platform() -> None:
    job = load(WORKFLOWS / "ci.yml")["jobs"]["worker-science"]
    matrix = job["strategy"]["matrix"]["include"]
    assert sorted(entry["platform"] for entry in matrix) == sorted(find_image("worker").platforms)
    runners = {entry["platform"]: entry["runner"] for entry in matrix}
    assert runners["linux/arm64"].endswith("-arm"), "arm64 builds natively, not emulated"
    runs = " ".join(str(step.get("run", "")) for step in job["steps"])
    assert ".ci/worker-science" in runs
    assert (ROOT / ".ci" / "worker-science").is_file()


@pytest.mark.parametrize("path", [RELEASE, UPSTREAM_RELEASE], ids=lambda path: path.name)
def test_the_published_references_and_the_report_go_to_the_job_summary(path: Path) -> None:
    """What publish prints (references, tags left and why, verification) is in the summary."""
    workflow = load(path)
    publish = publish_step(workflow)
    assert "id" in publish, f"{path.name}: the publish step needs an id to read its output"
    output = f"${{{{ steps.{publish['id']}.outputs.output }}}}"
    after = steps(workflow)[steps(workflow).index(publish) + 1 :]
    summaries = [
        step
        for step in after
        if output in step.get("env", {}).values()
        and '>>"$GITHUB_STEP_SUMMARY"' in str(step.get("run", ""))
    ]
    assert len(summaries) == 1, f"{path.name}: no step writes {output} to the job summary"
    (variable,) = [name for name, value in summaries[0]["env"].items() if value == output]
    assert f'"${variable}"' in summaries[0]["run"], "the output itself is written"


@pytest.mark.parametrize("path", sorted(WORKER_LOCK_WORKFLOWS), ids=lambda path: path.name)
def test_the_lock_is_made_on_github_only_by_hand_with_least_privilege(path: Path) -> None:
    workflow = load(path)
    permissions, _ = WORKER_LOCK_WORKFLOWS[path]
    assert workflow["on"] == {"workflow_dispatch": None}
    assert workflow.get("permissions") == {}
    (job,) = workflow["jobs"].values()
    assert effective_permissions(workflow, job) == permissions


@pytest.mark.parametrize("path", sorted(WORKER_LOCK_WORKFLOWS), ids=lambda path: path.name)
def test_the_lock_workflow_uploads_the_lock_and_says_how_to_commit_it(path: Path) -> None:
    workflow = load(path)
    _, exported = WORKER_LOCK_WORKFLOWS[path]
    (make,) = dagger_steps(workflow)
    assert args_of(make) == ["worker-lock", "export", "--path", exported]
    (upload,) = [s for s in steps(workflow) if str(s.get("uses", "")).startswith("actions/upload")]
    assert upload["with"] == {"name": LOCK_ARTIFACT, "path": exported, "if-no-files-found": "error"}
    summary = steps(workflow)[-1]["run"]
    assert '>>"$GITHUB_STEP_SUMMARY"' in summary
    assert f"--name {LOCK_ARTIFACT} --dir worker" in summary
    assert f"git add {WORKER_LOCK}" in summary
    assert f"'/^made-by:/,$p' {exported}" in summary, "what made the lock is shown for review"


def test_the_way_a_lock_workflow_calls_the_same_module_as_the_release() -> None:
    (make,) = dagger_steps(load(EXAMPLES / "upstream-worker-lock.yml"))
    assert make["with"]["module"] == publish_step(load(UPSTREAM_RELEASE))["with"]["module"]

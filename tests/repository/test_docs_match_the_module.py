"""What the docs tell a maintainer to type, link to or look for exists: checked against the code.

The checks live in ``tests.support.documented``; each is run here on the real README, docs/,
examples/ and workflows, and shown to fail on a wrong function, flag, stage, link, command, type
or version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline.attest.statements import SBOM

from tests.support import documented
from tests.support.documented import ROOT

SURFACE = documented.module_surface()


def write(tmp_path: Path, name: str, text: str) -> Path:
    """A document (or workflow) in ``tmp_path``."""
    path = tmp_path / name
    path.write_text(text)
    return path


# --- dagger call -------------------------------------------------------------------------------


def test_every_documented_dagger_call_names_a_function_and_flags_the_module_has() -> None:
    assert documented.dagger_problems() == []


def test_the_dagger_calls_are_read_from_every_kind_of_place() -> None:
    """Not vacuous: code blocks, inline code, the action's args and run scripts are all read."""
    calls = {(where, " ".join(words)) for where, words in documented.dagger_calls()}
    assert ("README.md", "dagger call worker-lock export --path worker/conda.lock") in calls
    assert ("README.md", "dagger call plan --tag v2.4.0") in calls  # inline, in a table
    assert any(where == "adopting.md" and " publish " in call for where, call in calls)
    assert ("worker-lock.yml", "dagger call worker-lock export --path worker/conda.lock") in calls
    assert any(w == "ci.yml" and "build --image worker" in c for w, c in calls)  # run:
    assert any(w == "upstream-release.yml" and "--id-token-request-url" in c for w, c in calls)


def test_the_module_surface_is_read_from_the_code() -> None:
    assert set(SURFACE.functions) >= {"plan", "build", "publish", "rehearse", "verify"}
    assert "worker-lock" in SURFACE.functions
    assert SURFACE.functions["publish"]["--dry-run"] is True  # a switch
    assert SURFACE.functions["publish"]["--tag"] is False  # takes a value
    assert set(SURFACE.constructor) == {
        "--source",
        "--build-files",
        "--revision",
        "--registry",
        "--owner",
    }


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("dagger call publsh --tag v2.4.0", "has no such function"),
        ("dagger call publish --tagg v2.4.0", "publish has no such flag"),
        ("dagger call --sorce . plan --tag v2.4.0", "constructor has no such flag"),
        ("dagger -m M call --source . rehearse --tag v1.0.0 --dry-run", "rehearse has no such"),
        ("dagger call publish --dry-run --laptop", "publish has no such flag"),
        ("dagger call worker-lock --path worker/conda.lock", "worker-lock has no such flag"),
    ],
)
def test_a_wrong_function_or_flag_is_caught(command: str, problem: str) -> None:
    problems = documented.dagger_call_problems(command.split(), SURFACE, "doc")
    assert len(problems) == 1
    assert problem in problems[0]


@pytest.mark.parametrize(
    "command",
    [
        "dagger call worker-lock export --path worker/conda.lock",  # a File's own export
        "dagger call build --image api --platform linux/arm64 with-exec --args ls stdout",
        "dagger call publish --dry-run --tag v2.4.0",  # a switch takes no value
        "dagger call -m github.com/o/r@abc --source . --owner o publish --tag v1.0.0",
        "dagger call FUNCTION --flag value",  # a placeholder
        "dagger -m github.com/OWNER/REPO@COMMIT call ...",
        "dagger check",
    ],
)
def test_a_right_call_passes(command: str) -> None:
    assert documented.dagger_call_problems(command.split(), SURFACE, "doc") == []


def test_a_wrong_call_in_a_document_or_a_workflow_is_caught(tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        "guide.md",
        "Run it:\n\n    GITHUB_TOKEN=x dagger call publish --tag v1.0.0 --from-laptop\n\n"
        "or `dagger call\nrehearse --tag v1.0.0 --sign`.\n",
    )
    workflow = write(
        tmp_path,
        "wf.yml",
        "jobs:\n  j:\n    steps:\n"
        "      - uses: dagger/dagger-for-github@0000000000000000000000000000000000000000\n"
        "        with:\n          args: publish --tag x --usernme y\n"
        "      - run: test -f x || dagger call worker-lok export --path x\n",
    )
    problems = documented.dagger_problems(documented.dagger_calls((doc,), (workflow,)), SURFACE)
    assert len(problems) == 4, problems
    assert [p.split(":")[0] for p in problems] == ["guide.md", "guide.md", "wf.yml", "wf.yml"]


def test_every_documented_publish_that_pushes_passes_the_identity_it_signs_with() -> None:
    assert documented.publish_problems() == []


def test_a_publish_with_a_token_but_no_identity_is_caught(tmp_path: Path) -> None:
    """As docs/adopting.md once offered: publish from a laptop with a personal token."""
    doc = write(
        tmp_path,
        "guide.md",
        "`GITHUB_TOKEN=... dagger -m ... call --source . --revision ... publish --tag\n"
        "v2.9.0 --username YOU --password env:GITHUB_TOKEN`, or `dagger call publish --dry-run`\n",
    )
    (problem,) = documented.publish_problems(documented.dagger_calls((doc,), ()))
    assert "publish refuses without --id-token-request-url" in problem


CLAIMS = [
    (ROOT / "README.md", ROOT / ".github" / "workflows" / "release.yml"),
    (ROOT / "docs" / "adopting.md", ROOT / "examples" / "upstream-release.yml"),
]


@pytest.mark.parametrize(("document", "workflow"), CLAIMS, ids=lambda path: path.name)
def test_the_permissions_the_docs_state_are_the_workflow_s(document: Path, workflow: Path) -> None:
    assert documented.permission_problems(document, workflow) == []
    assert "exactly `contents: read`" in document.read_text()  # the claim is there to check


def test_permissions_stated_short_of_the_workflow_s_are_caught(tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        "guide.md",
        "The job's `GITHUB_TOKEN`, whose permissions are exactly `contents: read` and\n"
        "`packages: write`. To update the pipeline later, change the commit.\n",
    )
    (problem,) = documented.permission_problems(doc, CLAIMS[1][1])
    assert "'id-token': 'write'" in problem


# --- python -m pipeline ------------------------------------------------------------------------


def test_every_offline_command_line_in_the_docs_parses() -> None:
    assert documented.offline_cli_problems() == []


def test_a_wrong_offline_command_line_is_caught(tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        "guide.md",
        "    python -m pipeline plan v2.4.0 --tags 2.3.0\n\n"
        "    .venv/bin/python -m pipeline verify TAG [--owner O]\n"
        "                                    [--dry-run]\n\n"
        "    python -m pipeline plan TAG [--owner O]\n",
    )
    problems = documented.offline_cli_problems((doc,))
    assert len(problems) == 2, problems
    assert "--tags" in problems[0]
    assert "--dry-run" in problems[1]  # a synopsis's continuation line is read too


# --- Dockerfile stages -------------------------------------------------------------------------


def test_every_stage_the_docs_name_exists() -> None:
    assert documented.stage_problems() == []
    assert {"uv", "scientific-stack", "dependencies", "application"} <= (
        documented.dockerfile_stages()
    )


def test_a_stage_no_dockerfile_has_is_caught(tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        "guide.md",
        "| the worker's build steps name its stages `uv`, `platform-guard` and `downloads` |\n"
        "Look for the `scientific-stack` stage. The `builder` stage is upstream's.\n",
    )
    problems = documented.stage_problems((doc,))
    assert [p.split("`")[1] for p in problems] == ["downloads", "platform-guard"]


# --- links -------------------------------------------------------------------------------------


def test_every_relative_link_and_anchor_resolves() -> None:
    assert documented.link_problems() == []


def test_a_broken_link_or_anchor_is_caught(tmp_path: Path) -> None:
    write(tmp_path, "other.md", "# Other\n\n## The worker's scientific stack\n")
    doc = write(
        tmp_path,
        "guide.md",
        "[a](other.md#the-workers-scientific-stack) [b](missing.md) "
        "[c](other.md#no-such-heading) [d](#here) [e](https://example.org/x.md)\n\n## Here\n",
    )
    problems = documented.link_problems((doc,))
    assert len(problems) == 2, problems
    assert "missing.md does not exist" in problems[0]
    assert "no heading #no-such-heading" in problems[1]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("The worker's scientific stack", "the-workers-scientific-stack"),
        ("`compose.yml` compared with upstream's", "composeyml-compared-with-upstreams"),
        ("The first run: what to look for", "the-first-run-what-to-look-for"),
    ],
)
def test_anchors_are_githubs(heading: str, anchor: str) -> None:
    assert documented.slug(heading) == anchor


def test_every_docs_page_the_code_names_exists(tmp_path: Path) -> None:
    assert documented.docs_named_in_code_problems() == []
    missing = "docs/" + "provenance.md"  # not written out: this file would name it
    code = write(tmp_path, "provenance.py", f'"""Documented in {missing}."""\n')
    (problem,) = documented.docs_named_in_code_problems([code])
    assert f"{missing}, which does not exist" in problem


# --- verification commands ---------------------------------------------------------------------


def test_every_documented_predicate_type_is_one_the_pipeline_attests(tmp_path: Path) -> None:
    assert documented.predicate_type_problems() == []
    doc = write(
        tmp_path,
        "guide.md",
        f"    cosign verify-attestation IMAGE --type spdxjson \\\n      --certificate-identity X\n"
        f"    gh attestation verify oci://IMAGE --predicate-type {SBOM}\n",
    )
    (problem,) = documented.predicate_type_problems((doc,))
    assert "`--type spdxjson`" in problem


# --- tool versions -----------------------------------------------------------------------------


def test_each_tool_version_is_stated_once_and_every_mention_agrees() -> None:
    engine = json.loads((ROOT / "dagger.json").read_text())["engineVersion"].removeprefix("v")
    assert documented.stated_versions() == {"Dagger CLI": engine, "gh": "2.56.0", "cosign": "2.6.3"}
    assert documented.tool_version_problems() == []


@pytest.mark.parametrize(
    "mention",
    [
        "With the [GitHub CLI](https://cli.github.com) 2.49 or later",
        "needs gh 2.55.0",
        "With [cosign](https://github.com/sigstore/cosign) 2.5 (the signature)",
        "install the [Dagger CLI](https://docs.dagger.io) v0.20.3",
    ],
)
def test_a_version_below_the_stated_one_is_caught(tmp_path: Path, mention: str) -> None:
    doc = write(tmp_path, "guide.md", f"{mention}.\n")
    (problem,) = documented.tool_version_problems((doc,))
    assert "README.md's table of tools states" in problem


def test_a_later_version_of_a_minimum_is_accepted(tmp_path: Path) -> None:
    doc = write(tmp_path, "guide.md", "as cosign 3 signs, and gh 2.60.0 reads.\n")
    assert documented.tool_version_problems((doc,)) == []

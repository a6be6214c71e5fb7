"""What the docs claim, read out of them, and checked against the code: one place for all of it.

The README, ``docs/`` and ``examples/`` tell a maintainer what to type. What they name must exist:

- every ``dagger call [-m M] [CONSTRUCTOR FLAGS] FUNCTION [FLAGS]``: the module's function and its
  flags, and the constructor's flags (read from the SDK's record of ``pipeline.main.Pipeline``,
  without an engine; kebab-case as on the CLI). What follows a returned Container or File
  (``export --path``, ``with-exec``...) is the engine's, not the module's: not checked;
- every ``publish`` that pushes passes the OIDC request pair, without which it refuses;
- every ``python -m pipeline ...`` line of a code block: it parses (``pipeline.__main__``);
- every Dockerfile stage named in prose: each lowercase word in backticks in a sentence or table
  cell that speaks of a stage (`` the worker's stages `uv` and `scientific-stack` ``);
- every relative link and ``#anchor``, and every ``docs/*.md`` that code or workflows name;
- every predicate type a documented `cosign verify-attestation` or `gh attestation verify` asks
  for is one the pipeline attests, in full;
- every tool version: the README's table of tools states each once; any other mention of the
  tool with a version must agree (the Dagger CLI is also ``dagger.json``'s engine version).

Each ``*_problems`` function returns one line per problem (empty when the docs hold).
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pipeline.__main__ import BadInputError, build_parser
from pipeline.attest.statements import PREDICATE_TYPES
from pipeline.main import Pipeline

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
"""The markdown a maintainer reads."""
WORKFLOWS = (*sorted((ROOT / ".github" / "workflows").glob("*.yml")), *sorted(
    (ROOT / "examples").glob("*.yml")
))  # fmt: skip
"""The workflows this repository runs and those it gives upstream."""
DOCKERFILES = (ROOT / "Dockerfile.api", ROOT / "Dockerfile.worker")
CODE_NAMING_DOCS = (ROOT / "pipeline" / "src", ROOT / "worker", ROOT / "tests", ROOT / "bench")
"""Where code may name a page of ``docs/`` (a docstring, an error message)."""

UPSTREAM_STAGES = {"builder"}
"""Stages of qm-nmr-calc's OWN Dockerfiles, which docs/adopting.md names to tell them apart."""
ELIDED = "..."
"""A command's rest left out (``dagger -m M call ...``) or a value left out."""
DAGGER_ACTION = "dagger/dagger-for-github@"
MODULE_OPTIONS = {"-m", "--mod"}
"""``dagger`` options that name the module and take a value."""
CODE_LINE = re.compile(r"^ {4,}\S")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
INLINE_CODE = re.compile(r"`([^`]+)`", re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
CLAUSE_END = re.compile(r"(?<=[.;:])\s+(?=[A-Z(])|\s\|\s")
"""Where a sentence or a table cell ends."""
STAGE_WORD = re.compile(r"\bstages?\b")
STAGE_NAME = re.compile(r"`([a-z][a-z0-9-]*)`")
"""A stage's name as prose writes it: a lowercase word in backticks."""
FROM_STAGE = re.compile(r"^FROM\s+.*\bAS\s+([\w.-]+)\s*$", re.MULTILINE | re.IGNORECASE)
DOCS_PATH = re.compile(r"\bdocs/[\w.-]+\.md\b")
TOOLS_HEADING = "Tools and their versions"
"""The README section whose table states each tool's version, once."""
TOOL_MENTIONS = {
    "Dagger CLI": re.compile(r"Dagger CLI\]?(?:\([^)]*\))?\s+(v?\d+\.\d+(?:\.\d+)?)"),
    "gh": re.compile(r"(?:GitHub CLI\]?(?:\([^)]*\))?|`gh`|\bgh)\s+(v?\d+\.\d+(?:\.\d+)?)"),
    "cosign": re.compile(r"cosign\]?(?:\([^)]*\))?\s+(v?\d+(?:\.\d+){0,2})\b"),
}
"""How each tool's version is written in prose: `gh 2.56.0`, `[cosign](...) 2.6.3`, ..."""
PINNED_TOOLS = {"Dagger CLI"}
"""Tools whose version is exact (a pin); the others' is a minimum."""


@dataclass(frozen=True)
class Surface:
    """What ``dagger call`` accepts of this module: constructor flags, functions and theirs."""

    constructor: Mapping[str, bool]
    """Flag -> whether it is a switch (takes no value)."""
    functions: Mapping[str, Mapping[str, bool]]
    """Function -> its flags, each -> whether it is a switch."""


def kebab(name: str) -> str:
    """``take_over_floating`` as the CLI spells it: ``take-over-floating``."""
    return name.replace("_", "-")


def _flags(parameters: Mapping[str, Any]) -> dict[str, bool]:
    """``--flag`` -> whether it is a boolean switch, of an SDK parameter mapping."""
    return {
        f"--{kebab(name)}": parameter.resolved_type is bool
        for name, parameter in parameters.items()
    }


def module_surface() -> Surface:
    """The module's functions and flags as the SDK registers them (no engine needed)."""
    object_type = Pipeline.__dagger_object_type__  # type: ignore[attr-defined]
    return Surface(
        constructor=_flags(object_type.get_constructor().parameters),
        functions={
            kebab(name): _flags(function.parameters)
            for name, function in object_type.functions.items()
            if name  # "" is the constructor
        },
    )


def _tokens(command: str) -> list[str]:
    """A shell command's words; ``[`` ``]`` of a synopsis dropped, a trailing comment too."""
    lexer = shlex.shlex(command.replace("[", " ").replace("]", " "), posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: split on blanks
        return command.split()


def _commands(line: str) -> Iterator[list[str]]:
    """Each simple command of a shell line (split at ``&&``, ``||``, ``;`` and ``|``), from its
    command word on (``VAR=value`` assignments before it dropped)."""
    for part in re.split(r"&&|\|\||;|(?<![|'\"])\|(?![|'\"])", line):
        words = _tokens(part)
        while words and ASSIGNMENT.match(words[0]):
            words = words[1:]
        yield words


def dagger_call_problems(words: list[str], surface: Surface, where: str) -> list[str]:
    """What in one ``dagger ...`` command the module does not have; [] if it is not a call."""
    if not words or words[0] != "dagger":
        return []
    words = words[1:]
    index = 0
    while index < len(words) and words[index] != "call":
        index += 2 if words[index] in MODULE_OPTIONS else 1
    rest = words[index + 1 :]
    if index >= len(words) or not rest:
        return []  # `dagger check`, `dagger functions`, or a bare `dagger call`
    problems: list[str] = []
    position = 0
    while position < len(rest) and rest[position].startswith("-"):
        flag, _, value = rest[position].partition("=")
        if flag in MODULE_OPTIONS:
            position += 2
            continue
        if flag not in surface.constructor:
            problems.append(
                f"{where}: `dagger call {flag}`: the module's constructor has no such flag; "
                f"it has {', '.join(sorted(surface.constructor))}"
            )
        position += 1 if value or surface.constructor.get(flag, False) else 2
    if position >= len(rest):
        return problems
    function = rest[position]
    if function == ELIDED or function.isupper():
        return problems  # `call ...`, or a placeholder such as FUNCTION
    if function not in surface.functions:
        return [
            *problems,
            f"{where}: `dagger call {function}`: the module has no such function; it has "
            f"{', '.join(sorted(surface.functions))}",
        ]
    flags = surface.functions[function]
    position += 1
    while position < len(rest) and rest[position].startswith("--"):
        flag, _, value = rest[position].partition("=")
        if flag not in flags:
            problems.append(
                f"{where}: `dagger call {function} {flag}`: {function} has no such flag; it "
                f"has {', '.join(sorted(flags)) or 'none'}"
            )
        position += 1 if value or flags.get(flag, False) else 2
    return problems


def code_lines(text: str) -> Iterator[str]:
    """The lines of indented code blocks, with ``\\`` continuations and a synopsis's
    continuation lines (starting with ``[``) joined."""
    pending = ""
    for line in text.splitlines():
        if pending and (pending.endswith("\\") or line.lstrip().startswith("[")):
            pending = f"{pending.removesuffix(chr(92))} {line.strip()}"
            continue
        if pending:
            yield pending
        pending = line.strip() if CODE_LINE.match(line) else ""
    if pending:
        yield pending


def inline_code(text: str) -> Iterator[str]:
    """The inline code spans of markdown prose (a span may wrap a line)."""
    prose = "\n".join(line for line in text.splitlines() if not CODE_LINE.match(line))
    for match in INLINE_CODE.finditer(prose):
        yield " ".join(match.group(1).split())


def markdown_dagger_calls(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Every ``dagger`` command of a markdown file (code blocks and inline code), as words."""
    text = path.read_text()
    for snippet in [*code_lines(text), *inline_code(text)]:
        for words in _commands(snippet):
            if words[:1] == ["dagger"]:
                yield path.name, words


def workflow_dagger_calls(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Every ``dagger`` command of a workflow: the dagger action's ``args``, and ``run``."""
    document = yaml.safe_load(path.read_text())
    for job in document.get("jobs", {}).values():
        for step in job.get("steps", []):
            inputs = step.get("with", {})
            if str(step.get("uses", "")).startswith(DAGGER_ACTION) and "args" in inputs:
                yield path.name, ["dagger", inputs.get("verb", "call"), *_tokens(inputs["args"])]
            for line in code_lines(_indent(str(step.get("run", "")))):
                for words in _commands(line):
                    if words[:1] == ["dagger"]:
                        yield path.name, words


def _indent(script: str) -> str:
    """A ``run`` script as an indented code block, so ``code_lines`` joins its continuations."""
    return "\n".join(f"    {line}" for line in script.splitlines())


def dagger_calls(
    documents: tuple[Path, ...] = DOCUMENTS, workflows: tuple[Path, ...] = WORKFLOWS
) -> list[tuple[str, list[str]]]:
    """Every documented ``dagger`` command (where, words): README, docs/ and the workflows."""
    found = [call for path in documents for call in markdown_dagger_calls(path)]
    return found + [call for path in workflows for call in workflow_dagger_calls(path)]


def dagger_problems(
    calls: list[tuple[str, list[str]]] | None = None, surface: Surface | None = None
) -> list[str]:
    """What the module lacks of every documented ``dagger call``."""
    surface = surface or module_surface()
    return [
        problem
        for where, words in (dagger_calls() if calls is None else calls)
        for problem in dagger_call_problems(words, surface, where)
    ]


IDENTITY_FLAGS = ("--id-token-request-url", "--id-token-request-token")
"""What ``publish`` signs with: without both it refuses (``pipeline.main.SIGNING_FLAGS``)."""


def publish_problems(calls: list[tuple[str, list[str]]] | None = None) -> list[str]:
    """Every documented ``publish`` that pushes (it has ``--password``) passes the workflow's
    OIDC request pair: without it ``publish`` refuses, so no such command can work (a laptop's
    personal token included)."""
    return [
        f"{where}: `{' '.join(words)}`: publish refuses without {' and '.join(IDENTITY_FLAGS)} "
        "(the release workflow's OIDC identity); only --dry-run needs neither"
        for where, words in (dagger_calls() if calls is None else calls)
        if "publish" in words
        and "--password" in words
        and not all(flag in words for flag in IDENTITY_FLAGS)
    ]


PERMISSION_CLAIM = re.compile(
    r"(?:permissions are exactly|asks for exactly|asks for)\s+(.*?)(?:\.\s|$)"
)
PERMISSION = re.compile(r"`([a-z-]+): (read|write|none)`")


def permission_problems(document: Path, workflow: Path) -> list[str]:
    """Each sentence of ``document`` saying which permissions the release job asks for names
    exactly the permissions ``workflow``'s publishing job has."""
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    (job,) = [job for job in jobs.values() if "permissions" in job]
    actual = {str(key): str(value) for key, value in job["permissions"].items()}
    problems = []
    for claim in PERMISSION_CLAIM.findall(" ".join(_without_code(document.read_text()).split())):
        stated = dict(PERMISSION.findall(claim))
        if stated and stated != actual:
            problems.append(
                f"{document.name}: says the job asks for {stated}; "
                f"{workflow.name} asks for {actual}"
            )
    return problems


def offline_cli_problems(paths: tuple[Path, ...] = DOCUMENTS) -> list[str]:
    """Every ``python -m pipeline ...`` line of a code block, parsed by the offline CLI."""
    problems = []
    for path in paths:
        for line in code_lines(path.read_text()):
            for words in _commands(line):
                if words[:1] and words[0].endswith("python") and words[1:3] == ["-m", "pipeline"]:
                    problems += _parse_problems(path, line, words[3:])
    return problems


def _parse_problems(path: Path, line: str, arguments: list[str]) -> list[str]:
    """The offline CLI's refusal of ``arguments``, if it refuses them."""
    try:
        build_parser().parse_args(arguments)
    except (BadInputError, SystemExit) as error:
        return [f"{path.name}: `{line}` does not parse: {error}"]
    return []


def dockerfile_stages() -> set[str]:
    """Every named stage (``FROM ... AS name``) of this repository's Dockerfiles."""
    return {name for path in DOCKERFILES for name in FROM_STAGE.findall(path.read_text())}


def named_stages(text: str) -> set[str]:
    """The stages prose names: the backticked words of each clause that speaks of a stage."""
    prose = " ".join(_without_code(text).split())
    return {
        name
        for clause in CLAUSE_END.split(prose)
        if STAGE_WORD.search(clause)
        for name in STAGE_NAME.findall(clause)
    }


def stage_problems(paths: tuple[Path, ...] = DOCUMENTS) -> list[str]:
    """Every stage the docs name that no Dockerfile here has (upstream's own excepted)."""
    stages = dockerfile_stages() | UPSTREAM_STAGES
    return [
        f"{path.name}: names a stage `{name}`; the Dockerfiles have {', '.join(sorted(stages))}"
        for path in paths
        for name in sorted(named_stages(path.read_text()) - stages)
    ]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file (repeated headings numbered, as GitHub does)."""
    found: set[str] = set()
    for heading in HEADING.findall(_without_code(path.read_text())):
        anchor = base = slug(heading)
        number = 0
        while anchor in found:
            number += 1
            anchor = f"{base}-{number}"
        found.add(anchor)
    return found


def _without_code(text: str) -> str:
    """Markdown with its indented code blocks blanked (a ``# comment`` there is no heading)."""
    return "\n".join("" if CODE_LINE.match(line) else line for line in text.splitlines())


def link_problems(paths: tuple[Path, ...] = DOCUMENTS) -> list[str]:
    """Every relative link whose file, or ``#anchor`` in it, does not exist."""
    problems = []
    for path in paths:
        for target in LINK.findall(_without_code(path.read_text())):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto:: not checked offline
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                problems.append(f"{path.name}: link to {target}: {file_part} does not exist")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{path.name}: link to {target}: no heading #{anchor} there")
    return problems


def code_naming_docs() -> list[Path]:
    """The Python files and workflows that may name a page of ``docs/``."""
    return [p for folder in CODE_NAMING_DOCS for p in folder.rglob("*.py")] + list(WORKFLOWS)


def docs_named_in_code_problems(files: list[Path] | None = None) -> list[str]:
    """Every ``docs/*.md`` that code, a workflow or an example names must exist."""
    return [
        f"{path.name}: names {name}, which does not exist"
        for path in (code_naming_docs() if files is None else files)
        if "sdk" not in path.parts
        for name in sorted(set(DOCS_PATH.findall(path.read_text())))
        if not (ROOT / name).is_file()
    ]


def stated_versions(readme: Path = ROOT / "README.md") -> dict[str, str]:
    """Tool -> version, from the README's table under ``TOOLS_HEADING``: the one statement."""
    text = readme.read_text()
    start = text.index(f"## {TOOLS_HEADING}")
    end = text.find("\n## ", start + 1)
    table = text[start : end if end != -1 else len(text)]
    versions = {}
    for row in re.findall(r"^\|([^|]+)\|([^|]+)\|", table, re.MULTILINE):
        for tool, pattern in TOOL_MENTIONS.items():
            found = pattern.search(f"{row[0].strip()} {row[1].strip().strip('`')}")
            if found:
                versions[tool] = found.group(1).removeprefix("v")
    return versions


def _version(text: str) -> tuple[int, ...]:
    """``2.6.3`` as (2, 6, 3), for comparing."""
    return tuple(int(part) for part in text.removeprefix("v").split("."))


def tool_version_problems(
    paths: tuple[Path, ...] = DOCUMENTS, dagger_json: Path = ROOT / "dagger.json"
) -> list[str]:
    """Every mention of a tool's version that disagrees with the README's table."""
    stated = stated_versions()
    problems = [
        f"README.md's table of tools states no version of {tool}"
        for tool in TOOL_MENTIONS
        if tool not in stated
    ]
    engine = json.loads(dagger_json.read_text())["engineVersion"].removeprefix("v")
    if stated.get("Dagger CLI") not in (None, engine):
        problems.append(f"README.md states Dagger CLI {stated['Dagger CLI']}; dagger.json {engine}")
    for path in paths:
        text = " ".join(path.read_text().split())
        for tool, pattern in TOOL_MENTIONS.items():
            if tool not in stated:
                continue
            for mention in pattern.findall(text):
                wanted, found = _version(stated[tool]), _version(mention)
                exact = tool in PINNED_TOOLS
                if (found != wanted) if exact else (found < wanted[: len(found)]):
                    problems.append(
                        f"{path.name}: {tool} {mention}; README.md's table of tools states "
                        f"{stated[tool]} ({'exactly' if exact else 'or later'})"
                    )
    return problems


PREDICATE_FLAGS = {"--type", "--predicate-type"}
"""How ``cosign verify-attestation`` and ``gh attestation verify`` name a predicate type."""


def predicate_type_problems(paths: tuple[Path, ...] = DOCUMENTS) -> list[str]:
    """Every predicate type a documented verify command asks for must be one the pipeline signs
    (a short name such as ``spdxjson`` means another URI, compared exactly)."""
    problems = []
    for path in paths:
        for line in code_lines(path.read_text()):
            for words in _commands(line):
                if "verify-attestation" not in words and "attestation" not in words:
                    continue
                for flag, value in itertools.pairwise(words):
                    if flag in PREDICATE_FLAGS and value not in PREDICATE_TYPES:
                        problems.append(
                            f"{path.name}: `{flag} {value}`: the pipeline attests "
                            f"{', '.join(PREDICATE_TYPES)}; give one of them in full"
                        )
    return problems

"""Benchmark: the mutation score of the pipeline, per module and overall, with mutmut.

Runs ``mutmut run`` (mutmut 3, pinned in requirements-dev.txt) once per group of modules
(``GROUPS``: the pure release rules, the registry-side release steps, the Dagger layer and the
OCI registry client, each against the test directories and files that pin its behaviour down),
each in ``build/mutmut/<group>/``: a work directory laid out as mutmut expects a
``src/`` project (``src`` -> ``pipeline/src``, ``tests``, ``pytest.ini``, and a ``setup.cfg``
written by ``config``). mutmut copies the sources into ``mutants/`` there, writes every mutant
into them behind a trampoline, records which of the group's tests reach which function, then
runs, for each mutant, only those tests (``pytest -x``), each run in a fresh forked process.

Then prints every surviving mutant not in ``EQUIVALENT`` with its diff, each equivalent one with
its diff and why, per module the kill rate (mutants killed, by a failing or timed-out test, out
of those not equivalent; mutants not run count as not killed), how long it took, and last
``mutation score: N%``.

Which tests can kill a mutant: those of its group that call the mutated function in the pytest
process (the stand-in engine, the registry client against the loopback ``docker-registry``, the
CLI's in-process calls). Tests that run ``python -m pipeline`` in a subprocess see the mutant too
(``PYTHONPATH`` points at the mutated copy and the child inherits ``MUTANT_UNDER_TEST``), but
mutmut picks a test for a mutant only if it reached the function in-process: a function reached
only through a subprocess has no test (``render_table`` had none until
``tests/rules/test_release_plan.py`` checked its whole text in-process).

Results are cached: a second run re-tests only mutants of changed functions, and an interrupted
run resumes; mutmut also re-tests the mutants of every function a new test reaches, so adding
tests re-runs much of a group. ``--modules versions plan`` re-tests just those modules (all
their mutants); ``--report`` only prints. Modules are named as in the package, ``rules.versions``
for ``pipeline/src/pipeline/rules/versions.py``, and on the command line by their last part
(``versions``); mutmut names their mutants ``pipeline.rules.versions.x_<function>__mutmut_<n>``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "mutmut"
MUTMUT = Path(sys.executable).with_name("mutmut")
PACKAGE = "pipeline"

TARGETS: dict[str, int] = {
    "rules.versions": 90,
    "rules.plan": 90,
    "rules.labels": 90,
    "steps.finishing": 90,
    "steps.published": 90,
    "steps.verify": 90,
    "main": 80,
    "publishing": 80,
    "oci.client": 80,
    "oci.transport": 80,
    "oci.auth": 80,
    "oci.names": 80,
    "oci.documents": 80,
}
"""The modules scored (dotted, under ``pipeline``), with the kill rate each must reach (percent)."""

BY_LAST_PART = {module.rpartition(".")[2]: module for module in TARGETS}
"""``--modules`` names a module by the last part of its name: ``versions`` is ``rules.versions``."""


@dataclass(frozen=True)
class Group:
    """Modules mutated together, in their own work directory, against their own tests."""

    name: str
    modules: tuple[str, ...]
    tests: tuple[str, ...]
    """The test directories and files (from the repository root) that pin these modules down."""

    @property
    def work(self) -> Path:
        """mutmut's working directory for this group."""
        return BUILD / self.name


GROUPS = (
    Group(
        "rules",
        ("rules.versions", "rules.plan", "rules.labels"),
        ("tests/rules", "tests/test_cli.py"),
    ),
    Group(
        "release",
        ("steps.finishing", "steps.published", "steps.verify"),
        (
            "tests/steps/test_finishing.py",
            "tests/steps/test_published_state.py",
            "tests/steps/test_verify.py",
            "tests/dagger/test_publish.py",
            "tests/dagger/test_upstream_state.py",
            "tests/oci/test_hostile_registry.py",
        ),
    ),
    Group(
        "dagger",
        ("main", "publishing"),
        ("tests/dagger", "tests/steps/test_verify.py"),
    ),
    Group(
        "registry",
        ("oci.client", "oci.transport", "oci.auth", "oci.names", "oci.documents"),
        ("tests/oci", "tests/dagger/test_upstream_state.py"),
    ),
)
"""Each mutant is tested only against its group's tests that reach the mutated function.

Left out everywhere: ``tests/images`` (real image builds), ``tests/engine`` (needs a Dagger
engine), ``tests/repository`` (checks on the repository's other files: Dockerfiles, workflows,
packaging), and ``tests/steps/test_concurrent_releases.py`` (about 4 minutes a pass, again for
every mutant it reaches; ``tests/steps/test_finishing.py`` stages each race it can produce).
"""


def source_path(module: str) -> str:
    """The file of ``module`` (``rules.versions``) under the package: ``rules/versions.py``."""
    return module.replace(".", "/") + ".py"


def config(group: Group) -> dict[str, str]:
    """mutmut's ``[mutmut]`` section for ``group``."""
    missing = [test for test in group.tests if not (ROOT / test).exists()]
    if missing:
        raise FileNotFoundError(f"group {group.name}: no such test file or directory: {missing}")
    return {
        "source_paths": "src/pipeline",
        "only_mutate": "\n".join(f"src/pipeline/{source_path(m)}" for m in group.modules),
        "pytest_add_cli_args_test_selection": "\n".join(group.tests),
        "pytest_add_cli_args": "\n".join(["-p", "no:cacheprovider"]),
        # Every pytest run in a fresh child: the span fixture installs OpenTelemetry's tracer
        # provider, which can be set once per process, so runs forked from one that ran the
        # tests would record no spans and fail.
        "process_isolation": "forkserver",
    }


KILLED = {"killed", "timeout", "segfault"}
"""Statuses that mean a test noticed the mutant."""

_ZIP = "names and values are built from the same keys: zip never sees unequal lengths"
_FALSY = "this_release=None instead of False: decide_tags only tests its truth"
_DIGEST = "the digest of an image that is not this release is never read: decide_tags refuses it"
_HEADER = "a header name in another case: httpx headers, as HTTP's, are case-insensitive"
_METHOD = "a lowercase method: httpx uppercases the method of every request"
_SCHEME = "an uppercase scheme: httpx.URL lowercases it"
_CODEC = "a codec name in another case: Python's codec lookup ignores case"
_TRUTH = "None instead of False: only its truth is read"
_COLON = "rpartition instead of partition on ':': a checked digest has exactly one ':'"
_FIRST_FIELD = "another split of the media type: only the part before the first ';' is kept"
_UNUSED_CALL = (
    "a field of the token request's _Call that _send does not read without auth: the URL"
    " (with the query) is passed to _send separately"
)
_ABSENT_ERRORS = (
    "the error body's 'what' or a non-list in place of None: a body that is not an error"
    " object is shown as text either way"
)

EQUIVALENT: dict[str, str] = {
    **{
        f"pipeline.rules.labels.x_published_version__mutmut_{n}": _ZIP
        for n in (49, 52, 53, 59, 62, 63)
    },
    **{f"pipeline.rules.labels.x_published_version__mutmut_{n}": _FALSY for n in (8, 64)},
    **{f"pipeline.rules.labels.x_published_version__mutmut_{n}": _DIGEST for n in (10, 66)},
    "pipeline.rules.versions.x_floating_tags__mutmut_1": (
        "take_over_floating defaults to True: only finishing calls floating_tags with the"
        " default, and without holders, where take_over_floating is never read"
    ),
    "pipeline.rules.versions.x_floating_tags__mutmut_22": (
        "in_scope(None, ...) for the X.Y scope: in_scope only asks whether the name is"
        " 'latest', which neither None nor X.Y is"
    ),
    "pipeline.rules.versions.x__respect_holder__mutmut_19": (
        "moves=None instead of False: every reader of FloatingTag.moves tests its truth"
        " (mypy --strict refuses the mutant)"
    ),
    "pipeline.rules.versions.x__respect_holder__mutmut_39": (
        "moves=None instead of False: every reader of FloatingTag.moves tests its truth"
        " (mypy --strict refuses the mutant)"
    ),
    "pipeline.steps.finishing.x_digest_of__mutmut_3": (
        "partition instead of rpartition on '@': a reference the engine returns has one '@'"
    ),
    "pipeline.steps.published.x_read_release_state__mutmut_2": (
        "images[1] instead of images[0]: every image of a plan has the plan's one version"
    ),
    "pipeline.steps.published.x_read_published__mutmut_4": (
        "version_digest '' instead of None when the version tag is absent: decide_tags reads"
        " what the version tag holds only when the tag exists, and then it has a digest"
    ),
    "pipeline.steps.published.x_read_published__mutmut_5": (
        "version_labels None instead of () when the version tag is absent: never read then"
        " (mypy --strict refuses the mutant)"
    ),
    "pipeline.steps.verify.x_check_platforms__mutmut_47": (
        "a single manifest read again by its digest instead of reused: the same manifest"
    ),
    "pipeline.steps.verify.x_held_by_higher_release__mutmut_8": (
        "other >= version: this release's own version tag holds the version tag's digest,"
        " which check_tags never asks about (only a floating tag at another digest)"
    ),
    "pipeline.steps.verify.x_verification_plan__mutmut_7": (
        "the skeleton plan without registry=: the client is bound to one registry and"
        " read_release_state reads repository paths, never the host"
    ),
    "pipeline.rules.labels.x_normalize_created__mutmut_18": (
        "replace('XXZXX', ...) leaves a 'Z' that Python 3.11's fromisoformat reads as UTC"
    ),
    "pipeline.rules.labels.x_normalize_created__mutmut_19": (
        "replace('z', ...) twice leaves a 'Z' that Python 3.11's fromisoformat reads as UTC"
    ),
    "pipeline.rules.labels.x__is_rfc3339_time__mutmut_55": (
        "offset hour 1 instead of 0 for a 'Z' time: only compared with <= 23"
    ),
    "pipeline.rules.labels.x__is_rfc3339_time__mutmut_62": (
        "offset minute 1 instead of 0 for a 'Z' time: only compared with <= 59"
    ),
    "pipeline.main.x_checked_function__mutmut_2": (
        "cast(None, ...) instead of cast(FunctionT, ...): cast returns its value unchanged;"
        " the type is for type checkers (mypy --strict refuses the mutant)"
    ),
    "pipeline.main.xǁPipelineǁ_rehearse__mutmut_5": (
        "endpoint() without a port: the engine then names the first exposed port, and the"
        " throwaway registry exposes only REHEARSAL_PORT"
    ),
    "pipeline.main.xǁPipelineǁ_published__mutmut_7": (
        "the skeleton plan without registry=: the client is bound to one registry and"
        " read_release_state reads repository paths, never the host"
    ),
    "pipeline.publishing.x_commit_of__mutmut_12": (
        "tree(discard_git_dir=None): the SDK leaves the argument out, and its default is false"
        " (the .git directory is kept), as asked"
    ),
    **{
        f"pipeline.oci.client.xǁRegistryClientǁ{name}__mutmut_{n}": _HEADER
        for name, numbers in {
            "get_manifest_or_none": (20, 21),
            "put_manifest": (40, 41),
            "_manifest_type": (14,),
            "_verified_digest": (9,),
        }.items()
        for n in numbers
    },
    **{
        f"pipeline.oci.transport.xǁRegistrySessionǁ{name}__mutmut_{n}": _HEADER
        for name, n in (
            ("_retry_wait", 7),
            ("_redirect_target", 7),
            ("_read_body", 17),
            ("_read_body", 39),
            ("_answer_challenge", 8),
            ("__init__", 42),
            ("__init__", 43),
            ("__init__", 45),
            ("__init__", 46),
        )
    },
    "pipeline.oci.client.xǁRegistryClientǁput_manifest__mutmut_36": _METHOD,
    "pipeline.oci.client.xǁRegistryClientǁ_read__mutmut_23": _METHOD,
    "pipeline.oci.transport.xǁRegistrySessionǁ_fetch_token__mutmut_34": _METHOD,
    "pipeline.oci.transport.xǁRegistrySessionǁ__init____mutmut_21": _SCHEME,
    "pipeline.oci.transport.xǁRegistrySessionǁ__init____mutmut_24": _SCHEME,
    "pipeline.oci.transport.xǁRegistrySessionǁerror_code_and_detail__mutmut_22": _CODEC,
    "pipeline.oci.auth.x_echoed_forms__mutmut_31": _CODEC,
    "pipeline.oci.auth.xǁCredentialsǁbasic_header__mutmut_9": _CODEC,
    "pipeline.oci.transport.xǁRegistrySessionǁ__init____mutmut_27": _TRUTH,
    "pipeline.oci.transport.xǁRegistrySessionǁ__init____mutmut_33": _TRUTH
    + " (httpx's follow_redirects)",
    "pipeline.oci.transport.xǁRegistrySessionǁ_fetch_token__mutmut_42": _TRUTH,
    "pipeline.oci.auth.x_echoed_forms__mutmut_15": _TRUTH + " (json's ensure_ascii)",
    "pipeline.oci.documents.x_serialize_json__mutmut_3": _TRUTH + " (json's ensure_ascii)",
    "pipeline.oci.transport.xǁRegistrySessionǁ__init____mutmut_37": (
        "follow_redirects left out: httpx's default is False too"
    ),
    "pipeline.oci.client.xǁRegistryClientǁget_blob__mutmut_25": _COLON,
    "pipeline.oci.client.xǁRegistryClientǁ_verified_digest__mutmut_28": _COLON,
    "pipeline.oci.client.xǁRegistryClientǁ_manifest_type__mutmut_6": _FIRST_FIELD,
    "pipeline.oci.client.xǁRegistryClientǁ_manifest_type__mutmut_17": _FIRST_FIELD,
    "pipeline.oci.client.xǁRegistryClientǁput_manifest__mutmut_45": (
        "no reference to check against: put_manifest's is the digest of raw itself, which"
        " _verified_digest computes again from raw"
    ),
    "pipeline.oci.transport.xǁRegistrySessionǁ_fetch_token__mutmut_20": _UNUSED_CALL,
    "pipeline.oci.transport.xǁRegistrySessionǁ_fetch_token__mutmut_21": _UNUSED_CALL,
    **{
        f"pipeline.oci.transport.xǁRegistrySessionǁerror_code_and_detail__mutmut_{n}": (
            _ABSENT_ERRORS
        )
        for n in (4, 7, 8, 11)
    },
    "pipeline.oci.transport.xǁRegistrySessionǁ_retry_wait__mutmut_8": (
        "'XXXX' for an absent Retry-After: not a date either, so the default pause as for ''"
    ),
    "pipeline.oci.transport.xǁRegistrySessionǁ_read_body__mutmut_19": (
        "'IDENTITY' as the default Content-Encoding: lowercased before it is compared"
    ),
    "pipeline.oci.transport.xǁRegistrySessionǁ_read_body__mutmut_40": (
        "'XXXX' for an absent Content-Length: not digits either, so no length is declared"
    ),
    "pipeline.oci.transport.xǁRegistrySessionǁ_answer_challenge__mutmut_9": (
        "'XXXX' for an absent WWW-Authenticate: a scheme neither bearer nor basic, as for ''"
    ),
    "pipeline.oci.auth.x_token_request__mutmut_9": (
        "'XXXX' for an absent realm: never used (a challenge without a realm gets no token"
        " request), and refused as not an absolute URL as '' is"
    ),
    "pipeline.oci.auth.x_echoed_forms__mutmut_6": (
        "safe='XXXX' instead of '': quote never escapes a letter"
    ),
    "pipeline.oci.documents.x_check_descriptor__mutmut_20": (
        "size 1 instead of 0 for a descriptor without one: both pass the check, and the value"
        " is not kept"
    ),
}
"""Surviving mutants that no test can kill, because they behave as the original: id -> why."""


@dataclass
class Module:
    """The mutants of one module, by status."""

    name: str
    target: int
    statuses: dict[str, str] = field(default_factory=dict)

    def killed(self) -> int:
        """Mutants a test noticed."""
        return sum(status in KILLED for status in self.statuses.values())

    def equivalent(self) -> list[str]:
        """Mutants listed as equivalent that ran and that no test killed."""
        return [
            m
            for m, s in self.statuses.items()
            if m in EQUIVALENT and s not in KILLED and s != "not checked"
        ]

    def survivors(self) -> list[str]:
        """Mutants that ran, that no test killed, and that are not listed as equivalent."""
        return [
            m
            for m, s in self.statuses.items()
            if m not in EQUIVALENT and s not in KILLED and s != "not checked"
        ]

    def unchecked(self) -> int:
        """Mutants not run yet (an interrupted run)."""
        return sum(status == "not checked" for status in self.statuses.values())

    def scored(self) -> int:
        """Mutants that count: all but the equivalent ones (those not run count as not killed)."""
        return len(self.statuses) - len(self.equivalent())


def prepare(group: Group) -> None:
    """Lay out the group's work directory as a ``src/`` project with this checkout's files."""
    # Made now: a PYTHONPATH entry that does not exist at start-up is never searched afterwards.
    (group.work / "mutants" / "src").mkdir(parents=True, exist_ok=True)
    links = {"src": ROOT / "pipeline" / "src", "tests": ROOT / "tests"}
    links["pytest.ini"] = ROOT / "pytest.ini"
    for name, target in links.items():
        link = group.work / name
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(target, group.work))
    lines = ["[mutmut]"]
    for key, value in config(group).items():
        lines.append(f"{key} = {value}".replace("\n", "\n    "))
    (group.work / "setup.cfg").write_text("\n".join(lines) + "\n")


def run_mutmut(group: Group, names: list[str], max_children: int) -> int:
    """Run ``mutmut run`` in ``group`` for mutants ``names`` (globs; none: every one).

    Named mutants are tested again even when cached; an unnamed run re-tests only the mutants
    of changed functions, or of functions that new tests reach. Output goes to ``mutmut.log``.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(group.work / "mutants" / "src")
    # mutmut's forked children end with os._exit, skipping the tests' temporary-directory
    # cleanup: their temporary files go to a directory of the group's, emptied after the run.
    scratch = group.work / "tmp"
    scratch.mkdir(exist_ok=True)
    env["TMPDIR"] = str(scratch)
    command = [str(MUTMUT), "run", "--max-children", str(max_children), *names]
    try:
        with (group.work / "mutmut.log").open("w") as out:
            process = subprocess.run(
                command, cwd=group.work, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return process.returncode


def group_of(module: str) -> Group:
    """The group that mutates ``module``."""
    return next(group for group in GROUPS if module in group.modules)


def module_of(mutant: str) -> str:
    """The module of a mutant: ``rules.versions`` for ``pipeline.rules.versions.x_f__mutmut_1``."""
    parts = mutant.split(".")
    function = next(i for i, part in enumerate(parts) if part.startswith(("x_", "xǁ")))
    return ".".join(parts[1:function])


def load(module: str) -> Module:
    """The statuses of ``module``'s mutants from mutmut's cache."""
    meta = group_of(module).work / "mutants" / "src" / PACKAGE / f"{source_path(module)}.meta"
    result = Module(module, TARGETS[module])
    if meta.exists():
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        result.statuses = {key: status_by_exit_code[code] for key, code in codes.items()}
    return result


def diff(mutant: str) -> str:
    """The changed lines of ``mutant``, as ``mutmut show`` prints them."""
    work = group_of(module_of(mutant)).work
    shown = subprocess.run(
        [str(MUTMUT), "show", mutant], cwd=work, capture_output=True, text=True, check=False
    ).stdout
    changed = [line for line in shown.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"]
    return " | ".join(line.strip() for line in changed)


def percent(killed: int, scored: int) -> str:
    """A kill rate, rounded down so that 89.9 % never reads as 90 %."""
    return f"{100 * killed // scored}%" if scored else "n/a"


def report(modules: list[Module]) -> bool:
    """Print survivors, equivalents and rates; whether every module met its target."""
    for module in modules:
        for mutant in module.survivors():
            print(f"survived: {mutant} ({module.statuses[mutant]}): {diff(mutant)}")
        for mutant in module.equivalent():
            # The diff beside the reason: a source edit renumbers a function's mutants, and an
            # entry that now names another mutant shows as a reason that does not fit its diff.
            print(f"equivalent: {mutant}: {diff(mutant)} -- {EQUIVALENT[mutant]}")
    print()
    met = True
    for module in modules:
        rate = percent(module.killed(), module.scored())
        ok = bool(module.statuses) and 100 * module.killed() >= module.target * module.scored()
        met = met and ok
        print(
            f"{source_path(module.name):20} {rate:>5} killed {module.killed()}/{module.scored()}"
            f" ({len(module.survivors())} survived,"
            f" {len(module.equivalent())} equivalent, {module.unchecked()} not run)"
            f"  target {module.target}% {'met' if ok else 'MISSED'}"
        )
    killed = sum(module.killed() for module in modules)
    scored = sum(module.scored() for module in modules)
    print(f"{'overall':20} {percent(killed, scored):>5} killed {killed}/{scored}")
    return met


def mutants_to_run(group: Group, chosen: list[str]) -> list[str] | None:
    """The mutant names (globs) to run for ``chosen`` modules of ``group``; None: nothing."""
    if not chosen:
        return None
    if set(chosen) == set(group.modules):
        return []
    return [f"{PACKAGE}.{module}.*" for module in chosen]


def main() -> int:
    """Run the mutation testing, print the figures; 0 when every target is met."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", nargs="+", choices=sorted(BY_LAST_PART), default=[])
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--report", action="store_true", help="print the cached results only")
    args = parser.parse_args()
    start = time.monotonic()
    for group in GROUPS:
        asked = {BY_LAST_PART[name] for name in args.modules}
        chosen = [module for module in group.modules if module in asked or not args.modules]
        prepare(group)
        names = mutants_to_run(group, chosen)
        if names is not None and not args.report:
            status = run_mutmut(group, names, args.max_children)
            if status != 0:
                print(f"mutmut failed ({status}): {group.work / 'mutmut.log'}", file=sys.stderr)
                return 2
    modules = [load(module) for module in TARGETS]
    met = report(modules)
    minutes, seconds = divmod(round(time.monotonic() - start), 60)
    print(f"took {minutes} min {seconds} s on {os.cpu_count()} cores")
    killed = sum(module.killed() for module in modules)
    print(f"mutation score: {percent(killed, sum(module.scored() for module in modules))}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

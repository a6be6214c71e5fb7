"""Offline command line: ``python -m pipeline plan TAG ...`` and ``... verify TAG ...``.

Needs no Dagger engine and never imports the Dagger SDK. Exit status: 0 ok, 1 a check found
mismatches or the registry could not be read (one line on stderr per problem), 2 bad input (one
line on stderr, nothing on stdout). ``verify`` ends within ``VERIFY_DEADLINE`` seconds whatever
the registry does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from pipeline.oci import safe_line
from pipeline.rules.catalogue import image_names
from pipeline.rules.plan import make_plan, render_table
from pipeline.rules.references import DEFAULT_OWNER, DEFAULT_REGISTRY

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_BAD_INPUT = 2
PROG = "python -m pipeline"
PASSWORD_ENV = "REGISTRY_PASSWORD"  # noqa: S105 - a variable name, not a password
"""The registry password comes only from the environment, never from the command line."""
VERIFY_DEADLINE = 40.0
"""Seconds ``verify`` may take in all; each registry operation has its own, shorter deadline."""


class BadInputError(Exception):
    """Input the command refuses; its message is the one line printed."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, as every bad input is."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage and exiting, so main prints one line."""
        raise BadInputError(f"{message} (see `{self.prog} --help`)")


def _split_tags(text: str) -> list[str]:
    """``--existing-tags 2.3.0,latest`` as a list, blanks dropped."""
    return [tag.strip() for tag in text.split(",") if tag.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The ``plan`` command and its options."""
    parser = _Parser(prog=PROG, description="qm-nmr-calc release pipeline, offline tools.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    plan = commands.add_parser("plan", help="show what a release tag would publish")
    plan.add_argument("tag", help="release tag, vMAJOR.MINOR.PATCH[-PRERELEASE]")
    plan.add_argument(
        "--existing-tags",
        type=_split_tags,
        default=[],
        metavar="T1,T2,...",
        help="tags already published (applied to every image); non-versions are ignored",
    )
    _add_target_options(plan)
    plan.add_argument("--revision", help="full commit SHA of the release")
    plan.add_argument("--created", help="the commit's time, RFC 3339")
    plan.add_argument(
        "--overwrite", action="store_true", help="allow re-publishing an existing version"
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    verify = commands.add_parser(
        "verify", help="check that the registry serves what the release plan says"
    )
    verify.add_argument("tag", help="release tag that was published, e.g. v2.4.0")
    _add_target_options(verify)
    verify.add_argument("--revision", help="full commit SHA the labels must carry")
    verify.add_argument("--created", help="commit time the labels must carry, RFC 3339")
    verify.add_argument(
        "--username", help=f"registry user; the password is read from ${PASSWORD_ENV}"
    )
    return parser


class _RefusePassword(argparse.Action):
    """Refuses a password on the command line without repeating it (it would land in logs)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        raise BadInputError(
            f"{option_string} is not accepted: a password on the command line ends up in "
            f"shell history and logs; put it in ${PASSWORD_ENV}"
        )


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    """``--owner`` and ``--registry``, shared by every command, and the refused ``--password``."""
    parser.add_argument("--owner", default=DEFAULT_OWNER, help="GitHub owner (lowercased)")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help="registry host")
    parser.add_argument("--password", action=_RefusePassword, help=argparse.SUPPRESS)


def run_plan(args: argparse.Namespace) -> int:
    """Print the plan of ``args.tag`` as a table or JSON."""
    release = make_plan(
        args.tag,
        existing_tags={name: args.existing_tags for name in image_names()},
        owner=args.owner,
        registry=args.registry,
        revision=args.revision,
        created=args.created,
        overwrite=args.overwrite,
    )
    if args.json:
        print(json.dumps(release.to_json()))
    else:
        print(render_table(release), end="")
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    """Verify a published release; 0 when everything holds, 1 listing every mismatch."""
    # Refuse bad input before reaching the registry (and before the slower imports).
    password = os.environ.get(PASSWORD_ENV) or None
    if args.username is not None and password is None:
        raise BadInputError(f"--username {args.username} needs the password in ${PASSWORD_ENV}")
    make_plan(
        args.tag,
        owner=args.owner,
        registry=args.registry,
        revision=args.revision,
        created=args.created,
        overwrite=True,
    )
    import anyio

    from pipeline.oci import RegistryClient, RegistryError
    from pipeline.rules.references import normalize_registry
    from pipeline.steps.concurrency import ConcurrentStepsError
    from pipeline.steps.verify import VerifyReport, verification_plan, verify_release

    async def verify() -> VerifyReport:
        async with RegistryClient(
            normalize_registry(args.registry),
            username=args.username if password is not None else None,
            password=password if args.username is not None else None,
        ) as client:
            plan = await verification_plan(
                client,
                args.tag,
                owner=args.owner,
                registry=args.registry,
                revision=args.revision,
                created=args.created,
            )
            return await verify_release(client, plan)

    async def verify_in_time() -> VerifyReport:
        with anyio.fail_after(VERIFY_DEADLINE):
            return await verify()

    try:
        report = anyio.run(verify_in_time)
    except TimeoutError:
        registry = normalize_registry(args.registry)
        print(
            f"cannot verify: registry {registry} did not answer everything within "
            f"{VERIFY_DEADLINE:g} s",
            file=sys.stderr,
        )
        return EXIT_MISMATCH
    except (RegistryError, ConcurrentStepsError) as error:
        for problem in registry_errors(error):
            print(safe_line(f"cannot verify: {problem}"), file=sys.stderr)
        return EXIT_MISMATCH
    print(report.render(), end="")
    return EXIT_OK if report.ok else EXIT_MISMATCH


def registry_errors(error: BaseException) -> list[BaseException]:
    """The RegistryErrors in ``error`` (one, or each of several steps'); others raised again."""
    from pipeline.oci import RegistryError
    from pipeline.steps.concurrency import ConcurrentStepsError

    if isinstance(error, ConcurrentStepsError):
        return [leaf for inner in error.failures.values() for leaf in registry_errors(inner)]
    if isinstance(error, RegistryError):
        return [error]
    raise error


COMMANDS = {"plan": run_plan, "verify": run_verify}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input is one line on stderr and exit status 2."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (BadInputError, ValueError) as error:
        # One line even when argparse echoes an argument that holds a line break.
        print(safe_line(f"{PROG}: error: {error}"), file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())

"""The `qapigen` command line: check, dump-ir, generate.

Exit status: 0 success, 1 an error (a bad schema, a file that cannot be read or written,
a bad [tool.qapigen], stale output under --check), 2 a usage error. Errors are plain
lines: `file:line:col: message` for a schema, `qapigen: PATH: reason` for a file, never
a traceback; set QAPIGEN_DEBUG=1 to see the traceback of an internal error.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qapigen_runtime.version import add_version_option

from .config import QAPI_VERSIONS, ConfigError, find_pyproject, load_project
from .level import Level
from .source import QAPIError
from .target import Target, TargetError, package_name_problem, resolve_target

if TYPE_CHECKING:
    from .ownership import Note, Plan
    from .schema import Schema

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

PROGRAM = "qapigen"

GENERATE_HELP = """\
Generate a typed Python package from a QAPI schema, or (--check) verify that one is
current.

With SCHEMA, the command line names the one target. The package's import name is its
folder's name, so:
  -o DIR           writes the package to DIR (its import name: DIR's last part);
  --package NAME   names the package; without -o, it goes to ./NAME; with -o, DIR
                   must end in NAME;
  neither          names it after the schema file (qapi-schema.json -> qapi_schema).

Without SCHEMA, every target of [tool.qapigen] in the project's pyproject.toml is
generated, or checked: the nearest pyproject.toml from here up to the repository's
root (the folder holding .git); outside a repository, only this folder's. One target:

  [tool.qapigen]
  schema = "schema/migration.json"
  output = "generated/qapigen_migration"

Several targets, one [[tool.qapigen.targets]] entry each:

  [[tool.qapigen.targets]]
  schema = "schema/migration.json"
  output = "generated/qapigen_migration"

  [[tool.qapigen.targets]]
  schema = "schema/qapigen-vm.json"
  output = "generated/qapigen_vm_qmp"
  qapi-version = "7.2"

Keys: schema (required), output, package and qapi-version, as the options above.
Paths are relative to pyproject.toml's folder, and outputs must stay inside it.

Files: a run writes every changed file to a temporary name first and renames them
into place together, so a failure leaves the old package as it was. It touches only
what it owns: the files its stamp (.qapigen-stamp.json, in the package folder, not
committed) lists, or, without a stamp, files whose docstring carries its "Generated
by qapigen" line. It refuses to overwrite anything else, never writes through a
symbolic link, and removes a file it no longer generates only when the stamp lists
it unchanged.

--check writes nothing; it prints a diff for each stale target, with the command
that fixes it, and exits 1 if any is stale.
"""


def _package_name(text: str) -> str:
    problem = package_name_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _add_level_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--qapi-version",
        choices=QAPI_VERSIONS,
        help="apply exactly this QEMU release's QAPI rules"
        " (default: accept what any supported release accepts)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="do not print warnings (rules only some QEMU releases enforce)",
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Typed Python bindings for QEMU's QMP, generated from QAPI schemas.",
    )
    add_version_option(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="parse and check a schema")
    _add_level_options(check)
    check.add_argument("schema", metavar="SCHEMA")

    dump = commands.add_parser("dump-ir", help="print the checked intermediate form")
    dump.add_argument(
        "--format",
        choices=["qemu-test", "json"],
        default="qemu-test",
        help="qemu-test: the text QEMU's schema test harness prints; json: stable JSON",
    )
    _add_level_options(dump)
    dump.add_argument("schema", metavar="SCHEMA")

    generate = commands.add_parser(
        "generate",
        help="generate a typed Python package from a schema (or every [tool.qapigen]"
        " target)",
        description=GENERATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generate.add_argument(
        "schema",
        metavar="SCHEMA",
        nargs="?",
        help="the schema (default: the targets of [tool.qapigen])",
    )
    generate.add_argument(
        "-o", "--output", metavar="DIR", help="the package folder to write"
    )
    generate.add_argument(
        "--package",
        metavar="NAME",
        type=_package_name,
        help="the package's import name (a Python identifier): ./NAME without -o",
    )
    generate.add_argument(
        "--from-introspection",
        metavar="SOURCE",
        help="generate from a query-qmp-schema answer instead of a schema: a saved"
        " reply (file) or a QMP address to ask (unix:PATH, tcp:HOST:PORT, HOST:PORT,"
        " a socket); needs -o or --package",
    )
    _add_level_options(generate)
    generate.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff if a package on disk is stale",
    )
    shell = commands.add_parser(
        "shell",
        help="a typed QMP shell: completion, validation, help from the schema",
        description="A QMP shell typed by the server's schema (its query-qmp-schema,"
        " or the generated package --package names): Tab completes commands and"
        " argument names, arguments are checked before they are sent, help COMMAND"
        " shows the package's documentation. Without a terminal on stdin it runs one"
        " command per line (COMMAND KEY=VALUE ...), prints each reply as a line of"
        " JSON and stops with status 1 at the first error.",
    )
    shell.add_argument(
        "address",
        metavar="ADDRESS",
        help="the QMP server: unix:PATH, a socket path, tcp:HOST:PORT or HOST:PORT",
    )
    shell.add_argument(
        "--package",
        metavar="NAME",
        help="a generated package of the server's schema (importable): its doc"
        " comments for help, its schema when the server has no query-qmp-schema",
    )
    shell.add_argument(
        "--guest-agent",
        action="store_true",
        help="the server is qemu-ga (no greeting, no introspection): the schema is"
        " --package's, by default qapigen_qga (QEMU 7.2's guest-agent schema)",
    )
    return parser


def shown(path: Path) -> str:
    """A path as the user should read it: relative to the working folder when inside
    it or a few levels above (so no machine paths for a project's files)."""
    if not path.is_absolute():
        return str(path)
    cwd = Path.cwd()
    for ups, base in enumerate([cwd, *cwd.parents][:4]):
        if base.parent != base and path.is_relative_to(base):
            return os.path.join(*[".."] * ups, path.relative_to(base)) or "."
    return str(path)


def _load(schema_path: str, version: str | None, quiet: bool) -> Schema:
    # Imported here so `qapigen --help` stays instant.
    from .frontend import load_schema
    from .rules import report_warnings

    schema = load_schema(schema_path, Level.from_option(version))
    if not quiet:
        # one line per rule (qapigen.rules); report_warnings(..., verbose=True)
        # lists every place
        for text in report_warnings(schema.warnings):
            print(text, file=sys.stderr)
    return schema


def _cmd_check(args: argparse.Namespace) -> int:
    _load(args.schema, args.qapi_version, args.quiet)
    return EXIT_OK


def _cmd_dump_ir(args: argparse.Namespace) -> int:
    from .dump import dump_json, dump_qemu_test

    level = Level.from_option(args.qapi_version)
    schema = _load(args.schema, args.qapi_version, args.quiet)
    text = (
        dump_qemu_test(schema, level)
        if args.format == "qemu-test"
        else dump_json(schema)
    )
    sys.stdout.write(text)
    return EXIT_OK


class UsageError(Exception):
    """A command line that cannot work; reported with the usage's exit status."""


def _explicit_target(args: argparse.Namespace) -> tuple[Target, str]:
    """The target the command line names, and the command that regenerates it."""
    try:
        target = resolve_target(
            Path(args.schema),
            Path(args.output) if args.output else None,
            args.package,
            args.qapi_version,
            Path(),
        )
    except TargetError as error:
        option = {"schema": "SCHEMA", "output": "-o", "package": "--package"}
        raise UsageError(
            f"{option.get(error.key, error.key)}: {error.message}"
        ) from None
    fix = ["qapigen", "generate", args.schema]
    for flag, value in _target_options(args):
        fix += [flag, value]
    return target, shlex.join(fix)


def _target_options(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The options given that describe one target, with their values."""
    given = [
        ("-o", args.output),
        ("--package", args.package),
        ("--qapi-version", args.qapi_version),
    ]
    return [(flag, value) for flag, value in given if value]


def _project_targets(args: argparse.Namespace) -> list[tuple[Target, str]]:
    """The targets of [tool.qapigen], each with the command that regenerates it."""
    given = [flag for flag, _ in _target_options(args)]
    if given:
        raise UsageError(
            f"{', '.join(given)} describe one target: give its SCHEMA too (without"
            " SCHEMA, the targets come from [tool.qapigen])"
        )
    pyproject = find_pyproject(Path.cwd())
    if pyproject is None:
        raise UsageError(
            "no SCHEMA given, and no pyproject.toml here or above, up to the"
            " repository's root"
        )
    found = load_project(pyproject, shown(pyproject))
    if not found.targets:
        raise UsageError(
            f"no SCHEMA given, and {shown(found.pyproject)} has no [tool.qapigen]"
            " (see qapigen generate --help)"
        )
    return [(target, "qapigen generate") for target in found.targets]


def _options(target: Target) -> dict[str, str]:
    """What the output depends on besides the generator and the schema's text."""
    schema = os.path.relpath(
        os.path.abspath(target.schema), os.path.abspath(target.output)
    )
    return {
        "schema": Path(schema).as_posix(),
        "package": target.package,
        "qapi-version": target.qapi_version or "",
    }


def _report_left_alone(plan: Plan) -> None:
    for note in plan.left_alone:
        print(
            f"{PROGRAM}: {shown(plan.folder / note.path)}: {note.reason}",
            file=sys.stderr,
        )


def _fix_steps(plan: Plan, fix: str) -> str:
    """What brings a stale folder up to date: the regenerating command, with the
    files qapigen will not touch moved away first or deleted after, by hand."""

    def paths(notes: list[Note]) -> str:
        return ", ".join(shown(plan.folder / note.path) for note in notes)

    if not (plan.refused or plan.left_alone):
        return f" run: {fix}"
    steps = [f"move away {paths(plan.refused)}"] if plan.refused else []
    if plan.write or plan.remove or plan.refused:
        steps.append(f"run: {fix}")
    if plan.left_alone:
        steps.append(f"delete {paths(plan.left_alone)}")
    return ": " + ", then ".join(steps)


def _generate_one(target: Target, fix: str, args: argparse.Namespace) -> int:
    from .generate import apply_plan, generate_package, plan_diff
    from .ownership import check_folder, plan_package
    from .stamp import Provenance, is_current

    output = shown(target.output)
    if target.optional and not target.schema.exists():
        # Nothing to check against: say so, and leave the committed package alone.
        print(
            f"{output}: skipped: its schema {shown(target.schema)} is absent (an"
            " optional target); the committed package was not "
            + ("checked" if args.check else "regenerated"),
            file=sys.stderr,
        )
        return EXIT_OK
    check_folder(target.output)  # before the schema is read: a wrong -o fails at once
    options = _options(target)
    if is_current(target.output, options):
        # Nothing the output depends on changed since the last generation.
        if not args.check:
            print(f"{output}: up to date", file=sys.stderr)
        return EXIT_OK
    schema_path = shown(target.schema)
    schema = _load(schema_path, target.qapi_version, args.quiet)
    files = generate_package(
        schema, package=target.package, schema_name=target.schema.name
    )
    plan = plan_package(files, target.output)
    if args.check:
        if plan.is_current:
            return EXIT_OK
        sys.stdout.write(plan_diff(plan, prefix=f"{output}/"))
        sys.stdout.flush()
        print(f"{output} is stale; to fix it{_fix_steps(plan, fix)}", file=sys.stderr)
        return EXIT_ERROR
    # Module names are relative to the main schema's folder, as in QEMU's dumps.
    schema_dir = target.schema.parent
    inputs = [schema_dir / m.name for m in schema.modules if not m.is_builtin]
    changed = apply_plan(plan, Provenance(options, inputs))
    _report_left_alone(plan)
    print(f"{output}: {len(files)} files, {len(changed)} changed", file=sys.stderr)
    return EXIT_OK


def _cmd_generate(args: argparse.Namespace) -> int:
    from .ownership import OutputError

    if args.from_introspection is not None:
        return _generate_from_introspection(args)
    targets = [_explicit_target(args)] if args.schema else _project_targets(args)
    status = EXIT_OK
    for target, fix in targets:
        # Each target on its own: a failure in one still lets the others be
        # generated (or checked), and every problem is reported in one run.
        try:
            status = max(status, _generate_one(target, fix, args))
        except BrokenPipeError:
            raise
        except (QAPIError, OutputError, OSError) as error:
            _report(error)
            status = EXIT_ERROR
    return status


def _generate_from_introspection(args: argparse.Namespace) -> int:
    """`generate --from-introspection SOURCE`: one package from a live or saved
    query-qmp-schema answer (qapigen/from_introspection)."""
    from .from_introspection.build import schema_from_entities
    from .from_introspection.source import load_answer
    from .generate import apply_plan, generate_package, plan_diff
    from .ownership import OutputError, check_folder, plan_package

    if args.schema is not None:
        raise UsageError("give either SCHEMA or --from-introspection, not both")
    if args.output is None and args.package is None:
        raise UsageError("--from-introspection needs -o DIR or --package NAME")
    if args.qapi_version is not None:
        raise UsageError("--qapi-version applies to schema files only")
    try:
        target = resolve_target(
            Path(args.from_introspection),
            Path(args.output) if args.output else None,
            args.package,
            None,
            Path(),
        )
    except TargetError as error:
        option = {"output": "-o", "package": "--package"}
        raise UsageError(
            f"{option.get(error.key, error.key)}: {error.message}"
        ) from None
    output = shown(target.output)
    try:
        check_folder(target.output)
        answer = load_answer(args.from_introspection)
        schema = schema_from_entities(answer.entities, args.from_introspection)
        files = generate_package(schema, target.package, answer.described)
        plan = plan_package(files, target.output)
        if args.check:
            if plan.is_current:
                return EXIT_OK
            sys.stdout.write(plan_diff(plan, prefix=f"{output}/"))
            print(f"{output} is stale", file=sys.stderr)
            return EXIT_ERROR
        changed = apply_plan(plan)
    except (QAPIError, OutputError, OSError) as error:
        _report(error)
        return EXIT_ERROR
    _report_left_alone(plan)
    print(f"{output}: {len(files)} files, {len(changed)} changed", file=sys.stderr)
    return EXIT_OK


def _report(error: Exception) -> None:
    """One line per problem, as `file:line:col: message` or `qapigen: PATH: reason`."""
    from .ownership import OutputError

    if isinstance(error, OutputError):
        for path, reason in error.problems:
            print(f"{PROGRAM}: {shown(path)}: {reason}", file=sys.stderr)
    elif isinstance(error, OSError):
        reason = error.strerror or str(error)
        if error.filename is not None:
            print(
                f"{PROGRAM}: {shown(Path(error.filename))}: {reason}", file=sys.stderr
            )
        else:
            print(f"{PROGRAM}: {reason}", file=sys.stderr)
    else:
        print(error, file=sys.stderr)


def _cmd_shell(args: argparse.Namespace) -> int:
    from .shell.session import main as shell_main

    return shell_main(args.address, args.package, args.guest_agent)


_COMMANDS = {
    "check": _cmd_check,
    "dump-ir": _cmd_dump_ir,
    "generate": _cmd_generate,
    "shell": _cmd_shell,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except UsageError as error:
        print(f"{PROGRAM} {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # `qapigen dump-ir ... | head` closes the pipe early: not an error worth a trace.
        sys.stderr.close()
        return EXIT_OK
    except (QAPIError, OSError) as error:
        _report(error)
        return EXIT_ERROR
    except Exception as error:
        if os.environ.get("QAPIGEN_DEBUG"):
            traceback.print_exc()
        print(
            f"{PROGRAM}: internal error: {type(error).__name__}: {error}"
            " (please report it; QAPIGEN_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

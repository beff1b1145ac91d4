"""The `qapigen` command line: check, dump-ir, generate.

Exit status: 0 success, 1 a schema error (or stale output under --check), 2 a usage error.
A bad schema is reported as `file:line:col: message` and never as a traceback; set
QAPIGEN_DEBUG=1 to see the traceback of an internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .config import ConfigError, load_generate_config
from .level import Level
from .source import QAPIError

if TYPE_CHECKING:
    from .schema import Schema

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

_VERSIONS = [level.value for level in Level if level is not Level.PERMISSIVE]


def _add_version_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--qapi-version",
        choices=_VERSIONS,
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
        prog="qapigen",
        description="Typed Python bindings for QEMU's QMP, generated from QAPI schemas.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="parse and check a schema")
    _add_version_option(check)
    check.add_argument("schema", metavar="SCHEMA")

    dump = commands.add_parser("dump-ir", help="print the checked intermediate form")
    dump.add_argument(
        "--format",
        choices=["qemu-test", "json"],
        default="qemu-test",
        help="qemu-test: the text QEMU's schema test harness prints; json: stable JSON",
    )
    _add_version_option(dump)
    dump.add_argument("schema", metavar="SCHEMA")

    generate = commands.add_parser(
        "generate",
        help="generate a typed Python package from a schema",
        description="Without arguments, uses [tool.qapigen] of the nearest pyproject.toml.",
    )
    generate.add_argument("schema", metavar="SCHEMA", nargs="?")
    generate.add_argument(
        "-o", "--output", metavar="DIR", help="package folder to write"
    )
    generate.add_argument(
        "--package", metavar="NAME", help="import name of the package"
    )
    _add_version_option(generate)
    generate.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff if the package on disk is stale",
    )
    return parser


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


def _cmd_generate(args: argparse.Namespace) -> int:
    from .generate import check_package, generate_package, write_package
    from .stamp import is_current, make_stamp, write_stamp

    config = load_generate_config(Path.cwd())
    schema_path = args.schema or (
        str(_relative(config.schema)) if config.schema else None
    )
    if schema_path is None:
        print(
            "qapigen generate: no SCHEMA given and no [tool.qapigen] schema in a"
            " pyproject.toml here or above",
            file=sys.stderr,
        )
        return EXIT_USAGE
    output = Path(args.output) if args.output else config.output
    if output is None:
        output = Path(Path(schema_path).stem.replace("-", "_"))
    package = args.package or config.package or output.name
    version = args.qapi_version or config.qapi_version
    options = {"schema": schema_path, "package": package, "qapi-version": version or ""}
    if is_current(output, options):
        # Nothing the output depends on changed since the last generation.
        if not args.check:
            print(f"{_relative(output)}: up to date", file=sys.stderr)
        return EXIT_OK
    schema = _load(schema_path, version, args.quiet)
    files = generate_package(
        schema, package=package, schema_name=Path(schema_path).name
    )
    if args.check:
        diff = check_package(files, output)
        if diff:
            sys.stdout.write(diff)
            fix = (
                "qapigen generate"
                if not args.schema
                else f"qapigen generate {schema_path}"
            )
            if args.output:
                fix += f" -o {args.output}"
            if args.package:
                fix += f" --package {args.package}"
            if args.qapi_version:
                fix += f" --qapi-version {args.qapi_version}"
            print(
                f"{_relative(output)} is stale; to fix it run: {fix}", file=sys.stderr
            )
            return EXIT_ERROR
        return EXIT_OK
    changed = write_package(files, output)
    # Module names are relative to the main schema's folder, as in QEMU's dumps.
    schema_dir = Path(schema_path).parent
    inputs = [str(schema_dir / m.name) for m in schema.modules if not m.is_builtin]
    write_stamp(output, make_stamp(options, inputs, files))
    print(
        f"{_relative(output)}: {len(files)} files, {len(changed)} changed",
        file=sys.stderr,
    )
    return EXIT_OK


def _relative(path: Path) -> Path:
    """Show paths relative to the working folder where possible (no machine paths)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


_COMMANDS = {"check": _cmd_check, "dump-ir": _cmd_dump_ir, "generate": _cmd_generate}


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except QAPIError as error:
        print(error, file=sys.stderr)
        return EXIT_ERROR
    except ConfigError as error:
        print(f"qapigen: {error}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # `qapigen dump-ir ... | head` closes the pipe early: not an error worth a trace.
        sys.stderr.close()
        return EXIT_OK
    except Exception as error:
        if os.environ.get("QAPIGEN_DEBUG"):
            traceback.print_exc()
        print(
            f"qapigen: internal error: {type(error).__name__}: {error}"
            " (please report it; QAPIGEN_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

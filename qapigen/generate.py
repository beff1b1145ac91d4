"""Generate a bindings package from a checked schema; write it, or check it is current.

`generate_package` renders every file in memory (relative path -> text). `write_package`
rewrites only files whose text changed (so timestamps and build caches stay put), all at
once (atomic_write.py), and removes files it no longer produces; it touches only files
qapigen owns (ownership.py) and leaves a stamp recording them (stamp.py). `check_package`
returns a unified diff from what is on disk to what would be written (empty when current).
A written package compiles by construction (see `check_written_text` for the argument);
what schema input could still break is checked on every run, and `QAPIGEN_VERIFY=1`
(which the test suite sets) compiles every module in memory as well. Either way a
package that fails is a bug of qapigen's (GeneratedCodeError), never written.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from .atomic_write import replace_files
from .backends.commands import generate_commands
from .backends.common import TypeNames
from .backends.events import generate_events
from .backends.introspection import generate_introspection
from .backends.limits import check_limits
from .backends.modules import ModulePlan
from .backends.types import generate_types
from .ownership import OutputError, Plan, plan_package
from .render import header, render
from .schema import Schema
from .stamp import STAMP_NAME, Provenance, make_stamp, regular_file_bytes, stamp_bytes

# Files a generated package holds besides the rendered modules.
PY_TYPED = "py.typed"


class GeneratedCodeError(Exception):
    """A generated module does not compile: a bug of qapigen's, not of the schema (a
    schema qapigen cannot express is refused by the front end with a located error)."""


# Set to 1, `generate_package` compiles every module it returns (check_compiles).
VERIFY_VARIABLE = "QAPIGEN_VERIFY"


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def check_written_text(files: dict[str, str]) -> None:
    """Check, on every run, what schema input could still break in generated modules;
    GeneratedCodeError, naming the file (and line), for the first that is broken.

    Why the rest cannot fail (so `generate` no longer pays `compile()`, which cost more
    than all of generation besides, for every module it writes):
    - Template text is fixed; schema input reaches a module only as
      * text, through `render.py_string` (a string literal) or `render.docstring`
        (prose): both escape anything, lone surrogates, quotes, backslashes and
        control characters included (tests/bindings/test_hostile_text.py: both
        properties over any text; no template puts a variable between quotes);
      * names, through `naming.py`: ASCII identifiers (the front end admits only
        `[A-Za-z0-9_.-]`, a leading digit gets `_`), never a keyword or `__debug__`,
        each unique in its Python scope (`NameScope`), so no parameter list or
        keyword call repeats one (tests/frontend/test_naming.py, including a property
        over every name the front end accepts; tests/bindings/test_reserved_names.py
        generates every builtin, keyword and typing name in every role); a QAPI name
        quoted in a message needs no escape in any literal, f-strings included (its
        alphabet is letters, digits, '-', '_' and '.');
      * shape: which constructs, how many members, how deep. Nesting is bounded
        before anything is generated (backends/limits.py, far below Python's limits
        of 100 indentation levels and 200 nested brackets: the deepest accepted
        shapes nest 10 and 3, and test_generate_limits.py compiles them), and
        brackets and line breaks come from `layout.py`, whose layouts black reprints
        unchanged (tests/bindings/test_layout.py; test_black_schemas.py over random
        schemas of every construct).
    - The test suite runs with QAPIGEN_VERIFY=1 (tests/conftest.py), so every package
      any test generates, the golden ones and QEMU's complete schemas among them, is
      compiled whole, as every run once did.
    What remains to check here is the text failures Python's compiler refused in
    hostile input before the escaping existed: a NUL byte (source may not hold one)
    and text that is not encodable as UTF-8 (a lone surrogate). Both are a scan in C.
    """
    for path, text in files.items():
        if not path.endswith(".py"):
            continue
        nul = text.find("\x00")
        if nul >= 0:
            raise GeneratedCodeError(
                f"{path}:{_line_of(text, nul)}: generated code does not compile:"
                " it holds a NUL byte"
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise GeneratedCodeError(
                f"{path}:{_line_of(text, error.start)}: generated code is not"
                f" encodable as UTF-8: {error.reason}"
            ) from error


def verifying() -> bool:
    """Whether to compile every generated module in memory (QAPIGEN_VERIFY=1)."""
    return os.environ.get(VERIFY_VARIABLE, "") == "1"


def check_compiles(files: dict[str, str]) -> None:
    """Compile every Python module of `files` in memory; GeneratedCodeError, naming
    the file and line, for the first that does not compile."""
    for path, text in files.items():
        if not path.endswith(".py"):
            continue
        try:  # a lone surrogate fails as UnicodeEncodeError, a NUL as SyntaxError
            compile(text, path, "exec", dont_inherit=True)
        except SyntaxError as error:  # IndentationError among them
            raise GeneratedCodeError(
                f"{path}:{error.lineno}: generated code does not compile:"
                f" {type(error).__name__}: {error.msg}"
            ) from error
        except (ValueError, UnicodeError, RecursionError, MemoryError) as error:
            raise GeneratedCodeError(
                f"{path}: generated code does not compile: {type(error).__name__}:"
                f" {error}"
            ) from error


def generate_package(schema: Schema, package: str, schema_name: str) -> dict[str, str]:
    """Every file of the package for `schema`, by path relative to the package folder.

    `package` is the import name (used in docstrings), `schema_name` the schema file's
    name as the header should show it (no directories: output must not depend on
    where the schema lives).
    """
    check_limits(schema)  # a schema too deep to generate in proportion: a located error
    names = TypeNames(schema)
    plan = ModulePlan(schema, taken=names.owner)
    modules = [
        *generate_types(schema, names, plan, schema_name),
        *generate_commands(schema, names, plan, schema_name),
        *generate_events(schema, names, plan, schema_name),
        generate_introspection(schema, schema_name),
    ]
    files = {module.path: module.body for module in modules}
    files["__init__.py"] = render(
        "init.py.j2",
        package=package,
        schema_name=schema_name,
        header=header(schema_name),
        modules=["commands", "events", "introspection", "types"],
    )
    files[PY_TYPED] = ""
    check_written_text(files)
    if verifying():
        check_compiles(files)
    return dict(sorted(files.items()))


def apply_plan(plan: Plan, provenance: Provenance | None = None) -> list[str]:
    """Carry out `plan` (see ownership.py) all at once, with the folder's new stamp;
    return the paths that changed (written or removed). OutputError, before anything
    is touched, if the plan refuses a path."""
    if plan.refused:
        raise OutputError(
            [(plan.folder / note.path, note.reason) for note in plan.refused]
        )
    stamp = stamp_bytes(make_stamp(plan.files, plan.folder, provenance))
    old_stamp = plan.folder / STAMP_NAME
    record = None if regular_file_bytes(old_stamp) == stamp else (STAMP_NAME, stamp)
    writes = {path: plan.files[path].encode("utf-8") for path in plan.write}
    if writes or plan.remove or record is not None:
        replace_files(plan.folder, writes, plan.remove, record)
    return sorted([*plan.write, *plan.remove])


def write_package(
    files: dict[str, str], folder: Path, *, provenance: Provenance | None = None
) -> list[str]:
    """Write `files` into `folder`, touching only what qapigen owns there (see
    ownership.py), all at once; return the paths that changed (written or removed)."""
    return apply_plan(plan_package(files, folder), provenance)


def _decoded(data: bytes | None) -> list[str]:
    return [] if data is None else data.decode("utf-8", "replace").splitlines(True)


def plan_diff(plan: Plan, prefix: str = "") -> str:
    """A unified diff from what `plan`'s folder holds to what would be generated ("" when
    it is current), paths shown as `a/PREFIX...`. Paths the generation would refuse
    or leave alone show as `PREFIX+path: reason` lines."""
    chunks: list[str] = []
    changes = {**plan.write, **plan.remove}
    for relative in sorted(changes):
        old = changes[relative]
        new = plan.files.get(relative)
        if old is None and new == "":
            chunks.append(f"missing file: {prefix}{relative}\n")
            continue
        chunks.extend(
            difflib.unified_diff(
                _decoded(old),
                [] if new is None else new.splitlines(keepends=True),
                fromfile=f"a/{prefix}{relative}" if old is not None else "/dev/null",
                tofile=f"b/{prefix}{relative}" if new is not None else "/dev/null",
            )
        )
    for note in [*plan.refused, *plan.left_alone]:
        chunks.append(f"{prefix}{note.path}: {note.reason}\n")
    return "".join(chunks)


def check_package(files: dict[str, str], folder: Path, prefix: str = "") -> str:
    """A unified diff from what is in `folder` to what would be generated ("" when the
    folder is current). Missing and stale files show as whole-file diffs."""
    return plan_diff(plan_package(files, folder), prefix)

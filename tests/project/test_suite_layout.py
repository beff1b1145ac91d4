"""The suite's own layout rules, checked on the source of tests/ and bench/.

- Test modules never import each other, and nothing imports a test module: what
  several of them share lives in the support package (tests/support/qapigen_testing),
  fixtures in a conftest.py. pytest imports test modules in importlib mode, so such an
  import would fail anyway; this says where and why before anything runs.
- Outside the support package a folder of tests/ holds test modules and conftest.py
  only (and the data folders below), so a shared helper cannot hide beside the tests.
- Nothing puts a folder on ``sys.path`` by hand: the support package is installed, and
  a generated package goes through `qapigen_testing.generated_packages`, the one place
  that does it, and undoes it. Code run in a subprocess (a string of Python) is held
  to the same rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from qapigen_testing.paths import REPO
from qapigen_testing.suite_files import SUPPORT, suite_modules

SCANNED = ("tests", "bench")
THE_ONE_PATH_CHANGER = SUPPORT / "qapigen_testing" / "generated_packages.py"
BREACHES_ON_PURPOSE = {
    Path("tests/project/test_suite_layout.py"),  # the scanner's examples, below
    Path("tests/project/test_pytest_config.py"),  # tries pytest on a breach
}
PATH_CHANGING_FUNCTIONS = {("site", "addsitedir")}


def _is_test_module(dotted: str) -> bool:
    return any(
        part.startswith("test_") or part == "conftest" for part in dotted.split(".")
    )


def _is_sys_path(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    )


def _changed_targets(node: ast.AST) -> list[ast.expr]:
    """What an assignment, augmented assignment or deletion writes to."""
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, ast.AugAssign | ast.AnnAssign):
        return [node.target]
    if isinstance(node, ast.Delete):
        return list(node.targets)
    return []


def _embedded_code(node: ast.Constant) -> ast.Module | None:
    """A string that is a program of its own (run by a subprocess), parsed."""
    text = node.value
    if not isinstance(text, str) or "import" not in text:
        return None
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    has_import = any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree))
    return tree if has_import else None


def problems_in(
    tree: ast.AST, may_change_path: bool = False
) -> Iterator[tuple[int, str]]:
    """(line, what is wrong) for every breach of the rules in one module's tree."""
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_test_module(alias.name):
                    yield line, f"imports the test module {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if _is_test_module(module):
                yield line, f"imports from the test module {module}"
            elif node.module in (None, "."):
                for alias in node.names:
                    if _is_test_module(alias.name):
                        yield line, f"imports the test module {alias.name}"
            if module == "sys" and any(a.name == "path" for a in node.names):
                yield line, "imports sys.path by name (to change it)"
        elif isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Attribute) and _is_sys_path(function.value):
                if function.attr not in ("index", "count", "copy") and not (
                    may_change_path
                ):
                    yield line, f"changes sys.path (sys.path.{function.attr})"
            elif (
                isinstance(function, ast.Attribute)
                and isinstance(function.value, ast.Name)
                and (function.value.id, function.attr) in PATH_CHANGING_FUNCTIONS
            ):
                yield line, f"changes sys.path ({function.value.id}.{function.attr})"
            named = _imported_by_name(node)
            if named is not None and _is_test_module(named):
                yield line, f"imports the test module {named}"
        elif isinstance(node, ast.Constant) and (code := _embedded_code(node)):
            for inner_line, problem in problems_in(code):
                yield line + inner_line - 1, f"{problem} (in code run elsewhere)"
        for target in _changed_targets(node):
            while isinstance(target, ast.Subscript):
                target = target.value
            if _is_sys_path(target) and not may_change_path:
                yield line, "changes sys.path (assigns to it)"


def _imported_by_name(call: ast.Call) -> str | None:
    """The module named in ``importlib.import_module("x")`` or ``__import__("x")``."""
    function = call.func
    named = (
        isinstance(function, ast.Attribute) and function.attr == "import_module"
    ) or (
        isinstance(function, ast.Name)
        and function.id in ("__import__", "import_module")
    )
    if not named or not call.args:
        return None
    first = call.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    if isinstance(first, ast.JoinedStr) and first.values:
        head = first.values[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return head.value
    return None


def _sources() -> Iterator[Path]:
    """Every Python file of tests/ and bench/ but those that hold breaches of the
    rules on purpose, as examples."""
    for folder in SCANNED:
        yield from (
            path
            for path in sorted((REPO / folder).rglob("*.py"))
            if path.relative_to(REPO) not in BREACHES_ON_PURPOSE
        )


def test_no_test_module_is_imported_and_no_one_changes_sys_path() -> None:
    exempt = [REPO / path for path in (*BREACHES_ON_PURPOSE, THE_ONE_PATH_CHANGER)]
    assert all(path.exists() for path in exempt), "an exemption names a lost file"
    found: list[str] = []
    for path in _sources():
        relative = path.relative_to(REPO)
        tree = ast.parse(path.read_text(), filename=str(relative))
        may_change = relative == THE_ONE_PATH_CHANGER
        found += [
            f"{relative}:{line}: {what}" for line, what in problems_in(tree, may_change)
        ]
    assert not found, (
        "shared code belongs in tests/support/qapigen_testing (fixtures in a "
        "conftest.py), generated packages are imported with "
        "qapigen_testing.generated_packages.imported_package:\n" + "\n".join(found)
    )


def test_component_folders_hold_only_tests_and_conftest() -> None:
    found = [
        f"{relative}:1: neither a test module nor a conftest.py"
        for relative in suite_modules()
        if not (relative.name.startswith("test_") or relative.name == "conftest.py")
    ]
    assert not found, (
        "helpers shared by tests go into tests/support/qapigen_testing, the ones of "
        "one module stay in it:\n" + "\n".join(found)
    )


def test_test_module_basenames_are_unique() -> None:
    """Two test modules of one name would be told apart only by their folder in
    reports and ``-k`` selections; keep each name unique in the whole suite."""
    seen: dict[str, Path] = {}
    clashes: list[str] = []
    for relative in suite_modules():
        if relative.name == "conftest.py":
            continue
        if relative.name in seen:
            clashes.append(f"{relative}:1: same name as {seen[relative.name]}")
        seen.setdefault(relative.name, relative)
    assert not clashes, "\n".join(clashes)


# -- the scanner finds what it is meant to find ------------------------------------------


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("import test_vm_tls", "imports the test module test_vm_tls"),
        ("from test_vm_tls import Pki", "imports from the test module test_vm_tls"),
        ("from tests.vm.test_vm_colo import ColoPair", "imports from the test module"),
        ("from . import test_vm_postcopy", "imports the test module test_vm_postcopy"),
        ("from .test_vm_postcopy import x", "imports from the test module"),
        ("import conftest", "imports the test module conftest"),
        ("importlib.import_module('test_vm_engine')", "imports the test module"),
        ("__import__(f'test_{name}')", "imports the test module test_"),
        ("sys.path.insert(0, 'tests/vm')", "changes sys.path (sys.path.insert)"),
        ("sys.path.append(str(HERE))", "changes sys.path (sys.path.append)"),
        ("sys.path.remove(x)", "changes sys.path (sys.path.remove)"),
        ("sys.path[:0] = ['tests']", "changes sys.path (assigns to it)"),
        ("sys.path = ['tests']", "changes sys.path (assigns to it)"),
        ("sys.path += ['tests']", "changes sys.path (assigns to it)"),
        ("from sys import path", "imports sys.path by name"),
        ("site.addsitedir('tests')", "changes sys.path (site.addsitedir)"),
        (
            "RUNNER = '''\nimport sys\nsys.path.insert(0, sys.argv[1])\n'''",
            "changes sys.path (sys.path.insert) (in code run elsewhere)",
        ),
    ],
)
def test_the_scan_finds(source: str, problem: str) -> None:
    found = list(problems_in(ast.parse(source)))
    assert len(found) == 1 and problem in found[0][1], found


def test_the_scan_gives_the_line_inside_embedded_code() -> None:
    source = "x = 1\nRUNNER = '''\nimport sys\nsys.path.insert(0, sys.argv[1])\n'''\n"
    assert [line for line, _ in problems_in(ast.parse(source))] == [4]


@pytest.mark.parametrize(
    "source",
    [
        "from qapigen_testing.vm_engine import Factory",
        "import qapigen_testing.colo_pair",
        "print(sys.path)",
        "assert str(root) not in sys.path",
        "where = sys.path.index(entry)",
        "importlib.import_module(f'{package}.types')",
        "importlib.import_module('qapigen_migration.types')",
        "text = 'tests put nothing on sys.path'",
        "def test_something() -> None: pass",
    ],
)
def test_the_scan_lets_pass(source: str) -> None:
    assert list(problems_in(ast.parse(source))) == []


def test_only_the_support_module_may_change_sys_path() -> None:
    tree = ast.parse("sys.path.insert(0, entry)\nsys.path.remove(entry)")
    assert list(problems_in(tree, may_change_path=True)) == []
    assert len(list(problems_in(tree))) == 2

"""Figures in the README that can be checked cheaply are checked: counts of things in
the repository, and the size of the output for QEMU 7.2's complete schema. (Timings are
the benches' business; the README names the bench that gave each one.)"""

from __future__ import annotations

import re

import pytest

import qapigen.rules
from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen_testing.paths import REPO, qemu_release
from qapigen_testing.scenarios import SCENARIOS

README = (REPO / "README.md").read_text(encoding="utf-8")


def figure(pattern: str) -> int:
    """The number the README gives where `pattern` (a regex with one group) matches."""
    found = re.search(pattern, README)
    assert found is not None, f"the README no longer says {pattern!r}: update this test"
    return int(found.group(1).replace(",", ""))


def test_the_typed_server_example_has_the_lines_the_readme_says() -> None:
    lines = (REPO / "examples" / "typed_server.py").read_text().count("\n")
    assert figure(r"migration monitor in (\d+) lines") == lines


def test_the_rules_and_parity_scenarios_are_as_many_as_the_readme_says() -> None:
    rules = [
        v for v in vars(qapigen.rules).values() if isinstance(v, qapigen.rules.Rule)
    ]
    assert figure(r"lists the (\d+) rules") == len(rules)
    assert figure(r"test_vm_parity\.py`, (\d+) scenarios") == len(SCENARIOS)


def test_the_output_for_qemu_72_is_as_long_as_the_readme_says() -> None:
    schema = qemu_release("7.2", "qapi", "qapi-schema.json")
    if schema is None:
        pytest.skip("QEMU 7.2's schema is not at hand (../shared)")
    files = generate_package(load_schema(str(schema)), "qemu72", schema.name)
    lines = sum(
        text.count("\n") for name, text in files.items() if name.endswith(".py")
    )
    assert figure(r"complete QEMU 7.2 schema \(([\d,]+) lines of output\)") == lines

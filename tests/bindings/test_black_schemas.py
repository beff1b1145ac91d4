"""Whole generated packages are what black prints, whatever the lengths of the names.

The generator lays code out itself (qapigen/layout.py) instead of running a formatter;
this checks the result, file by file, with black in-process, over random schemas whose
type, member and command names are short, long and everything around the 88-column
limit, in every construct the templates emit (structs, optional members, arrays, enums
with deprecated values, unions with nested branches, alternates, commands with and
without arguments and replies, boxed commands, events, members a server may leave
out (conditional or deprecated), a conditional branch, a command taking a passed
descriptor).
"""

from __future__ import annotations

import os

import black
from black.mode import TargetVersion
from hypothesis import given, settings
from hypothesis import strategies as st

from qapigen.frontend import schema_from_parsed
from qapigen.generate import generate_package
from qapigen.level import Level
from qapigen.parser import parse_text

MODE = black.Mode(line_length=88, target_versions={TargetVersion.PY311})

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12)


def _join(parts: list[str], sep: str) -> str:
    return sep.join(parts)


lower_names = st.lists(words, min_size=1, max_size=7).map(lambda p: _join(p, "-"))
# QAPI reserves type names that end in "List" for arrays
type_names = (
    st.lists(words, min_size=1, max_size=6)
    .map(lambda p: "".join(w.capitalize() for w in p))
    .filter(lambda name: not name.endswith("List"))
)
event_names = st.lists(words, min_size=1, max_size=6).map(
    lambda p: _join(p, "_").upper()
)


@st.composite
def schemas(draw: st.DrawFn) -> str:
    """A valid schema: distinct names drawn long and short."""
    names = draw(st.lists(type_names, min_size=6, max_size=6, unique=True))
    names = [f"T{index}{name}" for index, name in enumerate(names)]
    enum, struct, inner, union, alternate, boxed = names
    members = draw(st.lists(lower_names, min_size=2, max_size=5, unique=True))
    members = [f"m-{name}" for name in members]
    values = draw(st.lists(lower_names, min_size=2, max_size=4, unique=True))
    values = [f"v-{name}" for name in values]
    command = "do-" + draw(lower_names)
    event = "EV_" + draw(event_names)
    first, *rest = members
    data = ", ".join(
        [f"'{first}': '{enum}'"]
        + [
            f"'*{m}': ['{inner}']" if i % 2 else f"'*{m}': '{alternate}'"
            for i, m in enumerate(rest)
        ]
    )
    value_list = ", ".join(
        [f"'{values[0]}'"]
        + [f"{{ 'name': '{v}', 'features': [ 'deprecated' ] }}" for v in values[1:]]
    )
    # the last value's branch is conditional
    branches = ", ".join(f"'{v}': '{inner}'" for v in values[:-1])
    return f"""
{{ 'enum': '{enum}', 'data': [ {value_list} ] }}
{{ 'struct': '{inner}', 'data': {{ 'i-{first}': 'int', '*opt-{command}': 'str',
   'if-{first}': {{ 'type': '{alternate}', 'if': 'CONFIG_{enum}' }},
   'dep-{first}': {{ 'type': 'int', 'features': [ 'deprecated' ] }} }} }}
{{ 'struct': '{struct}', 'data': {{ {data} }} }}
{{ 'union': '{union}', 'base': {{ '{first}': '{enum}' }}, 'discriminator': '{first}',
   'data': {{ {branches},
             '{values[-1]}': {{ 'type': '{inner}', 'if': 'CONFIG_{union}' }} }} }}
{{ 'alternate': '{alternate}', 'data': {{ 'object': '{inner}', 'number': 'int' }} }}
{{ 'struct': '{boxed}', 'data': {{ '{first}': '{union}' }} }}
{{ 'command': '{command}', 'data': {{ {data} }}, 'returns': '{struct}' }}
{{ 'command': '{command}-boxed', 'data': '{boxed}', 'boxed': true,
   'returns': ['{inner}'] }}
{{ 'command': '{command}-plain' }}
{{ 'command': 'add-fd', 'data': {{ {data} }}, 'returns': '{struct}' }}
{{ 'event': '{event}', 'data': {{ {data} }} }}
"""


@settings(
    max_examples=int(os.environ.get("QAPIGEN_BLACK_EXAMPLES", "40")), deadline=None
)
@given(schemas())
def test_every_generated_file_is_what_black_prints(text: str) -> None:
    parsed = parse_text(text, "random.json", Level.PERMISSIVE)
    schema = schema_from_parsed(parsed, "random.json", Level.PERMISSIVE)
    files = generate_package(schema, "random_pkg", "random.json")
    for name, source in files.items():
        if name.endswith(".py"):
            assert black.format_str(source, mode=MODE) == source, name


def test_an_optional_argument_too_long_in_parentheses_splits_at_the_union() -> None:
    """Found by the property above (hypothesis, in a run of the suite): an optional list argument whose
    parenthesized annotation ``list[...] | None`` is still too long, which black splits
    into one operand a line, and an operand still too long at its brackets. Name lengths
    from 60 to 90 cover the lines around 88 at each step."""
    for length in range(60, 91):
        name = "T" + "a" * (length - 1)
        text = (
            f"{{ 'struct': '{name}', 'data': {{ 'x': 'int' }} }}\n"
            f"{{ 'command': 'do-a', 'data': {{ '*m-a-a-a': ['{name}'] }} }}\n"
        )
        parsed = parse_text(text, "long.json", Level.PERMISSIVE)
        schema = schema_from_parsed(parsed, "long.json", Level.PERMISSIVE)
        files = generate_package(schema, "long_pkg", "long.json")
        source = files["commands.py"]
        assert black.format_str(source, mode=MODE) == source, length

"""Forms found in QEMU 10.x schemas, checked at `--qapi-version 10.0` with small
schemas written for these tests (no QEMU text).

These came out of running qapigen over the newest QEMU schema files (migration,
sockets, common, control, introspect, job, compat, accelerator, uefi, acpi-hest):
each test pins one behaviour QEMU 10.0's own generator has.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from qapigen.doc import QAPIDoc
from qapigen.dump import dump_qemu_test
from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen.level import Level
from qapigen.parser import parse_text
from qapigen.source import QAPIError
from qapigen_runtime.codec import DecodeError
from qapigen_testing.generated_packages import imported_package


def docs_of(text: str, level: Level = Level.V10_0) -> list[QAPIDoc]:
    return parse_text(text, "n.json", level).docs


def block(
    *lines: str, expr: str = "{ 'command': 'probe', 'data': {'a': 'int'} }"
) -> str:
    body = "".join(f"# {line}\n" if line else "#\n" for line in lines)
    return f"##\n{body}##\n{expr}\n"


# ---- indented blocks: where a shallower line is an error ----


def test_shallower_line_after_two_block_lines_starts_a_paragraph() -> None:
    """QEMU 10.0 only rejects a shallower line directly after a block's first
    line; after that it closes the block, and the line opens a plain paragraph."""
    [doc] = docs_of(
        block(
            "@probe:",
            "",
            "@a:",
            "    described on the line below the name",
            "    and on one more",
            "back at the margin, no blank line before",
            "",
            "Since: 10.0",
        )
    )
    assert doc.args["a"].text == (
        "    described on the line below the name\n    and on one more"
    )
    assert [(s.kind, s.text) for s in doc.sections] == [
        ("plain", "back at the margin, no blank line before"),
        ("tagged", "10.0"),
    ]


def test_shallower_line_after_a_tag_and_one_continuation_starts_a_paragraph() -> None:
    # "Returns: x" puts its text on the tag line; the block proper starts below it
    [doc] = docs_of(
        block(
            "@probe:",
            "",
            "@a: an argument",
            "",
            "Returns: a number",
            "    that is counted",
            "    in apples",
            "a trailing remark",
        ),
    )
    assert doc.sections[0].text == "a number\n    that is counted\n    in apples"
    assert (doc.sections[1].kind, doc.sections[1].text) == (
        "plain",
        "a trailing remark",
    )


@pytest.mark.parametrize(
    "lines",
    [
        # right after the block's first line, as in the specification's bad example
        ("@probe:", "", "@a:", "    first line of the block", "too shallow"),
        ("@probe:", "", "@a: text on the name line", "    block line", "  shallower"),
    ],
)
def test_shallower_line_right_after_the_first_block_line_is_an_error(
    lines: tuple[str, ...],
) -> None:
    with pytest.raises(QAPIError) as caught:
        docs_of(block(*lines))
    assert str(caught.value) == (
        "n.json:6:1: unexpected de-indent (expected at least 4 spaces)"
    )


def test_a_blank_line_still_ends_the_block_quietly() -> None:
    [doc] = docs_of(
        block("@probe:", "", "@a:", "    one line", "", "a paragraph of its own")
    )
    assert doc.args["a"].text == "    one line"
    assert doc.sections[0].text == "a paragraph of its own"


def test_the_permissive_level_accepts_what_10_0_accepts(tmp_path: Path) -> None:
    schema = tmp_path / "p.json"
    schema.write_text(
        block(
            "@probe:",
            "",
            "@a:",
            "    described below the name",
            "    over two lines",
            "then a shallower sentence",
        )
    )
    for level in (Level.PERMISSIVE, Level.V10_0):
        load_schema(str(schema), level)


# ---- 10.x definitions seen in the newest schemas, in own words ----

NEWER_FORMS = """\
{ 'pragma': { 'doc-required': true } }

##
# *******
# Pantry
# *******
##

##
# @Jam:
#     Kinds of jam, described below the name line.
#
# @plum: dark
#
# @fig: only where figs grow
#
# @quince: on its way out
#
# Features:
#
# @deprecated: Member @quince is no longer made.
#
# Since: 10.1
##
{ 'enum': 'Jam',
  'prefix': 'JAM_KIND',
  'data': [ 'plum',
            { 'name': 'fig', 'if': 'CONFIG_FIG' },
            { 'name': 'quince', 'features': [ 'deprecated' ] } ] }

##
# @Shelf:
#
# A shelf.  See `Jam`.
#
# @jars: jars per row
#
# @label: a label
#
# Features:
#
# @unstable: Member @jars is experimental.
#
# TODO: merge with `Jam` one day
#
# Since: 10.2
##
{ 'struct': 'Shelf',
  'data': { '*jars': { 'type': [ 'uint64' ], 'features': [ 'unstable' ] },
            'label' : 'str' } }

##
# @x-stock-shelf:
#
# Put jam on a shelf.
#
# @shelf: where
#
# Features:
#
# @unstable: This command is experimental.
#
# TODO: This line keeps the example out of the body
#
# .. qmp-example::
#    :title: Stocking an empty shelf
#
#     -> { "execute": "x-stock-shelf",
#          "arguments": { "shelf": { "label": "top" } } }
#     <- { "return": {} }
#
# .. qmp-example::
#    :annotated:
#
#    Stocking it again::
#
#     -> { "execute": "x-stock-shelf",
#          "arguments": { "shelf": { "label": "top" } } }
#     <- { "return": {} }
#
# Since: 10.2
##
{ 'command': 'x-stock-shelf', 'data': { 'shelf': 'Shelf' },
  'features': [ 'unstable' ],
  'if': { 'all': [ 'CONFIG_SHELF', { 'not': 'CONFIG_NO_JAM' } ] } }
"""


def test_newer_definitions_read_like_qemu_10(tmp_path: Path) -> None:
    schema = tmp_path / "pantry.json"
    schema.write_text(NEWER_FORMS)
    dump = dump_qemu_test(load_schema(str(schema), Level.V10_0))
    for expected in (
        "enum Jam\n    prefix JAM_KIND\n    member plum\n    member fig\n"
        "        if CONFIG_FIG\n    member quince\n        feature deprecated\n",
        "    member jars: uint64List optional=True\n        feature unstable\n",
        "    if {'all': ['CONFIG_SHELF', {'not': 'CONFIG_NO_JAM'}]}\n"
        "    feature unstable\n",
        # the TODO section, then both examples in one plain section, then Since
        "    section=Todo\nThis line keeps the example out of the body\n"
        "    section=Plain\n.. qmp-example::\n   :title: Stocking an empty shelf\n",
        "   :annotated:\n\n   Stocking it again::\n",
        "    section=Since\n10.2\n",
    ):
        assert expected in dump


# ---- a union branch whose type is itself a union (QEMU 8.2+ MigrationAddress) ----

NESTED_UNION = """\
{ 'enum': 'Carrier', 'data': [ 'post', 'courier', 'drone' ] }
{ 'enum': 'PostKind', 'data': [ 'letter', 'parcel' ] }
{ 'struct': 'Letter', 'data': { 'stamps': 'int' } }
{ 'struct': 'Parcel', 'data': { 'weight': 'size', '*fragile': 'bool' } }
{ 'union': 'PostItem',
  'base': { 'kind': 'PostKind', '*tracking': 'str' },
  'discriminator': 'kind',
  'data': { 'letter': 'Letter', 'parcel': 'Parcel' } }
{ 'struct': 'Courier', 'data': { 'company': 'str' } }
{ 'union': 'Delivery',
  'base': { 'carrier': 'Carrier' },
  'discriminator': 'carrier',
  'data': { 'post': 'PostItem', 'courier': 'Courier' } }
{ 'struct': 'Order', 'data': { 'how': 'Delivery' } }
"""


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The types module generated for NESTED_UNION, imported."""
    root = tmp_path_factory.mktemp("nested")
    schema = root / "nested.json"
    schema.write_text(NESTED_UNION)
    package = generate_package(
        load_schema(str(schema), Level.V10_0), "nested_live", "nested.json"
    )
    with imported_package(package, root, "nested_live"):
        yield importlib.import_module("nested_live.types")


def test_inner_union_members_are_decoded_not_left_over(nested: ModuleType) -> None:
    """QEMU puts the inner union's tag and branch members in the same JSON object
    as the outer tag; a strict (server-side) decode accepts them all."""
    wire = {"carrier": "post", "kind": "parcel", "weight": 2048, "tracking": "T1"}
    order = nested.Order.from_wire({"how": wire}, "", True)
    assert type(order.how) is nested.Delivery_Post_Parcel
    assert (order.how.weight, order.how.tracking, order.how.extra) == (2048, "T1", {})
    assert order.to_wire() == {"how": wire}


def test_each_inner_branch_gets_its_own_class_with_both_tags_fixed(
    nested: ModuleType,
) -> None:
    letter = nested.Delivery_Post_Letter(stamps=2)
    assert letter.to_wire() == {"carrier": "post", "kind": "letter", "stamps": 2}
    assert nested.decode_delivery({"carrier": "courier", "company": "Acme"}) == (
        nested.Delivery_Courier(company="Acme")
    )
    # the alias names every leaf (a tag value without a branch type gets an empty
    # class), so a type checker sees all shapes
    assert set(typing.get_args(nested.Delivery)) == {
        nested.Delivery_Post_Letter,
        nested.Delivery_Post_Parcel,
        nested.Delivery_Courier,
        nested.Delivery_Drone,
    }


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({"carrier": "post"}, "how.kind: missing member"),
        ({"carrier": "post", "kind": "crate"}, "how.kind: 'crate' is not a value"),
        ({"carrier": "post", "kind": "letter"}, "how.stamps: missing member"),
        (
            {"carrier": "post", "kind": "letter", "stamps": 1, "colour": "red"},
            "how.colour: unexpected member",
        ),
    ],
)
def test_inner_union_faults_name_the_path(
    nested: ModuleType, wire: dict[str, object], message: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        nested.Order.from_wire({"how": wire}, "", True)
    assert str(caught.value).startswith(message)

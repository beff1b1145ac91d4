"""Generated `from_wire` checks scalars inline and calls the runtime helpers only for
what those checks do not accept; the result must be exactly what decoding each member
through the helpers gives (values, and for faults the message, JSON path, leaf and
QEMU wording), leniently and strictly, with members absent, null, unknown or wrong."""

from __future__ import annotations

import dataclasses
import enum
import importlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qapigen.frontend import load_schema
from qapigen.generate import generate_package
from qapigen_runtime import codec as c
from qapigen_testing.generated_packages import imported_package

# Every built-in scalar type, required and optional, plus an enum, a nested struct,
# an array and members whose names the codec itself uses as variables.
SCALARS = [
    "int",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "size",
    "number",
    "bool",
    "str",
    "any",
]
SCHEMA = """
{ 'enum': 'Mode', 'data': [ 'none', 'fast-path' ] }
{ 'struct': 'Inner', 'data': { 'n': 'uint8' } }
{ 'struct': 'Every', 'data': {
    %s,
    'mode': 'Mode', '*opt-mode': 'Mode',
    '*inner': 'Inner', 'list': ['uint16'],
    'data': 'str', '*value': 'int', '*get': 'bool', '*decoded': 'str' } }
{ 'event': 'CHANGED', 'data': { 'mode': 'Mode', '*count': 'size' } }
{ 'struct': 'OnlyNumber', 'data': { 'rate': 'number' } }
{ 'struct': 'OnlyNested', 'data': { 'inner': 'Inner' } }
""" % ",\n    ".join(
    f"'{name}-req': '{name}', '*{name}-opt': '{name}'" for name in SCALARS
)

HELPERS: dict[str, c.Decoder[Any]] = {
    "int": c.int_,
    "number": c.number,
    "bool": c.boolean,
    "str": c.string,
    "any": c.any_value,
}


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    root = tmp_path_factory.mktemp("inline")
    schema_file = root / "inline.json"
    schema_file.write_text(SCHEMA)
    files = generate_package(load_schema(str(schema_file)), "inline_codec", "x.json")
    with imported_package(files, root, "inline_codec") as package:
        yield package


def _reference(types: ModuleType) -> Callable[[object, str, bool], dict[str, object]]:
    """Decoding `Every` the way generated code did before inlining: every member
    through `_c.required` / `_c.optional`, then `_c.extra_members`."""
    cls = types.Every

    def decode(value: object, path: str, strict: bool) -> dict[str, object]:
        data = c.object_(value, path)
        result: dict[str, object] = {}
        for member in SCALARS:
            decoder = HELPERS.get(member) or getattr(c, member)
            result[f"{member}_req"] = c.required(
                data, f"{member}-req", path, strict, decoder
            )
            result[f"{member}_opt"] = c.optional(
                data, f"{member}-opt", path, strict, decoder
            )
        result["mode"] = c.required(data, "mode", path, strict, types.Mode.from_wire)
        result["opt_mode"] = c.optional(
            data, "opt-mode", path, strict, types.Mode.from_wire
        )
        result["inner"] = c.optional(data, "inner", path, strict, types.Inner.from_wire)
        result["list_"] = c.required(data, "list", path, strict, c.array_of(c.uint16))
        result["data"] = c.required(data, "data", path, strict, c.string)
        result["value"] = c.optional(data, "value", path, strict, c.int_)
        result["get"] = c.optional(data, "get", path, strict, c.boolean)
        result["decoded"] = c.optional(data, "decoded", path, strict, c.string)
        result["extra"] = c.extra_members(data, cls._MEMBERS, path, strict, "Every")
        return result

    return decode


def _fields(obj: object) -> dict[str, object]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]


def _outcome(decode: Callable[[], object]) -> tuple[str, object]:
    try:
        value = decode()
    except c.DecodeError as error:
        return "error", (
            str(error),
            error.path,
            error.kind,
            error.leaf,
            error.qmp_message(),
        )
    return "value", value


def _valid_wire() -> dict[str, object]:
    wire: dict[str, object] = {}
    for member in SCALARS:
        sample: object = {"number": 1.5, "bool": True, "str": "s", "any": [1]}.get(
            member, 7
        )
        wire[f"{member}-req"] = sample
        wire[f"{member}-opt"] = sample
    wire.update(
        {
            "mode": "fast-path",
            "opt-mode": "none",
            "inner": {"n": 1},
            "list": [1, 2],
            "data": "d",
            "value": 3,
            "get": False,
            "decoded": "x",
        }
    )
    return wire


# Values that probe each inline check's edges: range ends and one past, negatives
# (uint64 wraps them), bool vs int, int for number, null, other JSON kinds.
PROBES: list[object] = [
    0,
    -1,
    1,
    127,
    128,
    -128,
    -129,
    255,
    256,
    2**31,
    -(2**31) - 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64 - 1,
    2**64,
    1.0,
    -0.0,
    True,
    False,
    None,
    "7",
    "fast-path",
    "none",
    "newer-value",
    [],
    {},
]
MEMBERS = [f"{member}-{kind}" for member in SCALARS for kind in ("req", "opt")] + [
    "mode",
    "opt-mode",
    "inner",
    "list",
    "data",
    "value",
    "get",
    "decoded",
]


def _same(package: ModuleType, wire: object, path: str, strict: bool) -> None:
    types = importlib.import_module(f"{package.__name__}.types")
    expected = _outcome(lambda: _reference(types)(wire, path, strict))
    actual = _outcome(lambda: _fields(types.Every.from_wire(wire, path, strict)))
    assert actual == expected
    if actual[0] == "value":  # same objects, not only equal ones (floats, enums)
        assert isinstance(actual[1], dict) and isinstance(expected[1], dict)
        for key, value in actual[1].items():
            assert type(value) is type(expected[1][key]), key


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
@pytest.mark.parametrize("member", MEMBERS)
def test_each_member_decodes_like_the_helpers(
    package: ModuleType, member: str, strict: bool
) -> None:
    for probe in PROBES:
        wire = _valid_wire()
        wire[member] = probe
        _same(package, wire, "top.level", strict)
    absent = _valid_wire()
    del absent[member]
    _same(package, absent, "", strict)


def test_unknown_members_and_non_objects(package: ModuleType) -> None:
    wire = _valid_wire()
    wire["newer-member"] = {"x": 1}
    for strict in (False, True):
        _same(package, wire, "", strict)
        _same(package, [], "at", strict)
        _same(package, None, "", strict)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(MEMBERS + ["unknown"]),
        st.sampled_from(PROBES),
        max_size=len(MEMBERS),
    ),
    st.booleans(),
)
def test_any_mix_of_faults_reports_the_first_like_the_helpers(
    package: ModuleType, changes: dict[str, object], strict: bool
) -> None:
    wire = _valid_wire()
    wire.update(changes)
    _same(package, wire, "p", strict)


def test_events_decode_enums_through_the_shared_table(package: ModuleType) -> None:
    events = importlib.import_module(f"{package.__name__}.events")
    types = importlib.import_module(f"{package.__name__}.types")
    event = events.ChangedEvent.from_wire({"mode": "fast-path", "count": 2**64 - 1})
    assert event.mode is types.Mode.FAST_PATH and event.count == 2**64 - 1
    newer = events.ChangedEvent.from_wire({"mode": "newer"})
    assert isinstance(newer.mode, types.Mode) and newer.mode.value == "newer"
    with pytest.raises(c.DecodeError) as raised:
        events.ChangedEvent.from_wire({"mode": "newer"}, "", True)
    assert (
        raised.value.qmp_message() == "Parameter 'mode' does not accept value 'newer'"
    )


def test_structs_of_one_member_kind(package: ModuleType) -> None:
    types = importlib.import_module(f"{package.__name__}.types")
    assert types.OnlyNumber.from_wire({"rate": 0}).rate == 0.0
    assert types.OnlyNested.from_wire({"inner": {"n": 2}}).inner.n == 2
    with pytest.raises(c.DecodeError, match="^x.rate: expected number, got str$"):
        types.OnlyNumber.from_wire({"rate": "0"}, "x")


def test_decoded_instances_are_complete_dataclasses(package: ModuleType) -> None:
    """`from_wire` fills the slots without __init__: the instance must still compare,
    print and round-trip like one built by the constructor."""
    types = importlib.import_module(f"{package.__name__}.types")
    wire = _valid_wire()
    decoded = types.Every.from_wire(wire)
    rebuilt = types.Every(**_fields(decoded))
    assert decoded == rebuilt and repr(decoded) == repr(rebuilt)
    assert decoded.to_wire() == wire
    assert isinstance(decoded.mode, enum.Enum)


@pytest.mark.parametrize("length", [1, 20, 30, 40, 50, 60])
def test_long_conditions_are_laid_out_like_black(length: int) -> None:
    """The inline checks of members with long names wrap as black wraps them, down
    to splitting a test before its comparison operators. (QEMU's longest member
    names have about 40 characters; past about 65, black would also split inside
    ``type(...)``, which the layout does not do.)"""
    import black

    from qapigen.layout import Chain, lay_out

    name = "m" * length
    checks = [f"type({name}) is not int", f"not -(2**63) <= {name} < 2**63"]
    present = [f"{name} is not None", f'"{name}" in data']
    enum = ["strict", f"type({name}) is not str", f"{name} not in _Mode_VALUES"]
    body = "\n".join(
        [
            lay_out(Chain("if ", enum, "or", ":"), "        "),
            "            pass",
            lay_out(Chain("if ", checks, "or", ":"), "        "),
            lay_out(Chain("if ", present, "or", ":"), "            "),
            "                pass",
        ]
    )
    code = f"class C:\n    def f(self):\n{body}\n"
    assert black.format_str(code, mode=black.Mode(line_length=88)) == code

"""The runtime helpers generated codecs call: JSON kinds, integer ranges, paths, and
QEMU's wording for bad arguments."""

from __future__ import annotations

import enum
import warnings

import pytest

from qapigen_runtime import codec as c
from qapigen_runtime.conditions import disabled, holds


class Status(enum.StrEnum):
    """Shaped like a generated enum."""

    NONE = "none"
    ACTIVE = "postcopy-active"

    @classmethod
    def _missing_(cls, value: object) -> Status | None:
        return c.open_enum_missing(cls, value)


def Status_from_wire(value: object, path: str = "", strict: bool = False) -> Status:
    return c.enum_value(Status, value, path, strict)


RANGES = [
    ("int8", -128, 127),
    ("int16", -32768, 32767),
    ("int32", -(2**31), 2**31 - 1),
    ("int64", -(2**63), 2**63 - 1),
    ("int", -(2**63), 2**63 - 1),
    ("uint8", 0, 255),
    ("uint16", 0, 65535),
    ("uint32", 0, 2**32 - 1),
    ("uint64", 0, 2**64 - 1),
    ("size", 0, 2**64 - 1),
]


def _decoder(qapi_type: str) -> c.Decoder[int]:
    decoder: c.Decoder[int] = getattr(c, "int_" if qapi_type == "int" else qapi_type)
    return decoder


@pytest.mark.parametrize(("qapi_type", "low", "high"), RANGES)
def test_integer_ranges(qapi_type: str, low: int, high: int) -> None:
    decode = _decoder(qapi_type)
    assert decode(low, "x", False) == low
    assert decode(high, "x", False) == high
    with pytest.raises(c.DecodeError) as raised:
        decode(high + 1, "ram.x", False)
    assert str(raised.value) == f"ram.x: {high + 1} is out of range for " + (
        "int" if qapi_type == "int64" else qapi_type
    )


# How QEMU 7.2's input visitor words each fault (member 'x' of 'ram'): signed types are
# read through int64 and unsigned ones (and size) through uint64, whose faults name the
# full path; the narrow types then check their range, naming the member alone and the
# C type. The uint64 reader takes a negative int64 as its two's complement.
QEMU_WORDING = [
    ("int8", 128, "Parameter 'x' expects int8_t"),
    ("int8", 2**63, "Invalid parameter type for 'ram.x', expected: integer"),
    ("int32", -(2**31) - 1, "Parameter 'x' expects int32_t"),
    ("uint8", -1, "Parameter 'x' expects uint8_t"),
    ("uint16", 65536, "Parameter 'x' expects uint16_t"),
    ("uint32", 2**64, "Parameter 'ram.x' expects uint64"),
    ("int64", 2**63, "Invalid parameter type for 'ram.x', expected: integer"),
    ("int", "1", "Invalid parameter type for 'ram.x', expected: integer"),
    ("uint8", "1", "Parameter 'ram.x' expects uint64"),
    ("uint64", 2**64, "Parameter 'ram.x' expects uint64"),
    ("uint64", True, "Parameter 'ram.x' expects uint64"),
    ("size", -(2**63) - 1, "Parameter 'ram.x' expects uint64"),
    ("size", 1.5, "Parameter 'ram.x' expects uint64"),
]


@pytest.mark.parametrize(("qapi_type", "value", "message"), QEMU_WORDING)
def test_integer_faults_are_worded_like_qemu(
    qapi_type: str, value: object, message: str
) -> None:
    ram: dict[str, object] = {"x": value}
    with pytest.raises(c.DecodeError) as raised:
        c.required(ram, "x", "ram", True, _decoder(qapi_type))
    assert raised.value.qmp_message() == message


def test_uint64_reads_negative_numbers_as_twos_complement() -> None:
    assert c.uint64(-1, "x") == 2**64 - 1
    assert c.uint64(-(2**63), "x") == 2**63
    assert c.size(-1, "x") == 2**64 - 1
    with pytest.raises(c.DecodeError, match="-1 is out of range for uint32"):
        c.uint32(-1, "x")


def test_array_elements_are_named_null_like_qemu() -> None:
    data: dict[str, object] = {"levels": [1, 300]}
    with pytest.raises(c.DecodeError) as raised:
        c.required(data, "levels", "", True, c.array_of(c.uint8))
    assert str(raised.value) == "levels[1]: 300 is out of range for uint8"
    assert raised.value.qmp_message() == "Parameter 'null' expects uint8_t"


def test_json_kinds_are_exact() -> None:
    assert c.string("a", "p") == "a"
    assert c.boolean(True, "p") is True
    assert c.number(3, "p") == 3.0 and isinstance(c.number(3, "p"), float)
    assert c.null(None, "p") is c.NULL
    # bool is not an int on the wire, and an int is not a bool
    with pytest.raises(c.DecodeError, match="^p: expected int, got bool$"):
        c.int64(True, "p")
    with pytest.raises(c.DecodeError, match="^p: expected bool, got int$"):
        c.boolean(1, "p")
    with pytest.raises(c.DecodeError, match="^p: expected number, got str$"):
        c.number("1", "p")
    with pytest.raises(c.DecodeError, match="^p: expected null, got object$"):
        c.null({}, "p")


def test_error_names_json_path() -> None:
    data: dict[str, object] = {"ram": {"normal-bytes": "12"}}
    ram = c.required(data, "ram", "", False, c.object_)
    with pytest.raises(c.DecodeError) as raised:
        c.required(ram, "normal-bytes", "ram", False, c.int64)
    assert str(raised.value) == "ram.normal-bytes: expected int, got str"
    assert raised.value.qmp_message() == (
        "Invalid parameter type for 'ram.normal-bytes', expected: integer"
    )


def test_array_paths() -> None:
    decode = c.array_of(c.string)
    assert decode(["a", "b"], "caps", False) == ["a", "b"]
    with pytest.raises(c.DecodeError, match=r"^caps\[1\]: expected str, got int$"):
        decode(["a", 2], "caps", False)


def test_required_and_optional_members() -> None:
    data: dict[str, object] = {"uri": "tcp:0:4444"}
    assert c.optional(data, "blk", "", True, c.boolean) is None
    with pytest.raises(c.DecodeError) as raised:
        c.required(data, "blk", "", True, c.boolean)
    assert raised.value.qmp_message() == "Parameter 'blk' is missing"
    with pytest.raises(c.DecodeError) as raised:
        c.required(data, "uri", "", True, c.int64)
    assert raised.value.qmp_message() == (
        "Invalid parameter type for 'uri', expected: integer"
    )
    with pytest.raises(c.DecodeError) as raised:
        c.string(1, "uri")
    assert raised.value.qmp_message() == (
        "Invalid parameter type for 'uri', expected: string"
    )


def test_unknown_members_kept_leniently_rejected_strictly() -> None:
    data: dict[str, object] = {"uri": "x", "bogus": 1}
    known = frozenset({"uri"})
    assert c.extra_members(data, known, "", False) == {"bogus": 1}
    assert c.extra_members({"uri": "x"}, known, "", False) == {}
    with pytest.raises(c.DecodeError) as raised:
        c.extra_members(data, known, "", True)
    assert raised.value.qmp_message() == "Parameter 'bogus' is unexpected"


def test_open_enum_keeps_new_values_on_the_client() -> None:
    new = c.enum_value(Status, "wait-unplug", "status", False)
    assert new.value == "wait-unplug" and new == "wait-unplug"
    assert c.enum_value(Status, "wait-unplug", "status", False) is new
    assert list(Status) == [Status.NONE, Status.ACTIVE]
    assert c.enum_value(Status, "postcopy-active", "s", True) is Status.ACTIVE


def test_open_enum_is_closed_on_the_server() -> None:
    c.enum_value(Status, "device", "status", False)  # seen by a client before
    with pytest.raises(c.DecodeError) as raised:
        c.enum_value(Status, "device", "state", True)
    assert (
        raised.value.qmp_message() == "Parameter 'state' does not accept value 'device'"
    )
    with pytest.raises(c.DecodeError, match="^state: expected str, got int$"):
        c.enum_value(Status, 1, "state", True)


def test_conditions() -> None:
    assert holds(None, set())
    assert holds("CONFIG_X", None)
    assert holds("CONFIG_X", {"CONFIG_X"})
    assert not holds("CONFIG_X", set())
    assert holds({"not": "A"}, set())
    assert holds({"all": ["A", {"any": ["B", "C"]}]}, {"A", "C"})
    assert not holds({"all": ["A", "B"]}, {"A"})
    assert disabled({"a": "A", "b": None, "c": "C"}, {"A"}) == frozenset({"c"})
    with pytest.raises(ValueError, match="not a condition"):
        holds({"xor": []}, set())


def test_disabled_members_and_values_apply_to_strict_decoding_only() -> None:
    limits = c.Disabled(
        members={"Job": frozenset({"zstd-level"})},
        values={"Status": frozenset({"postcopy-active"})},
    )
    data: dict[str, object] = {"id": "j", "zstd-level": 1}
    known = frozenset({"id", "zstd-level"})
    token = c.DISABLED.set(limits)
    try:
        with pytest.raises(c.DecodeError) as raised:
            c.extra_members(data, known, "job", True, "Job")
        assert raised.value.qmp_message() == "Parameter 'job.zstd-level' is unexpected"
        assert c.extra_members(data, known, "job", True, "Other") == {}
        assert c.extra_members(data, known, "job", False, "Job") == {}
        with pytest.raises(c.DecodeError, match="not a value of Status"):
            c.enum_value(Status, "postcopy-active", "s", True)
        assert c.enum_value(Status, "postcopy-active", "s", False) is Status.ACTIVE
    finally:
        c.DISABLED.reset(token)
    assert c.enum_value(Status, "postcopy-active", "s", True) is Status.ACTIVE


def test_pseudo_member_cache_is_bounded() -> None:
    class Wide(enum.StrEnum):
        ONE = "one"

        @classmethod
        def _missing_(cls, value: object) -> Wide | None:
            return c.open_enum_missing(cls, value)

    values = [
        c.enum_value(Wide, f"v{n}", "", False) for n in range(c.MAX_PSEUDO_MEMBERS + 10)
    ]
    assert len(Wide._value2member_map_) == 1 + c.MAX_PSEUDO_MEMBERS
    late, again = (c.enum_value(Wide, "v300", "", False) for _ in range(2))
    # (typed as str: mypy takes a one-member enum's value for that member's literal)
    spelled: list[str] = [late, again, late.value]
    assert spelled == ["v300"] * 3 and late is not again
    assert c.enum_value(Wide, "v0", "", False) is values[0]
    assert list(Wide) == [Wide.ONE]


def test_any_keeps_json_but_marks_a_top_level_null() -> None:
    value: object = {"a": [1, None]}
    assert c.any_value(value, "x") is value
    assert c.any_value(None, "x") is c.NULL
    assert c.any_wire(c.NULL) is None
    assert c.any_wire(value) is value


def test_deprecated_values_warn_at_the_caller_by_identity() -> None:
    deprecated = frozenset({Status.ACTIVE})

    def hand_over(value: object) -> None:
        """Stands for generated code: the warning names its caller's line."""
        c.warn_deprecated_values(value, deprecated, "member 'x' of Foo", 2)

    for value in (Status.NONE, None, "postcopy-active", [Status.NONE], 3):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            hand_over(value)  # a str spelled like the value is not the value
    with pytest.warns(DeprecationWarning) as caught:
        hand_over([Status.NONE, Status.ACTIVE])
        hand_over(Status.ACTIVE)
    assert [str(w.message) for w in caught] == [
        "value 'postcopy-active' of member 'x' of Foo is deprecated"
    ] * 2
    assert {w.filename for w in caught} == {__file__}

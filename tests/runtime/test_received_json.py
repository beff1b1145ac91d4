"""The clients' parser of server messages: orjson when installed, the same values
either way, and the standard library's reading where orjson refuses text."""

from __future__ import annotations

import json

import pytest

from qapigen_runtime.qmp import received_json
from qapigen_runtime.qmp.received_json import decode_line

LINES = [
    b'{"return": {}}',
    b'{"return": {"status": "completed", "ram": {"mbps": 635.69, "total": 1}}}\r',
    b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}}}',
    b'{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}',
    # the largest uint64 and the smallest int64 QEMU prints stay integers
    b'{"return": {"a": 18446744073709551615, "b": -9223372036854775808}}',
    b'{"return": "caf\xc3\xa9 \\u00e9 \\ud83d\\ude00"}',
    b'{"return": {"a": 1, "a": 2}}',
    b'[1, 2.5, true, false, null, "x"]',
]


@pytest.fixture(params=["orjson", "stdlib"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with orjson and with the standard library alone."""
    if request.param == "orjson":
        assert received_json.using_fast_parser()  # orjson is a dependency
    else:
        monkeypatch.setattr(received_json, "_fast_loads", None)
        assert not received_json.using_fast_parser()
    return str(request.param)


@pytest.mark.parametrize("line", LINES)
def test_values_equal_the_standard_library(parser: str, line: bytes) -> None:
    expected = json.loads(line)
    decoded = decode_line(line)
    assert decoded == expected
    assert type(decoded) is type(expected)


def test_reads_a_memoryview_slice_of_the_receive_buffer(parser: str) -> None:
    buffer = bytearray(b'xx{"return": {"ok": true}}\r\nyy')
    view = memoryview(buffer)
    assert decode_line(view[2:27]) == {"return": {"ok": True}}


@pytest.mark.parametrize("line", [b"", b"\r", b"  \t "])
def test_blank_line_is_none(parser: str, line: bytes) -> None:
    assert decode_line(line) is None


@pytest.mark.parametrize(
    "line",
    [
        b'{"return": "\\ud800"}',  # a lone surrogate escape
        b'{"return": NaN}',
        b'{"return": 1e400}',
    ],
)
def test_text_only_the_standard_library_reads_is_still_read(
    parser: str, line: bytes
) -> None:
    decoded = decode_line(line)
    assert isinstance(decoded, dict)
    assert repr(decoded) == repr(json.loads(line))


@pytest.mark.parametrize(
    "line", [b'{"return": ', b'{"return": [1,]}', b"{'return': 1}", b"\xff\xfe{}"]
)
def test_invalid_text_raises_value_error(parser: str, line: bytes) -> None:
    with pytest.raises(ValueError):
        decode_line(line)


def test_integers_beyond_64_bits_become_doubles_as_in_qemu() -> None:
    """QEMU's own parser reads an integer that fits neither int64 nor uint64 as a
    double; orjson does the same (the standard library would keep the integer)."""
    assert received_json.using_fast_parser()  # orjson is a dependency
    decoded = decode_line(b'{"return": 18446744073709551616}')
    assert decoded == {"return": 18446744073709551616.0}
    assert isinstance(decoded, dict) and type(decoded["return"]) is float

"""Parsing what a QMP server sends: one JSON message per line, as fast as possible.

Decoding a reply is most of a typed client's work on it, and the C parser of the
standard library is the slow part (a 625-byte query-migrate reply: ~5.6 us, against
~1.5 us for orjson on this machine; `python bench/bench_decode.py` measures it). So
orjson is used when it is installed (it is a dependency of qapigen; the fallback keeps
the runtime working where no wheel exists).

orjson reads numbers the way QEMU's own JSON parser does: an integer that fits int64
or uint64 stays an integer, a larger one becomes a double. Where orjson refuses text
the standard library accepts (a lone UTF-16 surrogate escape, ``NaN``, ``1e400``), the
standard library's reading is used, so no message a client accepted before is refused.

The server side does not use this module: a QMP server must parse its input with
QEMU's dialect and limits (see `json_stream`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

_std_decode: Callable[[str], object] = json.JSONDecoder().decode
"""The standard library's parser; on str it skips json.loads' encoding sniffing."""

FastLoads = Callable[[bytes | bytearray | memoryview | str], object]


def _find_fast_loads() -> FastLoads | None:
    try:
        import orjson
    except ImportError:
        return None
    return orjson.loads


_fast_loads: FastLoads | None = _find_fast_loads()


def using_fast_parser() -> bool:
    """Whether orjson does the parsing (for diagnostics and the bench)."""
    return _fast_loads is not None


def decode_line(line: bytes | bytearray | memoryview) -> object | None:
    """The JSON value of one message a server sent (without its final newline), or
    None for a blank line. Raises ValueError for text that is not UTF-8 JSON, or
    nested deeper than Python's parser goes (QEMU never nests beyond 1024)."""
    fast = _fast_loads
    if fast is not None:
        try:
            return fast(line)
        except ValueError:
            pass  # blank, or text only the standard library reads: decided below
    text = str(line, "utf-8")
    if not text or text.isspace():
        return None
    try:
        return _std_decode(text)
    except RecursionError:
        raise ValueError("the message is nested too deeply") from None


_BRACKET_OR_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_OPENING = frozenset(b"[{")


class MultiLineMessage:
    """Finds where a message that spans lines ends: QEMU started with ``-qmp-pretty``
    writes each one indented over many lines.

    Fed the complete lines of the message one by one, it counts the brackets that
    are not inside strings (JSON strings never span lines) and tells where the
    brackets opened by the first line close.
    """

    __slots__ = ("depth",)

    def __init__(self) -> None:
        self.depth = 0

    def feed_line(self, line: bytes | bytearray | memoryview) -> int | None:
        """The offset in `line` just past the bracket that closes the message, or
        None when it goes on."""
        for match in _BRACKET_OR_STRING.finditer(line):
            byte = line[match.start()]
            if byte == 0x22:
                continue
            self.depth += 1 if byte in _OPENING else -1
            if self.depth <= 0:
                return match.end()
        return None

    @classmethod
    def starting(cls, line: bytes | bytearray | memoryview) -> MultiLineMessage | None:
        """A tracker when `line` opens a value it does not close, else None."""
        tracker = cls()
        if tracker.feed_line(line) is None and tracker.depth > 0:
            return tracker
        return None

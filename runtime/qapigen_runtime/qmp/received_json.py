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
    """The JSON value of one line a server sent (without its newline), or None for a
    blank line. Raises ValueError (UnicodeDecodeError or JSONDecodeError) for a line
    that is not UTF-8 JSON."""
    fast = _fast_loads
    if fast is not None:
        try:
            return fast(line)
        except ValueError:
            pass  # blank, or text only the standard library reads: decided below
    text = str(line, "utf-8")
    if not text or text.isspace():
        return None
    return _std_decode(text)

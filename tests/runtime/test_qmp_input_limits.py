"""What an unfinished input value costs the server: its bytes on the wire, bounded by
a budget, and a value over the budget gets QEMU's answer to a too-large value."""

from __future__ import annotations

import gc
import os
import tracemalloc
from pathlib import Path

import pytest

from qapigen_runtime.qmp.json_stream import TOO_LARGE, JsonInputError, JsonStreamParser

CHUNK = 64 * 1024


def _chunks(data: bytes) -> list[bytes]:
    return [data[start : start + CHUNK] for start in range(0, len(data), CHUNK)]


def _resident_bytes() -> int:
    """This process's resident memory (Linux)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        pytest.skip("/proc/self/statm is not available on this system")
    return pages * os.sysconf("SC_PAGE_SIZE")


def test_unfinished_value_costs_its_bytes_on_the_wire() -> None:
    # ~1.9M tokens, 1.9 MB on the wire, never finished (it once cost ~205 MB)
    data = b"[" + b"1," * 950_000
    parser = JsonStreamParser()
    gc.collect()
    before = _resident_bytes()
    for chunk in _chunks(data):
        assert parser.feed(chunk) == []
    gc.collect()
    grown = _resident_bytes() - before
    assert parser.held_bytes <= len(data)
    assert grown <= 8 * len(data), f"{grown} bytes grown for {len(data)} on the wire"


def test_what_an_unfinished_value_allocates_is_what_it_holds() -> None:
    data = b'{"execute":"x","arguments":{"a":[' + b'"s",1,true,' * 20_000
    parser = JsonStreamParser()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for chunk in _chunks(data):
            assert parser.feed(chunk) == []
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert parser.held_bytes <= len(data)
    assert held <= 2 * len(data), f"{held} bytes held for {len(data)} on the wire"


def test_value_over_the_budget_gets_qemus_answer_and_memory_stays_bounded() -> None:
    budget = 64 * 1024
    parser = JsonStreamParser(max_value_size=budget)
    items: list[object] = []
    data = b'{"execute":"echo","arguments":{"a":[' + b"1," * 40_000
    for chunk in _chunks(data):
        parser.push(chunk)
        while (item := parser.take()) is not None:
            items.append(item.value)
        assert parser.held_bytes <= budget
    assert items[0] == JsonInputError(TOO_LARGE)
    # the value was dropped: what follows is read afresh
    assert parser.feed(b' {"execute":"after"}\n')[-1] == {"execute": "after"}


def test_a_token_over_the_budget_is_not_kept() -> None:
    budget = 4096
    parser = JsonStreamParser(max_value_size=budget)
    parser.push(b'{"execute":"echo","arguments":{"s":"')
    assert parser.take() is None
    refused = []
    for _ in range(64):  # 256 KiB of one string
        parser.push(b"y" * 4096)
        while (item := parser.take()) is not None:
            refused.append(item.value)
        assert parser.held_bytes <= budget + 4096
    assert refused[0] == JsonInputError(TOO_LARGE)


def test_items_know_where_they_lay_in_the_stream() -> None:
    parser = JsonStreamParser()
    parser.push(b'  {"a":1}\n@ [1,\n2]')
    first, second, third = parser.take(), parser.take(), parser.take()
    assert first is not None and (first.start, first.end) == (2, 9)
    assert second is not None and second.value == JsonInputError(
        "JSON parse error, stray '@'"
    )
    assert (second.start, second.end) == (10, 11)
    assert third is not None and third.value == [1, 2]
    assert (third.start, third.end) == (12, 18)
    assert parser.take() is None and parser.held_bytes == 0

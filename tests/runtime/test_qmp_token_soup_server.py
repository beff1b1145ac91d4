"""QMPServer answers the token soups recorded from QEMU 7.2 with QEMU's replies, and
the soup that makes QEMU 7.2 abort with oob enabled is just answered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qapigen_runtime.qmp.json_stream import JsonStreamParser
from qapigen_testing.qmp_fixtures import RawQMP, ServerThread
from qapigen_testing.qmp_soup import (
    OBSERVED_SOUP,
    RESET,
    ObservedSoup,
    SoupConnection,
    canonical,
    soups,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    path = str(tmp_path_factory.mktemp("soup") / "soup.sock")
    with ServerThread(path) as running:
        yield running


@pytest.mark.parametrize("case", OBSERVED_SOUP, ids=lambda case: case.label)
def test_recorded_soup_gets_qemus_replies(
    server: ServerThread, case: ObservedSoup
) -> None:
    connection = SoupConnection(server.address)
    try:
        replies = connection.run(case.data)
    finally:
        connection.close()
    assert [canonical(line) for line in replies] == [
        canonical(line) for line in case.replies
    ]


def test_soup_that_aborts_qemu_with_oob_is_answered(server: ServerThread) -> None:
    (case,) = [c for c in OBSERVED_SOUP if c.data.startswith(b"0.1-{")]
    raw = RawQMP(server.address)
    try:
        raw.negotiate(oob=True)
        replies = raw.exchange(case.data + b"\n")
        assert len(replies) == len(case.replies) - 1  # no RESET sent here
        assert raw.exchange(b'{"exec-oob":"ping","id":3}') == [
            {"return": {"pong": True}, "id": 3}
        ]
    finally:
        raw.close()


def test_replies_write_doubles_as_qemu(tmp_path: Path) -> None:
    with ServerThread(str(tmp_path / "q.sock")) as server:
        connection = SoupConnection(server.address)
        try:
            connection.sock.sendall(
                b'{"execute":"echo","arguments":{"a":[1.0,-0.0,0.1,2.5e-310,5]}}\n'
            )
            assert connection.read_line() == (
                b'{"return": {"a": [1, -0, 0.10000000000000001, '
                b"2.5000000000000171e-310, 5]}}"
            )
        finally:
            connection.close()


def _in_pieces(data: bytes, cuts: list[int]) -> list[object]:
    parser = JsonStreamParser()
    out: list[object] = []
    start = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        out += parser.feed(data[start:cut])
        start = cut
    return out


@settings(max_examples=300, deadline=None)
@given(soups, st.lists(st.integers(min_value=0), max_size=8))
def test_soup_reads_the_same_in_any_pieces(data: bytes, cuts: list[int]) -> None:
    data += RESET
    assert _in_pieces(data, cuts) == JsonStreamParser().feed(data)
    assert _in_pieces(data, list(range(len(data)))) == JsonStreamParser().feed(data)

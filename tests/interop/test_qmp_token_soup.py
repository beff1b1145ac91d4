"""Differential fuzz against a live QEMU 7.2: garbage made of JSON pieces gets the same
replies, in number and in text, from QMPServer as from QEMU.

A fixed-seed run covers the same 300 soups every time; a hypothesis run draws new
ones (and shrinks a failing one to its core). The recorded cases of
qapigen_testing.qmp_soup are re-observed here, so the record stays QEMU's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings

from qapigen_testing.qemu_fixtures import QemuLauncher
from qapigen_testing.qmp_fixtures import FixtureDispatcher, ServerThread
from qapigen_testing.qmp_soup import (
    OBSERVED_SOUP,
    SoupConnection,
    canonical,
    soup,
    soups,
)

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(600)]

FIXED_SEED = 20240715
FIXED_SOUPS = 300


class QemuStatus(FixtureDispatcher):
    """The fixture dispatcher, answering query-status with what QEMU answered."""

    def __init__(self, status: object) -> None:
        super().__init__()
        self.status = status

    async def dispatch(self, name: str, arguments: dict[str, object]) -> object:
        if name == "query-status" and not arguments:
            return self.status
        return await super().dispatch(name, arguments)


@dataclass
class Peers:
    qemu: SoupConnection
    ours: SoupConnection

    def differences(self, data: bytes) -> tuple[list[bytes], list[bytes]] | None:
        """Both servers' replies to `data`, or None when they agree."""
        theirs, ours = self.qemu.run(data), self.ours.run(data)
        if [canonical(line) for line in theirs] == [canonical(line) for line in ours]:
            return None
        return theirs, ours


@pytest.fixture(scope="module")
def peers() -> Iterator[Peers]:
    with QemuLauncher() as launcher:
        qemu = launcher.start("soup", extra_args=["-S"])
        qemu_connection = SoupConnection(qemu.qmp_address)
        status = canonical(qemu_connection.run(b'{"execute":"query-status"}')[0])
        assert isinstance(status, dict) and "return" in status
        server = ServerThread(("127.0.0.1", 0))
        server.dispatcher = QemuStatus(_plain(status["return"]))
        with server:
            ours = SoupConnection(server.address)
            try:
                yield Peers(qemu_connection, ours)
            finally:
                ours.close()
                qemu_connection.close()


def _plain(value: object) -> object:
    """A canonical value back as JSON values (numbers were kept as text)."""
    if isinstance(value, tuple):
        text = value[1]
        assert isinstance(text, str)
        return float(text) if any(c in text for c in ".eE") else int(text)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def test_qemu_answers_soup_as_recorded(peers: Peers) -> None:
    for case in OBSERVED_SOUP:
        assert peers.qemu.run(case.data) == list(case.replies), case.label


def test_fixed_seed_soups_get_qemus_replies(peers: Peers) -> None:
    rng = random.Random(FIXED_SEED)
    differing = []
    for _ in range(FIXED_SOUPS):
        data = soup(rng)
        difference = peers.differences(data)
        if difference is not None:
            differing.append((data, *difference))
    assert differing == [], f"{len(differing)} of {FIXED_SOUPS} soups differ"


def test_drawn_soups_get_qemus_replies(peers: Peers) -> None:
    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(soups)
    def same_replies(data: bytes) -> None:
        assert peers.differences(data) is None

    same_replies()

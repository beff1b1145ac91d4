"""QMP clients side by side against one real QEMU 7.2: query-migrate-parameters per second.

Four ways to run the same command in a loop, one command at a time, on one QEMU:

- typed async: the generated `AsyncClient` over this runtime's asyncio `QMPClient`
- typed sync: the generated `SyncClient` over this runtime's `SyncQMPClient`
- qemu.qmp: `qemu.qmp.QMPClient.execute`, raw dicts (what people use today)
- raw socket: a bare loop (sendall, readline, json.loads): the floor
- raw {} args (diagnostic): the same loop sending ``"arguments": {}`` as the generated
  clients do for commands without arguments; QEMU 7.2 pays for every request byte
- raw no id / raw id, and raw 16 no id / raw 16 id (diagnostics): compact requests
  without and with a small id (``,"id":1``), one at a time and 16 at a time: what
  an id costs against QEMU 7.2 (the clients send in-band requests without one
  when alone, with one when others are in flight)

Targets: typed async >= 2x qemu.qmp, typed sync >= 0.9x raw socket.

Besides commands/s (wall clock) it prints, per command, the CPU time the client
process spent and the CPU time QEMU spent (from /proc; it includes the adaptive polling
of QEMU's event loop, so it is an upper bound of QEMU's work). The client's share is
what the clients themselves cost. On a shared machine
the CPU figures are steadier than the wall clock.

QEMU is started with -S (vCPU paused) so the guest's firmware does not compete for the
cores; every contender talks to the same process. The contenders run in interleaved
rounds and the best round of each counts (the least disturbed by other load).

    python bench/bench_clients.py [--count 300] [--rounds 15] [--profile]

--profile runs the typed clients under cProfile and prints where their time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qapigen_migration.commands import AsyncClient, SyncClient
from qapigen_runtime.qmp import QMPClient, SyncQMPClient

# The QEMU launcher is shared with the interop tests.
from qapigen_testing.qemu_fixtures import QemuLauncher

COMMAND = "query-migrate-parameters"
TARGET_ASYNC_VS_QEMU_QMP = 2.0
TARGET_SYNC_VS_RAW = 0.9


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    """One contender's figures, per command."""

    wall_us: float
    client_cpu_us: float
    qemu_cpu_us: float

    @property
    def rate(self) -> float:
        return 1e6 / self.wall_us


class Stopwatch:
    """Times the command loop only (not connecting or negotiating): wall clock, this
    process's CPU and QEMU's CPU. QEMU's comes in clock ticks (10 ms), so it is
    summed over all rounds rather than read per round."""

    def __init__(self, qemu_pid: int) -> None:
        self.qemu_pid = qemu_pid
        self.wall = self.client_cpu = self.qemu_cpu = 0.0

    def __enter__(self) -> Stopwatch:
        self.wall = -time.perf_counter()
        self.client_cpu = -time.process_time()
        self.qemu_cpu = -process_cpu_seconds(self.qemu_pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter()
        self.client_cpu += time.process_time()
        self.qemu_cpu += process_cpu_seconds(self.qemu_pid)


Loop = Callable[[str, int, Stopwatch], None]
"""Connects to a QMP socket and runs the command `count` times inside the stopwatch."""


RAW_REQUEST = json.dumps({"execute": COMMAND, "id": 1}).encode() + b"\n"
RAW_REQUEST_EMPTY_ARGUMENTS = (
    json.dumps({"execute": COMMAND, "arguments": {}, "id": 1}).encode() + b"\n"
)
COMPACT_REQUEST = b'{"execute":"%s"}\n' % COMMAND.encode()
COMPACT_REQUEST_ID = b'{"execute":"%s","id":1}\n' % COMMAND.encode()
WINDOW = 16


def raw_socket(address: str, count: int, watch: Stopwatch) -> None:
    _raw_loop(address, count, watch, RAW_REQUEST)


def raw_socket_empty_arguments(address: str, count: int, watch: Stopwatch) -> None:
    """The raw loop sending what the generated clients send: ``"arguments": {}``."""
    _raw_loop(address, count, watch, RAW_REQUEST_EMPTY_ARGUMENTS)


def raw_no_id(address: str, count: int, watch: Stopwatch) -> None:
    _raw_loop(address, count, watch, COMPACT_REQUEST)


def raw_id(address: str, count: int, watch: Stopwatch) -> None:
    _raw_loop(address, count, watch, COMPACT_REQUEST_ID)


def raw_window_no_id(address: str, count: int, watch: Stopwatch) -> None:
    _raw_loop(address, count, watch, COMPACT_REQUEST, WINDOW)


def raw_window_id(address: str, count: int, watch: Stopwatch) -> None:
    _raw_loop(address, count, watch, COMPACT_REQUEST_ID, WINDOW)


def _raw_loop(
    address: str, count: int, watch: Stopwatch, request: bytes, window: int = 1
) -> None:
    """`count` commands, `window` of them sent at once, then their replies read."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(address)
        reader = sock.makefile("rb")
        reader.readline()  # greeting
        sock.sendall(b'{"execute": "qmp_capabilities"}\n')
        reader.readline()
        with watch:
            for first in range(0, count, window):
                batch = min(window, count - first)
                sock.sendall(request * batch)
                for _ in range(batch):
                    reply = json.loads(reader.readline())
                    assert "return" in reply


def typed_sync(address: str, count: int, watch: Stopwatch) -> None:
    with SyncQMPClient() as transport:
        transport.connect(address)
        client = SyncClient(transport)
        with watch:
            for _ in range(count):
                client.query_migrate_parameters()


async def _typed_async(address: str, count: int, watch: Stopwatch) -> None:
    async with QMPClient() as transport:
        await transport.connect(address)
        client = AsyncClient(transport)
        with watch:
            for _ in range(count):
                await client.query_migrate_parameters()


def typed_async(address: str, count: int, watch: Stopwatch) -> None:
    asyncio.run(_typed_async(address, count, watch))


async def _qemu_qmp(address: str, count: int, watch: Stopwatch) -> None:
    from qemu.qmp import QMPClient as LegacyClient

    client = LegacyClient("bench")
    await client.connect(address)
    try:
        with watch:
            for _ in range(count):
                await client.execute(COMMAND)
    finally:
        await client.disconnect()


def qemu_qmp(address: str, count: int, watch: Stopwatch) -> None:
    asyncio.run(_qemu_qmp(address, count, watch))


LOOPS: dict[str, Loop] = {
    "typed async": typed_async,
    "typed sync": typed_sync,
    "qemu.qmp": qemu_qmp,
    "raw socket": raw_socket,
    "raw {} args": raw_socket_empty_arguments,
    "raw no id": raw_no_id,
    "raw id": raw_id,
    "raw 16 no id": raw_window_no_id,
    "raw 16 id": raw_window_id,
}
"""The contenders; the last five are diagnostics, not targets."""


def measure(address: str, qemu_pid: int, count: int, rounds: int) -> dict[str, Round]:
    """Best wall and client CPU over the rounds; QEMU's CPU averaged over all."""
    for loop in LOOPS.values():  # warm-up: imports, QEMU's caches
        loop(address, max(count // 10, 10), Stopwatch(qemu_pid))
    walls: dict[str, list[float]] = {name: [] for name in LOOPS}
    cpus: dict[str, list[float]] = {name: [] for name in LOOPS}
    qemu_cpu = dict.fromkeys(LOOPS, 0.0)
    for _ in range(rounds):
        for name, loop in LOOPS.items():
            watch = Stopwatch(qemu_pid)
            loop(address, count, watch)
            walls[name].append(watch.wall)
            cpus[name].append(watch.client_cpu)
            qemu_cpu[name] += watch.qemu_cpu
    per = 1e6 / count
    return {
        name: Round(
            min(walls[name]) * per,
            min(cpus[name]) * per,
            qemu_cpu[name] * per / rounds,
        )
        for name in LOOPS
    }


def ratio_line(label: str, ratio: float, target: float) -> str:
    verdict = "met" if ratio >= target else "MISSED"
    return f"{label:<32} {ratio:5.2f}x  (target >= {target}x: {verdict})"


def report(best: dict[str, Round]) -> None:
    header = ("commands/s", "wall us", "client CPU us", "QEMU CPU us")
    print(
        f"{'':>12}  {header[0]:>10}  {header[1]:>8}  {header[2]:>13}  {header[3]:>11}"
    )
    for name, figures in best.items():
        print(
            f"{name:>12}  {figures.rate:10.0f}  {figures.wall_us:8.1f}  "
            f"{figures.client_cpu_us:13.1f}  {figures.qemu_cpu_us:11.1f}"
        )
    typed_async, typed_sync = best["typed async"], best["typed sync"]
    legacy, raw = best["qemu.qmp"], best["raw socket"]
    print(
        ratio_line(
            "typed async / qemu.qmp",
            typed_async.rate / legacy.rate,
            TARGET_ASYNC_VS_QEMU_QMP,
        )
    )
    print(
        ratio_line(
            "typed sync / raw socket", typed_sync.rate / raw.rate, TARGET_SYNC_VS_RAW
        )
    )
    print("diagnostics (per command):")
    print(
        f"  client CPU, qemu.qmp / typed async: "
        f"{legacy.client_cpu_us / typed_async.client_cpu_us:.2f}x"
    )
    print(
        f"  client CPU, typed sync - raw socket: "
        f"{typed_sync.client_cpu_us - raw.client_cpu_us:+.1f} us"
    )
    # QEMU 7.2 reads QMP input one byte per event-loop turn (one recvmsg per byte
    # under strace), so every request byte costs wall time: the two raw loops differ
    # only by `"arguments": {}`.
    extra_bytes = len(RAW_REQUEST_EMPTY_ARGUMENTS) - len(RAW_REQUEST)
    extra_wall = best["raw {} args"].wall_us - raw.wall_us
    print(
        f'  raw loop with "arguments": {{}} ({extra_bytes} more bytes): '
        f"{extra_wall:+.1f} us wall, {extra_wall / extra_bytes:.1f} us per request byte"
    )
    # What an id costs: one command at a time, and 16 in flight (per command).
    extra_bytes = len(COMPACT_REQUEST_ID) - len(COMPACT_REQUEST)
    for label, without, with_id in (
        ("one at a time", "raw no id", "raw id"),
        (f"{WINDOW} in flight", "raw 16 no id", "raw 16 id"),
    ):
        base, cost = (
            best[without].wall_us,
            best[with_id].wall_us - best[without].wall_us,
        )
        print(
            f'  an id ({extra_bytes} bytes, ","id":1"), {label}: {cost:+.1f} us '
            f"per command ({cost / base * 100:+.1f} %; {base:.1f} us without)"
        )
    # A sequential client waits for QEMU every time: the raw loop's wall time minus
    # its own CPU is QEMU's turnaround, which no client can go below. Hence the best
    # any client could do against qemu.qmp on this QEMU:
    turnaround = raw.wall_us - raw.client_cpu_us
    print(f"  QEMU turnaround (raw wall - raw client CPU): {turnaround:.1f} us")
    print(
        f"  ceiling of any sequential client / qemu.qmp: "
        f"{legacy.wall_us / turnaround:.2f}x"
    )


def profile(address: str, qemu_pid: int, count: int) -> None:
    for name in ("typed sync", "typed async"):
        profiler = cProfile.Profile()
        profiler.runcall(LOOPS[name], address, count, Stopwatch(qemu_pid))
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(15)
        print(f"--- {name}: {count} calls, functions by own time")
        print(out.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="commands per round")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per contender")
    parser.add_argument("--profile", action="store_true", help="profile typed clients")
    args = parser.parse_args()
    with QemuLauncher() as launcher:
        qemu = launcher.start("bench", extra_args=["-S"])
        print(
            f"QEMU 7.2 pid {qemu.pid}; {args.count} x {COMMAND} per round, "
            f"best of {args.rounds} rounds"
        )
        if args.profile:
            profile(qemu.qmp_address, qemu.pid, args.count)
        else:
            report(measure(qemu.qmp_address, qemu.pid, args.count, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())

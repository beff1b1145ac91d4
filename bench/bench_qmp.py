"""QMP transport throughput, side by side, against one real QEMU 7.2 and our server.

    python bench/bench_qmp.py [--commands N]

Prints commands/s of ``query-migrate-parameters`` for: a bare socket loop (pre-encoded
request, read one line), SyncQMPClient, QMPClient, and qemu.qmp's QMPClient (raw
dicts); each asyncio client both one command at a time and with 16 in flight. Then 64
QMPClients x 500 commands against QMPServer (in a separate process), checking that
every reply arrives and matches, with latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path

from qapigen_runtime.qmp import QMPClient, QMPServer, SyncQMPClient

COMMAND = "query-migrate-parameters"
WINDOW = 16


def start_qemu(workdir: Path, count: int) -> tuple[subprocess.Popen[bytes], list[str]]:
    """QEMU with `count` QMP monitors (one per client under test)."""
    binary = shutil.which("qemu-system-x86_64")
    if binary is None:
        sys.exit(
            "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
        )
    paths = [str(workdir / f"qmp{i}.sock") for i in range(count)]
    args = [binary, "-M", "none", "-nodefaults", "-display", "none"]
    for path in paths:
        args += ["-qmp", f"unix:{path},server=on,wait=off"]
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while not all(os.path.exists(p) for p in paths):
        if time.monotonic() > deadline:
            process.kill()
            sys.exit("QEMU did not create its QMP sockets")
        time.sleep(0.02)
    return process, paths


class RawLoop:
    """The floor: a pre-encoded request, one sendall and recv-until-newline each."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.buffer = b""
        self.read_line()
        # negotiated like the clients under test (they enable oob when offered)
        self.sock.sendall(
            b'{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}\n'
        )
        self.read_line()
        self.request = b'{"execute":"%s"}\n' % COMMAND.encode()

    def read_line(self) -> bytes:
        while b"\n" not in self.buffer:
            self.buffer += self.sock.recv(262144)
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def run(self, n: int) -> None:
        sock, request, read_line = self.sock, self.request, self.read_line
        for _ in range(n):
            sock.sendall(request)
            read_line()


async def in_flight(n: int, window: int, call: Callable[[], Awaitable[object]]) -> None:
    """Run `call` n times (a multiple of `window`) with `window` calls in flight."""

    async def lane(count: int) -> None:
        for _ in range(count):
            await call()

    await asyncio.gather(*(lane(n // window) for _ in range(window)))


class Tally:
    """Wall and CPU time per contender, summed over interleaved rounds (the machine
    is shared, so contenders take turns instead of running one after another)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def add(self, name: str, n: int, wall: float, cpu: float) -> None:
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu
        self.count[name] = self.count.get(name, 0) + n

    def rate(self, name: str) -> float:
        return self.count[name] / self.wall[name]

    def cpu_us(self, name: str) -> float:
        return self.cpu[name] / self.count[name] * 1e6


async def bench_against_qemu(paths: list[str], n: int, rounds: int) -> Tally:
    tally = Tally()
    raw = RawLoop(paths[0])
    sync = SyncQMPClient()
    sync.connect(paths[1])
    own = QMPClient()
    await own.connect(paths[2])
    contenders: dict[str, Callable[[int], Awaitable[None] | None]] = {
        "raw socket loop": raw.run,
        "SyncQMPClient": lambda k: _sync_run(sync, k),
        "QMPClient, 1 in flight": lambda k: in_flight(
            k, 1, lambda: own.execute(COMMAND)
        ),
        f"QMPClient, {WINDOW} in flight": lambda k: in_flight(
            k, WINDOW, lambda: own.execute(COMMAND)
        ),
    }
    theirs = None
    try:
        from qemu.qmp import QMPClient as QemuQmpClient

        theirs = QemuQmpClient("bench")
        await theirs.connect(paths[3])
        client = theirs
        contenders["qemu.qmp, 1 in flight"] = lambda k: in_flight(
            k, 1, lambda: client.execute(COMMAND)
        )
        contenders[f"qemu.qmp, {WINDOW} in flight"] = lambda k: in_flight(
            k, WINDOW, lambda: client.execute(COMMAND)
        )
    except ImportError:
        print("qemu.qmp is not installed (pip install qemu.qmp): skipping it")
    chunk = max(WINDOW, n // rounds // WINDOW * WINDOW)
    try:
        order = list(contenders.items())
        for round_index in range(rounds):
            # alternate the order so no contender always runs right after another
            for name, run in order if round_index % 2 == 0 else reversed(order):
                wall, cpu = time.perf_counter(), time.process_time()
                pending = run(chunk)
                if pending is not None:
                    await pending
                tally.add(
                    name, chunk, time.perf_counter() - wall, time.process_time() - cpu
                )
    finally:
        raw.sock.close()
        sync.close()
        await own.close()
        if theirs is not None:
            await theirs.disconnect()
    return tally


def _sync_run(client: SyncQMPClient, n: int) -> None:
    execute = client.execute
    for _ in range(n):
        execute(COMMAND)


def report_qemu(tally: Tally) -> None:
    print(f"QEMU 7.2, {COMMAND} (commands/s, client CPU per command):")
    for name in tally.count:
        print(
            f"  {name:28} {tally.rate(name):8.0f}/s  {tally.cpu_us(name):7.1f} us CPU"
        )
    raw, sync = tally.rate("raw socket loop"), tally.rate("SyncQMPClient")
    print(f"  SyncQMPClient / raw socket loop: {sync / raw:.2f}x (target >= 0.9)")
    if "qemu.qmp, 1 in flight" not in tally.count:
        return
    for label in ("1 in flight", f"{WINDOW} in flight"):
        ours, theirs = f"QMPClient, {label}", f"qemu.qmp, {label}"
        print(
            f"  QMPClient / qemu.qmp, {label}: {tally.rate(ours) / tally.rate(theirs):.2f}x"
            f" commands/s, {tally.cpu_us(theirs) / tally.cpu_us(ours):.2f}x less CPU"
            " (target >= 2)"
        )


class EchoDispatcher:
    """The stress server's dispatcher: echoes its arguments."""

    def command_names(self) -> Sequence[str]:
        return ["echo"]

    def oob_command_names(self) -> Collection[str]:
        return ()

    async def dispatch(self, name: str, arguments: dict[str, object]) -> object:
        return arguments


async def serve(path: str) -> None:
    server = QMPServer(EchoDispatcher())
    await server.listen(path)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.close()


async def stress_clients(path: str, clients: int, commands: int) -> None:
    latencies: list[float] = []
    errors: list[BaseException] = []
    mismatched = 0

    async def one(index: int) -> None:
        nonlocal mismatched
        async with QMPClient() as client:
            await client.connect(path)
            for n in range(commands):
                start = time.perf_counter()
                try:
                    reply = await client.execute("echo", {"c": index, "n": n})
                except Exception as error:
                    errors.append(error)
                    continue
                latencies.append(time.perf_counter() - start)
                if reply != {"c": index, "n": n}:
                    mismatched += 1

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(clients)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    total = clients * commands

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1e3

    print(f"QMPServer, {clients} clients x {commands} commands ({total}):")
    print(
        f"  {len(latencies) / elapsed:.0f} commands/s; replies {len(latencies)}/{total}, "
        f"errors {len(errors)}, mismatched {mismatched}, lost {total - len(latencies)}"
    )
    print(
        f"  latency ms: p50 {pct(50):.2f}  p90 {pct(90):.2f}  p99 {pct(99):.2f}  "
        f"max {latencies[-1] * 1e3:.2f}"
    )


def bench_own_server(clients: int, commands: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "server.sock")
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert server.stdout is not None
            assert server.stdout.readline().strip() == b"ready"
            asyncio.run(stress_clients(path, clients, commands))
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=4000, help="per contender")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--per-client", type=int, default=500)
    parser.add_argument("--serve", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    with tempfile.TemporaryDirectory() as tmp:
        process, paths = start_qemu(Path(tmp), 4)
        try:
            tally = asyncio.run(bench_against_qemu(paths, args.commands, args.rounds))
        finally:
            process.terminate()
            process.wait()
    report_qemu(tally)
    bench_own_server(args.clients, args.per_client)


if __name__ == "__main__":
    main()

"""What hostile QMP clients cost a QMPServer in memory, and whether others are served.

    python bench/bench_qmp_memory.py [--clients 3] [--requests-kib 250]

The server runs in a process of its own (so its resident memory is its alone) with
a dispatcher that answers ``query-qmp-schema`` as qapigen-vm does (its generated
introspection, ~23 KB a reply). Scenarios, each from a fresh server:

1. clients that never read: each writes ``--requests-kib`` KiB of
   ``{"execute":"query-qmp-schema"}`` in one go (what the socket takes) and reads
   nothing; then a bystander connects and runs a command. Prints the server's
   resident-memory growth once it settles (target: at most 64 MiB for 3 clients),
   the bytes each connection holds by the server's own count, and how long the
   bystander waited.
2. an unfinished value: one client sends ``[`` and 1.9M tokens (1.9 MB) that never
   end it; prints the growth, with the server's default budget for a value (1 MiB:
   the value is refused, and the rest of it is answered as garbage) and with QEMU's
   limit (64 MiB: the value is held whole).
3. the connection limit: one client more than the limit, and what it is told.
4. clients that hang up: 20 clients each write ``b'x ' * 20000`` (20,000 parse
   errors to answer) and close at once, while a bystander runs commands; prints the
   lines the server wrote to stderr and the bystander's slowest command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from qapigen_runtime.qmp import QMPServer, SyncQMPClient
from qapigen_vm_qmp.introspection import schema_info

TARGET_MIB = 64
STATS = "x-bench-sessions"


def resident_bytes(pid: int) -> int:
    """The resident memory of process `pid` (VmRSS, Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class SchemaDispatcher:
    """query-qmp-schema as qapigen-vm answers it, echo, and the sessions' figures."""

    def __init__(self) -> None:
        self.server: QMPServer | None = None
        self.schema = schema_info()

    def command_names(self) -> Sequence[str]:
        return ["query-qmp-schema", "echo", STATS]

    def oob_command_names(self) -> Collection[str]:
        return ()

    async def dispatch(self, name: str, arguments: dict[str, object]) -> object:
        if name == "query-qmp-schema":
            return self.schema
        if name == STATS:
            assert self.server is not None
            return [
                {
                    "held": getattr(s, "held_bytes", s.unsent_bytes),
                    "unsent": s.unsent_bytes,
                }
                for s in self.server.sessions
            ]
        return arguments


async def serve(path: str, options: dict[str, int]) -> None:
    dispatcher = SchemaDispatcher()
    server = QMPServer(dispatcher, **options)  # type: ignore[arg-type]
    dispatcher.server = server
    await server.listen(path)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.close()


class ServerProcess:
    """The server under test, in its own process; stopped by `close`."""

    def __init__(self, directory: Path, **options: int) -> None:
        self.path = str(directory / "qmp.sock")
        extra = [f"--option={name}={value}" for name, value in options.items()]
        self.stderr_path = directory / "server.stderr"
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, __file__, "--serve", self.path, *extra],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the server did not start")
        time.sleep(0.3)
        self.baseline = resident_bytes(self.process.pid)

    def stderr_lines(self) -> int:
        return len(self.stderr_path.read_bytes().splitlines())

    def growth(self) -> int:
        return resident_bytes(self.process.pid) - self.baseline

    def settled_growth(self, timeout: float = 60.0) -> int:
        """The growth once it stops changing (three readings 0.5 s apart)."""
        deadline = time.monotonic() + timeout
        readings = [self.growth()]
        while time.monotonic() < deadline:
            time.sleep(0.5)
            readings.append(self.growth())
            if len(set(readings[-3:])) == 1 and len(readings) >= 3:
                break
        return readings[-1]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _sleeper(path: str, requests: bytes) -> socket.socket:
    """A client that negotiates, writes `requests` as far as the server takes them
    (for 5 s at most), and never reads."""
    sock = socket.socket(socket.AF_UNIX)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(path)
    sock.sendall(b'{"execute":"qmp_capabilities"}\n')
    sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 5
    while sent < len(requests) and time.monotonic() < deadline:
        try:
            sent += sock.send(requests[sent:])
        except BlockingIOError:
            time.sleep(0.05)
    return sock


def never_reading(directory: Path, clients: int, requests_kib: int) -> None:
    server = ServerProcess(directory)
    request = b'{"execute":"query-qmp-schema"}\n'
    requests = request * (requests_kib * 1024 // len(request))
    sleepers = [_sleeper(server.path, requests) for _ in range(clients)]
    try:
        growth = server.settled_growth()
        start = time.perf_counter()
        with SyncQMPClient() as bystander:
            bystander.connect(server.path, timeout=60)
            bystander.execute("echo", {"here": True}, timeout=60)
            waited = time.perf_counter() - start
            stats = bystander.execute(STATS, timeout=60)
        assert isinstance(stats, list)
        held = sorted((s["held"] for s in stats if isinstance(s, dict)), reverse=True)
        verdict = "met" if growth <= TARGET_MIB * 2**20 else "MISSED"
        print(
            f"{clients} clients that never read, {len(requests) // 1024} KiB of "
            f"query-qmp-schema each:"
        )
        print(
            f"  server memory growth {growth / 2**20:.1f} MiB "
            f"(target <= {TARGET_MIB} MiB: {verdict})"
        )
        print(
            "  held by each connection (server's count): "
            + ", ".join(f"{h / 2**20:.2f} MiB" for h in held[:clients])
        )
        print(f"  bystander connected and answered in {waited * 1e3:.0f} ms")
    finally:
        for sleeper in sleepers:
            sleeper.close()
        server.close()


def unfinished_value(directory: Path, tokens: int, max_value_size: int | None) -> None:
    options = {} if max_value_size is None else {"max_value_size": max_value_size}
    server = ServerProcess(directory, **options)
    data = b"[" + b"1," * (tokens // 2)
    sock = _sleeper(server.path, data)
    try:
        growth = server.settled_growth()
        budget = "default" if max_value_size is None else f"{max_value_size >> 20} MiB"
        print(
            f"an unfinished value of {tokens / 1e6:.1f}M tokens "
            f"({len(data) / 1e6:.1f} MB), value budget {budget}: "
            f"server memory growth {growth / 2**20:.1f} MiB"
        )
    finally:
        sock.close()
        server.close()


def connection_limit(directory: Path, limit: int) -> None:
    server = ServerProcess(directory, max_connections=limit)
    clients = []
    try:
        for _ in range(limit):
            client = SyncQMPClient()
            client.connect(server.path, timeout=30)
            clients.append(client)
        extra = socket.socket(socket.AF_UNIX)
        extra.settimeout(10)
        extra.connect(server.path)
        told = extra.recv(4096).decode(errors="replace").strip()
        extra.close()
        print(f"connection {limit + 1} of a server limited to {limit} is told: {told}")
    finally:
        for client in clients:
            client.close()
        server.close()


def hanging_up(directory: Path, clients: int) -> None:
    server = ServerProcess(directory)
    slowest = 0.0
    try:
        with SyncQMPClient() as bystander:
            bystander.connect(server.path, timeout=60)
            for _ in range(clients):
                junk = socket.socket(socket.AF_UNIX)
                junk.connect(server.path)
                junk.recv(4096)  # the greeting: the server is on it
                junk.sendall(b'{"execute":"qmp_capabilities"}\n' + b"x " * 20_000)
                junk.close()
                start = time.perf_counter()
                bystander.execute("echo", {"here": True}, timeout=120)
                slowest = max(slowest, time.perf_counter() - start)
            while True:  # until the server is done with the junk
                sessions = bystander.execute(STATS, timeout=120)
                if isinstance(sessions, list) and len(sessions) == 1:
                    break
                time.sleep(0.1)
        print(
            f"{clients} clients that wrote b'x ' * 20000 and hung up: "
            f"{server.stderr_lines()} lines on the server's stderr; "
            f"a bystander's slowest command meanwhile {slowest * 1e3:.1f} ms"
        )
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--requests-kib", type=int, default=250)
    parser.add_argument("--tokens", type=int, default=1_900_000)
    parser.add_argument("--serve", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--option", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        options = dict(option.split("=", 1) for option in args.option)
        asyncio.run(serve(args.serve, {k: int(v) for k, v in options.items()}))
        return
    if not os.path.isdir("/proc/self"):
        sys.exit("this bench reads /proc (Linux)")
    with tempfile.TemporaryDirectory(prefix="qmem-") as name:
        directory = Path(name)
        never_reading(directory, args.clients, args.requests_kib)
        unfinished_value(directory, args.tokens, None)
        unfinished_value(directory, args.tokens, 64 * 2**20)
        connection_limit(directory, 8)
        hanging_up(directory, 20)


if __name__ == "__main__":
    main()

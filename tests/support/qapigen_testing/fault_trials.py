"""Seeded fault trials of a migration between two engines in one process: a relay that
cuts or corrupts one connection of a migration at a chosen byte, and a destination in
a process of its own that can be killed outright.

The count of trials is modest by default; QAPIGEN_VM_FAULT_TRIALS raises it.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

from qapigen_testing.vm_engine import (
    MIB,
    Factory,
    Mode,
    Vm,
    assert_failed_and_running,
    busy_source,
    same_memory,
)

FAULT_KINDS = ("cut", "corrupt", "kill")

# A destination in its own process, configured like the in-process ones, so that it
# can be killed outright.
DESTINATION_PROCESS = """
import json, sys, time
from qapigen_vm import GuestRam, MigrationEngine
mode = json.loads(sys.argv[2])
engine = MigrationEngine(GuestRam(int(sys.argv[1])), incoming="defer")
engine.migrate_set_capabilities([(name, True) for name in mode["capabilities"]])
engine.migrate_set_parameters(mode["parameters"])
engine.migrate_incoming("tcp:127.0.0.1:0")
print(engine.listening_port(), flush=True)
time.sleep(60)
"""


class Proxy:
    """A TCP relay for every connection of a migration (main and multifd channels).

    Counts the bytes each connection carries towards the destination, and can damage
    one of them: ``fault_conn`` is its accept order (0: the first, the main channel),
    ``cut_after`` drops that connection (both ways) after so many bytes,
    ``flip_at`` flips a bit of the byte at that offset.
    """

    def __init__(
        self,
        target_port: str,
        *,
        fault_conn: int = 0,
        cut_after: int | None = None,
        flip_at: int | None = None,
    ) -> None:
        self.target = ("127.0.0.1", int(target_port))
        self.fault_conn = fault_conn
        self.cut_after = cut_after
        self.flip_at = flip_at
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.forwarded: list[int] = []
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.forwarded)

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self._lock:
                index = len(self.forwarded)
                self.forwarded.append(0)
                self._socks += [client, upstream]
            threading.Thread(
                target=self._pump_back, args=(upstream, client), daemon=True
            ).start()
            threading.Thread(
                target=self._pump_forward,
                args=(index, client, upstream),
                daemon=True,
            ).start()

    @staticmethod
    def _pump_back(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _pump_forward(self, index: int, a: socket.socket, b: socket.socket) -> None:
        faulty = index == self.fault_conn
        try:
            while data := bytearray(a.recv(65536)):
                start = self.forwarded[index]
                if faulty and self.flip_at is not None:
                    if start <= self.flip_at < start + len(data):
                        data[self.flip_at - start] ^= 0x10
                if faulty and self.cut_after is not None:
                    if start + len(data) >= self.cut_after:
                        b.sendall(data[: self.cut_after - start])
                        self.forwarded[index] = self.cut_after
                        self._drop(a, b)
                        return
                b.sendall(data)
                with self._lock:
                    self.forwarded[index] += len(data)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(a, b)

    @staticmethod
    def _drop(*socks: socket.socket) -> None:
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.server.close()
        with self._lock:
            socks = list(self._socks)
        self._drop(*socks)


def fault_trial_seeds(default: int = 10) -> list[int]:
    """Seeds for the fault trials: ``default`` of them, or QAPIGEN_VM_FAULT_TRIALS."""
    count = int(os.environ.get("QAPIGEN_VM_FAULT_TRIALS", default))
    return list(range(count))


def fault_trial(
    vms: Factory,
    seed: int,
    mode: Mode,
    *,
    size: int = 8 * MIB,
    stream_bytes: int = 10 * MIB,
    connections: int = 1,
) -> str:
    """One seeded fault against a migration in ``mode``.

    The fault (a cut connection, a flipped byte, or a killed destination process) lands
    at a random point of the first ``stream_bytes`` (split evenly over the
    ``connections`` of the migration, one of which is picked); the source must end
    failed with an error-desc and its guest running, and the destination must never
    complete.
    Returns the kind of fault, for the caller's bookkeeping.
    """
    rng = random.Random(seed)
    kind = FAULT_KINDS[seed % len(FAULT_KINDS)]
    src = busy_source(vms, size, mode)
    src.engine.migrate_set_parameters({"max-bandwidth": 32 * MIB})
    if kind == "kill":
        _killed_destination_trial(src, size, mode, rng)
        return kind
    dst = vms.destination(size, uri="defer")
    mode.apply(dst)
    dst.engine.migrate_incoming("tcp:127.0.0.1:0")
    conn = rng.randrange(connections)
    if connections > 1 and conn == 0:
        # multifd's main channel carries only the header, zero pages and syncs
        point = rng.randrange(0, 256)
    else:
        point = rng.randrange(0, stream_bytes // connections)
    proxy = Proxy(
        dst.port(),
        fault_conn=conn,
        cut_after=point if kind == "cut" else None,
        flip_at=point if kind == "corrupt" else None,
    )
    try:
        src.engine.migrate(f"tcp:127.0.0.1:{proxy.port}")
        info = src.wait("failed", "completed", timeout=25)
        if info.status is not None and info.status.value == "completed":
            # The stream was shorter than the fault point: the fault never happened.
            assert proxy.forwarded[conn] <= point
            dst.wait("completed")
            assert same_memory(src.ram, dst.ram)
            return "none"
        assert_failed_and_running(src, dst)
    finally:
        proxy.close()
    return kind


def _killed_destination_trial(
    src: Vm, size: int, mode: Mode, rng: random.Random
) -> None:
    """SIGKILL the destination once a random share of the RAM has been sent."""
    child = subprocess.Popen(
        [sys.executable, "-c", DESTINATION_PROCESS, str(size), mode.to_json()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = child.stdout.readline().strip()
        src.engine.migrate(f"tcp:127.0.0.1:{port}")
        target = rng.randrange(0, size * 3 // 4)
        while (info := src.engine.query_migrate()).ram is None or (
            info.ram.transferred < target
        ):
            assert info.status is None or info.status.value in ("setup", "active")
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGKILL)
        info = src.wait("failed", "completed", timeout=25)
        if info.status is not None and info.status.value == "completed":
            return  # the destination had acknowledged everything before it died
        assert_failed_and_running(src, None)
    finally:
        child.kill()
        child.wait()

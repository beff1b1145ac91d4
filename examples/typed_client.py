"""Drive a real QEMU with the typed bindings generated from the bundled schema.

Starts one ``qemu-system-x86_64`` (no guest devices, QMP on a unix socket), sets a
migration parameter with the typed async client, reads it back as a typed object and
stops QEMU again.

    python examples/typed_client.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qapigen_migration.commands import AsyncClient
from qapigen_migration.types import MigrateSetParameters
from qapigen_runtime.qmp import QMPClient, QMPError


def start_qemu(qmp_socket: Path) -> subprocess.Popen[bytes]:
    """A small TCG guest whose QMP monitor listens on `qmp_socket`."""
    return subprocess.Popen(
        [
            "qemu-system-x86_64",
            *("-M", "pc", "-accel", "tcg", "-m", "64", "-nodefaults"),
            *("-display", "none"),
            *("-qmp", f"unix:{qmp_socket},server=on,wait=off"),
        ],
        stdin=subprocess.DEVNULL,
    )


def wait_for_socket(qemu: subprocess.Popen[bytes], qmp_socket: Path) -> None:
    deadline = time.monotonic() + 15
    while not qmp_socket.exists():
        if qemu.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("QEMU did not open its QMP socket")
        time.sleep(0.01)


async def configure(qmp_socket: Path) -> None:
    transport = QMPClient()
    await transport.connect(str(qmp_socket))  # greeting + capability negotiation
    try:
        qemu = AsyncClient(transport)
        await qemu.migrate_set_parameters(MigrateSetParameters(downtime_limit=250))
        params = await qemu.query_migrate_parameters()  # a MigrationParameters
        print(f"downtime-limit is now {params.downtime_limit} ms")
        print(params)
    finally:
        await transport.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="qapigen-example-") as directory:
        qmp_socket = Path(directory) / "qmp.sock"
        try:
            qemu = start_qemu(qmp_socket)
        except FileNotFoundError:
            print("qemu-system-x86_64 is not installed", file=sys.stderr)
            return 1
        print(f"started QEMU pid {qemu.pid}")
        try:
            wait_for_socket(qemu, qmp_socket)
            asyncio.run(configure(qmp_socket))
        except (QMPError, RuntimeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        finally:
            qemu.terminate()
            qemu.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

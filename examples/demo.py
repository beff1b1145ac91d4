"""Live-migrate a guest between two VMs and draw the timeline.

    python examples/demo.py                  # two qapigen-vm processes
    python examples/demo.py --qemu           # two real qemu-system-x86_64 processes

It starts a source (a 256 MiB guest whose workload dirties 20,000 pages a second) and a
destination waiting with ``-incoming tcp:127.0.0.1:PORT``, runs ``qapigen-migrate`` on
them with ``--plot``, shows where each guest ended up, and stops both processes.

With ``--qemu`` the guest is a 285-byte multiboot program booted with ``-kernel``
(`qapigen_vm.tools.qemu_guest`) that dirties the same working set at the same
rate from a 1 kHz timer, so both runs migrate a guest that keeps writing.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qapigen_runtime.qmp import QMPError, SyncQMPClient
from qapigen_vm.tools import migrate
from qapigen_vm.tools.qemu_guest import (
    FIRST_FREE,
    PAGE_SIZE,
    GuestError,
    read_guest_byte,
    wait_until_written,
    write_image,
)

START_TIMEOUT = 15.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the destination binds it next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def parse_size(text: str) -> int:
    """``64M`` and the like (k, M, G: binary) in bytes."""
    shifts = {"k": 10, "m": 20, "g": 30}
    suffix = text[-1:].lower()
    if suffix in shifts:
        return int(text[:-1]) << shifts[suffix]
    return int(text)


def vm_command(qmp: Path, ram_mib: int, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "qapigen_vm.main",
        "-m",
        f"{ram_mib}M",
        "-display",
        "none",
        "-qmp",
        f"unix:{qmp},server=on,wait=off",
        *extra,
    ]


def qemu_command(qmp: Path, ram_mib: int, kernel: Path, extra: list[str]) -> list[str]:
    binary = shutil.which("qemu-system-x86_64")
    if binary is None:
        raise SystemExit("demo: --qemu needs qemu-system-x86_64 on PATH")
    return [
        binary,
        "-M",
        "pc",
        "-accel",
        "tcg",
        "-m",
        f"{ram_mib}",
        "-nodefaults",
        "-display",
        "none",
        "-kernel",  # on both sides: the machine configurations must match
        str(kernel),
        "-qmp",
        f"unix:{qmp},server=on,wait=off",
        *extra,
    ]


@contextmanager
def started(name: str, command: list[str], qmp: Path, log: Path) -> Iterator[None]:
    """Run `command` until the block ends; wait for its QMP socket first."""
    with log.open("wb") as errors:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=errors, stdin=subprocess.DEVNULL
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not qmp.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                detail = log.read_text(errors="replace").strip() or "no output"
                raise SystemExit(f"demo: the {name} did not start: {detail}")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_state(qmp: Path) -> str:
    """The VM's run state (query-status), or why it could not be read."""
    try:
        with SyncQMPClient() as client:
            client.connect(str(qmp), timeout=5)
            reply = client.execute("query-status")
    except (QMPError, OSError) as error:
        return f"unknown ({error})"
    status = reply.get("status") if isinstance(reply, dict) else None
    return str(status)


def guest_activity(qmp: Path, address: int) -> str:
    """Whether the migrated guest keeps writing on the destination (QEMU only)."""
    with SyncQMPClient() as client:
        client.connect(str(qmp), timeout=5)
        before = read_guest_byte(client, address)
        time.sleep(1.5)  # the guest sweeps its working set in about a second
        after = read_guest_byte(client, address)
    verdict = "runs" if after != before else "does not seem to run"
    return (
        f"the guest {verdict} on the destination: byte at {address:#x} "
        f"went {before:#04x} -> {after:#04x} in 1.5 s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qemu", action="store_true", help="use real QEMU 7.2")
    parser.add_argument("--ram", type=int, default=256, help="guest RAM in MiB")
    parser.add_argument("--rate", type=int, default=20000, help="pages dirtied per s")
    parser.add_argument(
        "--working-set", default="64M", help="memory the workload writes"
    )
    parser.add_argument(
        "--plot", type=Path, default=Path("migration-timeline.png"), help="PNG to write"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        help="passed to qapigen-migrate (e.g. max-bandwidth=64M)",
    )
    args = parser.parse_args(argv)
    try:
        working_set = parse_size(args.working_set)
    except ValueError:
        parser.error(f"--working-set {args.working_set!r}: expected a size like 64M")

    with tempfile.TemporaryDirectory(prefix="qapigen-demo-") as tmp:
        work = Path(tmp)
        source_qmp, destination_qmp = work / "source.qmp", work / "destination.qmp"
        incoming = ["-incoming", f"tcp:127.0.0.1:{free_port()}"]
        if args.qemu:
            try:
                kernel = write_image(
                    work / "dirty_guest.bin", args.rate, working_set, args.ram << 20
                )
            except GuestError as error:
                raise SystemExit(f"demo: {error}") from None
            source = qemu_command(source_qmp, args.ram, kernel, [])
            destination = qemu_command(destination_qmp, args.ram, kernel, incoming)
            what = (
                f"real QEMU, guest dirtying {args.rate} pages/s "
                f"over {args.working_set}"
            )
        else:
            workload = (
                f"rate={args.rate},working-set={args.working_set},pattern=random,seed=1"
            )
            source = vm_command(source_qmp, args.ram, ["-workload", workload])
            destination = vm_command(destination_qmp, args.ram, incoming)
            what = f"qapigen-vm, workload {workload}"
        print(f"source and destination: {args.ram} MiB guests ({what})")
        with (
            started("source", source, source_qmp, work / "source.log"),
            started(
                "destination", destination, destination_qmp, work / "destination.log"
            ),
        ):
            last_page = FIRST_FREE + working_set - PAGE_SIZE
            if args.qemu:  # until the guest has written its whole working set once
                try:
                    wait_until_written(str(source_qmp), last_page)
                except GuestError as error:
                    raise SystemExit(f"demo: {error}") from None
            command = [f"unix:{source_qmp}", f"unix:{destination_qmp}"]
            command += [
                "--cap",
                "events=on",
                "--interval",
                "0.1",
                "--plot",
                str(args.plot),
            ]
            for param in args.param:
                command += ["--param", param]
            print("$ qapigen-migrate " + " ".join(command), flush=True)
            status = migrate.main(command)
            print(f"qapigen-migrate exited with {status}")
            print(f"source run state:      {run_state(source_qmp)}")
            print(f"destination run state: {run_state(destination_qmp)}")
            if args.qemu and status == 0:
                print(guest_activity(destination_qmp, last_page))
    if status == 0:
        print(f"timeline written to {args.plot}")
    return status


if __name__ == "__main__":
    sys.exit(main())

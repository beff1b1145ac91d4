"""Drive a real qemu-storage-daemon with the typed bindings of its 7.2 schema.

Adds a qcow2 image as a block node, exports it over NBD (nbd-server-start and
block-export-add), backs it up into a second image with a job whose typed
JOB_STATUS_CHANGE events are followed to the end, lists the named block nodes, and
reads the NBD exports (the image's, the backup's) back with ``qemu-img compare``
against the image.

    python examples/storage_daemon.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qapigen_runtime.qmp import QMPError, SyncQMPClient
from qapigen_storage_daemon import commands, events
from qapigen_storage_daemon import types as t

JOB = "backup0"


def make_images(folder: Path) -> tuple[Path, Path]:
    """A 16 MiB qcow2 image with 2 MiB of data in it, and an empty one as large."""
    image, backup = folder / "disk.qcow2", folder / "backup.qcow2"
    for path in (image, backup):
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True
        )
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -q -P 0x5a 1M 2M", str(image)],
        check=True,
    )
    return image, backup


def start_daemon(monitor: Path) -> subprocess.Popen[bytes]:
    chardev = f"socket,path={monitor},server=on,wait=off,id=m"
    return subprocess.Popen(
        ["qemu-storage-daemon", "--chardev", chardev, "--monitor", "chardev=m"],
        stdin=subprocess.DEVNULL,
    )


def connect(daemon: subprocess.Popen[bytes], monitor: Path) -> SyncQMPClient:
    deadline = time.monotonic() + 15
    while not monitor.exists():
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("qemu-storage-daemon did not start")
        time.sleep(0.01)
    client = SyncQMPClient()
    client.connect(str(monitor))
    return client


def qcow2_node(name: str, path: Path) -> t.BlockdevOptions:
    return t.BlockdevOptions_Qcow2(
        node_name=name,
        file=t.BlockdevOptions_File(node_name=f"{name}-file", filename=str(path)),
    )


def worked_example(client: SyncQMPClient, folder: Path) -> None:
    image, backup = make_images(folder)
    qsd = commands.SyncClient(client)

    qsd.blockdev_add(qcow2_node("disk", image))
    qsd.blockdev_add(qcow2_node("backup", backup))

    nbd_socket = folder / "nbd.sock"
    address = t.UnixSocketAddress(path=str(nbd_socket))
    qsd.nbd_server_start(addr=t.SocketAddressLegacy_Unix(data=address))
    for name in ("disk", "backup"):  # NBD exports named as the nodes
        qsd.block_export_add(t.BlockExportOptions_Nbd(id=name, node_name=name))

    qsd.blockdev_backup(
        t.BlockdevBackup(
            job_id=JOB, device="disk", target="backup", sync=t.MirrorSyncMode.FULL
        )
    )
    statuses: list[t.JobStatus] = []
    while not statuses or statuses[-1] is not t.JobStatus.NULL:
        event = events.wait_for_sync(
            client, events.JobStatusChangeEvent, lambda e: e.id == JOB, timeout=30
        )
        statuses.append(event.status)
    print(f"job {JOB}: {' -> '.join(statuses)}")

    for node in qsd.query_named_block_nodes(flat=True):
        print(f"node {node.node_name}: {node.drv}, {node.image.virtual_size} bytes")

    # What the NBD exports serve against the image file (the daemon holds the
    # image's lock: -U reads it all the same; the backup is read through its
    # export, as the daemon may not have written all of its metadata yet).
    for what in ("disk", "backup"):
        export = f"nbd+unix:///{what}?socket={nbd_socket}"
        compared = subprocess.run(
            ["qemu-img", "compare", "-U", "-f", "raw", "-F", "qcow2"]
            + [export, str(image)],
            capture_output=True,
            text=True,
        )
        verdict = compared.stdout.strip() or compared.stderr.strip()
        print(f"qemu-img compare {what}: {verdict} (exit {compared.returncode})")


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="qsd-"))
    monitor = folder / "qmp.sock"
    daemon = start_daemon(monitor)
    try:
        with connect(daemon, monitor) as client:
            worked_example(client, folder)
            commands.SyncClient(client).quit()
    except QMPError as error:
        print(f"QMP failed: {error}", file=sys.stderr)
        return 1
    finally:
        try:
            daemon.wait(5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The 7.2 storage-daemon package against a real ``qemu-storage-daemon`` 7.2: QMP as
usual, with the daemon's own schema."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from qapigen_runtime.qmp import SyncQMPClient
from qapigen_runtime.qmp.errors import GenericError
from qapigen_storage_daemon import commands, events
from qapigen_storage_daemon import types as t
from qapigen_testing.daemons import StorageDaemon
from qapigen_testing.paths import REPO

pytestmark = pytest.mark.storage_daemon


def test_the_worked_example_runs_and_the_exports_read_back_identical() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "storage_daemon.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    statuses = lines[0].removeprefix("job backup0: ").split(" -> ")
    assert statuses[0] == "created" and "running" in statuses
    assert statuses[-3:] == ["pending", "concluded", "null"]
    nodes = sorted(line.split(":")[0] for line in lines[1:5])
    assert nodes == [
        f"node {n}" for n in ("backup", "backup-file", "disk", "disk-file")
    ]
    assert lines[5:] == [
        "qemu-img compare disk: Images are identical. (exit 0)",
        "qemu-img compare backup: Images are identical. (exit 0)",
    ]


def _qemu_img(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True)


@pytest.fixture
def daemon() -> Iterator[tuple[StorageDaemon, SyncQMPClient]]:
    with StorageDaemon() as running, SyncQMPClient() as client:
        client.connect(str(running.socket_path))
        yield running, client


def test_typed_block_nodes_exports_job_events_and_errors(
    daemon: tuple[StorageDaemon, SyncQMPClient],
) -> None:
    running, client = daemon
    qsd = commands.SyncClient(client)
    image = running.folder / "a.qcow2"
    other = running.folder / "b.qcow2"
    for path in (image, other):
        assert _qemu_img("create", "-q", "-f", "qcow2", str(path), "4M").returncode == 0
    written = subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -q -P 0x11 0 64k", str(image)]
    )
    assert written.returncode == 0

    qsd.blockdev_add(
        t.BlockdevOptions_Qcow2(
            node_name="a",
            file=t.BlockdevOptions_File(node_name="a-file", filename=str(image)),
        )
    )
    with pytest.raises(GenericError, match="Duplicate nodes with node-name='a'"):
        qsd.blockdev_add(
            t.BlockdevOptions_Qcow2(
                node_name="a",
                file=t.BlockdevOptions_File(filename=str(image)),
            )
        )
    nodes = {node.node_name: node for node in qsd.query_named_block_nodes(flat=True)}
    assert set(nodes) == {"a", "a-file"}
    assert nodes["a"].drv == "qcow2" and nodes["a"].image.virtual_size == 4 << 20

    nbd = running.folder / "nbd.sock"
    address = t.UnixSocketAddress(path=str(nbd))
    qsd.nbd_server_start(addr=t.SocketAddressLegacy_Unix(data=address))
    qsd.block_export_add(t.BlockExportOptions_Nbd(id="a", node_name="a"))
    exports = qsd.query_block_exports()
    assert [(e.id, e.type_, e.node_name) for e in exports] == [
        ("a", t.BlockExportType.NBD, "a")
    ]
    export = f"nbd+unix:///a?socket={nbd}"
    same = _qemu_img("compare", "-U", "-f", "raw", "-F", "qcow2", export, str(image))
    assert (same.returncode, same.stdout.strip()) == (0, "Images are identical.")
    # the comparison can fail: against the empty image it must
    differs = _qemu_img("compare", "-U", "-f", "raw", "-F", "qcow2", export, str(other))
    assert differs.returncode == 1, differs.stdout + differs.stderr

    # a job: blockdev-create of a new qcow2 (format layer), events typed and strict
    target = running.folder / "c.qcow2"
    assert _qemu_img("create", "-q", "-f", "raw", str(target), "0").returncode == 0
    qsd.blockdev_add(t.BlockdevOptions_File(node_name="c-file", filename=str(target)))
    qsd.blockdev_create(
        job_id="create0",
        options=t.BlockdevCreateOptions_Qcow2(file="c-file", size=1 << 20),
    )
    seen: list[t.JobStatus] = []
    while not seen or seen[-1] is not t.JobStatus.CONCLUDED:
        event = events.wait_for_sync(
            client, events.JobStatusChangeEvent, lambda e: e.id == "create0", 30
        )
        strict = events.decode_event(event.NAME, event.to_wire(), True)
        assert strict == event  # what the daemon sent decodes strictly too
        seen.append(event.status)
    assert seen[0] is t.JobStatus.CREATED and t.JobStatus.RUNNING in seen
    jobs = qsd.query_jobs()
    assert [(j.id, j.type_, j.status) for j in jobs] == [
        ("create0", t.JobType.CREATE, t.JobStatus.CONCLUDED)
    ]
    qsd.job_dismiss(id="create0")
    assert qsd.query_jobs() == []
    info = _qemu_img("info", "-U", "--output=json", str(target))
    assert '"format": "qcow2"' in info.stdout

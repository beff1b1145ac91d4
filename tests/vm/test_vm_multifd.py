"""multifd: pages over parallel data channels, compressed or not, faults included."""

from __future__ import annotations

import numpy as np
import pytest

from qapigen_testing.fault_trials import Proxy, fault_trial, fault_trial_seeds
from qapigen_testing.vm_engine import (
    MIB,
    Factory,
    Mode,
    Vm,
    busy_source,
    migrate_and_check,
)
from qapigen_vm import VmCommandError
from qapigen_vm.codecs import zstd_available
from qapigen_vm.multifd import HELLO, PACKET

pytestmark = pytest.mark.timeout(60)

PAGE = 4096


def multifd(channels: int = 4, method: str = "none", **extra: object) -> Mode:
    parameters: dict[str, object] = {
        "multifd-channels": channels,
        "multifd-compression": method,
    }
    parameters.update(extra)
    return Mode(capabilities=("multifd",), parameters=parameters)


def deferred_destination(vms: Factory, mode: Mode, uri: str, size: int = 8 * MIB) -> Vm:
    """-incoming defer, settings, then migrate-incoming (as libvirt does it)."""
    dst = vms.destination(size, uri="defer")
    mode.apply(dst)
    dst.engine.migrate_incoming(uri)
    return dst


def compressible_source(vms: Factory, mode: Mode, size: int = 8 * MIB) -> Vm:
    src = vms.source(size)
    src.ram.pages[1000:1800, 64:] = 7  # half of these pages compress well
    mode.apply(src)
    return src


@pytest.mark.parametrize(
    "method",
    [
        "none",
        "zlib",
        pytest.param(
            "zstd",
            marks=pytest.mark.skipif(
                not zstd_available(), reason="the zstandard package is not installed"
            ),
        ),
    ],
)
def test_multifd_statistics_match_the_bytes_on_the_wire(
    vms: Factory, method: str
) -> None:
    mode = multifd(4, method, **{"multifd-zlib-level": 6, "multifd-zstd-level": 3})
    dst = deferred_destination(vms, mode, "tcp:127.0.0.1:0")
    src = compressible_source(vms, mode)
    proxy = Proxy(dst.port())
    try:
        migrate_and_check(src, dst, f"tcp:127.0.0.1:{proxy.port}")
        info = src.engine.query_migrate()
        ram = info.ram
        assert ram is not None
        # main channel + 4 data channels, and every byte each carried is counted
        assert len(proxy.forwarded) == 5
        assert ram.multifd_bytes == sum(proxy.forwarded[1:])
        assert ram.transferred == proxy.total
        assert ram.normal + ram.duplicate == 2048 and ram.duplicate == 64
        assert info.to_wire()["ram"]["multifd-bytes"] == ram.multifd_bytes  # type: ignore[index]
        payload = ram.multifd_bytes - 4 * HELLO.size
        pages = ram.normal * PAGE
        if method == "none":
            packets = -(-ram.normal // 128)  # at least, plus the sync packets
            assert payload >= pages + packets * PACKET.size + 4 * ram.normal
            assert payload < pages * 1.02
        else:
            assert payload < pages * 0.9  # 800 half-constant pages compressed
    finally:
        proxy.close()


def test_multifd_over_unix_with_a_dirtying_guest(vms: Factory) -> None:
    mode = multifd(3)
    uri = f"unix:{vms.tmp_path}/multifd.sock"
    dst = deferred_destination(vms, mode, uri, 16 * MIB)
    src = busy_source(vms, 16 * MIB, mode, rate=20000, pages=2048)
    src.engine.migrate_set_parameters({"max-bandwidth": 64 * MIB})
    migrate_and_check(src, dst, uri)
    info = src.engine.query_migrate()
    assert info.ram is not None and info.ram.dirty_sync_count >= 2
    assert info.ram.normal + info.ram.duplicate > 4096  # some pages went twice


def test_one_channel_and_many_channels(vms: Factory) -> None:
    for channels in (1, 16):
        mode = multifd(channels)
        dst = deferred_destination(vms, mode, "tcp:127.0.0.1:0")
        src = vms.source()
        mode.apply(src)
        migrate_and_check(src, dst)


def expect_both_failed(src: Vm, dst: Vm, destination_text: str) -> None:
    info = src.wait("failed", "completed")
    assert info.status is not None and info.status.value == "failed", info
    assert src.engine.query_status()["running"] is True
    dst.wait("failed")
    assert "completed" not in dst.events.statuses()
    reasons = dst.wait_exit()
    assert reasons and destination_text in reasons[0]
    # Without a return path (QEMU 7.2 opens one only for return-path or postcopy)
    # the source never hears the reason: it reports its own failed write or connect.
    assert info.error_desc is not None
    assert (
        "Unable to write to socket: " in info.error_desc
        or info.error_desc.startswith("Failed to connect to ")
    ), (info.error_desc)


def test_channel_counts_must_match(vms: Factory) -> None:
    dst = deferred_destination(vms, multifd(3), "tcp:127.0.0.1:0")
    src = vms.source()
    multifd(2).apply(src)
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}")
    expect_both_failed(
        src, dst, "the source uses 2 multifd channels, this VM expects 3"
    )


def test_destination_without_multifd_refuses_the_stream(vms: Factory) -> None:
    dst = vms.destination()
    src = vms.source()
    multifd(2).apply(src)
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}")
    expect_both_failed(src, dst, "but this VM's multifd capability is off")


def test_compression_methods_must_match(vms: Factory) -> None:
    dst = deferred_destination(vms, multifd(2, "none"), "tcp:127.0.0.1:0")
    src = vms.source()
    multifd(2, "zlib").apply(src)
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}")
    expect_both_failed(src, dst, "multifd-compression differs")


def test_multifd_needs_a_socket_uri(vms: Factory) -> None:
    src = vms.source()
    multifd(2).apply(src)
    with pytest.raises(VmCommandError, match="multifd needs a tcp: or unix:"):
        src.engine.migrate(f"exec:cat > {vms.tmp_path}/stream")
    assert src.engine.query_migrate().status is None


def test_zstd_follows_the_build(vms: Factory) -> None:
    vm = vms.vm()
    if zstd_available():
        vm.engine.migrate_set_parameters({"multifd-compression": "zstd"})
        assert vm.engine.query_migrate_parameters().multifd_compression == "zstd"
    else:  # as a QEMU built without zstd: the enum has no such value
        with pytest.raises(VmCommandError) as caught:
            vm.engine.migrate_set_parameters({"multifd-compression": "zstd"})
        assert caught.value.desc == (
            "Parameter 'multifd-compression' does not accept value 'zstd'"
        )


def test_cancel_during_multifd_then_a_new_destination_succeeds(vms: Factory) -> None:
    # QEMU's multifd/tcp/cancel: the first destination fails, a second one completes
    mode = multifd(4)
    src = vms.source(16 * MIB)
    mode.apply(src)
    src.engine.migrate_set_parameters({"max-bandwidth": 8 * MIB})
    dst = deferred_destination(vms, mode, "tcp:127.0.0.1:0", 16 * MIB)
    src.engine.migrate(f"tcp:127.0.0.1:{dst.port()}")
    info = src.wait("active")
    while info.ram is None or info.ram.transferred < MIB:
        info = src.wait("active")
    src.engine.migrate_cancel()
    src.wait("cancelled")
    assert src.engine.query_status()["running"] is True
    dst.wait("failed")
    assert dst.wait_exit()
    src.engine.migrate_set_parameters({"max-bandwidth": 0})
    second = deferred_destination(vms, mode, "tcp:127.0.0.1:0", 16 * MIB)
    migrate_and_check(src, second)
    assert np.array_equal(src.ram.pages, second.ram.pages)


@pytest.mark.parametrize("seed", fault_trial_seeds())
def test_multifd_fault_trials(vms: Factory, seed: int) -> None:
    # the fault hits the main channel or any of the 3 data channels
    fault_trial(vms, seed, multifd(3, "zlib"), connections=4)

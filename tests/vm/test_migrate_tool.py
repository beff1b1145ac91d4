"""qapigen-migrate: formatting and plot data from recorded figures (no process), then
whole migrations through the command against real QEMU 7.2 and against qapigen-vm."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from qapigen_migration.commands import AsyncClient
from qapigen_migration.types import (
    MigrateSetParameters,
    MigrationCapability,
    MigrationInfo,
    MultiFDCompression,
)
from qapigen_runtime.qmp import QMPEvent, SyncQMPClient
from qapigen_runtime.qmp.address import AddressError
from qapigen_runtime.qmp.address import parse_address as runtime_parse_address
from qapigen_testing.qemu_fixtures import accepts_connections
from qapigen_vm.tools import migrate
from qapigen_vm.tools.arguments import (
    UsageError,
    parse_address,
    parse_capability,
    parse_parameters,
)
from qapigen_vm.tools.deadline import CallLimits
from qapigen_vm.tools.plot import (
    MIB,
    MIN_WINDOW,
    PlotUnavailable,
    pass_labels,
    plot_series,
    write_png,
)
from qapigen_vm.tools.plot import describe as describe_plot
from qapigen_vm.tools.progress import (
    ProgressDisplay,
    format_bytes,
    format_duration,
    plain_line,
    progress_bar,
    progress_line,
    summary_lines,
)
from qapigen_vm.tools.qemu_guest import (
    FIRST_FREE,
    IMAGE,
    PARAMETERS_OFFSET,
    GuestError,
    build_image,
    read_guest_byte,
    wait_until_written,
)
from qapigen_vm.tools.timeline import Mark, MarkKind, Sample, Timeline

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# query-migrate replies recorded from a real QEMU 7.2 source (64 MiB guest of random
# bytes, max-bandwidth 32 MiB/s), cut to the members the schema defines.
RECORDED_ACTIVE = {
    "status": "active",
    "setup-time": 1,
    "total-time": 1011,
    "expected-downtime": 300,
    "ram": {
        "total": 67641344,
        "remaining": 30031872,
        "transferred": 36929568,
        "duplicate": 285,
        "skipped": 0,
        "normal": 8990,
        "normal-bytes": 36823040,
        "dirty-pages-rate": 0,
        "mbps": 269.3,
        "dirty-sync-count": 1,
        "postcopy-requests": 0,
        "page-size": 4096,
        "multifd-bytes": 0,
        "pages-per-second": 8220,
    },
}
RECORDED_COMPLETED = {
    "status": "completed",
    "setup-time": 1,
    "total-time": 1734,
    "downtime": 33,
    "ram": {
        **RECORDED_ACTIVE["ram"],  # type: ignore[dict-item]
        "remaining": 0,
        "transferred": 66623020,
        "mbps": 308.1,
        "dirty-sync-count": 3,
        "normal": 16233,
        "normal-bytes": 66490368,
    },
}
RECORDED_FAILED = {
    "status": "failed",
    "error-desc": "Failed to connect to '127.0.0.1:1': Connection refused",
}


def recorded_timeline() -> Timeline:
    """The samples and events of the recorded run (times in s since `migrate`)."""
    ram = RECORDED_ACTIVE["ram"]
    assert isinstance(ram, dict)
    total = ram["total"]
    figures = [  # time, transferred, remaining, mbps, status, pass
        (0.001, 0, total, 0.0, "active", 1),
        (0.258, 8_519_680, total - 8_519_680, 268.4, "active", 1),
        (0.510, 17_039_360, total - 17_039_360, 268.4, "active", 1),
        (0.512, 17_108_992, total - 17_108_992, 268.4, "active", 1),  # woken early
        (1.011, 36_929_568, 30_031_872, 269.3, "active", 1),
        (1.734, 66_623_020, 0, 308.1, "completed", 3),
    ]
    samples = [
        Sample(
            time=t,
            status=status,
            transferred=sent,
            remaining=left,
            total=total,
            mbps=mbps,
            pass_number=number,
        )
        for t, sent, left, mbps, status, number in figures
    ]
    marks = [
        Mark(0.0008, MarkKind.PASS, "1"),
        Mark(0.0009, MarkKind.STATUS, "active"),
        Mark(1.701, MarkKind.STOP, "source stopped"),
        Mark(1.7012, MarkKind.PASS, "2"),
        Mark(1.730, MarkKind.PASS, "3"),
        Mark(1.733, MarkKind.STATUS, "completed"),
        Mark(1.751, MarkKind.RESUME, "destination resumed"),
    ]
    return Timeline(samples=samples, marks=marks)


# -- formatting --------------------------------------------------------------------


def test_format_bytes_uses_binary_units() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(30_031_872) == "28.6 MiB"
    assert format_bytes(256 * MIB) == "256 MiB"
    assert format_bytes(3 << 40) == "3 TiB"


def test_format_duration_scales() -> None:
    assert format_duration(0.033) == "33 ms"
    assert format_duration(1.734) == "1.7 s"
    assert format_duration(125) == "2m05s"


def test_progress_bar_fills_in_proportion() -> None:
    assert progress_bar(0.0, 10) == "[..........]"
    assert progress_bar(0.5, 10) == "[#####.....]"
    assert progress_bar(1.7, 4) == "[####]"


def test_sample_from_a_recorded_reply() -> None:
    info = MigrationInfo.from_wire(RECORDED_ACTIVE)
    sample = Sample.from_info(info, 1.011)
    assert sample.status == "active"
    assert sample.fraction_done == pytest.approx(1 - 30031872 / 67641344)
    # Without MIGRATION_PASS events the pass shown is the dirty-sync count.
    assert sample.pass_shown == 1
    assert Sample.from_info(info, 1.0, pass_number=4).pass_shown == 4
    setup = Sample.from_info(MigrationInfo.from_wire({"status": "setup"}), 0.001)
    assert not setup.has_ram and setup.fraction_done == 0.0


def test_progress_line_shows_the_figures_and_fits() -> None:
    sample = Sample.from_info(MigrationInfo.from_wire(RECORDED_ACTIVE), 1.011)
    line = progress_line(sample, 120)
    assert len(line) <= 120
    assert line.startswith("[")
    for figure in ("active", "56%", "pass 1", "sent 35.2 MiB", "left 28.6 MiB"):
        assert figure in line
    # pass 1 only: QEMU has not measured the dirty rate yet, its 0 means nothing
    assert "269 Mbps" in line and "dirty —" in line and line.endswith("1.0 s")
    measured = Sample.from_info(
        MigrationInfo.from_wire(RECORDED_ACTIVE), 1.011, dirty_rate_known=True
    )
    assert "dirty 0 B/s" in progress_line(measured, 120)
    narrow = progress_line(sample, 50)
    assert len(narrow) <= 50
    assert "56%" in narrow and narrow.endswith("1.0 s")  # figures dropped, not time


def test_tty_display_redraws_one_line() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, is_tty=True, width=lambda: 100)
    first = Sample.from_info(MigrationInfo.from_wire(RECORDED_ACTIVE), 1.011)
    display.show(first)
    display.show(Sample(time=1.2, status="cancelling"))
    display.finish()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    # The shorter second line blanks out what is left of the first.
    last = text.split("\r")[-1].rstrip("\n")
    assert len(last) == len(progress_line(first, 99))


def test_plain_display_writes_periodic_lines_and_status_changes() -> None:
    now = [0.0]
    stream = io.StringIO()
    display = ProgressDisplay(
        stream, is_tty=False, plain_interval=1.0, clock=lambda: now[0]
    )
    for step in range(5):  # 0.0 .. 0.8 s: only the first is due
        now[0] = step * 0.2
        display.show(Sample(time=now[0], status="active"))
    now[0] = 0.9
    display.show(Sample(time=0.9, status="completed"))  # a status change: shown
    now[0] = 2.0
    display.show(Sample(time=2.0, status="completed"))  # due again
    lines = stream.getvalue().splitlines()
    assert lines == [
        plain_line(Sample(time=0.0, status="active")),
        plain_line(Sample(time=0.9, status="completed")),
        plain_line(Sample(time=2.0, status="completed")),
    ]
    assert "\r" not in stream.getvalue()


def test_summary_of_a_completed_migration() -> None:
    lines = summary_lines(MigrationInfo.from_wire(RECORDED_COMPLETED), 3)
    table = dict(line.split(":", 1) for line in lines)
    table = {name: value.strip() for name, value in table.items()}
    assert table["status"] == "completed"
    assert table["total time"] == "1734 ms"
    assert table["downtime"] == "33 ms (the source's figure, until its switchover)"
    assert table["transferred"] == "63.5 MiB (66623020 B)"
    assert table["throughput"] == "308.1 Mbps"
    assert table["dirty-sync-count"] == "3"
    assert table["passes (events)"] == "3"
    assert "error" not in table


def test_summary_of_a_failed_migration_has_the_error() -> None:
    lines = summary_lines(MigrationInfo.from_wire(RECORDED_FAILED))
    assert lines[0].split() == ["status:", "failed"]
    assert lines[1].endswith(str(RECORDED_FAILED["error-desc"]))


def test_the_dirty_rate_is_known_after_a_sync_a_second_past_the_first() -> None:
    """As QEMU computes it (a sync ending a period of more than 1 s), from the
    MIGRATION_PASS timestamps when events are on."""
    timeline = Timeline(marks=[Mark(0.01, MarkKind.PASS, "1")])
    assert not timeline.dirty_rate_measured(5.0, 1)
    timeline.marks.append(Mark(0.9, MarkKind.PASS, "2"))  # within the period
    assert not timeline.dirty_rate_measured(5.0, 2)
    timeline.marks.append(Mark(1.2, MarkKind.PASS, "3"))
    assert timeline.dirty_rate_measured(5.0, 3)


def test_the_dirty_rate_is_known_from_polls_without_events() -> None:
    """A sync first seen at a poll happened after the poll before it: known only
    when that earlier poll is already more than 1 s after pass 1 was seen."""
    timeline = Timeline(
        samples=[
            Sample(0.1, "active", total=1, dirty_sync_count=1),
            Sample(0.6, "active", total=1, dirty_sync_count=1),
        ]
    )
    assert not timeline.dirty_rate_measured(1.4, 2)  # the sync may be at 0.7 s
    timeline.samples.append(Sample(1.4, "active", total=1, dirty_sync_count=2))
    assert not timeline.dirty_rate_measured(2.0, 2)
    assert timeline.dirty_rate_measured(2.0, 3)  # after the poll at 1.4 s
    # a non-zero rate is known whatever the timeline says
    busy = MigrationInfo.from_wire(
        {**RECORDED_ACTIVE, "ram": {**RECORDED_ACTIVE["ram"], "dirty-pages-rate": 9}}  # type: ignore[dict-item]
    )
    assert Sample.from_info(busy, 0.5).dirty_rate_known


def test_summary_explains_downtime_and_the_guests_pause() -> None:
    lines = summary_lines(
        MigrationInfo.from_wire(RECORDED_COMPLETED),
        3,
        paused=0.0357,
        postcopy_at=1.25,
        destination_error="UUID received is a and local is b",
    )
    table = {n: v.strip() for n, v in (line.split(":", 1) for line in lines)}
    assert table["downtime"] == (
        "33 ms (the source's figure, until the switch to postcopy)"
    )
    assert table["guest paused"] == (
        "36 ms (STOP on the source to RESUME on the destination)"
    )
    assert table["postcopy"].startswith("from 1.2 s: the guest ran on the destination")
    assert table["destination error"] == "UUID received is a and local is b"


def test_call_limits_take_the_tightest_bound() -> None:
    now = [100.0]
    limits = CallLimits(5.0, 30.0, 15.0, clock=lambda: now[0])
    assert limits.limit() == (5.0, "before --timeout 5 ran out")
    now[0] = 104.0
    assert limits.limit() == pytest.approx((1.0, "before --timeout 5 ran out"))
    assert not limits.expired()
    now[0] = 106.0
    assert limits.expired() and limits.limit()[0] == 0.01
    limits.cancel_sent()  # the cancel gets its own grace
    assert limits.limit() == (15.0, "within the 15 s allowed after migrate_cancel")
    now[0] = 121.5
    assert limits.grace_over()
    unbounded = CallLimits(None, 30.0, 15.0, clock=lambda: now[0])
    now[0] = 10_000.0
    assert unbounded.limit() == (30.0, "within 30 s") and not unbounded.expired()


def test_postcopy_after_turns_postcopy_ram_on() -> None:
    options = migrate.parse_options(["unix:/a", "unix:/b", "--postcopy-after", "2"])
    assert options.postcopy_after == 2
    wanted = {c.capability: c.state for c in options.capabilities}
    assert wanted[MigrationCapability.POSTCOPY_RAM] is True
    with pytest.raises(UsageError, match="--postcopy-after needs --cap postcopy-ram"):
        migrate.parse_options(
            ["unix:/a", "unix:/b", "--postcopy-after", "2"]
            + ["--cap", "postcopy-ram=off"]
        )
    with pytest.raises(UsageError, match="--postcopy-after 0: expected a pass"):
        migrate.parse_options(["unix:/a", "unix:/b", "--postcopy-after", "0"])


# -- plot data -----------------------------------------------------------------------


def test_plot_series_from_recorded_samples() -> None:
    timeline = recorded_timeline()
    series = plot_series(timeline, title="t")
    samples = timeline.samples
    assert series.times == [s.time for s in samples]
    assert series.remaining_mib == [s.remaining / MIB for s in samples]
    assert series.reported_mbps == [s.mbps for s in samples]
    # Measured throughput: bytes between polls at least MIN_WINDOW apart (the poll
    # 2 ms after another one is folded into the next window).
    assert MIN_WINDOW > 0.512 - 0.510
    assert series.measured_times == [0.258, 0.510, 1.011, 1.734]
    pairs = [(0, 1), (1, 2), (2, 4), (4, 5)]
    expected = [
        (samples[b].transferred - samples[a].transferred)
        * 8
        / (samples[b].time - samples[a].time)
        / 1e6
        for a, b in pairs
    ]
    assert series.measured_mbps == pytest.approx(expected)
    assert series.passes == [(0.0008, 1), (1.7012, 2), (1.730, 3)]
    assert (series.stop, series.completed, series.resumed) == (1.701, 1.733, 1.751)
    assert series.device is None


def test_pass_labels_that_crowd_share_one_label() -> None:
    """The passes at the end of a run come milliseconds apart: their labels were
    drawn over each other."""
    series = plot_series(recorded_timeline())
    assert pass_labels(series) == [(0.0008, "pass 1"), (1.7012, "passes 2-3")]
    crowded = Timeline(
        samples=recorded_timeline().samples,
        marks=[Mark(0.2 * n, MarkKind.PASS, str(n)) for n in range(1, 6)]
        + [Mark(1.70 + 0.005 * n, MarkKind.PASS, str(n)) for n in range(6, 12)],
    )
    labels = pass_labels(plot_series(crowded))
    assert labels[-1] == (1.73, "passes 6-11")
    # no two labels closer than the gap (5 % of the 1.734 s axis)
    times = [t for t, _ in labels]
    assert all(b - a >= 0.05 * 1.734 for a, b in itertools.pairwise(times))


def test_postcopy_is_shaded_as_postcopy_and_the_pause_ends_at_resume() -> None:
    timeline = recorded_timeline()
    timeline.marks = [
        Mark(0.0008, MarkKind.PASS, "1"),
        Mark(1.000, MarkKind.STATUS, "postcopy-active"),
        Mark(1.001, MarkKind.STOP, "source stopped"),
        Mark(1.002, MarkKind.PASS, "2"),
        Mark(1.005, MarkKind.RESUME, "destination resumed"),
        Mark(1.733, MarkKind.STATUS, "completed"),
    ]
    series = plot_series(timeline)
    assert series.postcopy == 1.000
    assert series.paused_until == 1.005  # not the completion, 0.7 s later
    caption = describe_plot(series)
    assert "postcopy from 1.0 s" in caption
    assert "guest paused 4 ms (STOP to RESUME)" in caption
    assert "1.7" not in caption.split("guest paused")[1]


def test_plot_title_names_what_was_migrated() -> None:
    run = migrate.MigrationRun(
        migrate.parse_options(["unix:/run/src.qmp", "localhost:4444"]),
        io.StringIO(),
        io.StringIO(),
    )
    run.uri = "tcp:127.0.0.1:40123"
    run.state.timeline = recorded_timeline()
    assert run.plot_title() == (
        "64.5 MiB of guest RAM from unix:/run/src.qmp to tcp:localhost:4444, over "
        "tcp:127.0.0.1:40123"
    )


def test_plot_series_completion_from_samples_without_events() -> None:
    timeline = recorded_timeline()
    timeline.marks = []
    series = plot_series(timeline)
    assert series.completed == 1.734 and series.stop is None and series.passes == []


def test_write_png_of_recorded_samples(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "timeline.png"
    write_png(plot_series(recorded_timeline()), path)
    check_png(path)


def check_png(path: Path) -> None:
    """A real PNG of the size write_png draws (10x6 in at 100 dpi) with content."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])  # IHDR follows the signature
    assert (width, height) == (1000, 600)
    assert 15_000 < len(data) < 1_000_000


def test_the_command_does_not_import_matplotlib() -> None:
    code = "import sys, qapigen_vm.tools.migrate; " "print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr


def test_without_matplotlib_plot_is_refused_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if absent
    assert migrate.main(["unix:/a", "unix:/b", "--plot", "t.png"]) == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err
    with pytest.raises(PlotUnavailable):
        write_png(plot_series(recorded_timeline()), Path("unused.png"))


# -- command line --------------------------------------------------------------------


def test_parse_address_takes_the_syntax_every_tool_shares() -> None:
    assert parse_address("unix:/run/x.sock", "source") == "/run/x.sock"
    assert parse_address("/run/x.sock", "source") == "/run/x.sock"  # as compare
    assert parse_address("tcp:localhost:4444", "source") == ("localhost", 4444)
    assert parse_address("localhost:4444", "source") == ("localhost", 4444)
    assert parse_address("tcp:[::1]:4444", "source") == ("::1", 4444)
    for bad in ("tcp:host", "tcp:host:99999", "unix:", ""):
        with pytest.raises(UsageError) as caught:
            parse_address(bad, "source")
        # the runtime's own words, after the side it is about
        with pytest.raises(AddressError) as runtime:
            runtime_parse_address(bad)
        assert str(caught.value) == f"source: {runtime.value}"


def test_parse_capability() -> None:
    status = parse_capability("xbzrle=on")
    assert (status.capability, status.state) == (MigrationCapability.XBZRLE, True)
    assert parse_capability("events=off").state is False
    with pytest.raises(UsageError, match="unknown capability 'xbzrl'.*xbzrle"):
        parse_capability("xbzrle".rstrip("e") + "=on")
    with pytest.raises(UsageError, match="expected on or off, got 'maybe'"):
        parse_capability("events=maybe")
    with pytest.raises(UsageError, match="expected NAME=VALUE"):
        parse_capability("events")


def test_parse_parameters_follow_the_schema_types() -> None:
    parameters = parse_parameters(
        [
            "max-bandwidth=32M",
            "downtime-limit=300",
            "multifd-compression=zlib",
            "tls-hostname=example",
        ]
    )
    assert parameters == MigrateSetParameters(
        max_bandwidth=32 << 20,
        downtime_limit=300,
        multifd_compression=MultiFDCompression.ZLIB,
        tls_hostname="example",
    )
    assert parse_parameters([]) is None
    with pytest.raises(UsageError, match="unknown parameter 'max-bandwith'"):
        parse_parameters(["max-bandwith=1"])
    with pytest.raises(UsageError, match="downtime-limit.*expected int"):
        parse_parameters(["downtime-limit=soon"])
    with pytest.raises(UsageError, match="multifd-compression"):
        parse_parameters(["multifd-compression=lz4"])


def test_bad_command_lines_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cases = {
        ("unix:/a", "unix:/b", "--cap", "bogus=on"): "unknown capability 'bogus'",
        ("unix:/a",): "a destination QMP address is needed",
        ("tcp:a", "unix:/b"): "source: QMP address 'tcp:a': expected tcp:HOST:PORT",
        ("unix:/a", "unix:/b", "--interval", "0"): "--interval 0.0: expected",
    }
    for argv, message in cases.items():
        assert migrate.main(list(argv)) == 2
        err = capsys.readouterr().err
        assert err.startswith("qapigen-migrate: ") and message in err
        assert "Traceback" not in err


def test_unreachable_source_exits_1_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nobody.sock"
    assert migrate.main([f"unix:{missing}", "--uri", "tcp:127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert f"qapigen-migrate: source: cannot connect to unix:{missing}" in err


class RepliesInTurn:
    """A transport that answers each command with the next recorded reply."""

    def __init__(self, replies: list[dict[str, object]]) -> None:
        self.replies = replies
        self.commands: list[str] = []

    async def execute(
        self,
        name: str,
        arguments: dict[str, object] | None = None,
        *,
        oob: bool = False,
        fds: Sequence[int] = (),
    ) -> object:
        self.commands.append(name)
        return self.replies.pop(0)

    def events(self) -> AsyncIterator[QMPEvent]:
        raise NotImplementedError

    async def wait_for(
        self,
        name: str,
        predicate: Callable[[QMPEvent], bool] | None = None,
        timeout: float | None = None,
    ) -> QMPEvent:
        raise NotImplementedError

    def clear_events(self) -> list[QMPEvent]:
        return []


def test_completed_figures_are_read_again_until_set() -> None:
    """QEMU 7.2 reports completed before total-time and downtime are computed."""
    early = {**RECORDED_COMPLETED, "total-time": 0, "downtime": 0}
    transport = RepliesInTurn([dict(early), dict(RECORDED_COMPLETED)])
    run = migrate.MigrationRun(
        migrate.parse_options(["unix:/src", "--uri", "tcp:127.0.0.1:1"]),
        io.StringIO(),
        io.StringIO(),
    )
    run.source.client = AsyncClient(transport)
    first = MigrationInfo.from_wire(early)
    run.state.timeline.samples.append(Sample.from_info(first, 1.7))
    settled = asyncio.run(run._settled(first))
    assert (settled.total_time, settled.downtime) == (1734, 33)
    assert transport.commands == ["query-migrate", "query-migrate"]
    assert run.state.timeline.samples[-1].mbps == 308.1


# -- the dirtying guest for real QEMU ------------------------------------------------


def test_guest_image_parameters_are_patched() -> None:
    image = build_image(rate=20_000, working_set=64 << 20, ram_size=256 << 20)
    assert len(image) == len(IMAGE) and image[:4] == struct.pack("<I", 0x1BADB002)
    fields = struct.unpack_from("<IIII", image, PARAMETERS_OFFSET)
    assert fields == (20, FIRST_FREE, FIRST_FREE + (64 << 20), FIRST_FREE)
    # Everything else is the assembled program, untouched.
    assert image[:PARAMETERS_OFFSET] == IMAGE[:PARAMETERS_OFFSET]
    assert image[PARAMETERS_OFFSET + 16 :] == IMAGE[PARAMETERS_OFFSET + 16 :]
    # Rates round to whole pages per 1 ms tick, at least one.
    assert struct.unpack_from("<I", build_image(2_600, 1 << 20, 8 << 20), 32) == (3,)
    assert struct.unpack_from("<I", build_image(10, 1 << 20, 8 << 20), 32) == (1,)


def test_guest_image_refuses_what_cannot_run() -> None:
    with pytest.raises(GuestError, match="rate 0"):
        build_image(0, 1 << 20, 64 << 20)
    with pytest.raises(GuestError, match="does not fit"):
        build_image(1000, 63 << 20, 64 << 20)
    with pytest.raises(GuestError, match="at least one page"):
        build_image(1000, 100, 64 << 20)


def test_guest_image_matches_its_assembly_source(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "examples" / "dirty_guest.S"
    if not (shutil.which("as") and shutil.which("objcopy")):
        pytest.skip("binutils (as, objcopy) are not installed")
    subprocess.run(["as", "--32", "-o", str(tmp_path / "g.o"), str(source)], check=True)
    subprocess.run(
        ["objcopy", "-O", "binary", "-j", ".text", str(tmp_path / "g.o")]
        + [str(tmp_path / "g.bin")],
        check=True,
    )
    assert (tmp_path / "g.bin").read_bytes() == IMAGE


# -- whole migrations ----------------------------------------------------------------


@dataclass
class Pair:
    source: Path  # QMP sockets
    destination: Path


def wait_for_socket(path: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while not accepts_connections(path):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(
                f"{path.name} did not appear: {log.read_text(errors='replace')}"
            )
        time.sleep(0.05)


class Processes:
    """Processes started by a test, always stopped at its end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, command: list[str]) -> Path:
        qmp = self.tmp_path / f"{name}.qmp"
        log = self.tmp_path / f"{name}.log"
        command = [part.replace("QMP", str(qmp)) for part in command]
        with log.open("wb") as errors:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=errors, stderr=errors
            )
        self.running.append(process)
        wait_for_socket(qmp, process, log)
        return qmp

    def stop(self) -> None:
        for process in self.running:
            process.terminate()
        for process in self.running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop()


QEMU_RAM_MIB = 64


def qemu_command(ram_file: Path, extra: list[str]) -> list[str]:
    binary = shutil.which("qemu-system-x86_64") or "qemu-system-x86_64"
    return [
        binary,
        "-M",
        "pc,memory-backend=ram0",
        "-accel",
        "tcg",
        "-m",
        str(QEMU_RAM_MIB),
        "-nodefaults",
        "-display",
        "none",
        "-object",
        f"memory-backend-file,id=ram0,size={QEMU_RAM_MIB}M,mem-path={ram_file},"
        "share=off",
        "-qmp",
        "unix:QMP,server=on,wait=off",
        *extra,
    ]


def start_qemu(processes: Processes, name: str, extra: list[str]) -> Path:
    """A QEMU whose guest RAM is a private copy of a file: random bytes on the
    source (so every page is sent), zeros elsewhere."""
    ram_file = processes.tmp_path / f"{name}.ram"
    with ram_file.open("wb") as out:
        if name == "source":
            for _ in range(QEMU_RAM_MIB):
                out.write(os.urandom(1 << 20))
        else:
            out.truncate(QEMU_RAM_MIB << 20)
    return processes.start(name, qemu_command(ram_file, extra))


def vm_command(extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "qapigen_vm.main", "-m", "64M"] + [
        "-display",
        "none",
        "-qmp",
        "unix:QMP,server=on,wait=off",
        *extra,
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_tool(*argv: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qapigen_vm.tools.migrate", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def summary(stdout: str) -> dict[str, str]:
    table = {}
    for line in stdout.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            table[name] = value.strip()
    return table


def run_status(qmp: Path) -> str:
    with SyncQMPClient() as client:
        client.connect(str(qmp))
        reply = client.execute("query-status")
    assert isinstance(reply, dict)
    return str(reply["status"])


def check_completed(result: subprocess.CompletedProcess[str], pair: Pair) -> None:
    assert result.returncode == 0, result.stderr
    table = summary(result.stdout)
    assert table["status"] == "completed"
    for name in ("total time", "downtime", "transferred", "throughput"):
        assert name in table
    assert int(table["dirty-sync-count"]) >= 2  # the setup sync and the final one
    assert int(table["passes (events)"]) == int(table["dirty-sync-count"])
    assert "Traceback" not in result.stderr
    # Not a TTY: plain lines, the last one the final status.
    lines = result.stderr.splitlines()
    assert lines and "completed" in lines[-1] and "\r" not in result.stderr
    assert run_status(pair.source) == "postmigrate"
    assert run_status(pair.destination) == "running"


@pytest.fixture
def qemu_pair(processes: Processes) -> Pair:
    return Pair(
        start_qemu(processes, "source", []),
        start_qemu(processes, "destination", ["-incoming", "tcp:127.0.0.1:0"]),
    )


@pytest.fixture
def vm_pair(processes: Processes) -> Pair:
    workload = "rate=5000,working-set=16M,pattern=random,seed=7"
    port = free_port()
    return Pair(
        processes.start("source", vm_command(["-workload", workload])),
        processes.start(
            "destination", vm_command(["-incoming", f"tcp:127.0.0.1:{port}"])
        ),
    )


@pytest.mark.qemu
@pytest.mark.timeout(120)
def test_qemu_migration_completes_with_summary_and_plot(
    qemu_pair: Pair, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "timeline.png"
    result = run_tool(
        f"unix:{qemu_pair.source}",
        f"unix:{qemu_pair.destination}",
        "--cap",
        "events=on",
        "--param",
        "max-bandwidth=64M",
        "--param",
        "downtime-limit=300",
        "--plot",
        str(plot),
    )
    check_completed(result, qemu_pair)
    table = summary(result.stdout)
    # The random pages crossed the socket as normal pages (a few firmware pages are
    # zero): nearly all of the guest's 64 MiB.
    assert int(table["normal pages"]) >= 0.95 * (QEMU_RAM_MIB << 20) // 4096
    check_png(plot)
    assert table["timeline"].startswith(str(plot))


@pytest.mark.qemu
@pytest.mark.timeout(120)
def test_qemu_pause_before_switchover_is_continued(qemu_pair: Pair) -> None:
    result = run_tool(
        f"unix:{qemu_pair.source}",
        f"unix:{qemu_pair.destination}",
        "--cap",
        "pause-before-switchover=on",
        "--interval",
        "0.1",
    )
    check_completed(result, qemu_pair)
    # Plain lines read "[  705 ms] pre-switchover  70% ...".
    statuses = [
        line.split("] ", 1)[1].split()[0]
        for line in result.stderr.splitlines()
        if line.startswith("[")
    ]
    assert "pre-switchover: sending migrate-continue" in result.stderr
    assert statuses.index("pre-switchover") < statuses.index("completed")


@pytest.mark.qemu
@pytest.mark.timeout(120)
def test_qemu_dirtying_guest_migrates_and_keeps_running(
    processes: Processes,
) -> None:
    working_set = 16 << 20
    kernel = processes.tmp_path / "guest.bin"
    kernel.write_bytes(build_image(5000, working_set, QEMU_RAM_MIB << 20))
    guest = ["-kernel", str(kernel)]
    binary = shutil.which("qemu-system-x86_64") or "qemu-system-x86_64"
    machine = [binary, "-M", "pc", "-accel", "tcg", "-m", str(QEMU_RAM_MIB)]
    machine += ["-nodefaults", "-display", "none", "-qmp"]
    machine += ["unix:QMP,server=on,wait=off", *guest]
    pair = Pair(
        processes.start("source", machine),
        processes.start("destination", machine + ["-incoming", "tcp:127.0.0.1:0"]),
    )
    last_page = FIRST_FREE + working_set - 4096
    wait_until_written(str(pair.source), last_page)
    result = run_tool(f"unix:{pair.source}", f"unix:{pair.destination}")
    check_completed(result, pair)
    # Only the guest's writes make these pages non-zero: all of them crossed over.
    assert int(summary(result.stdout)["normal pages"]) >= working_set // 4096
    with SyncQMPClient() as client:
        client.connect(str(pair.destination))
        before = read_guest_byte(client, last_page)
        assert before != 0  # the destination has the guest's memory
        deadline = time.monotonic() + 10
        while read_guest_byte(client, last_page) == before:
            assert time.monotonic() < deadline, "the guest does not run there"
            time.sleep(0.1)


@pytest.mark.qemu
@pytest.mark.timeout(120)
def test_qemu_defer_destination_gets_migrate_incoming(processes: Processes) -> None:
    pair = Pair(
        start_qemu(processes, "source", []),
        start_qemu(processes, "destination", ["-incoming", "defer"]),
    )
    result = run_tool(f"unix:{pair.source}", f"unix:{pair.destination}")
    assert "destination listens on tcp:127.0.0.1:" in result.stderr
    check_completed(result, pair)


@pytest.mark.qemu
@pytest.mark.timeout(60)
def test_qemu_failure_to_a_closed_port(processes: Processes) -> None:
    source = start_qemu(processes, "source", [])
    port = free_port()  # nobody listens on it
    result = run_tool(f"unix:{source}", "--uri", f"tcp:127.0.0.1:{port}")
    assert result.returncode == 1
    table = summary(result.stdout)
    assert table["status"] == "failed"
    assert (
        f"Failed to connect to '127.0.0.1:{port}': Connection refused" in result.stdout
    )
    assert run_status(source) == "running"


@pytest.mark.qemu
@pytest.mark.timeout(120)
def test_qemu_interrupt_cancels_the_migration(qemu_pair: Pair) -> None:
    # 64 MiB at 4 MiB/s takes ~16 s: time enough to interrupt it.
    process = subprocess.Popen(
        [sys.executable, "-m", "qapigen_vm.tools.migrate"]
        + [f"unix:{qemu_pair.source}", f"unix:{qemu_pair.destination}"]
        + ["--param", "max-bandwidth=4M", "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if " active " in line:
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1
    assert summary(stdout)["status"] == "cancelled"
    assert "interrupted: cancelling the migration" in stderr
    assert run_status(qemu_pair.source) == "running"


@pytest.mark.timeout(120)
def test_vm_migration_completes_with_summary_and_plot(
    vm_pair: Pair, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "timeline.png"
    result = run_tool(
        f"unix:{vm_pair.source}", f"unix:{vm_pair.destination}", "--plot", str(plot)
    )
    check_completed(result, vm_pair)
    check_png(plot)


@pytest.mark.timeout(60)
def test_vm_failure_to_a_closed_port(processes: Processes) -> None:
    source = processes.start("source", vm_command([]))
    port = free_port()
    result = run_tool(f"unix:{source}", "--uri", f"tcp:127.0.0.1:{port}")
    assert result.returncode == 1
    assert (
        f"Failed to connect to '127.0.0.1:{port}': Connection refused" in result.stdout
    )
    assert run_status(source) == "running"


def test_qmp_error_from_the_destination_is_reported(
    processes: Processes,
) -> None:
    """A destination that is not waiting for a migration: QEMU's own error text."""
    source = processes.start("source", vm_command([]))
    destination = processes.start("destination", vm_command([]))
    result = run_tool(f"unix:{source}", f"unix:{destination}")
    assert result.returncode == 1
    assert (
        "qapigen-migrate: destination: migrate-incoming: '-incoming' was not "
        "specified on the command line" in result.stderr
    )
    assert "Traceback" not in result.stderr


# -- peers that stop answering, and what the tool sets up for both sides ------------


class StalledPeer:
    """A unix socket that stops answering at `stage`: "greeting" (says nothing),
    "negotiation" (greets, never answers qmp_capabilities) or "command" (negotiates,
    then never answers)."""

    GREETING = b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, '
    GREETING += b'"package": ""}, "capabilities": []}}\r\n'

    def __init__(self, path: Path, stage: str) -> None:
        self.stage = stage
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.clients: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.clients.append(client)
            threading.Thread(target=self._talk, args=(client,), daemon=True).start()

    def _talk(self, client: socket.socket) -> None:
        try:
            if self.stage == "greeting":
                return
            client.sendall(self.GREETING)
            reader = client.makefile("rb")
            reader.readline()  # qmp_capabilities
            if self.stage == "command":
                client.sendall(b'{"return": {}}\r\n')
            while reader.readline():  # read on, never answer
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()
        for client in self.clients:
            client.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "stage, message",
    [
        ("greeting", r"destination: timed out after [\d.]+ s waiting for the QMP "
         r"greeting from unix:"),
        ("negotiation", r"destination: timed out after [\d.]+ s waiting for the "
         r"reply to qmp_capabilities from unix:"),
        ("command", r"destination: query-migrate: no reply before --timeout 3 ran "
         r"out"),
    ],
)  # fmt: skip
def test_timeout_bounds_every_qmp_call(
    processes: Processes, tmp_path: Path, stage: str, message: str
) -> None:
    """--timeout 5 used to wait 60 s on a destination that stopped answering."""
    source = processes.start("source", vm_command([]))
    stalled = StalledPeer(tmp_path / "stalled.qmp", stage)
    try:
        started = time.monotonic()
        result = run_tool(
            f"unix:{source}", str(tmp_path / "stalled.qmp"), "--timeout", "3"
        )
        elapsed = time.monotonic() - started
    finally:
        stalled.close()
    assert result.returncode == 1, result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 3 + 8  # the bound, and a Python start-up or two
    assert run_status(source) == "running"  # nothing was started there


@pytest.mark.timeout(120)
def test_vm_multifd_to_a_destination_listening_since_start(
    processes: Processes,
) -> None:
    """-incoming tcp:... listens before qapigen-migrate sets multifd there: the
    destination must read the capability when the source connects, as QEMU does."""
    port = free_port()
    pair = Pair(
        processes.start("source", vm_command([])),
        processes.start(
            "destination", vm_command(["-incoming", f"tcp:127.0.0.1:{port}"])
        ),
    )
    result = run_tool(
        f"unix:{pair.source}",
        f"unix:{pair.destination}",
        "--cap",
        "multifd=on",
        "--param",
        "multifd-channels=3",
    )
    check_completed(result, pair)


@pytest.mark.qemu
@pytest.mark.timeout(120)
def test_qemu_multifd_to_a_destination_listening_since_start(
    qemu_pair: Pair,
) -> None:
    """QEMU 7.2 takes multifd on a destination that already listens (the tool
    sets it there before migrate)."""
    result = run_tool(
        f"unix:{qemu_pair.source}",
        f"unix:{qemu_pair.destination}",
        "--cap",
        "multifd=on",
        "--param",
        "multifd-channels=2",
    )
    check_completed(result, qemu_pair)


def test_multifd_over_a_one_way_uri_is_refused_up_front(processes: Processes) -> None:
    source = processes.start("source", vm_command([]))
    result = run_tool(
        f"unix:{source}", "--uri", "exec:cat > /dev/null", "--cap", "multifd=on"
    )
    assert result.returncode == 1
    assert (
        "qapigen-migrate: --uri exec:cat > /dev/null: multifd needs a tcp: or unix: "
        "URI" in result.stderr
    )
    with SyncQMPClient() as client:
        client.connect(str(source))
        caps = client.execute("query-migrate-capabilities")
    assert isinstance(caps, list)
    assert {c["capability"]: c["state"] for c in caps}["multifd"] is False


def test_a_destination_that_is_not_waiting_is_refused_up_front(
    processes: Processes,
) -> None:
    """One that already took a migration: refused before anything is set."""
    port = free_port()
    first = processes.start(
        "destination", vm_command(["-incoming", f"tcp:127.0.0.1:{port}"])
    )
    source = processes.start("source", vm_command([]))
    assert run_tool(f"unix:{source}", f"unix:{first}").returncode == 0
    other = processes.start("other", vm_command([]))
    result = run_tool(f"unix:{other}", f"unix:{first}")
    assert result.returncode == 1
    assert (
        "qapigen-migrate: destination: its migration status is completed: it is "
        "not waiting for a new migration" in result.stderr
    )


@pytest.mark.timeout(120)
def test_vm_destination_error_is_reported(processes: Processes) -> None:
    """validate-uuid with different UUIDs: the destination says why it refused."""
    port = free_port()
    source_uuid = "11111111-2222-3333-4444-555555555555"
    destination_uuid = "99999999-2222-3333-4444-555555555555"
    source = processes.start("source", vm_command(["-uuid", source_uuid]))
    destination = processes.start(
        "destination",
        vm_command(["-uuid", destination_uuid, "-incoming", f"tcp:127.0.0.1:{port}"]),
    )
    result = run_tool(
        f"unix:{source}", f"unix:{destination}", "--cap", "validate-uuid=on"
    )
    assert result.returncode == 1
    reason = f"UUID received is {source_uuid} and local is {destination_uuid}"
    assert summary(result.stdout)["destination error"] == reason
    assert f"qapigen-migrate: the destination failed: {reason}" in result.stderr
    assert run_status(source) == "running"


@pytest.mark.timeout(120)
def test_vm_postcopy_after_a_pass(processes: Processes, tmp_path: Path) -> None:
    """A guest that dirties faster than the link: the tool switches to postcopy at
    pass 2, and downtime and the guest's pause tell the same story."""
    pytest.importorskip("matplotlib")
    port = free_port()
    workload = "rate=20000,working-set=32M,pattern=random,seed=3"
    pair = Pair(
        processes.start("source", vm_command(["-workload", workload])),
        processes.start(
            "destination", vm_command(["-incoming", f"tcp:127.0.0.1:{port}"])
        ),
    )
    plot = tmp_path / "postcopy.png"
    result = run_tool(
        f"unix:{pair.source}",
        f"unix:{pair.destination}",
        "--param",
        "max-bandwidth=32M",
        "--postcopy-after",
        "2",
        "--plot",
        str(plot),
    )
    check_completed(result, pair)
    table = summary(result.stdout)
    assert "pass 2: switching to postcopy (migrate-start-postcopy)" in result.stderr
    assert table["postcopy"].startswith("from ")
    downtime = int(table["downtime"].split()[0])
    paused = int(table["guest paused"].split()[0])
    total = int(table["total time"].split()[0])
    # the pause is the switch (plus event delivery), not the whole postcopy phase
    assert paused <= downtime + 500 and paused < total / 2, table
    assert "postcopy from" in table["timeline"]
    assert "guest paused" in table["timeline"]
    check_png(plot)


@pytest.mark.timeout(120)
def test_vm_timeout_cancels_a_migration_that_does_not_end(
    processes: Processes,
) -> None:
    port = free_port()
    workload = "rate=5000,working-set=16M,pattern=random,seed=7"
    pair = Pair(
        processes.start("source", vm_command(["-workload", workload])),
        processes.start(
            "destination", vm_command(["-incoming", f"tcp:127.0.0.1:{port}"])
        ),
    )
    started = time.monotonic()
    result = run_tool(
        f"unix:{pair.source}",
        f"unix:{pair.destination}",
        "--param",
        "max-bandwidth=1M",  # the guest's 16 MiB of written pages take 16 s
        "--timeout",
        "3",
    )
    assert time.monotonic() - started < 3 + 15
    assert result.returncode == 1
    assert summary(result.stdout)["status"] == "cancelled"
    assert "no end after 3 s: cancelling the migration" in result.stderr
    assert run_status(pair.source) == "running"

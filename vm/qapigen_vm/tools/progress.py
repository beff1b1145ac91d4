"""The live progress line, the plain periodic lines, and the final summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from qapigen_migration.types import MigrationInfo

from .timeline import Sample

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(count: int) -> str:
    """`count` bytes in binary units with three significant digits: ``61.2 MiB``."""
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """``850 ms`` under a second, ``12.3 s`` under a minute, then ``2m05s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def progress_bar(fraction: float, width: int) -> str:
    """``[#####.....]`` with `width` cells inside the brackets."""
    width = max(1, width)
    filled = round(min(1.0, max(0.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def progress_fields(sample: Sample) -> list[str]:
    """The figures shown for a sample, most important first (cut from the end)."""
    fields = [f"{sample.status:<9}", f"{sample.fraction_done * 100:3.0f}%"]
    if sample.has_ram:
        fields += [
            f"pass {sample.pass_shown}",
            f"sent {format_bytes(sample.transferred)}",
            f"left {format_bytes(sample.remaining)}",
            f"{sample.mbps:.0f} Mbps",
            # QEMU reads 0 until it has measured the rate: not the same as idle
            (
                f"dirty {format_bytes(sample.dirty_bytes_rate)}/s"
                if sample.dirty_rate_known
                else "dirty —"
            ),
        ]
    fields.append(format_duration(sample.time))
    return fields


def progress_line(sample: Sample, width: int = 100) -> str:
    """One line of at most `width` characters: a bar, then as many figures as fit."""
    fields = progress_fields(sample)
    bar_width = max(10, min(30, width // 4))
    while True:
        text = " ".join([progress_bar(sample.fraction_done, bar_width)] + fields)
        if len(text) <= width or len(fields) <= 2:
            return text[:width]
        fields.pop(-2)  # keep the elapsed time at the end, drop the least important


def plain_line(sample: Sample) -> str:
    """The line written when the output is not a terminal (a log, a pipe)."""
    return f"[{format_duration(sample.time):>8}] " + " ".join(
        progress_fields(sample)[:-1]
    )


class ProgressDisplay:
    """Writes samples to `stream`: redraws one line on a terminal, or appends a line
    every `plain_interval` seconds (and at every status change) otherwise."""

    def __init__(
        self,
        stream: TextIO,
        *,
        is_tty: bool,
        width: Callable[[], int] = lambda: 100,
        plain_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._is_tty = is_tty
        self._width = width
        self._plain_interval = plain_interval
        self._clock = clock
        self._last_plain: float | None = None
        self._last_status: str | None = None
        self._drawn = 0

    def show(self, sample: Sample) -> None:
        if self._is_tty:
            # One column short: writing the last column makes some terminals wrap.
            line = progress_line(sample, max(20, self._width() - 1))
            pad = " " * max(0, self._drawn - len(line))
            self._stream.write("\r" + line + pad)
            self._drawn = len(line)
        else:
            now = self._clock()
            due = self._last_plain is None or now - self._last_plain >= (
                self._plain_interval
            )
            if due or sample.status != self._last_status:
                self._stream.write(plain_line(sample) + "\n")
                self._last_plain = now
        self._last_status = sample.status
        self._stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (a notice), without breaking the progress line."""
        self.finish()
        self._stream.write(text + "\n")
        self._stream.flush()

    def finish(self) -> None:
        """End the redrawn line so that what follows starts on a fresh one."""
        if self._is_tty and self._drawn:
            self._stream.write("\n")
            self._drawn = 0
        self._stream.flush()


def summary_lines(
    info: MigrationInfo,
    pass_count: int | None = None,
    *,
    paused: float | None = None,
    postcopy_at: float | None = None,
    destination_error: str | None = None,
) -> list[str]:
    """The final report from the source's last `query-migrate` reply.

    `paused`: seconds from STOP on the source to RESUME on the destination (the
    events' timestamps); `postcopy_at`: when the switch to postcopy came;
    `destination_error`: why the destination failed, when it said so.

    QEMU's downtime is measured on the source (until the switchover: the end of the
    stream in precopy, the switch itself in postcopy), the pause from the events, so
    the second also holds the destination's own start; in postcopy neither holds the
    time the guest then runs on the destination while pages still arrive.
    """
    status = "none" if info.status is None else info.status.value
    rows: list[tuple[str, str]] = [("status", status)]
    if info.error_desc is not None:
        rows.append(("error", info.error_desc))
    if destination_error is not None:
        rows.append(("destination error", destination_error))
    if info.total_time is not None:
        rows.append(("total time", f"{info.total_time} ms"))
    if info.setup_time is not None:
        rows.append(("setup time", f"{info.setup_time} ms"))
    if info.downtime is not None:
        until = (
            "the switch to postcopy" if postcopy_at is not None else "its switchover"
        )
        rows.append(
            ("downtime", f"{info.downtime} ms (the source's figure, until {until})")
        )
    if paused is not None:
        rows.append(
            (
                "guest paused",
                f"{paused * 1000:.0f} ms (STOP on the source to RESUME on the "
                "destination)",
            )
        )
    if postcopy_at is not None:
        rows.append(
            (
                "postcopy",
                f"from {format_duration(postcopy_at)}: the guest ran on the "
                "destination while the rest of its pages came",
            )
        )
    ram = info.ram
    if ram is not None:
        rows += [
            ("transferred", f"{format_bytes(ram.transferred)} ({ram.transferred} B)"),
            ("RAM", format_bytes(ram.total)),
            ("throughput", f"{ram.mbps:.1f} Mbps"),
            ("dirty-sync-count", str(ram.dirty_sync_count)),
            ("zero pages", str(ram.duplicate)),
            ("normal pages", str(ram.normal)),
        ]
    if pass_count is not None:
        rows.append(("passes (events)", str(pass_count)))
    if info.xbzrle_cache is not None:
        rows.append(("xbzrle pages", str(info.xbzrle_cache.pages)))
    width = max(len(name) for name, _ in rows) + 1
    return [f"{name + ':':<{width}} {value}" for name, value in rows]

"""The PNG timeline of a migration: remaining bytes and throughput over time, with the
passes and the switchover marked: red from STOP on the source to RESUME on the
destination (the guest runs nowhere), and a postcopy phase, where the guest already
runs on the destination, in a colour of its own.

`plot_series` computes everything drawn (pure, testable without matplotlib);
`write_png` draws it. matplotlib is imported inside `write_png` only, so that the
command works without it when no plot is asked for.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .progress import format_duration
from .timeline import MarkKind, Timeline

if TYPE_CHECKING:  # for annotations only: matplotlib stays optional at run time
    from matplotlib.axes import Axes

MIB = 1024 * 1024
MIN_WINDOW = 0.1
"""Shortest span (s) the measured throughput is averaged over."""
LABEL_GAP = 0.05
TITLE_WIDTH = 90  # characters per title line that fit the figure's width
"""Pass labels closer than this fraction of the time axis are drawn as one."""


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


@dataclass(frozen=True, slots=True)
class PlotSeries:
    """The numbers the timeline draws; times are seconds since `migrate`."""

    times: list[float] = field(default_factory=list)
    remaining_mib: list[float] = field(default_factory=list)
    reported_mbps: list[float] = field(default_factory=list)
    # Throughput measured between consecutive polls from `transferred`: QEMU's own
    # figure is a 100 ms window, this one averages over the poll interval.
    measured_times: list[float] = field(default_factory=list)
    measured_mbps: list[float] = field(default_factory=list)
    passes: list[tuple[float, int]] = field(default_factory=list)
    stop: float | None = None  # the source's guest stops: downtime starts
    device: float | None = None  # MIGRATION device: device state is being saved
    postcopy: float | None = None  # MIGRATION postcopy-active: the switch
    completed: float | None = None
    resumed: float | None = None  # RESUME on the destination
    title: str = "migration"

    @property
    def paused_until(self) -> float | None:
        """Where the guest runs again: RESUME on the destination, else (no event, a
        destination started with -S) the switch to postcopy or the completion."""
        for moment in (self.resumed, self.postcopy, self.completed):
            if moment is not None and self.stop is not None and moment >= self.stop:
                return moment
        return None


def plot_series(timeline: Timeline, title: str = "migration") -> PlotSeries:
    """What `write_png` draws for `timeline` (samples without RAM figures, such as
    setup or failed, are left out of the curves)."""
    samples = [s for s in timeline.samples if s.has_ram]
    measured_times: list[float] = []
    measured_mbps: list[float] = []
    anchor = samples[0] if samples else None
    for sample in samples[1:]:
        assert anchor is not None
        elapsed = sample.time - anchor.time
        # Polls woken by events can be a few ms apart: a rate over such a sliver is
        # noise, so measure over at least MIN_WINDOW.
        if elapsed < MIN_WINDOW:
            continue
        sent = max(0, sample.transferred - anchor.transferred)
        measured_times.append(sample.time)
        measured_mbps.append(sent * 8 / elapsed / 1e6)
        anchor = sample
    completed = timeline.mark_time(MarkKind.STATUS, "completed")
    if completed is None:
        completed = next(
            (s.time for s in timeline.samples if s.status == "completed"), None
        )
    return PlotSeries(
        times=[s.time for s in samples],
        remaining_mib=[s.remaining / MIB for s in samples],
        reported_mbps=[s.mbps for s in samples],
        measured_times=measured_times,
        measured_mbps=measured_mbps,
        passes=[
            (m.time, int(m.label)) for m in timeline.marks if m.kind is MarkKind.PASS
        ],
        stop=timeline.mark_time(MarkKind.STOP),
        device=timeline.mark_time(MarkKind.STATUS, "device"),
        postcopy=timeline.mark_time(MarkKind.STATUS, "postcopy-active"),
        completed=completed,
        resumed=timeline.mark_time(MarkKind.RESUME),
        title=title,
    )


def write_png(series: PlotSeries, path: Path) -> None:
    """Draw `series` into the PNG `path` (PlotUnavailable without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: render to a file only
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'qapigen[plot]'"
        ) from error

    figure, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(10, 6), constrained_layout=True
    )
    try:
        top.plot(series.times, series.remaining_mib, color="tab:blue", marker=".")
        top.set_ylabel("remaining (MiB)")
        top.set_ylim(bottom=0)
        bottom.plot(
            series.times,
            series.reported_mbps,
            color="tab:green",
            marker=".",
            label="mbps (query-migrate)",
        )
        if series.measured_times:
            bottom.plot(
                series.measured_times,
                series.measured_mbps,
                color="tab:olive",
                linestyle="--",
                label="measured between polls",
            )
        bottom.set_ylabel("throughput (Mbit/s)")
        bottom.set_ylim(bottom=0)
        bottom.set_xlabel("seconds since migrate")
        for axes in (top, bottom):
            _draw_marks(axes, series)
            axes.grid(True, alpha=0.3)
        _label_passes(top, series)
        bottom.legend(loc="upper left", fontsize="small")
        # Long socket paths: wrap rather than run off the figure.
        top.set_title(
            "\n".join(textwrap.wrap(series.title, TITLE_WIDTH, break_on_hyphens=False))
        )
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)


def _draw_marks(axes: Axes, series: PlotSeries) -> None:
    for time, _ in series.passes:
        axes.axvline(time, color="grey", linestyle=":", linewidth=1)
    paused_until = series.paused_until
    if series.stop is not None and paused_until is not None:
        # The guest runs nowhere from STOP to RESUME: what the guest sees as downtime.
        axes.axvspan(series.stop, paused_until, color="tab:red", alpha=0.2)
    if series.postcopy is not None and series.completed is not None:
        # The guest runs on the destination while its missing pages come.
        start = max(series.postcopy, paused_until or series.postcopy)
        axes.axvspan(start, series.completed, color="tab:cyan", alpha=0.15)
    for moment, colour in (
        (series.stop, "tab:red"),
        (series.device, "tab:purple"),
        (series.completed, "black"),
    ):
        if moment is not None:
            axes.axvline(moment, color=colour, linewidth=1.2)


def pass_labels(series: PlotSeries, gap: float = LABEL_GAP) -> list[tuple[float, str]]:
    """Where the pass labels go and what they say: passes closer together than
    `gap` of the time axis (they crowd the end of a run) share one label, "passes
    4-9", at the first of them, so no label is drawn over another."""
    if not series.passes:
        return []
    times = [t for t, _ in series.passes] + series.times
    if series.completed is not None:
        times.append(series.completed)
    span = max(times) - min(*times, 0.0) or 1.0
    groups: list[list[tuple[float, int]]] = []
    for time, number in sorted(series.passes):
        if groups and time - groups[-1][0][0] < gap * span:
            groups[-1].append((time, number))
        else:
            groups.append([(time, number)])
    labels = []
    for group in groups:
        first, last = group[0][1], group[-1][1]
        text = f"pass {first}" if first == last else f"passes {first}-{last}"
        labels.append((group[0][0], text))
    return labels


def _label_passes(axes: Axes, series: PlotSeries) -> None:
    transform = axes.get_xaxis_transform()  # x in data, y in axes fraction
    for order, (time, text) in enumerate(pass_labels(series)):
        # Alternate heights: a long label may reach over the next one.
        axes.text(
            time,
            0.98 - 0.07 * (order % 2),
            f" {text}",
            transform=transform,
            va="top",
            fontsize="small",
            color="grey",
        )
    labels = (
        (series.stop, "STOP", "tab:red"),
        (series.device, "device", "tab:purple"),
        (series.postcopy, "postcopy", "tab:cyan"),
        (series.completed, "completed", "black"),
    )
    for position, (moment, text, colour) in enumerate(labels):
        if moment is not None:
            axes.text(
                moment,
                0.80 - 0.1 * position,
                f" {text}",
                transform=transform,
                va="top",
                fontsize="small",
                color=colour,
            )


def describe(series: PlotSeries) -> str:
    """A one-line caption: duration, the guest's pause and the passes, as the
    timeline shows them."""
    parts = []
    if series.completed is not None:
        parts.append(f"completed at {format_duration(series.completed)}")
    if series.postcopy is not None:
        parts.append(f"postcopy from {format_duration(series.postcopy)}")
    if series.stop is not None and series.resumed is not None:
        if series.resumed >= series.stop:
            pause = format_duration(series.resumed - series.stop)
            parts.append(f"guest paused {pause} (STOP to RESUME)")
    parts.append(f"{len(series.passes)} passes")
    return ", ".join(parts)

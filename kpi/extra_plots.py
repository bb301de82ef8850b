"""Report plots beyond the latency percentile curves: clock estimates over the run, and
latency against offered rate for rate sweeps (as STAC reports latency against throughput).

Both return PNG bytes (matplotlib Agg canvas, no pyplot state) or None when there is nothing
to draw.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def legend_outside(ax: Axes) -> None:
    """The axes' legend to the right of the plotting area, so no curve is drawn under it
    (inside, "upper left" hid the low percentiles of the latency curves in a real run's report
    and "best" still covers a line where every corner has one)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small")


def figure_png(fig: Figure) -> bytes:
    """PNG bytes of ``fig`` laid out tight (its outside legends included)."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def clock_png(histories: Mapping[str, np.ndarray]) -> bytes | None:
    """Offset and drift estimates of every device over the run.

    ``histories``: device name -> estimator history (``rig.clocksync.HISTORY_DTYPE``: columns
    ``time_ns``, ``offset_ns``, ``drift_ppm``, ``state``). Offsets are drawn relative to each
    device's first estimate (the legend gives it), so ±1 s offsets and µs wander share a plot.
    """
    rows = {k: h[np.isfinite(h["offset_ns"])] for k, h in histories.items() if len(h)}
    rows = {k: h for k, h in rows.items() if len(h)}
    if not rows:
        return None
    t0 = min(int(h["time_ns"][0]) for h in rows.values())
    fig = Figure(figsize=(9, 6), dpi=100)
    ax_off, ax_drift = fig.subplots(2, 1, sharex=True)
    for i, (name, h) in enumerate(sorted(rows.items())):
        t = (h["time_ns"].astype(np.int64) - t0) / 1e9
        first = float(h["offset_ns"][0])
        ax_off.plot(
            t, (h["offset_ns"] - first) / 1e3, color=f"C{i % 10}",
            label=f"{name} (offset at start {first / 1e3:,.1f} µs)",
        )  # fmt: skip
        ax_drift.plot(t, h["drift_ppm"], color=f"C{i % 10}", label=name)
        locked = h["state"] == 2
        if (~locked).any():
            ax_off.plot(t[~locked], (h["offset_ns"][~locked] - first) / 1e3, "x",
                        color=f"C{i % 10}", markersize=3)  # fmt: skip
    ax_off.set_ylabel("offset − offset at start (µs)")
    ax_off.legend(loc="best", fontsize="small")
    ax_off.grid(True, alpha=0.3)
    ax_drift.set_ylabel("drift (ppm)")
    ax_drift.set_xlabel("rig time since the first estimate (s); x = not locked")
    ax_drift.grid(True, alpha=0.3)
    return figure_png(fig)


def rate_png(points: Sequence[tuple[float, Mapping[str, object]]]) -> bytes | None:
    """tick_to_trade percentiles against offered rate: ``points`` = (rate_hz, summary)."""
    pts = [(r, s) for r, s in points if isinstance(s.get("p50"), int | float)]
    if not pts:
        return None
    fig = Figure(figsize=(10.5, 5), dpi=100)
    ax = fig.add_subplot()
    rates = [r for r, _ in pts]
    for i, (key, label) in enumerate((("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"))):
        ys = [float(s[key]) if isinstance(s.get(key), int | float) else np.nan for _, s in pts]  # type: ignore[arg-type]
        ax.plot(rates, ys, "o-", color=f"C{i}", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate per venue (ticks/s)")
    ax.set_ylabel("tick_to_trade (µs)")
    ax.grid(True, which="both", alpha=0.3)
    legend_outside(ax)
    return figure_png(fig)


def convergence_png(rounds: Mapping[str, np.ndarray]) -> bytes | None:
    """Objective gap against the centralized optimum and the residuals, by round.

    ``rounds``: columns ``round`` (1-based), ``objective_gap`` (relative) and optionally
    ``primal_res`` / ``dual_res``, one row per (solve, round). Drawn per round number: the
    median and the 90th percentile over the solves that reached that round (log scale; zeros
    are drawn at 1e-16, the bottom of the axis)."""
    rnd = np.asarray(rounds.get("round", []), dtype=np.int64)
    if not len(rnd):
        return None
    fig = Figure(figsize=(10.5, 6), dpi=100)
    ax_gap, ax_res = fig.subplots(2, 1, sharex=True)
    steps = np.unique(rnd)
    floor = 1e-16
    for ax, cols in ((ax_gap, ("objective_gap",)), (ax_res, ("primal_res", "dual_res"))):
        for i, col in enumerate(cols):
            if col not in rounds:
                continue
            vals = np.asarray(rounds[col], dtype=float)
            # rounds with no finite value (e.g. a round's gap unknown) are left out
            ok = np.array([np.isfinite(vals[rnd == r]).any() for r in steps], np.bool_)
            if not ok.any():
                continue
            p50 = np.array([np.nanmedian(vals[rnd == r]) for r in steps[ok]])
            p90 = np.array([np.nanpercentile(vals[rnd == r], 90) for r in steps[ok]])
            ax.plot(steps[ok], np.maximum(p50, floor), color=f"C{i}", label=f"{col} median")
            ax.plot(steps[ok], np.maximum(p90, floor), color=f"C{i}", ls="--",
                    label=f"{col} p90")  # fmt: skip
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        legend_outside(ax)
    ax_gap.set_ylabel("relative gap vs centralized")
    ax_res.set_ylabel("residual")
    ax_res.set_xlabel("round of the solve (solves that reached it)")
    return figure_png(fig)

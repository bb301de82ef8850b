"""Shared helpers of the benches that judge a figure against its target (issue 20).

- :func:`target` / :func:`target_line`: one figure, the reference it was measured against in the
  same run, its interval, the target and a pass / fail mark — the record every section keeps in
  the JSON and the line it prints (``make bench`` prints them all again at the end);
- :func:`run_figures`: what a campaign's ``kpi.json`` says about keeping up (tick_to_trade, the
  coordinator's queueing delay, superseded ticks, stale and other refusals, drops, the health
  verdict);
- :func:`solve_round_trips`: round trips per federated solve from the coordinator's solve table
  (the reveal included);
- :func:`busy_core`: a process that keeps one CPU busy for the length of a ``with`` block.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: comparison operators a target may use
OPS = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
}


def target(
    section: str,
    figure: str,
    measured: float | None,
    limit: float,
    *,
    op: str = "<=",
    interval: list[float] | None = None,
    unit: str = "",
    reference: str = "",
) -> dict[str, Any]:
    """A target record: ``met`` is None when nothing was measured (the run failed)."""
    if op not in OPS:
        raise ValueError(f"target op {op!r}: one of {', '.join(OPS)}")
    met = None if measured is None else bool(OPS[op](measured, limit))
    return {
        "section": section,
        "figure": figure,
        "measured": measured,
        "interval": interval or None,
        "op": op,
        "limit": limit,
        "unit": unit,
        "reference": reference,
        "met": met,
    }


def mark(met: bool | None) -> str:
    """The pass / fail mark printed beside a figure."""
    return {True: "PASS", False: "FAIL", None: "n/a"}[met]


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if float(x).is_integer() or abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3f}"


def target_line(t: Mapping[str, Any]) -> str:
    """``figure: measured [interval] unit (vs reference) — target op limit  PASS``."""
    ci = t.get("interval")
    ci_s = f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""
    unit = f" {t['unit']}" if t.get("unit") else ""
    ref = f" ({t['reference']})" if t.get("reference") else ""
    return (
        f"  {t['figure']}: {_num(t['measured'])}{ci_s}{unit}{ref} — target "
        f"{t['op']} {t['limit']:,g}{unit}  {mark(t['met'])}"
    )


def _finding(health: Mapping[str, Any], name: str) -> Any:
    for f in health.get("findings") or ():
        if f.get("name") == name:
            return f.get("value")
    return None


def _count_all(x: Any) -> int:
    """Sum of every integer in a nested mapping of counts (``governance.refusals``)."""
    if isinstance(x, Mapping):
        return sum(_count_all(v) for v in x.values())
    if isinstance(x, bool):
        return 0
    return int(x) if isinstance(x, int | float) else 0


def run_figures(kpi: Mapping[str, Any]) -> dict[str, Any]:
    """What a run's ``kpi.json`` says about keeping up with the offered load."""
    t2t = kpi.get("tick_to_trade") or {}
    queue = (kpi.get("stages") or {}).get("adapter_to_coordinator") or {}
    health = kpi.get("health") or {}
    hedge = kpi.get("hedge") or {}
    loss = kpi.get("loss") or {}
    thr = kpi.get("throughput") or {}
    load = kpi.get("host_load") or {}
    gov = kpi.get("governance") or {}
    return {
        "tick_to_trade_us": {k: t2t.get(k) for k in ("p50", "p99", "count")},
        "queueing_us": {k: queue.get(k) for k in ("p50", "p99", "max")},
        "queueing_bound_us": health.get("queueing_bound_us"),
        "ticks_sent": thr.get("ticks_sent"),
        "ticks_in": thr.get("ticks_in"),
        "superseded_ticks": hedge.get("superseded_ticks"),
        "stale_refusals": _finding(health, "stale_refusals"),
        # tag refusals for other reasons than staleness (health's "refused")
        "other_refusals": _finding(health, "refused"),
        # every security refusal (governance: tag checks, the stale ones included,
        # credentials, privacy budget)
        "security_refusals": _count_all(gov.get("refusals")) if gov else None,
        "dropped": loss.get("dropped"),
        "adapter_dropped": _finding(health, "adapter_dropped"),
        "aborted_solves": hedge.get("aborted_solves"),
        "verdict": health.get("verdict"),
        "summary": health.get("summary"),
        "rig_busy_pct": load.get("rig_busy_pct"),
        "other_busy_pct": load.get("other_busy_pct"),
    }


def solve_round_trips(proc_dir: Path, measure_from_ns: int, reveal: bool = True) -> np.ndarray:
    """Round trips of every federated solve that started in the measured window and was not
    aborted: its query rounds, plus the REVEAL's round trip (``reveal``: the price protocol and
    the secure ADMM rounds end with one). Empty for central runs (no solve table)."""
    path = proc_dir / "coordinator.solves.npy"
    if not path.exists():
        return np.zeros(0, np.int64)
    solves = np.load(path)
    keep = (solves["started_ns"] >= measure_from_ns) & (solves["aborted"] == 0)
    return solves["rounds"][keep].astype(np.int64) + (1 if reveal else 0)


def percentiles(values: np.ndarray, qs: tuple[int, ...] = (50, 99)) -> dict[str, float | None]:
    """``{p50: .., p99: .., count: n}`` of ``values`` (None when empty)."""
    out: dict[str, float | None] = {
        f"p{q}": (float(np.percentile(values, q)) if len(values) else None) for q in qs
    }
    out["count"] = len(values)
    return out


#: the busy process: a pure-Python spin that never sleeps
SPIN = "while True: pass"


@contextlib.contextmanager
def busy_core() -> Iterator[subprocess.Popen[bytes]]:
    """Keep one CPU busy for the length of the block: an unrelated process spinning
    ``while True: pass``, started on entry and killed (and reaped) on exit, however the block
    ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()

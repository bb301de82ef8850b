"""Scale: the federated pipeline against the number of venues N and of assets M at a fixed total
message rate (context figures, no target).

Each cell is a campaign built from ``campaigns/loopback-8x16.toml`` (federated, the price
protocol, secure aggregation; its coordinator settings, warm-up and drain): its first N
``[venues.*]`` tables (venue_b over a serial pty, the others over UDP; 2 x 1 is the default
campaign's topology), ``[market] n_assets = M`` and ``rate_hz = total / N`` ticks/s per venue,
so every cell offers the same 4,000 ticks/s in total (the default campaign's 2 x 2,000; 8 x
500 is ``loopback-8x16.toml`` itself), shortened to a few seconds measured. Per cell:
``tick_to_trade`` p50 / p99, round trips per solve (query rounds + the REVEAL) p50 / p99 over
the measured window, and ``kpi.json``'s health verdict with the counts behind it.
"""

from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path
from typing import Any

from arbsphere.clock import RealtimeClock
from arbsphere.rig.campaign_run import execute_campaign
from arbsphere.rig.config import Campaign, parse_campaign
from benchmarks.targets import percentiles, run_figures, solve_round_trips

BASE = Path("campaigns/loopback-8x16.toml")
VENUES = (2, 4, 8)
ASSETS = (1, 4, 16)
TOTAL_RATE_HZ = 4000.0
#: every cell, small to large
CELLS = tuple((n, m) for n in VENUES for m in ASSETS)


def parse_cells(spec: str | None) -> list[tuple[int, int]]:
    """``"2x1,4x16"`` -> ``[(2, 1), (4, 16)]``; empty / None / ``"all"``: every cell of
    :data:`CELLS`. N must be 2..8 (the venues of the base campaign), M 1..256."""
    if spec is None or not spec.strip() or spec.strip() == "all":
        return list(CELLS)
    cells = []
    for part in spec.split(","):
        part = part.strip().lower()
        if not part:
            continue
        try:
            n_s, m_s = part.split("x")
            n, m = int(n_s), int(m_s)
        except ValueError:
            raise ValueError(f"scale cell {part!r}: write NxM, e.g. 4x16") from None
        if not 2 <= n <= 8 or not 1 <= m <= 256:
            raise ValueError(f"scale cell {part!r}: N must be 2..8 venues, M 1..256 assets")
        if (n, m) not in cells:
            cells.append((n, m))
    if not cells:
        raise ValueError(f"scale cells {spec!r}: none given")
    return cells


def cell_data(
    base: dict[str, Any], n: int, m: int, total_rate_hz: float, duration_s: float
) -> dict[str, Any]:
    """The campaign table of cell (N, M) from the base file's parsed TOML."""
    venues = dict(list(base["venues"].items())[:n])
    if len(venues) < n:
        raise ValueError(f"{n} venues asked, the base campaign has {len(base['venues'])}")
    campaign = {**base["campaign"], "name": f"bench-scale-{n}x{m}",
                "rate_hz": total_rate_hz / n, "duration_s": duration_s}  # fmt: skip
    return {
        **base,
        "campaign": campaign,
        "market": {**base.get("market", {}), "n_assets": m},
        "venues": venues,
    }


def cell_campaign(
    n: int, m: int, total_rate_hz: float = TOTAL_RATE_HZ, duration_s: float = 6.0
) -> Campaign:
    """Cell (N, M) as a validated campaign (the rig's own loader checks it like a file)."""
    base = tomllib.loads(BASE.read_text(encoding="utf-8"))
    data = cell_data(base, n, m, total_rate_hz, duration_s)
    return parse_campaign(data, f"{BASE} [{n} venues x {m} assets, {total_rate_hz / n:g}/s each]")


def run(
    cells: list[tuple[int, int]] | None = None,
    duration_s: float = 6.0,
    total_rate_hz: float = TOTAL_RATE_HZ,
) -> dict[str, Any]:
    cells = list(cells or CELLS)
    clock = RealtimeClock()
    rows = []
    with tempfile.TemporaryDirectory(prefix="arbsphere-bench-scale-") as tmp:
        for n, m in cells:
            campaign = cell_campaign(n, m, total_rate_hz, duration_s)
            res = execute_campaign(campaign, clock, results_dir=Path(tmp) / f"{n}x{m}")
            measure_from = int(res.manifest["schedule"]["measure_from_ns"] or 0)
            trips = solve_round_trips(res.run_dir / "proc", measure_from)
            fig = run_figures(res.kpi)
            coord = ((res.kpi.get("host_load") or {}).get("roles") or {}).get("coordinator", {})
            rows.append({
                "venues": n, "assets": m, "rate_hz_per_venue": campaign.rate_hz,
                "complete": res.complete, "reason": res.reason or None,
                "round_trips_per_solve": {**percentiles(trips),
                                          "max": int(trips.max()) if len(trips) else None},
                "solves": (res.kpi.get("hedge") or {}).get("solves"),
                "coordinator_cpu_pct": coord.get("cpu_pct"),
                **fig,
            })  # fmt: skip
    return {
        "base": str(BASE),
        "total_rate_hz": total_rate_hz,
        "duration_s": duration_s,
        "warmup_s": cell_campaign(2, 1).warmup_s,
        "cells": rows,
    }


#: the table's corner: rows are venues, columns assets
CORNER = "N \\ M"


def _ms(us: float | None) -> str:
    if us is None:
        return "-"
    return f"{us / 1e3:.1f}" if us < 1e6 else f"{us / 1e3:.0f}"


def cell_text(row: dict[str, Any]) -> str:
    """One cell of the table: ``t2t p50/p99 ms · round trips p50/p99 · verdict``."""
    t = row["tick_to_trade_us"]
    rt = row["round_trips_per_solve"]
    trips = f"{rt['p50']:.0f}/{rt['p99']:.0f}" if rt.get("count") else "-"
    verdict = row.get("verdict") or ("incomplete" if not row.get("complete") else "-")
    return f"{_ms(t.get('p50'))}/{_ms(t.get('p99'))} ms, rt {trips}, {verdict}"


def scale_table(out: dict[str, Any]) -> list[str]:
    """An N x M table (rows: venues, columns: assets) of tick_to_trade p50/p99 (ms), round
    trips per solve p50/p99 and the health verdict; then one line per cell with the counts."""
    rows = out["cells"]
    ns = sorted({r["venues"] for r in rows})
    ms = sorted({r["assets"] for r in rows})
    by = {(r["venues"], r["assets"]): r for r in rows}
    width = max([len(cell_text(r)) for r in rows] + [12])
    lines = [
        f"  {out['total_rate_hz']:,.0f} ticks/s in total ({out['duration_s']:g} s measured per "
        "cell); cell: tick_to_trade p50/p99 ms, round trips per solve p50/p99, health",
        "  " + f"{CORNER:>7s} | " + " | ".join(f"{m:>{width}d}" for m in ms),
    ]
    for n in ns:
        cells = [cell_text(by[(n, m)]) if (n, m) in by else "" for m in ms]
        lines.append("  " + f"{n:7d} | " + " | ".join(f"{c:>{width}s}" for c in cells))
    lines.append(
        f"  {'cell':>5s} {'/s/venue':>8s} {'solves':>7s} {'superseded':>10s} {'stale':>7s} "
        f"{'dropped':>7s} {'queue p99 ms':>12s} {'coord CPU':>9s}"
    )
    for r in rows:
        q = r["queueing_us"]
        cpu = r.get("coordinator_cpu_pct")
        lines.append(
            f"  {str(r['venues']) + 'x' + str(r['assets']):>5s} {r['rate_hz_per_venue']:8.0f} "
            f"{r.get('solves') or 0:7d} {r.get('superseded_ticks') or 0:10d} "
            f"{r.get('stale_refusals') or 0:7d} {r.get('dropped') or 0:7d} "
            f"{_ms(q.get('p99')):>12s} {(f'{cpu:.0f} %' if cpu is not None else '-'):>9s}"
        )
    return lines

"""Federated against central coordination: the default campaign (``loopback.toml``: federated,
the price protocol, secure aggregation) and the same pipeline with the coordinator solving in
process (``loopback-central.toml``), at the default rate, in interleaved pairs.

Pair ``k`` runs federated first when ``k`` is even and central first when it is odd (A B, B A,
...), so a host whose speed drifts across the bench (~20 % within minutes on this machine) does
not favour one arm. Every trade of every pair is pooled per arm; the p50 / p99 ratios
(federated / central) come with the pair-level 90 % interval
(:func:`benchmarks.bench_recorder.pooled_ratios`). Targets (issue 20): p50 <= 1.5, p99 <= 2.
Each run's health verdict and, for the federated runs, the round trips per solve (the REVEAL
included) over the measured window are kept beside.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.clock import RealtimeClock
from arbsphere.rig.campaign_run import execute_campaign
from arbsphere.rig.config import Campaign, load_campaign
from benchmarks.bench_recorder import host_figures, pair_order, pooled_ratios, trace_samples
from benchmarks.targets import percentiles, solve_round_trips, target

FEDERATED = Path("campaigns/loopback.toml")
CENTRAL = Path("campaigns/loopback-central.toml")
TARGET_RATIO_P50 = 1.5
TARGET_RATIO_P99 = 2.0


def campaigns(duration_s: float, rate_hz: float | None = None) -> tuple[Campaign, Campaign]:
    """(federated, central), shortened to ``duration_s`` (warm-up as configured), at
    ``rate_hz`` ticks/s per venue when given (else the campaigns' own, 2,000)."""
    fed = dataclasses.replace(load_campaign(FEDERATED), duration_s=duration_s,
                              name="bench-federated")  # fmt: skip
    cen = dataclasses.replace(load_campaign(CENTRAL), duration_s=duration_s, name="bench-central")
    if rate_hz is not None:
        fed = dataclasses.replace(fed, rate_hz=rate_hz)
        cen = dataclasses.replace(cen, rate_hz=rate_hz)
    return fed, cen


def run(duration_s: float = 10.0, pairs: int = 3, rate_hz: float | None = None) -> dict[str, Any]:
    fed, cen = campaigns(duration_s, rate_hz)
    clock = RealtimeClock()
    samples: dict[str, list[dict[str, np.ndarray]]] = {"on": [], "off": []}
    runs: list[dict[str, Any]] = []
    all_trips: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(prefix="arbsphere-bench-federated-") as tmp:
        for k in range(pairs):
            pair: dict[str, Any] = {"order": []}
            for label, campaign in pair_order(k, fed, cen):
                arm = "federated" if label == "on" else "central"
                pair["order"].append(arm)
                res = execute_campaign(campaign, clock, results_dir=Path(tmp) / f"{arm}-{k}")
                samples[label].append(trace_samples(res.run_dir))
                t = res.kpi["tick_to_trade"]
                health = res.kpi.get("health") or {}
                row: dict[str, Any] = {
                    "p50": t["p50"], "p99": t["p99"], "count": t["count"],
                    "complete": res.complete, "verdict": health.get("verdict"),
                    "health": health.get("summary"), "host": host_figures(res.kpi),
                }  # fmt: skip
                if arm == "federated":
                    measure_from = int(res.manifest["schedule"]["measure_from_ns"] or 0)
                    trips = solve_round_trips(res.run_dir / "proc", measure_from)
                    all_trips.append(trips)
                    row["round_trips_per_solve"] = percentiles(trips)
                pair[arm] = row
            for q in ("p50", "p99"):
                a, b = pair["federated"][q], pair["central"][q]
                pair[f"ratio_{q}"] = round(a / b, 3) if a and b else None
            runs.append(pair)
    usable = [
        (a, b) for a, b in zip(samples["on"], samples["off"], strict=True)
        if len(a["tick_to_trade"]) and len(b["tick_to_trade"])
    ]  # fmt: skip
    pooled = (
        pooled_ratios([a for a, _ in usable], [b for _, b in usable], keys=("tick_to_trade",))[
            "tick_to_trade"
        ]
        if usable
        else None
    )
    trips = np.concatenate(all_trips) if all_trips else np.zeros(0, np.int64)
    rate = fed.rate_hz
    targets = []
    for q, limit in (("p50", TARGET_RATIO_P50), ("p99", TARGET_RATIO_P99)):
        targets.append(target(
            "federated", f"federated / central tick_to_trade {q} at {rate:g}/s per venue",
            pooled[f"ratio_{q}"] if pooled else None, limit,
            interval=pooled[f"ratio_{q}_ci90_runs"] if pooled else None,
            reference=(f"{pooled[f'{q}_on_us']:.0f} vs {pooled[f'{q}_off_us']:.0f} us, "
                       f"{len(usable)} pairs pooled") if pooled else "",
        ))  # fmt: skip
    return {
        "duration_s": duration_s,
        "warmup_s": fed.warmup_s,
        "pairs": pairs,
        "rate_hz_per_venue": rate,
        "protocol": fed.coordinator.protocol,
        "pooled": pooled,
        "round_trips_per_solve": {
            **percentiles(trips),
            "max": int(trips.max()) if len(trips) else None,
        },
        "targets": targets,
        "runs": runs,
    }


def summary_lines(out: dict[str, Any]) -> list[str]:
    """Per pair: both arms' p50 / p99 and health; then the pooled figures."""
    lines = [
        f"  {'pair':4s} {'order':25s} {'federated p50/p99 us':>20s} {'central p50/p99 us':>20s} "
        f"{'p50 ratio':>9s}  health (federated / central)"
    ]
    for k, r in enumerate(out["runs"]):
        f, c = r["federated"], r["central"]
        ratio = f"{r['ratio_p50']:9.3f}" if r["ratio_p50"] is not None else f"{'-':>9s}"
        lines.append(
            f"  {k:4d} {' then '.join(r['order']):25s} {_us(f['p50']) + '/' + _us(f['p99']):>20s} "
            f"{_us(c['p50']) + '/' + _us(c['p99']):>20s} {ratio}  {f['verdict']} / {c['verdict']}"
        )
    p = out["pooled"]
    if p:
        lines.append(
            f"  pooled: p50 {p['p50_on_us']:.0f} vs {p['p50_off_us']:.0f} us, ratio "
            f"{p['ratio_p50']:.3f} {p['ratio_p50_ci90_runs']}; p99 {p['p99_on_us']:.0f} vs "
            f"{p['p99_off_us']:.0f} us, ratio {p['ratio_p99']:.3f} {p['ratio_p99_ci90_runs']}"
        )
    rt = out["round_trips_per_solve"]
    if rt["count"]:
        lines.append(
            f"  federated round trips per solve (reveal included, {rt['count']} solves): "
            f"p50 {rt['p50']:.0f}, p99 {rt['p99']:.0f}, max {rt['max']}"
        )
    return lines


def _us(x: float | None) -> str:
    return f"{x:.0f}" if x is not None else "-"

"""Rate sweeps: one campaign run per offered rate, and the result set that ties them together.

``[campaign] rate_hz = [500, 1000, 2000]`` runs the campaign once per rate, each run a complete
result set of its own in ``<run-dir>/rate-<rate>hz/`` (processes restarted, same seed). The
sweep's own ``kpi.json`` lists every rate's KPIs; ``report.html`` plots tick_to_trade
percentiles against rate (the way STAC reports latency against throughput); ``manifest.json``
names the per-rate runs with their status and the hash of every file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbsphere.clock import Clock
from arbsphere.kpi.report import render_report
from arbsphere.kpi.resultset import ResultSetWriter
from arbsphere.rig.campaign_run import CampaignResult, execute_campaign
from arbsphere.rig.config import Campaign


@dataclass
class SweepResult:
    run_dir: Path
    complete: bool
    reason: str
    runs: list[tuple[float, CampaignResult]]
    kpi: dict[str, Any]


def rate_dir_name(rate_hz: float) -> str:
    return f"rate-{rate_hz:g}hz"


def execute_sweep(
    campaign: Campaign,
    clock: Clock,
    *,
    results_dir: Path | None = None,
    on_progress: Callable[[float, str], None] | None = None,
) -> SweepResult:
    rates = campaign.rates_hz or (campaign.rate_hz,)
    base = results_dir if results_dir is not None else Path(campaign.results_dir)
    out = ResultSetWriter.new(base, campaign.name, clock.now_ns(), kind="rate-sweep")
    run_dir = out.run_dir
    runs: list[tuple[float, CampaignResult]] = []
    for k, rate in enumerate(rates):
        one = dataclasses.replace(campaign, rate_hz=rate, rates_hz=())

        def step(frac: float, phase: str, k: int = k, rate: float = rate) -> None:
            if on_progress is not None:
                what = f"rate {rate:g}/s ({k + 1}/{len(rates)}): {phase}"
                on_progress((k + frac) / len(rates), what)

        result = execute_campaign(
            one, clock, on_progress=step, run_dir=run_dir / rate_dir_name(rate)
        )
        out.adopt(rate_dir_name(rate))  # the rate's own result set, its manifest included
        runs.append((rate, result))
    incomplete = [(r, res) for r, res in runs if not res.complete]
    reason = "; ".join(f"rate {r:g}/s: {res.reason}" for r, res in incomplete)
    kpi: dict[str, Any] = {
        "sweep": [
            {"rate_hz": r, "run": rate_dir_name(r), "complete": res.complete, "kpi": res.kpi}
            for r, res in runs
        ]
    }
    out.write_json("kpi.json", kpi, sort_keys=False)
    out.set_status(not incomplete, reason)
    out.add({
        "rates_hz": list(rates),
        "runs": {rate_dir_name(r): res.manifest.get("status") for r, res in runs},
        "config_file": campaign.source,
        "config": campaign.resolved(),
    })  # fmt: skip
    headline = {f"tick_to_trade @ {r:g}/s": res.kpi.get("tick_to_trade", {}) for r, res in runs}
    report_kpi: dict[str, Any] = {"stages": headline, "sweep": {
        f"{r:g}/s": {"complete": res.complete, "run": rate_dir_name(r),
                     "ticks_in": res.kpi.get("throughput", {}).get("ticks_in")}
        for r, res in runs}}  # fmt: skip
    rate_points = [(r, res.kpi.get("tick_to_trade", {})) for r, res in runs]
    out.write_with("report.html", lambda p: render_report(
        report_kpi, None, out.manifest(), p, rate_points=rate_points
    ))  # fmt: skip
    out.finish()
    return SweepResult(run_dir, not incomplete, reason, runs, kpi)

"""Rate sweeps: one campaign run per offered rate, and the result set that ties them together.

``[campaign] rate_hz = [500, 1000, 2000]`` runs the campaign once per rate, each run a complete
result set of its own in ``<run-dir>/rate-<rate>hz/`` (processes restarted, same seed). The
sweep's own ``kpi.json`` lists every rate's KPIs; ``report.html`` plots tick_to_trade
percentiles against rate (the way STAC reports latency against throughput); ``manifest.json``
names the per-rate runs with their status and the hash of every file.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbsphere.clock import Clock
from arbsphere.kpi.report import render_report
from arbsphere.kpi.resultset import (
    RESULT_SET_FORMAT,
    file_hashes,
    git_revision,
    host_fingerprint,
    new_run_dir,
    versions,
)
from arbsphere.rig.campaign_run import CampaignResult, execute_campaign
from arbsphere.rig.config import Campaign
from arbsphere.runtime import write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]


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
    run_dir = new_run_dir(base, campaign.name, clock.now_ns())
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now_ns() / 1e9))
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
        runs.append((rate, result))
    incomplete = [(r, res) for r, res in runs if not res.complete]
    reason = "; ".join(f"rate {r:g}/s: {res.reason}" for r, res in incomplete)
    kpi: dict[str, Any] = {
        "sweep": [
            {"rate_hz": r, "run": rate_dir_name(r), "complete": res.complete, "kpi": res.kpi}
            for r, res in runs
        ]
    }
    write_json_atomic(run_dir / "kpi.json", kpi, sort_keys=False)
    manifest: dict[str, Any] = {
        "format": RESULT_SET_FORMAT,
        "kind": "rate-sweep",
        "campaign": campaign.name,
        "run_id": run_dir.name,
        "status": "complete" if not incomplete else "incomplete",
        "incomplete_reason": reason or None,
        "created_utc": created,
        "rates_hz": list(rates),
        "runs": {rate_dir_name(r): res.manifest.get("status") for r, res in runs},
        "config_file": campaign.source,
        "config": campaign.resolved(),
        "versions": versions(),
        "git": git_revision(REPO_ROOT),
        "host": host_fingerprint(),
    }
    headline = {f"tick_to_trade @ {r:g}/s": res.kpi.get("tick_to_trade", {}) for r, res in runs}
    render_report(
        {"stages": headline, "sweep": {
            f"{r:g}/s": {"complete": res.complete, "run": rate_dir_name(r),
                         "ticks_in": res.kpi.get("throughput", {}).get("ticks_in")}
            for r, res in runs}},
        None, manifest, run_dir / "report.html",
        rate_points=[(r, res.kpi.get("tick_to_trade", {})) for r, res in runs],
    )  # fmt: skip
    manifest["files"] = file_hashes(run_dir)
    write_json_atomic(run_dir / "manifest.json", manifest)
    return SweepResult(run_dir, not incomplete, reason, runs, kpi)

"""Recorder on/off: the loopback pipeline with the coordinator's journal enabled and disabled,
alternated in the same session (A B A B ...), same seed and rate. The issue's limit: recording
must not change ``tick_to_trade`` by more than 5 % at p99. Also replays one recorded run with
``--verify`` and reports the coordinator re-execution rate."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.clock import RealtimeClock
from arbsphere.rig.campaign_run import execute_campaign
from arbsphere.rig.config import JournalConfig, load_campaign
from arbsphere.rig.replay_cli import verify_run


def run(duration_s: float = 10.0, pairs: int = 3) -> dict[str, Any]:
    base = load_campaign(Path("campaigns/loopback.toml"))
    on = dataclasses.replace(base, duration_s=duration_s, name="bench-recorder")
    off = dataclasses.replace(on, journal=JournalConfig(enabled=False))
    clock = RealtimeClock()
    runs: list[dict[str, Any]] = []
    replay: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="arbsphere-bench-recorder-") as tmp:
        for k in range(pairs):
            pair: dict[str, Any] = {}
            for label, campaign in (("on", on), ("off", off)):
                res = execute_campaign(campaign, clock, results_dir=Path(tmp) / f"{label}-{k}")
                t = res.kpi["tick_to_trade"]
                pair[label] = {"p50": t["p50"], "p99": t["p99"], "count": t["count"],
                               "complete": res.complete}  # fmt: skip
                if label == "on" and not replay:
                    result, seconds = verify_run(res.run_dir)
                    replay = {
                        "identical": result.identical, "records": result.records,
                        "seconds": round(seconds, 3),
                        "records_per_s": round(result.records / seconds) if seconds else None,
                        "journal_records": res.manifest["journal"]["head"]["record_count"],
                    }  # fmt: skip
            for q in ("p50", "p99"):
                a, b = pair["on"][q], pair["off"][q]
                pair[f"ratio_{q}"] = round(a / b, 3) if a and b else None
            runs.append(pair)
    r99 = [p["ratio_p99"] for p in runs if p["ratio_p99"] is not None]
    r50 = [p["ratio_p50"] for p in runs if p["ratio_p50"] is not None]
    return {
        "duration_s": duration_s,
        "pairs": pairs,
        "ratio_p99_median": float(np.median(r99)) if r99 else None,
        "ratio_p50_median": float(np.median(r50)) if r50 else None,
        "target_ratio_p99": 1.05,
        "runs": runs,
        "replay_verify": replay,
    }

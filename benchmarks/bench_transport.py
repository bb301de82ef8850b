"""CurveZMQ + message tags against plaintext: the loopback pipeline (central coordination,
``loopback-central.toml``) with the default security (CurveZMQ with ZAP on every pipeline
socket, HMAC-SHA256 tags with replay and skew windows, the governance ledger) and with
``transport = "plaintext"``, ``tags = false`` (the ledger stays on: it is off the hot path),
alternated in the same session (A B B A A B ...), same seed and rate. Issue 6's target: p50 of
tick_to_trade secured / plaintext <= 1.10. Pooled samples of each arm are the figure to quote
(as in the recorder bench)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.clock import RealtimeClock
from arbsphere.rig.campaign_run import execute_campaign
from arbsphere.rig.config import load_campaign
from benchmarks.bench_recorder import host_figures, pair_order, pooled_ratios, trace_samples


def run(duration_s: float = 10.0, pairs: int = 3) -> dict[str, Any]:
    base = load_campaign(Path("campaigns/loopback-central.toml"))
    secure = dataclasses.replace(base, duration_s=duration_s, name="bench-transport")
    plain = dataclasses.replace(
        secure, security=dataclasses.replace(base.security, transport="plaintext", tags=False)
    )
    clock = RealtimeClock()
    runs: list[dict[str, Any]] = []
    samples: dict[str, list[dict[str, np.ndarray]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="arbsphere-bench-transport-") as tmp:
        for k in range(pairs):
            pair: dict[str, Any] = {}
            for label, campaign in pair_order(k, secure, plain):
                res = execute_campaign(campaign, clock, results_dir=Path(tmp) / f"{label}-{k}")
                samples[label].append(trace_samples(res.run_dir))
                t = res.kpi["tick_to_trade"]
                gov = res.kpi.get("governance", {})
                pair[label] = {"p50": t["p50"], "p99": t["p99"], "count": t["count"],
                               "complete": res.complete, "verified": gov.get("verified"),
                               "refusals": gov.get("refusals"),
                               "host": host_figures(res.kpi)}  # fmt: skip
            for q in ("p50", "p99"):
                a, b = pair["on"][q], pair["off"][q]
                pair[f"ratio_{q}"] = round(a / b, 3) if a and b else None
            runs.append(pair)
        pooled = pooled_ratios(samples["on"], samples["off"])
    r50 = [p["ratio_p50"] for p in runs if p["ratio_p50"] is not None]
    r99 = [p["ratio_p99"] for p in runs if p["ratio_p99"] is not None]
    return {
        "arms": {"on": "curve + tags + ledger (default)", "off": "plaintext, no tags, ledger"},
        "duration_s": duration_s,
        "pairs": pairs,
        "ratio_p50_median": float(np.median(r50)) if r50 else None,
        "ratio_p99_median": float(np.median(r99)) if r99 else None,
        "target_ratio_p50": 1.10,
        "pooled": pooled,
        "runs": runs,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))

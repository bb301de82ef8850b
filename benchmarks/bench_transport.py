"""CurveZMQ against plaintext, and message tags on and off: the loopback pipeline (central
coordination, ``loopback-central.toml``) in three arms run in rotation in the same session, same
seed and rate (the governance ledger is on in all three: it is off the hot path):

``curve_tags``      the default: CurveZMQ with ZAP on every pipeline socket, HMAC-SHA256 tags
                    with replay and skew windows
``plaintext_tags``  ``transport = "plaintext"``, tags on
``plaintext``       ``transport = "plaintext"``, ``tags = false``

and three comparisons of ``tick_to_trade`` (and the coordinator path), samples pooled per arm:

``curve``  curve_tags / plaintext_tags — what CurveZMQ costs, everything else equal: issue 6's
           target (CurveZMQ against plaintext pipeline latency, p50 <= 1.10)
``tags``   plaintext_tags / plaintext — what the per-message tags cost on the wire path
``all``    curve_tags / plaintext — the whole transport security against none

Round ``k`` runs the arms rotated by ``k`` (A B C, B C A, C A B, ...), so each arm runs first,
second and third equally often and a host whose speed drifts across the bench (~20 % within
minutes on this machine) does not favour one arm."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.clock import RealtimeClock
from arbsphere.rig.campaign_run import execute_campaign
from arbsphere.rig.config import Campaign, load_campaign
from benchmarks.bench_recorder import host_figures, pooled_ratios, trace_samples
from benchmarks.targets import target

#: arm -> what it runs
ARMS = {
    "curve_tags": "CurveZMQ + ZAP, tags, ledger (the default)",
    "plaintext_tags": "plaintext transport, tags, ledger",
    "plaintext": "plaintext transport, no tags, ledger",
}
#: comparison -> (arm on, arm off)
COMPARISONS = {
    "curve": ("curve_tags", "plaintext_tags"),
    "tags": ("plaintext_tags", "plaintext"),
    "all": ("curve_tags", "plaintext"),
}
#: issue 6's target: the ``curve`` comparison's p50 ratio
TARGET: dict[str, Any] = {"comparison": "curve", "ratio_p50": 1.10}


#: issue 20: the comparison runs at this rate (ticks/s per venue; None: the campaign's)
RATE_HZ = 500


def arm_campaigns(
    base: Campaign, duration_s: float, rate_hz: float | None = None
) -> dict[str, Campaign]:
    """The three arms' campaigns from ``base`` (shortened to ``duration_s``, at ``rate_hz``
    ticks/s per venue when given)."""
    secure = dataclasses.replace(base, duration_s=duration_s, name="bench-transport")
    if rate_hz is not None:
        secure = dataclasses.replace(secure, rate_hz=rate_hz)

    def security(**changes: Any) -> Campaign:
        return dataclasses.replace(secure, security=dataclasses.replace(base.security, **changes))

    return {
        "curve_tags": security(transport="curve", tags=True),
        "plaintext_tags": security(transport="plaintext", tags=True),
        "plaintext": security(transport="plaintext", tags=False),
    }


def rotation(k: int, arms: list[str]) -> list[str]:
    """Round ``k``'s order of ``arms``: rotated left by ``k``."""
    s = k % len(arms)
    return arms[s:] + arms[:s]


def run(
    duration_s: float = 10.0, rounds: int = 3, rate_hz: float | None = RATE_HZ
) -> dict[str, Any]:
    campaigns = arm_campaigns(
        load_campaign(Path("campaigns/loopback-central.toml")), duration_s, rate_hz
    )
    clock = RealtimeClock()
    runs: list[dict[str, Any]] = []
    samples: dict[str, list[dict[str, np.ndarray]]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory(prefix="arbsphere-bench-transport-") as tmp:
        for k in range(rounds):
            this: dict[str, Any] = {"order": rotation(k, list(ARMS))}
            for arm in this["order"]:
                res = execute_campaign(campaigns[arm], clock, results_dir=Path(tmp) / f"{arm}-{k}")
                samples[arm].append(trace_samples(res.run_dir))
                t = res.kpi["tick_to_trade"]
                gov = res.kpi.get("governance", {})
                this[arm] = {"p50": t["p50"], "p99": t["p99"], "count": t["count"],
                             "complete": res.complete, "verified": gov.get("verified"),
                             "refusals": gov.get("refusals"),
                             "host": host_figures(res.kpi)}  # fmt: skip
            for name, (on, off) in COMPARISONS.items():
                a, b = this[on]["p50"], this[off]["p50"]
                this[f"{name}_ratio_p50"] = round(a / b, 3) if a and b else None
            runs.append(this)
    comparisons: dict[str, Any] = {}
    for name, (on, off) in COMPARISONS.items():
        per_round = [r[f"{name}_ratio_p50"] for r in runs if r[f"{name}_ratio_p50"] is not None]
        comparisons[name] = {
            "on": on,
            "off": off,
            "ratio_p50_per_round": per_round,
            "ratio_p50_median": float(np.median(per_round)) if per_round else None,
            "pooled": pooled_ratios(samples[on], samples[off]),
        }
    pooled = comparisons[TARGET["comparison"]]["pooled"]["tick_to_trade"]
    rate = campaigns["curve_tags"].rate_hz
    return {
        "arms": ARMS,
        "duration_s": duration_s,
        "rounds": rounds,
        "rate_hz_per_venue": rate,
        "target": {
            **TARGET,
            "measured": pooled["ratio_p50"],
            "ci90_runs": pooled["ratio_p50_ci90_runs"],
            "met": pooled["ratio_p50"] <= TARGET["ratio_p50"],
        },
        "targets": [
            target(
                "transport",
                f"CurveZMQ / plaintext tick_to_trade p50 at {rate:g}/s per venue",
                pooled["ratio_p50"],
                TARGET["ratio_p50"],
                interval=pooled["ratio_p50_ci90_runs"],
                reference=f"{pooled['p50_on_us']:.0f} vs {pooled['p50_off_us']:.0f} us, "
                f"{rounds} rounds pooled",
            )
        ],
        "comparisons": comparisons,
        "runs": runs,
    }


def summary_table(out: dict[str, Any]) -> list[str]:
    """One line per comparison: pooled p50 / p99 ratios of tick_to_trade with the pair-level
    90 % interval, the coordinator path's p50 ratio, the per-round p50 ratios."""
    lines = [
        f"  {'comparison':10s} {'t2t p50':>8s} {'[pair-level 90 %]':>18s} {'t2t p99':>8s} "
        f"{'coord p50':>9s}  per round"
    ]
    for name, c in out["comparisons"].items():
        t = c["pooled"]["tick_to_trade"]
        ci = t["ratio_p50_ci90_runs"]
        ci_s = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"
        coord = c["pooled"]["coordinator_path"]["ratio_p50"]
        rounds = " ".join(f"{x:.3f}" for x in c["ratio_p50_per_round"])
        lines.append(
            f"  {name:10s} {t['ratio_p50']:8.3f} {ci_s:>18s} {t['ratio_p99']:8.3f} "
            f"{coord:9.3f}  {rounds}"
        )
    return lines


if __name__ == "__main__":
    import json

    result = run()
    print(json.dumps(result, indent=2))
    print("\n".join(summary_table(result)))

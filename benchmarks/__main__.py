"""`make bench`: every benchmark, printed and written as JSON under ``results/bench/``.

Each figure is compared with a floor or a reference measured in the same run (a bare ZeroMQ
relay over the same hops, hdrh's own ``record_value``, a NumPy implementation of the same
algorithm) and reported as a ratio; absolute times are context only (2 noisy vCPUs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from arbsphere.runtime import write_json_atomic


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "--only",
        choices=[
            "kernels",
            "recording",
            "pipeline",
            "calibration",
            "journal",
            "recorder",
            "rounds",
            "security",
            "transport",
        ],
        action="append",
    )
    parser.add_argument("--pipeline-seconds", type=float, default=10.0)
    parser.add_argument(
        "--pipeline-pairs",
        type=int,
        default=3,
        help="alternating pairs of the pipeline (vs floor) and recorder (on vs off) benches, "
        "rounds of the transport bench (three arms in rotation)",
    )
    parser.add_argument(
        "--pipeline-rates",
        default="250,500,1000,2000",
        help="the pipeline / floor pair again at these ticks/s per venue, one pair per rate "
        "and arm (comma-separated; empty: skip)",
    )
    parser.add_argument(
        "--pipeline-rate-arms",
        default="default,unsecured",
        help="the by-rate pairs' pipeline arms (comma-separated): default = the campaign as "
        "configured, unsecured = plaintext, no tags, no journal",
    )
    parser.add_argument(
        "--recorder-interleaved-seconds",
        type=float,
        default=120.0,
        help="the recorder bench's interleaved run (0: skip it)",
    )
    parser.add_argument(
        "--every-tick-floor",
        action="store_true",
        help="pipeline floor: forward every tick to the broker (default: the traded ticks)",
    )
    args = parser.parse_args()
    from benchmarks.bench_pipeline import RATE_ARMS

    rate_arms = tuple(a.strip() for a in args.pipeline_rate_arms.split(",") if a.strip())
    if not rate_arms or any(a not in RATE_ARMS for a in rate_arms):
        parser.error(
            f"--pipeline-rate-arms {args.pipeline_rate_arms!r}: choose from {', '.join(RATE_ARMS)}"
        )
    wanted = args.only or [
        "kernels", "recording", "journal", "rounds", "security", "pipeline", "recorder",
        "transport", "calibration",
    ]  # fmt: skip
    results: dict[str, Any] = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if "kernels" in wanted:
        from benchmarks import bench_kernels

        results["kernels"] = bench_kernels.run()
        print("kernels:", json.dumps(results["kernels"], indent=2))
    if "recording" in wanted:
        from benchmarks import bench_recording

        results["recording"] = bench_recording.run()
        print("recording:", json.dumps(results["recording"], indent=2))
    if "rounds" in wanted:
        from benchmarks import bench_rounds

        results["rounds"] = bench_rounds.run()
        print("rounds:", json.dumps(results["rounds"], indent=2))
    if "pipeline" in wanted:
        from benchmarks import bench_pipeline

        results["pipeline"] = bench_pipeline.run(
            args.pipeline_seconds, args.pipeline_pairs, args.every_tick_floor
        )
        summary = {k: v for k, v in results["pipeline"].items() if k != "runs"}
        print("pipeline:", json.dumps(summary, indent=2))
        pooled = results["pipeline"]["pooled"]
        if pooled:
            print(
                f"pipeline / floor, every trade of the {args.pipeline_pairs} pairs pooled: p50 "
                f"{pooled['p50_on_us']} vs {pooled['p50_off_us']} us, ratio "
                f"{pooled['ratio_p50']} (pair-level 90 % interval "
                f"{pooled['ratio_p50_ci90_runs']}), p99 ratio {pooled['ratio_p99']}"
            )
        print("\n".join(bench_pipeline.stage_table(results["pipeline"]["runs"])))
        print("\n".join(bench_pipeline.load_table(results["pipeline"]["runs"])))
        rates = [int(r) for r in args.pipeline_rates.split(",") if r.strip()]
        if rates:
            results["pipeline_rates"] = bench_pipeline.run_rates(
                rates, args.pipeline_seconds, rate_arms
            )
            print("pipeline / floor by rate (one pair per rate and arm):")
            print("\n".join(bench_pipeline.rates_table(results["pipeline_rates"])))
    if "journal" in wanted:
        from benchmarks import bench_journal

        results["journal"] = bench_journal.run()
        print("journal:", json.dumps(results["journal"], indent=2))
    if "recorder" in wanted:
        from benchmarks import bench_recorder

        if args.recorder_interleaved_seconds > 0:
            results["recorder_interleaved"] = bench_recorder.run_interleaved(
                args.recorder_interleaved_seconds
            )
            print("recorder (interleaved):", json.dumps(results["recorder_interleaved"], indent=2))
        if args.pipeline_pairs > 0:
            results["recorder"] = bench_recorder.run(args.pipeline_seconds, args.pipeline_pairs)
            summary = {k: v for k, v in results["recorder"].items() if k != "runs"}
            print("recorder (separate runs):", json.dumps(summary, indent=2))
    if "security" in wanted:
        from benchmarks import bench_security

        results["security"] = bench_security.run()  # prints its own table
        print("ledger:", json.dumps(results["security"]["ledger"]))
    if "transport" in wanted:
        from benchmarks import bench_transport

        results["transport"] = bench_transport.run(args.pipeline_seconds, args.pipeline_pairs)
        print("transport (CurveZMQ / plaintext, tags on / off):")
        print("\n".join(bench_transport.summary_table(results["transport"])))
        print("  target:", json.dumps(results["transport"]["target"]))
    if "calibration" in wanted:
        from benchmarks import bench_calibration

        results["calibration"] = bench_calibration.run()
        print("calibration:", json.dumps(results["calibration"], indent=2))
    out = Path("results/bench") / f"bench-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    write_json_atomic(out, results)
    print(f"written: {out}")


if __name__ == "__main__":
    main()

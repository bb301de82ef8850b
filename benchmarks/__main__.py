"""`make bench`: every benchmark, printed and written as JSON under ``results/bench/``.

Each figure is compared with a floor or a reference measured in the same run (a bare ZeroMQ
relay over the same hops, hdrh's own ``record_value``, a NumPy implementation of the same
algorithm, central coordination) and reported as a ratio; absolute times are context only (2
noisy vCPUs). Every figure that has a target is printed in its section and again at the end
(``targets`` in the JSON): measured, interval, reference, target, PASS / FAIL.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbsphere.runtime import write_json_atomic
from benchmarks.targets import target, target_line


def main() -> None:
    args, rate_arms, scale_cells, factors = _parse_args()
    wanted = args.only or [
        "kernels", "recording", "journal", "rounds", "security", "pipeline", "federated",
        "scale", "overload", "recorder", "transport", "calibration",
    ]  # fmt: skip
    results: dict[str, Any] = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    bench = _Bench(args, rate_arms, scale_cells, factors, results)
    started = time.monotonic()
    for name, section in SECTIONS:
        if name in wanted:
            section(bench)
    _finish(bench, started)


def _parse_args() -> tuple[
    argparse.Namespace, tuple[str, ...], list[tuple[int, int]], tuple[float, ...]
]:
    """The command line, with the by-rate arms, scale cells and overload factors parsed."""
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
            "federated",
            "scale",
            "overload",
        ],
        action="append",
    )
    _add_pipeline_options(parser)
    _add_section_options(parser)
    args = parser.parse_args()
    from benchmarks.bench_pipeline import RATE_ARMS

    rate_arms = tuple(a.strip() for a in args.pipeline_rate_arms.split(",") if a.strip())
    if not rate_arms or any(a not in RATE_ARMS for a in rate_arms):
        parser.error(
            f"--pipeline-rate-arms {args.pipeline_rate_arms!r}: choose from {', '.join(RATE_ARMS)}"
        )
    from benchmarks.bench_scale import parse_cells

    try:
        scale_cells = parse_cells(args.scale_cells)
        factors = tuple(float(f) for f in args.overload_factors.split(",") if f.strip())
    except ValueError as exc:
        parser.error(str(exc))
    return args, rate_arms, scale_cells, factors


def _add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """The pipeline, recorder and transport sections' options."""
    parser.add_argument("--pipeline-seconds", type=float, default=10.0)
    parser.add_argument(
        "--pipeline-rate",
        type=float,
        default=500.0,
        help="ticks/s per venue of the headline pipeline / floor pairs",
    )
    parser.add_argument(
        "--pipeline-pairs",
        type=int,
        default=3,
        help="alternating pairs of the pipeline (vs floor) and recorder (on vs off) benches, "
        "rounds of the transport bench (three arms in rotation)",
    )
    parser.add_argument(
        "--pipeline-rates",
        default="2000",
        help="context: the pipeline / floor pair again at these ticks/s per venue, one pair per "
        "rate and arm (comma-separated, e.g. 250,500,1000,2000; empty: skip)",
    )
    parser.add_argument(
        "--pipeline-rate-arms",
        default="default",
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
        "--transport-rate",
        type=float,
        default=500.0,
        help="ticks/s per venue of the transport comparison",
    )


def _add_section_options(parser: argparse.ArgumentParser) -> None:
    """The rounds, federated, scale and overload sections' options, and the pipeline floor's
    (last on the help page)."""
    parser.add_argument(
        "--rounds-seconds", type=float, default=3.0, help="rounds bench: seconds per phase"
    )
    parser.add_argument(
        "--rounds-pairs", type=int, default=3, help="rounds bench: alternating pairs"
    )
    parser.add_argument(
        "--federated-seconds",
        type=float,
        default=10.0,
        help="federated vs central: measured seconds per run (plus the campaigns' warm-up)",
    )
    parser.add_argument(
        "--federated-pairs", type=int, default=3, help="federated vs central: interleaved pairs"
    )
    parser.add_argument(
        "--scale-cells",
        default="all",
        help="scale: the NxM cells to run (venues x assets, comma-separated, e.g. 2x1,8x16; "
        "all: 2,4,8 x 1,4,16)",
    )
    parser.add_argument(
        "--scale-seconds", type=float, default=6.0, help="scale: measured seconds per cell"
    )
    parser.add_argument(
        "--scale-total-rate",
        type=float,
        default=4000.0,
        help="scale: ticks/s in total (each of N venues at total / N)",
    )
    parser.add_argument(
        "--overload-seconds", type=float, default=8.0, help="overload: measured seconds per arm"
    )
    parser.add_argument(
        "--overload-factors",
        default="1,2,4",
        help="overload: multiples of the default rate, one run each (1: the reference); "
        "the busy-core run follows",
    )
    parser.add_argument(
        "--no-busy-core", action="store_true", help="overload: skip the busy-core run"
    )
    parser.add_argument(
        "--every-tick-floor",
        action="store_true",
        help="pipeline floor: forward every tick to the broker (default: the traded ticks)",
    )


@dataclass
class _Bench:
    """One ``make bench``: the options, every section's results, and the targets judged."""

    args: argparse.Namespace
    rate_arms: tuple[str, ...]
    scale_cells: list[tuple[int, int]]
    factors: tuple[float, ...]
    results: dict[str, Any]
    targets: list[dict[str, Any]] = field(default_factory=list)

    def judged(self, found: list[dict[str, Any]]) -> None:
        """Print a section's targets and keep them for the summary."""
        self.targets.extend(found)
        if found:
            print("\n".join(target_line(t) for t in found))


def _kernels(b: _Bench) -> None:
    from benchmarks import bench_kernels

    b.results["kernels"] = bench_kernels.run()
    print("kernels:", json.dumps(b.results["kernels"], indent=2))


def _recording(b: _Bench) -> None:
    from benchmarks import bench_recording

    b.results["recording"] = bench_recording.run()
    print("recording:", json.dumps(b.results["recording"], indent=2))


def _rounds(b: _Bench) -> None:
    from benchmarks import bench_rounds

    args = b.args
    b.results["rounds"] = bench_rounds.run(args.rounds_seconds, args.rounds_pairs)
    print(
        f"rounds (one federated round vs the bare ROUTER/DEALER round trip, same sockets "
        f"and processes, {args.rounds_pairs} alternating pairs of {args.rounds_seconds:g} s "
        "per phase):"
    )
    print("\n".join(bench_rounds.summary_lines(b.results["rounds"])))
    b.judged(b.results["rounds"]["targets"])


def _pipeline(b: _Bench) -> None:
    from benchmarks import bench_pipeline

    args, results = b.args, b.results
    results["pipeline"] = bench_pipeline.run(
        args.pipeline_seconds, args.pipeline_pairs, args.every_tick_floor, args.pipeline_rate
    )
    summary = {k: v for k, v in results["pipeline"].items() if k not in ("runs", "targets")}
    print("pipeline:", json.dumps(summary, indent=2))
    pooled = results["pipeline"]["pooled"]
    if pooled:
        print(
            f"pipeline / floor at {args.pipeline_rate:g} ticks/s per venue, every trade of "
            f"the {args.pipeline_pairs} pairs pooled: p50 {pooled['p50_on_us']} vs "
            f"{pooled['p50_off_us']} us, ratio {pooled['ratio_p50']} (pair-level 90 % "
            f"interval {pooled['ratio_p50_ci90_runs']}), p99 ratio {pooled['ratio_p99']}"
        )
    print("\n".join(bench_pipeline.stage_table(results["pipeline"]["runs"])))
    print("\n".join(bench_pipeline.load_table(results["pipeline"]["runs"])))
    print("CPU per tick, each role against the floor relay at its hop (mean over pairs):")
    print("\n".join(bench_pipeline.cpu_table(results["pipeline"]["cpu_per_tick"])))
    b.judged(results["pipeline"]["targets"])
    rates = [int(r) for r in args.pipeline_rates.split(",") if r.strip()]
    if rates:
        results["pipeline_rates"] = bench_pipeline.run_rates(
            rates, args.pipeline_seconds, b.rate_arms
        )
        print("pipeline / floor by rate, context (one pair per rate and arm):")
        print("\n".join(bench_pipeline.rates_table(results["pipeline_rates"])))


def _federated(b: _Bench) -> None:
    from benchmarks import bench_federated

    b.results["federated"] = bench_federated.run(b.args.federated_seconds, b.args.federated_pairs)
    fed = b.results["federated"]
    print(
        f"federated ({bench_federated.FEDERATED.name}, protocol {fed['protocol']}) vs central "
        f"({bench_federated.CENTRAL.name}) at {fed['rate_hz_per_venue']:g} ticks/s per venue, "
        f"{fed['pairs']} interleaved pairs of {fed['duration_s']:g} s measured:"
    )
    print("\n".join(bench_federated.summary_lines(fed)))
    b.judged(fed["targets"])


def _scale(b: _Bench) -> None:
    from benchmarks import bench_scale

    args = b.args
    b.results["scale"] = bench_scale.run(b.scale_cells, args.scale_seconds, args.scale_total_rate)
    print(f"scale (venues N x assets M, campaigns built from {bench_scale.BASE}; context):")
    print("\n".join(bench_scale.scale_table(b.results["scale"])))


def _overload(b: _Bench) -> None:
    from benchmarks import bench_overload

    args = b.args
    b.results["overload"] = bench_overload.run(
        args.overload_seconds, b.factors, busy=not args.no_busy_core
    )
    print(
        f"overload and a busy core ({bench_overload.CAMPAIGN.name}, "
        f"{args.overload_seconds:g} s measured per run):"
    )
    print("\n".join(bench_overload.summary_table(b.results["overload"])))
    b.judged(b.results["overload"]["targets"])


def _journal(b: _Bench) -> None:
    from benchmarks import bench_journal

    b.results["journal"] = bench_journal.run()
    print("journal:", json.dumps(b.results["journal"], indent=2))


def _recorder(b: _Bench) -> None:
    from benchmarks import bench_recorder

    args, results = b.args, b.results
    if args.recorder_interleaved_seconds > 0:
        results["recorder_interleaved"] = bench_recorder.run_interleaved(
            args.recorder_interleaved_seconds
        )
        print("recorder (interleaved):", json.dumps(results["recorder_interleaved"], indent=2))
        row = results["recorder_interleaved"].get("tick_to_solve") or {}
        b.judged([target(
            "recorder", "recorder on / off tick_to_solve p99 (interleaved)",
            row.get("ratio_p99"), results["recorder_interleaved"]["target_ratio_p99"],
            interval=row.get("ratio_p99_ci90"), reference="same run, on/off periods",
        )])  # fmt: skip
    if args.pipeline_pairs > 0:
        results["recorder"] = bench_recorder.run(args.pipeline_seconds, args.pipeline_pairs)
        summary = {k: v for k, v in results["recorder"].items() if k != "runs"}
        print("recorder (separate runs):", json.dumps(summary, indent=2))


def _security(b: _Bench) -> None:
    from benchmarks import bench_security

    b.results["security"] = bench_security.run()  # prints its own table
    print("ledger:", json.dumps(b.results["security"]["ledger"]))


def _transport(b: _Bench) -> None:
    from benchmarks import bench_transport

    args = b.args
    b.results["transport"] = bench_transport.run(
        args.pipeline_seconds, args.pipeline_pairs, args.transport_rate
    )
    print(
        f"transport (CurveZMQ / plaintext, tags on / off) at {args.transport_rate:g} "
        "ticks/s per venue:"
    )
    print("\n".join(bench_transport.summary_table(b.results["transport"])))
    b.judged(b.results["transport"]["targets"])


def _calibration(b: _Bench) -> None:
    from benchmarks import bench_calibration

    b.results["calibration"] = bench_calibration.run()
    print("calibration:", json.dumps(b.results["calibration"], indent=2))


#: the sections in the order they run (``--only`` picks among them)
SECTIONS: tuple[tuple[str, Callable[[_Bench], None]], ...] = (
    ("kernels", _kernels),
    ("recording", _recording),
    ("rounds", _rounds),
    ("pipeline", _pipeline),
    ("federated", _federated),
    ("scale", _scale),
    ("overload", _overload),
    ("journal", _journal),
    ("recorder", _recorder),
    ("security", _security),
    ("transport", _transport),
    ("calibration", _calibration),
)


def _finish(b: _Bench, started: float) -> None:
    """The targets' summary, and the results written under ``results/bench/``."""
    results, targets = b.results, b.targets
    results["targets"] = targets
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    if targets:
        met = sum(t["met"] is True for t in targets)
        print(f"targets ({met} of {len(targets)} met; each against its reference in this run):")
        print("\n".join(f"  [{t['section']}]" + target_line(t)[1:] for t in targets))
    out = Path("results/bench") / f"bench-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    write_json_atomic(out, results)
    print(f"written: {out} ({results['elapsed_s'] / 60:.1f} min)")


if __name__ == "__main__":
    main()

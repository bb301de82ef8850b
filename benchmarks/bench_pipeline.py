"""Pipeline latency against its floor, measured side by side in one run.

1. The pipeline: the loopback campaign with central coordination (``loopback-central.toml``,
   the hops the bare relay reproduces; federated rounds are benched in ``bench_rounds``),
   shortened: its ``tick_to_trade`` percentiles.
2. The floor: the same devices, links, ZeroMQ hops and message sizes with a bare relay in place
   of the adapters and the coordinator (``benchmarks.bare_relay``), same rate and duration,
   carrying the pipeline's own traffic: every tick reaches the relay's middle hop, and exactly
   the ticks the pipeline traded on (same market seed, so the same device sequences) go on to
   the broker side with the pipeline's leg count, and every ACK comes back to the middle hop as
   an ExecutionReport-sized message (the pipeline's broker -> coordinator hop).
   ``--every-tick-floor`` forwards every tick instead (4000 orders/s through the broker side
   against the pipeline's ~100, which loads the broker device and the last hops and moves the
   floor's tail, not its median).

Prints both, the p50 / p99 ratios (target: p50 ratio <= 1.3, judged at 500 ticks/s per venue;
the 2,000/s pairs of the by-rate section are context), both stage by stage (the
floor's hop stamps against the pipeline's trace points) and each role's CPU per tick against the
floor relay's per hop (:func:`cpu_ratios`, target <= 1.5x). Pairs alternate which arm runs
first: an odd pair runs the floor first, over the previous pair's traded ticks (same seed, same
market), then the pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.adapters.backends import WIRING_PTY, BrokerLinkSpec, FeedLinkSpec, backend
from arbsphere.adapters.links import LinkParams
from arbsphere.clock import RealtimeClock
from arbsphere.kpi.analysis import pcts
from arbsphere.kpi.hdr import HdrRecorder
from arbsphere.kpi.summary import latency_summary
from arbsphere.rig.campaign_run import execute_campaign
from arbsphere.rig.config import Campaign, VenueConfig, load_campaign
from arbsphere.rig.orchestrator import EPHEMERAL_ENDPOINT, Orchestrator, bound_endpoints
from arbsphere.runtime import config_to_json
from benchmarks.bare_relay import FORWARD_DTYPE, RelayConfig
from benchmarks.bench_recorder import pooled_ratios, trace_samples
from benchmarks.targets import target


class RelayOrchestrator(Orchestrator):
    """Starts the bare relay roles in place of adapters and coordinator; ``forward``: the
    relay_mid's table of ticks to pass on (None: every tick)."""

    forward: Path | None = None

    def start(self) -> None:
        c = self.campaign
        mid_cfg = RelayConfig(
            role="mid", name="relay-mid", out_dir=str(self.proc_dir), bind=EPHEMERAL_ENDPOINT,
            out=EPHEMERAL_ENDPOINT, forward=None if self.forward is None else str(self.forward),
        )  # fmt: skip
        mid = self._relay(mid_cfg, "coordinator")
        ready = self.wait_file(mid, self.proc_dir / "relay-mid.ready.json")
        self.inbound, mid_out = bound_endpoints(ready, "relay-mid")
        self.outbound = mid_out
        b = c.broker
        port_file = self.proc_dir / "broker-device.port.json"
        dev = self.spawn(
            "broker-device", "broker_device", "arbsphere.firmware_interfaces.emulators.broker_udp",
            {"device_id": b.device_id, "bind_host": b.device_host, "bind_port": 0,
             "clock": {"offset_ns": 0, "drift_ppm": 0.0},
             "stats_path": str(self.proc_dir / "broker-device.stats.json"),
             "fill_mode": "full", "ready_path": str(port_file)},
        )  # fmt: skip
        port = int(self.wait_file(dev, port_file)["port"])
        params = LinkParams(name="relay-out", device_host=b.device_host, device_port=port)
        out = self._relay(
            RelayConfig(role="out", name="relay-out", out_dir=str(self.proc_dir),
                        broker=BrokerLinkSpec.of("udp", params), prev=mid_out,
                        reports_to=self.inbound),
            "broker_adapter",
        )  # fmt: skip
        self.wait_file(out, self.proc_dir / "relay-out.ready.json")
        for v in c.venues:
            self._start_relay_in(v)

    def _relay(self, cfg: RelayConfig, kind: str) -> Any:
        return self.spawn(cfg.name, kind, "benchmarks.bare_relay", config_to_json(cfg))

    def _start_relay_in(self, v: VenueConfig) -> None:
        port = v.port
        if backend(v.link).wiring == WIRING_PTY:
            port = self.open_pty(f"{v.name}-device")
        params = LinkParams(name=v.name, bind_host=v.bind_host, bind_port=v.bind_port, port=port,
                            baudrate=v.baudrate)  # fmt: skip
        cfg = RelayConfig(role="in", name=v.name, out_dir=str(self.proc_dir),
                          feed=FeedLinkSpec.of(v.link, params), next=self.inbound)  # fmt: skip
        role = self._relay(cfg, "venue_adapter")
        self._venue_ready[v.name] = self.wait_file(role, self.proc_dir / f"{v.name}.ready.json")


#: stage -> (pipeline trace later point, earlier point), (relay trace later, earlier)
STAGES = {
    "schedule_to_send": (("send_ns", "intended_ns"), ("send_ns", "intended_ns")),
    "feed_wire": (("rx_ns", "send_ns"), ("rx_ns", "send_ns")),
    "adapter": (("decoded_ns", "rx_ns"), ("in_tx_ns", "rx_ns")),
    "to_coordinator": (("coord_rx_ns", "decoded_ns"), ("mid_rx_ns", "in_tx_ns")),
    "coordinator": (("merge_done_ns", "coord_rx_ns"), ("mid_tx_ns", "mid_rx_ns")),
    "to_broker": (("broker_rx_ns", "merge_done_ns"), ("out_rx_ns", "mid_tx_ns")),
    "broker": (("order_tx_ns", "broker_rx_ns"), ("order_tx_ns", "out_rx_ns")),
    "order_wire": (("order_device_rx_ns", "order_tx_ns"), ("device_rx_ns", "order_tx_ns")),
}


def forward_file(run_dir: Path, path: Path) -> int:
    """The pipeline's traded ticks (venue, device sequence, legs) for the relay's middle hop;
    returns how many."""
    import pandas as pd

    trace = pd.read_parquet(run_dir / "trace.parquet", columns=["venue", "seq", "n_legs",
                                                                "order_tx_ns"])  # fmt: skip
    traded = trace[trace["order_tx_ns"].fillna(0) > 0]
    rows = np.zeros(len(traded), FORWARD_DTYPE)
    rows["venue"] = traded["venue"].to_numpy()
    rows["seq"] = traded["seq"].to_numpy()
    rows["legs"] = traded["n_legs"].to_numpy()
    np.save(path, rows)
    return len(rows)


def relay_samples(proc_dir: Path, measure_from_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The relay's trace rows in the measured window, and its tick_to_trade samples (ns) of
    the answered ones."""
    trace = np.load(proc_dir / "relay-out.trace.npy")
    trace = trace[trace["intended_ns"] >= measure_from_ns]
    done = trace[trace["device_rx_ns"] > 0]
    return trace, (done["device_rx_ns"] - done["intended_ns"]).astype(np.int64)


def relay_tick_to_trade(proc_dir: Path, measure_from_ns: int) -> dict[str, Any]:
    """The relay's tick_to_trade over the measured window (warm-up ticks excluded, as in the
    pipeline's KPIs), with its stages' p50 / p99 (µs)."""
    trace, samples = relay_samples(proc_dir, measure_from_ns)
    done = trace[trace["device_rx_ns"] > 0]
    rec = HdrRecorder()
    rec.record(samples)
    out = latency_summary(rec, unit="us")
    out["unanswered"] = int(len(trace) - len(done))
    stats = proc_dir / "relay-mid.stats.json"  # the reports relay_out sent back (every ACK's)
    out["reports_received"] = json.loads(stats.read_text())["reports"] if stats.exists() else None
    out["stages"] = {
        name: pcts((done[later] - done[earlier]).astype(np.float64), 1e3)
        for name, (_, (later, earlier)) in STAGES.items()
    }
    return out


def pipeline_stages(run_dir: Path, measure_from_ns: int) -> dict[str, dict[str, float | None]]:
    """The pipeline's traded ticks (those tick_to_trade counts), stage by stage as the relay's."""
    import pandas as pd

    t = pd.read_parquet(run_dir / "trace.parquet")
    t = t[(t["intended_ns"] >= measure_from_ns) & (t["order_device_rx_ns"].fillna(0) > 0)]
    return {
        name: pcts((t[later] - t[earlier]).to_numpy(np.float64, na_value=np.nan), 1e3)
        for name, ((later, earlier), _) in STAGES.items()
    }


def _one_pair(
    campaign: Campaign,
    clock: RealtimeClock,
    tmp: Path,
    k: int,
    every_tick: bool,
    samples: list[tuple[np.ndarray, np.ndarray]] | None = None,
    floor_first_over: Path | None = None,
) -> dict[str, Any]:
    """One pipeline run, then the floor over the ticks it traded; ``samples`` (if given)
    receives both arms' tick_to_trade samples (ns) for the pooled ratio. With
    ``floor_first_over`` (a forward file of an earlier pipeline run of the same campaign) the
    floor runs first, over those traded ticks, then the pipeline."""
    relay_dir = tmp / f"relay-{k}"
    relay_dir.mkdir()
    relay = RelayOrchestrator(campaign, relay_dir, clock)
    forwarded = None
    if floor_first_over is not None and not every_tick:
        relay.forward = floor_first_over
        forwarded = len(np.load(floor_first_over))
        outcome = relay.run()
        result = execute_campaign(campaign, clock, results_dir=tmp / f"pipeline-{k}")
    else:
        result = execute_campaign(campaign, clock, results_dir=tmp / f"pipeline-{k}")
        if not every_tick:
            relay.forward = relay_dir / "forward.npy"
            forwarded = forward_file(result.run_dir, relay.forward)
        outcome = relay.run()
    floor = relay_tick_to_trade(relay_dir / "proc", outcome.measure_from_ns)
    if samples is not None:
        samples.append((
            trace_samples(result.run_dir)["tick_to_trade"],
            relay_samples(relay_dir / "proc", outcome.measure_from_ns)[1],
        ))  # fmt: skip
    pipeline = dict(result.kpi["tick_to_trade"])
    measured_from = int(result.manifest["schedule"]["measure_from_ns"])
    pipeline["stages"] = pipeline_stages(result.run_dir, measured_from)
    ticks = round(campaign.duration_s * campaign.rate_hz) * len(campaign.venues)
    return {
        "first": "floor" if floor_first_over is not None and not every_tick else "pipeline",
        "forward_file": str(relay.forward) if relay.forward is not None else None,
        "forwarded_ticks": forwarded,
        "pipeline": pipeline,
        "floor": floor,
        # CPU in the measured window: the pipeline's extra work per tick is what loads the
        # shared CPUs, and every hop that wakes a process then waits longer for one
        "host_load": {
            "pipeline": result.kpi.get("host_load"),
            "floor": outcome.load.summary(ticks) if outcome.load is not None else None,
        },
        "ratio_p50": _ratio(pipeline, floor, "p50"),
        "ratio_p99": _ratio(pipeline, floor, "p99"),
        "complete": result.complete and outcome.complete,
        "reason": result.reason or outcome.reason,
    }


def _ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    return round(a[key] / b[key], 3) if a.get(key) and b.get(key) else None


#: the headline pipeline / floor pairs run at this rate (ticks/s per venue)
HEADLINE_RATE_HZ = 500
TARGET_RATIO_P50 = 1.3
#: a pipeline role's CPU per tick against the floor relay's at the same hop
TARGET_CPU_RATIO = 1.5
#: pipeline role -> the floor relay role at the same hop (devices and the orchestrator are
#: the same processes in both arms)
CPU_HOPS = {"coordinator": "relay-mid", "broker": "relay-out"}


def run(
    duration_s: float = 10.0,
    pairs: int = 3,
    every_tick: bool = False,
    rate_hz: float | None = HEADLINE_RATE_HZ,
) -> dict[str, Any]:
    """Alternate pipeline and floor ``pairs`` times, the arm that runs first alternating (A B,
    B A, A B ...; a floor that runs first carries the previous pair's traded ticks): this
    machine's run-to-run noise is large (identical runs differ up to 2x at p50), so every trade
    of every pair is pooled per arm, with the pair-level interval; each pair's figures are
    kept too. ``rate_hz``: ticks/s per venue (None: the campaign's 2,000)."""
    base = load_campaign(Path("campaigns/loopback-central.toml"))
    campaign: Campaign = dataclasses.replace(base, duration_s=duration_s, name="bench-pipeline")
    if rate_hz is not None:
        campaign = dataclasses.replace(campaign, rate_hz=rate_hz)
    clock = RealtimeClock()
    samples: list[tuple[np.ndarray, np.ndarray]] = []
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="arbsphere-bench-") as tmp:
        for k in range(pairs):
            over = None
            if k % 2 == 1 and runs and runs[-1]["forward_file"] is not None:
                over = Path(runs[-1]["forward_file"])
            runs.append(_one_pair(campaign, clock, Path(tmp), k, every_tick, samples, over))
    # every trade of every pair pooled per arm, with the pair-level 90 % interval (pairs
    # resampled, then trades within them): the host's drift between pairs is in it
    usable = [(a, b) for a, b in samples if len(a) and len(b)]
    pooled = (
        pooled_ratios([{"tick_to_trade": a} for a, _ in usable],
                      [{"tick_to_trade": b} for _, b in usable], keys=("tick_to_trade",))
        ["tick_to_trade"] if usable else None
    )  # fmt: skip
    p50s = [r["ratio_p50"] for r in runs if r["ratio_p50"] is not None]
    p99s = [r["ratio_p99"] for r in runs if r["ratio_p99"] is not None]
    cpu = cpu_ratios(runs)
    targets = []
    if pooled:
        targets.append(target(
            "pipeline", f"pipeline / floor tick_to_trade p50 at {campaign.rate_hz:g}/s per venue",
            pooled["ratio_p50"], TARGET_RATIO_P50, interval=pooled["ratio_p50_ci90_runs"],
            reference=f"{pooled['p50_on_us']:.0f} vs {pooled['p50_off_us']:.0f} us, {pairs} "
            "pairs pooled",
        ))  # fmt: skip
    for role, row in cpu["roles"].items():
        if row["hop"] is None:
            continue
        targets.append(target(
            "pipeline", f"CPU per tick, {role} / {row['hop']}", row["ratio"], TARGET_CPU_RATIO,
            interval=row["ratio_range"],
            reference=f"{row['pipeline_us']:.1f} vs {row['floor_us']:.1f} us per tick",
        ))  # fmt: skip
    return {
        "duration_s": duration_s,
        "pairs": pairs,
        "floor": "every tick" if every_tick else "the pipeline's traded ticks",
        "rate_hz_per_venue": campaign.rate_hz,
        "ratio_p50_median": float(np.median(p50s)) if p50s else None,
        "ratio_p99_median": float(np.median(p99s)) if p99s else None,
        "pooled": pooled,
        "pipeline_tick_to_trade_p50_us": [r["pipeline"]["p50"] for r in runs],
        "bare_relay_tick_to_trade_p50_us": [r["floor"]["p50"] for r in runs],
        "target_ratio_p50": TARGET_RATIO_P50,
        "cpu_per_tick": cpu,
        "targets": targets,
        "runs": runs,
    }


def cpu_ratios(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each pipeline role's CPU µs per tick (``host_load``, the measured window) against the
    floor relay role at the same hop: a venue adapter against the relay_in of its venue (same
    name), the coordinator against relay-mid, the broker adapter against relay-out. Per role:
    the mean over pairs of each arm, their ratio (``ratio``: mean / mean) and the range of the
    per-pair ratios (``ratio_range``); roles without a hop (the devices, the orchestrator: the
    same processes in both arms) have ``hop`` None and their two figures as context."""

    def roles(r: dict[str, Any], arm: str) -> dict[str, Any]:
        return ((r.get("host_load") or {}).get(arm) or {}).get("roles") or {}

    names = sorted({n for r in runs for n in roles(r, "pipeline")})
    out: dict[str, Any] = {}
    for name in names:
        floor_name = CPU_HOPS.get(name, name)  # a venue's relay_in carries its name
        hop = None if _same_process(name) else CPU_HOPS.get(name, f"relay-in {name}")
        a, b, per = [], [], []
        for r in runs:
            x = roles(r, "pipeline").get(name, {}).get("cpu_us_per_tick")
            y = roles(r, "floor").get(floor_name, {}).get("cpu_us_per_tick")
            if x is None or y is None:
                continue
            a.append(float(x))
            b.append(float(y))
            if y > 0:
                per.append(float(x) / float(y))
        if not a:
            continue
        mean_a, mean_b = float(np.mean(a)), float(np.mean(b))
        out[name] = {
            "hop": hop,
            "pipeline_us": round(mean_a, 2),
            "floor_us": round(mean_b, 2),
            "ratio": round(mean_a / mean_b, 3) if mean_b > 0 else None,
            "ratio_range": [round(min(per), 3), round(max(per), 3)] if per else None,
            "pairs": len(a),
        }
    return {"target_ratio": TARGET_CPU_RATIO, "roles": out}


def _same_process(name: str) -> bool:
    """Roles that are the same process in both arms (devices, the orchestrator)."""
    return name == "orchestrator" or name.endswith("-device")


def cpu_table(cpu: dict[str, Any]) -> list[str]:
    """One line per role: CPU µs per tick, pipeline against the floor's hop, ratio, range."""
    lines = [
        f"  {'role (CPU µs per tick)':24s} {'floor hop':>16s} {'pipeline':>9s} {'floor':>9s} "
        f"{'ratio':>7s} {'per pair':>16s}"
    ]
    for name, row in cpu["roles"].items():
        rng = row["ratio_range"]
        rng_s = f"[{rng[0]:.2f}, {rng[1]:.2f}]" if rng else "-"
        ratio = f"{row['ratio']:7.3f}" if row["ratio"] is not None else f"{'-':>7s}"
        hop = row["hop"] or "(same)"
        lines.append(
            f"  {name:24s} {hop:>16s} {row['pipeline_us']:9.1f} {row['floor_us']:9.1f} "
            f"{ratio} {rng_s:>16s}"
        )
    return lines


#: the by-rate section's arms: what the pipeline runs with (the floor is the same bare relay)
RATE_ARMS = {
    "default": "the campaign as configured: CurveZMQ + ZAP, per-message tags, replay journal",
    "unsecured": "plaintext transport, no tags, no journal: the pipeline without the journal's "
    "and security's share of the hot path",
}


def arm_campaign(base: Campaign, arm: str) -> Campaign:
    """``base`` as the by-rate arm ``arm`` runs it (see :data:`RATE_ARMS`)."""
    if arm == "default":
        return base
    if arm == "unsecured":
        return dataclasses.replace(
            base,
            security=dataclasses.replace(base.security, transport="plaintext", tags=False),
            journal=dataclasses.replace(base.journal, enabled=False),
        )
    raise ValueError(f"unknown by-rate arm {arm!r} (known: {', '.join(RATE_ARMS)})")


def rate_duration(duration_s: float, rate_hz: int, reference_hz: int = 500) -> float:
    """A pair's length at ``rate_hz``: ``duration_s``, longer below ``reference_hz`` so the
    low rates trade about as often as the reference (trades scale with ticks: at 250/s a
    10 s pair traded ~200 times, and its p50 moved +-15 % between identical pairs)."""
    return duration_s * max(1.0, reference_hz / rate_hz)


def run_rates(
    rates: list[int], duration_s: float = 10.0, arms: tuple[str, ...] = ("default",)
) -> dict[str, Any]:
    """The same pipeline / floor pair at other tick rates (one pair per rate and arm, lowest
    rate first; at each rate the arms' order is rotated so none always runs first).
    What the ratio gains with the rate is queueing on the host's CPUs (the pipeline's extra CPU
    per tick); what it keeps at the lowest rate, where every hop finds a CPU free, is the
    pipeline's longer path; the ``unsecured`` arm tells how much of either is the transport
    security and the journal."""
    unknown = [a for a in arms if a not in RATE_ARMS]
    if unknown or not arms:
        raise ValueError(f"by-rate arms {list(arms)}: known are {', '.join(RATE_ARMS)}")
    base = load_campaign(Path("campaigns/loopback-central.toml"))
    clock = RealtimeClock()
    rows = []
    with tempfile.TemporaryDirectory(prefix="arbsphere-bench-rates-") as tmp:
        k = 0
        for i, rate in enumerate(sorted(rates)):
            seconds = rate_duration(duration_s, rate)
            for arm in arms[i % len(arms) :] + arms[: i % len(arms)]:
                campaign = dataclasses.replace(
                    arm_campaign(base, arm), duration_s=seconds, rate_hz=rate,
                    name="bench-pipeline",
                )  # fmt: skip
                r = _one_pair(campaign, clock, Path(tmp), k, every_tick=False)
                k += 1
                load = r["host_load"]
                rows.append(
                    {
                        "rate_hz_per_venue": rate,
                        "arm": arm,
                        "duration_s": seconds,
                        "pipeline_p50_us": r["pipeline"]["p50"],
                        "floor_p50_us": r["floor"]["p50"],
                        "ratio_p50": r["ratio_p50"],
                        "ratio_p99": r["ratio_p99"],
                        "trades": r["pipeline"]["count"],
                        "rig_busy_pct": {
                            a: (load[a] or {}).get("rig_busy_pct") for a in ("pipeline", "floor")
                        },
                        "complete": r["complete"],
                    }
                )
    rows.sort(key=lambda row: (row["rate_hz_per_venue"], arms.index(row["arm"])))
    return {"duration_s": duration_s, "arms": {a: RATE_ARMS[a] for a in arms}, "rates": rows}


def rates_table(out: dict[str, Any]) -> list[str]:
    """One line per rate and arm: both p50s, the p50 / p99 ratios, the rig's CPU share in
    each arm."""
    lines = [
        f"  {'ticks/s/venue':>13s} {'arm':>9s} {'pipeline':>9s} {'floor':>9s} {'p50 ratio':>9s} "
        f"{'p99 ratio':>9s} {'trades':>6s} {'rig busy pipeline / floor':>26s}"
    ]
    for r in out["rates"]:
        busy = r["rig_busy_pct"]
        cells = [f"{busy[a]:.0f} %" if busy[a] is not None else "-" for a in ("pipeline", "floor")]
        lines.append(
            f"  {r['rate_hz_per_venue']:13d} {r.get('arm', 'default'):>9s} "
            f"{r['pipeline_p50_us'] or 0:9.1f} {r['floor_p50_us'] or 0:9.1f} "
            f"{r['ratio_p50'] or 0:9.3f} {r['ratio_p99'] or 0:9.3f} "
            f"{r['trades']:6d} {cells[0] + ' / ' + cells[1]:>26s}"
        )
    for arm, what in (out.get("arms") or {}).items():
        lines.append(f"  {arm}: {what}")
    return lines


def load_table(runs: list[dict[str, Any]]) -> list[str]:
    """Median over pairs of each role's CPU µs per tick and % of one CPU, both arms, and the
    rig's share of all CPUs (the measured window)."""
    lines = [f"  {'role (CPU µs/tick, % of one CPU)':34s} {'pipeline':>16s} {'floor':>16s}"]
    arms = ("pipeline", "floor")
    names = sorted(
        {n for r in runs for a in arms for n in ((r["host_load"][a] or {}).get("roles") or {})}
    )

    def med(arm: str, name: str, key: str) -> float | None:
        vals = [
            ((r["host_load"][arm] or {}).get("roles") or {}).get(name, {}).get(key) for r in runs
        ]
        vals = [v for v in vals if v is not None]
        return float(np.median(vals)) if vals else None

    for name in names:
        cells = []
        for arm in arms:
            us, pct = med(arm, name, "cpu_us_per_tick"), med(arm, name, "cpu_pct")
            cells.append(
                f"{us:7.1f} {pct:6.1f} %" if us is not None and pct is not None else f"{'-':>16s}"
            )
        lines.append(f"  {name:34s} {cells[0]:>16s} {cells[1]:>16s}")
    busy = []
    for arm in arms:
        vals = [
            float(v)
            for r in runs
            if (v := (r["host_load"][arm] or {}).get("rig_busy_pct")) is not None
        ]
        busy.append(f"{np.median(vals):14.1f} %" if vals else f"{'-':>16s}")
    lines.append(f"  {'rig busy, % of all CPUs':34s} {busy[0]:>16s} {busy[1]:>16s}")
    return lines


def stage_table(runs: list[dict[str, Any]]) -> list[str]:
    """Median over pairs of each stage's p50, pipeline against floor (µs)."""
    lines = [f"  {'stage':18s} {'pipeline':>9s} {'floor':>9s}"]
    for name in STAGES:
        a = [r["pipeline"]["stages"][name]["p50"] for r in runs]
        b = [r["floor"]["stages"][name]["p50"] for r in runs]
        a = [x for x in a if x is not None]
        b = [x for x in b if x is not None]
        med_a = f"{np.median(a):9.1f}" if a else f"{'-':>9s}"
        med_b = f"{np.median(b):9.1f}" if b else f"{'-':>9s}"
        lines.append(f"  {name:18s} {med_a} {med_b}")
    return lines


if __name__ == "__main__":
    import sys

    out = run(every_tick="--every-tick-floor" in sys.argv[1:])
    print(json.dumps(out, indent=2))
    print("\n".join(stage_table(out["runs"])))
    print("\n".join(load_table(out["runs"])))

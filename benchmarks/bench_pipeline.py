"""Pipeline latency against its floor, measured side by side in one run.

1. The pipeline: the loopback campaign with central coordination (``loopback-central.toml``,
   the hops the bare relay reproduces; federated rounds are benched in ``bench_rounds``),
   shortened: its ``tick_to_trade`` percentiles.
2. The floor: the same devices, links, ZeroMQ hops and message sizes with a bare relay in place
   of the adapters and the coordinator (``benchmarks.bare_relay``), same rate and duration.

Prints both and the p50 / p99 ratios (target for now: p50 ratio <= 1.3).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.clock import RealtimeClock
from arbsphere.kpi.hdr import Recorder
from arbsphere.kpi.summary import latency_summary
from arbsphere.rig.campaign_run import execute_campaign
from arbsphere.rig.config import Campaign, VenueConfig, load_campaign
from arbsphere.rig.orchestrator import EPHEMERAL_ENDPOINT, Orchestrator, bound_endpoints


class RelayOrchestrator(Orchestrator):
    """Starts the bare relay roles in place of adapters and coordinator."""

    def start(self) -> None:
        c = self.campaign
        mid = self._spawn(
            "relay-mid", "coordinator", "benchmarks.bare_relay",
            {"name": "relay-mid", "out_dir": str(self.proc_dir), "bind": EPHEMERAL_ENDPOINT,
             "out": EPHEMERAL_ENDPOINT},
        )  # fmt: skip
        ready = self._wait_file(mid, self.proc_dir / "relay-mid.ready.json")
        self.inbound, mid_out = bound_endpoints(ready, "relay-mid")
        self.outbound = mid_out
        b = c.broker
        ready = self.proc_dir / "broker-device.port.json"
        dev = self._spawn(
            "broker-device", "broker_device", "arbsphere.firmware_interfaces.emulators.broker_udp",
            {"device_id": 200, "bind_host": b.device_host, "bind_port": 0,
             "clock": {"offset_ns": 0, "drift_ppm": 0.0},
             "stats_path": str(self.proc_dir / "broker-device.stats.json"),
             "fill_mode": "full", "ready_path": str(ready)},
        )  # fmt: skip
        port = int(self._wait_file(dev, ready)["port"])
        out = self._spawn(
            "relay-out", "broker_adapter", "benchmarks.bare_relay",
            {"name": "relay-out", "out_dir": str(self.proc_dir), "link": "udp",
             "device_host": b.device_host, "device_port": port, "prev": mid_out},
        )  # fmt: skip
        self._wait_file(out, self.proc_dir / "relay-out.ready.json")
        for v in c.venues:
            self._start_relay_in(v)

    def _spawn(
        self, name: str, kind: str, module: str, cfg: dict[str, Any], pass_fds: tuple[int, ...] = ()
    ) -> Any:
        if module == "benchmarks.bare_relay":
            role_arg = {"relay-mid": "mid", "relay-out": "out"}.get(name, "in")
            cfg = {**cfg, "_role": role_arg}
        return super()._spawn(name, kind, module, cfg, pass_fds)

    def _start_relay_in(self, v: VenueConfig) -> None:
        cfg: dict[str, Any] = {
            "name": v.name, "out_dir": str(self.proc_dir), "link": v.link,
            "bind_host": v.bind_host, "bind_port": v.bind_port, "port": v.port,
            "baudrate": v.baudrate, "next": self.inbound,
        }  # fmt: skip
        if v.link == "serial":
            from arbsphere.adapters.pty import open_pty_pair

            master_fd, slave_path = open_pty_pair()
            self._pty_fds.append(master_fd)
            cfg["port"] = slave_path
        role = self._spawn(v.name, "venue_adapter", "benchmarks.bare_relay", cfg)
        ready = self._wait_file(role, self.proc_dir / f"{v.name}.ready.json")
        self._venue_ready[v.name] = (cfg, ready)


def relay_tick_to_trade(proc_dir: Path, measure_from_ns: int) -> dict[str, Any]:
    """The relay's tick_to_trade over the measured window (warm-up ticks excluded, as in the
    pipeline's KPIs)."""
    trace = np.load(proc_dir / "relay-out.trace.npy")
    trace = trace[trace["intended_ns"] >= measure_from_ns]
    done = trace[trace["device_rx_ns"] > 0]
    rec = Recorder()
    rec.record((done["device_rx_ns"] - done["intended_ns"]).astype(np.int64))
    out = latency_summary(rec, unit="us")
    out["unanswered"] = int(len(trace) - len(done))
    return out


def _one_pair(campaign: Campaign, clock: RealtimeClock, tmp: Path, k: int) -> dict[str, Any]:
    result = execute_campaign(campaign, clock, results_dir=tmp / f"pipeline-{k}")
    relay_dir = tmp / f"relay-{k}"
    relay_dir.mkdir()
    outcome = RelayOrchestrator(campaign, relay_dir, clock).run()
    floor = relay_tick_to_trade(relay_dir / "proc", outcome.measure_from_ns)
    pipeline = result.kpi["tick_to_trade"]
    return {
        "pipeline": pipeline,
        "floor": floor,
        "ratio_p50": _ratio(pipeline, floor, "p50"),
        "ratio_p99": _ratio(pipeline, floor, "p99"),
        "complete": result.complete and outcome.complete,
        "reason": result.reason or outcome.reason,
    }


def _ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    return round(a[key] / b[key], 3) if a.get(key) and b.get(key) else None


def run(duration_s: float = 10.0, pairs: int = 3) -> dict[str, Any]:
    """Alternate pipeline and floor ``pairs`` times (A B A B ...): this machine's run-to-run
    noise is large (identical runs differ up to 2x at p50), so the median of the per-pair
    ratios is the figure to quote; each pair's figures are kept too."""
    base = load_campaign(Path("campaigns/loopback-central.toml"))
    campaign: Campaign = dataclasses.replace(base, duration_s=duration_s, name="bench-pipeline")
    clock = RealtimeClock()
    with tempfile.TemporaryDirectory(prefix="arbsphere-bench-") as tmp:
        runs = [_one_pair(campaign, clock, Path(tmp), k) for k in range(pairs)]
    p50s = [r["ratio_p50"] for r in runs if r["ratio_p50"] is not None]
    p99s = [r["ratio_p99"] for r in runs if r["ratio_p99"] is not None]
    return {
        "duration_s": duration_s,
        "pairs": pairs,
        "rate_hz_per_venue": campaign.rate_hz,
        "ratio_p50_median": float(np.median(p50s)) if p50s else None,
        "ratio_p99_median": float(np.median(p99s)) if p99s else None,
        "pipeline_tick_to_trade_p50_us": [r["pipeline"]["p50"] for r in runs],
        "bare_relay_tick_to_trade_p50_us": [r["floor"]["p50"] for r in runs],
        "target_ratio_p50": 1.3,
        "runs": runs,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))

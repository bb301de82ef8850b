"""One campaign run from configuration to a complete (or incomplete) result set.

``execute_campaign`` = orchestrate the role processes, analyse their traces, and write
``latency.hlog``, ``trace.parquet``, ``kpi.json``, ``kpi.prom``, ``report.html`` and finally
``manifest.json``, signed by the run's authority into ``manifest.sig``. A run that ends early
(a role died, a device stopped) still writes a valid result set from whatever the surviving
roles recorded, marked ``"status": "incomplete"`` with the reason.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from arbsphere.clock import Clock
from arbsphere.clocksync import save_exchanges
from arbsphere.clocksync.alignment import (
    ClockTrack,
    DeviceClockTrack,
    RigTimebaseTrack,
    align_devices,
)
from arbsphere.kpi.analysis import analyse, build_kpi, write_hlog
from arbsphere.kpi.conformance import conformance_kpi
from arbsphere.kpi.federated_baseline import round_gaps
from arbsphere.kpi.governance import governance_kpi, security_section
from arbsphere.kpi.health import health_kpi
from arbsphere.kpi.prom import PROM_FILE, openmetrics_text
from arbsphere.kpi.report import render_report
from arbsphere.kpi.resultset import ResultSetWriter, sha256_file
from arbsphere.rig.config import Campaign
from arbsphere.rig.orchestrator import Orchestrator, RunOutcome, synced_devices
from arbsphere.rig.probe import device_findings


@dataclass
class CampaignResult:
    run_dir: Path
    complete: bool
    reason: str
    kpi: dict[str, Any]
    manifest: dict[str, Any]


def execute_campaign(
    campaign: Campaign,
    clock: Clock,
    *,
    results_dir: Path | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    run_dir: Path | None = None,
    orchestrator: type[Orchestrator] = Orchestrator,
    rig_timebase_adapters: frozenset[str] = frozenset(),
    manifest_extra: dict[str, Any] | None = None,
) -> CampaignResult:
    """Run ``campaign`` at its ``rate_hz`` into a new run directory under ``results_dir``
    (or into ``run_dir``, created, when given: a rate sweep's per-rate result sets).

    ``orchestrator`` starts the roles (a replay's drives the coordinator from a journal);
    ``rig_timebase_adapters`` are venues whose "device" stamps are already rig time (a journal
    player); ``manifest_extra`` is merged into the manifest (e.g. what a replay came from)."""
    if run_dir is None:
        base = results_dir if results_dir is not None else Path(campaign.results_dir)
        out = ResultSetWriter.new(base, campaign.name, clock.now_ns())
    else:
        out = ResultSetWriter(run_dir, campaign.name, clock.now_ns())
    orch = orchestrator(campaign, out.run_dir, clock)
    source = Path(campaign.source)
    if source.is_file():  # the campaign as run, for replays of this result set
        out.write_bytes("campaign.toml", source.read_bytes())
    outcome = orch.run(on_progress=on_progress)
    out.adopt_rest()  # what the roles wrote: proc/, journal/, ledger/, identities.json
    if on_progress is not None:
        on_progress(1.0, "analysing traces, writing the result set")
    start_at = outcome.measure_from_ns or clock.now_ns()  # the measured window (after warm-up)
    run = _AnalysedRun(campaign, out, outcome, start_at, rig_timebase_adapters)
    run.write_clock_tracks()
    kpi = run.write_kpi()
    out.set_status(outcome.complete, outcome.reason or "the orchestrator gave no reason")
    out.add(run.manifest_sections(kpi))
    out.add(manifest_extra or {})
    out.write_bytes(PROM_FILE, openmetrics_text(kpi.values, out.manifest()))
    run.write_report(kpi)
    # the authority's private key lives in memory for the registry's lifetime (cleanup() only
    # removes the roles' key files), so the run's authority signs its manifest here
    manifest = out.finish(signer=orch.registry.authority if orch.registry is not None else None)
    return CampaignResult(out.run_dir, outcome.complete, outcome.reason, kpi.values, manifest)


class _Kpi(NamedTuple):
    """What ``_AnalysedRun.write_kpi`` wrote."""

    values: dict[str, Any]  # kpi.json
    hlog: Path  # latency.hlog
    #: the manifest's security section (None: the run never got as far as a registry)
    security: dict[str, Any] | None


class _AnalysedRun:
    """A finished run's traces, aligned to the rig timebase and analysed, and the result-set
    artefacts written from them (clock tracks, latency.hlog, trace.parquet, kpi.json, the
    manifest's sections, report.html)."""

    def __init__(
        self, campaign: Campaign, out: ResultSetWriter, outcome: RunOutcome, start_at: int,
        rig_timebase_adapters: frozenset[str],
    ) -> None:  # fmt: skip
        self.campaign = campaign
        self.out = out
        self.outcome = outcome
        self.start_at = start_at
        self.proc_dir = out.run_dir / "proc"
        self.venue_names = [v.name for v in campaign.venues]
        self.devices = synced_devices(campaign)
        self.tracks = align_devices(self.proc_dir, self.devices, campaign.clock_sync.settings)
        clocks: dict[str, ClockTrack] = {d.adapter: self.tracks[d.device] for d in self.devices}
        for d in self.devices:
            if d.adapter in rig_timebase_adapters:
                clocks[d.adapter] = RigTimebaseTrack(d, "stamps taken on the rig timebase (replay)")
        self.analysis = analyse(
            self.proc_dir, self.venue_names, campaign.broker.name, start_at, campaign.interval_s,
            clocks=clocks, warmup_ticks=round(campaign.warmup_s * campaign.rate_hz),
        )  # fmt: skip

    def write_clock_tracks(self) -> None:
        """Each synchronised device's exchanges and, when fitted, its offset history."""
        for d in self.devices:
            track = self.tracks[d.device]
            self.out.write_with(
                f"clock-{d.device}.exchanges.npy",
                partial(save_exchanges, exchanges=track.exchanges),
            )
            if track.history is not None:
                self.out.write_with(
                    f"clock-{d.device}.history.npy",
                    partial(np.save, arr=track.history, allow_pickle=False),
                )

    def write_kpi(self) -> _Kpi:
        """latency.hlog, trace.parquet and kpi.json (with governance, host load and health)."""
        campaign, outcome, analysis, out = self.campaign, self.outcome, self.analysis, self.out
        start_at = self.start_at
        duration = (
            min(campaign.duration_s, max(0.0, (outcome.end_ns - start_at) / 1e9))
            if outcome.start_at_ns
            else 0.0
        )
        kpi = build_kpi(analysis, duration_s=duration, venue_names=self.venue_names,
                        broker_name=campaign.broker.name, n_assets=campaign.n_assets)  # fmt: skip
        comment = f"ArbSphere campaign {campaign.name} run {out.run_dir.name}; values in ns"
        hlog = out.write_with(
            "latency.hlog",
            lambda p: write_hlog(analysis, p, start_at, campaign.interval_s, comment),
        )
        out.write_with("trace.parquet", lambda p: analysis.ticks.to_parquet(p, index=False))
        security = None
        if outcome.security is not None:
            security = security_section(
                outcome.security, campaign.security, len(campaign.venues),
                campaign.coordinator.coordination, campaign.coordinator.protocol,
            )  # fmt: skip
            kpi["governance"] = governance_kpi(out.run_dir, security)
        host_load = (
            outcome.load.summary(int(kpi["throughput"]["ticks_in"]))
            if outcome.load is not None
            else {"note": "the run never reached its measured window"}
        )
        kpi["host_load"] = host_load
        kpi["conformance"] = conformance_kpi(
            self.proc_dir, analysis.stats, [(v.name, v.link) for v in campaign.venues],
            (campaign.broker.name, campaign.broker.link), rate_hz=campaign.rate_hz,
            warmup_ticks=round(campaign.warmup_s * campaign.rate_hz),
        )  # fmt: skip
        kpi["health"] = health_kpi(
            kpi, analysis.stats, budget_us=campaign.coordinator.budget_us,
            max_past_ms=campaign.security.max_past_ms,
        )  # fmt: skip
        out.write_json("kpi.json", kpi, sort_keys=False)  # stages in pipeline order
        return _Kpi(kpi, hlog, security)

    def manifest_sections(self, kpi: _Kpi) -> dict[str, Any]:
        """The run's own manifest sections: schedule, configuration, timebase, clock models,
        roles, journal, security, resources and method."""
        campaign, outcome, analysis = self.campaign, self.outcome, self.analysis
        timestamp_sources: dict[str, str] = {}
        link_settings = {name: stats.get("link_settings") for name, stats in analysis.stats.items()}
        timestamps: dict[str, Any] = {}
        for name, stats in analysis.stats.items():
            src = stats.get("timestamp_source")
            if isinstance(src, str):
                timestamp_sources[name] = src
            if isinstance(stats.get("timestamps"), dict):
                timestamps[name] = stats["timestamps"]
        return {
            "schedule": {
                "start_at_ns": outcome.start_at_ns,
                "warmup_s": campaign.warmup_s,
                "measure_from_ns": outcome.measure_from_ns,
                "end_ns": outcome.end_ns,
                "duration_s": campaign.duration_s,
                "rate_hz": campaign.rate_hz,
            },
            "config_file": campaign.source,
            "config_sha256": _maybe_hash(Path(campaign.source)),
            "config": campaign.resolved(),
            "timebase": "CLOCK_REALTIME ns (same clock as kernel SO_TIMESTAMPING software stamps)",
            "timestamp_source": timestamp_sources,
            # per adapter link: rx and tx stamp sources, why, PHC conversion and uncertainty
            "timestamps": timestamps,
            "devices": _with_arming(
                device_findings(campaign.venues, campaign.broker, link_settings), analysis.stats
            ),
            "clock_model": _clock_models(campaign, self.tracks),
            "roles": outcome.roles,
            "journal": _journal_entry(analysis.stats, campaign),
            "security": kpi.security,
            "resources": {**_resources(analysis.stats, outcome), "window": kpi.values["host_load"]},
            "method": {
                "latency": "HDR counts recorded in batches (Numba) from joined per-role trace "
                "tables; tick_to_trade from the tick's intended (open-loop) send time",
                "hdr": {
                    "lowest_ns": 1,
                    "highest_ns": analysis.recorders["solve"].spec.highest,
                    "significant_figures": analysis.recorders["solve"].spec.sig_figs,
                },
            },
        }

    def write_report(self, kpi: _Kpi) -> None:
        """report.html, from the KPIs, the hlog, the manifest so far, the clock offset
        histories and (federated) the per-round convergence gaps."""
        histories = {
            name: t.history
            for name, t in self.tracks.items()
            if t.history is not None and len(t.history)
        }
        per_round = round_gaps(self.proc_dir, self.venue_names)
        convergence = (
            None if per_round is None else {c: per_round[c].to_numpy() for c in per_round.columns}
        )
        out = self.out
        out.write_with("report.html", lambda p: render_report(
            kpi.values, kpi.hlog, out.manifest(), p, clock_histories=histories,
            convergence=convergence,
        ))  # fmt: skip


def _with_arming(
    devices: dict[str, dict[str, Any]], stats: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """``devices`` with, per hardware feed the rig armed, how it answered the start handshake
    (the venue adapter's ``arming`` stats: state, ARMs sent, the ARMED status and the device's
    own reading of the start)."""
    for name, role in stats.items():
        arming = role.get("arming") if isinstance(role, Mapping) else None
        if name in devices and isinstance(arming, Mapping):
            answer = arming.get("answer") or {}
            devices[name]["start_handshake"] = {
                "state": arming.get("state"), "arms_sent": arming.get("arms_sent"),
                "status": answer.get("status"), "start_device_ns": answer.get("start_device_ns"),
                "starts_sent": arming.get("starts_sent"),
            }  # fmt: skip
    return devices


def _clock_models(campaign: Campaign, tracks: dict[str, DeviceClockTrack]) -> dict[str, Any]:
    """How each device's timestamps reached the rig timebase."""
    out: dict[str, Any] = {}
    sync = campaign.clock_sync
    for name, track in sorted(tracks.items()):
        if track.synchronised:
            model = (
                "piecewise offset + drift from IEEE-1588-style two-way exchanges over the "
                f"device's own link at {sync.rate_hz:g} Hz (lucky-packet robust fit, "
                "step detection); each conversion uses the estimate valid at that time"
            )
        else:
            model = "unsynchronised: device time used as is; " + "; ".join(track.notes)
        out[name] = {"model": model, "exchanges": len(track.exchanges), "steps": track.steps}
    out["settings"] = dataclasses.asdict(sync.settings)
    return out


def _resources(stats: dict[str, dict[str, Any]], outcome: RunOutcome) -> dict[str, Any]:
    """CPU seconds per role and in total, with the run's span: evidence for how loaded the
    cores were (total_cpu_s / run_span_s against the number of cpus)."""
    span_s = max(1e-9, (outcome.end_ns - outcome.start_at_ns) / 1e9) if outcome.start_at_ns else 0
    out: dict[str, Any] = {"cpus": os.cpu_count(), "roles": {}}
    total = 0.0
    for name, s in sorted(stats.items()):
        cpu = s.get("cpu")
        if not isinstance(cpu, dict):
            continue
        used = float(cpu.get("user_s", 0.0)) + float(cpu.get("system_s", 0.0))
        total += used
        out["roles"][name] = {**cpu, "cpu_s": round(used, 3)}
    out["total_cpu_s"] = round(total, 3)
    out["note"] = "cpu_s includes each role's start-up (imports, JIT warm-up)"
    if span_s:
        out["run_span_s"] = round(span_s, 3)
    return out


def _journal_entry(stats: dict[str, dict[str, Any]], campaign: Campaign) -> dict[str, Any] | None:
    """Where the coordinator's replay journal is and its chain head (``arbsphere replay``)."""
    if not campaign.journal.enabled:
        return None
    head = stats.get("coordinator", {}).get("journal")
    notes = [] if head else ["the coordinator did not close its journal (no head)"]
    if campaign.journal.interleave_ms:
        notes.append("the recorder was interleaved on and off (a benchmark run): not replayable")
    return {
        "dir": "journal",
        "durability": campaign.journal.durability,
        "head": head,
        "interleave_ms": campaign.journal.interleave_ms,
        "note": "; ".join(notes) or None,
    }


def _maybe_hash(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None

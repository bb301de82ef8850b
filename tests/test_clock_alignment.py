"""Clock alignment in the analysis: device stamps on offset/drifting/stepping clocks, recovered
stage latencies against the injected ones, uncertainty bounds, unlocked samples kept out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_analysis import (
    ACK,
    DECODE,
    ENCODE,
    FEED,
    HOP1,
    HOP2,
    MERGE,
    SOLVE,
    T0,
    WIRE,
    _write_traces,
)

from arbsphere.adapters.sync_master import SYNC_TRACE_DTYPE
from arbsphere.clock import ClockStep, DeviceClock, RealtimeClock
from arbsphere.clocksync import ClockSyncSettings, ExchangeStatus
from arbsphere.clocksync.alignment import SyncedDevice, align_device, align_devices
from arbsphere.kpi.analysis import analyse, build_kpi

LEAD_NS = 4_000_000_000  # sync runs this long before the traffic (the orchestrator's lock lead)
FWD, BACK = 40_000, 40_000  # symmetric link delay of the exchange (ns)


def _clock(offset_ns: int, drift_ppm: float, steps: list[ClockStep] | None = None) -> DeviceClock:
    return DeviceClock(RealtimeClock(), offset_ns, drift_ppm, epoch_ns=T0, steps=steps or [])


def _dev(clock: DeviceClock, rig_ns: np.ndarray) -> np.ndarray:
    return np.array([clock.device_time(int(t)) for t in rig_ns], dtype=np.int64)


def _sync_table(
    clock: DeviceClock, device_id: int, end_ns: int, rng: np.random.Generator
) -> np.ndarray:
    t1 = np.arange(T0 - LEAD_NS, end_ns, 62_500_000, dtype=np.int64)  # 16 Hz
    fwd = FWD + rng.exponential(3_000, len(t1)).astype(np.int64)
    back = BACK + rng.exponential(3_000, len(t1)).astype(np.int64)
    r2 = t1 + fwd
    r3 = r2 + 15_000
    out = np.zeros(len(t1), SYNC_TRACE_DTYPE)
    out["device_id"] = device_id
    out["sync_seq"] = np.arange(1, len(t1) + 1)
    out["t1_ns"] = t1
    out["t2_ns"] = _dev(clock, r2)
    out["t3_ns"] = _dev(clock, r3)
    out["t4_ns"] = r3 + back
    return out


def _to_device_stamps(proc: Path, clocks: dict[str, DeviceClock]) -> None:
    """Rewrite the rig-time device stamps of _write_traces onto each device's own clock."""
    for venue in ("venue_a", "venue_b"):
        t = np.load(proc / f"{venue}.trace.npy")
        for col in ("intended_dev_ns", "send_dev_ns"):
            t[col] = _dev(clocks[venue], t[col])
        np.save(proc / f"{venue}.trace.npy", t)
    a = np.load(proc / "broker.acks.npy")
    for col in ("device_rx_dev_ns", "device_tx_dev_ns"):
        a[col] = _dev(clocks["broker"], a[col])
    np.save(proc / "broker.acks.npy", a)


DEVICES = [
    SyncedDevice("venue_a-device", "venue_a", 10),
    SyncedDevice("venue_b-device", "venue_b", 11),
    SyncedDevice("broker-device", "broker", 200),
]


def _run(tmp_path: Path, clocks: dict[str, DeviceClock], n: int = 8000) -> dict[str, Any]:
    _write_traces(tmp_path, n, 10)
    _to_device_stamps(tmp_path, clocks)
    end = T0 + n * 250_000 + 1_000_000_000
    rng = np.random.default_rng(5)
    for d in DEVICES:
        np.save(
            tmp_path / f"{d.adapter}.sync.npy",
            _sync_table(clocks[d.adapter], d.device_id, end, rng),
        )
    tracks = align_devices(tmp_path, DEVICES, ClockSyncSettings())
    a = analyse(tmp_path, ["venue_a", "venue_b"], "broker", T0, 0.25,
                clocks={d.adapter: tracks[d.device] for d in DEVICES})  # fmt: skip
    return build_kpi(a, duration_s=n * 250e-9 * 1e3, venue_names=["venue_a", "venue_b"],
                     broker_name="broker")  # fmt: skip


CLOCKS = {
    "venue_a": _clock(300_000_000, 50.0),
    "venue_b": _clock(-700_000_000, -120.0),
    "broker": _clock(-999_000_000, 180.0),
}


def test_offsets_and_drifts_recovered_and_latencies_within_uncertainty(tmp_path: Path) -> None:
    kpi = _run(tmp_path, CLOCKS)
    clock = kpi["clock"]["devices"]
    for name, truth in (("venue_a", CLOCKS["venue_a"]), ("venue_b", CLOCKS["venue_b"]),
                        ("broker", CLOCKS["broker"])):  # fmt: skip
        c = clock[f"{name}-device"]
        assert c["state"] == "locked" and c["synchronised"] and c["steps"] == 0
        assert c["drift_ppm"] == pytest.approx(truth.drift_ppm, abs=0.5)
        assert c["path_delay_us"] == pytest.approx(FWD / 1e3 + 3, abs=3)  # + queueing mean
        assert c["rejected"]["late"] == 0 and c["admitted"] == c["exchanges"]
    # Every cross-device stage comes out as injected, within its stated uncertainty.
    t2t = 2_000 + FEED + DECODE + HOP1 + SOLVE + MERGE + HOP2 + ENCODE + WIRE
    for stage, truth_ns in (("feed_wire", FEED), ("order_wire", WIRE), ("ack_wire", ACK)):
        s = kpi["stages"][stage]
        assert s["synchronised"] and 0 < s["uncertainty_us"] < 60, (stage, s)
        assert abs(s["p50"] - truth_ns / 1e3) <= s["uncertainty_us"], (stage, s)
        assert abs(s["p50"] - truth_ns / 1e3) <= 10, (stage, s)  # the 10 µs limit
    t = kpi["tick_to_trade"]
    assert abs(t["p50"] - t2t / 1e3) <= t["uncertainty_us"] and abs(t["p50"] - t2t / 1e3) <= 10
    # rig-side stages carry no clock uncertainty
    assert kpi["stages"]["solve"]["uncertainty_us"] == 0.0
    assert kpi["clock"]["excluded_samples"] == 0


def test_without_alignment_the_offsets_would_show(tmp_path: Path) -> None:
    _write_traces(tmp_path, 2000, 10)
    _to_device_stamps(tmp_path, CLOCKS)
    a = analyse(tmp_path, ["venue_a", "venue_b"], "broker", T0, 0.25)  # no clock tracks
    kpi = build_kpi(a, duration_s=0.5, venue_names=["venue_a", "venue_b"], broker_name="broker")
    s = kpi["stages"]["feed_wire"]
    assert s["synchronised"] is False and s["uncertainty_us"] is None
    assert s["negative"] > 0  # venue_a's +300 ms offset makes its wire times negative


def test_step_is_detected_and_unlocked_samples_are_excluded(tmp_path: Path) -> None:
    step_at = T0 + 1_000_000_000
    clocks = {**CLOCKS, "venue_a": _clock(300_000_000, 50.0, [ClockStep(step_at, 400_000)])}
    kpi = _run(tmp_path, clocks, n=16_000)  # 4 s of traffic, 2000 venue_a ticks per second
    a = kpi["clock"]["devices"]["venue_a-device"]
    assert a["steps"] == 1 and a["state"] == "locked"
    excluded = kpi["stages"]["feed_wire"]["excluded_unlocked"]
    # kept out: venue_a's ticks from the step until the servo re-locked (about 1 s: 8 lucky
    # exchanges with the drift held), not the rest of the run
    assert 0 < excluded <= 2_400
    assert kpi["stages"]["feed_wire"]["count"] == kpi["throughput"]["ticks_in"] - excluded
    # flagged 0.25 s intervals: from the last exchange that still fitted the old clock (the
    # step happened after it) to the re-lock, well inside 0.5 s .. 2.25 s
    flagged = kpi["clock"]["unlocked_intervals"]
    assert flagged and min(flagged) >= 2 and max(flagged) <= 8
    s = kpi["stages"]["feed_wire"]
    assert abs(s["p50"] - FEED / 1e3) <= min(10, s["uncertainty_us"])  # step did not leak in


def test_bad_exchanges_rejected_and_a_silent_device_unsynchronised() -> None:
    rng = np.random.default_rng(1)
    table = _sync_table(CLOCKS["venue_a"], 10, T0 + 2_000_000_000, rng)
    bad = table[:4].copy()
    bad["device_id"][0] = 99  # unknown device
    bad["t4_ns"][1] = bad["t1_ns"][1] + 3_000_000_000  # late (3 s after SYNC left)
    bad["t1_ns"][2] = 0  # answers a SYNC this rig never sent... with a seq already seen:
    raw = np.concatenate([table, bad])  # 4 duplicates/unknown/late appended after the real ones
    track = align_device(SyncedDevice("venue_a-device", "venue_a", 10), raw, ClockSyncSettings())
    st = track.exchanges["status"]
    assert (st == ExchangeStatus.ADMITTED).sum() == len(table)
    assert track.rejected["unknown_device"] == 1 and track.rejected["duplicate"] == 3
    silent = align_device(SyncedDevice("x-device", "x", 12), None, ClockSyncSettings())
    assert not silent.synchronised and silent.summary()["state"] == "unsynchronised"
    conv = silent.convert(np.array([5, 6]))
    assert conv.rig_ns.tolist() == [5, 6] and not conv.synchronised.any()

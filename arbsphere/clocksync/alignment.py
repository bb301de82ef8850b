"""Device timestamps onto the rig timebase, with an uncertainty for every conversion.

Each adapter ran a sync master over its device link and saved every DELAY_REQ it received
(``proc/<adapter>.sync.npy``: device id, sync_seq, t1..t4). Here, after the run and
deterministically, each device's exchanges go through the gate (unknown device, duplicate, out of
order, late, inconsistent — rejected and counted, never estimated from), then through the
estimator (lucky packets, robust offset/drift fit, step detection, servo state); the estimate
history becomes a piecewise clock model that converts the device's timestamps with the
estimate valid at each moment and says whether the device was locked then.

A device with no admitted exchange (sync disabled, or a device that never answered) gets no
model: its timestamps stay on the device clock, marked *unsynchronised*, never presented as
aligned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.clocksync import (
    EXCHANGE_DTYPE,
    ClockEstimator,
    ClockSyncSettings,
    ExchangeGate,
    ExchangeStatus,
    PiecewiseClockModel,
    ServoState,
    SyncExchange,
)


@dataclass(frozen=True)
class SyncedDevice:
    """A device whose clock the rig aligns: the adapter that exchanged with it, its id."""

    device: str  # role name, e.g. "venue_a-device"
    adapter: str  # role that ran the sync master, e.g. "venue_a"
    device_id: int


@dataclass
class Converted:
    """Device timestamps converted to rig time (ns), per timestamp."""

    rig_ns: np.ndarray  # int64; the device value itself where unsynchronised
    uncertainty_ns: np.ndarray  # float64; inf where unsynchronised
    synchronised: np.ndarray  # bool
    locked: np.ndarray  # bool


@dataclass
class DeviceClockTrack:
    """What clock alignment knows about one device over the run."""

    spec: SyncedDevice
    exchanges: np.ndarray  # EXCHANGE_DTYPE, every received DELAY_REQ with its verdict
    rejected: dict[str, int]
    history: np.ndarray | None = None
    steps: int = 0
    model: PiecewiseClockModel | None = None
    coverage_k: float = 3.0
    notes: list[str] = field(default_factory=list)

    @property
    def synchronised(self) -> bool:
        return self.model is not None

    def convert(self, device_ns: np.ndarray, rig_hint_ns: np.ndarray | None = None) -> Converted:
        d = np.asarray(device_ns, dtype=np.int64)
        if self.model is None:
            none = np.zeros(d.shape, dtype=bool)
            return Converted(d.copy(), np.full(d.shape, np.inf), none, none.copy())
        out = self.model.convert_array(d, rig_hint_ns)
        return Converted(out.rig_ns, out.uncertainty_ns, out.synchronised, out.locked)

    def summary(self) -> dict[str, Any]:
        """``kpi.json`` ``clock.<device>``: the final estimate and how it was reached."""
        admitted = int((self.exchanges["status"] == ExchangeStatus.ADMITTED).sum())
        out: dict[str, Any] = {
            "device_id": self.spec.device_id,
            "exchanged_by": self.spec.adapter,
            "exchanges": len(self.exchanges),
            "admitted": admitted,
            "rejected": self.rejected,
            "steps": self.steps,
            "synchronised": self.synchronised,
        }
        h = self.history
        fitted = None if h is None else h[np.isfinite(h["ref_offset_ns"])]
        if fitted is None or not len(fitted):
            out.update(
                offset_us=None, drift_ppm=None, path_delay_us=None, uncertainty_us=None,
                state="unsynchronised", locked_fraction=0.0,
            )  # fmt: skip
            return out
        last = fitted[-1]
        assert self.model is not None
        out.update(
            offset_us=round(float(last["offset_ns"]) / 1e3, 3),
            drift_ppm=round(float(last["drift_ppm"]), 4),
            path_delay_us=round(float(last["path_delay_ns"]) / 1e3, 3),
            min_rtt_us=round(float(last["min_rtt_ns"]) / 1e3, 3),
            residual_us=round(float(last["residual_ns"]) / 1e3, 3),
            uncertainty_us=round(float(last["uncertainty_ns"]) / 1e3, 3),
            state=ServoState(int(h[-1]["state"])).name.lower(),  # type: ignore[index]
            locked_fraction=round(float(self.model.locked.mean()), 4),
        )
        return out


def _raw_exchanges(path: Path) -> np.ndarray | None:
    if not path.exists():
        return None
    return np.load(path, allow_pickle=False)


def align_device(
    spec: SyncedDevice, raw: np.ndarray | None, settings: ClockSyncSettings
) -> DeviceClockTrack:
    """Gate and estimate one device's exchanges (``raw``: a sync master's saved table)."""
    gate = ExchangeGate([spec.device_id], settings)
    est = ClockEstimator(settings)
    rows = [] if raw is None else raw.tolist()
    judged = np.zeros(len(rows), dtype=EXCHANGE_DTYPE)
    unmatched = 0
    failure: str | None = None
    seen: set[int] = set()
    for i, (device_id, seq, t1, t2, t3, t4) in enumerate(rows):
        ex = SyncExchange(int(device_id), int(seq), int(t1), int(t2), int(t3), int(t4))
        if t1 == 0 and seq not in seen and device_id == spec.device_id:
            # a reply to a SYNC this rig never sent: nothing to pair it with
            status = ExchangeStatus.INCONSISTENT
            unmatched += 1
        else:
            status = gate.offer(ex)
        seen.add(int(seq))
        judged[i] = (device_id, seq, t1, t2, t3, t4, int(status))
        if status is ExchangeStatus.ADMITTED and failure is None:
            try:
                est.update(ex)
            except (ValueError, ArithmeticError) as exc:
                # the estimator refused this exchange sequence: the device stays unaligned
                # from here on rather than the whole analysis failing
                failure = f"estimation stopped at exchange seq {seq}: {exc}"
    counts = gate.totals()
    rejected = {k: v for k, v in counts.items() if k != "admitted"}
    rejected["unmatched"] = unmatched
    track = DeviceClockTrack(
        spec, judged, rejected, coverage_k=settings.coverage_k, steps=est.steps
    )
    history = est.history()
    track.history = history
    if failure is not None:
        track.notes.append(failure)  # no model: the device's times stay marked unsynchronised
    elif len(history) and np.isfinite(history["ref_offset_ns"]).any():
        track.model = PiecewiseClockModel(history, spec.device_id, settings.coverage_k)
    elif raw is None:
        track.notes.append("no clock-sync exchanges recorded (sync disabled or not run)")
    else:
        track.notes.append("the device never completed an admissible exchange")
    return track


def align_devices(
    proc_dir: Path, devices: list[SyncedDevice], settings: ClockSyncSettings
) -> dict[str, DeviceClockTrack]:
    """One track per device, from ``proc/<adapter>.sync.npy``."""
    return {
        d.device: align_device(d, _raw_exchanges(proc_dir / f"{d.adapter}.sync.npy"), settings)
        for d in devices
    }


class RigTimebaseTrack:
    """A "device" whose timestamps are already rig time (a journal player on the rig host):
    conversions are exact, always synchronised and locked, with zero uncertainty."""

    def __init__(self, spec: SyncedDevice, note: str) -> None:
        self.spec = spec
        self.note = note
        self.synchronised = True
        self.history: np.ndarray | None = None
        self.exchanges = np.zeros(0, dtype=EXCHANGE_DTYPE)
        self.steps = 0
        self.notes = [note]

    def convert(self, device_ns: np.ndarray, rig_hint_ns: np.ndarray | None = None) -> Converted:
        d = np.asarray(device_ns, dtype=np.int64)
        ones = np.ones(d.shape, dtype=bool)
        return Converted(d.copy(), np.zeros(d.shape), ones, ones.copy())

    def summary(self) -> dict[str, Any]:
        return {
            "device_id": self.spec.device_id, "exchanged_by": self.spec.adapter,
            "synchronised": True, "state": "rig-timebase", "offset_us": 0.0, "drift_ppm": 0.0,
            "path_delay_us": None, "uncertainty_us": 0.0, "steps": 0, "exchanges": 0,
            "admitted": 0, "rejected": {}, "locked_fraction": 1.0, "note": self.note,
        }  # fmt: skip


#: what the analysis converts a device's timestamps with
ClockTrack = DeviceClockTrack | RigTimebaseTrack

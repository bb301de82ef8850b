"""Clock models: convert device timestamps to rig time, with an uncertainty per conversion.

A synchronised model is a frozen snapshot of an estimate::

    device = rig + a + b·(rig − t_ref)        a = offset at t_ref (ns), b = drift (ppm·1e-6)

Conversions subtract ``t_ref`` in integers first, so the floating-point part only ever sees
differences (float64 cannot hold epoch ns ~1.8e18 to the ns), and round half to even; rig→device
and device→rig are exact inverses to within 1 ns for ``|t − t_ref| < 2**53`` ns. Scalar and
array conversions do the same IEEE operations in the same order and agree bit for bit.

Uncertainty of a conversion at rig time t (ns)::

    u(t) = asymmetry + k·sqrt(var(a) + (t − t_ref)²·var(b))

``asymmetry`` is half the mean round trip of the fitted (lucky) exchanges: an unknown split of
the path between directions biases the offset by up to that much and no measurement on the link
can tell. The second term is the fit's prediction error and grows when extrapolating.

A device that never produced an estimate gets :meth:`ClockModel.unsynchronised`: conversions
pass device time through but are flagged ``synchronised=False`` with infinite uncertainty, so a
caller can keep them out of headline figures instead of silently treating them as aligned.

:class:`PiecewiseClockModel` replays an estimator's history over a run: each timestamp is
converted with the estimate valid at that time and reports whether the servo was LOCKED then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

I64Array = npt.NDArray[np.int64]
F64Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class ServoState(IntEnum):
    UNLOCKED = 0  # no fit (too few lucky samples); a previous fit may be held over
    LOCKING = 1  # fitting; window span, residual or free drift not good enough yet
    LOCKED = 2


#: One row per estimator update (see ``estimator.ClockEstimator.history``). The model columns
#: (``ref_ns`` .. ``asymmetry_ns``) rebuild the :class:`ClockModel` valid from ``time_ns``;
#: they are NaN (``ref_ns`` 0) until the first fit.
HISTORY_DTYPE = np.dtype(
    [
        ("time_ns", "<i8"),  # rig-time midpoint of the exchange
        ("seq", "<u8"),
        ("rtt_ns", "<i8"),
        ("sample_offset_ns", "<f8"),  # this exchange's measured offset
        ("lucky", "?"),
        ("pending", "u1"),  # step candidates pending after this update
        ("step", "?"),  # a step was confirmed at this update
        ("step_ns", "<f8"),  # its size (new − old estimate at time_ns), else 0
        ("state", "u1"),
        ("n_fit", "<u4"),
        ("offset_ns", "<f8"),  # estimate at time_ns
        ("drift_ppm", "<f8"),
        ("path_delay_ns", "<f8"),
        ("min_rtt_ns", "<i8"),
        ("residual_ns", "<f8"),  # robust scale (1.4826·MAD) of the fit residuals
        ("uncertainty_ns", "<f8"),  # at time_ns
        ("ref_ns", "<i8"),
        ("ref_offset_ns", "<f8"),
        ("drift", "<f8"),
        ("offset_var_ns2", "<f8"),
        ("drift_var", "<f8"),
        ("asymmetry_ns", "<f8"),
    ]
)


@dataclass(frozen=True, slots=True)
class Conversion:
    """One device timestamp converted to rig time."""

    rig_ns: int
    uncertainty_ns: float
    synchronised: bool
    locked: bool


@dataclass(frozen=True, slots=True)
class ConversionArray:
    """Device timestamps converted to rig time, with per-timestamp flags."""

    rig_ns: I64Array
    uncertainty_ns: F64Array
    synchronised: BoolArray
    locked: BoolArray


@dataclass(frozen=True, slots=True)
class ClockModel:
    """device = rig + offset_ns + drift·(rig − ref_ns); see the module docstring."""

    device_id: int
    synchronised: bool
    state: ServoState = ServoState.UNLOCKED
    ref_ns: int = 0
    offset_ns: float = 0.0
    drift: float = 0.0
    offset_var_ns2: float = math.inf
    drift_var: float = math.inf
    asymmetry_ns: float = math.inf
    coverage_k: float = 3.0

    def __post_init__(self) -> None:
        if self.synchronised:
            values = (self.offset_ns, self.drift, self.offset_var_ns2, self.drift_var)
            if not all(math.isfinite(v) for v in values) or not math.isfinite(self.asymmetry_ns):
                raise ValueError(f"device {self.device_id}: synchronised model needs finite values")
            if not -0.5 < self.drift < 0.5:
                raise ValueError(f"device {self.device_id}: drift {self.drift!r} is not a clock")

    @classmethod
    def unsynchronised(cls, device_id: int) -> ClockModel:
        """The marker model of a device without an estimate (identity, flagged, infinite u)."""
        return cls(device_id, synchronised=False)

    @classmethod
    def from_history_row(cls, row: np.void, device_id: int, coverage_k: float = 3.0) -> ClockModel:
        """The model a :data:`HISTORY_DTYPE` row describes (unsynchronised before any fit)."""
        if not math.isfinite(float(row["ref_offset_ns"])):
            return cls.unsynchronised(device_id)
        return cls(
            device_id,
            synchronised=True,
            state=ServoState(int(row["state"])),
            ref_ns=int(row["ref_ns"]),
            offset_ns=float(row["ref_offset_ns"]),
            drift=float(row["drift"]),
            offset_var_ns2=float(row["offset_var_ns2"]),
            drift_var=float(row["drift_var"]),
            asymmetry_ns=float(row["asymmetry_ns"]),
            coverage_k=coverage_k,
        )

    @property
    def drift_ppm(self) -> float:
        return self.drift * 1e6

    @property
    def locked(self) -> bool:
        return self.synchronised and self.state is ServoState.LOCKED

    # -- scalar ---------------------------------------------------------------------------
    def offset_at(self, rig_ns: int) -> float:
        """Estimated device − rig at rig time ``rig_ns`` (ns)."""
        return self.offset_ns + self.drift * float(rig_ns - self.ref_ns)

    def to_device(self, rig_ns: int) -> int:
        if not self.synchronised:
            return rig_ns
        return rig_ns + round(self.offset_ns + self.drift * float(rig_ns - self.ref_ns))

    def to_rig(self, device_ns: int) -> int:
        if not self.synchronised:
            return device_ns
        return self.ref_ns + round(
            (float(device_ns - self.ref_ns) - self.offset_ns) / (1.0 + self.drift)
        )

    def uncertainty_at(self, rig_ns: int) -> float:
        if not self.synchronised:
            return math.inf
        dt = float(rig_ns - self.ref_ns)
        return self.asymmetry_ns + self.coverage_k * math.sqrt(
            self.offset_var_ns2 + dt * dt * self.drift_var
        )

    def convert(self, device_ns: int) -> Conversion:
        rig = self.to_rig(device_ns)
        return Conversion(rig, self.uncertainty_at(rig), self.synchronised, self.locked)

    # -- arrays ---------------------------------------------------------------------------
    def to_device_array(self, rig_ns: npt.ArrayLike) -> I64Array:
        r = np.asarray(rig_ns, dtype=np.int64)
        if not self.synchronised:
            return r.copy()
        corr = self.offset_ns + self.drift * (r - np.int64(self.ref_ns)).astype(np.float64)
        return r + np.rint(corr).astype(np.int64)

    def to_rig_array(self, device_ns: npt.ArrayLike) -> I64Array:
        d = np.asarray(device_ns, dtype=np.int64)
        if not self.synchronised:
            return d.copy()
        u = ((d - np.int64(self.ref_ns)).astype(np.float64) - self.offset_ns) / (1.0 + self.drift)
        return np.int64(self.ref_ns) + np.rint(u).astype(np.int64)

    def uncertainty_array(self, rig_ns: npt.ArrayLike) -> F64Array:
        r = np.asarray(rig_ns, dtype=np.int64)
        if not self.synchronised:
            return np.full(r.shape, np.inf)
        dt = (r - np.int64(self.ref_ns)).astype(np.float64)
        return self.asymmetry_ns + self.coverage_k * np.sqrt(
            self.offset_var_ns2 + dt * dt * self.drift_var
        )

    def convert_array(self, device_ns: npt.ArrayLike) -> ConversionArray:
        rig = self.to_rig_array(device_ns)
        return ConversionArray(
            rig,
            self.uncertainty_array(rig),
            np.full(rig.shape, self.synchronised),
            np.full(rig.shape, self.locked),
        )


class PiecewiseClockModel:
    """The estimate history of one device as a model over the whole run.

    Row i of the history is valid for rig times ``[time_ns[i], time_ns[i+1])``. A timestamp
    before the first fit is unsynchronised. A timestamp counts as locked when its row's servo
    state was LOCKED with no step candidate pending; when a step is confirmed, the rows from the
    last sample that still agreed with the old fit up to the confirmation are marked unlocked
    too, since the step happened somewhere in there (their conversions used the old fit).

    Device timestamps are placed by their device time: row i starts at device time
    ``to_device(time_ns[i])`` under the latest fit at that row (the first fit for rows before
    it). A negative step makes device time repeat; such timestamps go to the later row. Pass
    ``rig_hint_ns`` (e.g. the rig receive time of the message) to look rows up by rig time.
    """

    def __init__(self, history: np.ndarray, device_id: int, coverage_k: float = 3.0) -> None:
        if history.dtype != HISTORY_DTYPE or history.ndim != 1:
            raise ValueError(f"expected a 1-d HISTORY_DTYPE array, got {history.dtype}")
        self.device_id = device_id
        self.history = history
        # Midpoints of consecutive exchanges can be out of order by a round trip; lookups use
        # their running maximum so the row boundaries are sorted.
        self.time_ns = np.maximum.accumulate(history["time_ns"].astype(np.int64))
        locked = (history["state"] == ServoState.LOCKED) & (history["pending"] == 0)
        good = history["lucky"] & (history["pending"] == 0) & ~history["step"]
        for s in np.flatnonzero(history["step"]):
            before = np.flatnonzero(good[:s])
            locked[(before[-1] if len(before) else 0) : s] = False
        self.locked = locked
        self.synchronised = np.isfinite(history["ref_offset_ns"])
        self._coverage_k = coverage_k
        # Per-row model parameters (identity for rows without a fit), gathered per timestamp.
        self._ref = np.where(self.synchronised, history["ref_ns"], 0).astype(np.int64)
        self._off = np.where(self.synchronised, history["ref_offset_ns"], 0.0)
        self._drift = np.where(self.synchronised, history["drift"], 0.0)
        self._ovar = np.where(self.synchronised, history["offset_var_ns2"], np.inf)
        self._dvar = np.where(self.synchronised, history["drift_var"], np.inf)
        self._asym = np.where(self.synchronised, history["asymmetry_ns"], np.inf)
        # Row boundaries in device time, each placed with the latest fit at that row (rows
        # before the first fit with the first fit: their device times are unknown otherwise).
        fitted = np.flatnonzero(self.synchronised)
        if len(fitted):
            p = np.maximum.accumulate(np.where(self.synchronised, np.arange(len(history)), 0))
            p = np.where(np.arange(len(history)) < fitted[0], fitted[0], p)
            corr = self._off[p] + self._drift[p] * (self.time_ns - self._ref[p]).astype(np.float64)
            starts = self.time_ns + np.rint(corr).astype(np.int64)  # ClockModel.to_device
        else:
            starts = self.time_ns.copy()
        self._device_starts = np.maximum.accumulate(starts) if len(starts) else starts

    def model_at(self, rig_ns: int) -> ClockModel:
        """The snapshot valid at rig time ``rig_ns`` (unsynchronised before the first row)."""
        i = int(np.searchsorted(self.time_ns, rig_ns, side="right")) - 1
        if i < 0:
            return ClockModel.unsynchronised(self.device_id)
        return ClockModel.from_history_row(self.history[i], self.device_id, self._coverage_k)

    def convert_array(
        self, device_ns: npt.ArrayLike, rig_hint_ns: npt.ArrayLike | None = None
    ) -> ConversionArray:
        """Convert with the row valid at each timestamp (same arithmetic as ClockModel)."""
        d = np.asarray(device_ns, dtype=np.int64)
        if rig_hint_ns is None:
            idx = np.searchsorted(self._device_starts, d, side="right") - 1
        else:
            hint = np.asarray(rig_hint_ns, dtype=np.int64)
            idx = np.searchsorted(self.time_ns, hint, side="right") - 1
        have = idx >= 0
        i = np.where(have, idx, 0)
        if len(self.history) == 0:
            sync = np.zeros(d.shape, dtype=bool)
            return ConversionArray(d.copy(), np.full(d.shape, np.inf), sync, sync.copy())
        sync = have & self.synchronised[i]
        ref = np.where(sync, self._ref[i], 0).astype(np.int64)
        off = np.where(sync, self._off[i], 0.0)
        drift = np.where(sync, self._drift[i], 0.0)
        u = ((d - ref).astype(np.float64) - off) / (1.0 + drift)
        rig = np.where(sync, ref + np.rint(u).astype(np.int64), d)
        dt = (rig - ref).astype(np.float64)
        with np.errstate(invalid="ignore"):
            unc = self._asym[i] + self._coverage_k * np.sqrt(
                self._ovar[i] + dt * dt * self._dvar[i]
            )
        unc = np.where(sync, unc, np.inf)
        locked = sync & self.locked[i]
        return ConversionArray(rig, unc, sync, locked)

    def convert(self, device_ns: int, rig_hint_ns: int | None = None) -> Conversion:
        hint = None if rig_hint_ns is None else [rig_hint_ns]
        out = self.convert_array([device_ns], hint)
        return Conversion(
            int(out.rig_ns[0]),
            float(out.uncertainty_ns[0]),
            bool(out.synchronised[0]),
            bool(out.locked[0]),
        )

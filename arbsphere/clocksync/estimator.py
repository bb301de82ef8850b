"""Per-device clock offset/drift estimation from admitted two-way exchanges (rig side).

The rig models each device clock as ``offset(t) = a + b·(t − t_ref)`` on the rig timebase
(t = exchange midpoint ``(t1 + t4) / 2``); the device never servos its clock. Each
:meth:`ClockEstimator.update` (deterministic: no clock reads, no randomness):

1. appends the exchange to the run's samples and slides the window to the last
   ``window_ns`` (never before the last step restart);
2. **lucky packets**: an exchange is lucky when its round trip is at most
   ``max(min_rtt + lucky_floor_ns, quantile(window rtts, lucky_quantile))``. Queueing on
   either direction lengthens the round trip, so short round trips carry the least queueing
   error; the others are counted as filtered but kept (their rtt feeds the statistics);
3. **steps**: a new sample whose residual against the current fit exceeds
   ``max(step_floor_ns, step_n_mad·scale)`` plus half its round-trip excess over the minimum
   (the most queueing can shift an offset) becomes a step candidate and is kept out of the
   fit (the scale is the path's — the last fit over ``min_samples`` — while a window just
   restarted by a step has fewer). ``step_confirm`` *lucky* candidates of one sign, with no
   lucky sample agreeing with the fit between them, confirm a step (a long round trip's
   offset carries queueing of unknown split; a real step moves the lucky samples too): it is
   counted, the window restarts at the first candidate, the drift is held at its pre-step
   value until the new window spans ``drift_hold_span_ns``, and the servo falls back to
   LOCKING. A lucky sample that agrees with the fit clears the candidates, which stay
   excluded as outliers;
4. **fit**: Huber IRLS over the window's lucky, non-excluded samples, started from a
   Theil–Sen slope of an evenly strided subsample and the median intercept. Times and offsets
   are taken relative to the window's first sample in integers before converting to float64
   (epoch ns do not fit float64 to the ns). With a held drift only the intercept is fitted.
   The fit's variances give the model's prediction error;
5. **servo**: UNLOCKED without a fit (a previous fit is held over), LOCKED when a free-drift
   fit has ``min_samples`` samples spanning ``lock_min_span_ns`` (after a step, with the drift
   held: ``min_samples`` samples of the new window) with robust residual scale
   <= ``lock_max_residual_ns`` (a LOCKED servo stays so up to ``unlock_residual_ns``) and no
   step candidate is pending, LOCKING otherwise.

Every update appends a :data:`~arbsphere.clocksync.model.HISTORY_DTYPE` row; the history
replays into a :class:`~arbsphere.clocksync.model.PiecewiseClockModel`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from arbsphere.clocksync.exchange import ExchangeStatus, SyncExchange, iter_exchanges
from arbsphere.clocksync.model import HISTORY_DTYPE, ClockModel, F64Array, ServoState
from arbsphere.clocksync.settings import ClockSyncSettings

MAD_TO_SIGMA = 1.4826
#: the "short round trip" of a window that lucky_max_ratio scales
LUCKY_BASE_QUANTILE = 0.05
#: a fitted frequency error beyond this (1000 ppm) is not a clock: the fit is discarded
MAX_DRIFT = 1e-3
#: Points of the Theil–Sen start (pairs grow quadratically; the IRLS refines on all samples).
THEIL_SEN_POINTS = 32
#: IRLS stops when the fitted line moves less than this anywhere in the window (ns).
IRLS_TOLERANCE_NS = 0.1


@dataclass(frozen=True, slots=True)
class EstimateUpdate:
    """What one exchange changed. ``offset_ns``/``drift_ppm`` are NaN until the first fit."""

    device_id: int
    seq: int
    time_ns: int
    state: ServoState
    lucky: bool
    step: bool
    step_ns: float
    offset_ns: float
    drift_ppm: float
    path_delay_ns: float
    min_rtt_ns: int
    residual_ns: float
    uncertainty_ns: float


@dataclass(frozen=True, slots=True)
class _Fit:
    ref_ns: int
    offset_ns: float  # at ref_ns
    drift: float
    scale_ns: float
    offset_var: float
    drift_var: float
    n: int
    span_ns: int
    held: bool
    asymmetry_ns: float

    def offset_at(self, t_ns: int) -> float:
        return self.offset_ns + self.drift * float(t_ns - self.ref_ns)


class _Column:
    """A growable int64/float/bool column with amortised appends."""

    def __init__(self, dtype: str) -> None:
        self.buf = np.zeros(256, dtype=dtype)
        self.n = 0

    def append(self, value: int | float | bool) -> None:
        if self.n == len(self.buf):
            self.buf = np.concatenate([self.buf, np.zeros_like(self.buf)])
        self.buf[self.n] = value
        self.n += 1

    def view(self, start: int) -> np.ndarray:
        return self.buf[start : self.n]


class ClockEstimator:
    """Offset/drift estimator of one device; feed it that device's admitted exchanges in order."""

    def __init__(self, settings: ClockSyncSettings | None = None) -> None:
        self.settings = settings if settings is not None else ClockSyncSettings()
        self.device_id: int | None = None
        self._last_seq: int | None = None
        self._t = _Column("<i8")  # midpoint, rig ns
        self._x2 = _Column("<i8")  # 2·offset, ns
        self._rtt = _Column("<i8")
        self._excluded = _Column("?")
        self._start = 0  # first sample of the window
        self._pending: list[int] = []  # step candidates (sample indices), one sign
        self._pending_lucky: list[bool] = []  # which of them are lucky (only those confirm)
        #: robust scale of the last fit over >= min_samples samples: a window just restarted
        #: by a step fits a few samples (held drift) whose scale says little about the path
        self._path_scale: float | None = None
        self._pending_positive = False
        self._held: tuple[float, float] | None = None  # (drift, drift variance) after a step
        self._fit: _Fit | None = None
        self._state = ServoState.UNLOCKED
        self._history = np.zeros(256, dtype=HISTORY_DTYPE)
        self._n_hist = 0
        self.steps = 0
        self.filtered = 0
        self.outliers = 0

    @property
    def state(self) -> ServoState:
        return self._state

    @property
    def samples(self) -> int:
        return self._t.n

    def model(self) -> ClockModel:
        """Snapshot of the current estimate (unsynchronised before the first fit)."""
        device_id = -1 if self.device_id is None else self.device_id
        if self._fit is None:
            return ClockModel.unsynchronised(device_id)
        f = self._fit
        return ClockModel(
            device_id,
            synchronised=True,
            state=self._state,
            ref_ns=f.ref_ns,
            offset_ns=f.offset_ns,
            drift=f.drift,
            offset_var_ns2=f.offset_var,
            drift_var=f.drift_var,
            asymmetry_ns=f.asymmetry_ns,
            coverage_k=self.settings.coverage_k,
        )

    def history(self) -> np.ndarray:
        """A copy of every update's row (:data:`HISTORY_DTYPE`)."""
        return self._history[: self._n_hist].copy()

    # -- update -----------------------------------------------------------------------------
    def update(self, ex: SyncExchange) -> EstimateUpdate:
        """Take one admitted exchange of this estimator's device (seq strictly increasing)."""
        self._check(ex)
        s = self.settings
        t = ex.midpoint_ns
        rtt = ex.round_trip_ns
        x2 = ex.offset2_ns
        self._t.append(t)
        self._x2.append(x2)
        self._rtt.append(rtt)
        self._excluded.append(False)
        idx = self._t.n - 1
        self._slide(t)

        min_rtt, threshold = self._threshold()
        lucky = rtt <= threshold
        if not lucky:
            self.filtered += 1

        old = self._fit
        step = False
        if old is not None:
            # Queueing can move a sample's offset by at most half its round-trip excess over
            # the minimum; a residual beyond the threshold plus that cannot be queueing.
            resid = x2 / 2 - old.offset_at(t)
            scale = old.scale_ns
            if old.n < s.min_samples and self._path_scale is not None:
                scale = max(scale, self._path_scale)
            limit = max(s.step_floor_ns, s.step_n_mad * scale)
            if abs(resid) - (rtt - min_rtt) / 2 > limit:
                positive = resid > 0
                if self._pending and positive != self._pending_positive:
                    self._clear_pending()  # opposite sign: the earlier ones were outliers
                self._pending_positive = positive
                self._pending.append(idx)
                self._pending_lucky.append(lucky)
                self._excluded.buf[idx] = True
                self.outliers += 1
                # Only lucky candidates confirm: a long round trip's offset carries queueing
                # whose split between the directions is unknown (on a loaded host the split of
                # the base path drifts too), while a real step moves the lucky samples as well.
                step = lucky and sum(self._pending_lucky) >= s.step_confirm
            elif lucky and abs(resid) <= limit:
                self._clear_pending()  # a good sample agrees with the fit: isolated outliers
        if step:
            assert old is not None
            self._excluded.buf[self._pending] = False
            self.outliers -= len(self._pending)
            self._start = self._pending[0]
            self._clear_pending()
            self._held = (old.drift, old.drift_var)
            self.steps += 1
            min_rtt, threshold = self._threshold()

        fit = self._refit(threshold)
        if fit is not None:
            self._fit = fit
            if fit.n >= s.min_samples:
                self._path_scale = fit.scale_ns
        self._state = self._servo_state(fit)
        step_ns = 0.0
        if step and self._fit is not None and old is not None:
            step_ns = self._fit.offset_at(t) - old.offset_at(t)
        return self._record(ex, t, rtt, x2, lucky, step, step_ns, min_rtt)

    def _check(self, ex: SyncExchange) -> None:
        if self.device_id is None:
            self.device_id = ex.device_id
        elif ex.device_id != self.device_id:
            raise ValueError(
                f"estimator of device {self.device_id} fed exchange of device {ex.device_id}"
            )
        if self._last_seq is not None and ex.seq <= self._last_seq:
            raise ValueError(
                f"device {ex.device_id}: seq {ex.seq} after {self._last_seq} (gate the exchanges)"
            )
        if ex.t4 < ex.t1 or ex.t3 < ex.t2 or ex.round_trip_ns < 0:
            raise ValueError(f"device {ex.device_id} seq {ex.seq}: inconsistent timestamps")
        self._last_seq = ex.seq

    def _slide(self, t_now: int) -> None:
        # Midpoints are nearly but not strictly sorted (round trips differ); the window start
        # only moves forward past samples older than the window, never past the newest.
        cutoff = t_now - self.settings.window_ns
        times = self._t.buf
        last = self._t.n - 1
        while self._start < last and times[self._start] < cutoff:
            self._start += 1
        keep = [k for k, i in enumerate(self._pending) if i >= self._start]
        if len(keep) < len(self._pending):
            self._pending = [self._pending[k] for k in keep]
            self._pending_lucky = [self._pending_lucky[k] for k in keep]

    def _clear_pending(self) -> None:
        self._pending.clear()
        self._pending_lucky.clear()

    def _threshold(self) -> tuple[int, float]:
        """(min rtt, lucky threshold) of the current window."""
        s = self.settings
        rtts = self._rtt.view(self._start)
        min_rtt = int(rtts.min())
        q = _quantile(rtts, s.lucky_quantile)
        # ... and never more than lucky_max_ratio x the path's short round trips (a low
        # quantile, robust to one odd sample): when the path gets faster (an idle device
        # becomes busy and wakes faster), the slow-regime samples drop out of the fit at once
        # instead of biasing it for a whole window
        fast = s.lucky_max_ratio * _quantile(rtts, LUCKY_BASE_QUANTILE)
        return min_rtt, max(min_rtt + s.lucky_floor_ns, min(q, fast))

    def _refit(self, threshold: float) -> _Fit | None:
        s = self.settings
        t_all = self._t.view(self._start)
        rtt_all = self._rtt.view(self._start)
        sel = (rtt_all <= threshold) & ~self._excluded.view(self._start)
        n = int(sel.sum())
        if n == 0:
            return None
        t = t_all[sel]
        x2 = self._x2.view(self._start)[sel]
        rtt = rtt_all[sel]
        span = int(t.max() - t.min())
        held = self._held
        if held is not None and span >= s.drift_hold_span_ns and n >= s.min_samples:
            self._held = held = None
        if held is None and n < s.min_samples:
            return None
        t0 = int(t[0])
        y20 = int(x2[0])
        x = (t - t0).astype(np.float64)
        y = (x2 - y20).astype(np.float64) * 0.5
        res = _huber_fit(x, y, None if held is None else held[0], s)
        if res is None:
            return None
        xc, a_c, b, scale, sum_w, sxx = res
        if not abs(b) <= MAX_DRIFT:
            # no oscillator drifts that much: a degenerate window (few samples, close in time,
            # across a regime change), not a clock; keep the previous fit
            return None
        ref_ns = t0 + round(xc)
        offset = 0.5 * y20 + a_c + b * (float(ref_ns - t0) - xc)
        drift_var = held[1] if held is not None else scale * scale / sxx
        return _Fit(
            ref_ns=ref_ns,
            offset_ns=offset,
            drift=b,
            scale_ns=scale,
            offset_var=scale * scale / sum_w,
            drift_var=drift_var,
            n=n,
            span_ns=span,
            held=held is not None,
            asymmetry_ns=float(rtt.mean()) / 2,
        )

    def _servo_state(self, fit: _Fit | None) -> ServoState:
        s = self.settings
        if fit is None:
            return ServoState.UNLOCKED
        limit = s.unlock_residual_ns if self._state is ServoState.LOCKED else s.lock_max_residual_ns
        # After a step the drift is held at its pre-step estimate (a step moves the phase, not
        # the frequency): the offset alone needs min_samples lucky samples to lock again, not a
        # whole lock_min_span_ns of free-drift fitting.
        # The fit must also *predict* well: its offset and drift errors propagated to the edge
        # of the window (where the estimate is used) within lock_max_error_ns. A noisy link
        # (a pty with user-space stamps) needs more samples for that than a quiet one.
        half_span = 0.5 * fit.span_ns
        predicted = s.coverage_k * math.sqrt(fit.offset_var + fit.drift_var * half_span**2)
        max_error = s.lock_max_error_ns * (2.0 if self._state is ServoState.LOCKED else 1.0)
        if (
            not self._pending  # an unexplained sample may be the start of a step
            and fit.n >= s.min_samples
            and (fit.held or fit.span_ns >= s.lock_min_span_ns)
            and fit.scale_ns <= limit
            # hysteresis as for the residual: a LOCKED servo keeps its lock up to twice the limit
            and predicted <= max_error
        ):
            return ServoState.LOCKED
        return ServoState.LOCKING

    def _record(
        self,
        ex: SyncExchange,
        t: int,
        rtt: int,
        x2: int,
        lucky: bool,
        step: bool,
        step_ns: float,
        min_rtt: int,
    ) -> EstimateUpdate:
        if self._n_hist == len(self._history):
            self._history = np.concatenate([self._history, np.zeros_like(self._history)])
        row = self._history[self._n_hist]
        self._n_hist += 1
        f = self._fit
        nan = math.nan
        offset = f.offset_at(t) if f is not None else nan
        drift_ppm = f.drift * 1e6 if f is not None else nan
        path_delay = f.asymmetry_ns if f is not None else nan
        residual = f.scale_ns if f is not None else nan
        model = self.model()
        unc = model.uncertainty_at(t)
        row["time_ns"] = t
        row["seq"] = ex.seq
        row["rtt_ns"] = rtt
        row["sample_offset_ns"] = x2 / 2
        row["lucky"] = lucky
        row["pending"] = min(len(self._pending), 255)
        row["step"] = step
        row["step_ns"] = step_ns
        row["state"] = int(self._state)
        row["n_fit"] = f.n if f is not None else 0
        row["offset_ns"] = offset
        row["drift_ppm"] = drift_ppm
        row["path_delay_ns"] = path_delay
        row["min_rtt_ns"] = min_rtt
        row["residual_ns"] = residual
        row["uncertainty_ns"] = unc
        row["ref_ns"] = f.ref_ns if f is not None else 0
        row["ref_offset_ns"] = f.offset_ns if f is not None else nan
        row["drift"] = f.drift if f is not None else nan
        row["offset_var_ns2"] = f.offset_var if f is not None else nan
        row["drift_var"] = f.drift_var if f is not None else nan
        row["asymmetry_ns"] = f.asymmetry_ns if f is not None else nan
        return EstimateUpdate(
            device_id=ex.device_id,
            seq=ex.seq,
            time_ns=t,
            state=self._state,
            lucky=lucky,
            step=step,
            step_ns=step_ns,
            offset_ns=offset,
            drift_ppm=drift_ppm,
            path_delay_ns=path_delay,
            min_rtt_ns=min_rtt,
            residual_ns=residual,
            uncertainty_ns=unc,
        )


def _median(v: F64Array) -> float:
    """Median by partition (np.median's generality costs more than the sort here)."""
    n = len(v)
    h = n // 2
    if n % 2:
        return float(np.partition(v, h)[h])
    p = np.partition(v, (h - 1, h))
    return 0.5 * (float(p[h - 1]) + float(p[h]))


def _robust_scale(r: F64Array, floor: float) -> float:
    return max(MAD_TO_SIGMA * _median(np.abs(r - _median(r))), floor)


def _quantile(v: np.ndarray, q: float) -> float:
    """``np.quantile(v, q)`` (linear interpolation) by partition."""
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    p = np.partition(v, (lo, hi)) if hi != lo else np.partition(v, lo)
    vlo = float(p[lo])
    return vlo + (float(p[hi]) - vlo) * (pos - lo)


@functools.cache
def _theil_sen_pairs(m: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(m, k=1)
    return i, j


def _theil_sen_slope(x: F64Array, y: F64Array) -> float:
    n = len(x)
    m = min(n, THEIL_SEN_POINTS)
    if m < 2:
        return 0.0
    idx = (np.arange(m) * (n - 1)) // (m - 1)  # evenly strided, first and last included
    xs, ys = x[idx], y[idx]
    i, j = _theil_sen_pairs(m)
    dx = xs[j] - xs[i]
    ok = dx > 0
    if not ok.any():
        return 0.0
    return _median((ys[j] - ys[i])[ok] / dx[ok])


def _huber_fit(
    x: F64Array, y: F64Array, held_drift: float | None, s: ClockSyncSettings
) -> tuple[float, float, float, float, float, float] | None:
    """Huber IRLS of y = a + b·x; returns (xc, a at xc, b, scale, Σw, Σw(x−xc)²).

    The Huber scale is fixed from the residuals of the robust start (Theil–Sen slope, median
    intercept); the returned scale is re-estimated from the final residuals. With
    ``held_drift`` only the intercept is fitted. None when the drift is free and the samples
    span no time.
    """
    free = held_drift is None
    b = _theil_sen_slope(x, y) if held_drift is None else held_drift
    a = _median(y - b * x)
    c = s.huber_k * _robust_scale(y - (a + b * x), s.scale_floor_ns)
    span = float(x.max() - x.min())
    w = np.ones_like(x)
    for _ in range(s.irls_iterations):
        absr = np.abs(y - (a + b * x))
        w = c / np.maximum(absr, c)  # 1 inside the Huber corner, c/|r| outside
        sw = float(w.sum())
        xc = float(w @ x) / sw
        yc = float(w @ y) / sw
        b_new = b
        if free:
            wdx = w * (x - xc)
            sxx = float(wdx @ (x - xc))
            if sxx <= 0.0:
                return None
            b_new = float(wdx @ (y - yc)) / sxx
        a_new = yc - b_new * xc
        done = abs(a_new - a) + abs(b_new - b) * span < IRLS_TOLERANCE_NS
        a, b = a_new, b_new
        if done:
            break
    scale = _robust_scale(y - (a + b * x), s.scale_floor_ns)
    sw = float(w.sum())
    xc = float(w @ x) / sw
    dx = x - xc
    sxx = float((w * dx) @ dx)
    if free and sxx <= 0.0:
        return None
    return xc, a + b * xc, b, scale, sw, sxx


def estimate_offline(
    exchanges: np.ndarray, device_id: int, settings: ClockSyncSettings | None = None
) -> ClockEstimator:
    """Re-run the estimator on a stored exchange array (admitted rows of ``device_id``)."""
    est = ClockEstimator(settings)
    for ex in iter_exchanges(exchanges, device_id, ExchangeStatus.ADMITTED):
        est.update(ex)
    return est

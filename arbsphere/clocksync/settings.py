"""Settings of clock synchronisation: one validated, frozen record shared by gate and estimator.

Every time is in integer ns of the rig timebase (or a plain ns duration); rates are fractions.
An invalid value raises :class:`~arbsphere.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from arbsphere.errors import ConfigError

_INT_KEYS = (
    "max_age_ns",
    "window_ns",
    "min_samples",
    "lucky_floor_ns",
    "irls_iterations",
    "step_floor_ns",
    "step_confirm",
    "drift_hold_span_ns",
    "lock_min_span_ns",
)


@dataclass(frozen=True)
class ClockSyncSettings:
    """Rules of the exchange gate, the lucky-packet filter, the fit, step detection and servo.

    Gate
      ``max_age_ns``: an exchange whose DELAY_REQ reached the rig more than this after SYNC
      left it (``t4 - t1``) is rejected as late.
    Lucky packets
      An exchange is *lucky* when its round trip is at most
      ``max(min_rtt + lucky_floor_ns, quantile(rtt, lucky_quantile))`` over the window: the best
      fraction, but never fewer than those within ``lucky_floor_ns`` of the minimum — and
      never above ``lucky_max_ratio`` x the window's 5 % round-trip quantile (a path that got
      faster drops its slow-regime samples at once).
    Fit
      Huber IRLS (``huber_k`` in robust-sigma units, at most ``irls_iterations``) of
      offset = a + b·(t − t_ref) over the lucky samples of the last ``window_ns``; at least
      ``min_samples`` lucky samples for a fit with free drift. ``scale_floor_ns`` keeps the
      robust scale (1.4826·MAD) of noise-free data away from zero.
    Steps
      A sample whose residual exceeds ``max(step_floor_ns, step_n_mad · scale)`` plus half its
      round-trip excess over the minimum (what queueing could explain) is a step candidate;
      ``step_confirm`` lucky candidates of one sign (unlucky ones are kept out of the fit but
      do not confirm) make a step. The window restarts at
      the first candidate and the drift is held at its pre-step value until the new window
      spans ``drift_hold_span_ns``. A lucky sample within the threshold clears the candidates.
    Servo
      LOCKED needs a free-drift fit over ``min_samples`` samples spanning ``lock_min_span_ns``
      with scale <= ``lock_max_residual_ns``, a predicted offset error (``coverage_k`` x the
      fit's prediction std at the window's edge) <= ``lock_max_error_ns`` (to keep a lock:
      twice that) and no step candidate pending; a LOCKED servo
      drops to LOCKING when the scale exceeds ``unlock_residual_ns``.
    Uncertainty
      ``coverage_k`` multiplies the statistical part (fit and extrapolation) of a conversion's
      uncertainty; the asymmetry bound (half the mean lucky round trip) is added in full.
    """

    max_age_ns: int = 1_000_000_000
    window_ns: int = 10_000_000_000
    min_samples: int = 8
    lucky_quantile: float = 0.5
    lucky_floor_ns: int = 2_000
    lucky_max_ratio: float = 1.5
    huber_k: float = 1.345
    irls_iterations: int = 10
    scale_floor_ns: float = 50.0
    step_floor_ns: int = 20_000
    step_n_mad: float = 8.0
    step_confirm: int = 3
    drift_hold_span_ns: int = 2_000_000_000
    lock_min_span_ns: int = 2_000_000_000
    lock_max_residual_ns: float = 20_000.0
    lock_max_error_ns: float = 15_000.0
    unlock_residual_ns: float = 40_000.0
    coverage_k: float = 3.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _INT_KEYS:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"must be an integer, got {value!r}", key=f.name)
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"must be a number, got {value!r}", key=f.name)
            elif not math.isfinite(value):
                raise ConfigError(f"must be finite, got {value!r}", key=f.name)
        checks = [
            ("max_age_ns", self.max_age_ns > 0, "> 0"),
            ("window_ns", self.window_ns > 0, "> 0"),
            ("min_samples", self.min_samples >= 3, ">= 3"),
            ("lucky_quantile", 0.0 < self.lucky_quantile <= 1.0, "in (0, 1]"),
            ("lucky_floor_ns", self.lucky_floor_ns >= 0, ">= 0"),
            ("lucky_max_ratio", self.lucky_max_ratio >= 1.0, ">= 1"),
            ("huber_k", self.huber_k > 0, "> 0"),
            ("irls_iterations", self.irls_iterations >= 1, ">= 1"),
            ("scale_floor_ns", self.scale_floor_ns > 0, "> 0"),
            ("step_floor_ns", self.step_floor_ns > 0, "> 0"),
            ("step_n_mad", self.step_n_mad > 0, "> 0"),
            ("step_confirm", self.step_confirm >= 2, ">= 2 (one candidate is an outlier)"),
            ("drift_hold_span_ns", self.drift_hold_span_ns >= 0, ">= 0"),
            ("lock_min_span_ns", 0 <= self.lock_min_span_ns <= self.window_ns, "in [0, window_ns]"),
            ("lock_max_residual_ns", self.lock_max_residual_ns > 0, "> 0"),
            ("lock_max_error_ns", self.lock_max_error_ns > 0, "> 0"),
            (
                "unlock_residual_ns",
                self.unlock_residual_ns >= self.lock_max_residual_ns,
                ">= lock_max_residual_ns",
            ),
            ("coverage_k", self.coverage_k > 0, "> 0"),
        ]
        for key, ok, rule in checks:
            if not ok:
                raise ConfigError(f"must be {rule}, got {getattr(self, key)!r}", key=key)

"""Differential-privacy budgets: one per venue and signal kind, noise on every release.

This module owns the noise calibration of released signals, the budget accounting, and the
refusal once a budget is spent.

Mechanisms
    * Laplace (pure ε-DP): noise ~ Laplace(0, b) with ``b = Δ/ε``, Δ the L1 sensitivity of the
      whole released value (vector releases get i.i.d. noise of that scale per coordinate).
    * Gaussian ((ε, δ)-DP), the *classical* calibration (Dwork & Roth 2014, Thm. A.1):
      ``σ = Δ·sqrt(2·ln(1.25/δ))/ε`` with Δ the L2 sensitivity. It is only valid for ε < 1, so
      a per-release ε ≥ 1 is refused (the analytic Gaussian mechanism of Balle & Wang 2018 is
      not implemented).

Composition: **basic sequential composition** — k releases at (ε₀, δ₀) each cost (k·ε₀, k·δ₀);
ε and δ simply add up. A release is allowed only if both sums stay within the totals; the
accounting is exact (rational arithmetic on the decimal values as written, so a total of 1.0
at 0.1 per release allows exactly 10 releases, not 9 by float rounding).

Noise comes only from the ``numpy.random.Generator`` the caller passes: a seeded generator
reproduces every release bit for bit; nothing here touches a global RNG or the clock.
"""

from __future__ import annotations

import math
from enum import IntEnum
from fractions import Fraction
from typing import Any

import numpy as np

from arbsphere.contracts import SchemaRegistry, default_registry
from arbsphere.errors import BudgetExhausted, ConfigError

#: the accounting every budget uses (``state()["composition"]``)
COMPOSITION = "basic sequential"

_U16_MAX = 0xFFFF


class Mechanism(IntEnum):
    """Noise mechanisms; the values are the ``mechanism`` codes of the PrivacyBudget record."""

    LAPLACE = 1
    GAUSSIAN = 2


default_registry().check_enum(Mechanism, "NoiseMechanism")  # written out for typing


def laplace_scale(sensitivity: float, epsilon: float) -> float:
    """Laplace scale ``b = Δ/ε`` for pure ε-DP."""
    _positive("sensitivity", sensitivity)
    _positive("epsilon", epsilon)
    return sensitivity / epsilon


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float) -> float:
    """Classical Gaussian-mechanism ``σ = Δ·sqrt(2 ln(1.25/δ))/ε``; refuses ε ≥ 1, where that
    calibration does not give (ε, δ)-DP."""
    _positive("sensitivity", sensitivity)
    _positive("epsilon", epsilon)
    if not epsilon < 1.0:
        raise ConfigError(
            f"epsilon {epsilon!r}: the classical Gaussian calibration needs epsilon < 1 "
            "per release (use a smaller epsilon_per_release or the Laplace mechanism)"
        )
    if not 0.0 < delta < 1.0:
        raise ConfigError(f"delta {delta!r}: must be in (0, 1)")
    return sensitivity * math.sqrt(2.0 * math.log(1.25 / delta)) / epsilon


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ConfigError(f"{name} {value!r}: must be a number")
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ConfigError(f"{name} {value!r}: must be finite and > 0")
    return value


def _exact(value: float) -> Fraction:
    """The decimal value as written (shortest repr), as an exact rational."""
    return Fraction(repr(float(value)))


def _u16(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name} {value!r}: must be an integer")
    if not 0 <= int(value) <= _U16_MAX:
        raise ConfigError(f"{name} {value}: must be in 0..65535 (u16 in the record)")
    return int(value)


def _mechanism(value: Mechanism | str | int) -> Mechanism:
    if isinstance(value, Mechanism):
        return value
    if isinstance(value, str) and value.upper() in Mechanism.__members__:
        return Mechanism[value.upper()]
    if isinstance(value, int) and not isinstance(value, bool) and value in (1, 2):
        return Mechanism(value)
    raise ConfigError(f"mechanism {value!r}: must be 'laplace' (1) or 'gaussian' (2)")


class PrivacyBudget:
    """The privacy budget of one venue's one signal kind.

    Every :meth:`release` adds noise calibrated to ``epsilon_per_release`` (and, for the
    Gaussian mechanism, ``delta_per_release``) and charges the budget under basic sequential
    composition. A release the remaining budget cannot pay is refused with
    :class:`BudgetExhausted` (``reason="exhausted"``): nothing is released, nothing is charged,
    the refusal is counted in :attr:`refusals`.

    ``delta_per_release`` (Gaussian only) defaults to ``delta_total / k`` with ``k`` the number
    of releases ε allows, so ε and δ run out together. For Laplace, δ is never spent
    (``delta_total`` may be 0)."""

    def __init__(
        self,
        venue_id: int,
        signal_kind: int,
        mechanism: Mechanism | str | int,
        epsilon_total: float,
        delta_total: float,
        epsilon_per_release: float,
        sensitivity: float,
        rng: np.random.Generator,
        *,
        delta_per_release: float | None = None,
    ) -> None:
        self.venue_id = _u16("venue_id", venue_id)
        self.signal_kind = _u16("signal_kind", signal_kind)
        self.mechanism = _mechanism(mechanism)
        self.epsilon_total = _positive("epsilon_total", epsilon_total)
        self.epsilon_per_release = _positive("epsilon_per_release", epsilon_per_release)
        self.sensitivity = _positive("sensitivity", sensitivity)
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"rng {rng!r}: must be a numpy.random.Generator (seeded)")
        self._rng = rng
        self._eps_total = _exact(self.epsilon_total)
        self._eps_per = _exact(self.epsilon_per_release)
        if self._eps_per > self._eps_total:
            raise ConfigError(
                f"epsilon_per_release {self.epsilon_per_release!r} exceeds epsilon_total "
                f"{self.epsilon_total!r}"
            )
        self.delta_total, self._delta_total, self._delta_per = self._delta_budget(
            delta_total, delta_per_release
        )
        self.delta_per_release = float(self._delta_per)
        if self.mechanism is Mechanism.LAPLACE:
            self.noise_scale = laplace_scale(self.sensitivity, self.epsilon_per_release)
        else:
            self.noise_scale = gaussian_sigma(
                self.sensitivity, self.epsilon_per_release, self.delta_per_release
            )
        self._eps_spent = Fraction(0)
        self._delta_spent = Fraction(0)
        self.releases = 0
        self.refusals = 0

    def _delta_budget(
        self, delta_total: float, delta_per_release: float | None
    ) -> tuple[float, Fraction, Fraction]:
        if isinstance(delta_total, bool) or not isinstance(
            delta_total, int | float | np.floating | np.integer
        ):
            raise ConfigError(f"delta_total {delta_total!r}: must be a number")
        delta_total = float(delta_total)
        if self.mechanism is Mechanism.LAPLACE:
            if not 0.0 <= delta_total < 1.0:
                raise ConfigError(f"delta_total {delta_total!r}: must be in [0, 1)")
            if delta_per_release not in (None, 0, 0.0):
                raise ConfigError(
                    f"delta_per_release {delta_per_release!r}: the Laplace mechanism is pure "
                    "epsilon-DP and spends no delta"
                )
            return delta_total, _exact(delta_total), Fraction(0)
        if not 0.0 < delta_total < 1.0:
            raise ConfigError(
                f"delta_total {delta_total!r}: the Gaussian mechanism needs 0 < delta < 1"
            )
        exact_total = _exact(delta_total)
        if delta_per_release is None:
            per = exact_total / (self._eps_total // self._eps_per)
        else:
            per = _exact(_positive("delta_per_release", delta_per_release))
            if per > exact_total:
                raise ConfigError(
                    f"delta_per_release {delta_per_release!r} exceeds delta_total {delta_total!r}"
                )
        return delta_total, exact_total, per

    # --- accounting ------------------------------------------------------------------------
    @property
    def epsilon_spent(self) -> float:
        return float(self._eps_spent)

    @property
    def delta_spent(self) -> float:
        return float(self._delta_spent)

    def can_release(self) -> bool:
        """Whether the remaining budget pays for one more release."""
        return (
            self._eps_spent + self._eps_per <= self._eps_total
            and self._delta_spent + self._delta_per <= self._delta_total
        )

    @property
    def releases_remaining(self) -> int:
        """How many more releases the budget pays for."""
        n = (self._eps_total - self._eps_spent) // self._eps_per
        if self._delta_per:
            n = min(n, (self._delta_total - self._delta_spent) // self._delta_per)
        return int(n)

    def release(self, value: float | np.ndarray) -> np.ndarray | float:
        """``value`` plus calibrated noise (a float for a scalar, else an array of the same
        shape); charges one release. Raises :class:`BudgetExhausted` once the budget cannot
        pay — the value is withheld and the refusal counted."""
        arr = np.asarray(value, dtype=np.float64)
        if not self.can_release():
            self.refusals += 1
            raise BudgetExhausted(self._exhausted_message(), reason="exhausted")
        if self.mechanism is Mechanism.LAPLACE:
            noise = self._rng.laplace(0.0, self.noise_scale, size=arr.shape)
        else:
            noise = self._rng.normal(0.0, self.noise_scale, size=arr.shape)
        out = arr + noise
        self._eps_spent += self._eps_per
        self._delta_spent += self._delta_per
        self.releases += 1
        return float(out) if out.ndim == 0 else out

    def _exhausted_message(self) -> str:
        what = (
            f"epsilon spent {self.epsilon_spent!r} of {self.epsilon_total!r}, "
            f"a release costs {self.epsilon_per_release!r}"
        )
        if self.mechanism is Mechanism.GAUSSIAN:
            what += (
                f"; delta spent {self.delta_spent!r} of {self.delta_total!r}, "
                f"a release costs {self.delta_per_release!r}"
            )
        return (
            f"privacy budget of venue {self.venue_id} signal kind {self.signal_kind} "
            f"({self.mechanism.name.lower()}) exhausted after {self.releases} release(s): "
            f"{what}; release withheld (refusal {self.refusals})"
        )

    # --- reporting -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The budget's state, JSON-ready (for ``kpi.json`` and the ledger)."""
        return {
            "venue_id": self.venue_id,
            "signal_kind": self.signal_kind,
            "mechanism": self.mechanism.name.lower(),
            "epsilon_total": self.epsilon_total,
            "epsilon_spent": self.epsilon_spent,
            "epsilon_per_release": self.epsilon_per_release,
            "delta_total": self.delta_total,
            "delta_spent": self.delta_spent,
            "delta_per_release": self.delta_per_release,
            "sensitivity": self.sensitivity,
            "noise_scale": self.noise_scale,
            "calibration": (
                "laplace b = sensitivity/epsilon"
                if self.mechanism is Mechanism.LAPLACE
                else "classical gaussian sigma = sensitivity*sqrt(2 ln(1.25/delta))/epsilon"
            ),
            "releases": self.releases,
            "releases_remaining": self.releases_remaining,
            "refusals": self.refusals,
            "composition": COMPOSITION,
        }

    def to_record(self, registry: SchemaRegistry | None = None) -> np.ndarray:
        """One record (shape (1,)) of the registry's ``PrivacyBudget`` header layout. Its
        ``delta`` field carries the δ *spent*: the released stream is
        (epsilon_spent, delta)-DP under basic composition."""
        reg = registry if registry is not None else default_registry()
        rec = np.zeros(1, reg.schema("PrivacyBudget").header.dtype)
        rec["venue_id"] = self.venue_id
        rec["signal_kind"] = self.signal_kind
        rec["mechanism"] = int(self.mechanism)
        rec["epsilon_total"] = self.epsilon_total
        rec["epsilon_spent"] = self.epsilon_spent
        rec["delta"] = self.delta_spent
        rec["releases"] = self.releases
        return rec

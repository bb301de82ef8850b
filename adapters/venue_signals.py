"""A venue's cross-venue correlation estimate, shared in its SharedSignals.

A venue sees only its own market; the cross-venue price reaches it through the federated
rounds: the FINAL DualVariables of every solve carry the consensus shadow price y = ρu per
asset (the exchange's clearing price, negated: see :meth:`ExchangeADMM.solve`). At each solve
the venue pairs the change of its own mid (the frozen problem's c) since its previous solve with
the change of the consensus price −y since then, and keeps exponentially weighted second
moments of both (zero-mean increments: a price path's increments have no drift worth
estimating at tick scale). The estimate

    corr = cov / sqrt(var_mid · var_consensus)

is shared once ``min_samples`` pairs have been seen and both variances are positive; before
that (and in central mode, where no rounds reach the venue) it is NaN — "not estimated", never
a made-up 0. Everything here is deterministic over the pairs it is fed.
"""

from __future__ import annotations

import math

import numpy as np

from arbsphere.errors import ConfigError

#: defaults: a half-life of 200 solves (a few seconds at the loopback campaign's solve rate)
#: and 30 pairs before the first estimate is shared
DEFAULT_HALFLIFE = 200.0
DEFAULT_MIN_SAMPLES = 30


class EwmaCorrelation:
    """Per-asset EWMA correlation of paired increments (venue mid, consensus price)."""

    def __init__(
        self,
        n_assets: int,
        halflife: float = DEFAULT_HALFLIFE,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> None:
        if not halflife > 0:
            raise ConfigError(f"correlation half-life {halflife!r}: must be > 0")
        if min_samples < 2:
            raise ConfigError(f"correlation min_samples {min_samples!r}: must be >= 2")
        self.decay = 0.5 ** (1.0 / halflife)
        self.min_samples = min_samples
        self.cov = np.zeros(n_assets)
        self.var_a = np.zeros(n_assets)
        self.var_b = np.zeros(n_assets)
        self.samples = np.zeros(n_assets, np.int64)
        self._last_a = np.full(n_assets, np.nan)
        self._last_b = np.full(n_assets, np.nan)

    def observe(self, asset: int, level_a: float, level_b: float) -> None:
        """The two price levels at one observation; the increments since the previous one
        update the moments (the first observation only sets the reference)."""
        da = level_a - self._last_a[asset]
        db = level_b - self._last_b[asset]
        self._last_a[asset] = level_a
        self._last_b[asset] = level_b
        if math.isnan(da) or math.isnan(db):
            return
        w = self.decay
        self.cov[asset] = w * self.cov[asset] + (1 - w) * da * db
        self.var_a[asset] = w * self.var_a[asset] + (1 - w) * da * da
        self.var_b[asset] = w * self.var_b[asset] + (1 - w) * db * db
        self.samples[asset] += 1

    def correlation(self, asset: int) -> float:
        """The current estimate, or NaN while there is not enough to estimate from."""
        if self.samples[asset] < self.min_samples:
            return math.nan
        denom = math.sqrt(self.var_a[asset] * self.var_b[asset])
        if not denom > 0:
            return math.nan
        return max(-1.0, min(1.0, float(self.cov[asset]) / denom))

    def summary(self) -> dict[str, list[float | None] | list[int]]:
        """Per asset: the estimate (None while not estimated) and the pairs seen."""
        est = [self.correlation(a) for a in range(len(self.samples))]
        return {
            "correlation": [None if math.isnan(c) else round(c, 6) for c in est],
            "samples": [int(n) for n in self.samples],
        }

"""The venues' cross-venue correlation estimate: recovers a known correlation from paired
increments, says NaN (never 0) while it cannot estimate, and is fed by the rounds' FINAL."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arbsphere.adapters.venue_signals import EwmaCorrelation
from arbsphere.errors import ConfigError


@pytest.mark.parametrize("rho", [0.9, 0.3, -0.6])
def test_recovers_a_known_correlation(rho: float) -> None:
    rng = np.random.default_rng(11)
    n = 20_000
    common = rng.normal(0, 1, n)
    own = rho * common + math.sqrt(1 - rho * rho) * rng.normal(0, 1, n)
    est = EwmaCorrelation(2, halflife=2000.0)
    a = 100.0 + np.cumsum(0.01 * own)  # price levels whose increments correlate at rho
    b = 100.0 + np.cumsum(0.03 * common)  # another scale: correlation is scale-free
    for k in range(n):
        est.observe(1, float(a[k]), float(b[k]))
    assert est.correlation(1) == pytest.approx(rho, abs=0.05)
    assert math.isnan(est.correlation(0))  # asset 0 never observed
    assert est.summary()["correlation"][0] is None
    assert est.summary()["samples"] == [0, n - 1]


def test_nan_until_enough_pairs_and_without_variance() -> None:
    est = EwmaCorrelation(1, halflife=10.0, min_samples=5)
    for k in range(5):  # 5 observations: 4 increments
        est.observe(0, 100.0 + k, 50.0 + 2 * k)
    assert math.isnan(est.correlation(0))
    est.observe(0, 105.0, 60.0)
    assert est.correlation(0) == pytest.approx(1.0)
    flat = EwmaCorrelation(1, min_samples=2)
    for k in range(10):
        flat.observe(0, 100.0 + k, 7.0)  # the other side never moves: no variance
    assert math.isnan(flat.correlation(0))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="half-life"):
        EwmaCorrelation(1, halflife=0.0)
    with pytest.raises(ConfigError, match="min_samples"):
        EwmaCorrelation(1, min_samples=1)

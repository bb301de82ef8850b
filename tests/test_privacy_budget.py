"""Privacy budgets: noise calibration, exact basic-composition accounting, refusal."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from arbsphere.contracts import default_registry
from arbsphere.errors import BudgetExhausted, ConfigError
from arbsphere.privacy.budget import (
    COMPOSITION,
    Mechanism,
    PrivacyBudget,
    gaussian_sigma,
    laplace_scale,
)

N_DRAWS = 20_000


def laplace_budget(**kw: Any) -> PrivacyBudget:
    args: dict[str, Any] = {
        "venue_id": 3,
        "signal_kind": 1,
        "mechanism": "laplace",
        "epsilon_total": 1.0,
        "delta_total": 0.0,
        "epsilon_per_release": 0.1,
        "sensitivity": 1.0,
        "rng": np.random.default_rng(1),
    }
    args.update(kw)
    return PrivacyBudget(**args)


def gaussian_budget(**kw: Any) -> PrivacyBudget:
    args: dict[str, Any] = {
        "mechanism": Mechanism.GAUSSIAN,
        "epsilon_total": 5.0,
        "delta_total": 1e-5,
        "epsilon_per_release": 0.5,
    }
    args.update(kw)
    return laplace_budget(**args)


# --- calibration ---------------------------------------------------------------------------


def test_calibration_formulas() -> None:
    assert laplace_scale(2.0, 0.5) == 4.0
    # σ = Δ·sqrt(2 ln(1.25/δ))/ε, Δ=1, ε=0.5, δ=1e-5: sqrt(2·ln 125000)/0.5 = 9.6896105...
    assert gaussian_sigma(1.0, 0.5, 1e-5) == pytest.approx(9.6896105, rel=1e-7)
    with pytest.raises(ConfigError, match=r"epsilon 1\.0: the classical Gaussian"):
        gaussian_sigma(1.0, 1.0, 1e-5)
    with pytest.raises(ConfigError, match=r"delta 0\.0"):
        gaussian_sigma(1.0, 0.5, 0.0)


def test_laplace_noise_matches_its_calibration() -> None:
    budget = laplace_budget(sensitivity=2.0, epsilon_per_release=0.5, epsilon_total=0.5)
    assert budget.noise_scale == 4.0
    noise = budget.release(np.zeros(N_DRAWS))
    assert isinstance(noise, np.ndarray) and noise.shape == (N_DRAWS,)
    assert stats.kstest(noise, stats.laplace(loc=0.0, scale=4.0).cdf).pvalue > 0.001
    # the test has power: a 10% wrong scale, or a Gaussian of equal variance, is rejected
    assert stats.kstest(noise, stats.laplace(loc=0.0, scale=4.4).cdf).pvalue < 0.001
    assert stats.kstest(noise, stats.norm(scale=4.0 * math.sqrt(2)).cdf).pvalue < 0.001


def test_gaussian_noise_matches_its_calibration() -> None:
    budget = gaussian_budget(sensitivity=1.5, epsilon_per_release=0.25, epsilon_total=0.5)
    # default δ per release: δ_total split over the 2 releases ε allows
    assert budget.delta_per_release == 5e-6
    sigma = 1.5 * math.sqrt(2 * math.log(1.25 / 5e-6)) / 0.25
    assert budget.noise_scale == pytest.approx(sigma, rel=1e-12)
    noise = np.asarray(budget.release(np.full(N_DRAWS, 10.0))) - 10.0
    assert stats.kstest(noise, stats.norm(loc=0.0, scale=sigma).cdf).pvalue > 0.001
    assert stats.kstest(noise, stats.norm(loc=0.0, scale=1.1 * sigma).cdf).pvalue < 0.001


def test_noise_is_reproducible_from_the_seeded_generator() -> None:
    a = laplace_budget(rng=np.random.default_rng(42))
    b = laplace_budget(rng=np.random.default_rng(42))
    x = np.array([1.0, -2.0, 3.5])
    ra, rb = a.release(x), b.release(x)
    assert np.array_equal(ra, rb)
    expected = x + np.random.default_rng(42).laplace(0.0, 10.0, size=3)
    assert np.array_equal(ra, expected)  # exactly the generator's draws, scale Δ/ε = 10
    scalar = a.release(0.5)
    assert isinstance(scalar, float)
    other = np.asarray(laplace_budget(rng=np.random.default_rng(43)).release(x))
    assert other.tolist() != np.asarray(ra).tolist()


# --- accounting and refusal ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "per", "expected"),
    [(1.0, 0.1, 10), (0.3, 0.1, 3), (0.7, 0.1, 7), (1.0, 0.3, 3), (2.0, 0.5, 4), (1.0, 1.0, 1)],
)
def test_exactly_floor_total_over_per_releases_then_refusal(
    total: float, per: float, expected: int
) -> None:
    budget = laplace_budget(epsilon_total=total, epsilon_per_release=per)
    assert budget.releases_remaining == expected
    for k in range(expected):
        assert budget.can_release()
        budget.release(1.0)
        assert budget.releases == k + 1
    assert not budget.can_release() and budget.releases_remaining == 0
    before = budget.state()
    rng_state = budget._rng.bit_generator.state
    for n in (1, 2):
        with pytest.raises(BudgetExhausted, match="exhausted") as e:
            budget.release(1.0)
        assert e.value.reason == "exhausted"
        assert budget.refusals == n
    after = budget.state()
    assert after.pop("refusals") == 2 and before.pop("refusals") == 0
    assert after == before  # a refusal changes nothing but its count
    assert budget._rng.bit_generator.state == rng_state  # and draws no noise
    assert budget.epsilon_spent <= total or math.isclose(budget.epsilon_spent, total)


def test_refusal_message_names_venue_kind_and_amounts() -> None:
    budget = laplace_budget(epsilon_total=0.2, epsilon_per_release=0.1, venue_id=7, signal_kind=2)
    budget.release(0.0)
    budget.release(0.0)
    with pytest.raises(BudgetExhausted) as e:
        budget.release(0.0)
    msg = str(e.value)
    assert "venue 7 signal kind 2" in msg and "epsilon spent 0.2 of 0.2" in msg
    assert "costs 0.1" in msg and "withheld (refusal 1)" in msg


def test_gaussian_delta_accounting() -> None:
    budget = gaussian_budget()  # ε 5.0 at 0.5 → 10 releases; δ 1e-5 split → 1e-6 each
    assert budget.delta_per_release == 1e-6
    for _ in range(10):
        budget.release(0.0)
    assert budget.delta_spent == 1e-5 and budget.epsilon_spent == 5.0
    with pytest.raises(BudgetExhausted):
        budget.release(0.0)

    # δ binds before ε: 4e-6 per release of 1e-5 pays for 2 releases although ε pays for 10
    tight = gaussian_budget(delta_per_release=4e-6)
    assert tight.releases_remaining == 2
    tight.release(0.0)
    tight.release(0.0)
    assert tight.delta_spent == pytest.approx(8e-6, abs=0) and tight.epsilon_spent == 1.0
    with pytest.raises(BudgetExhausted, match=r"delta spent 8e-06 of 1e-05") as e:
        tight.release(0.0)
    assert e.value.reason == "exhausted" and tight.refusals == 1


def test_laplace_spends_no_delta() -> None:
    budget = laplace_budget(delta_total=1e-6)
    budget.release(0.0)
    assert budget.delta_spent == 0.0 and budget.state()["delta_total"] == 1e-6


def test_state_reports_composition_and_everything() -> None:
    budget = gaussian_budget()
    budget.release(0.0)
    s = budget.state()
    assert s == {
        "venue_id": 3,
        "signal_kind": 1,
        "mechanism": "gaussian",
        "epsilon_total": 5.0,
        "epsilon_spent": 0.5,
        "epsilon_per_release": 0.5,
        "delta_total": 1e-5,
        "delta_spent": 1e-6,
        "delta_per_release": 1e-6,
        "sensitivity": 1.0,
        "noise_scale": gaussian_sigma(1.0, 0.5, 1e-6),
        "calibration": s["calibration"],
        "releases": 1,
        "releases_remaining": 9,
        "refusals": 0,
        "composition": "basic sequential",
    }
    assert COMPOSITION == "basic sequential" and "classical gaussian" in s["calibration"]


def test_record_layout_round_trip() -> None:
    reg = default_registry()
    schema = reg.schema("PrivacyBudget")
    for budget, code in (
        (gaussian_budget(venue_id=65535, signal_kind=9), 2),
        (laplace_budget(), 1),
    ):
        for _ in range(3):
            budget.release(0.0)
        rec = budget.to_record()
        assert rec.dtype == schema.header.dtype and rec.shape == (1,) and rec.nbytes == 40
        msg = reg.decode(reg.encode(schema, rec, sender_id=5, nonce=1, origin_ts_ns=0))
        assert msg.schema.name == "PrivacyBudget"
        h = msg.header[0]
        assert int(h["venue_id"]) == budget.venue_id
        assert int(h["signal_kind"]) == budget.signal_kind
        assert int(h["mechanism"]) == code
        assert float(h["epsilon_total"]) == budget.epsilon_total
        assert float(h["epsilon_spent"]) == budget.epsilon_spent
        assert float(h["delta"]) == budget.delta_spent
        assert int(h["releases"]) == 3


# --- bad parameters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"epsilon_total": 0.0}, "epsilon_total 0.0"),
        ({"epsilon_total": -1.0}, "epsilon_total -1.0"),
        ({"epsilon_total": math.inf}, "epsilon_total inf"),
        ({"epsilon_per_release": math.nan}, "epsilon_per_release nan"),
        ({"epsilon_per_release": 2.0}, "epsilon_per_release 2.0 exceeds epsilon_total 1.0"),
        ({"sensitivity": 0.0}, "sensitivity 0.0"),
        ({"sensitivity": "1"}, "sensitivity '1'"),
        ({"venue_id": 70000}, "venue_id 70000"),
        ({"signal_kind": -1}, "signal_kind -1"),
        ({"mechanism": "exponential"}, "mechanism 'exponential'"),
        ({"mechanism": 3}, "mechanism 3"),
        ({"rng": np.random.RandomState(0)}, "rng .*numpy.random.Generator"),
        ({"delta_total": 1.0}, "delta_total 1.0"),
        ({"delta_per_release": 1e-6}, "Laplace mechanism is pure"),
    ],
)
def test_bad_laplace_parameters_refused(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        laplace_budget(**kw)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"delta_total": 0.0}, "delta_total 0.0: the Gaussian mechanism needs 0 < delta < 1"),
        ({"delta_total": 1.0}, "delta_total 1.0"),
        ({"epsilon_per_release": 1.0}, r"epsilon 1\.0: the classical Gaussian"),
        ({"delta_per_release": 2e-5}, "delta_per_release 2e-05 exceeds delta_total 1e-05"),
        ({"delta_per_release": -1e-6}, "delta_per_release -1e-06"),
    ],
)
def test_bad_gaussian_parameters_refused(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        gaussian_budget(**kw)


def test_mechanism_spellings() -> None:
    assert laplace_budget(mechanism="Laplace").mechanism is Mechanism.LAPLACE
    assert laplace_budget(mechanism=1).mechanism is Mechanism.LAPLACE
    assert gaussian_budget(mechanism="gaussian").mechanism is Mechanism.GAUSSIAN
    assert gaussian_budget(mechanism=2).mechanism is Mechanism.GAUSSIAN

"""Exchange ADMM against the exact baseline; warm start, residual balancing, caps, input errors."""

from __future__ import annotations

import numpy as np
import pytest

from arbsphere.coordinator.admm import AdmmSettings, ExchangeADMM
from arbsphere.coordinator.baseline import centralized_solve, objective
from arbsphere.errors import SolverError

Problem = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _unit_scale(rng: np.random.Generator, n: int, m: int) -> Problem:
    c = rng.normal(0, 1, (n, m))
    gamma = rng.uniform(0.1, 10, (n, m))
    phi = rng.uniform(0, 0.5, (n, m))
    limit = rng.uniform(0, 3, (n, m))
    return c, gamma, phi, limit


def _price_path(rng: np.random.Generator, ticks: int, n: int, m: int) -> list[Problem]:
    """Rig-like ticks: a slowly moving mid ~100, venue quotes around it, fee dead-bands."""
    mid = 100.0 + np.cumsum(rng.normal(0, 0.002, (ticks, 1, m)), axis=0)
    out = []
    for k in range(ticks):
        c = mid[k] + rng.normal(0, 0.015, (n, m))
        out.append((c, np.full((n, m), 1e-4), np.full((n, m), 0.015),
                    rng.integers(5, 50, (n, m)).astype(float)))  # fmt: skip
    return out


def _dual_value(c: np.ndarray, gamma: np.ndarray, phi: np.ndarray, limit: np.ndarray) -> float:
    """The optimum as the baseline's Lagrangian value (insensitive to its float imbalance)."""
    x = np.zeros(c.shape)
    lam = np.zeros(c.shape[1])
    centralized_solve(c, gamma, phi, limit, x, lam)
    return objective(c, gamma, phi, limit, x) + float(lam @ x.sum(axis=0))


def _gap(p: Problem, z: np.ndarray) -> float:
    """Relative gap of the ADMM consensus iterate (Σz = 0), clipped into the limits."""
    c, gamma, phi, limit = p
    f_star = _dual_value(*p)
    f = objective(c, gamma, phi, limit, np.clip(z, -limit, limit))
    return abs(f - f_star) / max(abs(f_star), 1.0)


def test_converges_to_the_baseline_on_random_instances() -> None:
    rng = np.random.default_rng(21)
    for _ in range(40):
        n, m = int(rng.integers(2, 17)), int(rng.integers(1, 9))
        p = _unit_scale(rng, n, m)
        res = ExchangeADMM(n, m, AdmmSettings()).solve(*p)
        assert res.converged and res.iterations < AdmmSettings().max_iter
        assert _gap(p, res.z) <= 1e-9
        assert np.abs(res.x.sum(axis=0)).max() <= 1e-9  # x itself is neutral to tolerance
        np.testing.assert_allclose(res.xbar, res.x.mean(axis=0), rtol=0, atol=1e-15)
        np.testing.assert_array_equal(res.y, res.rho * res.u)


def test_warm_started_price_path_tracks_the_baseline() -> None:
    ticks = _price_path(np.random.default_rng(4), 60, 2, 1)
    solver = ExchangeADMM(2, 1, AdmmSettings(max_iter=20_000))
    gaps = []
    for p in ticks:
        res = solver.solve(*p)
        assert res.converged
        gaps.append(_gap(p, res.z))
    assert float(np.median(gaps)) <= 1e-9
    assert max(gaps) <= 1e-7


def test_warm_start_reduces_iterations_on_a_perturbed_instance() -> None:
    rng = np.random.default_rng(8)
    p = _unit_scale(rng, 6, 3)
    perturbed = (p[0] + rng.normal(0, 1e-3, p[0].shape), *p[1:])
    warm = ExchangeADMM(6, 3, AdmmSettings())
    warm.solve(*p)
    cold = ExchangeADMM(6, 3, AdmmSettings(warm_start=False))
    cold.solve(*p)
    w = warm.solve(*perturbed)
    k = cold.solve(*perturbed)
    assert w.converged and k.converged
    assert w.iterations < k.iterations
    # reset() forgets the warm start: the next solve repeats the cold one bit for bit.
    warm.reset()
    again = warm.solve(*perturbed)
    assert again.iterations == k.iterations and np.array_equal(again.x, k.x)


def _pinned_then_interior() -> tuple[Problem, Problem]:
    """A 2x1 solve whose optimum sits at venue 0's limit of 7 lots (balancing ends with ρ
    64x rho0), then an interior one (20 lots each way, limits 30): the rig's pattern after a
    mispricing episode."""
    g, phi = np.full((2, 1), 1e-4), np.full((2, 1), 0.015)
    pinned = (np.array([[100.0], [100.08]]), g, phi, np.array([[7.0], [30.0]]))
    interior = (np.array([[100.0], [100.034]]), g, phi, np.full((2, 1), 30.0))
    return pinned, interior


def test_a_warm_solve_whose_problem_moved_goes_on_from_rho0() -> None:
    pinned, interior = _pinned_then_interior()
    solved = {}
    for keep in (False, True):
        solver = ExchangeADMM(2, 1, AdmmSettings(max_iter=5_000, keep_rho=keep))
        first = solver.solve(*pinned)
        assert first.converged and first.rho >= 32 * solver.settings.rho0
        solved[keep] = solver.solve(*interior)
        assert solved[keep].converged and _gap(interior, solved[keep].z) <= 1e-9
    # ρ balanced for the pinned optimum makes the interior one creep (rate ρ/(γ+ρ) per
    # iteration) until balancing brings ρ down a factor 2 per 10 iterations
    assert 2 * solved[False].iterations < solved[True].iterations


def test_the_rho_restart_keeps_the_shadow_price_and_spares_an_unchanged_problem() -> None:
    pinned, interior = _pinned_then_interior()
    after_one = {}
    for keep in (False, True):
        solver = ExchangeADMM(2, 1, AdmmSettings(max_iter=5_000, keep_rho=keep))
        solver.solve(*pinned)
        after_one[keep] = solver.solve(*interior, max_iter=1)
    restarted, kept = after_one[False], after_one[True]
    # the same first iteration; then ρ back at rho0 with u rescaled: y = ρu unchanged
    np.testing.assert_array_equal(restarted.x, kept.x)
    assert restarted.rho == 1e-3 and kept.rho >= 32e-3
    np.testing.assert_allclose(restarted.y, kept.y, rtol=1e-14)
    # an unchanged problem passes the stopping test in iteration 1: ρ is left alone
    solver = ExchangeADMM(2, 1, AdmmSettings(max_iter=5_000))
    rho = solver.solve(*pinned).rho
    again = solver.solve(*pinned)
    assert again.iterations == 1 and again.rho == rho


def test_a_solve_stopped_by_its_cap_is_no_warm_start() -> None:
    pinned, interior = _pinned_then_interior()
    solver = ExchangeADMM(2, 1, AdmmSettings(max_iter=5_000))
    assert not solver.solve(*pinned, max_iter=5).converged
    assert solver.cold  # the next solve starts from the price-implied dual, like a fresh one
    fresh = ExchangeADMM(2, 1, AdmmSettings(max_iter=5_000))
    again, first = solver.solve(*interior), fresh.solve(*interior)
    assert again.iterations == first.iterations and np.array_equal(again.x, first.x)
    assert not solver.cold  # converged: the next one is warm


def test_residual_balancing_rescales_rho_and_keeps_y_continuous() -> None:
    p = _unit_scale(np.random.default_rng(4), 3, 2)
    # μ just above 1: at iteration 10 the rule fires one way or the other (r > μs: ρ ← τρ,
    # u ← u/τ; s > μr: ρ ← ρ/τ, u ← uτ), whatever the start point.
    exact = dict(rho0=1.0, eps_abs=0.0, eps_rel=0.0, mu=1.000001)
    balanced = ExchangeADMM(3, 2, AdmmSettings(adapt_every=10, **exact))  # type: ignore[arg-type]
    fixed = ExchangeADMM(3, 2, AdmmSettings(adapt_every=10**9, **exact))  # type: ignore[arg-type]
    a = balanced.solve(*p, max_iter=10)  # rescale happens at the end of iteration 10
    b = fixed.solve(*p, max_iter=10)
    factor = 2.0 if a.primal_res > a.dual_res else 0.5
    assert a.rho == factor and b.rho == 1.0
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_allclose(a.y, b.y, rtol=1e-15, atol=0)  # y = ρu unchanged by rescale
    np.testing.assert_allclose(a.u, b.u / factor, rtol=1e-15, atol=0)
    # Adaptation depends on iteration counts and residuals only: a rerun is bit-identical.
    balanced.reset()
    again = balanced.solve(*p, max_iter=10)
    assert again.rho == a.rho and np.array_equal(again.u, a.u)


def test_over_relaxation_converges_to_the_same_point() -> None:
    p = _unit_scale(np.random.default_rng(13), 5, 4)
    plain = ExchangeADMM(5, 4, AdmmSettings(alpha=1.0)).solve(*p)
    x_plain = plain.x.copy()
    relaxed = ExchangeADMM(5, 4, AdmmSettings(alpha=1.6)).solve(*p)
    assert plain.converged and relaxed.converged
    np.testing.assert_allclose(relaxed.x, x_plain, rtol=0, atol=1e-8)


def test_max_iter_cap_is_respected() -> None:
    p = _unit_scale(np.random.default_rng(2), 4, 2)
    never = AdmmSettings(eps_abs=0.0, eps_rel=0.0, max_iter=25)
    solver = ExchangeADMM(4, 2, never)
    res = solver.solve(*p)
    assert res.iterations == 25 and not res.converged
    res = solver.solve(*p, max_iter=3)
    assert res.iterations == 3 and not res.converged
    with pytest.raises(SolverError, match="max_iter"):
        solver.solve(*p, max_iter=0)


@pytest.mark.parametrize(
    "array,index,value,pattern",
    [
        (0, (1, 0), np.nan, r"c\[1, 0\] = nan"),
        (1, (0, 1), 0.0, r"gamma\[0, 1\] = 0\.0"),
        (1, (1, 1), np.inf, r"gamma\[1, 1\] = inf"),
        (2, (1, 0), -0.5, r"phi\[1, 0\] = -0\.5"),
        (3, (0, 0), -1.0, r"limit\[0, 0\] = -1\.0"),
    ],
)
def test_invalid_inputs_are_rejected_naming_array_index_and_value(
    array: int, index: tuple[int, int], value: float, pattern: str
) -> None:
    args = [np.ones((2, 2)) for _ in range(4)]
    args[array][index] = value
    solver = ExchangeADMM(2, 2, AdmmSettings())
    with pytest.raises(SolverError, match=pattern):
        solver.solve(args[0], args[1], args[2], args[3])


def test_wrong_shapes_and_settings_are_rejected() -> None:
    solver = ExchangeADMM(2, 2, AdmmSettings())
    ok = np.ones((2, 2))
    with pytest.raises(SolverError, match=r"limit.*\(2, 3\)"):
        solver.solve(ok, ok, ok, np.ones((2, 3)))
    for field, value in [("alpha", 1.9), ("alpha", 0.5), ("rho0", 0.0), ("max_iter", 0),
                         ("tau", 1.0), ("eps_abs", -1.0)]:  # fmt: skip
        with pytest.raises(ValueError, match=rf"{field}"):
            AdmmSettings(**{field: value})  # type: ignore[arg-type]


def _rig_scale_instance(rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, ...]:
    c = 100 + rng.normal(0, 0.05, (n, m))
    gamma = rng.uniform(1e-4, 1e-2, (n, m))
    phi = rng.uniform(0, 0.03, (n, m))
    limit = rng.integers(0, 50, (n, m)).astype(float)
    return c, gamma, phi, limit


def test_admm_warm_start_and_iteration_cap() -> None:
    rng = np.random.default_rng(3)
    c, gamma, phi, limit = _rig_scale_instance(rng, 4, 2)
    cold = ExchangeADMM(4, 2, AdmmSettings(warm_start=False, max_iter=50_000))
    warm = ExchangeADMM(4, 2, AdmmSettings(max_iter=50_000))
    first = warm.solve(c, gamma, phi, limit).iterations
    # Warm state is kept: re-solving the instance it just solved converges at once ...
    assert warm.solve(c, gamma, phi, limit).iterations <= 2 < first
    # ... while warm_start=False starts over every time.
    cold.solve(c, gamma, phi, limit)
    assert cold.solve(c, gamma, phi, limit).iterations == first
    capped = ExchangeADMM(4, 2, AdmmSettings(eps_abs=0.0, eps_rel=0.0))
    res = capped.solve(c, gamma, phi, limit, max_iter=7)
    assert res.iterations == 7 and not res.converged

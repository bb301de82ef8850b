"""Exact centralized baseline against independent solutions: exact rational arithmetic on the
piecewise-linear price equation, SciPy SLSQP on the smooth reformulation, and KKT conditions."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from scipy.optimize import minimize

from arbsphere.coordinator.admm import AdmmSettings, ExchangeADMM
from arbsphere.coordinator.baseline import centralized_solve, gaps_batch, objective, relative_gap
from arbsphere.errors import SolverError

Problem = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _price_scale(rng: np.random.Generator, n: int, m: int) -> Problem:
    """Rig-like: mid ~100 per lot, small impact, fee dead-bands, integer liquidity (some 0)."""
    c = 100 + rng.normal(0, 0.05, (n, m))
    gamma = rng.uniform(1e-4, 1e-2, (n, m))
    phi = rng.uniform(0, 0.03, (n, m))
    limit = rng.integers(0, 50, (n, m)).astype(float)
    return c, gamma, phi, limit


def _unit_scale(rng: np.random.Generator, n: int, m: int) -> Problem:
    c = rng.normal(0, 1, (n, m))
    gamma = rng.uniform(0.1, 10, (n, m))
    phi = rng.uniform(0, 0.5, (n, m))
    limit = rng.uniform(0, 3, (n, m))
    return c, gamma, phi, limit


def _exact_optimum(
    c: np.ndarray, gamma: np.ndarray, phi: np.ndarray, limit: np.ndarray
) -> Fraction:
    """f* in exact rationals: g(λ) = Σ_i x_i(λ) is piecewise linear with breakpoints at
    λ = −c ± φ and −c ± (φ + γL); find the segment where it crosses 0 and solve it exactly.
    Independent of the bisection (no iteration, no floating point)."""
    n, m = c.shape
    total = Fraction(0)
    for a in range(m):
        cs = [Fraction(float(v)) for v in c[:, a]]
        gs = [Fraction(float(v)) for v in gamma[:, a]]
        ps = [Fraction(float(v)) for v in phi[:, a]]
        ls = [Fraction(float(v)) for v in limit[:, a]]

        def x_of(i: int, lam: Fraction) -> Fraction:
            t = -(cs[i] + lam)  # noqa: B023
            v = (t - ps[i]) / gs[i] if t > ps[i] else (t + ps[i]) / gs[i] if t < -ps[i] else 0  # noqa: B023
            return max(-ls[i], min(ls[i], Fraction(v)))  # noqa: B023

        def g(lam: Fraction) -> Fraction:
            return sum((x_of(i, lam) for i in range(n)), Fraction(0))

        points = sorted(
            {-cs[i] + s * (ps[i] + k * gs[i] * ls[i]) for i in range(n) for s in (-1, 1)
             for k in (0, 1)}
        )  # fmt: skip
        values = [g(p) for p in points]
        assert values[0] >= 0 >= values[-1]
        lam = points[0]
        for k in range(len(points) - 1):
            if values[k] >= 0 >= values[k + 1]:
                lo, hi, g_lo, g_hi = points[k], points[k + 1], values[k], values[k + 1]
                lam = lo if g_lo == g_hi else lo + (hi - lo) * g_lo / (g_lo - g_hi)
                break
        assert g(lam) == 0
        for i in range(n):
            x = x_of(i, lam)
            total += cs[i] * x + gs[i] * x * x / 2 + ps[i] * abs(x)
    return total


def _solve(c: np.ndarray, gamma: np.ndarray, phi: np.ndarray, limit: np.ndarray):  # type: ignore[no-untyped-def]
    n, m = c.shape
    x = np.full((n, m), np.nan)
    lam = np.full(m, np.nan)
    steps = centralized_solve(c, gamma, phi, limit, x, lam)
    return x, lam, int(steps)


@pytest.mark.parametrize("scale", [_price_scale, _unit_scale])
def test_matches_exact_rational_optimum(scale) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(101)
    for _ in range(25):
        n, m = int(rng.integers(2, 17)), int(rng.integers(1, 9))
        c, gamma, phi, limit = scale(rng, n, m)
        x, lam, steps = _solve(c, gamma, phi, limit)
        assert steps > 0 and np.all(np.isfinite(lam))
        assert np.abs(x.sum(axis=0)).max() <= 1e-9
        assert np.all(np.abs(x) <= limit)
        f_exact = float(_exact_optimum(c, gamma, phi, limit))
        # The Lagrangian at the returned prices removes the first-order effect of the float
        # residual imbalance (|Σx| ~ 1e-11 lots times prices ~100).
        f_dual = objective(c, gamma, phi, limit, x) + float(lam @ x.sum(axis=0))
        assert abs(f_dual - f_exact) <= 1e-9 * max(1.0, abs(f_exact))


def _slsqp(c: np.ndarray, gamma: np.ndarray, phi: np.ndarray, limit: np.ndarray) -> float:
    """Independent solve on the smooth reformulation x = p − q, 0 <= p, q <= L."""
    n, m = c.shape
    k = n * m

    def f(v: np.ndarray) -> float:
        x = v[:k] - v[k:]
        return float(c.ravel() @ x + 0.5 * (gamma.ravel() * x) @ x + phi.ravel() @ (v[:k] + v[k:]))

    def grad(v: np.ndarray) -> np.ndarray:
        x = v[:k] - v[k:]
        gx = c.ravel() + gamma.ravel() * x
        return np.concatenate([gx + phi.ravel(), -gx + phi.ravel()])

    a_eq = np.zeros((m, 2 * k))
    for a in range(m):
        a_eq[a, a:k:m] = 1.0
        a_eq[a, k + a :: m] = -1.0
    cons = {"type": "eq", "fun": lambda v: a_eq @ v, "jac": lambda v: a_eq}
    bounds = [(0.0, float(v)) for v in limit.ravel()] * 2
    res = minimize(f, np.zeros(2 * k), jac=grad, method="SLSQP", bounds=bounds,
                   constraints=[cons], options={"ftol": 1e-15, "maxiter": 1000})  # fmt: skip
    assert np.abs(a_eq @ res.x).max() < 1e-8, res.message
    return float(res.fun)


@pytest.mark.parametrize("n,m,seed", [(2, 1, 1), (3, 2, 2), (7, 3, 3), (16, 1, 4), (16, 3, 5)])
def test_matches_scipy_slsqp(n: int, m: int, seed: int) -> None:
    c, gamma, phi, limit = _unit_scale(np.random.default_rng(seed), n, m)
    x, _, _ = _solve(c, gamma, phi, limit)
    f_star = objective(c, gamma, phi, limit, x)
    f_scipy = _slsqp(c, gamma, phi, limit)
    # Exact beats or ties an iterative solver, and both agree to SLSQP's accuracy.
    assert f_star <= f_scipy + 1e-12 * max(1.0, abs(f_scipy))
    assert abs(f_star - f_scipy) <= 1e-9 * max(1.0, abs(f_scipy))


def test_kkt_conditions_at_returned_prices() -> None:
    rng = np.random.default_rng(5)
    for _ in range(100):
        n, m = int(rng.integers(2, 17)), int(rng.integers(1, 9))
        c, gamma, phi, limit = _price_scale(rng, n, m)
        x, lam, _ = _solve(c, gamma, phi, limit)
        g = c + gamma * x + lam[None, :]  # gradient of the smooth part plus the price
        tol = 1e-9
        free = limit > 0
        interior = free & (np.abs(x) < limit) & (x != 0)
        assert np.all(np.abs(g + phi * np.sign(x))[interior] <= tol)
        at_zero = free & (x == 0)
        assert np.all(np.abs(g[at_zero]) <= phi[at_zero] + tol)
        upper = free & (x == limit)
        assert np.all((g + phi)[upper] <= tol)  # wants to buy more than allowed
        lower = free & (x == -limit)
        assert np.all((g - phi)[lower] >= -tol)  # wants to sell more than allowed
        assert np.all(x[~free] == 0)


def test_active_limits_saturate_cheap_and_rich_venues() -> None:
    c = np.array([[99.0], [101.0], [100.0]])  # venue 0 cheap, venue 1 rich
    gamma = np.full((3, 1), 1e-3)
    phi = np.zeros((3, 1))
    limit = np.array([[5.0], [5.0], [0.0]])
    x, lam, _ = _solve(c, gamma, phi, limit)
    assert x.ravel().tolist() == [5.0, -5.0, 0.0]
    # Both saturated: any λ in [−101 + γL, −99 − γL] is optimal.
    assert -101.0 + 5e-3 - 1e-12 <= lam[0] <= -99.0 - 5e-3 + 1e-12


def test_dead_band_gives_no_trade_and_a_price_inside_the_band() -> None:
    c = np.array([[100.0], [100.01]])
    gamma = np.full((2, 1), 1e-3)
    phi = np.full((2, 1), 0.02)  # spread 0.01 < the two dead-bands
    limit = np.full((2, 1), 10.0)
    x, lam, _ = _solve(c, gamma, phi, limit)
    assert np.all(x == 0.0)
    # Zero set of g: max_i(−c_i − φ_i) <= λ <= min_i(−c_i + φ_i).
    assert -100.03 <= lam[0] <= -99.98
    f_star = objective(c, gamma, phi, limit, x)
    assert f_star == 0.0
    assert relative_gap(f_star, 0.0, 1.0) == 0.0  # no-trade tick: a meaningful 0, not nan


def test_objective_and_relative_gap() -> None:
    c = np.array([[1.0, -2.0]])
    gamma = np.array([[2.0, 4.0]])
    phi = np.array([[0.5, 0.25]])
    limit = np.array([[3.0, 1.0]])
    x = np.array([[2.0, -1.0]])
    # 1*2 + 0.5*2*4 + 0.5*2  +  (-2)(-1) + 0.5*4*1 + 0.25*1
    assert objective(c, gamma, phi, limit, x) == pytest.approx(2 + 4 + 1 + 2 + 2 + 0.25)
    assert objective(c, gamma, phi, limit, np.array([[3.5, 0.0]])) == np.inf
    assert relative_gap(-9.0, -10.0, 1.0) == pytest.approx(0.1)
    assert relative_gap(1e-3, 0.0, 1.0) == pytest.approx(1e-3)  # absolute below the scale
    with pytest.raises((ValueError, SolverError)):
        relative_gap(1.0, 0.0, 0.0)


def test_bisection_is_deterministic_and_bounded() -> None:
    rng = np.random.default_rng(9)
    c, gamma, phi, limit = _price_scale(rng, 16, 8)
    x1, lam1, s1 = _solve(c, gamma, phi, limit)
    x2, lam2, s2 = _solve(c, gamma, phi, limit)
    assert s1 == s2 and np.array_equal(x1, x2) and np.array_equal(lam1, lam2)
    assert s1 <= 8 * 200  # floating-point bisection: well under 200 halvings per asset


def _rig_scale_instance(rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, ...]:
    c = 100 + rng.normal(0, 0.05, (n, m))
    gamma = rng.uniform(1e-4, 1e-2, (n, m))
    phi = rng.uniform(0, 0.03, (n, m))
    limit = rng.integers(0, 50, (n, m)).astype(float)
    return c, gamma, phi, limit


def test_admm_converges_to_baseline() -> None:
    rng = np.random.default_rng(7)
    for _ in range(60):
        n, m = int(rng.integers(2, 17)), int(rng.integers(1, 9))
        c, gamma, phi, limit = _rig_scale_instance(rng, n, m)
        solver = ExchangeADMM(n, m, AdmmSettings(max_iter=50_000))
        res = solver.solve(c, gamma, phi, limit)
        assert res.converged
        snap = [a[None].copy() for a in (c, gamma, phi, limit, res.z)]
        gap = np.zeros(1)
        gaps_batch(snap[0], snap[1], snap[2], snap[3], snap[4], 1.0, gap)
        assert gap[0] < 1e-6
        assert np.allclose(res.y, res.rho * res.u)

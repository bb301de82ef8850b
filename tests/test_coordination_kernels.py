"""Coordination kernels against independent solutions: SciPy, KKT, pure-Python references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from arbsphere.contracts import PLAN_LEG_DTYPE
from arbsphere.coordinator.admm import AdmmSettings, ExchangeADMM
from arbsphere.coordinator.baseline import centralized_solve, gaps_batch, objective
from arbsphere.coordinator.merge import DeltaMerger, legs_from_targets
from arbsphere.coordinator.neutralize import neutralize_lots
from arbsphere.errors import SolverError


def _instance(rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, ...]:
    c = 100 + rng.normal(0, 0.05, (n, m))
    gamma = rng.uniform(1e-4, 1e-2, (n, m))
    phi = rng.uniform(0, 0.03, (n, m))
    limit = rng.integers(0, 50, (n, m)).astype(float)
    return c, gamma, phi, limit


def _scipy_optimum(c, gamma, phi, limit) -> float:  # type: ignore[no-untyped-def]
    """Independent solve: smooth reformulation x = p - q, p, q in [0, L], SLSQP."""
    n, m = c.shape
    k = n * m

    def f(v: np.ndarray) -> float:
        p, q = v[:k].reshape(n, m), v[k:].reshape(n, m)
        x = p - q
        return float((c * x + 0.5 * gamma * x * x + phi * (p + q)).sum())

    cons = [
        {"type": "eq",
         "fun": (lambda v, a=a: (v[:k].reshape(n, m) - v[k:].reshape(n, m))[:, a].sum())}
        for a in range(m)
    ]  # fmt: skip
    bounds = [(0.0, float(lim)) for lim in limit.ravel()] * 2
    res = minimize(f, np.zeros(2 * k), method="SLSQP", bounds=bounds, constraints=cons,
                   options={"ftol": 1e-14, "maxiter": 2000})  # fmt: skip
    return float(res.fun)


@pytest.mark.parametrize("seed", range(12))
def test_baseline_matches_independent_solver(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(2, 6)), int(rng.integers(1, 3))
    c, gamma, phi, limit = _instance(rng, n, m)
    x = np.zeros((n, m))
    lam = np.zeros(m)
    centralized_solve(c, gamma, phi, limit, x, lam)
    f_star = objective(c, gamma, phi, limit, x)
    assert np.abs(x.sum(axis=0)).max() < 1e-9
    assert np.all(np.abs(x) <= limit + 1e-12)
    f_scipy = _scipy_optimum(c, gamma, phi, limit)
    # Ours is exact: SciPy can only be as good, and agrees to its tolerance.
    assert f_star <= f_scipy + 1e-9 * max(1.0, abs(f_scipy))
    assert abs(f_star - f_scipy) <= 1e-6 * max(1.0, abs(f_scipy))


def test_baseline_kkt_conditions() -> None:
    rng = np.random.default_rng(42)
    for _ in range(200):
        n, m = int(rng.integers(2, 17)), int(rng.integers(1, 9))
        c, gamma, phi, limit = _instance(rng, n, m)
        x = np.zeros((n, m))
        lam = np.zeros(m)
        centralized_solve(c, gamma, phi, limit, x, lam)
        # Stationarity per element: 0 in c + γx + φ∂|x| + λ + N_[−L, L](x).
        g = c + gamma * x + lam[None, :]
        interior = (np.abs(x) < limit - 1e-9) & (np.abs(x) > 1e-12)
        assert np.allclose(g[interior] + phi[interior] * np.sign(x[interior]), 0, atol=1e-7)
        zero = (np.abs(x) <= 1e-12) & (limit > 0)
        assert np.all(np.abs(g[zero]) <= phi[zero] + 1e-7)
        at_upper = x >= limit - 1e-9
        assert np.all((g + phi)[at_upper & (limit > 0)] <= 1e-7)


def test_no_trade_inside_dead_band() -> None:
    c = np.array([[100.0], [100.01]])
    gamma = np.full((2, 1), 1e-3)
    phi = np.full((2, 1), 0.02)  # spread 0.01 < total dead-band 0.04
    limit = np.full((2, 1), 10.0)
    x = np.ones((2, 1))
    centralized_solve(c, gamma, phi, limit, x, np.zeros(1))
    assert np.all(x == 0.0)


def test_admm_converges_to_baseline() -> None:
    rng = np.random.default_rng(7)
    for _ in range(60):
        n, m = int(rng.integers(2, 17)), int(rng.integers(1, 9))
        c, gamma, phi, limit = _instance(rng, n, m)
        solver = ExchangeADMM(n, m, AdmmSettings(max_iter=50_000))
        res = solver.solve(c, gamma, phi, limit)
        assert res.converged
        snap = [a[None].copy() for a in (c, gamma, phi, limit, res.z)]
        gap = np.zeros(1)
        gaps_batch(*snap, 1.0, gap)
        assert gap[0] < 1e-6
        assert np.allclose(res.y, res.rho * res.u)


def test_admm_warm_start_and_iteration_cap() -> None:
    rng = np.random.default_rng(3)
    c, gamma, phi, limit = _instance(rng, 4, 2)
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


def test_admm_rejects_invalid_inputs_naming_array_and_index() -> None:
    solver = ExchangeADMM(2, 1, AdmmSettings())
    ok = np.ones((2, 1))
    bad = ok.copy()
    bad[1, 0] = -1.0
    with pytest.raises(SolverError, match=r"gamma\[1, 0\] = -1.0: must be finite and > 0"):
        solver.solve(ok, bad, ok, ok)
    with pytest.raises(SolverError, match=r"c has shape \(3,\)"):
        solver.solve(np.ones(3), ok, ok, ok)
    with pytest.raises(ValueError, match=r"AdmmSettings\.alpha = 2\.0"):
        AdmmSettings(alpha=2.0)


def test_neutralize_exact_within_limits_and_deterministic() -> None:
    rng = np.random.default_rng(11)
    for _ in range(2000):
        n, m = int(rng.integers(2, 17)), int(rng.integers(1, 5))
        limit = rng.integers(0, 20, (n, m))
        x = rng.uniform(-1, 1, (n, m)) * limit
        x -= x.mean(axis=0) * rng.uniform(0.0, 1.0)  # roughly, not exactly, neutral
        out = np.zeros((n, m), np.int64)
        neutralize_lots(x, limit, out)
        assert np.all(out.sum(axis=0) == 0)
        assert np.all(np.abs(out) <= limit)
        again = np.zeros_like(out)
        neutralize_lots(x, limit, again)
        assert np.array_equal(out, again)


def test_neutralize_close_to_a_neutral_input() -> None:
    x = np.array([[3.4], [-1.2], [-2.2]])  # sums to 0; rounding gives 3 - 1 - 2 = 0
    out = np.zeros((3, 1), np.int64)
    assert neutralize_lots(x, np.full((3, 1), 10), out) == 0
    assert out.ravel().tolist() == [3, -1, -2]
    x = np.array([[2.6], [-1.3], [-1.3]])  # rounds to 3 - 1 - 1 = 1: repair the largest error
    neutralize_lots(x, np.full((3, 1), 10), out)
    assert out.ravel().tolist() == [2, -1, -1]


def _reference_merge(batches: list[np.ndarray], n_v: int, n_a: int) -> np.ndarray:
    """Pure-Python reference: apply each (sender, delta_id) once, in (ts, sender, id) order."""
    plan = np.zeros((n_v, n_a), np.int64)
    applied: set[tuple[int, int]] = set()
    high: dict[int, int] = {}
    for legs in batches:
        hw_before = dict(high)
        seen: set[tuple[int, int, int, int]] = set()
        rows = sorted(range(len(legs)), key=lambda i: (int(legs[i]["ts_ns"]),
                      int(legs[i]["sender"]), int(legs[i]["delta_id"]), i))  # fmt: skip
        for i in rows:
            leg = legs[i]
            s, d = int(leg["sender"]), int(leg["delta_id"])
            if d <= hw_before.get(s, 0):
                continue
            key = (s, d, int(leg["venue"]), int(leg["asset"]))
            if key in seen:
                continue
            seen.add(key)
            plan[leg["venue"], leg["asset"]] += int(leg["side"]) * int(leg["size_lots"])
            applied.add((s, d))
            high[s] = max(high.get(s, 0), d)
    return plan


def _neutral_deltas(rng: np.random.Generator, count: int, n_v: int) -> np.ndarray:
    out = []
    for d in range(1, count + 1):
        legs = np.zeros(2, PLAN_LEG_DTYPE)
        v1, v2 = rng.choice(n_v, 2, replace=False)
        size = int(rng.integers(1, 9))
        legs["ts_ns"] = d * 10
        legs["delta_id"] = d
        legs["sender"] = 1
        legs["venue"] = [v1, v2]
        legs["side"] = [1, -1]
        legs["size_lots"] = size
        out.append(legs)
    return np.concatenate(out)


def test_merge_order_idempotence_and_reference() -> None:
    rng = np.random.default_rng(5)
    legs = _neutral_deltas(rng, 200, 4)
    ordered = DeltaMerger(4, 1, 4)
    ordered.merge(legs)
    shuffled = DeltaMerger(4, 1, 4)
    shuffled.merge(legs[rng.permutation(len(legs))])
    assert np.array_equal(ordered.plan, shuffled.plan)
    assert np.all(ordered.net_delta() == 0)
    assert np.array_equal(ordered.plan, _reference_merge([legs], 4, 1))
    # Re-delivery of the same batch and a batch with a repeated delta change nothing.
    before = ordered.plan.copy()
    assert ordered.merge(legs) == 0
    assert np.array_equal(ordered.plan, before)
    assert ordered.counters()["duplicates"] == len(legs)
    more = _neutral_deltas(rng, 210, 4)[400:]  # deltas 201..210
    doubled = np.concatenate([more, more])
    ordered.merge(doubled)
    assert np.array_equal(ordered.plan, _reference_merge([legs, legs, doubled], 4, 1))


def test_merge_rejects_bad_legs() -> None:
    legs = np.zeros(3, PLAN_LEG_DTYPE)
    legs["delta_id"] = 1
    legs["sender"] = 1
    legs["side"] = [1, 0, 1]
    legs["size_lots"] = [1, 1, 0]
    legs["venue"] = [9, 0, 0]
    merger = DeltaMerger(2, 1, 4)
    assert merger.merge(legs) == 0
    assert merger.counters()["rejected"] == 3
    assert np.all(merger.plan == 0)


def test_legs_from_targets_moves_plan_to_target() -> None:
    plan = np.array([[0], [3], [-3]], np.int64)
    target = np.array([[2], [1], [-3]], np.int64)
    out = np.zeros(3, PLAN_LEG_DTYPE)
    px = np.full((3, 1), 10_000, np.int64)
    n = legs_from_targets(plan, target, 5, 1, 9, px, out)
    assert n == 2
    merger = DeltaMerger(3, 1, 4)
    merger.plan[:] = plan
    merger.merge(out[:n])
    assert np.array_equal(merger.plan, target)
    assert out[0]["side"] == 1 and out[0]["size_lots"] == 2
    assert out[1]["side"] == -1 and out[1]["size_lots"] == 2

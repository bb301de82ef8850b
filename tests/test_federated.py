"""Federated exchange ADMM (venue x-updates + the coordinator's exchange step) against the
in-process kernel: the same iterates, bit for bit, for the same inputs."""

from __future__ import annotations

import numpy as np
import pytest

from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.coordinator.admm import AdmmSettings, ExchangeADMM
from arbsphere.coordinator.federated import FederatedExchange
from arbsphere.errors import SolverError


def _instance(rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, ...]:
    c = 100.0 + rng.normal(0, 0.05, (n, m))
    gamma = rng.uniform(1e-4, 1e-2, (n, m))
    phi = rng.uniform(0, 0.03, (n, m))
    limit = rng.integers(0, 60, (n, m)).astype(float)
    return c, gamma, phi, limit


def _federated_solve(
    coord: FederatedExchange,
    venues: list[VenueSolver],
    solve_id: int,
    max_rounds: int,
    c: np.ndarray,
) -> int:
    """One solve as the service runs it, with the venues called directly."""
    cold = coord.begin(c)
    for v in venues:
        v.begin(solve_id, cold)
    for _ in range(max_rounds):
        u, rho, xbar = coord.u.copy(), coord.rho, coord.xhat_mean.copy()
        for i, v in enumerate(venues):
            v.settle(xbar, coord.settings.alpha)
            coord.absorb(i, v.iterate(u, rho).copy())
        if coord.step():
            break
    for v in venues:  # the final message: every venue settles its z
        v.settle(coord.xhat_mean, coord.settings.alpha)
    return coord.round


@pytest.mark.parametrize(
    "n,m,alpha",
    [(2, 1, 1.0), (3, 4, 1.0), (16, 256, 1.0), (5, 7, 1.6), (2, 1, 1.5)],
)
def test_federated_rounds_reproduce_the_in_process_iterates(n: int, m: int, alpha: float) -> None:
    rng = np.random.default_rng(n * 1000 + m)
    settings = AdmmSettings(alpha=alpha, max_iter=400)
    central = ExchangeADMM(n, m, settings)
    coord = FederatedExchange(n, m, settings)
    venues = [VenueSolver(m) for _ in range(n)]
    for solve_id in range(1, 6):  # a warm-started sequence of perturbed instances
        c, gamma, phi, limit = _instance(rng, n, m)
        for i, v in enumerate(venues):
            for a in range(m):
                v.set_asset(a, c[i, a], gamma[i, a], phi[i, a], limit[i, a], seq=solve_id)
        # cap the rounds on some solves: an early stop leaves the same state on both sides
        cap = 400 if solve_id % 2 else 3
        res = central.solve(c, gamma, phi, limit, max_iter=cap)
        rounds = _federated_solve(coord, venues, solve_id, cap, c)
        assert rounds == res.iterations
        np.testing.assert_array_equal(coord.x, res.x)
        np.testing.assert_array_equal(coord.z, res.z)
        np.testing.assert_array_equal(coord.u, res.u)
        assert coord.rho == res.rho
        assert coord.converged == res.converged
        for i, v in enumerate(venues):  # each venue's own z is the coordinator's row
            np.testing.assert_array_equal(v.z, coord.z[i])


@pytest.mark.parametrize("keep_rho", [False, True])
def test_the_warm_rho_restart_happens_alike_in_rounds_and_in_process(keep_rho: bool) -> None:
    # an optimum pinned at a limit (ρ balanced up to 64x rho0), then an interior one: the
    # coordinator sends ρ0 and the rescaled u from round 2 on; the venues follow
    g, phi = np.full((2, 1), 1e-4), np.full((2, 1), 0.015)
    problems = [
        (np.array([[100.0], [100.08]]), g, phi, np.array([[7.0], [30.0]])),
        (np.array([[100.0], [100.034]]), g, phi, np.full((2, 1), 30.0)),
    ]
    settings = AdmmSettings(max_iter=500, keep_rho=keep_rho)
    central = ExchangeADMM(2, 1, settings)
    coord = FederatedExchange(2, 1, settings)
    venues = [VenueSolver(1) for _ in range(2)]
    for solve_id, (c, gamma, phi_, limit) in enumerate(problems, start=1):
        for i, v in enumerate(venues):
            v.set_asset(0, c[i, 0], gamma[i, 0], phi_[i, 0], limit[i, 0], seq=solve_id)
        res = central.solve(c, gamma, phi_, limit)
        assert _federated_solve(coord, venues, solve_id, 500, c) == res.iterations
        np.testing.assert_array_equal(coord.z, res.z)
        assert coord.rho == res.rho and coord.converged and res.converged
    assert (res.iterations > 90) == keep_rho  # restarted: 45 rounds, kept: 104


def _solve_live(
    coord: FederatedExchange, venues: list[VenueSolver], solve_id: int, rounds: int, c: np.ndarray
) -> bool:
    """One solve with the held-out venues skipped (they 'answer' with their lots)."""
    cold = coord.begin(c)
    live = [i for i in range(len(venues)) if not coord.frozen[i]]
    for i in live:
        venues[i].begin(solve_id, cold)
    for _ in range(rounds):
        for i in live:
            venues[i].settle(coord.xhat_mean, coord.settings.alpha)
            coord.absorb(i, venues[i].iterate(coord.u, coord.rho).copy())
        if coord.step():
            break
    for i in live:
        venues[i].settle(coord.xhat_mean, coord.settings.alpha)
    return cold


def test_an_infeasible_exchange_does_not_poison_the_next_solve() -> None:
    # venue 2 is held out at 28 lots; the live venues can sell 6 + 14: no Σx = 0 exists, and
    # balancing drives ρ and y = ρu up without bound. The next solve (limits 20 + 20: feasible)
    # must start cold — the same solve, bit for bit, as on a fresh exchange
    g, phi = np.full(3, 1e-4), np.full(3, 0.015)
    c = np.array([[100.0], [100.01], [100.0]])

    def run(coord: FederatedExchange, venues: list[VenueSolver], limits: list[float],
            solve_id: int) -> bool:  # fmt: skip
        for i, v in enumerate(venues):
            v.set_asset(0, c[i, 0], g[i], phi[i], limits[i], seq=solve_id)
        return _solve_live(coord, venues, solve_id, 300, c)

    settings = AdmmSettings(max_iter=300)
    coord = FederatedExchange(3, 1, settings)
    venues = [VenueSolver(1) for _ in range(3)]
    coord.freeze(2, np.array([28]))
    run(coord, venues, [6.0, 14.0, 30.0], 1)
    assert not coord.converged and coord.rho > 1e6 * settings.rho0
    fresh = FederatedExchange(3, 1, settings)
    fresh_venues = [VenueSolver(1) for _ in range(3)]
    fresh.freeze(2, np.array([28]))
    assert run(coord, venues, [20.0, 20.0, 30.0], 2)  # cold
    assert run(fresh, fresh_venues, [20.0, 20.0, 30.0], 2)
    assert coord.converged and coord.round == fresh.round
    np.testing.assert_array_equal(coord.x, fresh.x)
    np.testing.assert_array_equal(coord.u, fresh.u)
    np.testing.assert_allclose(coord.x[:2].sum(), -28.0, atol=1e-9)


def test_a_venue_answering_twice_or_a_missing_venue_is_refused() -> None:
    coord = FederatedExchange(2, 1, AdmmSettings())
    coord.begin(np.full((2, 1), 100.0))
    coord.absorb(0, np.array([1.0]))
    with pytest.raises(SolverError, match="venue 0 answered round 1 twice"):
        coord.absorb(0, np.array([1.0]))
    with pytest.raises(SolverError, match=r"no x yet from venues \[1\]"):
        coord.step()
    with pytest.raises(SolverError, match="x from venue 2"):
        coord.absorb(2, np.array([1.0]))


def test_venue_refuses_a_round_before_the_last_one_settled() -> None:
    v = VenueSolver(1)
    v.set_asset(0, 100.0, 1e-3, 0.01, 10, seq=1)
    v.begin(1, cold=True)
    v.iterate(np.array([-1e5]), 1e-3)
    with pytest.raises(SolverError, match="round 2: the last round's"):
        v.iterate(np.array([-1e5]), 1e-3)


def test_a_tick_arriving_mid_solve_waits_for_the_next_solve() -> None:
    v = VenueSolver(1)
    v.set_asset(0, 100.0, 1e-3, 0.0, 10, seq=1)
    frozen = v.begin(1, cold=True)
    x1 = v.iterate(np.array([-100.0 / 1e-3]), 1e-3).copy()
    v.set_asset(0, 90.0, 1e-3, 0.0, 10, seq=2)  # new tick mid-solve
    v.settle(np.zeros(1), 1.0)
    x2 = v.iterate(np.array([-100.0 / 1e-3]), 1e-3).copy()
    assert frozen.problem_seq == 1 and frozen.c[0] == 100.0
    assert x1[0] == 0.0 and x2[0] == 0.0  # still priced at 100, not 90
    assert v.begin(2, cold=False).problem_seq == 2

"""The rig's baseline of federated solves: venues' frozen problems joined with the
coordinator's z per solve, against the exact centralized optimum."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from arbsphere.adapters.venue_rounds import VENUE_SOLVE_DTYPE
from arbsphere.coordinator.baseline import centralized_solve
from arbsphere.coordinator.traces import FED_SOLVE_DTYPE
from arbsphere.kpi.federated_baseline import federated_solves


def _write(proc: Path, c: np.ndarray, gamma: np.ndarray, phi: np.ndarray, limit: np.ndarray,
           z: np.ndarray, drop: tuple[int, int] | None = None) -> None:  # fmt: skip
    k_total, n, m = c.shape
    solves = np.zeros(k_total, FED_SOLVE_DTYPE)
    solves["solve_id"] = np.arange(1, k_total + 1)
    solves["row"] = np.arange(k_total) * 3
    solves["rounds"] = 4
    solves["converged"] = 1
    solves["ended_ns"] = 1000
    np.save(proc / "coordinator.solves.npy", solves)
    np.save(proc / "coordinator.solves_z.npy", z)
    for i in range(n):
        rows = []
        for k in range(k_total):
            if drop == (i, k):
                continue
            for a in range(m):
                rows.append((k + 1, a, 7, c[k, i, a], gamma[k, i, a], phi[k, i, a],
                             limit[k, i, a], 0, 4, 1, np.nan))  # fmt: skip
        name = f"venue_{i}"
        np.save(proc / f"{name}.solves.npy", np.array(rows, VENUE_SOLVE_DTYPE))
        (proc / f"{name}.stats.json").write_text(json.dumps({"venue_id": i}))


def _optimal_solves(seed: int, k_total: int, n: int, m: int) -> tuple[np.ndarray, ...]:
    """Random problems and each one's exact optimum as an exactly neutral z (as ADMM's z is)."""
    rng = np.random.default_rng(seed)
    c = 100.0 + rng.normal(0, 0.05, (k_total, n, m))
    gamma = np.full((k_total, n, m), 1e-3)
    phi = np.full((k_total, n, m), 0.005)
    limit = np.full((k_total, n, m), 30.0)
    z = np.zeros((k_total, n, m))
    lam = np.zeros(m)
    for k in range(k_total):
        centralized_solve(c[k], gamma[k], phi[k], limit[k], z[k], lam)
        z[k] -= z[k].mean(axis=0)
    return c, gamma, phi, limit, z


def test_gap_is_zero_at_the_optimum_positive_off_it_and_nan_without_a_venue_record(
    tmp_path: Path,
) -> None:
    k_total, n, m = 5, 3, 2
    c, gamma, phi, limit, z = _optimal_solves(2, k_total, n, m)
    z[1, 0, 0] += 3.0  # a worse allocation (kept neutral) for solve 2
    z[1, 1, 0] -= 3.0
    _write(tmp_path, c, gamma, phi, limit, z, drop=(2, 3))
    df = federated_solves(tmp_path, [f"venue_{i}" for i in range(n)])
    assert df is not None
    assert list(df["row"]) == [0, 3, 6, 9, 12]
    gaps = df["objective_gap"].to_numpy()
    assert np.all(gaps[[0, 2, 4]] <= 1e-9)
    assert gaps[1] > 1e-6
    assert np.isnan(gaps[3])  # venue 2 has no record of solve 4: no baseline, not a guess


def test_a_central_run_has_no_federated_solves(tmp_path: Path) -> None:
    assert federated_solves(tmp_path, ["venue_a"]) is None


def test_round_gaps_fall_to_zero_at_the_optimum(tmp_path: Path) -> None:
    from arbsphere.kpi.federated_baseline import round_gaps

    c, gamma, phi, limit, z = _optimal_solves(4, 2, 2, 1)
    _write(tmp_path, c, gamma, phi, limit, z)
    # solve 1: round 1 far off (a neutral 5-lot swap), round 2 at the optimum; solve 2: one round
    rz = np.stack([z[0] + np.array([[5.0], [-5.0]]), z[0], z[1]])
    np.save(tmp_path / "coordinator.rounds_z.npy", rz)
    np.save(tmp_path / "coordinator.rounds_z_ids.npy", np.array([[1, 1], [1, 2], [2, 1]]))
    df = round_gaps(tmp_path, ["venue_0", "venue_1"])
    assert df is not None
    assert list(df["round"]) == [1, 2, 1]
    gaps = df["objective_gap"].to_numpy()
    assert gaps[0] > 1e-6 and gaps[1] <= 1e-9 and gaps[2] <= 1e-9


def test_a_run_without_a_solve_gives_an_empty_table(tmp_path: Path) -> None:
    """A scale cell that fell so far behind that no solve completed (seen in `make bench`)."""
    from arbsphere.coordinator.traces import FED_SOLVE_DTYPE

    np.save(tmp_path / "coordinator.solves.npy", np.zeros(0, FED_SOLVE_DTYPE))
    np.save(tmp_path / "coordinator.solves_z.npy", np.zeros((0, 2, 1)))
    table = federated_solves(tmp_path, ["venue_a", "venue_b"])
    assert table is not None and len(table) == 0

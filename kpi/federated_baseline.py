"""The centralized baseline of every federated solve, computed by the rig after the run.

In federated coordination the coordinator never sees the venues' local problems, so it cannot
compare its result with the exact optimum. The rig can: each venue adapter records the problem
it froze for every solve (``<venue>.solves.npy``), the coordinator records its consensus
iterate z per solve (``coordinator.solves.npy`` + ``coordinator.solves_z.npy``). Joined on the
solve id, the exact bisection baseline gives each solve's relative objective gap — the same
certified gap (against the baseline's dual value) the central mode computes in process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from numba import njit

from arbsphere.coordinator.baseline import gaps_batch
from arbsphere.errors import ResultSetError
from arbsphere.price_protocol import best_response


def _problems(
    proc_dir: Path, venue_names: list[str], solve_ids: np.ndarray, n: int, m: int
) -> np.ndarray:
    """(4, K, n, m): c, γ, φ, L of the solve of each of ``solve_ids`` (ids may repeat) as each
    venue recorded it; NaN where a venue has no record of that solve."""
    unique = np.unique(solve_ids)
    per_solve = np.full((4, len(unique), n, m), np.nan)
    for name in venue_names:
        rec_path = proc_dir / f"{name}.solves.npy"
        stats_path = proc_dir / f"{name}.stats.json"
        if not rec_path.exists() or not stats_path.exists():
            continue
        venue = int(json.loads(stats_path.read_text())["venue_id"])
        if not 0 <= venue < n:
            raise ResultSetError(f"{stats_path}: venue_id {venue}, the solves have {n} venues")
        rec = np.load(rec_path, allow_pickle=False)
        rec_ids = rec["solve_id"].astype(np.int64)
        pos = np.clip(np.searchsorted(unique, rec_ids), 0, max(len(unique) - 1, 0))
        hit = (unique[pos] == rec_ids) & (rec["asset"] < m) if len(unique) else rec_ids < 0
        a = rec["asset"][hit].astype(np.int64)
        for i, field in enumerate(("c", "gamma", "phi", "limit")):
            per_solve[i, pos[hit], venue, a] = rec[field][hit]
    return per_solve[:, np.searchsorted(unique, solve_ids)]


def _venue_final_z(
    proc_dir: Path, venue_names: list[str], solve_ids: np.ndarray, n: int, m: int
) -> np.ndarray:
    """(K, n, m): each venue's own z after the last round of each solve (``z_final`` of its
    solve trace); NaN where a venue has none. Under secure aggregation this is the only
    record of the consensus iterate (the coordinator holds sums)."""
    out = np.full((len(solve_ids), n, m), np.nan)
    unique, inverse = np.unique(solve_ids, return_inverse=True)
    for name in venue_names:
        rec_path = proc_dir / f"{name}.solves.npy"
        stats_path = proc_dir / f"{name}.stats.json"
        if not rec_path.exists() or not stats_path.exists():
            continue
        rec = np.load(rec_path, allow_pickle=False)
        if rec.dtype.names is None or "z_final" not in rec.dtype.names:
            continue
        venue = int(json.loads(stats_path.read_text())["venue_id"])
        if not 0 <= venue < n:
            continue
        per = np.full((len(unique), m), np.nan)
        ids = rec["solve_id"].astype(np.int64)
        pos = np.clip(np.searchsorted(unique, ids), 0, max(len(unique) - 1, 0))
        hit = (unique[pos] == ids) & (rec["asset"] < m) if len(unique) else ids < 0
        per[pos[hit], rec["asset"][hit].astype(np.int64)] = rec["z_final"][hit]
        out[:, venue] = per[inverse]
    return out


def _gaps(problems: np.ndarray, z: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Relative gap of each z (K, n, m) against its problem's centralized optimum; NaN where
    ``valid`` is False or a venue's record is missing."""
    k_total = z.shape[0]
    complete = valid & ~np.isnan(problems[0]).reshape(k_total, z.shape[1] * z.shape[2]).any(axis=1)
    gap = np.full(k_total, np.nan)
    if complete.any():
        out = np.zeros(int(complete.sum()))
        c, g, f, lim = (np.ascontiguousarray(problems[i, complete]) for i in range(4))
        gaps_batch(c, g, f, lim, np.ascontiguousarray(z[complete]), 1.0, out)
        gap[complete] = out
    return gap


def federated_solves(proc_dir: Path, venue_names: list[str]) -> pd.DataFrame | None:
    """One row per federated solve: trace row of its trigger tick, rounds, converged,
    aborted, residuals, wall time (ns) and the gap against the centralized baseline (NaN when
    a venue's record is missing or the solve was aborted). None for a central run."""
    path = proc_dir / "coordinator.solves.npy"
    if not path.exists():
        return None
    solves = np.load(path, allow_pickle=False)
    z = np.load(proc_dir / "coordinator.solves_z.npy", allow_pickle=False)
    if z.shape[0] != len(solves) or z.ndim != 3:
        raise ResultSetError(
            f"{proc_dir}: coordinator.solves_z.npy has shape {z.shape}, "
            f"coordinator.solves.npy {len(solves)} solves"
        )
    ids = solves["solve_id"].astype(np.int64)
    problems = _problems(proc_dir, venue_names, ids, z.shape[1], z.shape[2])
    # the venues' own final z where every venue recorded one (secure aggregation: the
    # coordinator's record is the revealed round's x - x-bar, not the last iterate)
    venue_z = _venue_final_z(proc_dir, venue_names, ids, z.shape[1], z.shape[2])
    whole = ~np.isnan(venue_z.reshape(len(ids), z.shape[1] * z.shape[2])).any(axis=1)
    if whole.any():
        z = z.copy()
        z[whole] = venue_z[whole]
    gap = _gaps(problems, z, solves["aborted"] == 0)
    return pd.DataFrame(
        {
            "solve_id": ids,
            "row": solves["row"].astype(np.int64),
            "rounds": solves["rounds"].astype(np.int64),
            "max_rounds": solves["max_rounds"].astype(np.int64),
            "converged": solves["converged"].astype(bool),
            "aborted": solves["aborted"].astype(bool),
            "primal_res": solves["primal_res"],
            "dual_res": solves["dual_res"],
            "elapsed_ns": (solves["ended_ns"] - solves["started_ns"]).astype(np.int64),
            "objective_gap": gap,
        }
    )


def _venue_rounds_z(
    proc_dir: Path, venue_names: list[str], n: int, m: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Under secure aggregation the coordinator never knows z: each venue kept its own z after
    every round of the first solves (``<venue>.rounds_z.npy``). Joined on (solve, round) where
    every venue has one: (ids K x 2, z K x n x m), or None."""
    per_venue: dict[int, dict[tuple[int, int], np.ndarray]] = {}
    for name in venue_names:
        z_path = proc_dir / f"{name}.rounds_z.npy"
        stats_path = proc_dir / f"{name}.stats.json"
        if not z_path.exists() or not stats_path.exists():
            continue
        venue = int(json.loads(stats_path.read_text())["venue_id"])
        z = np.load(z_path, allow_pickle=False)
        ids = np.load(proc_dir / f"{name}.rounds_z_ids.npy", allow_pickle=False)
        if 0 <= venue < n and z.ndim == 2 and z.shape[1] == m and len(ids) == len(z):
            per_venue[venue] = {(int(a), int(b)): z[k] for k, (a, b) in enumerate(ids)}
    if len(per_venue) != n:
        return None
    keys = sorted(set.intersection(*(set(d) for d in per_venue.values())))
    if not keys:
        return None
    z_all = np.array([[per_venue[v][key] for v in range(n)] for key in keys])
    return np.array(keys, np.int64), z_all


@njit(cache=True)
def responses(c, gamma, phi, limit, prices, out):  # type: ignore[no-untyped-def]
    """Every venue's best response (K x n x m) to each round's prices (K x m); NaN where
    its problem is unknown."""
    k_total, n, m = c.shape
    for k in range(k_total):
        for i in range(n):
            for a in range(m):
                if not np.isnan(c[k, i, a]):
                    out[k, i, a] = best_response(c[k, i, a], gamma[k, i, a], phi[k, i, a],
                                                 limit[k, i, a], prices[k, a])  # fmt: skip


def round_gaps(proc_dir: Path, venue_names: list[str]) -> pd.DataFrame | None:
    """Per round of the first solves whose z was kept after every round — by the coordinator,
    or under secure aggregation (where the coordinator holds only sums) by each venue, joined
    here by the rig; in the price protocol, every venue's response to the round's prices
    (computed here from its recorded problem) minus their mean: solve id, round, the gap of
    that round's z against the solve's centralized optimum, and the round's residuals (the
    coordinator's, from the sums). None when the run kept none (central runs)."""
    z_path = proc_dir / "coordinator.rounds_z.npy"
    if not z_path.exists():
        return None
    z = np.load(z_path, allow_pickle=False)
    ids = np.load(proc_dir / "coordinator.rounds_z_ids.npy", allow_pickle=False)
    price_path = proc_dir / "coordinator.rounds_price.npy"
    if not len(ids) and price_path.exists():  # the price protocol: responses to the prices
        ids = np.load(proc_dir / "coordinator.rounds_price_ids.npy", allow_pickle=False)
        prices = np.load(price_path, allow_pickle=False)
        if not len(ids):
            return None
        shape = np.load(proc_dir / "coordinator.solves_z.npy", allow_pickle=False,
                        mmap_mode="r").shape  # fmt: skip
        problems = _problems(proc_dir, venue_names, ids[:, 0], shape[1], shape[2])
        z = np.full((len(ids), shape[1], shape[2]), np.nan)
        responses(problems[0], problems[1], problems[2], problems[3], prices, z)
        z -= np.nanmean(z, axis=1, keepdims=True)
    elif not len(ids):
        solves_z = proc_dir / "coordinator.solves_z.npy"
        if not solves_z.exists():
            return None
        shape = np.load(solves_z, allow_pickle=False, mmap_mode="r").shape
        joined = _venue_rounds_z(proc_dir, venue_names, shape[1], shape[2])
        if joined is None:
            return None
        ids, z = joined
    problems = _problems(proc_dir, venue_names, ids[:, 0], z.shape[1], z.shape[2])
    gaps = _gaps(problems, z, np.ones(len(ids), np.bool_))
    keep = ~np.isnan(gaps)
    if not keep.any():
        return None
    out = pd.DataFrame(
        {"solve_id": ids[keep, 0], "round": ids[keep, 1], "objective_gap": gaps[keep]}
    )
    rounds_path = proc_dir / "coordinator.rounds.npy"
    if rounds_path.exists():
        r = pd.DataFrame(np.load(rounds_path, allow_pickle=False))
        r = r[["solve_id", "round", "primal_res", "dual_res"]].astype(
            {"solve_id": "int64", "round": "int64"}
        )
        out = out.merge(r, on=["solve_id", "round"], how="left")
    return out

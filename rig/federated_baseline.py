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

from arbsphere.coordinator.baseline import gaps_batch
from arbsphere.errors import ResultSetError


def federated_solves(proc_dir: Path, venue_names: list[str]) -> pd.DataFrame | None:
    """One row per federated solve: trace row of its trigger tick, rounds, converged,
    aborted, residuals, wall time (ns) and the gap against the centralized baseline (NaN when
    a venue's record is missing or the solve was aborted). None for a central run."""
    path = proc_dir / "coordinator.solves.npy"
    if not path.exists():
        return None
    solves = np.load(path, allow_pickle=False)
    z = np.load(proc_dir / "coordinator.solves_z.npy", allow_pickle=False)
    if z.shape[0] != len(solves):
        raise ResultSetError(
            f"{proc_dir}: coordinator.solves_z.npy has {z.shape[0]} solves, "
            f"coordinator.solves.npy {len(solves)}"
        )
    k_total = len(solves)
    n = z.shape[1] if z.ndim == 3 else 0
    m = z.shape[2] if z.ndim == 3 else 0
    shape = (k_total, n, m)
    c = np.full(shape, np.nan)
    gamma = np.full(shape, np.nan)
    phi = np.full(shape, np.nan)
    limit = np.full(shape, np.nan)
    ids = solves["solve_id"].astype(np.int64)
    order = np.argsort(ids, kind="stable")
    for name in venue_names:
        rec_path = proc_dir / f"{name}.solves.npy"
        stats_path = proc_dir / f"{name}.stats.json"
        if not rec_path.exists() or not stats_path.exists():
            continue
        venue = int(json.loads(stats_path.read_text())["venue_id"])
        if not 0 <= venue < n:
            raise ResultSetError(f"{stats_path}: venue_id {venue}, the solves have {n} venues")
        rec = np.load(rec_path, allow_pickle=False)
        pos = np.searchsorted(ids[order], rec["solve_id"].astype(np.int64))
        pos = np.clip(pos, 0, max(k_total - 1, 0))
        hit = (ids[order][pos] == rec["solve_id"]) & (rec["asset"] < m) if k_total else pos < 0
        k = order[pos[hit]]
        a = rec["asset"][hit].astype(np.int64)
        c[k, venue, a] = rec["c"][hit]
        gamma[k, venue, a] = rec["gamma"][hit]
        phi[k, venue, a] = rec["phi"][hit]
        limit[k, venue, a] = rec["limit"][hit]
    complete = ~np.isnan(c).reshape(k_total, -1).any(axis=1) & (solves["aborted"] == 0)
    gap = np.full(k_total, np.nan)
    if complete.any():
        out = np.zeros(int(complete.sum()))
        gaps_batch(
            np.ascontiguousarray(c[complete]), np.ascontiguousarray(gamma[complete]),
            np.ascontiguousarray(phi[complete]), np.ascontiguousarray(limit[complete]),
            np.ascontiguousarray(z[complete]), 1.0, out,
        )  # fmt: skip
        gap[complete] = out
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

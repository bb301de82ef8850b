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


def _venue_problems(proc_dir: Path, venue_names: list[str]) -> dict[int, dict[int, np.ndarray]]:
    """venue id -> solve id -> that venue's solve records (one per asset)."""
    out: dict[int, dict[int, np.ndarray]] = {}
    for name in venue_names:
        rec_path = proc_dir / f"{name}.solves.npy"
        stats_path = proc_dir / f"{name}.stats.json"
        if not rec_path.exists() or not stats_path.exists():
            continue
        venue = int(json.loads(stats_path.read_text())["venue_id"])
        rec = np.load(rec_path, allow_pickle=False)
        ids = rec["solve_id"].astype(np.int64)
        order = np.argsort(ids, kind="stable")
        bounds = np.searchsorted(ids[order], np.unique(ids), side="left")
        per: dict[int, np.ndarray] = {}
        for k, sid in enumerate(np.unique(ids)):
            end = bounds[k + 1] if k + 1 < len(bounds) else len(order)
            per[int(sid)] = rec[order[bounds[k] : end]]
        out[venue] = per
    return out


def round_gaps(proc_dir: Path, venue_names: list[str]) -> pd.DataFrame | None:
    """Per round of the first solves whose z the coordinator kept after every round: solve id,
    round, the gap of that round's z against the solve's centralized optimum, and the round's
    residuals. None when the run kept none (central runs)."""
    z_path = proc_dir / "coordinator.rounds_z.npy"
    if not z_path.exists():
        return None
    z = np.load(z_path, allow_pickle=False)
    ids = np.load(proc_dir / "coordinator.rounds_z_ids.npy", allow_pickle=False)
    if not len(ids):
        return None
    _, n, m = z.shape
    problems = _venue_problems(proc_dir, venue_names)
    keep = []
    shape = (len(ids), n, m)
    c, gamma, phi, limit = (np.full(shape, np.nan) for _ in range(4))
    for k, (sid, _rnd) in enumerate(ids):
        ok = True
        for venue in range(n):
            rec = problems.get(venue, {}).get(int(sid))
            if rec is None or len(rec) != m:
                ok = False
                break
            a = rec["asset"].astype(np.int64)
            c[k, venue, a], gamma[k, venue, a] = rec["c"], rec["gamma"]
            phi[k, venue, a], limit[k, venue, a] = rec["phi"], rec["limit"]
        if ok:
            keep.append(k)
    if not keep:
        return None
    sel = np.array(keep)
    gaps = np.zeros(len(sel))
    gaps_batch(
        np.ascontiguousarray(c[sel]), np.ascontiguousarray(gamma[sel]),
        np.ascontiguousarray(phi[sel]), np.ascontiguousarray(limit[sel]),
        np.ascontiguousarray(z[sel]), 1.0, gaps,
    )  # fmt: skip
    out = pd.DataFrame({"solve_id": ids[sel, 0], "round": ids[sel, 1], "objective_gap": gaps})
    rounds_path = proc_dir / "coordinator.rounds.npy"
    if rounds_path.exists():
        r = pd.DataFrame(np.load(rounds_path, allow_pickle=False))
        r = r[["solve_id", "round", "primal_res", "dual_res"]].astype(
            {"solve_id": "int64", "round": "int64"}
        )
        out = out.merge(r, on=["solve_id", "round"], how="left")
    return out

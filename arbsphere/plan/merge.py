"""Delta-merge: applying PlanDelta legs to the plan state, ordered and idempotent.

A PlanDelta is the set of legs sharing one (sender, delta_id); the plan is an int64 array of
positions (venues x assets). :func:`merge_legs` sorts a batch by (ts_ns, sender, delta_id) —
three stable merge sorts, O(n log n), ties keep input order — and applies each leg's signed size
``side * size_lots``. Idempotent: a delta whose id is at or below the sender's high-water mark
at the start of the batch was applied before and is skipped (counted as duplicate), and a leg
repeating the same (sender, delta_id, venue, asset) within one batch is applied once; so
re-delivering a batch, or a batch with repeated deltas, yields the same plan. Legs with an
out-of-range venue, asset or sender, a side other than ±1, or a size <= 0 are rejected
(counted, never applied) together with every other leg of their delta: a delta applies whole or
not at all, so a malformed delta cannot break neutrality. Notes: a re-sent delta with a
different ``ts_ns`` is a separate delivery (the high-water rule then skips it as a duplicate); a
lower delta id arriving after a higher one of the same sender counts as a duplicate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from arbsphere.contracts import PLAN_LEG_DTYPE

STAT_APPLIED = 0
STAT_DUPLICATE = 1
STAT_REJECTED = 2
STAT_MAX_ABS_NET = 3
N_STATS = 4


@njit(cache=True)
def merge_legs(legs, plan, high_water, seen, stats):  # type: ignore[no-untyped-def]
    """Apply ``legs`` to ``plan``; ``seen`` is an int64 scratch of size venues*assets.

    Returns the number of legs applied this call."""
    n = legs.shape[0]
    n_venues, n_assets = plan.shape
    if n == 0:
        return 0
    order = np.argsort(legs["delta_id"], kind="mergesort")
    key = legs["sender"][order]
    order = order[np.argsort(key, kind="mergesort")]
    key2 = legs["ts_ns"][order]
    order = order[np.argsort(key2, kind="mergesort")]
    hw_before = high_water.copy()
    applied = 0
    # A delta is all its legs or nothing: one invalid leg rejects every leg of its delta (legs
    # of one delta share (ts_ns, sender, delta_id), so they are contiguous after the sort).
    bad = np.zeros(n, np.bool_)
    start = 0
    for k in range(n + 1):
        if k == n or (
            k > start
            and (
                legs[order[k]].ts_ns != legs[order[start]].ts_ns
                or legs[order[k]].sender != legs[order[start]].sender
                or legs[order[k]].delta_id != legs[order[start]].delta_id
            )
        ):
            invalid = False
            for j in range(start, k):
                leg = legs[order[j]]
                if (
                    np.int64(leg.sender) >= high_water.shape[0]
                    or leg.venue >= n_venues
                    or leg.asset >= n_assets
                    or (leg.side != 1 and leg.side != -1)
                    or leg.size_lots <= 0
                ):
                    invalid = True
            if invalid:
                for j in range(start, k):
                    bad[j] = True
            start = k
    group_sender = -1
    group_delta = np.uint64(0)
    generation = 0
    for k in range(n):
        leg = legs[order[k]]
        sender = np.int64(leg.sender)
        if bad[k]:
            stats[STAT_REJECTED] += 1
            continue
        if leg.delta_id <= hw_before[sender]:
            stats[STAT_DUPLICATE] += 1
            continue
        if sender != group_sender or leg.delta_id != group_delta:
            group_sender = int(sender)
            group_delta = leg.delta_id
            generation += 1
        cell = np.int64(leg.venue) * n_assets + np.int64(leg.asset)
        if seen[cell] == generation:
            stats[STAT_DUPLICATE] += 1
            continue
        seen[cell] = generation
        plan[leg.venue, leg.asset] += np.int64(leg.side) * leg.size_lots
        if leg.delta_id > high_water[sender]:
            high_water[sender] = leg.delta_id
        applied += 1
    stats[STAT_APPLIED] += applied
    worst = 0
    for a in range(n_assets):
        net = 0
        for v in range(n_venues):
            net += plan[v, a]
        worst = max(worst, abs(net))
    stats[STAT_MAX_ABS_NET] = worst
    for c in range(seen.shape[0]):
        seen[c] = 0
    return applied


@njit(cache=True)
def legs_from_targets(plan, target, ts_ns, sender, delta_id, limit_px, out_legs):  # type: ignore[no-untyped-def]
    """Write the legs moving ``plan`` to ``target`` into ``out_legs``; returns their count."""
    n_venues, n_assets = plan.shape
    if out_legs.shape[0] < n_venues * n_assets:
        raise ValueError("out_legs must hold venues x assets legs")
    k = 0
    for v in range(n_venues):
        for a in range(n_assets):
            d = target[v, a] - plan[v, a]
            if d == 0:
                continue
            leg = out_legs[k]
            leg.ts_ns = ts_ns
            leg.delta_id = delta_id
            leg.sender = sender
            leg.venue = v
            leg.asset = a
            leg.side = 1 if d > 0 else -1
            leg.size_lots = d if d > 0 else -d
            leg.limit_px = limit_px[v, a]
            k += 1
    return k


@njit(cache=True)
def emit_and_merge(  # type: ignore[no-untyped-def]
    plan, target, min_delta_lots, ts_ns, sender, delta_id, bid_px, ask_px, out_legs,
    high_water, seen, stats,
):  # fmt: skip
    """One coordinator decision in one kernel call: if some cell of ``target`` differs from
    ``plan`` by at least ``min_delta_lots``, write the legs moving the plan to the target into
    ``out_legs`` (marketable limits: a buy at the venue's ask, a sell at its bid), merge them
    into the plan (:func:`merge_legs`) and return their count; else return 0 and change nothing.
    """
    n_venues, n_assets = plan.shape
    worst = 0
    for v in range(n_venues):
        for a in range(n_assets):
            d = abs(target[v, a] - plan[v, a])
            if d > worst:
                worst = d
    if worst == 0 or worst < min_delta_lots:
        return 0
    n = legs_from_targets(plan, target, ts_ns, sender, delta_id, bid_px, out_legs)
    for k in range(n):
        leg = out_legs[k]
        v, a = leg.venue, leg.asset
        leg.limit_px = ask_px[v, a] if leg.side > 0 else bid_px[v, a]
    merge_legs(out_legs[:n], plan, high_water, seen, stats)
    return n


class DeltaMerger:
    """Owns the plan state, per-sender high-water marks and scratch space."""

    def __init__(self, n_venues: int, n_assets: int, n_senders: int) -> None:
        self.plan = np.zeros((n_venues, n_assets), np.int64)
        self.high_water = np.zeros(n_senders, np.uint64)
        self.seen = np.zeros(n_venues * n_assets, np.int64)
        self.stats = np.zeros(N_STATS, np.int64)

    def merge(self, legs: np.ndarray) -> int:
        if legs.dtype != PLAN_LEG_DTYPE:
            raise TypeError(f"legs must have PLAN_LEG_DTYPE, got {legs.dtype}")
        return int(merge_legs(legs, self.plan, self.high_water, self.seen, self.stats))

    def net_delta(self) -> np.ndarray:
        return self.plan.sum(axis=0)

    def counters(self) -> dict[str, int]:
        return {
            "applied": int(self.stats[STAT_APPLIED]),
            "duplicates": int(self.stats[STAT_DUPLICATE]),
            "rejected": int(self.stats[STAT_REJECTED]),
            "max_abs_net_lots": int(self.stats[STAT_MAX_ABS_NET]),
        }

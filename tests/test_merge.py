"""Delta-merge: order independence, idempotence, rejection counts, and a pure-Python reference."""

from __future__ import annotations

import numpy as np

from arbsphere.contracts import PLAN_LEG_DTYPE
from arbsphere.plan.merge import (
    STAT_APPLIED,
    STAT_DUPLICATE,
    STAT_MAX_ABS_NET,
    STAT_REJECTED,
    DeltaMerger,
    legs_from_targets,
)

N_V, N_A, N_S = 5, 3, 4
CORRUPTIONS = [("venue", N_V), ("asset", N_A + 2), ("side", 0), ("side", 3), ("size_lots", 0),
               ("size_lots", -5)]  # fmt: skip
Leg = tuple[int, int, int, int]  # venue, asset, side, size


def _delta(
    sender: int, delta_id: int, ts: int, legs: list[tuple[int, int, int, int]]
) -> np.ndarray:
    """legs: (venue, asset, side, size)."""
    out = np.zeros(len(legs), PLAN_LEG_DTYPE)
    out["sender"] = sender
    out["delta_id"] = delta_id
    out["ts_ns"] = ts
    for k, (v, a, side, size) in enumerate(legs):
        out[k]["venue"], out[k]["asset"], out[k]["side"], out[k]["size_lots"] = v, a, side, size
        out[k]["limit_px"] = 1000 + k
    return out


def _neutral_delta(rng: np.random.Generator, sender: int, delta_id: int) -> np.ndarray:
    a = int(rng.integers(0, N_A))
    v1, v2 = (int(v) for v in rng.choice(N_V, 2, replace=False))
    size = int(rng.integers(1, 20))
    side = int(rng.choice([-1, 1]))
    return _delta(sender, delta_id, 1_000 * delta_id + sender, [(v1, a, side, size),
                                                                (v2, a, -side, size)])  # fmt: skip


class Reference:
    """Dict-based model of the merge rules, written from the specification."""

    def __init__(self) -> None:
        self.plan: dict[tuple[int, int], int] = {}
        self.high: dict[int, int] = {}
        self.applied = self.duplicates = self.rejected = 0

    def merge(self, legs: np.ndarray) -> None:
        rows = [legs[i] for i in range(len(legs))]
        order = sorted(range(len(rows)), key=lambda i: (int(rows[i]["ts_ns"]),
                       int(rows[i]["sender"]), int(rows[i]["delta_id"]), i))  # fmt: skip
        high_before = dict(self.high)
        seen: set[tuple[int, int, int, int]] = set()

        def invalid(leg: np.void) -> bool:
            s, v, a = int(leg["sender"]), int(leg["venue"]), int(leg["asset"])
            side, size = int(leg["side"]), int(leg["size_lots"])
            return s >= N_S or v >= N_V or a >= N_A or side not in (1, -1) or size <= 0

        # A delta (legs sharing ts, sender, delta_id) applies whole or not at all.
        bad_deltas = {
            (int(leg["ts_ns"]), int(leg["sender"]), int(leg["delta_id"]))
            for leg in rows
            if invalid(leg)
        }
        for i in order:
            leg = rows[i]
            s, d, v, a = (int(leg[k]) for k in ("sender", "delta_id", "venue", "asset"))
            side, size = int(leg["side"]), int(leg["size_lots"])
            if (int(leg["ts_ns"]), s, d) in bad_deltas:
                self.rejected += 1
            elif d <= high_before.get(s, 0) or (s, d, v, a) in seen:
                self.duplicates += 1
            else:
                seen.add((s, d, v, a))
                self.plan[(v, a)] = self.plan.get((v, a), 0) + side * size
                self.high[s] = max(self.high.get(s, 0), d)
                self.applied += 1

    def plan_array(self) -> np.ndarray:
        out = np.zeros((N_V, N_A), np.int64)
        for (v, a), pos in self.plan.items():
            out[v, a] = pos
        return out


def _random_batches(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    next_id = dict.fromkeys(range(N_S + 1), 1)
    sent: list[np.ndarray] = []
    batches = []
    for _ in range(12):
        parts = []
        for _ in range(int(rng.integers(1, 8))):
            s = int(rng.integers(0, N_S + 1))  # sender N_S is out of range
            d = _neutral_delta(rng, s, next_id[s])
            next_id[s] += 1
            if rng.random() < 0.15:  # corrupt one leg
                k = int(rng.integers(0, len(d)))
                field, value = CORRUPTIONS[int(rng.integers(0, len(CORRUPTIONS)))]
                d[k][field] = value
            parts.append(d)
            sent.append(d)
        if sent and rng.random() < 0.5:  # re-deliver an old delta
            parts.append(sent[int(rng.integers(0, len(sent)))])
        if rng.random() < 0.3:  # the same delta twice in one batch
            parts.append(parts[0])
        batch = np.concatenate(parts)
        batches.append(batch[rng.permutation(len(batch))])
    return batches


def test_agrees_with_the_reference_on_random_batches() -> None:
    for seed in range(20):
        merger, ref = DeltaMerger(N_V, N_A, N_S), Reference()
        for batch in _random_batches(seed):
            before = merger.counters()["applied"]
            applied = merger.merge(batch)
            ref.merge(batch)
            assert applied == merger.counters()["applied"] - before
            np.testing.assert_array_equal(merger.plan, ref.plan_array())
            counters = merger.counters()
            assert (counters["applied"], counters["duplicates"], counters["rejected"]) == (
                ref.applied, ref.duplicates, ref.rejected)  # fmt: skip
        assert merger.high_water.tolist() == [ref.high.get(s, 0) for s in range(N_S)]


def test_shuffled_input_gives_the_same_plan_as_sorted() -> None:
    rng = np.random.default_rng(1)
    batch = np.concatenate([_neutral_delta(rng, s, d) for d in range(1, 30) for s in range(3)])
    ordered = DeltaMerger(N_V, N_A, N_S)
    ordered.merge(batch)
    for _ in range(5):
        shuffled = DeltaMerger(N_V, N_A, N_S)
        shuffled.merge(batch[rng.permutation(len(batch))])
        np.testing.assert_array_equal(shuffled.plan, ordered.plan)
        np.testing.assert_array_equal(shuffled.high_water, ordered.high_water)
        assert shuffled.counters() == ordered.counters()


def test_applying_a_batch_twice_equals_once() -> None:
    rng = np.random.default_rng(2)
    batch = np.concatenate([_neutral_delta(rng, 1, d) for d in range(1, 20)])
    merger = DeltaMerger(N_V, N_A, N_S)
    assert merger.merge(batch) == len(batch)
    plan = merger.plan.copy()
    assert merger.merge(batch) == 0
    np.testing.assert_array_equal(merger.plan, plan)
    assert merger.counters()["duplicates"] == len(batch)
    assert merger.merge(batch[::-1].copy()) == 0  # any re-delivery order
    np.testing.assert_array_equal(merger.plan, plan)


def test_duplicated_delta_inside_one_batch_is_applied_once() -> None:
    d = _delta(2, 7, 500, [(0, 1, 1, 4), (3, 1, -1, 4)])
    merger = DeltaMerger(N_V, N_A, N_S)
    assert merger.merge(np.concatenate([d, d, d])) == 2
    assert merger.plan[0, 1] == 4 and merger.plan[3, 1] == -4
    assert merger.counters()["duplicates"] == 4
    assert int(merger.high_water[2]) == 7
    # A later delta with a lower id from the same sender is stale: skipped, counted.
    assert merger.merge(_delta(2, 6, 900, [(1, 0, 1, 1), (2, 0, -1, 1)])) == 0
    assert merger.counters()["duplicates"] == 6


def test_invalid_legs_are_rejected_and_counted() -> None:
    bad = [
        _delta(0, 1, 10, [(N_V, 0, 1, 1)]),  # venue out of range
        _delta(0, 2, 20, [(0, N_A, 1, 1)]),  # asset out of range
        _delta(0, 3, 30, [(0, 0, 0, 1)]),  # side 0
        _delta(0, 4, 40, [(0, 0, 2, 1)]),  # side 2
        _delta(0, 5, 50, [(0, 0, 1, 0)]),  # size 0
        _delta(0, 6, 60, [(0, 0, -1, -3)]),  # negative size
        _delta(N_S, 7, 70, [(0, 0, 1, 1)]),  # sender out of range
    ]
    merger = DeltaMerger(N_V, N_A, N_S)
    assert merger.merge(np.concatenate(bad)) == 0
    assert merger.counters()["rejected"] == len(bad)
    assert not merger.plan.any()
    assert merger.counters()["applied"] == 0


def test_one_bad_leg_rejects_its_whole_delta() -> None:
    # A neutral two-leg delta whose second leg is malformed must not half-apply.
    delta = _delta(0, 1, 10, [(0, 0, 1, 5), (1, 0, 0, 5)])
    merger = DeltaMerger(N_V, N_A, N_S)
    assert merger.merge(delta) == 0
    assert merger.counters()["rejected"] == 2
    assert not merger.plan.any()


def test_neutral_deltas_keep_the_net_delta_at_zero() -> None:
    rng = np.random.default_rng(4)
    merger = DeltaMerger(N_V, N_A, N_S)
    for start in range(1, 200, 20):
        batch = np.concatenate([_neutral_delta(rng, 3, d) for d in range(start, start + 20)])
        merger.merge(batch[rng.permutation(len(batch))])
        assert not merger.net_delta().any()
        assert merger.counters()["max_abs_net_lots"] == 0
    assert merger.plan.any()
    one_sided = _delta(1, 1, 5, [(0, 2, 1, 7)])
    merger.merge(one_sided)
    assert merger.net_delta().tolist() == [0, 0, 7]
    assert merger.counters()["max_abs_net_lots"] == 7
    assert int(merger.stats[STAT_MAX_ABS_NET]) == 7
    assert {STAT_APPLIED, STAT_DUPLICATE, STAT_REJECTED, STAT_MAX_ABS_NET} == set(range(4))


def test_legs_from_targets_moves_the_plan_to_the_target() -> None:
    rng = np.random.default_rng(6)
    merger = DeltaMerger(N_V, N_A, N_S)
    px = np.arange(N_V * N_A, dtype=np.int64).reshape(N_V, N_A) * 100
    out = np.zeros(N_V * N_A, PLAN_LEG_DTYPE)
    for delta_id in range(1, 6):
        target = rng.integers(-10, 10, (N_V, N_A))
        keep = rng.random((N_V, N_A)) < 0.3  # some positions do not change
        target[keep] = merger.plan[keep]
        changed = int(np.count_nonzero(target != merger.plan))
        n = int(legs_from_targets(merger.plan, target, 77 * delta_id, 1, delta_id, px, out))
        assert n == changed
        legs = out[:n]
        assert np.all(legs["size_lots"] > 0) and set(legs["side"].tolist()) <= {1, -1}
        assert np.all(legs["delta_id"] == delta_id) and np.all(legs["sender"] == 1)
        assert np.all(legs["ts_ns"] == 77 * delta_id)
        assert np.array_equal(legs["limit_px"], px[legs["venue"], legs["asset"]])
        diff = target - merger.plan
        assert np.array_equal(legs["side"] * legs["size_lots"], diff[legs["venue"], legs["asset"]])
        assert merger.merge(legs.copy()) == n
        np.testing.assert_array_equal(merger.plan, target)
    assert legs_from_targets(merger.plan, merger.plan.copy(), 1, 1, 99, px, out) == 0

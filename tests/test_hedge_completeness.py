"""Hedge completeness: the broker's fill policy, write-offs and compensating PlanDeltas in the
coordinator, the realized net delta, and plan replicas that detect and repair divergence."""

from __future__ import annotations

import numpy as np
import pytest
from test_coordinator_loop import _loop, _tick

from arbsphere.adapters.plan_replica import PlanReplica
from arbsphere.contracts import PLAN_LEG_DTYPE, default_registry
from arbsphere.coordinator.core import CAUSE_REPORT, KIND_TRADE, KIND_WRITE_OFF
from arbsphere.coordinator.traces import RealizedNet
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.emulators.fill_policy import FillPolicy
from arbsphere.plan.digest import plan_hash

REG = default_registry()
PLAN = REG.schema("PlanDelta", 2)
REPORT = REG.schema("ExecutionReport")


def test_fill_policy_is_deterministic_per_order_and_draws_the_configured_mix() -> None:
    policy = FillPolicy(mode="mixed", reject=0.05, partial=0.10, late=0.05, late_ms=20.0, seed=3)
    outcomes = [policy.decide(oid, 10) for oid in range(20_000)]
    assert outcomes == [policy.decide(oid, 10) for oid in range(20_000)]  # same order, same fate
    status = np.array([o[0] for o in outcomes])
    filled = np.array([o[1] for o in outcomes])
    held = np.array([o[2] for o in outcomes])
    assert abs((status == dm.ACK_STATUS_REJECT).mean() - 0.05) < 0.01
    assert abs((status == dm.ACK_STATUS_PARTIAL).mean() - 0.10) < 0.01
    assert abs((held > 0).mean() - 0.05) < 0.01 and set(held) == {0, 20_000_000}
    assert (filled[status == dm.ACK_STATUS_REJECT] == 0).all()
    partial = filled[status == dm.ACK_STATUS_PARTIAL]
    assert ((partial >= 2) & (partial < 10)).all()  # floor(10 x [0.2, 0.8))
    assert (filled[status == dm.ACK_STATUS_FILL] == 10).all()
    other = FillPolicy(mode="mixed", reject=0.05, partial=0.10, seed=4)
    assert [other.decide(oid, 10) for oid in range(200)] != outcomes[:200]  # the seed matters
    assert FillPolicy().decide(7, 5) == (dm.ACK_STATUS_FILL, 5, 0)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"mode": "full", "reject": 0.1}, "need fill_mode = 'mixed'"),
        ({"mode": "mixed", "reject": 0.7, "partial": 0.5}, "> 1"),
        ({"mode": "mixed", "late": 1.5}, "fills.late"),
        ({"mode": "sometimes"}, "fill_mode 'sometimes'"),
    ],
)
def test_fill_policy_refuses_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FillPolicy(**kwargs)  # type: ignore[arg-type]


def _report(order_id: int, delta_id: int, venue: int, status: int, filled: int, nonce: int
            ) -> bytes:  # fmt: skip
    return REG.packer(REPORT).pack(
        *REG.envelope_values(REPORT, 0, 2, nonce, 5_000_000 + nonce),
        order_id, delta_id, venue, 0, status, filled, 0, 0, 0, 0, 5_000_000 + nonce,
    )  # fmt: skip


def _deltas(sent: list[bytes]) -> list[tuple[int, int, np.ndarray, int]]:
    """(delta_id, kind, legs, plan_hash) of every PlanDelta sent."""
    out = []
    for raw in sent:
        msg = REG.decode(raw)
        if msg.schema.name == "PlanDelta":
            h = msg.header[0]
            out.append((int(h["delta_id"]), int(h["kind"]), msg.items, int(h["plan_hash"])))
    return out


def test_a_partial_fill_is_written_off_and_compensated_to_an_exactly_neutral_plan() -> None:
    loop, pull, push, tr = _loop(max_batch=64)
    core = loop.core
    # Venue 0 cheap, venue 1 dear: the plan buys at 0 and sells at 1.
    for venue, mid in ((0, 100.00), (1, 100.20)):
        problem, signals = tr[venue].translate(_tick(venue, 1, mid), 1000, 0)
        pull.queue.append([problem, signals])
    loop.drain(pull)
    (first,) = _deltas(push.sent)
    delta_id, kind, legs, h = first
    assert kind == KIND_TRADE and len(legs) == 2 and h == plan_hash(core.merger.plan)
    buy = next(i for i in range(2) if legs[i]["side"] == 1)
    size = int(legs[buy]["size_lots"])
    assert size >= 2
    # The buy fills only partly (IOC: the rest is gone), the sell fills whole.
    sell = 1 - buy
    pull.queue.append([
        _report((delta_id << 8) | buy, delta_id, int(legs[buy]["venue"]), dm.ACK_STATUS_PARTIAL,
                size - 1, 1),
        _report((delta_id << 8) | sell, delta_id, int(legs[sell]["venue"]), dm.ACK_STATUS_FILL,
                -size, 2),
    ])  # fmt: skip
    loop.drain(pull)
    later = _deltas(push.sent)[1:]
    kinds = [k for _, k, _, _ in later]
    assert kinds[0] == KIND_WRITE_OFF
    w_legs = later[0][2]
    assert len(w_legs) == 1 and int(w_legs[0]["side"]) * int(w_legs[0]["size_lots"]) == -1
    assert core.counts["shortfalls"] == 1 and core.counts["write_offs"] == 1
    # the compensating TRADE delta brings the plan back to exactly neutral
    assert kinds[1:] == [KIND_TRADE] and core.counts["compensating_deltas"] == 1
    assert int(core.merger.plan.sum()) == 0
    assert later[-1][3] == plan_hash(core.merger.plan)
    msg = REG.decode(push.sent[-1]).header[0]
    assert int(msg["cause_venue"]) == CAUSE_REPORT
    assert core.realized.max_abs == 1  # executed +size-1 vs -size until the compensation fills


def test_a_reject_of_both_legs_needs_a_write_off_each_and_no_trade_if_the_target_is_flat() -> None:
    loop, pull, push, tr = _loop(max_batch=64)
    core = loop.core
    for venue, mid in ((0, 100.00), (1, 100.20)):
        problem, signals = tr[venue].translate(_tick(venue, 1, mid), 1000, 0)
        pull.queue.append([problem, signals])
    loop.drain(pull)
    ((delta_id, _, legs, _),) = _deltas(push.sent)
    # prices converge: the next tick makes the target flat
    problem, signals = tr[1].translate(_tick(1, 2, 100.00), 2000, 0)
    pull.queue.append([problem, signals])
    loop.drain(pull)
    n_before = len(push.sent)
    pull.queue.append([
        _report((delta_id << 8) | i, delta_id, int(legs[i]["venue"]), dm.ACK_STATUS_REJECT, 0,
                10 + i)
        for i in range(2)
    ])  # fmt: skip
    loop.drain(pull)
    assert core.counts["write_offs"] == 2
    assert [k for _, k, _, _ in _deltas(push.sent[n_before:])][:2] == [KIND_WRITE_OFF] * 2
    assert int(core.merger.plan.sum()) == 0
    assert core.realized.max_abs == 0  # nothing executed, nothing imbalanced
    # the rejected legs are closed; the unwind of the second tick and the compensation are out
    assert core.open_legs and all(oid >> 8 != delta_id for oid in core.open_legs)
    assert core.counts["compensating_deltas"] == 1


def test_realized_net_integral_and_episodes() -> None:
    r = RealizedNet(1)
    ex = np.zeros((2, 1), np.int64)
    r.observe(ex, 0)
    ex[0, 0] = 3
    r.observe(ex, 1_000_000)  # 3 lots from 1 ms ...
    ex[1, 0] = -3
    r.observe(ex, 4_000_000)  # ... to 4 ms: back to zero
    s = r.summary()
    assert s["max_abs_lots"] == 3 and s["episodes"] == 1 and not s["open_at_stop"]
    assert s["integral_lot_s"] == pytest.approx(3 * 0.003)
    assert s["time_to_reneutralize_ms"]["max"] == pytest.approx(3.0)


def _delta(
    delta_id: int, cells: list[tuple[int, int]], truth: np.ndarray
) -> tuple[np.ndarray, int]:
    legs = np.zeros(len(cells), PLAN_LEG_DTYPE)
    for i, (venue, lots) in enumerate(cells):
        legs[i] = (1000 + delta_id, delta_id, 1, venue, 0, 1 if lots > 0 else -1, 0,
                   abs(lots), 0)  # fmt: skip
        truth[venue, 0] += lots
    return legs, plan_hash(truth)


def test_replica_detects_a_corruption_and_is_repaired_from_a_snapshot() -> None:
    truth = np.zeros((2, 1), np.int64)
    replica = PlanReplica(2, 1, fault_every=3)
    diverged_at = []
    for d in range(1, 7):
        legs, h = _delta(d, [(0, d), (1, -d)], truth)
        if replica.apply(d, KIND_TRADE, legs, h):
            diverged_at.append(d)
            # the snapshot comes after every delta the coordinator sent before it: here d
            replica.restore(d, truth.ravel().copy(), plan_hash(truth))
    assert diverged_at == [3, 6]  # each injected fault caught at the very delta
    c = replica.counts
    assert c["injected_faults"] == 2 and c["divergences"] == 2 and c["repaired"] == 2
    np.testing.assert_array_equal(replica.plan, truth)


def test_replica_without_faults_never_diverges_and_applies_write_offs() -> None:
    truth = np.zeros((2, 1), np.int64)
    replica = PlanReplica(2, 1)
    for d, kind in ((1, KIND_TRADE), (2, KIND_WRITE_OFF), (3, KIND_TRADE)):
        cells = [(0, 4), (1, -4)] if kind == KIND_TRADE else [(0, -1)]
        legs, h = _delta(d, cells, truth)
        assert not replica.apply(d, kind, legs, h)
    assert replica.counts["write_offs"] == 1 and replica.counts["divergences"] == 0
    np.testing.assert_array_equal(replica.plan, truth)


def test_replica_warm_up_compiles_for_received_legs_and_leaves_the_replica_alone() -> None:
    """The broker's legs are a read-only view of the received bytes: Numba compiles them apart
    from writable arrays. warm_up must cover exactly that type (checked in a fresh interpreter,
    where nothing else compiled it first), on a scratch plan."""
    import subprocess
    import sys

    script = (
        "import numba, numpy as np\n"
        "from arbsphere.adapters.plan_replica import PlanReplica\n"
        "from arbsphere.contracts import PLAN_LEG_DTYPE\n"
        "from arbsphere.plan.merge import merge_legs\n"
        "legs = np.frombuffer(np.zeros(2, PLAN_LEG_DTYPE).tobytes(), PLAN_LEG_DTYPE)\n"
        "want = numba.typeof(legs)\n"
        "before = any(sig[0] == want for sig in merge_legs.signatures)\n"
        "r = PlanReplica(2, 1)\n"
        "r.warm_up()\n"
        "after = any(sig[0] == want for sig in merge_legs.signatures)\n"
        "untouched = r.counts['deltas'] == 0 and not r.plan.any()\n"
        "untouched = untouched and not r.merger.high_water.any()\n"
        "print(legs.flags.writeable, before, after, untouched)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["False", "False", "True", "True"], out

"""The broker adapter's wake-up: a PlanDelta's orders go out before the device's acks."""

from __future__ import annotations

from arbsphere.adapters.broker_adapter import _BrokerLoop
from arbsphere.adapters.links import Received
from arbsphere.adapters.plan_replica import PlanReplica
from arbsphere.contracts import default_registry
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.core import Coordinator
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.testing import FakeBrokerLink, FakeSocket, StepClock


def _delta(core: Coordinator, lots: int) -> bytes:
    core.bid_px[:] = 99 * dm.PRICE_SCALE
    core.ask_px[:] = 101 * dm.PRICE_SCALE
    core.target[0, 0], core.target[1, 0] = lots, -lots
    delta = core.emit_delta(ts_ns=5_000, cause_venue=0, cause_seq=1)
    assert delta is not None
    return delta


def _ack(order_id: int) -> Received:
    rec = dm.new_record(dm.MSG_ACK, 200)
    rec["order_id"] = order_id
    rec["status"] = dm.ACK_STATUS_FILL
    rec["filled_lots"] = 1
    return Received(payload=dm.encode(rec), rx_ns=2_000)


Batches = list[tuple[int, int]]


def _loop(
    fault_every: int = 0,
) -> tuple[_BrokerLoop, FakeBrokerLink, FakeSocket, FakeSocket, Coordinator, Batches]:
    """The loop on fake sockets and link; ``batches``: each ORDER batch the link sent, as
    (orders in it, acks handled before it)."""
    link = FakeBrokerLink(StepClock(1_000_000))
    plans = FakeSocket()
    out = FakeSocket()
    loop = _BrokerLoop(
        default_registry(),
        200,
        PlanReplica(2, 1, fault_every=fault_every),
        link,
        plans,
        plans,
        out,
        StepClock(1_001_000, 1_000),
    )
    batches: Batches = []
    link.on_send = lambda orders: batches.append((len(orders), loop.acks_trace.n))
    core = Coordinator(2, 1, AdmmSettings(), 500, 1)
    return loop, link, plans, out, core, batches


def test_a_delta_queued_during_acks_goes_out_before_the_next_datagram() -> None:
    # the replica is made to diverge on the second trade: that delta also sends a ReplicaStatus
    loop, link, plans, out, core, batches = _loop(fault_every=2)
    plans.deliver(_delta(core, 2))
    loop.plans()
    assert batches == [(2, 0)]  # two legs, no ack yet
    # the device answers both orders in two datagrams; a second delta arrives meanwhile,
    # visible at the check before the second datagram
    link.incoming = [_ack((1 << 8) | 0), _ack((1 << 8) | 1)]
    plans.deliver(_delta(core, 3))
    loop.acks(sync=None)
    # the second delta's orders left after the first datagram and before the second
    assert batches == [(2, 0), (2, 1)]
    assert loop.counts["deltas"] == 2 and loop.counts["acks"] == 2
    # what went to the coordinator: the first ack's report, the status, the second's report —
    # in nonce order (a sealer refuses a nonce that does not increase)
    reg = default_registry()
    sent = [reg.decode_values(m) for f in out.sent for m in reg.split_messages(f)]
    assert [schema.name for schema, _ in sent] == ["ExecutionReport", "ReplicaStatus",
                                                   "ExecutionReport"]  # fmt: skip
    nonces = [values[5] for _, values in sent]
    assert nonces == sorted(nonces) and len(set(nonces)) == 3


def test_no_delta_queued_means_acks_in_one_pass() -> None:
    loop, link, plans, _out, core, batches = _loop()
    plans.deliver(_delta(core, 1))
    loop.plans()
    link.incoming = [_ack((1 << 8) | 0), _ack((1 << 8) | 1)]
    loop.acks(sync=None)
    assert batches == [(2, 0)]
    assert loop.counts["acks"] == 2 and loop.counts["unknown_acks"] == 0


def test_other_messages_on_the_plan_stream_are_counted_not_dropped_silently() -> None:
    loop, _link, plans, _out, _core, batches = _loop()
    reg = default_registry()
    status = reg.schema("ReplicaStatus")
    raw = reg.packer(status).pack(*reg.envelope_values(status, 0, 1, 1, 5), 1, 1, 0, 0, 0)
    plans.deliver(raw)
    loop.plans()
    assert loop.counts["other_messages"] == 1
    assert "ReplicaStatus" in loop.last_error
    assert batches == []

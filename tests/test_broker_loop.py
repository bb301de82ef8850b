"""The broker adapter's wake-up: a PlanDelta's orders go out before the device's acks."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import zmq

from arbsphere.adapters.broker_adapter import _BrokerLoop
from arbsphere.adapters.links import Received
from arbsphere.adapters.plan_replica import PlanReplica
from arbsphere.contracts import default_registry
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.core import Coordinator
from arbsphere.firmware_interfaces import messages as dm


class FakeLink:
    """Hands out queued datagrams; records every ORDER batch with the acks handled by then."""

    name = "fake-broker-link"
    timestamp_source = "user"

    def __init__(self, loop_ref: list[_BrokerLoop]) -> None:
        self.datagrams: list[Received] = []
        self.sent: list[tuple[int, int]] = []  # (orders in the batch, acks handled before it)
        self.loop_ref = loop_ref

    def fileno(self) -> int:
        return -1  # never polled: the test calls the loop's handlers itself

    def receive(self, timeout_ms: int) -> list[Received]:
        out, self.datagrams = self.datagrams, []
        return out

    def send(self, message: bytes) -> int:
        return self.send_many([message])

    def send_many(self, messages: Sequence[bytes]) -> int:
        self.sent.append((len(messages), self.loop_ref[0].acks_trace.n))
        return 1_000 + len(self.sent)

    def counters(self) -> dict[str, int]:
        return {"batches": len(self.sent)}

    def close(self) -> None:
        pass


class FakePlans:
    """The plan stream: the raw socket's readiness and the guarded socket's receive."""

    def __init__(self) -> None:
        self.queue: deque[bytes] = deque()
        self.arrive_after_polls = 0  # a delta becomes visible after this many readiness checks

    def getsockopt(self, option: int) -> int:
        assert option == zmq.EVENTS
        if self.arrive_after_polls:
            self.arrive_after_polls -= 1
            return 0
        return int(zmq.POLLIN) if self.queue else 0

    def recv(self, flags: int = 0, copy: bool = True) -> bytes:
        if not self.queue:
            raise zmq.Again()
        return self.queue.popleft()


class FakeOut:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, data: bytes, flags: int = 0, copy: bool = True) -> None:
        self.frames.append(data)


class StepClock:
    def __init__(self) -> None:
        self.t = 1_000_000

    def now_ns(self) -> int:
        self.t += 1_000
        return self.t


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


def _loop(fault_every: int = 0) -> tuple[_BrokerLoop, FakeLink, FakePlans, FakeOut, Coordinator]:
    ref: list[_BrokerLoop] = []
    link = FakeLink(ref)
    plans = FakePlans()
    out = FakeOut()
    loop = _BrokerLoop(
        default_registry(),
        200,
        PlanReplica(2, 1, fault_every=fault_every),
        link,
        plans,
        plans,
        out,
        StepClock(),
    )
    ref.append(loop)
    core = Coordinator(2, 1, AdmmSettings(), 500, 1)
    return loop, link, plans, out, core


def test_a_delta_queued_during_acks_goes_out_before_the_next_datagram() -> None:
    # the replica is made to diverge on the second trade: that delta also sends a ReplicaStatus
    loop, link, plans, out, core = _loop(fault_every=2)
    plans.queue.append(_delta(core, 2))
    loop.plans()
    assert link.sent == [(2, 0)]  # two legs, no ack yet
    # the device answers both orders in two datagrams; a second delta arrives meanwhile,
    # visible at the check before the second datagram
    link.datagrams = [_ack((1 << 8) | 0), _ack((1 << 8) | 1)]
    plans.queue.append(_delta(core, 3))
    loop.acks(sync=None)
    # the second delta's orders left after the first datagram and before the second
    assert link.sent == [(2, 0), (2, 1)]
    assert loop.counts["deltas"] == 2 and loop.counts["acks"] == 2
    # what went to the coordinator: the first ack's report, the status, the second's report —
    # in nonce order (a sealer refuses a nonce that does not increase)
    reg = default_registry()
    sent = [reg.decode_values(m) for f in out.frames for m in reg.split_messages(f)]
    assert [schema.name for schema, _ in sent] == ["ExecutionReport", "ReplicaStatus",
                                                   "ExecutionReport"]  # fmt: skip
    nonces = [values[5] for _, values in sent]
    assert nonces == sorted(nonces) and len(set(nonces)) == 3


def test_no_delta_queued_means_acks_in_one_pass() -> None:
    loop, link, plans, _out, core = _loop()
    plans.queue.append(_delta(core, 1))
    loop.plans()
    link.datagrams = [_ack((1 << 8) | 0), _ack((1 << 8) | 1)]
    loop.acks(sync=None)
    assert link.sent == [(2, 0)]
    assert loop.counts["acks"] == 2 and loop.counts["unknown_acks"] == 0


def test_other_messages_on_the_plan_stream_are_counted_not_dropped_silently() -> None:
    loop, link, plans, _out, _core = _loop()
    reg = default_registry()
    status = reg.schema("ReplicaStatus")
    raw = reg.packer(status).pack(*reg.envelope_values(status, 0, 1, 1, 5), 1, 1, 0, 0, 0)
    plans.queue.append(raw)
    loop.plans()
    assert loop.counts["other_messages"] == 1
    assert "ReplicaStatus" in loop.last_error
    assert link.sent == []

"""Kernel transmit stamps on loopback (software stamps do come back on ``lo``): a SYNC's
FOLLOW_UP carries the kernel's stamp of the SYNC send, an ORDER's send time is its datagram's
stamp; and, with a link whose stamps come late or never, the fallbacks and counters."""

from __future__ import annotations

import select
import socket
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from arbsphere.adapters import broker_adapter
from arbsphere.adapters.broker_adapter import _BrokerLoop
from arbsphere.adapters.links import (
    TIMESTAMP_KERNEL,
    TIMESTAMP_USER,
    Received,
    TxStampedLink,
    timestamps_of,
)
from arbsphere.adapters.plan_replica import PlanReplica
from arbsphere.adapters.sync_master import SyncMaster
from arbsphere.adapters.tx_timestamps import TxStamps
from arbsphere.adapters.udp_link import (
    UdpBrokerLink,
    UdpBrokerLinkConfig,
    UdpFeedLink,
    UdpLinkConfig,
)
from arbsphere.clock import RealtimeClock
from arbsphere.contracts import default_registry
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.core import Coordinator
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.udp_datagram import unpack_datagram
from arbsphere.testing import FakeBrokerLink, FakeSocket, StepClock
from arbsphere.testing.links import heartbeat


class RecordingClock:
    """The real clock, keeping every reading."""

    def __init__(self) -> None:
        self.reads: list[int] = []
        self._real = RealtimeClock()

    def now_ns(self) -> int:
        t = self._real.now_ns()
        self.reads.append(t)
        return t


def _device() -> socket.socket:
    dev = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dev.bind(("127.0.0.1", 0))
    dev.settimeout(2.0)
    return dev


def _messages(dev: socket.socket, n_datagrams: int) -> list[tuple[int, Any]]:
    out = []
    for _ in range(n_datagrams):
        for m in unpack_datagram(dev.recv(65536)).messages:
            out.append(dm.decode(bytes(m)))
    return out


def test_follow_up_carries_the_kernel_stamp_of_its_sync() -> None:
    clock = RecordingClock()
    link = UdpFeedLink(UdpLinkConfig(name="venue_a"), clock)
    dev = _device()
    try:
        link.peer = dev.getsockname()
        assert link.tx_timestamp_source == TIMESTAMP_KERNEL
        master = SyncMaster(link, clock, interval_ns=1_000_000, device_id=7)
        assert master.tx_source == TIMESTAMP_KERNEL
        before = clock.now_ns()
        assert master.poll(before)
        after = clock.now_ns()
        (t_sync, sync), (t_follow, follow) = _messages(dev, 2)
        assert (t_sync, t_follow) == (dm.MSG_SYNC, dm.MSG_FOLLOW_UP)
        assert int(follow["sync_seq"][0]) == int(sync["sync_seq"][0]) == 1
        t1 = int(follow["t1_ns"][0])
        # the user-space stamp of the SYNC send: the first reading after ``before`` (the
        # FOLLOW_UP's send reads the clock once more)
        user, user_follow = [t for t in clock.reads if before < t < after]
        assert before < user <= t1 <= user_follow < after
        assert t1 not in clock.reads  # the kernel's, not a reading of the rig clock
        assert master.pending == {1: t1}
        assert master.counts["sync_tx_kernel"] == 1 and master.counts["sync_tx_fallbacks"] == 0
        found = timestamps_of(link, master.tx_source)
        assert (found["rx"], found["tx"], found["sync_t1"]) == (
            TIMESTAMP_KERNEL, TIMESTAMP_KERNEL, TIMESTAMP_KERNEL)  # fmt: skip
        # FOLLOW_UP and the DELAY_RESP ask for no stamp: nothing waits on the error queue
        assert link.receive(timeout_ms=0) == [] and link.counters()["tx_stamps"] == 1
    finally:
        link.close()
        dev.close()


def test_a_kernel_transmit_stamp_lies_between_the_readings_around_the_send() -> None:
    clock = RealtimeClock()
    link = UdpFeedLink(UdpLinkConfig(), clock)
    dev = _device()
    try:
        link.peer = dev.getsockname()
        for k in range(20):
            sent = link.send_many_stamped((heartbeat(k),))
            after = clock.now_ns()
            assert sent is not None
            user_ns, tx_id = sent
            assert tx_id == k  # the kernel's OPT_ID: stamped sends only, from 0
            link.send_many((heartbeat(100 + k),))  # does not count
            stamp = link.tx_stamp(tx_id, user_ns, wait_ms=100)
            assert stamp is not None and user_ns <= stamp <= after
        assert link.counters()["tx_stamps"] == 20
    finally:
        link.close()
        dev.close()


def test_unclaimed_stamps_do_not_keep_the_link_awake_and_are_dropped_counted() -> None:
    link = UdpFeedLink(UdpLinkConfig(), RealtimeClock())
    dev = _device()
    try:
        link.peer = dev.getsockname()
        assert link._tx is not None
        link._tx.keep = 2
        poll = select.poll()
        poll.register(link.fileno(), select.POLLIN)
        for _ in range(5):
            link.send_many_stamped((heartbeat(1),))
        assert poll.poll(0)  # POLLERR: stamps wait on the error queue
        assert link.receive(timeout_ms=0) == []  # read them: the socket is quiet again
        assert poll.poll(0) == []
        counts = link.counters()
        assert counts["tx_stamps"] == 5 and counts["tx_stamps_unclaimed"] == 3
        assert link.tx_stamp(4, 0) is not None and link.tx_stamp(0, 0) is None
        # a stamp before the send it is matched to cannot be its stamp
        link.send_many_stamped((heartbeat(2),))
        assert link.tx_stamp(5, sent_ns=RealtimeClock().now_ns() + 10**9, wait_ms=100) is None
        assert link.counters()["tx_stamps_implausible"] == 1
    finally:
        link.close()
        dev.close()


class StampedFakeLink(FakeBrokerLink):
    """A broker link whose transmit stamps the test hands out: ``stamps[id]`` once set."""

    tx_timestamp_source = "hardware"

    def __init__(self, clock: Any) -> None:
        super().__init__(clock)
        self.stamps: dict[int, int] = {}
        self.next_id = 0

    def send_many_stamped(self, messages: Sequence[bytes]) -> tuple[int, int] | None:
        user = self.send_many(messages)
        self.next_id += 1
        return user, self.next_id - 1

    def tx_stamp(self, tx_id: int, sent_ns: int, wait_ms: int = 0) -> int | None:
        return self.stamps.pop(tx_id, None)

    def timestamping_report(self) -> dict[str, Any]:
        return {"rx": self.timestamp_source, "tx": self.tx_timestamp_source,
                "rx_uncertainty_ns": 0, "tx_uncertainty_ns": 250}  # fmt: skip


def test_a_sync_whose_stamp_never_comes_carries_the_user_space_stamp() -> None:
    clock = StepClock(1_000_000, 10)
    link = StampedFakeLink(clock)
    assert isinstance(link, TxStampedLink)
    master = SyncMaster(link, clock, interval_ns=1_000, device_id=7, tx_wait_ms=0)
    assert master.tx_source == "hardware"
    master.poll(clock.now)
    follow = dm.decode(link.sent[1][0])[1]
    assert int(follow["t1_ns"][0]) == 1_000_010  # the user-space stamp the link returned
    assert master.counts["sync_tx_fallbacks"] == 1 and master.counts["sync_tx_kernel"] == 0
    link.stamps[1] = 1_000_777  # the next SYNC's stamp is there at once
    master.poll(clock.now + 1_000)
    assert int(dm.decode(link.sent[3][0])[1]["t1_ns"][0]) == 1_000_777
    assert master.counts["sync_tx_kernel"] == 1
    # a link without kernel transmit stamps: user-space, nothing asked
    plain = SyncMaster(FakeBrokerLink(clock), clock, interval_ns=1_000, device_id=7)
    assert plain.tx_source == TIMESTAMP_USER


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
    return Received(payload=dm.encode(rec), rx_ns=2_000_000)


def _loop(link: Any, clock: Any) -> tuple[_BrokerLoop, FakeSocket, FakeSocket, Coordinator]:
    plans, out = FakeSocket(), FakeSocket()
    loop = _BrokerLoop(default_registry(), 200, PlanReplica(2, 1), link, plans, plans, out,
                       clock)  # fmt: skip
    return loop, plans, out, Coordinator(2, 1, AdmmSettings(), 500, 1)


def _reports(out: FakeSocket) -> list[tuple[Any, ...]]:
    reg = default_registry()
    return [reg.decode_values(m)[1] for f in out.sent for m in reg.split_messages(f)]


def test_an_orders_send_time_is_its_datagrams_kernel_stamp_on_loopback() -> None:
    clock = RecordingClock()
    dev = _device()
    host, port = dev.getsockname()
    link = UdpBrokerLink(UdpBrokerLinkConfig(device_host=host, device_port=port), clock)
    try:
        loop, plans, _out, core = _loop(link, clock)
        plans.deliver(_delta(core, 2))
        before = clock.now_ns()
        loop.plans()
        after = clock.now_ns()
        rows = loop.orders.view()
        assert len(rows) == 2 and rows["tx_kernel"].tolist() == [1, 1]
        tx = int(rows["tx_ns"][0])
        assert int(rows["tx_ns"][1]) == tx and before < tx < after and tx not in clock.reads
        assert loop.counts["order_tx_kernel"] == 1 and loop.pending_tx == {}
        assert len(_messages(dev, 1)) == 2  # both legs in one datagram
    finally:
        link.close()
        dev.close()


def test_late_order_stamps_patch_the_trace_and_unanswered_reports() -> None:
    clock = StepClock(1_000_000, 10)
    link = StampedFakeLink(clock)
    loop, plans, out, core = _loop(link, clock)
    plans.deliver(_delta(core, 2))
    loop.plans()
    user = int(loop.orders.view()["tx_ns"][0])
    assert loop.orders.view()["tx_kernel"].tolist() == [0, 0] and list(loop.pending_tx) == [0]
    # the ack of leg 0 comes before the stamp: its report leaves with the user-space stamp
    link.incoming = [_ack(1 << 8)]
    loop.acks(sync=None)
    link.stamps[0] = user + 333
    loop.late_tx_stamps()
    rows = loop.orders.view()
    assert rows["tx_ns"].tolist() == [user + 333] * 2 and rows["tx_kernel"].tolist() == [1, 1]
    assert loop.counts["order_tx_kernel"] == 1 and loop.counts["order_tx_late"] == 1
    link.incoming = [_ack((1 << 8) | 1)]
    loop.acks(sync=None)
    reports = _reports(out)
    rig_tx = [r[-2] for r in reports]  # ExecutionReport rig_tx_ns
    assert rig_tx == [user, user + 333]
    assert loop.pending_tx == {}


def test_stamps_that_never_come_are_bounded_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_adapter, "MAX_PENDING_TX", 2)
    clock = StepClock(1_000_000, 10)
    link = StampedFakeLink(clock)
    loop, plans, _out, core = _loop(link, clock)
    for lots in (1, 2, 3):
        plans.deliver(_delta(core, lots))
        loop.plans()
    assert list(loop.pending_tx) == [1, 2] and loop.counts["order_tx_missing"] == 1
    assert np.all(loop.orders.view()["tx_kernel"] == 0)
    found = timestamps_of(link, None)
    assert (found["tx"], found["tx_uncertainty_ns"], found["sync_t1"]) == ("hardware", 250, None)


def test_a_link_without_kernel_stamps_sends_as_before() -> None:
    dev = _device()
    host, port = dev.getsockname()
    cfg = UdpBrokerLinkConfig(device_host=host, device_port=port, kernel_timestamps=False)
    link = UdpBrokerLink(cfg, RealtimeClock())
    try:
        assert (link.timestamp_source, link.tx_timestamp_source) == (TIMESTAMP_USER, TIMESTAMP_USER)
        sent = link.send_many_stamped((heartbeat(3),))
        assert sent is not None and sent[1] == -1 and link.tx_stamp(sent[1], sent[0]) is None
        loop, plans, _out, core = _loop(link, RealtimeClock())
        assert loop.stamped is None
        plans.deliver(_delta(core, 1))
        loop.plans()
        assert loop.orders.view()["tx_kernel"].tolist() == [0, 0]
    finally:
        link.close()
        dev.close()


def test_tx_stamps_on_a_socket_without_reporting_flags_read_nothing() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        stamps = TxStamps(sock)
        assert stamps.drain() == 0 and stamps.take(0) is None and stamps.wait(0, 1) is None
    finally:
        sock.close()

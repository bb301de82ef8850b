"""Device side of the clock-sync exchange: the responder on fixed vectors, its rejects, the
transport-agnostic inbound path with impairment, the serviced sleep and the broker's use."""

from __future__ import annotations

import signal
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest

from arbsphere.clock import Clock, DeviceClock, RealtimeClock
from arbsphere.errors import ConfigError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.device_main import ConfigReader, Waker
from arbsphere.firmware_interfaces.emulators.broker_udp import BrokerDevice
from arbsphere.firmware_interfaces.emulators.impairment import ImpairedTransmitter, ImpairmentSpec
from arbsphere.firmware_interfaces.emulators.schedule import (
    ServicedSleep,
    Transmitter,
    stamp_messages,
)
from arbsphere.firmware_interfaces.emulators.sync_responder import (
    RigInbound,
    Unit,
    read_impairment,
)
from arbsphere.firmware_interfaces.sync_responder import REJECT_REASONS, SyncResponder
from arbsphere.firmware_interfaces.udp_datagram import pack_datagram, session_id, unpack_datagram
from arbsphere.runtime import StopFlag
from arbsphere.testing import StepClock

EPOCH = 1_700_000_000_000_000_000
DEV = 0x0A0B0C0D
RX = EPOCH + 2_000_000_000  # rig time the SYNC arrived: 2 s after the device clock's epoch
#: DELAY_REQ {sync_seq 7, t2, t3} of device 0x0A0B0C0D: offset +0.5 s, drift +100 ppm, SYNC at
#: RX, stamped at RX + 35 us. t2 = RX + 500 ms + 200 us; t3 = RX + 35 us + 500 ms + 200.0035 us
#: (truncated to whole ns).
T2 = 1_700_000_002_500_200_000
T3 = 1_700_000_002_500_235_003
DELAY_REQ_HEX = "120120000d0c0b0a0700000000000000400630cbfe9c9717fb8e30cbfe9c9717"


def _clock(base: StepClock | None = None) -> DeviceClock:
    return DeviceClock(base or StepClock(), offset_ns=500_000_000, drift_ppm=100.0,
                       epoch_ns=EPOCH)  # fmt: skip


def _msg(mtype: int, seq: int, value: int = 0, device: int = DEV) -> bytes:
    st = dm.packer(mtype)
    return st.pack(mtype, dm.DEVICE_MESSAGE_VERSION, st.size, device, seq, value)


def sync(seq: int, origin: int = 0, device: int = DEV) -> bytes:
    return _msg(dm.MSG_SYNC, seq, origin, device)


def follow_up(seq: int, t1: int) -> bytes:
    return _msg(dm.MSG_FOLLOW_UP, seq, t1)


def delay_resp(seq: int, t4: int) -> bytes:
    return _msg(dm.MSG_DELAY_RESP, seq, t4)


def test_delay_req_carries_exact_t2_and_t3() -> None:
    r = SyncResponder(DEV, _clock())
    req = r.on_message(sync(7, origin=RX - 9_000), RX)
    assert req is not None and (req.sync_seq, req.t2_ns, req.t3_ns) == (7, T2, None)
    wire = req.stamp_and_encode(RX + 35_000)
    assert wire.hex() == DELAY_REQ_HEX
    assert wire == struct.pack("<BBHIQqq", dm.MSG_DELAY_REQ, 1, 32, DEV, 7, T2, T3)
    mtype, rec = dm.decode(wire)
    assert mtype == dm.MSG_DELAY_REQ
    assert (int(rec["t2_ns"][0]), int(rec["t3_ns"][0])) == (T2, T3) and req.t3_ns == T3
    with pytest.raises(RuntimeError, match="sync_seq 7"):
        req.stamp_and_encode(RX + 50_000)
    c = r.counters()
    assert (c["syncs_received"], c["delay_reqs_sent"], c["sync_last_seq"]) == (1, 1, 7)
    assert c["sync_rx_stamp_fallbacks"] == 0
    assert not any(c["sync_rejects"].values())


def test_complete_exchange_reports_the_device_offset_estimate() -> None:
    r = SyncResponder(DEV, _clock())
    t1 = RX - 10_000  # 10 us rig -> device
    req = r.on_message(sync(7), RX)
    assert req is not None
    req.stamp_and_encode(RX + 35_000)
    assert r.on_message(follow_up(7, t1), RX + 40_000) is None
    assert r.counters()["sync_offset"]["last"] is None  # t4 still missing
    t4 = RX + 47_000  # 12 us device -> rig
    assert r.on_message(delay_resp(7, t4), RX + 60_000) is None
    c = r.counters()
    assert (c["follow_ups"], c["delay_resps"], c["sync_exchanges"]) == (1, 1, 1)
    last = c["sync_offset"]["last"]
    assert last == c["sync_offset"]["min_rtt"]
    assert (last["t1_ns"], last["t2_ns"], last["t3_ns"], last["t4_ns"]) == (t1, T2, T3, t4)
    # ((t2 - t1) - (t4 - t3)) / 2 = (500_210_000 - (-500_188_003)) / 2; rtt 57 us - 35.003 us
    assert last["offset_ns"] == 500_199_001.5 and last["rtt_ns"] == 21_997
    # a later exchange with a longer round trip replaces "last" but not "min_rtt"
    req = r.on_message(sync(8), RX + 1_000_000)
    assert req is not None
    req.stamp_and_encode(RX + 1_035_000)
    r.on_message(follow_up(8, RX + 990_000 - 50_000), RX + 1_040_000)
    r.on_message(delay_resp(8, RX + 1_047_000), RX + 1_050_000)
    c = r.counters()
    assert c["sync_offset"]["last"]["sync_seq"] == 8 and c["sync_offset"]["min_rtt"] == last


def test_bad_input_is_counted_by_reason_and_never_answered() -> None:
    r = SyncResponder(DEV, _clock())
    assert r.on_message(sync(10), RX) is not None
    bad_version = bytearray(sync(11))
    bad_version[1] = 9
    unknown = bytearray(sync(12))
    unknown[0] = 99
    cases = [
        (sync(10), "duplicate_sync"),
        (sync(9), "out_of_order_sync"),
        (sync(11, device=DEV + 1), "wrong_device"),
        (bytes(unknown), "unknown_type"),
        (bytes([20, 1, 24, 0]) + bytes(20), "unknown_type"),  # reserved type 20
        (bytes(bad_version), "malformed_message"),
        (sync(11)[:20], "malformed_message"),
        (sync(11) + bytes(8), "malformed_message"),  # trailing bytes in one frame
        (dm.encode(dm.new_record(dm.MSG_TICK, DEV)), "unexpected_type"),
        (dm.encode(dm.new_record(dm.MSG_DELAY_REQ, DEV)), "unexpected_type"),
        (follow_up(3, 1), "unmatched_follow_up"),
        (delay_resp(11, 1), "unmatched_delay_resp"),
    ]
    for raw, reason in cases:
        before = dict(r.rejects)
        assert r.on_message(raw, RX + 1) is None, reason
        assert r.rejects[reason] == before[reason] + 1, reason
        assert r.last_error.startswith(reason)
    assert r.on_message(follow_up(10, 5), RX) is None
    assert r.on_message(follow_up(10, 6), RX) is None
    assert r.rejects["duplicate_follow_up"] == 1
    c = r.counters()
    assert c["syncs_received"] == 3 and c["sync_last_seq"] == 10  # dup, old, accepted
    assert c["delay_reqs_sent"] == 0  # the one accepted answer was never stamped
    assert set(c["sync_rejects"]) == set(REJECT_REASONS)
    assert sum(c["sync_rejects"].values()) == len(cases) + 1
    # a later sequence is answered again; a user-space stamp is counted as a fallback
    assert r.on_message(sync(11), RX + 2, user_stamp=True) is not None
    assert r.counters()["sync_rx_stamp_fallbacks"] == 1
    with pytest.raises(ValueError, match="unknown reject reason"):
        r.reject("nonsense", "x")


def test_old_exchanges_are_forgotten_after_history() -> None:
    r = SyncResponder(DEV, _clock(), history=4)
    for seq in range(1, 7):
        req = r.on_message(sync(seq), RX + seq)
        assert req is not None
        req.stamp_and_encode(RX + seq + 10)
    r.on_message(follow_up(2, RX), RX + 100)  # 1 and 2 were evicted
    r.on_message(follow_up(3, RX), RX + 100)
    assert (r.rejects["unmatched_follow_up"], r.counts["follow_ups"]) == (1, 2)


# --- the inbound path, transport-agnostic ---------------------------------------------------


class RecordingTx:
    def __init__(self, clock: StepClock) -> None:
        self.clock = clock
        self.sent: list[tuple[int, list[bytes]]] = []

    def send(self, messages: Sequence[bytes], at_ns: int | None = None) -> None:
        self.sent.append((self.clock.now, [bytes(m) for m in messages]))

    def send_stamped(
        self, messages: Sequence[bytes | bytearray], stamp_offset: int, stamp: Callable[[], int]
    ) -> None:
        self.send(stamp_messages(messages, stamp_offset, stamp()))

    def counters(self) -> dict[str, int]:
        return {"sends": len(self.sent)}

    def close(self) -> None:
        pass


class QueueInbound(RigInbound):
    """Units handed in by the test; one message per unit."""

    def __init__(
        self, responder: SyncResponder, answer: Transmitter, clock: Clock, **kw: Any
    ) -> None:
        super().__init__(responder, answer, clock, **kw)
        self.queue: list[Unit] = []

    def fileno(self) -> int | None:
        return None

    def read_units(self) -> list[Unit]:
        out, self.queue = self.queue, []
        return out

    def messages(self, unit: bytes) -> Iterable[bytes | memoryview]:
        return (unit,)


def _req_fields(raw: bytes) -> tuple[int, int, int]:
    _, rec = dm.decode(raw)
    return int(rec["sync_seq"][0]), int(rec["t2_ns"][0]), int(rec["t3_ns"][0])


def test_inbound_answers_at_once_without_impairment() -> None:
    clock = StepClock(RX + 80_000)  # processed 80 us after the arrival stamp
    dev = _clock(clock)
    tx = RecordingTx(clock)
    inbound = QueueInbound(SyncResponder(DEV, dev), tx, clock)
    inbound.queue = [(sync(7), RX, False), (follow_up(7, RX - 10_000), RX + 5, False)]
    inbound.on_readable()
    assert inbound.next_due_ns() is None
    [(at, [raw])] = tx.sent
    assert at == RX + 80_000
    assert _req_fields(raw) == (7, T2, dev.device_time(RX + 80_000))
    assert inbound.counters()["follow_ups"] == 1


class BuildingTx(RecordingTx):
    """A transport whose unit takes ``build_ns`` to build before it can stamp and write it
    (a UDP datagram header, a serial frame)."""

    def __init__(self, clock: StepClock, build_ns: int) -> None:
        super().__init__(clock)
        self.build_ns = build_ns

    def send_stamped(
        self, messages: Sequence[bytes | bytearray], stamp_offset: int, stamp: Callable[[], int]
    ) -> None:
        self.clock.now += self.build_ns
        super().send_stamped(messages, stamp_offset, stamp)


def test_inbound_stamps_t3_after_the_transport_built_the_unit() -> None:
    """t3 is read as the last thing before the wire, like the rig's t1 (after its datagram or
    frame is built): a build cost stamped on one side only is a one-way delay the two-way
    exchange reads as offset (on this VM ~8 us of UDP round trip, a -4 us bias)."""
    clock = StepClock(RX + 80_000)
    dev = _clock(clock)
    tx = BuildingTx(clock, 9_000)
    inbound = QueueInbound(SyncResponder(DEV, dev), tx, clock)
    inbound.queue = [(sync(7), RX, False)]
    inbound.on_readable()
    [(at, [raw])] = tx.sent
    assert at == RX + 89_000
    assert _req_fields(raw) == (7, T2, dev.device_time(RX + 89_000))
    assert inbound.responder.counts["delay_reqs_sent"] == 1


def test_inbound_impairment_holds_rig_input_and_delays_answers() -> None:
    clock = StepClock(RX)
    dev = _clock(clock)
    wire = RecordingTx(clock)
    to_rig = ImpairedTransmitter(wire, ImpairmentSpec(delay_us=1000), clock)
    inbound = QueueInbound(SyncResponder(DEV, dev), to_rig, clock,
                           to_device=ImpairmentSpec(delay_us=2000), to_rig=to_rig)  # fmt: skip
    inbound.queue = [(sync(7), RX, False)]
    inbound.on_readable()
    assert inbound.next_due_ns() == RX + 2_000_000 and not wire.sent
    clock.now = RX + 2_000_000 + 30_000  # woke 30 us late: t2 is still the planned release
    inbound.on_due(clock.now)
    assert not wire.sent and inbound.next_due_ns() == clock.now + 1_000_000
    clock.now += 1_000_000
    inbound.on_due(clock.now)
    [(at, [raw])] = wire.sent
    assert _req_fields(raw) == (7, dev.device_time(RX + 2_000_000), dev.device_time(at - 1_000_000))
    imp = inbound.impairment_counters()
    assert imp["to_device"]["released"] == 1 and imp["to_device"]["max_late_us"] == 30.0
    assert imp["to_rig"]["released"] == 1 and imp["to_rig"]["max_late_us"] == 0.0
    assert inbound.next_due_ns() is None


class SocketInbound(QueueInbound):
    def __init__(
        self, sock: socket.socket, responder: SyncResponder, answer: Transmitter, clock: Clock
    ) -> None:
        super().__init__(responder, answer, clock)
        self.sock = sock
        self.reads = 0

    def fileno(self) -> int | None:
        return self.sock.fileno()

    def read_units(self) -> list[Unit]:
        self.reads += 1
        return [(self.sock.recv(100), time.clock_gettime_ns(time.CLOCK_REALTIME), False)]


def test_serviced_sleep_handles_input_and_releases_then_returns() -> None:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    StopFlag().install()  # the waker needs Python signal handlers
    waker = Waker()
    a, b = socket.socketpair()
    clock = RealtimeClock()
    tx = RecordingTx(StepClock())
    dev = DeviceClock(clock, offset_ns=500_000_000, drift_ppm=100.0, epoch_ns=EPOCH)
    inbound = SocketInbound(a, SyncResponder(DEV, dev), tx, clock)
    sleep = ServicedSleep(waker, clock, inbound)
    try:
        b.send(sync(1))
        t0 = time.monotonic()
        sleep(1.0)  # returns as soon as the SYNC is answered
        assert time.monotonic() - t0 < 0.5 and inbound.reads == 1 and len(tx.sent) == 1
        t0 = time.monotonic()
        sleep(0.02)  # nothing arrives: the full sleep
        assert 0.015 < time.monotonic() - t0 < 0.5 and inbound.reads == 1
        # a pending impairment release cuts the sleep short and goes out
        to_rig = ImpairedTransmitter(tx, ImpairmentSpec(delay_us=5000), clock)
        inbound.to_rig = to_rig
        to_rig.send([b"x" * 8])
        t0 = time.monotonic()
        sleep(1.0)
        assert time.monotonic() - t0 < 0.5 and tx.sent[-1][1] == [b"x" * 8]
    finally:
        waker.close()
        a.close()
        b.close()
        for signum, handler in saved.items():
            signal.signal(signum, handler)


# --- the broker's use ------------------------------------------------------------------------


def test_broker_routes_sync_to_the_responder_and_sequences_delay_reqs() -> None:
    clock = StepClock(RX + 50_000)
    dev = _clock(clock)
    broker = BrokerDevice(DEV, session_id("B"), dev, SyncResponder(DEV, dev))
    order = dm.new_record(dm.MSG_ORDER, DEV)
    order["order_id"], order["size_lots"], order["side"] = 1, 2, 1
    dgram = pack_datagram(session_id("RIG"), 1, [dm.encode(order), sync(4), sync(4)])
    acks = broker.answer(memoryview(dgram), dev.device_time(RX), rx_rig_ns=RX)
    assert acks is not None and len(acks) == 1
    reply = unpack_datagram(broker.reply(acks))
    assert reply.sequence == 1
    [req] = broker.take_delay_reqs()
    assert broker.take_delay_reqs() == []
    d = unpack_datagram(broker.delay_req_datagram(req, RX + 50_000))
    assert d.sequence == 2 and d.count == 1 and d.session == session_id("B")
    assert _req_fields(bytes(d.messages[0])) == (
        4,
        dev.device_time(RX),
        dev.device_time(RX + 50_000),
    )
    s = broker.stats()
    assert (s["syncs_received"], s["delay_reqs_sent"], s["datagrams_sent"]) == (2, 1, 2)
    assert s["sync_rejects"]["duplicate_sync"] == 1 and s["unexpected_types"] == 0
    with pytest.raises(ValueError, match="rx_rig_ns"):
        broker.answer(memoryview(pack_datagram(session_id("RIG"), 2, [sync(5)])), 0)
    plain = BrokerDevice(DEV, session_id("B"), dev)  # without a responder: unexpected
    plain.answer(memoryview(dgram), 0)
    assert plain.stats()["unexpected_types"] == 2 and "syncs_received" not in plain.stats()


def test_read_impairment_validates_and_skips_identity_directions() -> None:
    cfg = ConfigReader({"impairment": {"to_rig": {"delay_us": 5}, "to_device": {}}}, "f.json")
    to_rig, to_device = read_impairment(cfg)
    assert to_rig is not None and to_rig.delay_us == 5 and to_rig.seed == 1
    assert to_device is None  # changes nothing: not impaired at all
    assert read_impairment(ConfigReader({}, "f.json")) == (None, None)
    for table, key in (({"to_rig": {"delay": 5}}, "impairment.to_rig.delay"),
                       ({"to_devices": {}}, "impairment.to_devices"),
                       ({"to_device": {"loss": 2}}, "impairment.to_device.loss")):  # fmt: skip
        with pytest.raises(ConfigError) as info:
            read_impairment(ConfigReader({"impairment": table}, "f.json"))
        assert (info.value.file, info.value.key) == ("f.json", key)

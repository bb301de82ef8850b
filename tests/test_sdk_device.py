"""The SDK's device pieces on their own: the UDP and serial device links (loopback and a pty)
and :class:`DeviceLoop`'s routing (clock sync, start handshake, the device's own messages,
heartbeats, stop). Waits are bounded by generous deadlines; nothing is timed."""

from __future__ import annotations

import os
import select
import socket
import tty
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from arbsphere.runtime import StopFlag
from arbsphere.sdk import (
    ArmStatus,
    Capabilities,
    DeviceClock,
    DeviceContext,
    DeviceLink,
    DeviceLoop,
    FrameDecoder,
    MsgType,
    RealtimeClock,
    Received,
    SerialDeviceLink,
    UdpDeviceLink,
    decode_values,
    encode,
    encode_frame,
    new_record,
    pack_datagram,
    session_id,
    unpack_datagram,
)
from arbsphere.sdk.device_loop import MAX_WAIT_S

DEVICE = 17
WAIT_S = 10.0


def _msg(mtype: MsgType, device_id: int = DEVICE, **fields: int) -> bytes:
    rec = new_record(mtype, device_id)
    for name, value in fields.items():
        rec[name] = value
    return encode(rec)


def _wait_readable(fd: int) -> None:
    assert select.select([fd], [], [], WAIT_S)[0], f"nothing to read within {WAIT_S} s"


def _receive(link: DeviceLink, errors: list[tuple[str, str]]) -> list[Received]:
    fd = link.fileno()
    assert fd is not None
    _wait_readable(fd)
    return link.receive(lambda reason, detail: errors.append((reason, detail)))


def test_udp_device_link_numbers_stamps_and_reports_bad_datagrams() -> None:
    rig = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rig.bind(("127.0.0.1", 0))
    link = UdpDeviceLink("DEV", target=rig.getsockname(), bind=("127.0.0.1", 0))
    try:
        link.send([_msg(MsgType.HEARTBEAT), _msg(MsgType.HEARTBEAT)])
        tick = _msg(MsgType.TICK)
        offset = next(f.offset for f in _layout(MsgType.TICK).fields if f.name == "send_ns")
        link.send_stamped([tick], offset, lambda: 1234)
        first, second = unpack_datagram(rig.recv(2048)), unpack_datagram(rig.recv(2048))
        assert (first.sequence, first.count, second.sequence) == (1, 2, 3)
        assert first.session.rstrip(b" \x00") == b"DEV"
        _, values = decode_values(bytes(second.messages[0]))
        assert values[_field_pos(MsgType.TICK, "send_ns")] == 1234

        sync = _msg(MsgType.SYNC, sync_seq=5)
        rig.sendto(pack_datagram(session_id("RIG"), 1, [sync]), link.address)
        errors: list[tuple[str, str]] = []
        (got,) = _receive(link, errors)
        assert got.data == sync and got.rx_ns > 0 and not errors
        rig.sendto(b"\x01\x02", link.address)
        assert _receive(link, errors) == [] and errors[0][0] == "malformed_datagram"
        assert link.counters()["malformed_datagrams"] == 1
    finally:
        link.close()
        rig.close()


@pytest.fixture
def pty_link() -> Iterator[tuple[SerialDeviceLink, int]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    link = SerialDeviceLink(master)  # the link owns the master
    try:
        yield link, slave
    finally:
        link.close()
        os.close(slave)


def test_serial_device_link_frames_both_ways_and_reports_crc_errors(
    pty_link: tuple[SerialDeviceLink, int],
) -> None:
    link, rig = pty_link
    sync = _msg(MsgType.SYNC, sync_seq=3)
    os.write(rig, encode_frame(sync))
    errors: list[tuple[str, str]] = []
    (got,) = _receive(link, errors)
    assert got.data == sync and got.user_stamp
    bad = bytearray(encode_frame(sync))
    bad[3] ^= 0x40
    os.write(rig, bytes(bad))
    assert _receive(link, errors) == [] and errors[0][0] == "crc_error"

    hb = _msg(MsgType.HEARTBEAT)
    link.send([hb])
    decoder, frames = FrameDecoder(), list[bytes]()
    while not frames:
        _wait_readable(rig)
        frames = decoder.feed(os.read(rig, 4096))
    assert frames == [hb]


def test_serial_device_link_waits_out_a_hung_up_pty() -> None:
    master, slave = os.openpty()
    link = SerialDeviceLink(master)
    try:
        os.close(slave)  # nobody at the rig end: the master reads EIO
        assert link.receive() == [] and link.fileno() is None
        assert link.counters()["hangups"] == 1
    finally:
        link.close()


def test_serial_device_link_drops_what_a_full_port_cannot_take(
    pty_link: tuple[SerialDeviceLink, int],
) -> None:
    link, _rig = pty_link  # the rig end is held open and never read: the pty's buffer fills
    hb = _msg(MsgType.HEARTBEAT)
    for _ in range(100_000):
        link.send([hb] * 64)
        if link.counters()["bytes_dropped"]:
            break
    counts = link.counters()
    assert counts["bytes_dropped"] > 0 and counts["writes_cut"] >= 1
    link.send([hb])  # still usable: a full port never fails the device
    assert link.counters()["writes_cut"] == counts["writes_cut"] + 1


class FakeLink(DeviceLink):
    """Records what the loop sends; a pipe stands for the link's descriptor."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self._r, self._w = os.pipe()

    def fileno(self) -> int:
        return self._r

    def receive(self, on_error: Any = None) -> list[Received]:
        return []

    def send(self, messages: Sequence[bytes]) -> None:
        self.sent.extend(messages)

    def send_stamped(
        self, messages: Sequence[bytes], stamp_offset: int, stamp: Callable[[], int]
    ) -> None:
        value = stamp().to_bytes(8, "little", signed=True)
        self.sent.extend(m[:stamp_offset] + value + m[stamp_offset + 8 :] for m in messages)

    def counters(self) -> dict[str, Any]:
        return {"sent": len(self.sent)}

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


class Broker(DeviceLoop):
    """A device that keeps the ORDERs it is given."""

    orders: list[int]

    def on_message(self, msg_type: int, record: np.ndarray, msg: Received) -> None:
        if msg_type == MsgType.ORDER:
            self.orders.append(int(record["order_id"][0]))
        else:
            super().on_message(msg_type, record, msg)


@pytest.fixture
def ctx() -> Iterator[DeviceContext]:
    from arbsphere.firmware_interfaces.device_main import Waker

    waker = Waker()
    try:
        yield DeviceContext(stop=StopFlag(), waker=waker, config_path="test")
    finally:
        waker.close()


def _sent(link: FakeLink) -> list[tuple[int, tuple[Any, ...]]]:
    out = [decode_values(m) for m in link.sent]
    link.sent.clear()
    return out


def test_device_loop_answers_sync_and_arm_and_hands_on_the_rest(ctx: DeviceContext) -> None:
    link = FakeLink()
    clock = DeviceClock(RealtimeClock(), offset_ns=5_000_000)
    loop = Broker(link, DEVICE, ctx, clock=clock, capabilities=Capabilities(venue_id=2, n_assets=1))
    loop.orders = []
    try:
        loop.dispatch(Received(_msg(MsgType.SYNC, sync_seq=1), 1_000_000_000, False))
        ((mtype, values),) = _sent(link)
        t2, t3 = values[_field_pos(MsgType.DELAY_REQ, "t2_ns")], values[-1]
        assert mtype == MsgType.DELAY_REQ and t2 == 1_005_000_000 and t3 >= t2
        loop.dispatch(Received(_msg(MsgType.SYNC, device_id=99, sync_seq=2), 2, False))
        assert _sent(link) == [] and loop.sync.rejects["wrong_device"] == 1

        arm = dict(arm_seq=7, start_ns=10**18, tick_interval_ns=1_000_000, n_ticks=5, n_assets=1)
        loop.dispatch(Received(_msg(MsgType.ARM, venue_id=2, **arm), 3, False))
        loop.dispatch(
            Received(
                _msg(MsgType.ARM, venue_id=2, **{**arm, "arm_seq": 8, "n_assets": 4}), 4, False
            )
        )
        statuses = [v[_field_pos(MsgType.ARMED, "status")] for _, v in _sent(link)]
        assert statuses == [ArmStatus.OK, ArmStatus.REFUSED]

        loop.dispatch(Received(_msg(MsgType.ORDER, device_id=1, order_id=42), 5, False))
        loop.dispatch(Received(_msg(MsgType.TICK), 6, False))
        loop.dispatch(Received(b"\xee\x01garbage", 7, False))
        assert loop.orders == [42]
        assert loop.counts["unexpected_messages"] == 1
        assert loop.counts["undecodable_messages"] == 1
        assert loop.counts["messages_received"] == 7
    finally:
        link.close()


def test_device_loop_sends_heartbeats_and_stops_with_its_counters(ctx: DeviceContext) -> None:
    link = FakeLink()

    class Stopping(DeviceLoop):
        polls = 0

        def heartbeat_seq(self) -> int:
            return 9

        def poll(self, now_ns: int) -> int | None:
            self.polls += 1
            ctx.stop.is_set = True  # as SIGTERM would
            return now_ns  # due at once: the loop must not wait

    loop = Stopping(link, DEVICE, ctx)
    try:
        loop.run()
        ((mtype, values),) = _sent(link)  # the first heartbeat goes out at once
        assert mtype == MsgType.HEARTBEAT
        assert values[_field_pos(MsgType.HEARTBEAT, "device_seq")] == 9
        assert loop.polls == 1
        assert ctx.stats["heartbeats_sent"] == 1 and ctx.stats["link"] == {"sent": 1}
        assert "sync_exchanges" in ctx.stats
    finally:
        link.close()
    assert MAX_WAIT_S <= 1.0  # a stop is seen within a second even with nothing due


def _layout(mtype: MsgType) -> Any:
    from arbsphere.firmware_interfaces.messages import LAYOUTS

    return LAYOUTS[mtype]


def _field_pos(mtype: MsgType, name: str) -> int:
    from arbsphere.firmware_interfaces.messages import value_fields

    return value_fields(mtype).index(name)

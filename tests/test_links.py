"""Rig-side device links: the shipped conformance checks (arbsphere.testing.links) on every
registered backend's loopback pair, plus what only one backend has (kernel receive stamps,
sequence gaps, CRC errors, raw ptys, broker sends)."""

from __future__ import annotations

import os
import select
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from arbsphere.adapters.backends import BACKENDS
from arbsphere.adapters.links import TIMESTAMP_KERNEL, TIMESTAMP_USER
from arbsphere.adapters.pty import open_pty_pair
from arbsphere.adapters.serial_link import SerialBrokerLink, SerialFeedLink, SerialLinkConfig
from arbsphere.adapters.udp_link import (
    UdpBrokerLink,
    UdpBrokerLinkConfig,
    UdpFeedLink,
    UdpLinkConfig,
)
from arbsphere.clock import RealtimeClock
from arbsphere.errors import LinkError
from arbsphere.firmware_interfaces import kernel_timestamps
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.emulators.feed_udp import UdpDeviceTransmitter
from arbsphere.firmware_interfaces.serial_framing import FrameDecoder, encode_frame
from arbsphere.firmware_interfaces.udp_datagram import session_id, unpack_datagram
from arbsphere.testing import StepClock
from arbsphere.testing.links import (
    ALL_CHECKS,
    LOOPBACK_PAIRS,
    heartbeat,
    heartbeat_fields,
    receive_n,
    udp_pair,
)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_conformance(backend: str, check: Callable[[Any], None]) -> None:
    """Every registered link backend passes every shipped check on its loopback pair."""
    assert backend in LOOPBACK_PAIRS, (
        f"link backend {backend!r} is registered (arbsphere/adapters/backends.py) but has no "
        "loopback pair in arbsphere.testing.links.LOOPBACK_PAIRS to run the checks on"
    )
    check(LOOPBACK_PAIRS[backend])


def recording_clock() -> StepClock:
    """The rig clock; ``last`` is the value it handed out last."""
    return StepClock(base=RealtimeClock())


# --- UDP ------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="SO_TIMESTAMPING is Linux-only")
def test_udp_kernel_stamp_precedes_user_space_stamp() -> None:
    clock = recording_clock()
    link = UdpFeedLink(UdpLinkConfig(), clock)
    tx = UdpDeviceTransmitter("K", link.address)
    try:
        assert link.timestamp_source == TIMESTAMP_KERNEL
        for i in range(10):
            before = RealtimeClock().now_ns()
            tx.send([heartbeat(i)])
            (rec,) = receive_n(link, 1)
            # the link reads the clock right after recvmsg: the kernel stamp came earlier
            assert before <= rec.rx_ns < clock.last
        assert link.counters()["rx_stamp_fallbacks"] == 0
    finally:
        tx.close()
        link.close()


def test_udp_user_space_stamps_when_kernel_stamps_are_off() -> None:
    clock = StepClock(123_456_789)
    link = UdpFeedLink(UdpLinkConfig(kernel_timestamps=False), clock)
    tx = UdpDeviceTransmitter("U", link.address)
    try:
        assert link.timestamp_source == TIMESTAMP_USER
        tx.send([heartbeat(0)])
        assert [r.rx_ns for r in receive_n(link, 1)] == [123_456_789]
        assert link.counters()["rx_stamp_fallbacks"] == 0
    finally:
        tx.close()
        link.close()


def test_udp_falls_back_when_setsockopt_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_timestamps, "SO_TIMESTAMPING", 0x7FFF)  # no such option
    clock = StepClock(42)
    link = UdpFeedLink(UdpLinkConfig(), clock)
    tx = UdpDeviceTransmitter("F", link.address)
    try:
        assert link.timestamp_source == TIMESTAMP_USER
        tx.send([heartbeat(0)])
        tx.send([heartbeat(1)])
        assert [r.rx_ns for r in receive_n(link, 2)] == [42, 42]
        assert link.counters()["rx_stamp_fallbacks"] == 2
    finally:
        tx.close()
        link.close()


def test_udp_messages_of_one_datagram_share_the_stamp() -> None:
    device, link = udp_pair()
    try:
        device.send([heartbeat(0), heartbeat(1), heartbeat(2)])
        got = receive_n(link, 3)
        assert len({r.rx_ns for r in got}) == 1
    finally:
        device.close()
        link.close()


def test_udp_gap_and_duplicate_counting() -> None:
    link = UdpFeedLink(UdpLinkConfig(), RealtimeClock())
    tx = UdpDeviceTransmitter("GAPS", link.address)
    try:
        tx.send([heartbeat(0), heartbeat(1)])  # seq 1-2
        tx.next_sequence += 5  # the device "loses" seq 3-7
        tx.send([heartbeat(7)])  # seq 8
        tx.next_sequence = 8
        tx.send([heartbeat(7)])  # seq 8 again: a duplicate
        got = receive_n(link, 4)
        assert [heartbeat_fields(r.payload)[0] for r in got] == [0, 1, 7, 7]
        c = link.counters()
        assert (c["gaps"], c["missing"], c["duplicates"]) == (1, 5, 1)
        assert c["units"] == 3 and c["malformed"] == 0
    finally:
        tx.close()
        link.close()


def test_udp_malformed_datagrams_are_counted_with_the_error() -> None:
    link = UdpFeedLink(UdpLinkConfig(), RealtimeClock())
    tx = UdpDeviceTransmitter("BAD", link.address)
    try:
        tx.send_raw(b"\x01\x02\x03")  # shorter than a datagram header
        tx.send([heartbeat(5)])
        (rec,) = receive_n(link, 1)
        assert heartbeat_fields(rec.payload)[0] == 5
        c = link.counters()
        assert (c["malformed"], c["decode_errors"], c["units"]) == (1, 1, 1)
        assert link.last_error is not None and link.last_error.problem == "short"
    finally:
        tx.close()
        link.close()


def test_udp_receive_drains_up_to_the_cap() -> None:
    link = UdpFeedLink(UdpLinkConfig(max_datagrams_per_call=4), RealtimeClock())
    tx = UdpDeviceTransmitter("CAP", link.address)
    try:
        for i in range(10):
            tx.send([heartbeat(i)])
        time.sleep(0.02)
        assert len(link.receive(timeout_ms=1000)) == 4
        rest = receive_n(link, 6)
        assert [heartbeat_fields(r.payload)[0] for r in rest] == list(range(4, 10))
    finally:
        tx.close()
        link.close()


def test_udp_bind_failure_is_a_link_error() -> None:
    with pytest.raises(LinkError, match=r"cannot bind UDP 192\.0\.2\.1:9"):
        UdpFeedLink(UdpLinkConfig(bind_host="192.0.2.1", bind_port=9), RealtimeClock())


def test_udp_broker_link_sends_orders_and_receives_acks() -> None:
    device = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    device.bind(("127.0.0.1", 0))
    device.settimeout(2.0)
    clock = RealtimeClock()
    link = UdpBrokerLink(
        UdpBrokerLinkConfig("127.0.0.1", device.getsockname()[1], session="RIGTEST"), clock
    )
    try:
        assert link.timestamp_source in (TIMESTAMP_KERNEL, TIMESTAMP_USER)
        order = dm.new_record(dm.MSG_ORDER, 1)
        order["order_id"] = 99
        txs = []
        for _ in range(2):
            txs.append(link.send(dm.encode(order)))
        seqs = []
        for _ in range(2):
            data, _ = device.recvfrom(65536)
            after = clock.now_ns()
            d = unpack_datagram(data)
            assert d.session == session_id("RIGTEST") and d.count == 1
            assert bytes(d.messages[0]) == dm.encode(order)
            seqs.append(d.sequence)
        assert seqs == [1, 2]
        assert txs[0] <= txs[1] <= after
        ack_tx = UdpDeviceTransmitter("BROKER", link.address)
        ack = dm.new_record(dm.MSG_ACK, 200)
        ack["order_id"] = 99
        ack_tx.send([dm.encode(ack)])
        (rec,) = receive_n(link, 1)
        assert rec.payload == dm.encode(ack) and rec.rx_ns >= txs[1]
        assert link.counters()["sent"] == 2
        ack_tx.close()
    finally:
        device.close()
        link.close()


def test_udp_broker_link_rejects_a_long_session() -> None:
    with pytest.raises(LinkError, match="bad session"):
        UdpBrokerLink(UdpBrokerLinkConfig("127.0.0.1", 9, session="ELEVENCHARS"), RealtimeClock())


# --- serial ---------------------------------------------------------------------------------


def test_pty_is_raw_both_ways() -> None:
    """Control bytes a cooked tty would translate (CR->LF), act on (^C, XON/XOFF) or echo."""
    special = b"\x0a\x0d\x03\x11\x13\x7f\x1a\x04"
    master, path = open_pty_pair()
    slave = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(master, special)
        assert _read_exactly(slave, len(special)) == special
        os.write(slave, special)
        assert _read_exactly(master, len(special)) == special  # not echoed twice, not mangled
        os.set_blocking(master, False)
        with pytest.raises(BlockingIOError):  # no echo of what the master wrote
            os.read(master, 100)
    finally:
        os.close(slave)
        os.close(master)


def _read_exactly(fd: int, n: int) -> bytes:
    out = b""
    end = time.monotonic() + 2.0
    while len(out) < n:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break  # a cooked tty may hold bytes back (canonical mode): fail, don't hang
        out += os.read(fd, n - len(out))
    return out


def test_serial_frame_with_control_bytes_crosses_unchanged() -> None:
    master, path = open_pty_pair()
    link = SerialFeedLink(SerialLinkConfig(port=path), RealtimeClock())
    try:
        payload = heartbeat(0x0D0A, stamp_ns=0x13110D0A03)  # control bytes inside the message
        frame = encode_frame(payload)
        assert all(b in frame for b in b"\x0a\x0d\x03\x11\x13")
        os.write(master, frame)
        (rec,) = receive_n(link, 1)
        assert rec.payload == payload
    finally:
        link.close()
        os.close(master)


def test_serial_corrupted_frame_counts_one_crc_error_and_stream_continues() -> None:
    master, path = open_pty_pair()
    link = SerialFeedLink(SerialLinkConfig(port=path), RealtimeClock())
    try:
        bad = bytearray(encode_frame(heartbeat(1, stamp_ns=0x1122334455667788)))
        at = bad.index(0x55)  # a data byte (COBS code bytes here are < 0x20), not a delimiter
        bad[at] ^= 0x01
        os.write(master, encode_frame(heartbeat(0)) + bytes(bad) + encode_frame(heartbeat(2)))
        os.write(master, encode_frame(heartbeat(3)))
        got = receive_n(link, 3)
        assert [heartbeat_fields(r.payload)[0] for r in got] == [0, 2, 3]
        c = link.counters()
        assert (c["crc_errors"], c["cobs_errors"], c["malformed"], c["frames_ok"]) == (1, 0, 1, 3)
        assert link.last_error is not None and link.last_error.problem == "crc"
    finally:
        link.close()
        os.close(master)


def test_serial_receive_waits_for_the_rest_of_a_split_frame() -> None:
    master, path = open_pty_pair()
    clock = recording_clock()
    link = SerialFeedLink(SerialLinkConfig(port=path), clock)
    try:
        frame = encode_frame(heartbeat(9))
        os.write(master, frame[:20])
        assert link.receive(timeout_ms=20) == []
        assert link.counters()["buffered"] == 20
        os.write(master, frame[20:])
        (rec,) = receive_n(link, 1)
        assert heartbeat_fields(rec.payload)[0] == 9
        assert rec.rx_ns == clock.last  # stamped right after the read that completed it
    finally:
        link.close()
        os.close(master)


def test_serial_open_failure_names_the_port() -> None:
    with pytest.raises(LinkError, match="/dev/does-not-exist") as info:
        SerialFeedLink(SerialLinkConfig(port="/dev/does-not-exist"), RealtimeClock())
    assert info.value.__cause__ is not None


def test_serial_broker_link_sends_frames() -> None:
    master, path = open_pty_pair()
    clock = RealtimeClock()
    link = SerialBrokerLink(SerialLinkConfig(port=path), clock)
    try:
        order = dm.new_record(dm.MSG_ORDER, 1)
        order["order_id"] = 0x0A0D
        tx_ns = link.send(dm.encode(order))
        assert tx_ns <= clock.now_ns()
        decoder = FrameDecoder()
        got: list[bytes] = []
        end = time.monotonic() + 2.0
        while not got and time.monotonic() < end:
            got = decoder.feed(os.read(master, 4096))
        assert got == [dm.encode(order)]
        assert link.counters()["sent"] == 1
        os.write(master, encode_frame(heartbeat(4)))
        assert heartbeat_fields(receive_n(link, 1)[0].payload)[0] == 4
    finally:
        link.close()
        os.close(master)

"""Feed transmitters stamp ``send_ns`` last: the unit is built (and checked) before the stamp is
read, every message of the unit carries the one value, and the bytes on the wire are exactly the
encoded ticks with that field replaced."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from arbsphere.adapters.pty import open_pty_pair
from arbsphere.clock import RealtimeClock
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.emulators.feed_serial import SerialDeviceTransmitter
from arbsphere.firmware_interfaces.emulators.feed_udp import UdpDeviceTransmitter
from arbsphere.firmware_interfaces.emulators.impairment import ImpairedTransmitter, ImpairmentSpec
from arbsphere.firmware_interfaces.emulators.schedule import stamp_messages
from arbsphere.firmware_interfaces.serial_framing import FrameDecoder
from arbsphere.firmware_interfaces.udp_datagram import unpack_datagram

SEND_OFFSET = int(dm.TICK_DTYPE.fields["send_ns"][1])  # type: ignore[index]
STAMP = 0x0102030405060708


def _ticks(n: int) -> list[bytes]:
    recs = dm.new_records(dm.MSG_TICK, 7, n)
    recs["device_seq"] = np.arange(100, 100 + n)
    recs["bid_px"] = 1_000
    recs["ask_px"] = 1_010
    recs["send_ns"] = -1  # placeholder the stamp replaces
    raw = dm.encode_batch(recs)
    size = len(raw) // n
    return [raw[k * size : (k + 1) * size] for k in range(n)]


class Stamp:
    """A stamp source counting its reads."""

    def __init__(self, value: int = STAMP) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.value


def _expected(messages: list[bytes], value: int) -> list[bytes]:
    out = []
    for m in messages:
        b = bytearray(m)
        b[SEND_OFFSET : SEND_OFFSET + 8] = value.to_bytes(8, "little", signed=True)
        out.append(bytes(b))
    return out


def test_udp_send_stamped_puts_one_stamp_in_every_message_of_the_datagram() -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    tx = UdpDeviceTransmitter("STAMPED", rx.getsockname(), first_sequence=41)
    try:
        ticks = _ticks(3)
        stamp = Stamp()
        tx.send_stamped(ticks, SEND_OFFSET, stamp)
        dgram = unpack_datagram(rx.recv(4096))
        assert stamp.calls == 1
        assert dgram.sequence == 41 and tx.next_sequence == 44 and tx.messages_sent == 3
        assert [bytes(m) for m in dgram.messages] == _expected(ticks, STAMP)
        for m in dgram.messages:
            _, rec = dm.decode(m)
            assert int(rec["send_ns"][0]) == STAMP
    finally:
        tx.close()
        rx.close()


def test_udp_send_stamped_checks_the_datagram_before_reading_the_stamp() -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = UdpDeviceTransmitter("STAMPED", rx.getsockname())
    try:
        stamp = Stamp()
        bad = _ticks(1)[0][:-1]  # header length no longer matches
        with pytest.raises(ValueError, match="header length"):
            tx.send_stamped([bad], SEND_OFFSET, stamp)
        assert stamp.calls == 0 and tx.next_sequence == 1 and tx.datagrams_sent == 0
    finally:
        tx.close()
        rx.close()


def test_serial_send_stamped_frames_the_stamped_bytes() -> None:
    master, path = open_pty_pair()
    slave = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tx = SerialDeviceTransmitter(slave, name="stamped")
    try:
        ticks = _ticks(2)
        stamp = Stamp(-5)  # negative i64 survives framing
        tx.send_stamped(ticks, SEND_OFFSET, stamp)
        decoder = FrameDecoder()
        got: list[bytes] = []
        while len(got) < 2:
            got += decoder.feed(os.read(master, 4096))
        assert stamp.calls == 1 and got == _expected(ticks, -5) and tx.frames_sent == 2
    finally:
        os.close(slave)
        os.close(master)


class Inner:
    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []

    def send(self, messages: list[bytes], at_ns: int | None = None) -> None:
        self.sent.append(list(messages))

    def send_stamped(self, messages: list[bytes], stamp_offset: int, stamp: Stamp) -> None:
        raise AssertionError("the impairment stage stamps on entry, not the wire below it")

    def counters(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


def test_impaired_send_stamped_stamps_on_entry_and_releases_the_stamped_packet() -> None:
    inner = Inner()
    tx = ImpairedTransmitter(inner, ImpairmentSpec(), RealtimeClock())  # type: ignore[arg-type]
    ticks = _ticks(2)
    stamp = Stamp()
    tx.send_stamped(ticks, SEND_OFFSET, stamp)
    assert stamp.calls == 1 and inner.sent == [_expected(ticks, STAMP)]


def test_stamp_messages_rejects_an_offset_past_the_message() -> None:
    (tick,) = _ticks(1)
    with pytest.raises(ValueError, match=f"offset {len(tick) - 4}"):
        stamp_messages([tick], len(tick) - 4, 1)
    assert stamp_messages([tick], SEND_OFFSET, 9) == _expected([tick], 9)

"""Conformance checks for rig-side feed links (:class:`arbsphere.adapters.links.FeedLink`).

Each ``check_*`` takes ``make_pair``, a factory returning ``(device, link)``: a
:class:`DeviceSide` that puts device messages on the wire the way a device does, and the
rig-side :class:`FeedLink` under test. The checks use real device messages (HEARTBEATs whose
``device_seq`` numbers them and whose ``device_time_ns`` carries a rig-clock send stamp) and
close both ends; a failed check raises ``AssertionError``. :data:`ALL_CHECKS` lists them.

:data:`LOOPBACK_PAIRS` has a factory for every registered link backend
(:data:`arbsphere.adapters.backends.BACKENDS`) against its loopback device side: the emulators'
own transmitters on UDP or a pty. A lab runs the same checks against hardware with its own
factory, e.g. ``for check in ALL_CHECKS: check(my_pair)``: if the loopback passes and the
hardware fails, the emulator is wrong.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from arbsphere.adapters.links import (
    COMMON_COUNTERS,
    TIMESTAMP_HARDWARE,
    TIMESTAMP_KERNEL,
    TIMESTAMP_USER,
    FeedLink,
)
from arbsphere.adapters.pty import open_pty_pair
from arbsphere.adapters.serial_link import SerialFeedLink, SerialLinkConfig
from arbsphere.adapters.udp_link import UdpFeedLink, UdpLinkConfig
from arbsphere.clock import Clock, RealtimeClock
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.emulators.feed_serial import SerialDeviceTransmitter
from arbsphere.firmware_interfaces.emulators.feed_udp import UdpDeviceTransmitter
from arbsphere.firmware_interfaces.serial_framing import encode_frame
from arbsphere.firmware_interfaces.udp_datagram import pack_datagram

RECEIVE_DEADLINE_S = 3.0


class DeviceSide(Protocol):
    """The device end of a link as the conformance checks drive it."""

    def send(self, messages: Sequence[bytes]) -> None:
        """One transport unit (datagram / one write of frames) carrying ``messages``."""
        ...

    def send_corrupted(self, messages: Sequence[bytes]) -> None:
        """One transport unit carrying ``messages``, damaged so the link must reject it."""
        ...

    def close(self) -> None: ...


MakePair = Callable[[], tuple[DeviceSide, FeedLink]]


# --- loopback backends ----------------------------------------------------------------------


class UdpDevice:
    """Device side over UDP: the feed emulator's transmitter; corruption = a truncated datagram
    (its header announces more bytes than arrive)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.tx = UdpDeviceTransmitter("CONFORM", target)

    def send(self, messages: Sequence[bytes]) -> None:
        self.tx.send(messages)

    def send_corrupted(self, messages: Sequence[bytes]) -> None:
        dgram = pack_datagram(self.tx.session, self.tx.next_sequence, messages)
        self.tx.send_raw(dgram[:-3])
        self.tx.next_sequence += len(messages)

    def close(self) -> None:
        self.tx.close()


class SerialDevice:
    """Device side over a pty: the feed emulator's transmitter on the master; corruption = one
    flipped payload byte in each frame (the CRC-32C must catch it)."""

    def __init__(self, master_fd: int) -> None:
        self.master_fd = master_fd
        self.tx = SerialDeviceTransmitter(master_fd, name="conformance pty")

    def send(self, messages: Sequence[bytes]) -> None:
        self.tx.send(messages)

    def send_corrupted(self, messages: Sequence[bytes]) -> None:
        damaged = []
        for m in messages:
            frame = bytearray(encode_frame(m))
            frame[len(frame) // 2] ^= 0x40 if frame[len(frame) // 2] != 0x40 else 0x41
            damaged.append(bytes(frame))
        self.tx.send_raw(b"".join(damaged))

    def close(self) -> None:
        os.close(self.master_fd)


def udp_pair(clock: Clock | None = None) -> tuple[DeviceSide, FeedLink]:
    """A UDP feed link and the UDP feed emulator's transmitter sending to it."""
    link = UdpFeedLink(UdpLinkConfig(name="conformance-udp"), clock or RealtimeClock())
    return UdpDevice(link.address), link


def serial_pty_pair(clock: Clock | None = None) -> tuple[DeviceSide, FeedLink]:
    """A serial feed link on a pty slave and the serial feed emulator's transmitter on the
    master."""
    master, path = open_pty_pair()
    link = SerialFeedLink(
        SerialLinkConfig(port=path, name="conformance-serial"), clock or RealtimeClock()
    )
    return SerialDevice(master), link


#: A loopback pair for every registered link backend, by its link name.
LOOPBACK_PAIRS: dict[str, Callable[[], tuple[DeviceSide, FeedLink]]] = {
    "udp": udp_pair,
    "serial": serial_pty_pair,
}


# --- helpers --------------------------------------------------------------------------------


def heartbeat(seq: int, stamp_ns: int = 0, device_id: int = 77) -> bytes:
    rec = dm.new_record(dm.MSG_HEARTBEAT, device_id)
    rec["device_seq"] = seq
    rec["device_time_ns"] = stamp_ns
    return dm.encode(rec)


def heartbeat_fields(payload: bytes) -> tuple[int, int]:
    mtype, rec = dm.decode(payload)
    assert mtype == dm.MSG_HEARTBEAT, f"expected a HEARTBEAT, got type {mtype}"
    return int(rec["device_seq"][0]), int(rec["device_time_ns"][0])


def receive_n(
    link: FeedLink, n: int, deadline_s: float = RECEIVE_DEADLINE_S, *, exact: bool = True
) -> list:
    """Receive until ``n`` messages arrived (fails after ``deadline_s``, never spins). With
    ``exact`` false, more is fine: a device streaming on can fill one read with more than
    ``n`` (a slow reader on a loaded machine)."""
    got: list = []
    end = time.monotonic() + deadline_s
    while len(got) < n:
        left = end - time.monotonic()
        assert left > 0, f"{link.name}: only {len(got)} of {n} messages within {deadline_s} s"
        got.extend(link.receive(timeout_ms=max(1, int(left * 1000))))
    assert len(got) == n or not exact, f"{link.name}: {len(got)} messages, expected {n}"
    return got


# --- checks ---------------------------------------------------------------------------------


def check_feed_link_delivers_in_order(make_pair: MakePair) -> None:
    """Messages arrive complete, unchanged and in order, whatever the unit sizes."""
    device, link = make_pair()
    try:
        sizes = [1, 2, 3, 1, 5, 1, 4, 3]
        sent: list[bytes] = []
        for units, size in enumerate(sizes, start=1):
            batch = [heartbeat(len(sent) + i) for i in range(size)]
            device.send(batch)
            sent.extend(batch)
            if units % 3 == 0:  # let some units queue up before the link reads them
                time.sleep(0.002)
        got = receive_n(link, len(sent))
        assert [r.payload for r in got] == sent
        assert all(isinstance(r.payload, bytes) and isinstance(r.rx_ns, int) for r in got)
        c = link.counters()
        missing = [k for k in COMMON_COUNTERS if k not in c]
        assert not missing, f"{link.name}: counters lack {missing}"
        assert c["messages"] == len(sent)
        assert len(sizes) <= c["units"] <= len(sent)  # datagrams, or one frame per message
        assert c["malformed"] == 0
        assert c["bytes"] > sum(len(m) for m in sent)  # framing overhead included
        assert link.timestamp_source in (TIMESTAMP_HARDWARE, TIMESTAMP_KERNEL, TIMESTAMP_USER)
    finally:
        device.close()
        link.close()


def check_feed_link_counts_corruption(make_pair: MakePair) -> None:
    """A damaged unit is counted (never raised, never delivered); the next ones still arrive."""
    device, link = make_pair()
    try:
        device.send([heartbeat(0)])
        device.send_corrupted([heartbeat(1)])
        device.send([heartbeat(2), heartbeat(3)])
        got = receive_n(link, 3)
        assert [heartbeat_fields(r.payload)[0] for r in got] == [0, 2, 3]
        assert link.receive(timeout_ms=20) == []
        c = link.counters()
        assert c["malformed"] == 1, c
        assert c["messages"] == 3
        assert 2 <= c["units"] <= 3
    finally:
        device.close()
        link.close()


def check_rx_timestamps_monotonic_and_after_send(
    make_pair: MakePair, clock: Clock | None = None, n: int = 30
) -> None:
    """Every rx_ns is on the rig clock: after the send stamp, before receive() returned, and
    never decreasing from one message to the next."""
    clock = clock or RealtimeClock()
    device, link = make_pair()
    try:
        last_rx = 0
        for i in range(n):
            stamp = clock.now_ns()
            device.send([heartbeat(i, stamp)])
            (rec,) = receive_n(link, 1)
            after = clock.now_ns()
            seq, sent_ns = heartbeat_fields(rec.payload)
            assert seq == i
            assert sent_ns <= rec.rx_ns <= after, (sent_ns, rec.rx_ns, after)
            assert rec.rx_ns >= last_rx
            last_rx = rec.rx_ns
        # A burst read in one receive() call is stamped in order too.
        for i in range(n):
            device.send([heartbeat(n + i, clock.now_ns())])
        got = receive_n(link, n)
        rx = [r.rx_ns for r in got]
        assert rx == sorted(rx)
        assert all(heartbeat_fields(r.payload)[1] <= r.rx_ns for r in got)
    finally:
        device.close()
        link.close()


def check_injected_delay_is_measured(
    make_pair: MakePair, delay_ns: int = 3_000_000, clock: Clock | None = None, n: int = 5
) -> None:
    """A sender that sleeps a known time between stamping and sending: the measured
    ``rx_ns - stamp`` is at least that delay (a one-sided bound, robust on a noisy machine)."""
    clock = clock or RealtimeClock()
    device, link = make_pair()
    try:
        for i in range(n):
            stamp = clock.now_ns()
            time.sleep(delay_ns / 1e9)
            device.send([heartbeat(i, stamp)])
            (rec,) = receive_n(link, 1)
            _, sent_ns = heartbeat_fields(rec.payload)
            assert rec.rx_ns - sent_ns >= delay_ns, (rec.rx_ns - sent_ns, delay_ns)
    finally:
        device.close()
        link.close()


def check_feed_link_blocks_and_wakes(make_pair: MakePair) -> None:
    """receive() returns [] after its timeout with nothing sent; fileno() turns readable in
    select() once data arrives; close() is idempotent."""
    device, link = make_pair()
    try:
        assert link.receive(timeout_ms=0) == []
        t0 = time.monotonic()
        assert link.receive(timeout_ms=30) == []
        assert time.monotonic() - t0 >= 0.02  # it blocked, it did not return at once
        assert select.select([link.fileno()], [], [], 0)[0] == []
        device.send([heartbeat(1)])
        assert select.select([link.fileno()], [], [], RECEIVE_DEADLINE_S)[0] == [link.fileno()]
        assert [heartbeat_fields(r.payload)[0] for r in receive_n(link, 1)] == [1]
    finally:
        device.close()
        link.close()
        link.close()


#: Every check, in the order a harness runs them.
ALL_CHECKS: tuple[Callable[[MakePair], None], ...] = (
    check_feed_link_delivers_in_order,
    check_feed_link_counts_corruption,
    check_rx_timestamps_monotonic_and_after_send,
    check_injected_delay_is_measured,
    check_feed_link_blocks_and_wakes,
)

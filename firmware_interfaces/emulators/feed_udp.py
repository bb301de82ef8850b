"""Emulated UDP feed device: quotes as TICK datagrams to the rig on an open-loop schedule, and the
device side of the clock-sync exchange on the same socket.

``python -m arbsphere.firmware_interfaces.emulators.feed_udp CONFIG.json`` with::

    {device_id, venue_id, asset_id (0) | asset_order ("fixed" | "round_robin": tick k quotes
     asset k mod market.n_assets), session (<= 10 chars), target_host, target_port,
     bind_host ("0.0.0.0"), bind_port (0 = ephemeral), ready_path (optional: receives
     {"host": H, "port": N} of the bound socket before the first send),
     market: {MarketConfig fields}, start_at_ns and n_ticks | duration_s (none of them: the
     device waits for the rig's ARM, :mod:`.feed_session`),
     ticks_per_datagram (1), heartbeat_interval_ms (100), late_tolerance_us (200),
     clock: {offset_ns, drift_ppm, steps},
     impairment: {to_rig: {ImpairmentSpec fields}, to_device: {...}} (optional), stats_path}

Every device message (TICK, HEARTBEAT, DELAY_REQ) takes the next device message sequence
number, starting at 1; a datagram's header sequence is that of its first message (MoldUDP64
style). A DELAY_REQ always travels alone in its own datagram to the target.

Clock sync: the rig sends SYNC, FOLLOW_UP and DELAY_RESP in datagrams with the usual 24-byte
header (its own session and sequence) to the socket this feed sends from (the source address
the rig sees, or ``bind_host:bind_port``). ``t2`` is the kernel software receive stamp of the
datagram (``SO_TIMESTAMPING``) on the device clock; without one a user-space stamp right after
the receive, counted in ``sync_rx_stamp_fallbacks``. The socket is read while the schedule
waits (:class:`~.schedule.ServicedSleep`).

Impairment (optional, for calibration without the relay): ``to_rig`` delays, drops, duplicates
or reorders whole datagrams AFTER they took their sequence numbers, so the rig's gap detector
sees the loss; ``to_device`` holds received rig datagrams and processes them at their release
time, which then stands for their arrival (``t2``).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from arbsphere.clock import Clock, RealtimeClock
from arbsphere.errors import DatagramError, LinkError
from arbsphere.firmware_interfaces.device_main import (
    ConfigReader,
    DeviceContext,
    clock_truth,
    device_clock,
    run_device,
)
from arbsphere.firmware_interfaces.emulators.feed_session import serve_feed
from arbsphere.firmware_interfaces.emulators.impair_relay import set_timer_slack
from arbsphere.firmware_interfaces.emulators.impairment import ImpairedTransmitter, ImpairmentSpec
from arbsphere.firmware_interfaces.emulators.misbehave import FEED_SWITCHES, read_misbehave
from arbsphere.firmware_interfaces.emulators.schedule import (
    I64_FIELD,
    open_quotes,
    read_feed_plan,
    stamp_messages,
)
from arbsphere.firmware_interfaces.emulators.sync_responder import (
    RigInbound,
    Unit,
    read_impairment,
)
from arbsphere.firmware_interfaces.kernel_timestamps import (
    ANCBUFSIZE,
    enable_rx_software_timestamps,
    kernel_rx_stamp,
)
from arbsphere.firmware_interfaces.sync_responder import SyncResponder
from arbsphere.firmware_interfaces.udp_datagram import (
    HEADER_SIZE,
    SESSION_SIZE,
    GapDetector,
    pack_datagram,
    session_id,
    unpack_datagram,
)
from arbsphere.runtime import write_json_atomic

#: rig datagrams are small; a longer one is truncated and counted malformed
MAX_RIG_DATAGRAM = 2048


class UdpDeviceTransmitter:
    """Device side of a UDP feed link: datagrams carrying the device message sequence."""

    def __init__(
        self,
        session: bytes | str,
        target: tuple[str, int],
        *,
        first_sequence: int = 1,
        bind: tuple[str, int] | None = None,
    ) -> None:
        self.session = session_id(session)
        self.target = target
        self.next_sequence = first_sequence
        self.datagrams_sent = 0
        self.messages_sent = 0
        self.bytes_sent = 0
        self.impaired: ImpairedTransmitter | None = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if bind is not None:
            try:
                self._sock.bind(bind)
            except OSError as exc:
                self._sock.close()
                raise LinkError(f"feed device: cannot bind UDP {bind[0]}:{bind[1]}: {exc}") from exc

    @property
    def sock(self) -> socket.socket:
        """The socket datagrams leave from (and rig datagrams arrive on)."""
        return self._sock

    def impair(self, spec: ImpairmentSpec, clock: Clock) -> ImpairedTransmitter:
        """Put every later datagram through an impairment stage once it has its sequence."""
        self.impaired = ImpairedTransmitter(_Datagrams(self), spec, clock)
        return self.impaired

    def send(self, messages: Sequence[bytes], at_ns: int | None = None) -> None:
        """One datagram with ``messages``; the sequence advances by their count."""
        dgram = pack_datagram(self.session, self.next_sequence, messages)
        self.next_sequence += len(messages)
        self.messages_sent += len(messages)
        if self.impaired is None:
            self.send_raw(dgram)
        else:
            self.impaired.send([dgram], at_ns)

    def send_stamped(
        self, messages: Sequence[bytes | bytearray], stamp_offset: int, stamp: Callable[[], int]
    ) -> None:
        """One datagram with ``messages``, built first and stamped last: ``stamp()`` is read
        just before the datagram goes to the socket (or into the impairment stage)."""
        dgram = bytearray(pack_datagram(self.session, self.next_sequence, messages))
        at = None if self.impaired is None else self.impaired.clock.now_ns()
        value = stamp()
        pos = HEADER_SIZE + stamp_offset
        for m in messages:
            I64_FIELD.pack_into(dgram, pos, value)
            pos += len(m)
        self.next_sequence += len(messages)
        self.messages_sent += len(messages)
        if self.impaired is None:
            self.send_raw(dgram)
        else:
            self.impaired.send([bytes(dgram)], at)

    def send_raw(self, data: bytes | bytearray) -> None:
        """Put ``data`` on the wire as one datagram, as is (fault injection)."""
        try:
            self._sock.sendto(data, self.target)
        except OSError as exc:
            raise LinkError(f"send to {self.target[0]}:{self.target[1]} failed: {exc}") from exc
        self.datagrams_sent += 1
        self.bytes_sent += len(data)

    def counters(self) -> dict[str, int]:
        return {
            "datagrams_sent": self.datagrams_sent,
            "messages_sent": self.messages_sent,
            "bytes_sent": self.bytes_sent,
            "next_sequence": self.next_sequence,
        }

    def close(self) -> None:
        if self.impaired is not None:
            self.impaired.close()  # what is still pending is counted as discarded
        self._sock.close()


class _Datagrams:
    """The wire under an impairment stage: each message is a whole, packed datagram."""

    def __init__(self, tx: UdpDeviceTransmitter) -> None:
        self.tx = tx

    def send(self, messages: Sequence[bytes], at_ns: int | None = None) -> None:
        for dgram in messages:
            self.tx.send_raw(dgram)

    def send_stamped(
        self, messages: Sequence[bytes | bytearray], stamp_offset: int, stamp: Callable[[], int]
    ) -> None:
        self.send(stamp_messages(messages, stamp_offset, stamp()))

    def counters(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        """The socket belongs to the transmitter."""


class UdpRigInbound(RigInbound):
    """Rig datagrams arriving on the feed's socket, stamped by the kernel on arrival."""

    def __init__(
        self,
        tx: UdpDeviceTransmitter,
        responder: SyncResponder,
        clock: Clock,
        *,
        to_device: ImpairmentSpec | None = None,
    ) -> None:
        super().__init__(responder, tx, clock, to_device=to_device, to_rig=tx.impaired)
        self._sock = tx.sock
        self.kernel_stamps = enable_rx_software_timestamps(self._sock)
        self.gaps = GapDetector()
        self._buf = bytearray(MAX_RIG_DATAGRAM)
        self.counts = {"rig_datagrams": 0, "rig_bytes": 0, "rig_socket_errors": 0}

    def fileno(self) -> int:
        return self._sock.fileno()

    def read_units(self) -> list[Unit]:
        """One datagram per wake-up: rig datagrams are rare, and probing for a second one
        would cost a failing system call every time (the next ``select()`` sees the rest)."""
        try:
            n, ancdata, flags, _addr = self._sock.recvmsg_into(
                [self._buf], ANCBUFSIZE, socket.MSG_DONTWAIT
            )
        except (BlockingIOError, InterruptedError):
            return []
        except ConnectionRefusedError:  # ICMP from an earlier send; the socket stays usable
            self.counts["rig_socket_errors"] += 1
            return []
        except OSError as exc:
            raise LinkError(f"feed device: receive on the feed socket failed: {exc}") from exc
        stamp = kernel_rx_stamp(ancdata) if self.kernel_stamps else None
        rx = self.clock.now_ns() if stamp is None else stamp
        self.counts["rig_datagrams"] += 1
        self.counts["rig_bytes"] += n
        if flags & socket.MSG_TRUNC:
            detail = f"truncated: longer than {MAX_RIG_DATAGRAM} bytes"
            self.responder.reject("malformed_datagram", detail)
            return []
        return [(bytes(self._buf[:n]), rx, stamp is None)]

    def messages(self, unit: bytes) -> Iterable[bytes | memoryview]:
        try:
            dgram = unpack_datagram(unit)
        except DatagramError as exc:
            self.responder.reject("malformed_datagram", str(exc))
            return ()
        self.gaps.observe(dgram.session, dgram.sequence, dgram.count)
        return dgram.messages

    def counters(self) -> dict[str, Any]:
        source = "kernel-software" if self.kernel_stamps else "user-space"
        return {**super().counters(), **self.counts, "sync_timestamp_source": source,
                "rig_sequence": self.gaps.counters()}  # fmt: skip


FEED_UDP_KEYS = ("target_host", "target_port", "bind_host", "bind_port", "ready_path", "misbehave")


def main(cfg: ConfigReader, ctx: DeviceContext) -> None:
    plan = read_feed_plan(cfg, batch_key="ticks_per_datagram", extra_keys=FEED_UDP_KEYS)
    session = cfg.get_str("session", max_len=SESSION_SIZE)
    if not session.isascii():
        raise cfg.error("session", f"{session!r} must be ASCII")
    target = (cfg.get_str("target_host"), cfg.get_int("target_port", min_value=1, max_value=65535))
    bind = (cfg.get_str("bind_host", "0.0.0.0"),
            cfg.get_int("bind_port", 0, min_value=0, max_value=65535))  # fmt: skip
    ready = Path(cfg.get_str("ready_path")) if cfg.has("ready_path") else None
    to_rig, to_device = read_impairment(cfg)
    rig = RealtimeClock()
    epoch = rig.now_ns() if plan.await_arm else plan.start_at_ns  # drift counts from here
    dev = device_clock(cfg.get_table("clock"), rig, epoch_ns=epoch)
    open_quotes(plan, cfg)  # venue, asset and market checked before anything is sent
    if to_rig is not None or to_device is not None:  # releases on time need a fine timer
        slack, slack_error = set_timer_slack(1)
        ctx.stats.update(timer_slack_ns=slack, timer_slack_error=slack_error)
    misbehave = read_misbehave(cfg, FEED_SWITCHES)
    tx = UdpDeviceTransmitter(session, target, bind=bind)
    misbehave.transmitter(tx, "udp")
    misbehave.ticks(tx)
    if to_rig is not None:
        tx.impair(to_rig, rig)
    responder = misbehave.responder(SyncResponder(plan.device_id, dev))
    inbound = UdpRigInbound(tx, responder, rig, to_device=to_device)
    host, port = tx.sock.getsockname()[:2]
    ctx.stats.update(device_id=plan.device_id, venue_id=plan.venue_id, session=session,
                     address=[host, port], clock_truth=clock_truth(dev),
                     misbehave=misbehave.on())  # fmt: skip
    try:
        if ready is not None:
            write_json_atomic(ready, {"host": host, "port": port})
        schedule = serve_feed(plan, cfg, tx, inbound, rig, dev, ctx)
        inbound.drain()
        if tx.impaired is not None and schedule is not None:
            tx.impaired.flush(schedule.wait_until)  # the rest stays pending on a stop
    finally:
        tx.close()
        ctx.stats.update(tx.counters())
        ctx.stats.update(inbound.counters())
        if to_rig is not None or to_device is not None:
            ctx.stats["impairment"] = inbound.impairment_counters()


if __name__ == "__main__":
    sys.exit(run_device(main, "feed_udp"))

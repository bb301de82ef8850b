"""Emulated UDP feed device: quotes as TICK datagrams to the rig on an open-loop schedule.

``python -m arbsphere.firmware_interfaces.emulators.feed_udp CONFIG.json`` with::

    {device_id, venue_id, asset_id, session (<= 10 chars), target_host, target_port,
     market: {MarketConfig fields}, start_at_ns, n_ticks | duration_s,
     ticks_per_datagram (1), heartbeat_interval_ms (100), late_tolerance_us (200),
     clock: {offset_ns, drift_ppm, steps}, stats_path}

Every device message (TICK and HEARTBEAT) takes the next device message sequence number,
starting at 1; a datagram's header sequence is that of its first message (MoldUDP64 style).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence

from arbsphere.clock import RealtimeClock
from arbsphere.errors import LinkError
from arbsphere.firmware_interfaces.emulators.device_main import (
    ConfigReader,
    DeviceContext,
    device_clock,
    run_device,
)
from arbsphere.firmware_interfaces.emulators.schedule import (
    OpenLoopSchedule,
    open_quotes,
    read_feed_plan,
    run_feed,
)
from arbsphere.firmware_interfaces.udp_datagram import SESSION_SIZE, pack_datagram, session_id


class UdpDeviceTransmitter:
    """Device side of a UDP feed link: datagrams carrying the device message sequence."""

    def __init__(
        self, session: bytes | str, target: tuple[str, int], *, first_sequence: int = 1
    ) -> None:
        self.session = session_id(session)
        self.target = target
        self.next_sequence = first_sequence
        self.datagrams_sent = 0
        self.messages_sent = 0
        self.bytes_sent = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, messages: Sequence[bytes]) -> None:
        """One datagram with ``messages``; the sequence advances by their count."""
        dgram = pack_datagram(self.session, self.next_sequence, messages)
        self.send_raw(dgram)
        self.next_sequence += len(messages)
        self.messages_sent += len(messages)

    def send_raw(self, data: bytes) -> None:
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
        self._sock.close()


def main(cfg: ConfigReader, ctx: DeviceContext) -> None:
    plan = read_feed_plan(
        cfg, batch_key="ticks_per_datagram", extra_keys=("target_host", "target_port")
    )
    session = cfg.get_str("session", max_len=SESSION_SIZE)
    if not session.isascii():
        raise cfg.error("session", f"{session!r} must be ASCII")
    target = (cfg.get_str("target_host"), cfg.get_int("target_port", min_value=1, max_value=65535))
    rig = RealtimeClock()
    dev = device_clock(cfg.get_table("clock"), rig, epoch_ns=plan.start_at_ns)
    quotes = open_quotes(plan, cfg)
    tx = UdpDeviceTransmitter(session, target)
    schedule = OpenLoopSchedule(
        plan.start_at_ns,
        rig,
        ctx.waker.sleep,
        lambda: ctx.stop.is_set,
        late_tolerance_ns=plan.late_tolerance_ns,
    )
    ctx.stats.update(device_id=plan.device_id, venue_id=plan.venue_id, session=session)
    try:
        run_feed(plan, quotes, tx, schedule, dev, ctx.stats)
    finally:
        ctx.stats.update(tx.counters())
        tx.close()


if __name__ == "__main__":
    sys.exit(run_device(main, "feed_udp"))

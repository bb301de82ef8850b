"""A minimal feed device on the ArbSphere Python SDK: quotes as TICKs over UDP or a serial
port, on the schedule the rig arms it with.

Run it as an external device (the rig does not start it; the campaign says ``device =
"hardware"``)::

    python examples/python_feed_device.py feed.json

with ``feed.json``::

    {"device_id": 10, "venue_id": 0, "n_assets": 1, "session": "PYFEED",
     "target_host": "127.0.0.1", "target_port": 47311}

``target_host`` / ``target_port``: where the rig listens (the venue's ``bind_host`` /
``bind_port`` in the campaign; ``bind_host`` / ``bind_port``: this device's socket, default
any address, an ephemeral port). On a serial link instead: ``serial_port`` (a device path) or
``serial_fd`` (an inherited descriptor, e.g. a pty master whose slave the campaign names as
its ``port``), with ``baudrate`` (921600). Optional: ``n_assets`` (1), ``session`` (UDP),
``clock_offset_ns`` (start the device clock this far from the host's, to watch the clock sync
find it), ``stats_path`` (default ``<config stem>.stats.json``). It runs until SIGTERM /
Ctrl-C and writes its counters to ``stats_path``.

What it does, all of it through :mod:`arbsphere.sdk`:

* idles with a HEARTBEAT every 100 ms and answers the rig's clock sync (:class:`DeviceLoop`);
* answers ARM with ARMED: OK for its own venue and number of assets, REFUSED otherwise
  (:class:`Capabilities`, checked by the SDK's :class:`StartHandshake`);
* sends tick ``k`` of the armed schedule at ``start + k * tick_interval`` (the start converted
  to its clock with the offset the sync exchange taught it, or on START), open loop: a tick that
  is late goes out at once, never pushing the later ones back; each TICK carries its
  ``intended_send_ns`` and its ``send_ns`` (stamped right before the write);
* idles again after the schedule, ready for the next ARM.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from arbsphere.sdk import (
    PRICE_SCALE,
    Capabilities,
    ConfigReader,
    DeviceClock,
    DeviceContext,
    DeviceLink,
    DeviceLoop,
    MsgType,
    RealtimeClock,
    Schedule,
    SerialDeviceLink,
    UdpDeviceLink,
    new_record,
    run_device,
)

CONFIG_KEYS = ("device_id", "venue_id", "n_assets", "session", "target_host", "target_port",
               "bind_host", "bind_port", "serial_port", "serial_fd", "baudrate",
               "clock_offset_ns", "stats_path")  # fmt: skip
#: at most this many overdue ticks go out in one datagram
MAX_BATCH = 32


class FeedDevice(DeviceLoop):
    """The feed: the SDK's loop does heartbeats, clock sync and the handshake; this class runs
    the armed schedule in :meth:`poll`."""

    def __init__(self, link: DeviceLink, cfg: ConfigReader, ctx: DeviceContext) -> None:
        venue_id = cfg.get_int("venue_id", min_value=0, max_value=0xFFFF)
        n_assets = cfg.get_int("n_assets", 1, min_value=1, max_value=0xFFFF)
        device_id = cfg.get_int("device_id", min_value=0, max_value=2**32 - 1)
        clock = DeviceClock(RealtimeClock(), offset_ns=cfg.get_int("clock_offset_ns", 0))
        super().__init__(link, device_id, ctx, clock=clock,
                         capabilities=Capabilities(venue_id, n_assets))  # fmt: skip
        self.n_assets = n_assets
        self.ticks = np.repeat(new_record(MsgType.TICK, device_id), MAX_BATCH)
        self.ticks["venue_id"] = venue_id
        self.schedule: Schedule | None = None
        self.start_host_ns = 0  # tick 0's due time on the host clock
        self.k = 0  # the next tick of the running schedule
        self.ticks_sent = 0

    def heartbeat_seq(self) -> int:
        return self.k  # a HEARTBEAT carries the next tick's device_seq

    def poll(self, now_ns: int) -> int | None:
        assert self.start is not None  # capabilities given: the SDK keeps the handshake
        if self.schedule is None:
            due = self.start.start_rig_ns()  # None until armed (and an offset or START known)
            if due is None or now_ns < due:
                return due
            self.schedule, self.start_host_ns, self.k = self.start.begin(due), due, 0
        s = self.schedule
        while self.k < s.n_ticks and self._due(self.k) <= now_ns:
            self._send_due(s, now_ns)
        if self.k < s.n_ticks:
            return self._due(self.k)
        self.start.finish()  # idle again until the next ARM
        self.schedule = None
        return None

    def _due(self, k: int) -> int:
        assert self.schedule is not None
        return self.start_host_ns + k * self.schedule.tick_interval_ns

    def _send_due(self, s: Schedule, now_ns: int) -> None:
        """The ticks due by ``now_ns`` (up to :data:`MAX_BATCH`) in one datagram."""
        n = 0
        while n < MAX_BATCH and self.k + n < s.n_ticks and self._due(self.k + n) <= now_ns:
            k = self.k + n
            mid = 100 * PRICE_SCALE + (k * 7919 % 200 - 100) * PRICE_SCALE // 1000
            t = self.ticks[n]
            t["asset_id"] = k % self.n_assets
            t["device_seq"] = k
            t["intended_send_ns"] = self.clock.device_time(self._due(k))
            t["bid_px"], t["ask_px"] = mid - PRICE_SCALE // 100, mid + PRICE_SCALE // 100
            t["bid_size"] = t["ask_size"] = 10
            n += 1
        self.send_stamped(list(self.ticks[:n]), "send_ns")
        self.k += n
        self.ticks_sent += n

    def counters(self) -> dict[str, object]:
        return {**super().counters(), "ticks_sent": self.ticks_sent}


def open_link(cfg: ConfigReader) -> DeviceLink:
    """The UDP socket or the serial port the config names."""
    kind = cfg.exactly_one("target_host", "serial_port", "serial_fd")
    if kind != "target_host":
        port = cfg.get_str(kind) if kind == "serial_port" else cfg.get_int(kind, min_value=0)
        return SerialDeviceLink(port, cfg.get_int("baudrate", 921_600, min_value=1))
    target = (cfg.get_str("target_host"), cfg.get_int("target_port", min_value=1, max_value=65535))
    bind = (cfg.get_str("bind_host", "0.0.0.0"),
            cfg.get_int("bind_port", 0, min_value=0, max_value=65535))  # fmt: skip
    return UdpDeviceLink(cfg.get_str("session", "PYFEED", max_len=10), target=target, bind=bind)


def main(cfg: ConfigReader, ctx: DeviceContext) -> None:
    cfg.only(CONFIG_KEYS)
    link = open_link(cfg)
    try:
        FeedDevice(link, cfg, ctx).run()  # the whole config is checked before any send
    finally:
        link.close()


if __name__ == "__main__":
    stem = Path(sys.argv[1]).with_suffix("") if len(sys.argv) == 2 else Path("feed")
    sys.exit(run_device(main, "python_feed_device", stats_default=f"{stem}.stats.json"))

"""Emulated serial feed device: quotes as COBS/CRC-32C frames on a pty master or serial port.

``python -m arbsphere.firmware_interfaces.emulators.feed_serial CONFIG.json`` with the feed keys
of :mod:`.feed_udp` except the target: ``master_fd`` (a pty master inherited from the parent via
``Popen(pass_fds=...)``) or ``port`` (a path opened with pyserial, ``baudrate`` default 921600).
``ticks_per_write`` (default 1) frames go out in one write; every message is its own frame.
``session`` is accepted for symmetry with the UDP feed and only reported in the stats.
"""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable, Sequence

import serial

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
from arbsphere.firmware_interfaces.serial_framing import encode_frame

#: a write that makes no progress for this long fails the device (the rig stopped reading)
WRITE_STALL_S = 2.0


class SerialDeviceTransmitter:
    """Device side of a serial feed link: one frame per message, one write per send().

    Writes to a non-blocking fd and waits for writability in ``select()``, so a stalled reader
    never hangs the device: after :data:`WRITE_STALL_S` without progress the send fails, and
    once ``stop()`` is true the rest of a blocked write is dropped and counted
    (``bytes_unsent``). The fd is made non-blocking;
    for an inherited pty master that flag is shared with the parent, which only holds it open.
    """

    def __init__(self, fd: int, *, name: str = "serial", stop: Callable[[], bool] | None = None):
        self.fd = fd
        self.name = name
        self.stop = stop or (lambda: False)
        os.set_blocking(fd, False)
        self.frames_sent = 0
        self.writes = 0
        self.bytes_sent = 0
        self.bytes_unsent = 0

    def send(self, messages: Sequence[bytes]) -> None:
        """Frame each message and write them all at once."""
        self.send_raw(b"".join(encode_frame(m) for m in messages))
        self.frames_sent += len(messages)

    def send_raw(self, data: bytes) -> None:
        """Write ``data`` as is (fault injection: corrupted frames, line noise)."""
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                if self.stop():  # shutting down while the reader is gone: give up quietly
                    self.bytes_unsent += len(view)
                    return
                if not select.select([], [self.fd], [], WRITE_STALL_S)[1]:
                    raise LinkError(
                        f"{self.name}: no byte accepted for {WRITE_STALL_S} s "
                        f"({len(view)} of {len(data)} unsent); is the rig reading?"
                    ) from None
                continue
            except OSError as exc:
                raise LinkError(f"{self.name}: write failed: {exc}") from exc
            view = view[n:]
        self.writes += 1
        self.bytes_sent += len(data)

    def counters(self) -> dict[str, int]:
        return {"frames_sent": self.frames_sent, "writes": self.writes,
                "bytes_sent": self.bytes_sent, "bytes_unsent": self.bytes_unsent}  # fmt: skip

    def close(self) -> None:
        """Leaves the fd open: its owner (the caller or the serial port) closes it."""


def main(cfg: ConfigReader, ctx: DeviceContext) -> None:
    plan = read_feed_plan(
        cfg, batch_key="ticks_per_write", extra_keys=("master_fd", "port", "baudrate")
    )
    session = cfg.get_str("session", "serial", max_len=10)
    which = cfg.exactly_one("master_fd", "port")
    rig = RealtimeClock()
    dev = device_clock(cfg.get_table("clock"), rig, epoch_ns=plan.start_at_ns)
    quotes = open_quotes(plan, cfg)
    port: serial.Serial | None = None
    if which == "master_fd":
        fd = cfg.get_int("master_fd", min_value=0)
        if cfg.has("baudrate"):
            raise cfg.error("baudrate", "only valid with 'port' (a pty has no line speed)")
        try:
            os.fstat(fd)
        except OSError as exc:
            raise cfg.error("master_fd", f"fd {fd} is not open in this process: {exc}") from exc
        where = f"pty master fd {fd}"
    else:
        path = cfg.get_str("port")
        baud = cfg.get_int("baudrate", 921600, min_value=1)
        try:
            port = serial.Serial(path, baud, timeout=0, write_timeout=0)
        except (serial.SerialException, ValueError) as exc:
            raise LinkError(f"cannot open serial port {path!r} at {baud} baud: {exc}") from exc
        fd = port.fileno()
        where = f"serial port {path}"
    stop = lambda: ctx.stop.is_set  # noqa: E731
    tx = SerialDeviceTransmitter(fd, name=where, stop=stop)
    schedule = OpenLoopSchedule(
        plan.start_at_ns, rig, ctx.waker.sleep, stop, late_tolerance_ns=plan.late_tolerance_ns
    )
    ctx.stats.update(device_id=plan.device_id, venue_id=plan.venue_id, session=session,
                     link=where)  # fmt: skip
    try:
        run_feed(plan, quotes, tx, schedule, dev, ctx.stats)
    finally:
        ctx.stats.update(tx.counters())
        if port is not None:
            port.close()


if __name__ == "__main__":
    sys.exit(run_device(main, "feed_serial"))

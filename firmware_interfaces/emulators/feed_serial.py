"""Emulated serial feed device: quotes as COBS/CRC-32C frames on a pty master or serial port.

``python -m arbsphere.firmware_interfaces.emulators.feed_serial CONFIG.json`` with the feed keys
of :mod:`.feed_udp` except the addresses (``target_*``, ``bind_*``; ``ready_path`` receives
``{}`` before the first send):
``master_fd`` (a pty master inherited from the parent via ``Popen(pass_fds=...)``) or ``port``
(a path opened with pyserial, ``baudrate`` default 921600).
``ticks_per_write`` (default 1) frames go out in one write; every message is its own frame.
``session`` is accepted for symmetry with the UDP feed and only reported in the stats.

Clock sync: the rig writes SYNC, FOLLOW_UP and DELAY_RESP as COBS/CRC-32C frames (one message
each) into the link; the feed reads the fd non-blocking while its schedule waits
(:class:`~.schedule.ServicedSleep`), deframes with
:class:`~arbsphere.firmware_interfaces.serial_framing.FrameDecoder` and answers each accepted
SYNC with a DELAY_REQ in its own frame and write. ``t2`` is a user-space stamp right after the
read that completed the SYNC frame. While nobody holds the pty slave open (before the rig opens
it, after it closed it) the master reads EIO; the feed then looks again every
:data:`HANGUP_RETRY_S` instead of waiting on the fd (counted in ``rig_hangups``).

``impairment: {to_rig: {ImpairmentSpec fields}, to_device: {...}}`` (optional): ``to_rig``
delays, drops, duplicates or reorders whole writes (an :class:`~.impairment.ImpairedTransmitter`
released on time while waiting); ``to_device`` holds received rig frames and processes them at
their release time, which then stands for their arrival (``t2``).
"""

from __future__ import annotations

import errno
import os
import select
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import serial

from arbsphere.clock import Clock, RealtimeClock
from arbsphere.errors import LinkError
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
    Transmitter,
    open_quotes,
    read_feed_plan,
    stamp_messages,
)
from arbsphere.firmware_interfaces.emulators.sync_responder import (
    RigInbound,
    Unit,
    read_impairment,
)
from arbsphere.firmware_interfaces.serial_framing import FrameDecoder, encode_frame
from arbsphere.firmware_interfaces.sync_responder import SyncResponder
from arbsphere.runtime import write_json_atomic

#: a write that makes no progress for this long fails the device (the rig stopped reading)
WRITE_STALL_S = 2.0
#: bytes per read; reads per wake-up at most
READ_CHUNK = 4096
MAX_READS = 16
#: while the rig end is closed (pty master reads EIO), look again this often
HANGUP_RETRY_S = 0.02
#: FrameDecoder counter -> reject reason
_FRAME_REJECTS = (("crc_errors", "crc_error"), ("cobs_errors", "malformed_frame"),
                  ("short_frames", "malformed_frame"), ("oversize", "malformed_frame"))  # fmt: skip


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

    def send(self, messages: Sequence[bytes], at_ns: int | None = None) -> None:
        """Frame each message and write them all at once (now: ``at_ns`` is for a stage that
        holds units)."""
        self.send_raw(b"".join(encode_frame(m) for m in messages))
        self.frames_sent += len(messages)

    def send_stamped(
        self, messages: Sequence[bytes | bytearray], stamp_offset: int, stamp: Callable[[], int]
    ) -> None:
        """Stamp, then frame and write (the framing depends on the stamped bytes)."""
        self.send(stamp_messages(messages, stamp_offset, stamp()))

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


def read_device_end(fd: int, what: str) -> bytes | None:
    """One non-blocking read of a device end (pty master or serial port): the bytes, ``b""``
    when nobody is at the rig end right now (EOF, or a pty's EIO once its slave is closed), or
    None when nothing is waiting. Any other error is a LinkError naming ``what``."""
    try:
        return os.read(fd, READ_CHUNK)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno != errno.EIO:
            raise LinkError(f"{what} failed: {exc}") from exc
        return b""


class SerialRigInbound(RigInbound):
    """Rig frames read from the link fd; each valid frame is one message."""

    def __init__(
        self,
        fd: int,
        responder: SyncResponder,
        answer: Transmitter,
        clock: Clock,
        *,
        name: str = "serial",
        to_device: ImpairmentSpec | None = None,
        to_rig: ImpairedTransmitter | None = None,
    ) -> None:
        super().__init__(responder, answer, clock, to_device=to_device, to_rig=to_rig)
        self.fd = fd
        self.name = name
        self.decoder = FrameDecoder()
        self._errors = dict.fromkeys((k for k, _ in _FRAME_REJECTS), 0)
        self._retry_ns: int | None = None  # set while the rig end is closed
        self.hangups = 0
        os.set_blocking(fd, False)

    def fileno(self) -> int | None:
        if self._retry_ns is not None:
            if self.clock.now_ns() < self._retry_ns:
                return None
            self._retry_ns = None
        return self.fd

    def next_due_ns(self) -> int | None:
        due = super().next_due_ns()
        if self._retry_ns is not None and (due is None or self._retry_ns < due):
            return self._retry_ns
        return due

    def read_units(self) -> list[Unit]:
        out: list[Unit] = []
        for _ in range(MAX_READS):
            data = read_device_end(self.fd, f"{self.name}: read")
            if data is None:
                break
            if not data:  # EIO or EOF: nobody at the rig end right now
                self.hangups += self._retry_ns is None
                self._retry_ns = self.clock.now_ns() + round(HANGUP_RETRY_S * 1e9)
                break
            rx = self.clock.now_ns()
            out.extend((payload, rx, False) for payload in self.decoder.feed(data))
            self._count_frame_errors()
            if len(data) < READ_CHUNK:
                break
        return out

    def _count_frame_errors(self) -> None:
        dec = self.decoder
        for key, reason in _FRAME_REJECTS:
            n = getattr(dec, key) - self._errors[key]
            if n:
                self._errors[key] += n
                err = dec.last_error
                self.responder.reject(reason, str(err) if err else key, n)

    def messages(self, unit: bytes) -> Iterable[bytes | memoryview]:
        return (unit,)

    def counters(self) -> dict[str, Any]:
        return {**super().counters(), "rig_frames": self.decoder.counters(),
                "rig_hangups": self.hangups}  # fmt: skip


def open_device_end(cfg: ConfigReader) -> tuple[int, serial.Serial | None, str]:
    """The device's end of a serial link: ``master_fd`` (an inherited pty master) or ``port``
    (a path opened with pyserial at ``baudrate``). Returns (fd, the port to close or None,
    a description for messages)."""
    which = cfg.exactly_one("master_fd", "port")
    if which == "master_fd":
        fd = cfg.get_int("master_fd", min_value=0)
        if cfg.has("baudrate"):
            raise cfg.error("baudrate", "only valid with 'port' (a pty has no line speed)")
        try:
            os.fstat(fd)
        except OSError as exc:
            raise cfg.error("master_fd", f"fd {fd} is not open in this process: {exc}") from exc
        return fd, None, f"pty master fd {fd}"
    path = cfg.get_str("port")
    baud = cfg.get_int("baudrate", 921600, min_value=1)
    try:
        port = serial.Serial(path, baud, timeout=0, write_timeout=0)
    except (serial.SerialException, ValueError) as exc:
        raise LinkError(f"cannot open serial port {path!r} at {baud} baud: {exc}") from exc
    return port.fileno(), port, f"serial port {path}"


def main(cfg: ConfigReader, ctx: DeviceContext) -> None:
    plan = read_feed_plan(
        cfg, batch_key="ticks_per_write",
        extra_keys=("master_fd", "port", "baudrate", "ready_path", "misbehave"),
    )  # fmt: skip
    ready = Path(cfg.get_str("ready_path")) if cfg.has("ready_path") else None
    session = cfg.get_str("session", "serial", max_len=10)
    to_rig, to_device = read_impairment(cfg)
    rig = RealtimeClock()
    epoch = rig.now_ns() if plan.await_arm else plan.start_at_ns  # drift counts from here
    dev = device_clock(cfg.get_table("clock"), rig, epoch_ns=epoch)
    open_quotes(plan, cfg)  # venue, asset and market checked before anything is sent
    fd, port, where = open_device_end(cfg)
    if to_rig is not None or to_device is not None:  # releases on time need a fine timer
        slack, slack_error = set_timer_slack(1)
        ctx.stats.update(timer_slack_ns=slack, timer_slack_error=slack_error)
    stop = lambda: ctx.stop.is_set  # noqa: E731
    misbehave = read_misbehave(cfg, FEED_SWITCHES)
    wire = SerialDeviceTransmitter(fd, name=where, stop=stop)
    misbehave.transmitter(wire, "serial")
    impaired = None if to_rig is None else ImpairedTransmitter(wire, to_rig, rig)
    tx: Transmitter = wire if impaired is None else impaired
    misbehave.ticks(tx)
    responder = misbehave.responder(SyncResponder(plan.device_id, dev))
    inbound = SerialRigInbound(fd, responder, tx, rig, name=where,
                               to_device=to_device, to_rig=impaired)  # fmt: skip
    ctx.stats.update(device_id=plan.device_id, venue_id=plan.venue_id, session=session,
                     link=where, clock_truth=clock_truth(dev),
                     misbehave=misbehave.on())  # fmt: skip
    try:
        if ready is not None:
            write_json_atomic(ready, {})
        schedule = serve_feed(plan, cfg, tx, inbound, rig, dev, ctx)
        inbound.drain()
        if impaired is not None and schedule is not None:
            impaired.flush(schedule.wait_until)  # the rest stays pending on a stop
    finally:
        tx.close()
        ctx.stats.update(wire.counters())
        ctx.stats.update(inbound.counters())
        if to_rig is not None or to_device is not None:
            ctx.stats["impairment"] = inbound.impairment_counters()
        if port is not None:
            port.close()


if __name__ == "__main__":
    sys.exit(run_device(main, "feed_serial"))

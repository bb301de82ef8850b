"""Emulated serial broker device: ORDERs in and ACKs out as COBS/CRC-32C frames on a pty master
or serial port, decided as :mod:`.broker_udp` decides them (the same
:class:`~.broker_udp.BrokerDevice` and :class:`~.fill_policy.FillPolicy`).

``python -m arbsphere.firmware_interfaces.emulators.broker_serial CONFIG.json`` with::

    {device_id, master_fd (a pty master inherited via Popen(pass_fds=...)) or port (a path
     opened with pyserial, baudrate default 921600), ready_path (receives {} once the device
     is up), fill_mode ("full" | "mixed"), fills: {reject, partial, late, late_ms, seed}
     (mixed only), clock: {offset_ns, drift_ppm}, stats_path}

Every frame is one device message. ``device_rx_ns`` is a user-space stamp right after the read
that completed the frame, on the device clock; the ACKs of the ORDERs of one read go out in one
write, one frame each (those held late when due, each read's in one write); ``device_tx_ns`` =
device clock just before the write. Malformed frames are counted (``rig_frames``) and not
answered; malformed orders as in :mod:`.broker_udp`.

Clock sync on the same link (:mod:`.sync_responder`): SYNC, FOLLOW_UP and DELAY_RESP frames from
the rig; each accepted SYNC (``t2`` = its read stamp) is answered with a DELAY_REQ in its own
frame and write right after the read's ACKs, ``t3`` stamped as the last thing before the write.
While nobody holds the pty slave open (before the rig opens it, after it closed it) the master
reads EIO; the device then looks again every :data:`~.feed_serial.HANGUP_RETRY_S`. Runs until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import select
import sys
from pathlib import Path

from arbsphere.clock import RealtimeClock
from arbsphere.firmware_interfaces.device_main import (
    ConfigReader,
    DeviceContext,
    clock_truth,
    device_clock,
    run_device,
)
from arbsphere.firmware_interfaces.emulators.broker_udp import BrokerDevice, read_fill_policy
from arbsphere.firmware_interfaces.emulators.feed_serial import (
    HANGUP_RETRY_S,
    MAX_READS,
    READ_CHUNK,
    SerialDeviceTransmitter,
    open_device_end,
    read_device_end,
)
from arbsphere.firmware_interfaces.emulators.misbehave import BROKER_SWITCHES, read_misbehave
from arbsphere.firmware_interfaces.serial_framing import FrameDecoder
from arbsphere.firmware_interfaces.sync_responder import (
    T3_OFFSET,
    PendingDelayReq,
    SyncResponder,
)
from arbsphere.runtime import write_json_atomic

BROKER_KEYS = (
    "device_id", "master_fd", "port", "baudrate", "ready_path", "fill_mode", "fills", "clock",
    "stats_path", "misbehave",
)  # fmt: skip


def _send_delay_req(
    wire: SerialDeviceTransmitter, req: PendingDelayReq, rig: RealtimeClock
) -> None:
    """The DELAY_REQ in its own frame and write, ``t3`` read once the frame is about to go."""
    wire.send_stamped([req.template()], T3_OFFSET, lambda: req.stamp(rig.now_ns()))


def main(cfg: ConfigReader, ctx: DeviceContext) -> None:
    cfg.only(BROKER_KEYS)
    device_id = cfg.get_int("device_id", min_value=0, max_value=2**32 - 1)
    policy = read_fill_policy(cfg)
    ready = Path(cfg.get_str("ready_path")) if cfg.has("ready_path") else None
    rig = RealtimeClock()
    dev = device_clock(cfg.get_table("clock"), rig, epoch_ns=rig.now_ns())
    fd, port, where = open_device_end(cfg)
    misbehave = read_misbehave(cfg, BROKER_SWITCHES)
    broker = BrokerDevice(device_id, b"", dev, misbehave.responder(SyncResponder(device_id, dev)),
                          policy)  # fmt: skip
    misbehave.broker(broker, "serial")
    stop = lambda: ctx.stop.is_set  # noqa: E731
    wire = SerialDeviceTransmitter(fd, name=where, stop=stop)
    misbehave.transmitter(wire, "serial")
    ctx.stats["misbehave"] = misbehave.on()
    decoder = FrameDecoder()
    hangups = 0
    retry_ns: int | None = None  # set while the rig end is closed: look again then
    ctx.stats.update(device_id=device_id, link=where, timestamp_source="user-space",
                     first_rx_ns=None, last_rx_ns=None, clock_truth=clock_truth(dev))  # fmt: skip
    try:
        if ready is not None:
            write_json_atomic(ready, {})
        while not ctx.stop.is_set:
            now = rig.now_ns()
            due = broker.next_due_ns()
            wait = 1.0 if due is None else max(0.0, (due - dev.now_ns()) / 1e9)
            if retry_ns is not None and now >= retry_ns:
                retry_ns = None
            watch = [ctx.waker.fileno()]
            if retry_ns is None:
                watch.append(fd)
            else:
                wait = min(wait, (retry_ns - now) / 1e9)
            readable = select.select(watch, [], [], min(wait, 1.0))[0]
            if ctx.waker.fileno() in readable:
                ctx.waker.drain()
            late = broker.take_due(dev.now_ns())
            if late is not None:
                wire.send(broker.ack_messages(late))
            if fd not in readable:
                continue
            for _ in range(MAX_READS):
                data = read_device_end(fd, f"broker device: read from {where}")
                if data is None:
                    break
                if not data:  # EIO or EOF: nobody at the rig end right now
                    hangups += retry_ns is None
                    retry_ns = rig.now_ns() + round(HANGUP_RETRY_S * 1e9)
                    break
                rx_rig = rig.now_ns()
                rx_ns = dev.device_time(rx_rig)
                if ctx.stats["first_rx_ns"] is None:
                    ctx.stats["first_rx_ns"] = rx_ns
                ctx.stats["last_rx_ns"] = rx_ns
                acks = broker.answer_messages(decoder.feed(data), rx_ns, rx_rig_ns=rx_rig)
                if acks is not None:
                    wire.send(broker.ack_messages(acks))
                for req in broker.take_delay_reqs():
                    _send_delay_req(wire, req, rig)
                if len(data) < READ_CHUNK:
                    break
    finally:
        ctx.stats.update(broker.stats())
        ctx.stats.update(wire.counters())
        ctx.stats.update(rig_frames=decoder.counters(), rig_hangups=hangups)
        if port is not None:
            port.close()


if __name__ == "__main__":
    sys.exit(run_device(main, "broker_serial"))

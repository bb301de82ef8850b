"""The floor for the pipeline benchmark: a bare ZeroMQ relay over the same hops.

Same devices (the real feed and broker emulators), same rig-side links (UDP with kernel RX
stamps, serial pty with COBS/CRC-32C deframing), same ZeroMQ hops and message sizes as the
pipeline — but no decoding, no solving, no merging:

    feed devices -> relay_in (link -> PUSH, one frame padded to the IR sizes)
                 -> relay_mid (PULL -> PUSH, padded to a 2-leg PlanDelta)
                 -> relay_out (PULL -> one ORDER per leg to the broker device, ACKs back,
                               and one ExecutionReport-sized message per ACK back to relay_mid,
                               the ACKs of one datagram in one frame, as the broker adapter does)

Which ticks go past relay_mid, and with how many legs, is the mid's ``forward`` file: the
(venue, device sequence, legs) of every tick the pipeline traded on in the same run, so every
hop carries the pipeline's own traffic. Without it every tick is forwarded with one leg (the
"every tick" floor: 4000 orders/s through the broker side instead of the pipeline's ~100).
The relay's "tick to trade" (intended send time -> broker device receive of the first order)
is measured on every forwarded tick.
Hop stamps (rig receive and send at relay_in, receive and send at relay_mid, receive and
order send at relay_out) give the floor stage by stage. Run with
``python -m benchmarks.bare_relay CONFIG.json`` (a :class:`RelayConfig`, its ``role``: in, mid,
out); driven by ``benchmarks.bench_pipeline``.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zmq

from arbsphere.adapters.backends import BrokerLinkSpec, FeedLinkSpec
from arbsphere.clock import RealtimeClock
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.runtime import StopFlag, read_role_config, write_json_atomic
from arbsphere.tracebuf import TraceBuffer

# Pipeline message sizes: LocalArbProblem + SharedSignals (1 asset), PlanDelta with 2 legs.
PROBLEM_BYTES = 32 + 32 + 56
SIGNALS_BYTES = 32 + 16 + 56
PLAN_BYTES = 32 + 32 + 2 * 48
REPORT_BYTES = 32 + 72  # an ExecutionReport: envelope + payload
#: first byte of a report frame on relay_mid's inbound socket (a tick frame starts with the
#: TICK's message type, relay_in's payload)
REPORT_MARK = 0
_TICK_FIELDS = dm.TICK_DTYPE.fields
assert _TICK_FIELDS is not None  # a structured dtype
TICK_INTENDED_OFFSET = _TICK_FIELDS["intended_send_ns"][1]
TICK_SEQ_OFFSET = _TICK_FIELDS["device_seq"][1]
TICK_VENUE_OFFSET = _TICK_FIELDS["venue_id"][1]
TICK_SEND_OFFSET = _TICK_FIELDS["send_ns"][1]
# Hop stamps ride in the padding (past the 72-byte TICK): relay_in's rig receive (the link's
# stamp) and send, relay_mid's receive and send. Same bytes on the wire as without them.
IN_STAMPS_OFFSET = PROBLEM_BYTES - 16
MID_STAMPS_OFFSET = PROBLEM_BYTES
LEGS_OFFSET = PROBLEM_BYTES + 16
STAMPS = struct.Struct("<qq")
#: ``forward`` file rows: the ticks to pass on and their PlanDelta's leg count
FORWARD_DTYPE = np.dtype([("venue", "<u2"), ("seq", "<u8"), ("legs", "<u2")])


@dataclass(frozen=True)
class RelayConfig:
    """One relay role's configuration (``role``: which hop; each reads its own fields)."""

    role: Literal["in", "mid", "out"]
    name: str
    out_dir: str
    #: in: the feed device's link, and relay_mid's inbound endpoint
    feed: FeedLinkSpec | None = None
    next: str = ""
    #: mid: its two endpoints (bound) and the forward file (None: every tick)
    bind: str = ""
    out: str = ""
    forward: str | None = None
    #: out: the broker device's link, relay_mid's outbound and its inbound (the reports)
    broker: BrokerLinkSpec | None = None
    prev: str = ""
    reports_to: str = ""


RELAY_TRACE_DTYPE = np.dtype(
    [("venue", "<u2"), ("seq", "<u8"), ("intended_ns", "<i8"), ("send_ns", "<i8"),
     ("rx_ns", "<i8"), ("in_tx_ns", "<i8"), ("mid_rx_ns", "<i8"), ("mid_tx_ns", "<i8"),
     ("out_rx_ns", "<i8"), ("order_tx_ns", "<i8"), ("device_rx_ns", "<i8")]
)  # fmt: skip


def relay_in(cfg: RelayConfig, stop: StopFlag) -> None:
    clock = RealtimeClock()
    assert cfg.feed is not None, "relay in: no feed link"
    link = cfg.feed.open(clock)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 1_000_000)
    push.connect(cfg.next)
    ready: dict[str, Any] = {}
    if getattr(link, "address", None) is not None:
        ready["address"] = list(link.address)  # type: ignore[attr-defined]
    write_json_atomic(Path(cfg.out_dir) / f"{cfg.name}.ready.json", ready)
    pad_a = PROBLEM_BYTES  # then SIGNALS_BYTES of zeros: the pipeline's one frame per tick
    try:
        while not stop.is_set:
            for rec in link.receive(timeout_ms=100):
                if rec.payload[0] != dm.MSG_TICK:
                    continue
                frame = bytearray(rec.payload.ljust(pad_a, b"\0")[:pad_a])
                STAMPS.pack_into(frame, IN_STAMPS_OFFSET, rec.rx_ns, clock.now_ns())
                push.send(frame + bytes(SIGNALS_BYTES), copy=True)  # one frame, as the pipeline
    finally:
        link.close()
        push.close(linger=1000)


def forward_table(path: str | None) -> dict[int, int] | None:
    """``(venue << 48) | seq`` -> legs, from a ``forward`` file (None: forward every tick)."""
    if path is None:
        return None
    rows = np.load(path)
    if rows.dtype != FORWARD_DTYPE:
        raise ValueError(f"{path}: forward rows must be {FORWARD_DTYPE}, got {rows.dtype}")
    keys = (rows["venue"].astype(np.uint64) << np.uint64(48)) | rows["seq"]
    return dict(zip(keys.tolist(), rows["legs"].tolist(), strict=True))


def relay_mid(cfg: RelayConfig, stop: StopFlag) -> None:
    clock = RealtimeClock()
    forward = forward_table(cfg.forward)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    pull.bind(cfg.bind)
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 1_000_000)
    push.bind(cfg.out)
    write_json_atomic(
        Path(cfg.out_dir) / f"{cfg.name}.ready.json",
        {"inbound_endpoint": pull.getsockopt_string(zmq.LAST_ENDPOINT),
         "outbound_endpoint": push.getsockopt_string(zmq.LAST_ENDPOINT)},
    )  # fmt: skip
    reports = 0
    try:
        while not stop.is_set:
            if not pull.poll(100):
                continue
            frames = pull.recv_multipart(copy=True)
            rx = clock.now_ns()
            tick = frames[0]
            if tick[0] == REPORT_MARK:  # relay_out's reports: received, as the coordinator
                reports += len(tick) // REPORT_BYTES  # receives the broker's, then dropped
                continue
            legs = 1
            if forward is not None:
                (seq,) = struct.unpack_from("<Q", tick, TICK_SEQ_OFFSET)
                (venue,) = struct.unpack_from("<H", tick, TICK_VENUE_OFFSET)
                legs = forward.get((venue << 48) | seq, 0)
                if not legs:
                    continue
            plan = bytearray(tick[:PROBLEM_BYTES].ljust(PLAN_BYTES, b"\0"))
            struct.pack_into("<H", plan, LEGS_OFFSET, legs)
            STAMPS.pack_into(plan, MID_STAMPS_OFFSET, rx, clock.now_ns())
            push.send(plan, copy=True)
    finally:
        write_json_atomic(Path(cfg.out_dir) / f"{cfg.name}.stats.json", {"reports": reports})
        pull.close(linger=0)
        push.close(linger=1000)


def relay_out(cfg: RelayConfig, stop: StopFlag) -> None:
    clock = RealtimeClock()
    assert cfg.broker is not None, "relay out: no broker link"
    link = cfg.broker.open(clock)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    pull.connect(cfg.prev)
    reports_out = ctx.socket(zmq.PUSH)
    reports_out.setsockopt(zmq.SNDHWM, 1_000_000)
    reports_out.connect(cfg.reports_to)
    report = bytearray(REPORT_BYTES)  # REPORT_MARK first; the order id rides at offset 8
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)
    poller.register(link.fileno(), zmq.POLLIN)
    orders = [dm.new_record(dm.MSG_ORDER, 1) for _ in range(8)]
    for order in orders:
        order["side"] = 1
        order["size_lots"] = 1
    trace = TraceBuffer(RELAY_TRACE_DTYPE)
    pending: dict[int, int] = {}
    write_json_atomic(Path(cfg.out_dir) / f"{cfg.name}.ready.json", {})
    try:
        while not stop.is_set:
            events = dict(poller.poll(100))
            if pull in events:
                msg = pull.recv(copy=True)
                out_rx = clock.now_ns()
                (intended,) = struct.unpack_from("<q", msg, TICK_INTENDED_OFFSET)
                (seq,) = struct.unpack_from("<Q", msg, TICK_SEQ_OFFSET)
                (venue,) = struct.unpack_from("<H", msg, TICK_VENUE_OFFSET)
                (send,) = struct.unpack_from("<q", msg, TICK_SEND_OFFSET)
                rx, in_tx = STAMPS.unpack_from(msg, IN_STAMPS_OFFSET)
                mid_rx, mid_tx = STAMPS.unpack_from(msg, MID_STAMPS_OFFSET)
                (legs,) = struct.unpack_from("<H", msg, LEGS_OFFSET)
                oid = (venue << 48) | (seq << 3)  # leg i: oid | i; the first leg is timed
                raw = []
                for i in range(min(legs, len(orders))):
                    orders[i]["order_id"] = oid | i
                    raw.append(dm.encode(orders[i]))
                tx = link.send_many(raw)
                pending[oid] = trace.n
                trace.append((venue, seq, intended, send, rx, in_tx, mid_rx, mid_tx, out_rx, tx, 0))
            if link.fileno() in events:
                reports = []
                for rec in link.receive(timeout_ms=0):
                    if rec.payload[0] != dm.MSG_ACK:
                        continue
                    _, arr = dm.decode(rec.payload)
                    oid = int(arr[0]["order_id"])
                    row = pending.pop(oid, None)
                    if row is not None:
                        trace.view()[row]["device_rx_ns"] = int(arr[0]["device_rx_ns"])
                    struct.pack_into("<Q", report, 8, oid)
                    reports.append(bytes(report))
                if reports:
                    reports_out.send(b"".join(reports), copy=True)
    finally:
        trace.save(Path(cfg.out_dir) / f"{cfg.name}.trace.npy")
        link.close()
        pull.close(linger=0)
        reports_out.close(linger=1000)


ROLES = {"in": relay_in, "mid": relay_mid, "out": relay_out}


def main() -> None:
    stop = StopFlag().install()
    cfg = read_role_config(RelayConfig, Path(sys.argv[1]))
    ROLES[cfg.role](cfg, stop)


if __name__ == "__main__":
    main()

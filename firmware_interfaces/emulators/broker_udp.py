"""Emulated UDP broker device: every valid ORDER is answered with an ACK (FILL, PARTIAL or
REJECT; now or late) as its :class:`~.fill_policy.FillPolicy` decides.

``python -m arbsphere.firmware_interfaces.emulators.broker_udp CONFIG.json`` with::

    {device_id, bind_host ("127.0.0.1"), bind_port (0 = ephemeral), ready_path (required with
     port 0: receives {"port": N, "host": H} once bound), fill_mode ("full" | "mixed"),
     fills: {reject, partial, late, late_ms, seed} (mixed only), session
     ("BROKER"), clock: {offset_ns, drift_ppm, steps}, stats_path}

On each datagram: ``device_rx_ns`` = the datagram's kernel software receive stamp on the device
clock (a user-space stamp right after the receive where there is none); one ACK per valid
ORDER (status and filled_lots from the fill policy, fill_px = limit_px, order_id echoed), the
ACKs of one datagram that are not held late in one reply datagram to the sender; held ones
are sent when due, each in its own datagram; ``device_tx_ns`` = device clock just before the
send. Malformed datagrams and orders are counted by problem and not answered. Runs until
SIGTERM/SIGINT.

Clock sync on the same socket (:mod:`.sync_responder`): SYNC, FOLLOW_UP and DELAY_RESP from the
rig may come in the order datagrams or in their own. Each accepted SYNC (``t2`` = that receive
stamp) is answered with a DELAY_REQ in its own datagram to the sender, with the next device
sequence, right after the datagram's ACK reply; ``t3`` = device clock just before its send.
"""

from __future__ import annotations

import select
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.clock import Clock, DeviceClock, RealtimeClock
from arbsphere.errors import DecodeError, LinkError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.device_main import (
    ConfigReader,
    DeviceContext,
    clock_truth,
    device_clock,
    run_device,
)
from arbsphere.firmware_interfaces.emulators.fill_policy import FILL_MODES, FillPolicy
from arbsphere.firmware_interfaces.emulators.misbehave import BROKER_SWITCHES, read_misbehave
from arbsphere.firmware_interfaces.emulators.schedule import I64_FIELD
from arbsphere.firmware_interfaces.kernel_timestamps import (
    ANCBUFSIZE,
    enable_rx_software_timestamps,
    kernel_rx_stamp,
)
from arbsphere.firmware_interfaces.sync_responder import (
    T3_OFFSET,
    PendingDelayReq,
    SyncResponder,
)
from arbsphere.firmware_interfaces.udp_datagram import (
    HEADER_SIZE,
    SESSION_SIZE,
    GapDetector,
    pack_datagram,
    session_id,
    unpack_datagram,
)
from arbsphere.runtime import write_json_atomic

MAX_DATAGRAM = 65536
BROKER_KEYS = (
    "device_id", "bind_host", "bind_port", "ready_path", "fill_mode", "fills", "session",
    "clock", "stats_path", "misbehave",
)  # fmt: skip


class BrokerDevice:
    """The broker's decision logic, independent of the socket: orders in, ACK records out.

    With a ``responder``, clock-sync messages go to it and its answers wait in
    :meth:`take_delay_reqs`; without one they count as ``unexpected_types``.
    """

    def __init__(
        self,
        device_id: int,
        session: bytes,
        clock: Clock,
        responder: SyncResponder | None = None,
        policy: FillPolicy | None = None,
    ) -> None:
        self.device_id = device_id
        self.policy = policy or FillPolicy()
        #: ACKs held late: (due on the device clock, ACK record), in due order
        self.held: list[tuple[int, np.ndarray]] = []
        self.session = session
        self.clock = clock
        self.responder = responder
        self._delay_reqs: list[PendingDelayReq] = []
        self.gaps = GapDetector()
        self.next_sequence = 1
        self.last_error = ""
        self.counts = {
            "datagrams_received": 0, "orders_received": 0, "acks_sent": 0, "datagrams_sent": 0,
            "malformed_datagrams": 0, "malformed_orders": 0, "unexpected_types": 0,
            "fills": 0, "partials": 0, "rejects": 0, "held_late": 0,
        }  # fmt: skip
        self._ack = dm.new_record(dm.MSG_ACK, device_id)

    def answer(
        self,
        buf: memoryview,
        rx_ns: int,
        *,
        rx_rig_ns: int | None = None,
        user_stamp: bool = False,
    ) -> np.ndarray | None:
        """ACK records for the valid ORDERs in datagram ``buf`` (device_tx_ns still unset).

        ``rx_ns`` is the arrival on the device clock, ``rx_rig_ns`` the same on the rig clock
        (what the sync responder takes; required when a responder is set).
        """
        self.counts["datagrams_received"] += 1
        try:
            dgram = unpack_datagram(buf)
        except DecodeError as exc:
            self._bad("malformed_datagrams", f"datagram: {exc}")
            return None
        self.gaps.observe(dgram.session, dgram.sequence, dgram.count)
        return self.answer_messages(
            dgram.messages, rx_ns, rx_rig_ns=rx_rig_ns, user_stamp=user_stamp
        )

    def answer_messages(
        self,
        messages: Sequence[bytes | memoryview],
        rx_ns: int,
        *,
        rx_rig_ns: int | None = None,
        user_stamp: bool = False,
    ) -> np.ndarray | None:
        """ACK records for the valid ORDERs among ``messages`` (one device message each, the
        transport's framing removed), all arrived at ``rx_ns``; as :meth:`answer`."""
        acks: list[np.ndarray] = []
        for i, msg in enumerate(messages):
            try:
                mtype, rec = dm.decode(msg)
            except DecodeError as exc:
                self._bad("malformed_orders", f"message {i}: {exc}")
                continue
            if mtype in dm.SYNC_TYPES and self.responder is not None:
                if rx_rig_ns is None:
                    raise ValueError("answer() needs rx_rig_ns when a sync responder is set")
                req = self.responder.on_message(msg, rx_rig_ns, user_stamp=user_stamp)
                if req is not None:
                    self._delay_reqs.append(req)
                continue
            if mtype != dm.MSG_ORDER:
                self._bad("unexpected_types", f"message {i}: {dm.NAMES[mtype]}, not ORDER")
                continue
            order = rec[0]
            problem = _order_problem(order)
            if problem:
                self._bad("malformed_orders", f"message {i} order {int(order['order_id'])}: "
                          f"{problem}")  # fmt: skip
                continue
            self.counts["orders_received"] += 1
            ack = self._ack.copy()
            status, filled, hold = self.policy.decide(int(order["order_id"]),
                                                      int(order["size_lots"]))  # fmt: skip
            ack["status"] = status
            ack["order_id"] = order["order_id"]
            ack["filled_lots"] = filled
            ack["fill_px"] = order["limit_px"]
            ack["device_rx_ns"] = rx_ns
            self.counts[_STATUS_COUNT[status]] += 1
            if hold:
                self.counts["held_late"] += 1
                self.held.append((rx_ns + hold, ack))
                self.held.sort(key=lambda h: h[0])
                continue
            acks.append(ack)
        return np.concatenate(acks) if acks else None

    def reply(self, acks: np.ndarray) -> bytes:
        """The reply datagram; stamps ``device_tx_ns`` now (call right before sending)."""
        dgram = pack_datagram(self.session, self.next_sequence, self.ack_messages(acks))
        self.next_sequence += len(acks)
        self.counts["datagrams_sent"] += 1
        return dgram

    def ack_messages(self, acks: np.ndarray) -> list[bytes]:
        """The ACKs as device messages; stamps ``device_tx_ns`` now (call right before
        sending) and counts them as sent."""
        acks["device_tx_ns"] = self.clock.now_ns()
        raw = dm.encode_batch(acks)
        size = dm.LAYOUTS[dm.MSG_ACK].size
        self.counts["acks_sent"] += len(acks)
        return [raw[k : k + size] for k in range(0, len(raw), size)]

    def take_due(self, now_ns: int) -> np.ndarray | None:
        """Held ACKs due by ``now_ns`` (device clock), in due order."""
        due = [ack for t, ack in self.held if t <= now_ns]
        if not due:
            return None
        self.held = self.held[len(due) :]
        return np.concatenate(due)

    def next_due_ns(self) -> int | None:
        return self.held[0][0] if self.held else None

    def take_delay_reqs(self) -> list[PendingDelayReq]:
        """The DELAY_REQs owed for the SYNCs answered so far (then forgotten here)."""
        out, self._delay_reqs = self._delay_reqs, []
        return out

    def delay_req_datagram(
        self, req: PendingDelayReq, now_rig_ns: int | Callable[[], int]
    ) -> bytes:
        """``req`` in its own datagram with the next device sequence, stamped at rig time
        ``now_rig_ns`` — or, given a clock read (``rig.now_ns``), once the datagram is built:
        the last thing before the ``sendto`` (as the rig stamps its t1)."""
        dgram = bytearray(pack_datagram(self.session, self.next_sequence, [req.template()]))
        now = now_rig_ns if isinstance(now_rig_ns, int) else now_rig_ns()
        I64_FIELD.pack_into(dgram, HEADER_SIZE + T3_OFFSET, req.stamp(now))
        self.next_sequence += 1
        self.counts["datagrams_sent"] += 1
        return bytes(dgram)

    def _bad(self, key: str, detail: str) -> None:
        self.counts[key] += 1
        self.last_error = detail

    def stats(self) -> dict[str, Any]:
        sync = {} if self.responder is None else self.responder.counters()
        return {**self.counts, "last_error": self.last_error,
                "order_sequence": self.gaps.counters(), **sync}  # fmt: skip


_STATUS_COUNT = {
    dm.ACK_STATUS_FILL: "fills", dm.ACK_STATUS_PARTIAL: "partials",
    dm.ACK_STATUS_REJECT: "rejects",
}  # fmt: skip


def _order_problem(order: np.void) -> str:
    if int(order["side"]) not in (1, -1):
        return f"side {int(order['side'])} is not +1 or -1"
    if int(order["size_lots"]) <= 0:
        return f"size_lots {int(order['size_lots'])} is not > 0"
    return ""


def read_fill_policy(cfg: ConfigReader) -> FillPolicy:
    """``fill_mode`` and ``fills`` of a broker emulator's config."""
    mode = cfg.get_str("fill_mode", "full", choices=FILL_MODES)
    fills = cfg.get_table("fills")
    fills.only(("reject", "partial", "late", "late_ms", "seed"))
    try:
        policy = FillPolicy(
            mode=mode,
            reject=fills.get_float("reject", 0.0, min_value=0.0, max_value=1.0),
            partial=fills.get_float("partial", 0.0, min_value=0.0, max_value=1.0),
            late=fills.get_float("late", 0.0, min_value=0.0, max_value=1.0),
            late_ms=fills.get_float("late_ms", 0.0, min_value=0.0, max_value=60_000.0),
            seed=fills.get_int("seed", 0, min_value=0, max_value=2**63 - 1),
        )
    except ValueError as exc:
        raise cfg.error("fills", str(exc)) from exc
    return policy


def main(cfg: ConfigReader, ctx: DeviceContext) -> None:
    """The device: its config validated, its socket bound (address to ``ready_path``), then its
    receive loop until stopped; stats brought up to date however it ends."""
    settings = _read_settings(cfg)
    rig = RealtimeClock()
    dev = device_clock(cfg.get_table("clock"), rig, epoch_ns=rig.now_ns())
    device_id = settings.device_id
    misbehave = read_misbehave(cfg, BROKER_SWITCHES)
    broker = BrokerDevice(device_id, session_id(settings.session), dev,
                          misbehave.responder(SyncResponder(device_id, dev)),
                          settings.policy)  # fmt: skip
    misbehave.broker(broker, "udp")
    ctx.stats["misbehave"] = misbehave.on()
    sock = _bind(settings.host, settings.port)
    sock.setblocking(False)
    # The device's receive stamp is the packet's arrival (kernel software stamp, the loopback
    # analogue of a MAC timestamp), converted to the device clock; user space if refused.
    kernel_stamps = enable_rx_software_timestamps(sock)
    ctx.stats["timestamp_source"] = "kernel-software" if kernel_stamps else "user-space"
    ctx.stats["rx_stamp_fallbacks"] = 0
    bound = sock.getsockname()
    ctx.stats.update(device_id=device_id, address=[bound[0], bound[1]], first_rx_ns=None,
                     last_rx_ns=None, clock_truth=clock_truth(dev))  # fmt: skip
    if settings.ready is not None:
        write_json_atomic(settings.ready, {"port": bound[1], "host": bound[0]})
    try:
        _BrokerServer(sock, broker, rig, dev, ctx, kernel_stamps).serve()
    finally:
        sock.close()
        ctx.stats.update(broker.stats())


@dataclass(frozen=True)
class _Settings:
    """The broker device's config, validated."""

    device_id: int
    host: str
    port: int
    policy: FillPolicy
    session: str
    ready: Path | None  # where the bound address goes (required with an ephemeral port)


def _read_settings(cfg: ConfigReader) -> _Settings:
    """Every key but ``clock`` (read with the device clock), checked in the config's order."""
    cfg.only(BROKER_KEYS)
    device_id = cfg.get_int("device_id", min_value=0, max_value=2**32 - 1)
    host = cfg.get_str("bind_host", "127.0.0.1")
    port = cfg.get_int("bind_port", 0, min_value=0, max_value=65535)
    policy = read_fill_policy(cfg)
    session = cfg.get_str("session", "BROKER", max_len=SESSION_SIZE)
    ready = Path(cfg.get_str("ready_path")) if cfg.has("ready_path") or port == 0 else None
    return _Settings(device_id, host, port, policy, session, ready)


def _bind(host: str, port: int) -> socket.socket:
    """A UDP socket bound to ``host:port``; a bind that fails is a :class:`LinkError`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LinkError(f"broker device: cannot bind UDP {host}:{port}: {exc}") from exc
    return sock


class _BrokerServer:
    """The device's receive loop on its socket: orders and clock-sync messages answered to
    their sender, late ACKs sent when due to the sender of the last orders."""

    def __init__(
        self,
        sock: socket.socket,
        broker: BrokerDevice,
        rig: Clock,
        dev: DeviceClock,
        ctx: DeviceContext,
        kernel_stamps: bool,
    ) -> None:
        self.sock = sock
        self.broker = broker
        self.rig = rig
        self.dev = dev
        self.ctx = ctx
        self.kernel_stamps = kernel_stamps
        self.buf = bytearray(MAX_DATAGRAM)
        self.view = memoryview(self.buf)
        self.last_addr: Any = None  # where late ACKs go: the rig side that sent the last orders

    def serve(self) -> None:
        """Until stopped: wait for a datagram or the next late ACK, send what is due, answer
        what arrived."""
        sock, broker, dev, ctx = self.sock, self.broker, self.dev, self.ctx
        while not ctx.stop.is_set:
            due = broker.next_due_ns()
            wait = 1.0 if due is None else max(0.0, (due - dev.now_ns()) / 1e9)
            readable = select.select([sock.fileno(), ctx.waker.fileno()], [], [], min(wait, 1.0))[0]
            if ctx.waker.fileno() in readable:
                ctx.waker.drain()
            late = broker.take_due(dev.now_ns())
            if late is not None and self.last_addr is not None:
                try:
                    sock.sendto(broker.reply(late), self.last_addr)
                except OSError as exc:
                    raise LinkError(
                        f"broker device: late reply to {self.last_addr} failed: {exc}"
                    ) from exc
            if sock.fileno() in readable:
                self._answer_readable()

    def _answer_readable(self) -> None:
        """Answer every datagram waiting on the socket."""
        sock, broker, rig, dev = self.sock, self.broker, self.rig, self.dev
        buf, view, stats, kernel_stamps = self.buf, self.view, self.ctx.stats, self.kernel_stamps
        while True:
            try:
                n, ancdata, _flags, addr = sock.recvmsg_into([buf], ANCBUFSIZE)
            except BlockingIOError:
                break
            stamp = kernel_rx_stamp(ancdata) if kernel_stamps else None
            if stamp is None:
                rx_rig = rig.now_ns()
                stats["rx_stamp_fallbacks"] += int(kernel_stamps)
            else:
                rx_rig = stamp
            rx_ns = dev.device_time(rx_rig)
            if stats["first_rx_ns"] is None:
                stats["first_rx_ns"] = rx_ns
            stats["last_rx_ns"] = rx_ns
            acks = broker.answer(view[:n], rx_ns, rx_rig_ns=rx_rig, user_stamp=stamp is None)
            self.last_addr = addr
            try:
                if acks is not None:
                    sock.sendto(broker.reply(acks), addr)
                for req in broker.take_delay_reqs():
                    sock.sendto(broker.delay_req_datagram(req, rig.now_ns), addr)
            except OSError as exc:
                raise LinkError(f"broker device: reply to {addr} failed: {exc}") from exc


if __name__ == "__main__":
    sys.exit(run_device(main, "broker_udp"))

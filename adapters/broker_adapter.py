"""Broker adapter: PlanDelta legs in over ZeroMQ, ORDER messages out to the broker device,
ACK/FILLs back to the coordinator as ExecutionReports.

One process. A ``zmq.Poller`` blocks on both the coordinator's PUSH stream and the broker
link's socket (no busy polling). Every order and every acknowledgement leaves a trace row, so
the orchestrator can attribute the coordinator->broker hop, the adapter's own encode time, the
order's wire time (to the device's receive stamp) and the ack's way back.

An order's send time (``tx_ns``, the start of the order's wire time) is the kernel's transmit
stamp of its datagram where the link has them (UDP: :class:`~.links.TxStampedLink`), else the
user-space stamp taken just before the send. The stamp is taken right after the send when it is
already back (loopback, software stamps), else when it comes (a NIC's hardware stamp), read in
the adapter loop (:meth:`_BrokerLoop.late_tx_stamps`): the order's trace rows, and its
ExecutionReport if the ack has not come first (``order_tx_late``), then carry it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zmq

from arbsphere.adapters.links import (
    TIMESTAMP_USER,
    BrokerLink,
    TxStampedLink,
    link_settings,
    timestamps_of,
)
from arbsphere.adapters.plan_replica import PlanReplica
from arbsphere.adapters.role_config import BrokerRoleConfig
from arbsphere.adapters.sync_master import open_sync_master
from arbsphere.clock import Clock, RealtimeClock
from arbsphere.contracts import PLAN_LEG_DTYPE, default_registry
from arbsphere.errors import ContractError, DecodeError, PipelineError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.plan.digest import plan_hash
from arbsphere.runtime import RoleProcess, StopFlag, cpu_usage, run_role
from arbsphere.security.identity import Role
from arbsphere.security.role_security import PIPELINE
from arbsphere.security.role_sockets import Plaintext, role_sockets
from arbsphere.sender_ids import BROKER_SENDER_ID
from arbsphere.tracebuf import TraceBuffer

_REG = default_registry()
(KIND_WRITE_OFF,) = _REG.codes("PlanDeltaKind", "WRITE_OFF")
(_DIVERGED,) = _REG.codes("ReplicaStatusCode", "DIVERGED")
#: the replica_id of this adapter's ReplicaStatus (one replica per broker adapter)
REPLICA_ID = 1
# PlanDelta v2 positions in its decode_values tuple: the header, then the legs
_PLAN = _REG.fields("PlanDelta", 2)
_PLAN_HEAD = _PLAN.span(
    "delta_id", "ts_ns", "sender", "n_legs", "cause_venue", "cause_seq", "kind", "plan_hash"
)
_LEG = _PLAN.item_span("venue", "asset", "side", "size_lots", "limit_px")
_LEG_STRIDE = _PLAN.stride
#: an ACK as ``messages.decode_values`` returns it (unpacked whole below)
ACK_FIELDS = (
    "msg_type", "version", "length", "device_id", "status", "order_id", "filled_lots", "fill_px",
    "device_rx_ns", "device_tx_ns",
)  # fmt: skip
if dm.value_fields(dm.MSG_ACK) != ACK_FIELDS:  # pragma: no cover - layout drift guard
    raise ImportError(f"ACK layout changed: {dm.value_fields(dm.MSG_ACK)}; update ACK_FIELDS")
# An ACK's status is relayed as the ExecutionReport's: the two declarations must agree
_STATUSES = {m.name: int(m) for m in _REG.enum("ReportStatus")}
if dict(dm.DECLARATIONS.ack_status) != _STATUSES:  # pragma: no cover - declaration guard
    raise ContractError(
        f"ReportStatus {_STATUSES} differs from the device ACK status "
        f"{dict(dm.DECLARATIONS.ack_status)}",
        file=_REG.source,
        key="enums.ReportStatus",
    )
# The packers take values in declared order: the calls below pass them so
_REG.fields("ReplicaStatus", 1).expect(
    ("replica_id", "status", "delta_id", "replica_hash", "expected_hash")
)
_REG.fields("ExecutionReport", 1).expect(
    ("order_id", "delta_id", "venue", "asset", "status", "filled_lots", "fill_px",
     "device_rx_ns", "device_tx_ns", "rig_tx_ns", "rig_rx_ns")
)  # fmt: skip
#: plain ints for the per-message readiness check (zmq's IntFlag ``&`` runs enum code in Python)
_ZMQ_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
#: PlanDeltas handled per wake-up at most (then the device's acks get their turn)
MAX_PLANS_PER_WAKEUP = 64
#: order datagrams whose kernel transmit stamp is awaited, at most (then the oldest keeps its
#: user-space stamp: ``order_tx_missing``)
MAX_PENDING_TX = 4096

ORDER_TRACE_DTYPE = np.dtype(
    [
        ("delta_id", "<u8"),
        ("order_id", "<u8"),
        ("leg", "<u2"),
        ("venue", "<u2"),
        ("asset", "<u2"),
        ("side", "i1"),
        ("size_lots", "<i8"),
        ("cause_venue", "<u2"),
        ("cause_seq", "<u8"),
        ("rx_ns", "<i8"),  # PlanDelta received from the coordinator
        ("tx_ns", "<i8"),  # ORDER sent: the kernel's transmit stamp, else user-space
        ("tx_kernel", "u1"),  # 1: tx_ns is the kernel's transmit stamp
    ]
)

ACK_TRACE_DTYPE = np.dtype(
    [
        ("order_id", "<u8"),
        ("status", "u1"),
        ("filled_lots", "<i8"),
        ("device_rx_dev_ns", "<i8"),
        ("device_tx_dev_ns", "<i8"),
        ("rx_ns", "<i8"),
    ]
)


class OrderBook:
    """Orders in flight: order_id -> (delta_id, venue, asset, side, tx_ns)."""

    def __init__(self) -> None:
        self.open: dict[int, tuple[int, int, int, int, int]] = {}
        self.unknown_acks = 0


class _BrokerLoop:
    """The adapter's work on a wake-up: PlanDeltas to ORDERs (:meth:`plans`), device
    datagrams to ExecutionReports (:meth:`acks`). A PlanDelta that arrives while acks are being
    handled goes first: :meth:`acks` checks for one before each datagram."""

    def __init__(
        self, reg: Any, device_id: int, replica: PlanReplica, link: BrokerLink, pull: Any,
        plans_in: Any, reports_out: Any, clock: Clock,
    ) -> None:  # fmt: skip
        self.reg = reg
        self.device_id = device_id
        self.replica = replica
        self.link = link
        self.pull = pull  # the raw socket: readiness checks
        self.plans_in = plans_in  # the guarded one: receives
        self.reports_out = reports_out
        self.clock = clock
        plan_schema = reg.schema("PlanDelta", 2)
        self.plan_id = plan_schema.id
        self.snapshot_id = reg.schema("PlanSnapshot").id
        self.status_schema = reg.schema("ReplicaStatus")
        self.status_packer = reg.packer(self.status_schema)
        self.legs_offset = reg.envelope.size + plan_schema.header.size
        self.report_schema = reg.schema("ExecutionReport")
        self.report_packer = reg.packer(self.report_schema)
        self.order_packer = dm.packer(dm.MSG_ORDER)
        self.orders = TraceBuffer(ORDER_TRACE_DTYPE, 16_384)
        self.acks_trace = TraceBuffer(ACK_TRACE_DTYPE, 16_384)
        self.book = OrderBook()
        self.counts = {
            "deltas": 0,
            "orders": 0,
            "acks": 0,
            "fills": 0,
            "rejects": 0,
            "decode_errors": 0,
            "unknown_acks": 0,
            "reports_sent": 0,
            "other_messages": 0,
            "order_tx_kernel": 0,
            "order_tx_late": 0,
            "order_tx_missing": 0,
        }
        self.last_error = ""
        self.nonce = 0
        stamped = isinstance(link, TxStampedLink) and link.tx_timestamp_source != TIMESTAMP_USER
        self.stamped: TxStampedLink | None = link if stamped else None  # type: ignore[assignment]
        #: order datagrams awaiting their kernel stamp: id -> (user tx_ns, first trace row,
        #: legs, delta_id)
        self.pending_tx: dict[int, tuple[int, int, int, int]] = {}

    def _plan_queued(self) -> bool:
        return bool(int(self.pull.getsockopt(_ZMQ_EVENTS)) & _POLLIN)

    def plans(self) -> None:
        """Every PlanDelta queued (up to MAX_PLANS_PER_WAKEUP), each delta's orders sent as
        soon as it is decoded (a burst of deltas comes faster than one poll per delta)."""
        handled = 0
        while handled < MAX_PLANS_PER_WAKEUP:
            if handled and not self._plan_queued():
                break
            handled += 1
            try:
                raw = self.plans_in.recv(zmq.NOBLOCK, copy=True)
            except zmq.Again:  # refused by the guard (counted there), or none left
                continue
            self._plan(raw, self.clock.now_ns())

    def _plan(self, raw: bytes, rx: int) -> None:
        reg = self.reg
        counts = self.counts
        try:
            schema, v = reg.decode_values(raw)
        except DecodeError as exc:
            counts["decode_errors"] += 1
            self.last_error = str(exc)
            return
        if schema.id == self.snapshot_id:
            snap = reg.decode(raw)
            hd = snap.header[0]
            self.replica.restore(int(hd["delta_id"]), snap.items["lots"], int(hd["plan_hash"]))
            return
        if schema.id != self.plan_id:
            counts["other_messages"] += 1
            self.last_error = f"{schema.name} on the plan stream"
            return
        if schema.version != 2:
            counts["decode_errors"] += 1
            self.last_error = f"PlanDelta v{schema.version}: this adapter speaks v2"
            return
        counts["deltas"] += 1
        (delta_id, _ts, _sender, n_legs, cause_venue, cause_seq, kind,
         expected) = v[_PLAN_HEAD]  # fmt: skip
        legs_arr = np.frombuffer(raw, PLAN_LEG_DTYPE, n_legs, self.legs_offset)
        if self.replica.apply(delta_id, kind, legs_arr, expected):
            self.nonce += 1
            st = self.status_schema
            self.reports_out.send(
                self.status_packer.pack(
                    *reg.envelope_values(st, 0, BROKER_SENDER_ID, self.nonce, rx),
                    REPLICA_ID, _DIVERGED, delta_id, plan_hash(self.replica.plan), expected,
                )
            )  # fmt: skip
        if kind == KIND_WRITE_OFF:
            return  # taken off the plan, never ordered
        # All legs of a delta go to the device in one datagram.
        pack = self.order_packer.pack
        size = self.order_packer.size
        now = self.clock.now_ns
        raw_orders = []
        legs = []
        lo, hi = _LEG
        for i in range(n_legs):
            venue, asset, side, lots, limit_px = v[lo:hi]
            lo += _LEG_STRIDE
            hi += _LEG_STRIDE
            order_id = (delta_id << 8) | i
            raw_orders.append(
                pack(dm.MSG_ORDER, dm.DEVICE_MESSAGE_VERSION, size, self.device_id, venue,
                     asset, side, order_id, delta_id, lots, limit_px, now())
            )  # fmt: skip
            legs.append((order_id, venue, asset, side, lots))
        tx, kernel = self._send(raw_orders, delta_id) if raw_orders else (0, 0)
        for i, (order_id, venue, asset, side, lots) in enumerate(legs):
            self.book.open[order_id] = (delta_id, venue, asset, side, tx)
            counts["orders"] += 1
            self.orders.append(
                (delta_id, order_id, i, venue, asset, side, lots, cause_venue, cause_seq, rx, tx,
                 kernel)
            )  # fmt: skip

    def _send(self, raw_orders: list[bytes], delta_id: int) -> tuple[int, int]:
        """Send one delta's orders in one datagram: (its send time, 1 if that is the kernel's
        transmit stamp). A stamp not back yet is awaited (:meth:`late_tx_stamps`)."""
        link = self.stamped
        if link is None:
            return self.link.send_many(raw_orders), 0
        sent = link.send_many_stamped(raw_orders)
        assert sent is not None  # the broker's address is configured, never learned
        user_ns, tx_id = sent
        if tx_id < 0:
            return user_ns, 0
        kernel_ns = link.tx_stamp(tx_id, user_ns)
        if kernel_ns is not None:
            self.counts["order_tx_kernel"] += 1
            return kernel_ns, 1
        pending = self.pending_tx
        if len(pending) >= MAX_PENDING_TX:
            del pending[next(iter(pending))]
            self.counts["order_tx_missing"] += 1
        pending[tx_id] = (user_ns, self.orders.n, len(raw_orders), delta_id)
        return user_ns, 0

    def late_tx_stamps(self) -> None:
        """Kernel transmit stamps that came after their send: each patches its orders' trace
        rows and, where the ack has not come yet, the send time their report will carry."""
        link = self.stamped
        if link is None or not self.pending_tx:
            return
        rows = self.orders.view()
        for tx_id, (user_ns, row, n_legs, delta_id) in list(self.pending_tx.items()):
            kernel_ns = link.tx_stamp(tx_id, user_ns)
            if kernel_ns is None:
                continue
            del self.pending_tx[tx_id]
            self.counts["order_tx_kernel"] += 1
            rows["tx_ns"][row : row + n_legs] = kernel_ns
            rows["tx_kernel"][row : row + n_legs] = 1
            for i in range(n_legs):
                info = self.book.open.get((delta_id << 8) | i)
                if info is None:
                    self.counts["order_tx_late"] += 1  # its report left with the user stamp
                else:
                    self.book.open[(delta_id << 8) | i] = (*info[:4], kernel_ns)

    def acks(self, sync: Any) -> None:
        """The device's datagrams read now: ACKs to ExecutionReports (one frame for them all,
        the reports back to back: the coordinator cuts it at the envelopes), clock-sync
        requests to ``sync``. A PlanDelta queued meanwhile is handled before the next
        datagram (its orders do not wait for the reports); the reports built by then are sent
        first, so that every message leaves in nonce order."""
        reg = self.reg
        counts = self.counts
        book = self.book
        reports: list[bytes] = []
        for k, rec in enumerate(self.link.receive(timeout_ms=0)):
            if k and self._plan_queued():
                if reports:  # sent first: nonces leave in order (a delta may send a status)
                    self.reports_out.send(b"".join(reports))
                    reports = []
                self.plans()
            try:
                mtype, ack = dm.decode_values(rec.payload)
            except DecodeError as exc:
                counts["decode_errors"] += 1
                self.last_error = str(exc)
                continue
            if mtype != dm.MSG_ACK:
                if mtype == dm.MSG_DELAY_REQ and sync is not None:
                    sync.on_delay_req(ack, rec.rx_ns)
                else:
                    counts["other_messages"] += 1
                continue
            _t, _v, _l, _d, status, oid, filled, fill_px, dev_rx, dev_tx = ack
            counts["acks"] += 1
            self.acks_trace.append((oid, status, filled, dev_rx, dev_tx, rec.rx_ns))
            info = book.open.pop(oid, None)
            if info is None:
                counts["unknown_acks"] += 1
                continue
            delta_id, venue, asset, side, tx = info
            if status == dm.ACK_STATUS_REJECT:
                counts["rejects"] += 1
            elif status in (dm.ACK_STATUS_FILL, dm.ACK_STATUS_PARTIAL):
                counts["fills"] += 1
            self.nonce += 1
            reports.append(
                self.report_packer.pack(
                    *reg.envelope_values(self.report_schema, 0, BROKER_SENDER_ID, self.nonce,
                                         rec.rx_ns),
                    oid, delta_id, venue, asset, status, side * filled, fill_px, dev_rx, dev_tx,
                    tx, rec.rx_ns,
                )
            )  # fmt: skip
            counts["reports_sent"] += 1
        if reports:
            self.reports_out.send(b"".join(reports))


def _pipeline_sockets(
    ctx: zmq.Context[zmq.Socket[bytes]], security: Plaintext, cfg: BrokerRoleConfig
) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes], Any, Any]:
    """The PULL of PlanDeltas and the PUSH of reports to the coordinator, connected: both raw
    sockets, then what the plans are received on (guarded, attestation checked with security
    on) and what the reports are sent on (sealed)."""
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 1_000_000)
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 1_000_000)
    push.setsockopt(zmq.LINGER, 2000)
    security.client(pull, Role.COORDINATOR)
    security.client(push, Role.COORDINATOR)
    plans = security.receiver(pull, PIPELINE, [Role.COORDINATOR], attested_by=Role.COORDINATOR)
    reports_out = security.sender(push, PIPELINE, Role.COORDINATOR)
    try:
        pull.connect(cfg.plan_endpoint)
        push.connect(cfg.report_endpoint)
    except zmq.ZMQError as exc:
        raise PipelineError(f"{cfg.name}: cannot connect: {exc}") from exc
    return pull, push, plans, reports_out


class BrokerProcess(RoleProcess):
    """The broker adapter: its link, plan replica, sockets (security decided once) and clock
    sync, wired from the role config; :meth:`serve` polls the plans and the device."""

    def __init__(self, cfg: BrokerRoleConfig, source: str, clock: Clock) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.out_dir = Path(cfg.out_dir)
        self.clock = clock
        self.replica = PlanReplica(cfg.n_venues, cfg.n_assets,
                                   fault_every=cfg.replica_fault_every)  # fmt: skip
        self.link = cfg.link.open(clock)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.security = role_sockets(cfg.security, source, clock, ctx)
        self.pull, self.push, plans, reports_out = _pipeline_sockets(ctx, self.security, cfg)
        self.sync = open_sync_master(cfg.sync, self.link, clock)
        self.governance = self.security.connect_governance()
        self.loop = _BrokerLoop(default_registry(), cfg.device_id, self.replica, self.link,
                                self.pull, plans, reports_out, clock)  # fmt: skip
        self.replica.warm_up()

    def ready_info(self) -> dict[str, Any]:
        ready: dict[str, Any] = {"timestamp_source": self.link.timestamp_source}
        address = getattr(self.link, "address", None)  # a UDP link's bound (host, port)
        if address is not None:
            ready["address"] = list(address)
        return ready

    def serve(self, stop: StopFlag) -> None:
        """Poll until ``stop``. The trade's path first: every queued PlanDelta's orders go out
        before the clock sync, the security timers and the device's acks get the wake-up."""
        link_fd = self.link.fileno()
        pull, loop, sync, clock, security = (
            self.pull, self.loop, self.sync, self.clock, self.security
        )  # fmt: skip
        poller = zmq.Poller()
        poller.register(pull, zmq.POLLIN)
        poller.register(link_fd, zmq.POLLIN)
        if self.governance is not None:
            poller.register(self.governance, zmq.POLLIN)
        while not stop.is_set:
            timeout = 100 if sync is None else sync.timeout_ms(clock.now_ns(), 100)
            events = dict(poller.poll(timeout))
            if pull in events:
                loop.plans()
            if link_fd in events:
                loop.acks(sync)
                loop.late_tx_stamps()
            if sync is not None:
                sync.poll(clock.now_ns())
            security.service(events)

    def save(self) -> None:
        out_dir, name, loop = self.out_dir, self.name, self.loop
        loop.orders.save(out_dir / f"{name}.orders.npy")
        loop.acks_trace.save(out_dir / f"{name}.acks.npy")
        if self.sync is not None:
            self.sync.save(out_dir / f"{name}.sync.npy")

    def stats(self) -> dict[str, Any]:
        loop, link, sync = self.loop, self.link, self.sync
        return {
            "role": "broker_adapter", "name": self.name, "link": link.counters(),
            "adapter": {**loop.counts, "open_orders_at_stop": len(loop.book.open),
                        "order_tx_awaited_at_stop": len(loop.pending_tx)},
            "last_error": loop.last_error, "cpu": cpu_usage(), "replica": self.replica.summary(),
            "timestamp_source": link.timestamp_source,
            "link_settings": link_settings(link),
            "timestamps": timestamps_of(link, None if sync is None else sync.tx_source),
            "sync": sync.counts if sync is not None else None,
            "security": self.security.stats(),
        }  # fmt: skip

    def close(self) -> None:
        self.security.close()
        self.link.close()
        self.pull.close(linger=0)
        self.push.close()


def start(cfg: BrokerRoleConfig, source: str) -> BrokerProcess:
    return BrokerProcess(cfg, source, RealtimeClock())


def main() -> None:
    run_role(BrokerRoleConfig, start)


if __name__ == "__main__":
    main()

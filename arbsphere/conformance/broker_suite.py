"""The broker device suite: orders out, every ACK judged, then garbage and invalid orders.

:func:`run_broker_suite` opens the rig side of the broker link through the backend registry
(:class:`~arbsphere.adapters.backends.BrokerLinkSpec`) and, with the clock-sync exchange
running throughout: sends ``n_orders`` valid ORDERs (one to three per transport unit, sizes
1..100 lots, both sides, a limit each), waits up to ``answer_s`` for their ACKs, then sends
garbage (:mod:`.garbage`, ORDER markers) and invalid ORDERs (size 0, negative size, side 0),
and keeps the exchange going ``malformed_s`` more.

Checks, with limits from :mod:`.judges`: framing, message_decode, device_id, orders_answered,
answered_once, final_status, fill_size, fill_price, device_stamps, answer_time (not required),
sync_answers, sync_monotonic, sync_turnaround, sync_causality, invalid_orders,
malformed_survives, malformed_no_answer, hw_rx_timestamps, serial_low_latency.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arbsphere.adapters.backends import BrokerLinkSpec
from arbsphere.clock import Clock
from arbsphere.conformance import capabilities, judges
from arbsphere.conformance.garbage import (
    GARBAGE_ORDER_BASE,
    GARBAGE_SEQ_BASE,
    RAW_WRITERS,
    garbage_units,
)
from arbsphere.conformance.model import BROKER, ZERO, Check, SuiteResult, for_device, measured
from arbsphere.conformance.session import BROKER_SENDS, LinkSession
from arbsphere.errors import LinkError
from arbsphere.firmware_interfaces import messages as dm

#: order ids of the invalid ORDERs (size 0, negative size, side 0)
INVALID_ORDER_BASE = 0x7C7C_0000_0000
BASE_PX = 100 * dm.PRICE_SCALE


@dataclass(frozen=True)
class BrokerTarget:
    name: str
    link: BrokerLinkSpec
    device_id: int
    findings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BrokerSuiteSettings:
    idle_s: float = 0.3
    n_orders: int = 200
    orders_per_s: float = 1000.0
    #: after the last order, how long its ACKs may take (a device may hold some late)
    answer_s: float = 1.0
    malformed_s: float = 0.5
    seed: int = 11


def run_broker_suite(
    target: BrokerTarget, clock: Clock, settings: BrokerSuiteSettings | None = None
) -> SuiteResult:
    """Run the broker suite against ``target`` (see the module docstring)."""
    s = settings or BrokerSuiteSettings()
    link = target.link.open(clock)
    try:
        session = LinkSession(link, clock, target.device_id, BROKER_SENDS)
        session.pump(clock.now_ns() + round(s.idle_s * 1e9))
        orders = _send_orders(session, target, s, clock)
        acks = session.by_type[dm.MSG_ACK]
        ids = {o.order_id for o in orders}
        session.pump(
            clock.now_ns() + round(s.answer_s * 1e9), stop=lambda: _all_final(acks.records(), ids)
        )
        garbage, first_after = _send_garbage(session, target)
        invalid = _send_invalid(session, target)
        session.pump(clock.now_ns() + round(s.malformed_s * 1e9))
        checks = _judge(session, target, orders)
        checks += _malformed(session, first_after, garbage, invalid)
        checks += [
            capabilities.hw_rx_timestamps(
                BROKER, target.link.backend, target.findings, link.timestamp_source
            ),
            capabilities.serial_low_latency(
                BROKER, target.link.backend, str(getattr(target.link.settings, "port", ""))
            ),
        ]
        info = {**session.info(), "orders_sent": len(orders)}
    finally:
        link.close()
    return SuiteResult(
        target.name, BROKER, target.link.backend, for_device(checks, target.name), info
    )


def _all_final(acks: np.ndarray, ids: set[int]) -> bool:
    final = acks[np.isin(acks["status"], list(judges.FINAL_STATUSES))]
    return ids <= set(final["order_id"].tolist())


def _order(device_id: int, order_id: int, side: int, size: int, limit_px: int) -> bytes:
    rec = dm.new_record(dm.MSG_ORDER, device_id)
    rec["order_id"], rec["delta_id"], rec["side"] = order_id, order_id, side
    rec["size_lots"], rec["limit_px"] = size, limit_px
    return dm.encode(rec)


def _send_orders(
    session: LinkSession, target: BrokerTarget, s: BrokerSuiteSettings, clock: Clock
) -> list[judges.SentOrder]:
    """``n_orders`` valid ORDERs, one to three per unit, paced at ``orders_per_s``."""
    rng = np.random.default_rng(s.seed)
    out: list[judges.SentOrder] = []
    gap_ns = round(1e9 / s.orders_per_s)
    next_at = clock.now_ns()
    oid = 1
    while oid <= s.n_orders:
        group = []
        for _ in range(min(int(rng.integers(1, 4)), s.n_orders - oid + 1)):
            side = 1 if rng.random() < 0.5 else -1
            size = int(rng.integers(1, 101))
            limit = BASE_PX + side * int(rng.integers(0, 50)) * dm.PRICE_SCALE // 100
            group.append((oid, side, size, limit))
            oid += 1
        tx = session.send([_order(target.device_id, *g) for g in group])
        out += [judges.SentOrder(g[0], g[1], g[2], g[3], tx or 0) for g in group]
        next_at += gap_ns * len(group)
        session.pump(next_at)
    return out


def _judge(
    session: LinkSession, target: BrokerTarget, orders: list[judges.SentOrder]
) -> list[Check]:
    counters = session.link.counters()
    acks = session.by_type[dm.MSG_ACK]
    recs, rx = acks.records(), acks.rx_ns()
    mine = recs["order_id"] < GARBAGE_ORDER_BASE
    return [
        judges.framing(BROKER, counters),
        judges.message_decode(BROKER, session.undecodable, session.unexpected),
        judges.device_id(BROKER, target.device_id, session.device_ids),
        *judges.ack_checks(orders, recs[mine], rx[mine]),
        *judges.sync_checks(BROKER, session.sync_record()),
    ]


def _send_garbage(session: LinkSession, target: BrokerTarget) -> tuple[int, int]:
    write = RAW_WRITERS[target.link.backend]
    sent = 0
    for unit in garbage_units(target.link.backend, target.device_id, orders=True):
        try:
            write(session.link, unit)
            sent += 1
        except LinkError as exc:
            session.link_errors.append(str(exc))
    return sent, session.sync.next_seq


def _send_invalid(session: LinkSession, target: BrokerTarget) -> list[int]:
    """Well-formed ORDERs with impossible contents: a device may REJECT them or stay silent,
    never fill them."""
    bad = [
        (INVALID_ORDER_BASE, 1, 0),
        (INVALID_ORDER_BASE + 1, -1, -5),
        (INVALID_ORDER_BASE + 2, 0, 5),
    ]
    for oid, side, size in bad:
        session.send([_order(target.device_id, oid, side, size, BASE_PX)])
    return [b[0] for b in bad]


def _malformed(
    session: LinkSession, first_after: int, garbage: int, invalid: list[int]
) -> list[Check]:
    acks = session.by_type[dm.MSG_ACK].records()
    ids = acks["order_id"]
    to_garbage = int(((ids >= GARBAGE_ORDER_BASE) & (ids < INVALID_ORDER_BASE)).sum())
    sync_garbage = sum(1 for a in session.answers if a[0] >= GARBAGE_SEQ_BASE)
    answers = {
        k: v
        for k, v in (
            ("ACK to a garbage ORDER", to_garbage),
            ("DELAY_REQ to a garbage SYNC", sync_garbage),
        )
        if v
    }
    on_invalid = acks[np.isin(ids, invalid)]
    filled = int(
        ((on_invalid["status"] != dm.ACK_STATUS_REJECT) | (on_invalid["filled_lots"] != 0)).sum()
    )
    return [
        measured(
            "invalid_orders",
            BROKER,
            filled,
            "acks",
            ZERO,
            detail=f"{len(invalid)} invalid ORDERs (size 0, size < 0, side 0): "
            f"{on_invalid.size} answered, {filled} not as a REJECT of 0 lots",
        ),
        judges.malformed_survives(BROKER, session.sync_record(first_after)),
        judges.malformed_no_answer(BROKER, answers, garbage),
    ]

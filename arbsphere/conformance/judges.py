"""The judges: pure functions from what was observed on a device link to :class:`~.model.Check`.

Each judge takes plain recorded data (counters, arrays of stamps, the orders sent and the acks
received) and applies the one set of limits declared here, so the active suites
(:mod:`.feed_suite`, :mod:`.broker_suite`) and a campaign's result set (``kpi.json``
``conformance``, judged from the run's own traffic) give the same verdict for the same
behaviour. Judges never touch a socket or a clock.

Limits are generous where the measurement runs on this project's shared 2-vCPU hosts (rate
adherence, turnaround): they separate a device that keeps its protocol from one that does not,
not a fast host from a slow one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from arbsphere.conformance.model import ZERO, Check, Limits, measured, skipped
from arbsphere.firmware_interfaces import messages as dm

#: heartbeat spacing, as a multiple of the nominal interval: pass up to 2x, marginal up to 5x
HEARTBEAT_LIMITS = Limits.at_most(2.0, 5.0)
#: SYNCs answered with a matching DELAY_REQ (fraction)
SYNC_ANSWER_LIMITS = Limits.at_least(0.99, 0.9)
#: device turnaround t3 - t2, p99 in µs (a device answers a SYNC at once)
TURNAROUND_LIMITS = Limits.within(0.0, 2_000.0, 0.0, 20_000.0)
#: open-loop lateness send_ns - intended_send_ns on the device clock, median in µs (the tail
#: on a shared host is the host's; the p99 is reported, not required)
LATENESS_LIMITS = Limits.within(0.0, 500.0, 0.0, 5_000.0)
LATENESS_P99_LIMITS = Limits.within(0.0, 2_000.0, 0.0, 50_000.0)
#: ticks arrived per second over the run / the armed rate
RATE_RATIO_LIMITS = Limits.within(0.95, 1.05, 0.8, 1.2)
#: first tick after the start (rig clock), ms
FIRST_TICK_LIMITS = Limits.within(-1.0, 50.0, -1.0, 500.0)
#: a broker's answer time (rig send -> rig receive of the final ACK), p99 ms; not required
ANSWER_TIME_LIMITS = Limits.at_most(50.0, 500.0)
#: a clock-sync exchange may show t3 - t2 above t4 - t1 by this much (device drift, rounding)
CAUSALITY_SLACK_NS = 1_000


def framing(interface: str, counters: Mapping[str, int]) -> Check:
    """Transport units the rig-side link rejected (bad CRC, COBS, truncated or inconsistent
    datagrams): a device must never put one on the wire."""
    bad = int(counters.get("malformed", 0))
    units = int(counters.get("units", 0))
    problems = {
        k: int(counters[k])
        for k in (
            "crc_errors",
            "cobs_errors",
            "short_frames",
            "oversize",
            "decode_errors",
            "truncated",
        )
        if int(counters.get(k, 0))
    }
    return measured(
        "framing",
        interface,
        bad,
        "units",
        ZERO,
        detail=f"{bad} malformed of {units + bad} units {problems or ''}".strip(),
    )


def message_decode(interface: str, undecodable: int, unexpected: Mapping[str, int]) -> Check:
    """Messages inside valid units that do not decode, or of a type this device must not send."""
    n = undecodable + sum(unexpected.values())
    detail = f"{undecodable} undecodable" + (
        f", unexpected types {dict(unexpected)}" if unexpected else ""
    )
    return measured("message_decode", interface, n, "messages", ZERO, detail=detail)


def device_id(interface: str, expected: int, seen: Mapping[int, int]) -> Check:
    """Every message's header ``device_id`` is the device's configured id."""
    wrong = sum(n for d, n in seen.items() if d != expected)
    others = {d: n for d, n in seen.items() if d != expected}
    detail = f"expected {expected}" + (f"; also saw {others}" if others else "")
    return measured("device_id", interface, wrong, "messages", ZERO, detail=detail)


def tick_sequence(device_seqs: Sequence[int] | np.ndarray) -> tuple[Check, Check]:
    """(gaps, duplicates) in the TICKs' ``device_seq`` in arrival order: each tick must carry
    the previous one's sequence + 1 (HEARTBEATs and DELAY_REQs take their own sequence numbers
    only on the datagram level)."""
    seqs = np.asarray(device_seqs, dtype=np.int64)
    if seqs.size < 2:
        reason = f"{seqs.size} ticks: nothing to judge"
        return (
            measured("tick_sequence", "feed", None, "missing", ZERO, detail=reason),
            measured("tick_duplicates", "feed", None, "ticks", ZERO, detail=reason),
        )
    step = np.diff(seqs)
    jumps = step > 1
    missing = int((step[jumps] - 1).sum())
    dups = int((step <= 0).sum())
    gap_detail = (
        f"{int(jumps.sum())} jumps, {missing} sequence numbers missing over "
        f"{seqs.size} ticks ({int(seqs[0])}..{int(seqs[-1])})"
    )
    return (
        measured("tick_sequence", "feed", missing, "missing", ZERO, detail=gap_detail),
        measured(
            "tick_duplicates",
            "feed",
            dups,
            "ticks",
            ZERO,
            detail=f"{dups} ticks repeat or go back in device_seq",
        ),
    )


def tick_sequence_counts(gaps: int, missing: int, duplicates: int) -> tuple[Check, Check]:
    """:func:`tick_sequence` from a receiver's counters (a campaign's venue adapter counts
    ``device_seq`` gaps, missing and duplicate ticks as it goes)."""
    return (
        measured("tick_sequence", "feed", missing, "missing", ZERO,
                 detail=f"{gaps} gaps, {missing} sequence numbers missing"),
        measured("tick_duplicates", "feed", duplicates, "ticks", ZERO,
                 detail=f"{duplicates} ticks repeat or go back in device_seq"),
    )  # fmt: skip


def datagram_sequence(interface: str, backend: str, counters: Mapping[str, int]) -> Check:
    """The transport's own sequence (UDP datagram header): gaps and duplicates counted by the
    link's gap detector. Serial frames carry no transport sequence: skipped there."""
    if "gaps" not in counters:
        return skipped(
            "datagram_sequence",
            interface,
            "events",
            ZERO,
            f"the {backend} link carries no transport sequence",
            required=False,
        )
    bad = int(counters["gaps"]) + int(counters.get("duplicates", 0))
    return measured(
        "datagram_sequence",
        interface,
        bad,
        "events",
        ZERO,
        detail=f"gaps {counters['gaps']} (missing {counters.get('missing', 0)}), "
        f"duplicates {counters.get('duplicates', 0)}, "
        f"reordered {counters.get('reordered', 0)}",
    )


def session_restart(interface: str, counters: Mapping[str, int], restart_ok: bool | None) -> Check:
    """A session change on the transport must restart its sequence at 1. The device protocol
    has no command that makes a device restart, so this is judged on what the run saw: skipped
    when no session change happened (``restart_ok`` None)."""
    changes = int(counters.get("session_changes", 0))
    if restart_ok is None or changes == 0:
        return skipped(
            "session_restart",
            interface,
            "restarts",
            ZERO,
            "no session change seen (the protocol has no way to provoke one)",
            required=False,
        )
    return measured(
        "session_restart",
        interface,
        0 if restart_ok else 1,
        "bad restarts",
        ZERO,
        detail=f"{changes} session changes",
    )


def heartbeat_interval(device_times_ns: Sequence[int] | np.ndarray, nominal_ns: int) -> Check:
    """The largest spacing of consecutive HEARTBEATs (their ``device_time_ns``, the device's own
    clock) over the nominal interval."""
    t = np.asarray(device_times_ns, dtype=np.int64)
    if t.size < 2:
        return measured(
            "heartbeat_interval",
            "feed",
            None,
            "x nominal",
            HEARTBEAT_LIMITS,
            detail=f"{t.size} heartbeats: a device must send them at least every "
            f"{nominal_ns / 1e6:g} ms",
        )
    gaps = np.diff(t)
    worst = float(gaps.max()) / nominal_ns
    if (gaps <= 0).any():
        worst = float("nan")
    return measured(
        "heartbeat_interval",
        "feed",
        round(worst, 3),
        "x nominal",
        HEARTBEAT_LIMITS,
        detail=f"{t.size} heartbeats, spacing median "
        f"{float(np.median(gaps)) / 1e6:.1f} ms max {float(gaps.max()) / 1e6:.1f} ms "
        f"(nominal {nominal_ns / 1e6:g} ms); non-increasing stamps: "
        f"{int((gaps <= 0).sum())}",
    )


def sync_record_until_last_answer(
    syncs_sent: int, answers: Sequence[tuple[int, int, int, int, int]]
) -> SyncRecord:
    """The exchanges of a campaign's sync master: SYNCs 1..``syncs_sent`` were sent, but only
    those up to the last one answered are judged — a feed device ends with its schedule while
    the rig keeps sending SYNCs (a device that stops answering for good mid-run shows in the
    clock KPIs' locked fraction)."""
    last = max((a[0] for a in answers), default=0)
    return SyncRecord(range(1, min(syncs_sent, last) + 1), answers)


@dataclass(frozen=True)
class SyncRecord:
    """The clock-sync exchanges of a session: every SYNC sent (``sent`` sync_seqs) and every
    DELAY_REQ received, in arrival order (``(sync_seq, t1, t2, t3, t4)``, t1 0 when the rig
    never sent that sync_seq)."""

    sent: Sequence[int]
    answers: Sequence[tuple[int, int, int, int, int]]


def sync_checks(interface: str, rec: SyncRecord) -> list[Check]:
    """Answers (every SYNC answered once), monotonic device stamps (t2 and t3 never go back in
    sync_seq order; equal t2 are fine: SYNCs read at once share a read stamp), plausible
    turnaround, causality (the device's turnaround fits inside the rig's round trip)."""
    sent = set(rec.sent)
    answered = [a for a in rec.answers if a[0] in sent]
    seqs = [a[0] for a in answered]
    dup = len(seqs) - len(set(seqs))
    stray = len(rec.answers) - len(answered)
    frac = None if not sent else len(set(seqs)) / len(sent)
    out = [
        measured(
            "sync_answers",
            interface,
            None if frac is None else round(frac, 4),
            "fraction",
            SYNC_ANSWER_LIMITS,
            detail=f"{len(set(seqs))} of {len(sent)} SYNCs answered; {dup} answered "
            f"twice, {stray} DELAY_REQs for SYNCs never sent",
        )
    ]
    if dup or stray:
        out[0] = measured(
            "sync_answers",
            interface,
            float("nan"),
            "fraction",
            SYNC_ANSWER_LIMITS,
            detail=out[0].detail,
        )
    arr = np.array([a[1:] for a in answered], dtype=np.int64).reshape(-1, 4)
    t1, t2, t3, t4 = arr.T
    back = int((np.diff(t2) < 0).sum() + (np.diff(t3) < 0).sum()) + int((t3 < t2).sum())
    out.append(
        measured(
            "sync_monotonic",
            interface,
            back if arr.size else None,
            "violations",
            ZERO,
            detail=f"t2 or t3 going back, or t3 < t2, in {back} places over {len(arr)} exchanges",
        )
    )
    turn = (t3 - t2) / 1000.0
    p99 = float(np.percentile(turn, 99)) if turn.size else None
    if turn.size and float(turn.min()) < 0:
        p99 = float(turn.min())  # a negative turnaround is judged as such
    out.append(
        measured(
            "sync_turnaround",
            interface,
            None if p99 is None else round(p99, 1),
            "us",
            TURNAROUND_LIMITS,
            detail="t3 - t2 p99"
            + (f", median {float(np.median(turn)):.1f} us" if turn.size else ": no exchange"),
        )
    )
    known = t1 != 0
    over = int(((t3 - t2)[known] > (t4 - t1)[known] + CAUSALITY_SLACK_NS).sum())
    out.append(
        measured(
            "sync_causality",
            interface,
            over if known.any() else None,
            "exchanges",
            ZERO,
            detail=f"device turnaround t3 - t2 longer than the rig's round trip "
            f"t4 - t1 in {over} of {int(known.sum())} exchanges",
        )
    )
    return out


def rate_adherence(
    intended_ns: Sequence[int] | np.ndarray,
    send_ns: Sequence[int] | np.ndarray,
    rx_ns: Sequence[int] | np.ndarray,
    rate_hz: float,
) -> list[Check]:
    """Open-loop adherence: lateness ``send_ns - intended_send_ns`` (device clock) median (and
    p99, not required), sends before their intended time, and the arrival rate over the run
    against the armed rate."""
    intended = np.asarray(intended_ns, dtype=np.int64)
    sent = np.asarray(send_ns, dtype=np.int64)
    rx = np.asarray(rx_ns, dtype=np.int64)
    late_us = (sent - intended) / 1000.0
    has = late_us.size > 0
    p50 = round(float(np.median(late_us)), 1) if has else None
    p99 = round(float(np.percentile(late_us, 99)), 1) if has else None
    worst = f"{float(late_us.max()):.1f}" if has else "-"
    what = f"send_ns - intended_send_ns over {late_us.size} ticks"
    out = [
        measured("rate_lateness", "feed", p50, "us", LATENESS_LIMITS,
                 detail=f"{what}, median; p99 {p99} us, max {worst} us"),
        measured("rate_lateness_p99", "feed", p99, "us", LATENESS_P99_LIMITS, required=False,
                 detail=f"{what}, p99 (a shared host's scheduling shows here)"),
        measured("rate_early_sends", "feed", int((late_us < 0).sum()) if has else None, "ticks",
                 ZERO, detail="ticks sent before their intended time (device clock)"),
    ]  # fmt: skip
    ratio = None
    detail = f"{rx.size} ticks: too few to judge a rate"
    if rx.size >= 10 and rate_hz > 0:
        span = float(rx[-1] - rx[0]) / 1e9
        if span > 0:
            ratio = round((rx.size - 1) / span / rate_hz, 4)
            detail = (
                f"{rx.size} ticks over {span:.3f} s = {(rx.size - 1) / span:,.1f}/s, armed "
                f"{rate_hz:g}/s"
            )
    out.append(measured("rate_arrival", "feed", ratio, "x armed", RATE_RATIO_LIMITS, detail=detail))
    return out


def first_tick(start_rig_ns: int, first_rx_ns: int | None, *, how: str) -> Check:
    """The first TICK's arrival relative to the schedule's start (rig clock, ms): none before
    it, none long after it. ``how``: how the start was given (the START, the device's config)."""
    if first_rx_ns is None:
        return measured(
            "first_tick",
            "feed",
            None,
            "ms",
            FIRST_TICK_LIMITS,
            detail=f"no TICK arrived after the start ({how})",
        )
    ms = round((first_rx_ns - start_rig_ns) / 1e6, 3)
    return measured(
        "first_tick",
        "feed",
        ms,
        "ms",
        FIRST_TICK_LIMITS,
        detail=f"first TICK {ms} ms after the start ({how})",
    )


def tick_fields(venue_id: int, n_assets: int, ticks: np.ndarray) -> Check:
    """Every TICK quotes the armed venue, an asset below ``n_assets``, bid <= ask, sizes >= 0."""
    if ticks.size == 0:
        return measured("tick_fields", "feed", None, "ticks", ZERO, detail="no ticks")
    bad = (
        (ticks["venue_id"] != venue_id)
        | (ticks["asset_id"] >= n_assets)
        | (ticks["bid_px"] > ticks["ask_px"])
        | (ticks["bid_size"] < 0)
        | (ticks["ask_size"] < 0)
    )
    n = int(bad.sum())
    return measured(
        "tick_fields",
        "feed",
        n,
        "ticks",
        ZERO,
        detail=f"{n} of {ticks.size} ticks with a wrong venue (expected {venue_id}), "
        f"asset (< {n_assets}), bid > ask or a negative size",
    )


@dataclass(frozen=True)
class SentOrder:
    """An ORDER as the rig sent it (what its ACK is judged against)."""

    order_id: int
    side: int
    size_lots: int
    limit_px: int
    tx_ns: int


#: the ACK statuses that end an order (an ``ACK`` status is an intermediate acknowledgement)
FINAL_STATUSES = frozenset((dm.ACK_STATUS_FILL, dm.ACK_STATUS_PARTIAL, dm.ACK_STATUS_REJECT))
KNOWN_STATUSES = FINAL_STATUSES | {dm.ACK_STATUS_ACK}


def ack_checks(
    orders: Iterable[SentOrder], acks: np.ndarray, rx_ns: np.ndarray, *, prices: bool = True
) -> list[Check]:
    """Every ORDER answered exactly once with a final status; fills within size and limit;
    device stamps monotonic. ``acks``: the ACK records in arrival order, ``rx_ns`` their rig
    receive stamps; ``prices`` False: the record holds no limit and fill prices (a campaign's
    broker trace), so ``fill_price`` is skipped."""
    by_id = {o.order_id: o for o in orders}
    t = _tally_acks(by_id, acks, rx_ns)
    finals = t.finals
    unanswered = sum(1 for oid in by_id if oid not in finals)
    twice = sum(n - 1 for n in finals.values() if n > 1)
    price = (
        measured(
            "fill_price",
            "broker",
            t.price_bad,
            "acks",
            ZERO,
            detail="fills above a buy's limit or below a sell's",
        )
        if prices
        else skipped("fill_price", "broker", "acks", ZERO, "no limit or fill prices recorded")
    )
    p99 = round(float(np.percentile(t.answer_ms, 99)), 3) if t.answer_ms else None
    return [
        measured("orders_answered", "broker", unanswered, "orders", ZERO,
                 detail=f"{len(by_id) - unanswered} of {len(by_id)} orders got a final ACK"),
        measured("answered_once", "broker", twice + t.unknown_ids, "acks", ZERO,
                 detail=f"{twice} extra final ACKs, {t.unknown_ids} ACKs for unknown order ids"),
        measured("final_status", "broker", t.bad_status, "acks", ZERO,
                 detail=f"{t.bad_status} ACKs with a status outside {sorted(KNOWN_STATUSES)}"),
        measured("fill_size", "broker", t.size_bad, "acks", ZERO,
                 detail="filled_lots > size_lots, < 0, a FILL not filling all, a PARTIAL "
                 "filling all or a REJECT filling any"),
        price,
        _stamps_monotonic(acks),
        measured("answer_time", "broker", p99, "ms", ANSWER_TIME_LIMITS, required=False,
                 detail="rig send of an ORDER to rig receive of its final ACK, p99 "
                 "(includes acks the device holds late on purpose)"),
    ]  # fmt: skip


@dataclass
class _AckTally:
    finals: dict[int, int]
    unknown_ids: int = 0
    bad_status: int = 0
    size_bad: int = 0
    price_bad: int = 0
    answer_ms: list[float] = field(default_factory=list)


def _tally_acks(by_id: Mapping[int, SentOrder], acks: np.ndarray, rx_ns: np.ndarray) -> _AckTally:
    """Final ACKs per order id and what is wrong with each ACK."""
    t = _AckTally(finals={})
    for i, ack in enumerate(acks):
        oid, status = int(ack["order_id"]), int(ack["status"])
        order = by_id.get(oid)
        t.bad_status += status not in KNOWN_STATUSES
        if order is None:
            t.unknown_ids += 1
            continue
        if status in FINAL_STATUSES:
            t.finals[oid] = t.finals.get(oid, 0) + 1
            t.answer_ms.append((int(rx_ns[i]) - order.tx_ns) / 1e6)
        t.size_bad += _fill_size_wrong(status, int(ack["filled_lots"]), order.size_lots)
        px = int(ack["fill_px"])
        over = px > order.limit_px if order.side > 0 else px < order.limit_px
        t.price_bad += int(ack["filled_lots"]) > 0 and over
    return t


def _fill_size_wrong(status: int, filled: int, size: int) -> bool:
    if filled < 0 or filled > size:
        return True
    if status == dm.ACK_STATUS_FILL:
        return filled != size
    if status == dm.ACK_STATUS_PARTIAL:
        return filled >= size
    if status == dm.ACK_STATUS_REJECT:
        return filled != 0
    return False


def _stamps_monotonic(acks: np.ndarray) -> Check:
    """ACK ``device_tx_ns`` never goes back (in arrival order) and ``device_rx_ns`` <=
    ``device_tx_ns`` in every ACK."""
    if acks.size == 0:
        return measured("device_stamps", "broker", None, "violations", ZERO, detail="no ACKs")
    tx = acks["device_tx_ns"].astype(np.int64)
    rx = acks["device_rx_ns"].astype(np.int64)
    back = int((np.diff(tx) < 0).sum())
    inverted = int((rx > tx).sum())
    return measured(
        "device_stamps",
        "broker",
        back + inverted,
        "violations",
        ZERO,
        detail=f"device_tx_ns going back {back} times, device_rx_ns after "
        f"device_tx_ns in {inverted} of {acks.size} ACKs",
    )


def malformed_survives(interface: str, after: SyncRecord, *, detail: str = "") -> Check:
    """After the garbage the device still answers every SYNC (it did not crash or wedge)."""
    sent = set(after.sent)
    answered = {a[0] for a in after.answers if a[0] in sent}
    frac = None if not sent else round(len(answered) / len(sent), 4)
    return measured(
        "malformed_survives",
        interface,
        frac,
        "fraction",
        SYNC_ANSWER_LIMITS,
        detail=f"{len(answered)} of {len(sent)} SYNCs sent after the garbage "
        f"answered{'; ' + detail if detail else ''}",
    )


def malformed_no_answer(interface: str, answers: Mapping[str, int], units: int) -> Check:
    """Nothing the device sent answers a garbage unit (``answers``: what answered, by kind)."""
    n = sum(answers.values())
    return measured(
        "malformed_no_answer",
        interface,
        n,
        "answers",
        ZERO,
        detail=f"{units} garbage units sent; answered: {dict(answers) or 'none'}",
    )

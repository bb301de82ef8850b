"""The feed device suite: one session on the device's link, then every feed check judged.

:func:`run_feed_suite` opens the rig side of the link through the backend registry
(:class:`~arbsphere.adapters.backends.FeedLinkSpec`, UDP or serial alike) and drives the device
as the rig does, in four phases, with the clock-sync exchange running throughout:

1. *idle*: HEARTBEATs and clock sync before the schedule starts (a device to be armed is
   first waited for, up to ``presence_s``, then heard ``idle_s`` more);
2. *start*: with ``target.start_ns`` None the device is armed with the start handshake (ARM,
   repeated every :data:`ARM_REPEAT_NS` until an ARMED with the same ``arm_seq``; START at the
   armed start), else it starts by itself at ``start_ns`` (a schedule given in its config);
3. *traffic*: ``settle_s`` then ``traffic_s`` of TICKs at the armed rate (rate adherence is
   judged over the ``traffic_s`` window: a device that started late sends its overdue ticks
   at once, as an open-loop sender must, and that catch-up is not the rate it keeps);
4. *malformed*: garbage on the link (:mod:`.garbage`), then ``malformed_s`` more of clock sync.

The device must keep sending through phase 4 (an armed or configured schedule of at least
:meth:`FeedSuiteSettings.schedule_s`). Checks, with limits from :mod:`.judges`: framing,
message_decode, device_id, tick_sequence, tick_duplicates, datagram_sequence,
session_restart, heartbeat_interval, sync_answers, sync_monotonic, sync_turnaround,
sync_causality, handshake_armed, first_tick, rate_lateness, rate_early_sends, rate_arrival,
tick_fields, malformed_survives, malformed_no_answer, hw_rx_timestamps, serial_low_latency.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arbsphere.adapters.backends import FeedLinkSpec
from arbsphere.adapters.links import FeedLink
from arbsphere.clock import Clock
from arbsphere.conformance import capabilities, judges
from arbsphere.conformance.garbage import GARBAGE_SEQ_BASE, RAW_WRITERS, garbage_units
from arbsphere.conformance.model import (
    FEED,
    Check,
    Limits,
    SuiteResult,
    for_device,
    measured,
    skipped,
)
from arbsphere.conformance.session import FEED_SENDS, LinkSession
from arbsphere.errors import LinkError
from arbsphere.firmware_interfaces import messages as dm

#: an unanswered ARM is sent again this often
ARM_REPEAT_NS = 100_000_000
#: ms from the first ARM to its ARMED
ARMED_LIMITS = Limits.at_most(250.0, 1000.0)


@dataclass(frozen=True)
class FeedTarget:
    """A feed device as the suite sees it: its link and what it was told."""

    name: str
    link: FeedLinkSpec
    device_id: int
    venue_id: int
    rate_hz: float
    n_assets: int = 1
    #: rig time the device starts by itself (None: arm it with the start handshake)
    start_ns: int | None = None
    heartbeat_interval_ms: float = 100.0
    #: the probe's findings for the link (capability gates; empty: none)
    findings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FeedSuiteSettings:
    #: how long a device to be armed may take to be heard at all (its start-up)
    presence_s: float = 10.0
    idle_s: float = 0.6
    settle_s: float = 0.5
    traffic_s: float = 2.0
    malformed_s: float = 0.6
    arm_timeout_s: float = 1.5
    #: the armed start is this far after the ARM
    start_lead_s: float = 0.5

    def schedule_s(self) -> float:
        """How long the device's schedule must last from its start (traffic, the malformed
        phase, a margin)."""
        return self.settle_s + self.traffic_s + self.malformed_s + 1.0


def run_feed_suite(
    target: FeedTarget,
    clock: Clock,
    settings: FeedSuiteSettings | None = None,
    *,
    on_open: Callable[[FeedLink], None] | None = None,
) -> SuiteResult:
    """Run the feed suite against ``target`` (see the module docstring). ``on_open`` is called
    with the link once it is open (to tell a device where to send: the link's ``address``)."""
    s = settings or FeedSuiteSettings()
    link = target.link.open(clock)
    try:
        if on_open is not None:
            on_open(link)
        session = LinkSession(link, clock, target.device_id, FEED_SENDS)
        t0 = clock.now_ns()
        if target.start_ns is None:
            heard = lambda: session.first_rx_ns is not None  # noqa: E731
            session.pump(t0 + round(s.presence_s * 1e9), stop=heard)
            session.pump(clock.now_ns() + round(s.idle_s * 1e9))
            armed, start_ns = _arm(session, target, s, clock)
            hb_from = t0
        else:
            start_ns, hb_from = target.start_ns, target.start_ns
            session.pump(start_ns)
            armed = skipped(
                "handshake_armed",
                FEED,
                "ms",
                ARMED_LIMITS,
                "the device starts on the schedule of its own configuration "
                "(start_ns given): the start handshake is not exercised",
            )
        traffic_from = start_ns + round(s.settle_s * 1e9)
        traffic_end = traffic_from + round(s.traffic_s * 1e9)
        session.pump(traffic_end)
        garbage, first_after = _send_garbage(session, target)
        session.pump(clock.now_ns() + round(s.malformed_s * 1e9))
        checks = _judge(session, target, armed, start_ns, (traffic_from, traffic_end), hb_from)
        checks += _malformed(session, first_after, garbage)
        checks += [
            capabilities.hw_rx_timestamps(
                FEED, target.link.backend, target.findings, link.timestamp_source
            ),
            capabilities.serial_low_latency(
                FEED, target.link.backend, str(getattr(target.link.settings, "port", ""))
            ),
        ]
        info = {**session.info(), "start_ns": start_ns, "traffic_end_ns": traffic_end}
    finally:
        link.close()
    return SuiteResult(
        target.name, FEED, target.link.backend, for_device(checks, target.name), info
    )


def _arm(
    session: LinkSession, target: FeedTarget, s: FeedSuiteSettings, clock: Clock
) -> tuple[Check, int]:
    """The start handshake: ARM until ARMED (same arm_seq, status OK), START at the start.
    Returns the check and the armed start (rig clock)."""
    interval = round(1e9 / target.rate_hz)
    arm = dm.new_record(dm.MSG_ARM, target.device_id)
    first_arm = clock.now_ns()
    start_ns = first_arm + round(s.start_lead_s * 1e9)
    arm["arm_seq"], arm["start_ns"], arm["tick_interval_ns"] = 1, start_ns, interval
    arm["n_ticks"] = max(1, round(s.schedule_s() * target.rate_hz))
    arm["venue_id"], arm["n_assets"] = target.venue_id, target.n_assets
    armed_recs = session.by_type[dm.MSG_ARMED]
    deadline = first_arm + round(s.arm_timeout_s * 1e9)
    sent = 0
    while not len(armed_recs) and clock.now_ns() < deadline:
        sent += session.send([dm.encode(arm)]) is not None
        session.pump(
            min(deadline, clock.now_ns() + ARM_REPEAT_NS), stop=lambda: bool(len(armed_recs))
        )
    check = _judge_armed(armed_recs.records(), armed_recs.rx_ns(), first_arm, sent)
    session.pump(start_ns)
    start = dm.new_record(dm.MSG_START, target.device_id)
    start["arm_seq"], start["start_ns"] = 1, start_ns
    session.send([dm.encode(start)])
    return check, start_ns


def _judge_armed(armed: np.ndarray, rx: np.ndarray, first_arm_ns: int, sent: int) -> Check:
    if armed.size == 0:
        return measured(
            "handshake_armed",
            FEED,
            None,
            "ms",
            ARMED_LIMITS,
            detail=f"no ARMED answered {sent} ARMs",
        )
    a = armed[0]
    ok = int(a["arm_seq"]) == 1 and int(a["status"]) == dm.ARM_STATUS_OK
    ms = round((int(rx[0]) - first_arm_ns) / 1e6, 3)
    return measured(
        "handshake_armed",
        FEED,
        ms if ok else float("nan"),
        "ms",
        ARMED_LIMITS,
        detail=f"ARMED arm_seq {int(a['arm_seq'])} (sent 1), status "
        f"{int(a['status'])} (OK is {dm.ARM_STATUS_OK}) after {ms} ms, "
        f"{sent} ARMs sent",
    )


def _judge(
    session: LinkSession,
    target: FeedTarget,
    armed: Check,
    start_ns: int,
    window_ns: tuple[int, int],
    hb_from: int,
) -> list[Check]:
    counters = session.link.counters()
    backend = target.link.backend
    ticks_rec = session.by_type[dm.MSG_TICK]
    ticks = ticks_rec.records()
    hbs = session.by_type[dm.MSG_HEARTBEAT].records(since_ns=hb_from)
    window = ticks_rec.records(*window_ns)
    rx_window = ticks_rec.rx_ns(*window_ns)
    first_rx = int(ticks_rec.rx_ns()[0]) if len(ticks_rec) else None
    how = "armed, START sent" if target.start_ns is None else "from the device's configuration"
    return [
        judges.framing(FEED, counters),
        judges.message_decode(FEED, session.undecodable, session.unexpected),
        judges.device_id(FEED, target.device_id, session.device_ids),
        *judges.tick_sequence(ticks["device_seq"]),
        judges.datagram_sequence(FEED, backend, counters),
        judges.session_restart(FEED, counters, None),
        judges.heartbeat_interval(hbs["device_time_ns"], round(target.heartbeat_interval_ms * 1e6)),
        *judges.sync_checks(FEED, session.sync_record()),
        armed,
        judges.first_tick(start_ns, first_rx, how=how),
        *judges.rate_adherence(
            window["intended_send_ns"], window["send_ns"], rx_window, target.rate_hz
        ),
        judges.tick_fields(target.venue_id, target.n_assets, ticks),
    ]


def _send_garbage(session: LinkSession, target: FeedTarget) -> tuple[int, int]:
    """Every garbage unit for the backend, raw; returns (units sent, first sync_seq after)."""
    write = RAW_WRITERS[target.link.backend]
    units = garbage_units(target.link.backend, target.device_id)
    sent = 0
    for unit in units:
        try:
            write(session.link, unit)
            sent += 1
        except LinkError as exc:
            session.link_errors.append(str(exc))
    return sent, session.sync.next_seq


def _malformed(session: LinkSession, first_after: int, garbage: int) -> list[Check]:
    answered = sum(1 for a in session.answers if a[0] >= GARBAGE_SEQ_BASE)
    answers = {"DELAY_REQ to a garbage SYNC": answered} if answered else {}
    return [
        judges.malformed_survives(FEED, session.sync_record(first_after)),
        judges.malformed_no_answer(FEED, answers, garbage),
    ]

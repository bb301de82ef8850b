"""The open-loop send schedule of the emulated feed devices (no coordinated omission).

Tick ``k`` is due at ``start_at_ns + offset_ns(k)`` on the rig timebase, ``offset_ns`` coming
from the market stream. The feed sleeps (a blocking wait, never a spin) until a send is due,
stamps ``intended_send_ns`` = device time of the due time and ``send_ns`` = device time just
before the write, and sends. Behind schedule it sends at once: it never skips a tick and never
moves an intended time, so queueing delay shows up in the measured latency instead of
vanishing; ``late_sends`` and ``max_late_us`` say how far behind it fell.

Heartbeats are due every ``heartbeat_interval`` from the start, are never skipped either, and go
out before any tick send due at or after them, so the message order is the same on every run.
A final heartbeat follows the last tick. ``HEARTBEAT.device_seq`` is the ``device_seq`` the next
TICK will carry, so a receiver detects lost trailing ticks.

:func:`run_feed` is transport-agnostic: the UDP and serial feeds hand it a :class:`Transmitter`.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from arbsphere.clock import Clock, DeviceClock, RealtimeClock
from arbsphere.errors import ConfigError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.emulators.device_main import ConfigReader, device_clock

#: Longest single sleep; bounds the reaction time to a stop request without a wakeup fd.
MAX_SLEEP_S = 0.05
QUOTE_FIELDS = ("seq", "offset_ns", "bid_px", "ask_px", "bid_size", "ask_size")


class QuoteSource(Protocol):
    """A venue's quote stream (``market.VenueQuoteStream``): fields :data:`QUOTE_FIELDS`."""

    def next_batch(self, n: int) -> np.ndarray: ...


class Transmitter(Protocol):
    """Device side of a feed link: one call = one transport unit (datagram, or one write)."""

    def send(self, messages: Sequence[bytes]) -> None: ...

    def counters(self) -> dict[str, int]: ...

    def close(self) -> None: ...


class OpenLoopSchedule:
    """Waits for due times on the rig clock and accounts how late each send was."""

    def __init__(
        self,
        start_at_ns: int,
        clock: Clock,
        sleep: Callable[[float], None],
        stop: Callable[[], bool],
        *,
        late_tolerance_ns: int = 200_000,
    ) -> None:
        if late_tolerance_ns < 0:
            raise ValueError(f"late_tolerance_ns must be >= 0, got {late_tolerance_ns}")
        self.start_at_ns = start_at_ns
        self.clock = clock
        self.sleep = sleep
        self.stop = stop
        self.late_tolerance_ns = late_tolerance_ns
        self.sends = 0
        self.late_sends = 0
        self.max_late_ns = 0

    def due_ns(self, offset_ns: int) -> int:
        return self.start_at_ns + offset_ns

    def wait_until(self, due_ns: int) -> bool:
        """Block until the rig clock reaches ``due_ns``; False if a stop came first."""
        while True:
            if self.stop():
                return False
            left = due_ns - self.clock.now_ns()
            if left <= 0:
                return True
            self.sleep(min(left * 1e-9, MAX_SLEEP_S))

    def lateness(self, due_ns: int, send_ns: int, *, count: bool = True) -> int:
        """Account one send at rig time ``send_ns`` that was due at ``due_ns``; return ns late."""
        late = send_ns - due_ns
        if count:
            self.sends += 1
            if late > self.late_tolerance_ns:
                self.late_sends += 1
            self.max_late_ns = max(self.max_late_ns, late)
        return late


@dataclass(frozen=True)
class FeedPlan:
    """What a feed device sends and when (transport-agnostic part of its config)."""

    device_id: int
    venue_id: int
    asset_id: int
    start_at_ns: int
    #: exactly one of n_ticks / duration_ns is set
    n_ticks: int | None
    duration_ns: int | None
    ticks_per_send: int = 1
    heartbeat_interval_ns: int = 100_000_000  # 0: no heartbeats
    late_tolerance_ns: int = 200_000
    market: Any = None  # market.MarketConfig

    def __post_init__(self) -> None:
        if (self.n_ticks is None) == (self.duration_ns is None):
            raise ValueError("exactly one of n_ticks and duration_ns must be set")


FEED_KEYS = (
    "device_id", "venue_id", "asset_id", "session", "market", "start_at_ns", "n_ticks",
    "duration_s", "heartbeat_interval_ms", "late_tolerance_us", "clock", "stats_path",
)  # fmt: skip


def read_feed_plan(cfg: ConfigReader, *, batch_key: str, extra_keys: Sequence[str]) -> FeedPlan:
    """Validate the keys every feed device shares; ``batch_key`` names ticks per send."""
    from arbsphere.firmware_interfaces.emulators.market import MarketConfig

    cfg.only((*FEED_KEYS, batch_key, *extra_keys))
    which = cfg.exactly_one("n_ticks", "duration_s")
    n_ticks = cfg.get_int("n_ticks", min_value=1) if which == "n_ticks" else None
    duration_ns = (
        int(cfg.get_float("duration_s", min_value=1e-6) * 1e9) if which == "duration_s" else None
    )
    market = cfg.get_table("market")
    allowed = {f.name for f in dataclasses.fields(MarketConfig)}
    market.only(allowed)
    try:
        market_cfg = MarketConfig(**market.data)
    except (TypeError, ValueError, ConfigError) as exc:
        raise ConfigError(f"invalid market settings: {exc}", file=cfg.file, key="market") from exc
    device_clock(cfg.get_table("clock"), RealtimeClock(), 0)  # validates the clock table
    return FeedPlan(
        device_id=cfg.get_int("device_id", min_value=0, max_value=2**32 - 1),
        venue_id=cfg.get_int("venue_id", min_value=0, max_value=2**16 - 1),
        asset_id=cfg.get_int("asset_id", 0, min_value=0, max_value=2**16 - 1),
        start_at_ns=cfg.get_int("start_at_ns", min_value=0),
        n_ticks=n_ticks,
        duration_ns=duration_ns,
        ticks_per_send=cfg.get_int(batch_key, 1, min_value=1, max_value=16),
        heartbeat_interval_ns=cfg.get_int("heartbeat_interval_ms", 100, min_value=0) * 1_000_000,
        late_tolerance_ns=int(cfg.get_float("late_tolerance_us", 200.0, min_value=0.0) * 1000),
        market=market_cfg,
    )


def open_quotes(plan: FeedPlan, cfg: ConfigReader) -> QuoteSource:
    """The plan's market stream; a venue or asset outside the market is a config error."""
    from arbsphere.firmware_interfaces.emulators.market import VenueQuoteStream

    try:
        return VenueQuoteStream(plan.market, plan.venue_id, plan.asset_id)
    except ValueError as exc:
        key = "asset_id" if str(exc).startswith("asset_id") else "venue_id"
        raise cfg.error(key, str(exc)) from exc


def run_feed(
    plan: FeedPlan,
    quotes: QuoteSource,
    tx: Transmitter,
    schedule: OpenLoopSchedule,
    dev_clock: DeviceClock,
    stats: dict[str, Any],
    *,
    chunk: int = 1024,
) -> None:
    """Send the plan's ticks (and heartbeats) on schedule through ``tx``; ``stats`` is brought up
    to date after every chunk of ticks and on every exit (stop, error)."""
    rig = schedule.clock
    size = dm.LAYOUTS[dm.MSG_TICK].size
    chunk = max(plan.ticks_per_send, chunk - chunk % plan.ticks_per_send)  # whole sends only
    ticks = dm.new_records(dm.MSG_TICK, plan.device_id, chunk)
    ticks["venue_id"] = plan.venue_id
    ticks["asset_id"] = plan.asset_id
    hb = dm.new_record(dm.MSG_HEARTBEAT, plan.device_id)
    stats.update(
        ticks_sent=0, heartbeats_sent=0, sends=0, late_sends=0, max_late_us=0.0,
        late_heartbeats=0, first_send_ns=None, last_send_ns=None, stopped_early=False,
        start_at_ns=plan.start_at_ns, n_ticks_planned=plan.n_ticks,
        duration_ns_planned=plan.duration_ns, next_device_seq=None,
    )  # fmt: skip
    next_hb = plan.start_at_ns + plan.heartbeat_interval_ns if plan.heartbeat_interval_ns else None

    def send_heartbeat(due: int, next_seq: int) -> bool:
        if not schedule.wait_until(due):
            return False
        base = rig.now_ns()
        hb["device_seq"] = next_seq
        hb["device_time_ns"] = dev_clock.device_time(base)
        tx.send([dm.encode(hb)])
        if schedule.lateness(due, base, count=False) > schedule.late_tolerance_ns:
            stats["late_heartbeats"] += 1
        stats["heartbeats_sent"] += 1
        return True

    tick_fields = dm.TICK_DTYPE.fields
    assert tick_fields is not None
    send_offset = int(tick_fields["send_ns"][1])
    pack_send_ns = struct.Struct("<q").pack_into
    first_send: int | None = None
    last_send: int | None = None

    sent = 0
    next_seq: int | None = None
    done = False
    while not done:
        want = chunk if plan.n_ticks is None else min(chunk, plan.n_ticks - sent)
        q = quotes.next_batch(want)
        n = len(q)
        if plan.duration_ns is not None:
            n = int(np.searchsorted(q["offset_ns"], plan.duration_ns, side="left"))
        if n < want or n == 0 or (plan.n_ticks is not None and sent + n >= plan.n_ticks):
            done = True
        recs = ticks[:n]
        for name in ("bid_px", "ask_px", "bid_size", "ask_size"):
            recs[name] = q[name][:n]
        recs["device_seq"] = q["seq"][:n]
        due = plan.start_at_ns + q["offset_ns"][:n].astype(np.int64)
        recs["intended_send_ns"] = [dev_clock.device_time(int(d)) for d in due]
        # Encoded (and header-checked) once per chunk; each send patches its send_ns in place.
        raw = bytearray(dm.encode_batch(recs))
        seqs = recs["device_seq"].tolist()
        dues = due.tolist()
        try:
            for i in range(0, n, plan.ticks_per_send):
                j = min(i + plan.ticks_per_send, n)
                last_due = dues[j - 1]
                while next_hb is not None and next_hb <= last_due:
                    if not send_heartbeat(next_hb, seqs[i]):
                        stats["stopped_early"] = True
                        return
                    next_hb += plan.heartbeat_interval_ns
                if not schedule.wait_until(last_due):
                    stats["stopped_early"] = True
                    return
                base = rig.now_ns()
                dev_send = dev_clock.device_time(base)
                for k in range(i, j):
                    pack_send_ns(raw, k * size + send_offset, dev_send)
                tx.send([bytes(raw[k * size : (k + 1) * size]) for k in range(i, j)])
                schedule.lateness(last_due, base)
                if first_send is None:
                    first_send = base
                last_send = base
                sent += j - i
                next_seq = seqs[j - 1] + 1
        finally:
            stats.update(
                ticks_sent=sent, next_device_seq=next_seq, sends=schedule.sends,
                late_sends=schedule.late_sends, max_late_us=round(schedule.max_late_ns / 1000.0, 3),
                first_send_ns=first_send, last_send_ns=last_send,
            )  # fmt: skip
    if next_hb is not None and next_seq is not None:
        send_heartbeat(rig.now_ns(), next_seq)

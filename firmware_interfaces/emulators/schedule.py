"""The open-loop send schedule of the emulated feed devices (no coordinated omission).

Tick ``k`` is due at ``start_at_ns + offset_ns(k)`` on the rig timebase, ``offset_ns`` coming
from the market stream. The feed sleeps (a blocking wait, never a spin) until a send is due,
stamps ``intended_send_ns`` = device time of the due time and ``send_ns`` = device time just
before the write, and sends. Behind schedule it sends at once: it never skips a tick and never
moves an intended time, so queueing delay shows up in the measured latency instead of
vanishing; ``late_sends`` and ``max_late_us`` say how far behind it fell.

Heartbeats are due every ``heartbeat_interval`` from the start, are never skipped either, and go
out before any tick send due at or after them, so the message order is the same on every run.
A heartbeat also goes out at start-up, before the schedule starts (the rig learns of the device
and can align its clock first), and a final one follows the last tick.
``HEARTBEAT.device_seq`` is the ``device_seq`` the next TICK will carry, so a receiver detects
lost trailing ticks.

While it waits, a feed also serves the rig -> device direction of its link (clock-sync
exchanges, impairment releases): :class:`ServicedSleep` is then the schedule's sleep, one
``select()`` on the signal waker and the link fd, cut short to the link's next due release.
Whatever arrives is handled at once and the wait resumes from the clock, so the schedule is
undisturbed; a tick that falls due during the handling goes out late and is counted so.

:func:`run_feed` is transport-agnostic: the UDP and serial feeds hand it a :class:`Transmitter`.
"""

from __future__ import annotations

import dataclasses
import select
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from arbsphere.clock import Clock, DeviceClock, RealtimeClock
from arbsphere.errors import ConfigError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.device_main import ConfigReader, Waker, device_clock

#: Longest single sleep; bounds the reaction time to a stop request without a wakeup fd.
MAX_SLEEP_S = 0.05
#: an impairment release is approached by waking this early and spinning (timer slack is 1 ns
#: in an impaired device, but a wake-up still takes tens of µs on a loaded VM)
RELEASE_SPIN_NS = 80_000
#: idle time in which a link may draw its impairment random numbers (~0.5 ms a block)
PREPARE_S = 0.002
QUOTE_FIELDS = ("seq", "offset_ns", "bid_px", "ask_px", "bid_size", "ask_size")


class QuoteSource(Protocol):
    """A venue's quote stream (``market.VenueQuoteStream``): fields :data:`QUOTE_FIELDS`, plus
    ``asset_id`` when it quotes several assets (``market.RoundRobinQuotes``)."""

    def next_batch(self, n: int) -> np.ndarray: ...


class Transmitter(Protocol):
    """Device side of a feed link: one call = one transport unit (datagram, or one write)."""

    def send(self, messages: Sequence[bytes], at_ns: int | None = None) -> None:
        """``at_ns``: rig time the unit left the device (its transmit stamp, when it carries
        one); an impairment stage holds it from then, not from when this call got to it."""
        ...

    def send_stamped(
        self, messages: Sequence[bytes | bytearray], stamp_offset: int, stamp: Callable[[], int]
    ) -> None:
        """Send like :meth:`send` with the i64 at ``stamp_offset`` of every message set to one
        ``stamp()`` value, called as late as the transport allows: after the unit is built,
        just before it goes to the wire (a device stamps transmit time at its port)."""
        ...

    def counters(self) -> dict[str, int]: ...

    def close(self) -> None: ...


#: a message's i64 time field (``send_ns``, ``t3``), packed in place
I64_FIELD = struct.Struct("<q")


def stamp_messages(
    messages: Sequence[bytes | bytearray], stamp_offset: int, value: int
) -> list[bytes]:
    """Copies of ``messages`` with the i64 at ``stamp_offset`` of each set to ``value``."""
    out = []
    for m in messages:
        if stamp_offset + 8 > len(m):
            raise ValueError(f"stamp at offset {stamp_offset} does not fit a {len(m)}-byte message")
        b = bytearray(m)
        I64_FIELD.pack_into(b, stamp_offset, value)
        out.append(bytes(b))
    return out


class LinkService(Protocol):
    """What a feed serves while it waits (``sync_responder.RigInbound``)."""

    def fileno(self) -> int | None:
        """The fd to wait on for input, or None while there is none to wait for."""
        ...

    def on_readable(self) -> None: ...

    def next_due_ns(self) -> int | None:
        """Rig time of the link's next timed action (an impairment release), or None."""
        ...

    def on_due(self, now_ns: int) -> None: ...

    def prepare(self) -> bool:
        """Do deferrable work now (the feed is idle); True if it took time."""
        ...


class ServicedSleep:
    """A sleep for :class:`OpenLoopSchedule` that serves ``link`` while blocked (see the module
    docstring). It blocks in ``select()``; only an impairment release (a link with a delay
    injected on purpose) is met by waking :data:`RELEASE_SPIN_NS` early and spinning to its
    due time, because the injected delay must be exact: a wake-up alone is tens of µs late."""

    def __init__(self, waker: Waker, clock: Clock, link: LinkService) -> None:
        self.waker = waker
        self.clock = clock
        self.link = link
        self._wake_fd = waker.fileno()

    def __call__(self, seconds: float) -> None:
        link = self.link
        due = link.next_due_ns()
        if due is not None:
            left = due - self.clock.now_ns()
            if left <= RELEASE_SPIN_NS:
                while self.clock.now_ns() < due:
                    pass
                link.on_due(self.clock.now_ns())
                return
            seconds = min(seconds, (left - RELEASE_SPIN_NS) * 1e-9)
        if seconds > PREPARE_S and link.prepare():
            return  # that took a while: the caller looks at the clock again
        fd = link.fileno()
        fds = [self._wake_fd] if fd is None else [self._wake_fd, fd]
        readable = select.select(fds, [], [], max(seconds, 0.0))[0]
        if readable:
            if self._wake_fd in readable:
                self.waker.drain()
            if fd is not None and fd in readable:
                link.on_readable()
        due = link.next_due_ns()
        if due is not None:
            now = self.clock.now_ns()
            if due <= now:
                link.on_due(now)


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
    #: (from, to) ns after start_at: the device goes silent (no ticks, no heartbeats) and, when
    #: it resumes, its sequence continues without a gap; None: no outage
    outage_ns: tuple[int, int] | None = None
    #: "fixed": every tick quotes ``asset_id``; "round_robin": tick k quotes asset
    #: k mod market.n_assets (one device sequence across assets; the rate stays per venue)
    asset_order: str = "fixed"
    #: no schedule in the config: the device idles until the rig arms it (start handshake,
    #: :mod:`.start_handshake`), which brings start, rate and n_ticks (start_at_ns 0 till then)
    await_arm: bool = False

    def __post_init__(self) -> None:
        if self.await_arm:
            if self.n_ticks is not None or self.duration_ns is not None:
                raise ValueError("a device awaiting ARM takes n_ticks from it, not a length")
        elif (self.n_ticks is None) == (self.duration_ns is None):
            raise ValueError("exactly one of n_ticks and duration_ns must be set")
        if self.asset_order not in ASSET_ORDERS:
            raise ValueError(f"asset_order {self.asset_order!r}: one of {ASSET_ORDERS}")


#: how a feed picks the asset of each tick (see :class:`FeedPlan`)
ASSET_ORDERS = ("fixed", "round_robin")

FEED_KEYS = (
    "device_id", "venue_id", "asset_id", "asset_order", "session", "market", "start_at_ns",
    "n_ticks", "duration_s", "heartbeat_interval_ms", "late_tolerance_us", "clock",
    "impairment", "stats_path", "outage_s",
)  # fmt: skip


def read_feed_plan(cfg: ConfigReader, *, batch_key: str, extra_keys: Sequence[str]) -> FeedPlan:
    """Validate the keys every feed device shares; ``batch_key`` names ticks per send."""
    from arbsphere.firmware_interfaces.emulators.market import MarketConfig

    cfg.only((*FEED_KEYS, batch_key, *extra_keys))
    await_arm = not cfg.has("start_at_ns")
    which = None
    if await_arm:  # an external device: the rig's ARM says when, how fast and how long
        for key in ("n_ticks", "duration_s"):
            if cfg.has(key):
                why = "only with start_at_ns: without one the ARM brings the schedule"
                raise cfg.error(key, why)
    else:
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
    asset_order = cfg.get_str("asset_order", "fixed")
    if asset_order not in ASSET_ORDERS:
        raise cfg.error("asset_order", f"{asset_order!r}: must be one of {', '.join(ASSET_ORDERS)}")
    if asset_order == "round_robin" and cfg.has("asset_id"):
        raise cfg.error("asset_id", "only with asset_order 'fixed' (round_robin quotes all)")
    return FeedPlan(
        device_id=cfg.get_int("device_id", min_value=0, max_value=2**32 - 1),
        venue_id=cfg.get_int("venue_id", min_value=0, max_value=2**16 - 1),
        asset_id=cfg.get_int("asset_id", 0, min_value=0, max_value=2**16 - 1),
        start_at_ns=0 if await_arm else cfg.get_int("start_at_ns", min_value=0),
        n_ticks=n_ticks,
        duration_ns=duration_ns,
        ticks_per_send=cfg.get_int(batch_key, 1, min_value=1, max_value=16),
        heartbeat_interval_ns=cfg.get_int("heartbeat_interval_ms", 100, min_value=0) * 1_000_000,
        late_tolerance_ns=int(cfg.get_float("late_tolerance_us", 200.0, min_value=0.0) * 1000),
        market=market_cfg,
        outage_ns=_outage(cfg),
        asset_order=asset_order,
        await_arm=await_arm,
    )


def _outage(cfg: ConfigReader) -> tuple[int, int] | None:
    """``outage_s = [from, to]`` (seconds after the schedule's start), or None."""
    if not cfg.has("outage_s"):
        return None
    raw = cfg.get_list("outage_s")
    ok = len(raw) == 2 and all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw)
    if not ok or not 0 <= raw[0] < raw[1]:
        raise cfg.error("outage_s", f"must be [from, to] seconds with 0 <= from < to, got {raw!r}")
    return round(raw[0] * 1e9), round(raw[1] * 1e9)


def open_quotes(plan: FeedPlan, cfg: ConfigReader) -> QuoteSource:
    """The plan's market stream; a venue or asset outside the market is a config error."""
    from arbsphere.firmware_interfaces.emulators.market import RoundRobinQuotes, VenueQuoteStream

    try:
        if plan.asset_order == "round_robin":
            return RoundRobinQuotes(plan.market, plan.venue_id)
        return VenueQuoteStream(plan.market, plan.venue_id, plan.asset_id)
    except ValueError as exc:
        text = str(exc)
        key = "asset_id" if text.startswith("asset_id") else "venue_id"
        if text.startswith("with n_assets"):
            key = "market"
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
    _FeedRun(plan, quotes, tx, schedule, dev_clock, stats, chunk).run()


class _FeedRun:
    """One run of :func:`run_feed`: the plan's quotes taken a chunk at a time (outage ticks
    dropped, records filled and encoded once per chunk), each chunk sent on schedule with the
    heartbeats due before its sends."""

    def __init__(
        self,
        plan: FeedPlan,
        quotes: QuoteSource,
        tx: Transmitter,
        schedule: OpenLoopSchedule,
        dev_clock: DeviceClock,
        stats: dict[str, Any],
        chunk: int,
    ) -> None:
        self.plan = plan
        self.quotes = quotes
        self.tx = tx
        self.schedule = schedule
        self.rig = schedule.clock
        self.dev_clock = dev_clock
        self.stats = stats
        self.size = dm.LAYOUTS[dm.MSG_TICK].size
        self.chunk = max(plan.ticks_per_send, chunk - chunk % plan.ticks_per_send)  # whole sends
        self.ticks = dm.new_records(dm.MSG_TICK, plan.device_id, self.chunk)
        self.ticks["venue_id"] = plan.venue_id
        self.ticks["asset_id"] = plan.asset_id
        self.hb = dm.new_record(dm.MSG_HEARTBEAT, plan.device_id)
        stats.update(
            ticks_sent=0, heartbeats_sent=0, sends=0, late_sends=0, max_late_us=0.0,
            outage_ticks=0, late_heartbeats=0, first_send_ns=None, last_send_ns=None,
            stopped_early=False, start_at_ns=plan.start_at_ns, n_ticks_planned=plan.n_ticks,
            duration_ns_planned=plan.duration_ns, next_device_seq=None, ticks_per_asset={},
        )  # fmt: skip
        # ticks sent per asset (a quote source with an ``asset_id`` field quotes several)
        self.per_asset: dict[int, int] = {}
        hb_every = plan.heartbeat_interval_ns
        self.next_hb: int | None = plan.start_at_ns + hb_every if hb_every else None
        self.hello = self.next_hb is not None
        tick_fields = dm.TICK_DTYPE.fields
        assert tick_fields is not None
        self.send_offset = int(tick_fields["send_ns"][1])
        self.first_send: int | None = None
        self.last_send: int | None = None
        self.sent = 0
        self.next_seq: int | None = None

    def run(self) -> None:
        """The start-up heartbeat, every chunk of the plan, and the final heartbeat."""
        done = False
        while not done:
            recs, due, done = self._next_chunk()
            # Encoded (and header-checked) once per chunk; each send stamps its send_ns last.
            raw = bytearray(dm.encode_batch(recs))
            seqs = recs["device_seq"].tolist()
            if self.hello and seqs:
                # announce the device at once: the rig learns where it is (a UDP feed's
                # address) and can run the clock exchange before the schedule starts
                self.hello = False
                if not self._send_heartbeat(self.rig.now_ns(), seqs[0]):
                    self.stats["stopped_early"] = True
                    return
            if not self._send_chunk(recs, raw, seqs, due.tolist()):
                self.stats["stopped_early"] = True
                return
        if self.next_hb is not None and self.next_seq is not None:
            self._send_heartbeat(self.rig.now_ns(), self.next_seq)

    def _next_chunk(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """The next chunk's tick records, their due times on the rig clock, and whether it is
        the plan's last."""
        plan, stats = self.plan, self.stats
        planned = self.sent + stats["outage_ticks"]  # ticks of the plan already consumed
        want = self.chunk if plan.n_ticks is None else min(self.chunk, plan.n_ticks - planned)
        q = self.quotes.next_batch(want)
        multi = "asset_id" in (q.dtype.names or ())
        n = len(q)
        if plan.duration_ns is not None:
            n = int(np.searchsorted(q["offset_ns"], plan.duration_ns, side="left"))
        done = n < want or n == 0 or (plan.n_ticks is not None and planned + n >= plan.n_ticks)
        if plan.outage_ns is not None:
            q, n = self._drop_outage(q, n, plan.outage_ns)
        recs = self.ticks[:n]
        for name in ("bid_px", "ask_px", "bid_size", "ask_size"):
            recs[name] = q[name][:n]
        recs["device_seq"] = q["seq"][:n]
        if multi:
            recs["asset_id"] = q["asset_id"][:n]
        due = plan.start_at_ns + q["offset_ns"][:n].astype(np.int64)
        device_time = self.dev_clock.device_time
        recs["intended_send_ns"] = [device_time(int(d)) for d in due]
        return recs, due, done

    def _drop_outage(
        self, q: np.ndarray, n: int, outage_ns: tuple[int, int]
    ) -> tuple[np.ndarray, int]:
        """The halt: quotes due in the outage are never sent, and the sequence continues
        without a gap on resuming."""
        off = q["offset_ns"][:n]
        halt = (off >= outage_ns[0]) & (off < outage_ns[1])
        prior = self.stats["outage_ticks"]
        if prior or halt.any():
            q = q[:n].copy()
            q["seq"] -= (prior + np.cumsum(halt)).astype(np.uint64)
            q = q[~halt]
            self.stats["outage_ticks"] += int(halt.sum())
            n = len(q)
        return q, n

    def _send_chunk(
        self, recs: np.ndarray, raw: bytearray, seqs: list[int], dues: list[int]
    ) -> bool:
        """Send one chunk, ``ticks_per_send`` ticks a send, each when its last tick is due and
        after the heartbeats due by then; False if a stop came first. ``stats`` is brought up
        to date however it ends."""
        plan, schedule, tx, size = self.plan, self.schedule, self.tx, self.size
        per_send, send_offset = plan.ticks_per_send, self.send_offset
        rig_now, device_time = self.rig.now_ns, self.dev_clock.device_time
        stamped = [0]  # rig time of the last send stamp

        def stamp() -> int:
            """send_ns of a send, read by the transmitter just before the wire."""
            base = rig_now()
            stamped[0] = base
            return device_time(base)

        sent, first_send, last_send, next_seq = (
            self.sent, self.first_send, self.last_send, self.next_seq
        )  # fmt: skip
        n, chunk_start = len(seqs), sent
        try:
            for i in range(0, n, per_send):
                j = min(i + per_send, n)
                last_due = dues[j - 1]
                next_hb = self.next_hb
                hb_due = next_hb is not None and next_hb <= last_due
                if hb_due and not self._heartbeats_until(last_due, seqs[i]):
                    return False
                if not schedule.wait_until(last_due):
                    return False
                tx.send_stamped(
                    [raw[k * size : (k + 1) * size] for k in range(i, j)], send_offset, stamp
                )
                base = stamped[0]
                schedule.lateness(last_due, base)
                if first_send is None:
                    first_send = base
                last_send = base
                sent += j - i
                next_seq = seqs[j - 1] + 1
        finally:
            self.sent, self.first_send, self.last_send = sent, first_send, last_send
            self.next_seq = next_seq
            self._account(recs[: sent - chunk_start])
        return True

    def _account(self, sent_recs: np.ndarray) -> None:
        """Bring ``stats`` up to date after ``sent_recs`` of a chunk went out."""
        done_assets = np.bincount(sent_recs["asset_id"].astype(np.int64))
        per_asset = self.per_asset
        for a in np.flatnonzero(done_assets).tolist():
            per_asset[a] = per_asset.get(a, 0) + int(done_assets[a])
        schedule = self.schedule
        self.stats.update(
            ticks_sent=self.sent, next_device_seq=self.next_seq, sends=schedule.sends,
            ticks_per_asset={str(a): per_asset[a] for a in sorted(per_asset)},
            late_sends=schedule.late_sends, max_late_us=round(schedule.max_late_ns / 1000.0, 3),
            first_send_ns=self.first_send, last_send_ns=self.last_send,
        )  # fmt: skip

    def _heartbeats_until(self, last_due: int, next_seq: int) -> bool:
        """Send the heartbeats due at or before ``last_due`` (none while the device is silent
        in its outage); False if a stop came first."""
        plan = self.plan
        outage = plan.outage_ns
        next_hb = self.next_hb
        while next_hb is not None and next_hb <= last_due:
            silent = outage is not None and outage[0] <= next_hb - plan.start_at_ns < outage[1]
            if not silent and not self._send_heartbeat(next_hb, next_seq):
                return False
            next_hb += plan.heartbeat_interval_ns
            self.next_hb = next_hb
        return True

    def _send_heartbeat(self, due: int, next_seq: int) -> bool:
        if not self.schedule.wait_until(due):
            return False
        base = self.rig.now_ns()
        hb = self.hb
        hb["device_seq"] = next_seq
        hb["device_time_ns"] = self.dev_clock.device_time(base)
        self.tx.send([dm.encode(hb)])
        if self.schedule.lateness(due, base, count=False) > self.schedule.late_tolerance_ns:
            self.stats["late_heartbeats"] += 1
        self.stats["heartbeats_sent"] += 1
        return True

"""Link impairment for emulated device links: delay, jitter, asymmetry, loss, duplication, reorder.

Kernel netem is not available on the rig hosts, so impairment is done in user space, either by
the loopback relay (:mod:`.impair_relay`) between a device and the rig, or inside an emulator
(:class:`ImpairedTransmitter`). Pieces, records apart from the code that acts:

* :class:`ImpairmentSpec` — one direction's settings (frozen, validated);
  :class:`LinkImpairment` — both directions of a link (asymmetry = two different specs), read
  from a campaign table with :meth:`LinkImpairment.from_table`.
* :class:`ImpairmentPlan` — what happens to packet ``k`` of a direction: dropped, sent once or
  twice, and the release delay of each copy. A pure function of ``(spec, k)``: the draws for
  packet ``k`` come from a counter-based generator (Philox keyed by the seed and ``k``'s block),
  so a run is reproducible packet by packet whatever the timing.
* :class:`Impairer` — the release scheduler over a plan: ``submit(payload, now_ns)``, then
  ``pop_due``/``due(now_ns)`` in release-time order (a heap; ties broken by submission index).
* :class:`ImpairedTransmitter` — a :class:`~.schedule.Transmitter` wrapper that delays,
  drops, duplicates and reorders whole sends.

Semantics of one direction (every probability is per packet, draws independent):

* ``loss``: the packet is dropped. A kept packet is ``duplicate``-d (sent twice) and/or
  ``reorder``-ed with their own probabilities.
* release delay of each copy: ``max(0, delay_us + jitter)`` with jitter ``U(-jitter_us,
  +jitter_us)`` (``jitter_dist = "uniform"``) or ``N(0, jitter_us)`` (``"normal"``), an
  independent draw per copy; the clip at 0 raises the mean when ``jitter`` can exceed ``delay``.
  Jitter larger than the packet spacing reorders packets by itself, as netem does.
* a reordered packet gets ``reorder_delay_us`` extra on each copy and, with ``reorder_gap = g >
  0``, is held until ``g`` later packets have been scheduled, then released right after the
  ``g``-th (never before its own release time); if those packets do not come within
  ``reorder_timeout_us`` of its own release, it is released then.

Every packet consumes the same draws whatever the spec, so for one seed the loss, duplication
and reorder pattern does not change when only delay or jitter settings change.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

import numpy as np

from arbsphere.clock import Clock
from arbsphere.errors import ConfigError
from arbsphere.firmware_interfaces.device_main import ConfigReader
from arbsphere.firmware_interfaces.emulators.schedule import Transmitter, stamp_messages

JITTER_DISTS = ("uniform", "normal")
SEED_MAX = 2**64 - 1
#: packets per block of draws (one Philox key per block)
BLOCK = 4096

T = TypeVar("T")
#: one block of draws: drop, duplicate, reorder flags and the two copies' delays (ns)
_Block = tuple[list[bool], list[bool], list[bool], list[int], list[int]]


@dataclass(frozen=True)
class ImpairmentSpec:
    """Impairment of one direction of a link. Times in µs, probabilities in [0, 1]."""

    delay_us: float = 0.0
    jitter_us: float = 0.0
    jitter_dist: str = "uniform"
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_gap: int = 1
    reorder_delay_us: float = 0.0
    reorder_timeout_us: float = 100_000.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("delay_us", "jitter_us", "reorder_delay_us", "reorder_timeout_us"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if self.jitter_dist not in JITTER_DISTS:
            raise ValueError(f"jitter_dist {self.jitter_dist!r} is not one of {JITTER_DISTS}")
        if not 0 <= self.reorder_gap <= 1_000_000:
            raise ValueError(f"reorder_gap must be in [0, 1000000], got {self.reorder_gap}")
        if not 0 <= self.seed <= SEED_MAX:
            raise ValueError(f"seed must be in [0, 2**64 - 1], got {self.seed}")
        if self.reorder > 0 and self.reorder_gap == 0 and self.reorder_delay_us == 0:
            raise ValueError(
                f"reorder {self.reorder} needs reorder_gap >= 1 or reorder_delay_us > 0 "
                "(otherwise a reordered packet is not held back)"
            )

    @property
    def is_identity(self) -> bool:
        """True when the spec changes nothing (no delay, loss, duplication or reordering)."""
        return (self.delay_us, self.jitter_us, self.loss, self.duplicate, self.reorder) == (
            0, 0, 0, 0, 0,
        )  # fmt: skip

    @classmethod
    def from_reader(cls, cfg: ConfigReader, *, default_seed: int = 0) -> ImpairmentSpec:
        """Read and validate a spec table; every error names the file, dotted key and value."""
        cfg.only(f.name for f in fields(cls))
        spec_kw: dict[str, Any] = {
            "delay_us": cfg.get_float("delay_us", 0.0, min_value=0.0, max_value=60e6),
            "jitter_us": cfg.get_float("jitter_us", 0.0, min_value=0.0, max_value=60e6),
            "jitter_dist": cfg.get_str("jitter_dist", "uniform", choices=JITTER_DISTS),
            "loss": cfg.get_float("loss", 0.0, min_value=0.0, max_value=1.0),
            "duplicate": cfg.get_float("duplicate", 0.0, min_value=0.0, max_value=1.0),
            "reorder": cfg.get_float("reorder", 0.0, min_value=0.0, max_value=1.0),
            "reorder_gap": cfg.get_int("reorder_gap", 1, min_value=0, max_value=1_000_000),
            "reorder_delay_us": cfg.get_float(
                "reorder_delay_us", 0.0, min_value=0.0, max_value=60e6
            ),
            "reorder_timeout_us": cfg.get_float(
                "reorder_timeout_us", 100_000.0, min_value=0.0, max_value=60e6
            ),
            "seed": cfg.get_int("seed", default_seed, min_value=0, max_value=SEED_MAX),
        }
        try:
            return cls(**spec_kw)
        except ValueError as exc:  # cross-field rules (reorder without a hold)
            raise cfg.error("reorder", str(exc)) from exc

    @classmethod
    def from_table(
        cls, table: Mapping[str, Any], file: str, key: str = "", *, default_seed: int = 0
    ) -> ImpairmentSpec:
        """:meth:`from_reader` over a plain mapping found at dotted ``key`` of ``file``."""
        return cls.from_reader(_reader(table, file, key), default_seed=default_seed)


@dataclass(frozen=True)
class LinkImpairment:
    """Both directions of a device link; asymmetry is two different specs."""

    to_rig: ImpairmentSpec = ImpairmentSpec(seed=1)
    to_device: ImpairmentSpec = ImpairmentSpec(seed=2)

    @classmethod
    def from_reader(cls, cfg: ConfigReader) -> LinkImpairment:
        """``{to_rig: {spec}, to_device: {spec}}``, both optional (default: no impairment).

        Seeds default to 1 (to_rig) and 2 (to_device) so the two directions draw differently.
        """
        cfg.only(("to_rig", "to_device"))
        return cls(
            to_rig=ImpairmentSpec.from_reader(cfg.get_table("to_rig"), default_seed=1),
            to_device=ImpairmentSpec.from_reader(cfg.get_table("to_device"), default_seed=2),
        )

    @classmethod
    def from_table(cls, table: Mapping[str, Any], file: str, key: str = "") -> LinkImpairment:
        """Read the link table found at dotted ``key`` (``""`` = top level) of ``file``."""
        return cls.from_reader(_reader(table, file, key))


def _reader(table: Mapping[str, Any] | ConfigReader, file: str, key: str) -> ConfigReader:
    if isinstance(table, ConfigReader):
        return table
    if not isinstance(table, Mapping):
        raise ConfigError(f"must be an object, got {type(table).__name__}", file=file,
                          key=key or None)  # fmt: skip
    return ConfigReader(table, file, prefix=f"{key}." if key else "")


@dataclass(frozen=True, slots=True)
class PacketAction:
    """The plan for one packet: a release delay per copy (none = dropped, two = duplicated)."""

    index: int
    delays_ns: tuple[int, ...]
    reordered: bool

    @property
    def dropped(self) -> bool:
        return not self.delays_ns

    @property
    def duplicated(self) -> bool:
        return len(self.delays_ns) > 1


class ImpairmentPlan:
    """Deterministic per-packet actions of one direction (see the module docstring).

    :meth:`action` is pure (random access by packet index); :meth:`take` hands out the next
    index's action and keeps the counters.
    """

    def __init__(self, spec: ImpairmentSpec) -> None:
        self.spec = spec
        self.next_index = 0
        self.counts = {"packets_in": 0, "dropped": 0, "duplicated": 0, "reordered": 0, "copies": 0}
        self._blocks: dict[int, _Block] = {}
        self.prepare()  # the first draw is slow (NumPy's lazy set-up): not on a packet's path

    def _draw_block(self, b: int) -> _Block:
        s = self.spec
        gen = np.random.Generator(np.random.Philox(key=(s.seed << 64) | b))
        u = gen.random((3, BLOCK))  # drawn in full whatever the spec uses: fixed consumption
        if s.jitter_dist == "normal":
            j = gen.standard_normal((2, BLOCK))
        else:
            j = gen.uniform(-1.0, 1.0, (2, BLOCK))
        drop = u[0] < s.loss
        dup = ~drop & (u[1] < s.duplicate)
        reo = ~drop & (u[2] < s.reorder)
        d = np.maximum(np.rint((s.delay_us + s.jitter_us * j) * 1000.0), 0.0).astype(np.int64)
        d += np.where(reo, round(s.reorder_delay_us * 1000.0), 0)
        return drop.tolist(), dup.tolist(), reo.tolist(), d[0].tolist(), d[1].tolist()

    def action(self, index: int) -> PacketAction:
        """What happens to packet ``index`` (0-based); depends only on the spec and ``index``."""
        if index < 0:
            raise ValueError(f"packet index must be >= 0, got {index}")
        b, i = divmod(index, BLOCK)
        drop, dup, reo, d0, d1 = self._blocks.get(b) or self._load(b)
        if drop[i]:
            return PacketAction(index, (), False)
        delays = (d0[i], d1[i]) if dup[i] else (d0[i],)
        return PacketAction(index, delays, reo[i])

    def _load(self, b: int) -> _Block:
        block = self._blocks[b] = self._draw_block(b)
        if len(self._blocks) > 2:
            del self._blocks[max(self._blocks, key=lambda k: abs(k - b))]  # the farthest
        return block

    def prepare(self) -> bool:
        """Draw the blocks the next packets need ahead of time (a draw takes ~0.5 ms); call
        when idle. True if it drew something."""
        b, i = divmod(self.next_index, BLOCK)
        want = (b, b + 1) if i >= BLOCK // 2 else (b,)
        missing = [k for k in want if k not in self._blocks]
        for k in missing:
            self._load(k)
        return bool(missing)

    def take(self) -> PacketAction:
        """The next packet's action, counted."""
        act = self.action(self.next_index)
        self.next_index += 1
        c = self.counts
        c["packets_in"] += 1
        if act.dropped:
            c["dropped"] += 1
        else:
            c["copies"] += len(act.delays_ns)
            c["duplicated"] += act.duplicated
            c["reordered"] += act.reordered
        return act

    def counters(self) -> dict[str, int]:
        return dict(self.counts)


class _Held(Generic[T]):
    """A reordered packet waiting for ``remaining`` later packets (or its deadline)."""

    __slots__ = ("deadline_ns", "index", "payload", "releases", "remaining")

    def __init__(
        self, index: int, remaining: int, deadline_ns: int, releases: list[int], payload: T
    ) -> None:
        self.index = index
        self.remaining = remaining
        self.deadline_ns = deadline_ns
        self.releases = releases
        self.payload = payload


class Impairer(Generic[T]):
    """Release scheduler of one direction: payloads in, payloads out at their release times.

    Heap entries are ``(release_ns, order_index, after, index, copy, payload)``: equal release
    times go out in submission order, a reordered packet right after the packet it was held
    behind, and payloads are never compared. At most ``max_pending`` copies wait; a packet
    that would exceed that is not scheduled and counted as ``overflow``.
    """

    def __init__(self, plan: ImpairmentPlan | ImpairmentSpec, *, max_pending: int = 65536):
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.plan = plan if isinstance(plan, ImpairmentPlan) else ImpairmentPlan(plan)
        self.max_pending = max_pending
        self._gap = self.plan.spec.reorder_gap
        self._timeout_ns = round(self.plan.spec.reorder_timeout_us * 1000.0)
        self._heap: list[tuple[int, int, int, int, int, T]] = []
        self._held: list[_Held[T]] = []
        self._pending = 0
        self._max_index = -1
        self.counts = {"overflow": 0, "released": 0, "out_of_order": 0}

    @property
    def pending(self) -> int:
        """Copies submitted and not yet released."""
        return self._pending

    def submit(self, payload: T, now_ns: int) -> PacketAction:
        """Plan the next packet, arrived at ``now_ns``; schedule its copies unless dropped."""
        act = self.plan.take()
        n = len(act.delays_ns)
        if n == 0:
            return act
        if self._pending + n > self.max_pending:
            self.counts["overflow"] += 1
            return act
        self._pending += n
        releases = [now_ns + d for d in act.delays_ns]
        if act.reordered and self._gap > 0:
            deadline = max(releases) + self._timeout_ns
            self._held.append(_Held(act.index, self._gap, deadline, releases, payload))
            return act
        for c, r in enumerate(releases):
            heapq.heappush(self._heap, (r, act.index, 0, act.index, c, payload))
        if self._held:
            self._count_behind(act.index, releases[0])
        return act

    def _count_behind(self, index: int, release_ns: int) -> None:
        keep: list[_Held[T]] = []
        for h in self._held:
            h.remaining -= 1
            if h.remaining > 0:
                keep.append(h)
                continue
            for c, r in enumerate(h.releases):
                heapq.heappush(self._heap, (max(r, release_ns), index, 1, h.index, c, h.payload))
        self._held = keep

    def _expire_held(self, now_ns: int) -> None:
        keep: list[_Held[T]] = []
        for h in self._held:
            if h.deadline_ns > now_ns:
                keep.append(h)
                continue
            for c in range(len(h.releases)):
                heapq.heappush(self._heap, (h.deadline_ns, h.index, 0, h.index, c, h.payload))
        self._held = keep

    def prepare(self) -> bool:
        """Draw the plan's next random numbers ahead of time; call when idle (see
        :meth:`ImpairmentPlan.prepare`)."""
        return self.plan.prepare()

    def next_release_ns(self) -> int | None:
        """Earliest time anything is due (a held packet's deadline included); None if idle."""
        t = self._heap[0][0] if self._heap else None
        for h in self._held:
            if t is None or h.deadline_ns < t:
                t = h.deadline_ns
        return t

    def pop_due(self, now_ns: int) -> tuple[int, T] | None:
        """The next copy due at ``now_ns`` as ``(planned release ns, payload)``, or None."""
        if self._held:
            self._expire_held(now_ns)
        if not self._heap or self._heap[0][0] > now_ns:
            return None
        release, _, _, index, _, payload = heapq.heappop(self._heap)
        self._pending -= 1
        self.counts["released"] += 1
        if index < self._max_index:
            self.counts["out_of_order"] += 1
        else:
            self._max_index = index
        return release, payload

    def due(self, now_ns: int) -> list[T]:
        """Every copy due at ``now_ns``, in release order."""
        out: list[T] = []
        while (item := self.pop_due(now_ns)) is not None:
            out.append(item[1])
        return out

    def flush(self) -> list[T]:
        """Everything pending, in release order (held packets at their deadlines), now."""
        if self._held:
            self._expire_held(max(h.deadline_ns for h in self._held))
        if not self._heap:
            return []
        return self.due(max(e[0] for e in self._heap))

    def counters(self) -> dict[str, int]:
        """packets_in, dropped, duplicated, reordered, copies (planned), overflow, released,
        pending, out_of_order (copies released after a later packet)."""
        return {**self.plan.counters(), **self.counts, "pending": self._pending}


#: the handover lead of :class:`ImpairedTransmitter` moves by this per release (towards the
#: median handover cost: up after a late packet, down after an early one) ...
LEAD_STEP_NS = 200
#: ... and stays within [0, this]
MAX_LEAD_NS = 50_000
#: a poll that begins more than this after a packet's handover time (release − lead) met a
#: stall, not the handover cost: it does not move the lead (see :meth:`ImpairedTransmitter.poll`)
STALL_NS = 5_000
#: release lateness histogram: 1 µs bins from -this (earlier ones land in the first bin)
LATE_HIST_ORIGIN_NS = 64_000
LATE_HIST_BINS = 4_096


class ImpairedTransmitter:
    """A :class:`~.schedule.Transmitter` whose sends go through an :class:`Impairer`.

    Each ``send(messages)`` is one packet; it reaches ``inner`` when due. The feed loop calls
    :meth:`poll` (or sleeps through :meth:`wrap_sleep`) so due sends go out on time, and
    :meth:`flush` at the end. ``close()`` drops what is still pending (counted as
    ``impair_discarded``) and closes ``inner``.
    """

    def __init__(
        self,
        inner: Transmitter,
        impairment: ImpairmentSpec | Impairer[tuple[bytes, ...]],
        clock: Clock,
    ) -> None:
        self.inner = inner
        #: packets are handed to ``inner`` this early: the mean cost of a handover (the Python
        #: between "due" and the socket), learned from the lateness of past releases, so the
        #: delay applied on the wire is the injected one, not injected + handover
        self.lead_ns = 0
        self.impairer: Impairer[tuple[bytes, ...]] = (
            impairment if isinstance(impairment, Impairer) else Impairer(impairment)
        )
        self.clock = clock
        self.max_late_ns = 0
        self.late_sum_ns = 0
        self.released = 0
        self._late_hist = np.zeros(LATE_HIST_BINS, dtype=np.int64)
        self.discarded = 0
        #: releases whose poll began after their handover time (see :data:`STALL_NS`)
        self.stalls = 0

    def send(self, messages: Sequence[bytes], at_ns: int | None = None) -> None:
        """Submit one packet (its messages copied: a caller may reuse a buffer) as leaving the
        device at ``at_ns`` (default now), then poll."""
        at = self.clock.now_ns() if at_ns is None else at_ns
        self.impairer.submit(tuple(bytes(m) for m in messages), at)
        self.poll()

    def send_stamped(
        self, messages: Sequence[bytes | bytearray], stamp_offset: int, stamp: Callable[[], int]
    ) -> None:
        """Stamped as the packet enters the impaired link (the device's transmit time), and
        held from that moment."""
        at = self.clock.now_ns()
        self.send(stamp_messages(messages, stamp_offset, stamp()), at)

    def poll(self, now_ns: int | None = None) -> int:
        """Hand every due send to ``inner``; returns how many went out."""
        now = self.clock.now_ns() if now_ns is None else now_ns
        n = 0
        while (item := self.impairer.pop_due(now + self.lead_ns)) is not None:
            release, messages = item
            # handed to the wire now: the send below is the wire's own cost, which an
            # unimpaired link pays as well
            late = self.clock.now_ns() - release
            self.inner.send(messages)
            self.max_late_ns = max(self.max_late_ns, late)
            self.late_sum_ns += late
            self.released += 1
            bin_ = (late + LATE_HIST_ORIGIN_NS) // 1_000
            self._late_hist[min(max(bin_, 0), len(self._late_hist) - 1)] += 1
            # track the median handover cost of the polls that came on time (a sleeper woke
            # for this release). A stall — the loop busy elsewhere, or a wake-up late, when
            # the release came due — says nothing about the handover: counted, it pushed the
            # lead up until half the packets were stalled, so on a busy host (2 vCPUs, 1.7x
            # slower) every on-time packet left ~20 µs early: exactly the tail a min-RTT
            # filter and a low feed_wire percentile pick (clock offset +10 µs, delay -14 µs)
            if now <= release - self.lead_ns + STALL_NS:
                if late > 0:
                    self.lead_ns = min(MAX_LEAD_NS, self.lead_ns + LEAD_STEP_NS)
                elif late < 0:
                    self.lead_ns = max(0, self.lead_ns - LEAD_STEP_NS)
            else:
                self.stalls += 1
            n += 1
        return n

    @property
    def mean_late_ns(self) -> float:
        """Mean lateness of the packets handed to the wire against their release times."""
        return self.late_sum_ns / self.released if self.released else 0.0

    @property
    def median_late_ns(self) -> float:
        """Median lateness (1 µs resolution) of the packets handed to the wire against their
        release times: what the link added to the injected delay at p50 (near zero when most
        releases are met on time; stalls raise it)."""
        return self.late_percentile_ns(50.0)

    def late_percentile_ns(self, q: float) -> float:
        """Lateness percentile ``q`` (1 µs resolution, the bin's centre) of the released
        packets: a low one is what the on-time releases added (the ones a min-RTT filter or a
        low feed_wire percentile picks)."""
        if not self.released:
            return 0.0
        rank = max(1, math.ceil(q / 100.0 * self.released))
        k = int(np.searchsorted(np.cumsum(self._late_hist), rank))
        return (k * 1_000 + 500) - LATE_HIST_ORIGIN_NS

    def next_release_ns(self) -> int | None:
        """When :meth:`poll` should run next: the earliest release less the handover lead."""
        t = self.impairer.next_release_ns()
        return None if t is None else t - self.lead_ns

    def wrap_sleep(self, sleep: Callable[[float], None]) -> Callable[[float], None]:
        """A sleep for :class:`~.schedule.OpenLoopSchedule` that wakes for due releases."""

        def impaired_sleep(seconds: float) -> None:
            nxt = self.next_release_ns()
            if nxt is not None:
                seconds = min(seconds, (nxt - self.clock.now_ns()) * 1e-9)
            if seconds > 0:
                sleep(seconds)
            self.poll()

        return impaired_sleep

    def flush(self, wait_until: Callable[[int], bool] | None = None) -> None:
        """Send everything pending: at its release time via ``wait_until(ns)`` (e.g.
        ``OpenLoopSchedule.wait_until``; False = stop, the rest stays pending), else at once."""
        if wait_until is None:
            for messages in self.impairer.flush():
                self.inner.send(messages)
            return
        while (nxt := self.impairer.next_release_ns()) is not None:
            if not wait_until(nxt):
                return
            self.poll()

    def counters(self) -> dict[str, int]:
        out = dict(self.inner.counters())
        out.update({f"impair_{k}": v for k, v in self.impairer.counters().items()})
        out["impair_max_late_ns"] = self.max_late_ns
        out["impair_mean_late_ns"] = round(self.mean_late_ns)
        out["impair_median_late_ns"] = round(self.median_late_ns)
        out["impair_p5_late_ns"] = round(self.late_percentile_ns(5.0))
        out["impair_stalls"] = self.stalls
        out["impair_lead_ns"] = self.lead_ns
        out["impair_discarded"] = self.discarded
        return out

    def close(self) -> None:
        self.discarded += self.impairer.pending
        self.inner.close()

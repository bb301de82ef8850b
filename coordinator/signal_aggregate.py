"""The coordinator's side of the SharedSignals' secure aggregation: sums per release epoch.

Each venue sends one SignalShare per release epoch (:mod:`arbsphere.privacy.secure_signals`): its
released liquidity and correlation plus presence words, pairwise-masked among the participants
it last heard of. :class:`SignalAggregator` collects the shares of each epoch in a
:class:`~arbsphere.privacy.secure_agg.MaskedSum` and, once every participant's share is in,
appends the epoch's sums — Σ liquidity, Σ correlation and the contributors per signal — to the
aggregate table (``coordinator.signal_epochs.npy``). It never sees a venue's value.

Refused (counted by reason, never absorbed): a share masked among another set than the
coordinator's current participants (the rounds driver's — who is in the market; before any
solve every venue) or than its epoch's first share, a duplicate, a share of an epoch already
completed or aborted (late: combined with a re-masked set it would reveal the dropped venue's
value), a malformed one. An epoch not complete ``EPOCH_TIMEOUT_INTERVALS`` release intervals of
arriving messages' rig time (their origin stamps — never the wall clock, so a replay decides
alike) after its first share is aborted: counted, and ledgered as AGGREGATION_ABORTED naming the
missing venues. Later epochs use the participant set the rounds announce (a venue held out of
the rounds drops out of the signals too): the re-mask among the survivors.

The work is per epoch and runs after the wake-up's decision (the loop hands shares over once
its PlanDelta is out), never on the tick path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.contracts import default_registry
from arbsphere.errors import AggregationError
from arbsphere.privacy.secure_agg import MaskedSum
from arbsphere.privacy.secure_signals import (
    COUNT_FIXED,
    EPOCH_TIMEOUT_INTERVALS,
    SHARE_WORDS,
    all_venues,
    members_of,
    read_sum,
)
from arbsphere.security.ledger import EventKind
from arbsphere.sender_ids import VENUE_SENDER_BASE
from arbsphere.tracebuf import TraceBuffer

# SignalShare positions in its decode_values tuple: the header's, then the words
_SHARE = default_registry().fields("SignalShare", 1)
_SENDER, _ORIGIN_TS = _SHARE.sender_id, _SHARE.origin_ts_ns
_HEAD = _SHARE.span("epoch", "participants", "venue_id", "n_words")
_WORDS = _SHARE.items  # one word per item
_N_VALUES = _SHARE.n_values(SHARE_WORDS)

#: one row per closed epoch (complete: the sums; aborted: NaN sums, counts -1)
SIGNAL_EPOCH_DTYPE = np.dtype(
    [
        ("epoch", "<u8"),
        ("participants", "<u8"),
        ("status", "u1"),  # 1 complete, 2 aborted
        ("liquidity_sum", "<f8"),  # lots
        ("correlation_sum", "<f8"),
        ("liquidity_n", "<i2"),  # venues that released the signal this epoch
        ("correlation_n", "<i2"),
        ("first_ts", "<i8"),  # origin stamp of the epoch's first share
        ("closed_ts", "<i8"),  # origin stamp of the message that closed it
    ]
)
STATUS_COMPLETE = 1
STATUS_ABORTED = 2
#: closed epochs remembered (to refuse late shares) at least this far back
_KEEP_CLOSED = 64

#: ``(kind, subject, details)`` -> a governance event (RoleSecurity.event)
EventSink = Callable[[EventKind, int, Mapping[str, Any]], None]


@dataclass
class _Pending:
    participants: int
    members: list[int]
    first_ts: int
    deadline_ts: int
    masked: MaskedSum | None  # None: a lone participant (its words are the sum)
    lone_words: np.ndarray | None = None


class SignalAggregator:
    """Collects SignalShares per epoch; see the module docstring.

    ``interval_ns`` is the venues' release interval; ``names`` maps venue id to its name (for
    the ledger); ``event`` receives AGGREGATION_ABORTED (None: counted only, e.g. a replay)."""

    def __init__(
        self,
        n_venues: int,
        interval_ns: int,
        *,
        names: Mapping[int, str] | None = None,
        event: EventSink | None = None,
        timeout_intervals: int = EPOCH_TIMEOUT_INTERVALS,
    ) -> None:
        if interval_ns <= 0:
            raise AggregationError(f"release interval {interval_ns} ns: must be > 0",
                                   reason="config")  # fmt: skip
        self.n_venues = n_venues
        self.interval_ns = int(interval_ns)
        self.timeout_ns = int(timeout_intervals) * self.interval_ns
        self.names = dict(names or {})
        self.event = event
        self.all_bits = all_venues(n_venues)
        self.pending: dict[int, _Pending] = {}
        self._next_deadline: int | None = None
        self.closed: dict[int, int] = {}  # epoch -> status
        self.table = TraceBuffer(SIGNAL_EPOCH_DTYPE, 1024)
        self.counts = {
            "shares": 0, "epochs_complete": 0, "epochs_aborted": 0, "shares_refused": 0,
        }  # fmt: skip
        self.refused: dict[str, int] = {}
        self.last_error = ""

    # --- shares ------------------------------------------------------------------------------
    def _refuse(self, reason: str, why: str) -> None:
        self.counts["shares_refused"] += 1
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self.last_error = why

    def on_share(self, values: Sequence[Any], current: int) -> None:
        """One SignalShare as decode values; ``current`` is the coordinator's participant
        bitmap now (0: no solve yet, every venue)."""
        sender, ts = int(values[_SENDER]), int(values[_ORIGIN_TS])
        epoch, bits, venue, n_words = (int(v) for v in values[_HEAD])
        current = current or self.all_bits
        if venue >= self.n_venues or sender != VENUE_SENDER_BASE + venue:
            self._refuse("sender", f"SignalShare of venue {venue} from sender {sender}")
            return
        if n_words != SHARE_WORDS or len(values) != _N_VALUES:
            self._refuse("length", f"venue {venue} epoch {epoch}: {n_words} words")
            return
        pend = self.pending.get(epoch)
        if bits != current or (pend is not None and bits != pend.participants):
            want = current if pend is None else pend.participants
            self._refuse("participants", f"venue {venue} epoch {epoch}: masked among "
                         f"{bits:#x}, the participants are {want:#x}")  # fmt: skip
            return
        if epoch in self.closed or (self.closed and epoch < min(self.closed)):
            self._refuse("late", f"venue {venue}: share of epoch {epoch}, already closed")
            return
        if not bits >> venue & 1:
            self._refuse("not_participant", f"venue {venue} is not in {bits:#x}")
            return
        words = np.array(values[_WORDS:], dtype=np.uint64)
        if pend is None:
            ids = list(members_of(bits, self.n_venues))
            deadline = ts + self.timeout_ns
            pend = _Pending(bits, ids, ts, deadline,
                            MaskedSum(COUNT_FIXED, ids, epoch=bits, length=SHARE_WORDS)
                            if len(ids) > 1 else None)  # fmt: skip
            self.pending[epoch] = pend
            if self._next_deadline is None or deadline < self._next_deadline:
                self._next_deadline = deadline
        if pend.masked is None:
            if pend.lone_words is not None:
                self._refuse("duplicate", f"venue {venue} sent epoch {epoch} twice")
                return
            pend.lone_words = words
        else:
            try:
                pend.masked.add(venue, words)
            except AggregationError as exc:
                self._refuse(exc.reason or "bad_share", f"epoch {epoch}: {exc}")
                return
        self.counts["shares"] += 1
        if pend.masked is None or pend.masked.complete():
            self._complete(epoch, pend, ts)

    def _complete(self, epoch: int, pend: _Pending, ts: int) -> None:
        if pend.masked is None:
            assert pend.lone_words is not None
            acc = pend.lone_words.view(np.int64)
        else:
            acc = pend.masked.result_fixed()
        liq, corr, n_liq, n_corr = read_sum(acc)
        self.table.append((epoch, pend.participants, STATUS_COMPLETE, liq, corr, n_liq, n_corr,
                           pend.first_ts, ts))  # fmt: skip
        self.counts["epochs_complete"] += 1
        self._close(epoch, STATUS_COMPLETE)

    def _close(self, epoch: int, status: int) -> None:
        del self.pending[epoch]
        self.closed[epoch] = status
        if len(self.closed) > 2 * _KEEP_CLOSED:
            for e in sorted(self.closed)[:-_KEEP_CLOSED]:
                del self.closed[e]
        self._next_deadline = min((p.deadline_ts for p in self.pending.values()), default=None)

    # --- timeouts ----------------------------------------------------------------------------
    def expire(self, now_ts: int) -> None:
        """Abort every epoch whose deadline ``now_ts`` (the latest arriving message's origin
        stamp) has reached. O(1) when none is due."""
        if self._next_deadline is None or now_ts < self._next_deadline:
            return
        for epoch in sorted(e for e, p in self.pending.items() if now_ts >= p.deadline_ts):
            self._abort(epoch, self.pending[epoch], now_ts)

    def _abort(self, epoch: int, pend: _Pending, ts: int) -> None:
        if pend.masked is not None:
            missing = sorted(pend.masked.missing)
            received = sorted(pend.masked.received)
            pend.masked.abort()  # the partial sum is discarded; late shares are refused
        else:
            missing, received = list(pend.members), []
        self.table.append((epoch, pend.participants, STATUS_ABORTED, np.nan, np.nan, -1, -1,
                           pend.first_ts, ts))  # fmt: skip
        self.counts["epochs_aborted"] += 1
        self._close(epoch, STATUS_ABORTED)
        self.last_error = f"signal epoch {epoch}: no share from venues {missing}"
        if self.event is not None:
            self.event(EventKind.AGGREGATION_ABORTED, len(missing), {
                "stream": "signals",
                "epoch": epoch,
                "participants": pend.participants,
                "missing": [self.names.get(v, f"venue {v}") for v in missing],
                "missing_ids": missing,
                "received_ids": received,
                "first_ts_ns": pend.first_ts,
                "aborted_ts_ns": ts,
                "timeout_ms": self.timeout_ns / 1e6,
            })  # fmt: skip

    # --- results -----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        self.table.save(path)

    def summary(self) -> dict[str, Any]:
        """Counts, refusals by reason, and the complete epochs' Σ liquidity and mean
        correlation (Σ correlation / contributors) as {p50, min, max}."""
        rows = self.table.view()
        done = rows[rows["status"] == STATUS_COMPLETE]
        liq = done["liquidity_sum"][done["liquidity_n"] > 0]
        has_corr = done["correlation_n"] > 0
        corr = done["correlation_sum"][has_corr] / done["correlation_n"][has_corr]
        return {
            **self.counts,
            "pending_at_stop": len(self.pending),
            "refused": dict(sorted(self.refused.items())),
            "release_interval_ms": self.interval_ns / 1e6,
            "timeout_ms": self.timeout_ns / 1e6,
            "liquidity_sum": _spread(liq),
            "correlation_mean": _spread(corr),
            "last_error": self.last_error,
        }


def _spread(values: np.ndarray) -> dict[str, float | int | None]:
    if not len(values):
        return {"p50": None, "min": None, "max": None, "count": 0}
    return {
        "p50": float(np.percentile(values, 50)),
        "min": float(values.min()),
        "max": float(values.max()),
        "count": len(values),
    }

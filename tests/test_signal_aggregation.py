"""Secure aggregation of the SharedSignals: venues' TickTranslators with privacy budgets and a
SignalSharer each, the coordinator's SignalAggregator, in process (every share as bytes).

What is shown: the per-tick SharedSignals carry neither liquidity nor correlation; one share
per release epoch; the masks cancel and the coordinator's sum equals the plain sum of the
released values exactly (fixed point), with the contributor counts; a single share reveals
nothing; a missing venue aborts its epoch (counted, AGGREGATION_ABORTED with the missing venue);
a share masked among another set, a duplicate and a late share are refused; the next epoch
among the survivors completes; the coordinator's drain loop sums shares after its decision."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from arbsphere.adapters.signal_privacy import WITHHELD_LOTS, PrivacySettings, SignalPrivacy
from arbsphere.adapters.signal_shares import SignalSharer
from arbsphere.adapters.venue_adapter import TickTranslator, VenueCosts
from arbsphere.adapters.venue_signals import EwmaCorrelation
from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.contracts import default_registry
from arbsphere.coordinator.signal_aggregate import (
    STATUS_ABORTED,
    STATUS_COMPLETE,
    SignalAggregator,
)
from arbsphere.privacy.secure_agg import MaskingParty, public_raw
from arbsphere.privacy.secure_signals import (
    CORR_FIXED,
    LIQ_FIXED,
    SIGNALS_SESSION_SUFFIX,
    W_CORRELATION,
    W_LIQUIDITY,
    read_sum,
    share_words,
)
from arbsphere.security.ledger import EventKind
from arbsphere.sender_ids import VENUE_SENDER_BASE
from arbsphere.testing import FakeSocket, StepClock

REG = default_registry()
MS = 1_000_000
INTERVAL = 250 * MS
T0 = 40 * INTERVAL  # an epoch boundary
SESSION = b"test-session-0123456789abcdef" + SIGNALS_SESSION_SUFFIX
LIMIT = 100
NAMES = {0: "venue_a", 1: "venue_b", 2: "venue_c"}


class Events:
    def __init__(self) -> None:
        self.events: list[tuple[EventKind, int, dict[str, Any]]] = []

    def __call__(self, kind: EventKind, subject: int, details: Any) -> None:
        self.events.append((kind, subject, dict(details)))


class Venues:
    """``n`` venues' translators (privacy budgets, epoch-aligned, and a sharer each); the
    participants they mask among are set by the test (the DualVariables' stand-in)."""

    def _participants(self, i: int) -> Callable[[], int]:
        """Venue ``i``'s participants, read at each call (the test changes them)."""
        return lambda: self.bits[i]

    def __init__(self, n: int, seed: int = 7) -> None:
        keys = [X25519PrivateKey.generate() for _ in range(n)]
        peers = {i: public_raw(k) for i, k in enumerate(keys)}
        self.bits = [0] * n
        self.translators: list[TickTranslator] = []
        for i in range(n):
            privacy = SignalPrivacy(i, PrivacySettings(
                mechanism="laplace", epsilon_total=100.0, epsilon_per_release=0.5,
                delta_total=0.0, release_interval_ms=INTERVAL / MS,
                liquidity_sensitivity_lots=5.0, correlation_sensitivity=2.0, seed=seed,
            ), LIMIT, aligned=True)  # fmt: skip
            sharer = SignalSharer(
                MaskingParty(i, keys[i], peers, LIQ_FIXED, SESSION), REG, i,
                VENUE_SENDER_BASE + i, n, INTERVAL, participants=self._participants(i),
            )  # fmt: skip
            corr = EwmaCorrelation(1, min_samples=2)
            for k in range(5):  # an estimate from the start: both signals are released
                corr.observe(0, 100.0 + k * (1 + i), 50.0 + 2.0 * k)
            self.translators.append(TickTranslator(
                i, VENUE_SENDER_BASE + i, VenueCosts(0.5, 1e-4, LIMIT), 200_000,
                solver=VenueSolver(1), correlation=corr, privacy=privacy, sharer=sharer,
            ))  # fmt: skip

    def tick(self, i: int, seq: int, now_ns: int) -> tuple[tuple[Any, ...], bytes | None]:
        """(SharedSignals values, the SignalShare packed at this tick or None)."""
        mid = 100.0 + 0.01 * (seq % 7)
        bid, ask = int((mid - 0.01) * 1e8), int((mid + 0.01) * 1e8)
        tick = (0, 0, 0, 0, 0, 0, seq, 1000 * seq, 1000 * seq, bid, ask, 60, 60)
        tr = self.translators[i]
        _problem, signals = tr.translate(tick, now_ns, 0)
        return REG.decode_values(signals)[1], tr.take_share()

    def released(self, i: int) -> tuple[float, float]:
        """The values venue i's budgets released last (what its share encodes)."""
        privacy = self.translators[i].privacy
        assert privacy is not None
        return tuple(privacy.signals[k]._last[0][1] for k in (1, 2))  # type: ignore[return-value]


def decode(share: bytes) -> tuple[Any, ...]:
    schema, values = REG.decode_values(share)
    assert schema.name == "SignalShare" and schema.version == 1
    return values


def test_signals_carry_no_private_values_and_one_share_per_epoch() -> None:
    v = Venues(2)
    shares = []
    for seq in range(20):  # 20 ticks every 50 ms: 4 epochs of 250 ms
        values, share = v.tick(0, seq, T0 + seq * 50 * MS)
        # envelope (7), venue, n_assets, seq, asset, mid, delta, spread, corr, liq, latency
        assert values[15] == WITHHELD_LOTS and math.isnan(values[14])
        assert values[11] > 0  # the public mid stays
        if share is not None:
            shares.append((seq, decode(share)))
    assert [seq for seq, _ in shares] == [0, 5, 10, 15]  # each epoch's first tick
    assert [s[7] for _, s in shares] == [40, 41, 42, 43]  # epoch = floor(rx / interval)
    assert all(s[8] == 0b11 and s[9] == 0 and s[10] == 4 for _, s in shares)
    privacy = v.translators[0].privacy
    assert privacy is not None and privacy.signals[1].budget.releases == 4  # one per epoch
    # the envelope nonces keep increasing: the share follows its tick's signals
    nonces = [s[5] for _, s in shares]
    assert nonces == sorted(nonces) and len(set(nonces)) == 4


def test_masks_cancel_and_the_sum_is_exact_while_one_share_reveals_nothing() -> None:
    v = Venues(3)
    agg = SignalAggregator(3, INTERVAL, names=NAMES)
    plain = np.zeros(4, np.uint64)
    for i in range(3):
        _, share = v.tick(i, 0, T0 + 10 * i)
        assert share is not None
        values = decode(share)
        liq, corr = v.released(i)
        encoded = share_words(liq, corr)
        words = np.array(values[11:], np.uint64)
        assert not np.array_equal(words, encoded)  # the share is not the encoded values
        assert (words[:2] != encoded[:2]).all() and (words[2:] != encoded[2:]).all()
        plain += encoded
        agg.on_share(values, 0)
    row = agg.table.view()[-1]
    assert row["status"] == STATUS_COMPLETE and agg.counts["epochs_complete"] == 1
    liq_sum, corr_sum, n_liq, n_corr = read_sum(plain)
    assert (n_liq, n_corr) == (3, 3) == (row["liquidity_n"], row["correlation_n"])
    assert row["liquidity_sum"] == liq_sum  # exact, not approximately
    assert row["correlation_sum"] == corr_sum
    released = [v.released(i) for i in range(3)]
    assert liq_sum == sum(r[0] for r in released)  # whole lots: exact in fixed point
    q = sum(int(CORR_FIXED.encode([r[1]])[0].view(np.int64)) for r in released)
    assert row["correlation_sum"] == q / CORR_FIXED.scale
    assert abs(row["correlation_sum"] - sum(r[1] for r in released)) < 3 * 2.0**-48


def test_withheld_and_unestimated_signals_count_as_absent() -> None:
    words = share_words(float(WITHHELD_LOTS), math.nan)
    assert words.tolist() == [0, 0, 0, 0]
    words = share_words(12.0, -0.25)
    assert read_sum(words) == (12.0, -0.25, 1, 1)
    assert int(words[W_LIQUIDITY]) == 12 << 16 and words[W_CORRELATION] != 0
    huge = share_words(2.0**30, 1.5)  # clipped to the fixed point's range (post-processing)
    assert read_sum(huge)[:2] == (2.0**20, 1.0)


def test_a_missing_venue_aborts_the_epoch_and_the_survivors_complete_the_next() -> None:
    v = Venues(3)
    events = Events()
    agg = SignalAggregator(3, INTERVAL, names=NAMES, event=events)
    # epoch 40: venue 2 sends nothing
    for i in (0, 1):
        _, share = v.tick(i, 0, T0 + i)
        assert share is not None
        agg.on_share(decode(share), 0)
    assert agg.counts["epochs_complete"] == 0 and list(agg.pending) == [40]
    agg.expire(T0 + 3 * INTERVAL - 1)  # not yet: 3 intervals after the first share
    assert agg.counts["epochs_aborted"] == 0
    agg.expire(T0 + 3 * INTERVAL)
    assert agg.counts["epochs_aborted"] == 1 and not agg.pending
    assert agg.table.view()[-1]["status"] == STATUS_ABORTED
    [(kind, subject, details)] = events.events
    assert kind == EventKind.AGGREGATION_ABORTED and subject == 1
    assert details["missing"] == ["venue_c"] and details["missing_ids"] == [2]
    assert details["received_ids"] == [0, 1] and details["epoch"] == 40
    # the late share of the dropped venue is refused, never combined
    _, late = v.tick(2, 0, T0 + 2)
    assert late is not None
    agg.on_share(decode(late), 0)
    assert agg.refused == {"late": 1}
    # the rounds now announce the survivors {0, 1}: venue 2, held out, still masks among all
    for i in range(3):
        v.bits[i] = 0b011 if i < 2 else 0b111
    current = 0b011
    for i in range(3):
        _, share = v.tick(i, 5, T0 + 4 * INTERVAL + i)
        assert share is not None
        agg.on_share(decode(share), current)
    assert agg.refused == {"late": 1, "participants": 1}  # venue 2's stale set
    assert agg.counts["epochs_complete"] == 1 and agg.counts["shares_refused"] == 2
    row = agg.table.view()[-1]
    assert row["status"] == STATUS_COMPLETE and row["participants"] == 0b011
    assert row["liquidity_n"] == 2
    expected = sum(v.released(i)[0] for i in (0, 1))
    assert row["liquidity_sum"] == expected


def test_participants_mismatch_duplicate_and_foreign_sender_are_refused() -> None:
    v = Venues(2)
    agg = SignalAggregator(2, INTERVAL)
    _, share0 = v.tick(0, 0, T0)
    assert share0 is not None
    s0 = decode(share0)
    agg.on_share(s0, 0b001)  # the coordinator's set is {0} alone: masked among {0, 1}
    assert agg.refused == {"participants": 1} and not agg.pending
    agg.on_share(s0, 0b011)
    agg.on_share(s0, 0b011)  # the same share again
    assert agg.refused == {"participants": 1, "duplicate": 1}
    forged = list(s0)
    forged[3] = VENUE_SENDER_BASE + 1  # venue 0's share under venue 1's sender id
    agg.on_share(tuple(forged), 0b011)
    assert agg.refused["sender"] == 1
    _, share1 = v.tick(1, 0, T0 + 5)
    assert share1 is not None
    agg.on_share(decode(share1), 0b011)
    assert agg.counts["epochs_complete"] == 1


def test_a_lone_participant_sends_its_words_unmasked_and_completes_alone() -> None:
    v = Venues(2)
    v.bits[0] = 0b001
    agg = SignalAggregator(2, INTERVAL)
    _, share = v.tick(0, 0, T0)
    assert share is not None
    values = decode(share)
    liq, corr = v.released(0)
    assert list(values[11:]) == share_words(liq, corr).tolist()
    agg.on_share(values, 0b001)
    assert agg.counts["epochs_complete"] == 1
    assert agg.table.view()[-1]["liquidity_sum"] == liq


def test_the_coordinator_loop_sums_shares_after_its_decision() -> None:
    from arbsphere.coordinator.admm import AdmmSettings
    from arbsphere.coordinator.core import Coordinator
    from arbsphere.coordinator.journal_records import state_digest
    from arbsphere.coordinator.receive_loop import ReceiveLoop

    def pull(msgs: list[list[bytes]]) -> FakeSocket:
        sock = FakeSocket(noblock_only=True)
        for frames in msgs:
            sock.deliver(*frames)
        return sock

    core = Coordinator(2, 1, AdmmSettings(), 50, 1)
    digest = state_digest(core)
    loop = ReceiveLoop(core, StepClock(), None, 16)
    v = Venues(2)
    msgs = []
    for i in range(2):
        _, share = v.tick(i, 0, T0 + i)
        assert share is not None
        msgs.append([share])
    loop.drain(pull(msgs))  # no aggregator: counted as unknown, nothing else
    assert core.counts["unknown_messages"] == 2
    core2 = Coordinator(2, 1, AdmmSettings(), 50, 1)
    core2.signal_agg = SignalAggregator(2, INTERVAL)
    loop2 = ReceiveLoop(core2, StepClock(), None, 16)
    loop2.drain(pull(msgs))
    assert core2.signal_agg.counts["epochs_complete"] == 1
    assert core2.counts["unknown_messages"] == 0
    # the decision state is the same (the nonces aside): the aggregate is not in it
    core2.last_nonce.clear()
    assert state_digest(core2) == digest


@pytest.mark.parametrize("n", [2, 8, 16])
def test_headroom_holds_for_up_to_sixteen_venues(n: int) -> None:
    acc = np.zeros(4, np.uint64)
    for _ in range(n):
        acc += share_words(2.0**20, -1.0)
    assert read_sum(acc) == (n * 2.0**20, -float(n), n, n)
    assert LIQ_FIXED.n_parties == CORR_FIXED.n_parties == 16

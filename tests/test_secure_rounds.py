"""Secure aggregation of the federated rounds: the coordinator's RoundDriver over a
MaskedExchange and the venues' VenueRounds with MaskingParty, in process (an in-memory link
delivers every message as bytes, exactly as the sockets would).

What is shown: the masked solve reaches the clear protocol's plan; the coordinator absorbs
only uint64 shares until the reveal; a silent venue aborts the solve and the next solve masks
among the survivors with other masks; replay of the journaled shares is bit-identical; a
flipped bit in a share moves the sum by exactly that bit and, in the revealed round, aborts
the solve; configuration refuses alpha != 1 and more than 16 venues."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from arbsphere.adapters.venue_rounds import VenueRounds
from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.clock import RealtimeClock
from arbsphere.contracts import default_registry
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.federated import FederatedExchange
from arbsphere.coordinator.masked_exchange import MaskedExchange
from arbsphere.coordinator.rounds import RoundDriver
from arbsphere.errors import ConfigError
from arbsphere.privacy.secure_agg import MaskingParty, public_raw
from arbsphere.privacy.secure_rounds import (
    KIND_REVEAL,
    KIND_SHARE,
    MASK_SESSION_SUFFIX,
    X_FIXED,
    X_FRAC_BITS,
    read_sum,
    share_length,
    share_words,
)
from arbsphere.replay.engine import JournalRecord, RecordedRoundLink
from arbsphere.rig.in_process import InProcessLink
from arbsphere.rounds_protocol import venue_identity
from arbsphere.testing import FakeSocket

REG = default_registry()
SESSION = b"test-session-0123456789abcdef" + MASK_SESSION_SUFFIX


def _parties(n: int) -> list[MaskingParty]:
    keys = [X25519PrivateKey.generate() for _ in range(n)]
    publics = {i: public_raw(k) for i, k in enumerate(keys)}
    return [MaskingParty(i, keys[i], publics, X_FIXED, SESSION) for i in range(n)]


def _venues(n: int, m: int, masked: bool) -> list[VenueRounds]:
    parties = _parties(n) if masked else [None] * n
    return [
        VenueRounds(
            FakeSocket(), REG, VenueSolver(m), i, 100 + i, RealtimeClock(), masking=parties[i]
        )
        for i in range(n)
    ]


def _driver(link: Any, n: int, m: int, masked: bool, settings: AdmmSettings) -> RoundDriver:
    ex = MaskedExchange(n, m, settings) if masked else FederatedExchange(n, m, settings)
    return RoundDriver(link, REG, ex, RealtimeClock(), 1, round_timeout_ms=50)


def _problems(rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, ...]:
    c = 100.0 + rng.normal(0, 0.05, (n, m))
    gamma = rng.uniform(1e-4, 1e-2, (n, m))
    phi = rng.uniform(0.001, 0.03, (n, m))
    limit = rng.integers(1, 60, (n, m)).astype(float) + 0.5
    return c, gamma, phi, limit


def _set(venues: list[VenueRounds], problem: tuple[np.ndarray, ...], seq: int) -> None:
    c, gamma, phi, limit = problem
    for i, v in enumerate(venues):
        for a in range(c.shape[1]):
            v.solver.set_asset(a, c[i, a], gamma[i, a], phi[i, a], limit[i, a], seq=seq)


def test_masked_solves_reach_the_clear_plan_and_the_coordinator_holds_only_sums() -> None:
    """Tolerance: the masked rounds see Σx quantized to 2^-40 lots per venue (x̄ within
    N·2^-41 of the clear one), so iterates differ from the clear protocol's by about 1e-12
    per round and ADMM's stopping test may fire a round earlier or later. Both stop at ε =
    1e-12 tolerances, so their best x agree to 1e-6 lots (asserted), far inside the 0.5 lot
    that rounding to integer lots could turn into a different plan; the neutralized plans
    are asserted equal."""
    from arbsphere.coordinator.neutralize import neutralize_around_fixed

    n, m = 4, 3
    settings = AdmmSettings(max_iter=300)
    clear_venues, masked_venues = _venues(n, m, False), _venues(n, m, True)
    clear = _driver(InProcessLink(clear_venues), n, m, False, settings)
    masked = _driver(InProcessLink(masked_venues), n, m, True, settings)
    absorbed: list[Any] = []
    real_absorb = masked.ex.absorb_share  # type: ignore[attr-defined]

    def spy(venue: int, words: np.ndarray) -> None:
        absorbed.append(words.copy())
        real_absorb(venue, words)

    masked.ex.absorb_share = spy  # type: ignore[attr-defined]
    rng = np.random.default_rng(11)
    for k in range(1, 9):
        problem = _problems(rng, n, m)
        _set(clear_venues, problem, k)
        _set(masked_venues, problem, k)
        cap = 300 if k % 3 else 3  # every third solve stops early on its budget
        a = clear.solve(problem[0], cap)
        b = masked.solve(problem[0], cap)
        assert not a.aborted and not b.aborted
        assert abs(a.rounds - b.rounds) <= 2
        np.testing.assert_allclose(masked.ex.best_x, clear.ex.best_x, atol=1e-6, rtol=0)
        plans = []
        for d in (clear, masked):
            target = np.zeros((n, m), np.int64)
            neutralize_around_fixed(d.ex.best_x, d.ex.frozen, d.ex.frozen_lots, target)
            plans.append(target)
        np.testing.assert_array_equal(plans[0], plans[1])
        # before the reveal the coordinator held no venue's x: x and z have no live rows
        assert not masked.ex.x.any() and not masked.ex.z.any()
    assert masked.counts["reveals"] == 8 * n and masked.counts["bad_solutions"] == 0
    # every share the coordinator absorbed is uint64 words, none of them a venue's x encoded
    assert len(absorbed) == n * masked.counts["rounds"]
    xs = {int(w) for v in masked_venues for it in [v] for w in X_FIXED.encode(it.solver.x)}
    for words in absorbed:
        assert words.dtype == np.uint64 and words.shape == (share_length(m),)
        assert not xs & set(words[:m].tolist())
    # and what went over the "wire" from the venues: LocalSolution v2, SHARE or REVEAL only
    for v in masked_venues:
        for data in v.sock.sent:
            msg = REG.decode(data)
            assert (msg.schema.name, msg.schema.version) == ("LocalSolution", 2)
            assert int(msg.header["kind"][0]) in (KIND_SHARE, KIND_REVEAL)


def test_shares_of_one_round_cancel_to_the_exact_fixed_point_sum() -> None:
    rng = np.random.default_rng(5)
    n, m = 3, 4
    parties = _parties(n)
    x = rng.normal(0, 30, (n, m))
    z = rng.normal(0, 30, (n, m))
    ids = list(range(n))
    acc = np.zeros(share_length(m), np.uint64)
    for i, p in enumerate(parties):
        d = x[i] - z[i]
        acc += p.mask_encoded(share_words(x[i], float(x[i] @ x[i]), float(d @ d)),
                              round_id=7, iteration=1, participants=ids, epoch=0b111)  # fmt: skip
    xq, sq_x, sq_d = read_sum(acc, m)
    want = sum(X_FIXED.encode(x[i]).view(np.int64) for i in range(n))
    np.testing.assert_array_equal(xq, want)
    assert sq_x == pytest.approx(float((x * x).sum()), rel=1e-15)
    assert sq_d == pytest.approx(float(((x - z) ** 2).sum()), rel=1e-15)
    # a strict subset of the shares is masked garbage, not the partial sum
    part = np.zeros(share_length(m), np.uint64)
    parties2 = _parties(n)
    for i in (0, 1):
        d = x[i] - z[i]
        part += parties2[i].mask_encoded(
            share_words(x[i], float(x[i] @ x[i]), float(d @ d)), round_id=7, iteration=1,
            participants=ids, epoch=0b111,
        )  # fmt: skip
    partial = read_sum(part, m)[0]
    assert np.abs(partial / 2.0**X_FRAC_BITS - (x[0] + x[1])).min() > 1.0


def test_a_silent_venue_aborts_and_the_next_solve_masks_among_the_survivors() -> None:
    n, m = 3, 1
    venues = _venues(n, m, True)
    link = InProcessLink(venues)
    driver = _driver(link, n, m, True, AdmmSettings())
    _set(venues, _problems(np.random.default_rng(2), n, m), 1)
    link.silent = {2}
    out = driver.solve(np.full((n, m), 100.0), 10)
    assert out.aborted and out.missing == (2,) and driver.ex.cold
    first = [v.sock.sent[0] for v in venues[:2]]
    # the service holds venue 2 out (frozen at its lots); the next solve runs among 0 and 1
    driver.ex.freeze(2, np.zeros(m, np.int64))
    out = driver.solve(np.full((n, m), 100.0), 10)
    assert not out.aborted
    assert driver.ex.participants == 0b011  # type: ignore[attr-defined]
    for v, old in zip(venues[:2], first, strict=True):
        new = REG.decode(v.sock.sent[1])
        before = REG.decode(old)
        assert int(new.header["participants"][0]) == 0b011
        assert int(before.header["participants"][0]) == 0b111
        # the same venue, the same problem, round 1 again: other masks, other words
        assert not set(new.items["word"].tolist()) & set(before.items["word"].tolist())
    assert venues[2].counts["solutions_out"] == 0  # silent: it never answered


def test_replay_of_masked_rounds_is_bit_identical() -> None:
    n, m = 3, 2
    venues = _venues(n, m, True)
    records: list[JournalRecord] = []
    link = InProcessLink(venues, records)
    live = _driver(link, n, m, True, AdmmSettings())
    rng = np.random.default_rng(9)
    outcomes = []
    for k in range(1, 6):
        problem = _problems(rng, n, m)
        _set(venues, problem, k)
        link.silent = {1} if k == 3 else set()
        outcomes.append(live.solve(problem[0], 40))
    assert outcomes[2].aborted and sum(o.aborted for o in outcomes) == 1
    rng = np.random.default_rng(9)
    recorded = RecordedRoundLink()
    recorded.queue.extend(records)
    replay = _driver(recorded, n, m, True, AdmmSettings())
    again = [replay.solve(_problems(rng, n, m)[0], 40) for _ in range(5)]
    assert [(o.rounds, o.converged, o.aborted) for o in again] == [
        (o.rounds, o.converged, o.aborted) for o in outcomes
    ]
    assert not recorded.queue
    for name in ("x", "z", "u", "best_x", "xsum", "best_xq", "z_best"):
        assert np.array_equal(getattr(replay.ex, name), getattr(live.ex, name)), name
    assert replay.ex.rho == live.ex.rho and replay.counts == live.counts


def _flip(bit: int, word: int, kind: int, round_no: int | None = None) -> Any:
    """Flip ``bit`` of word ``word`` in venue 0's first answer of ``kind`` (optionally only
    in round ``round_no``)."""
    done = {"n": 0}

    def tamper(frames: list[bytes]) -> list[bytes]:
        ident, data = frames
        schema, v = REG.decode_values(data)
        if ident != venue_identity(0) or v[10] != kind or done["n"]:
            return frames
        if round_no is not None and v[8] != round_no:
            return frames
        done["n"] += 1
        vals = list(v)
        vals[14 + word] ^= 1 << bit
        return [ident, REG.packer(schema, v[13]).pack(*vals)]

    return tamper


def test_a_flipped_bit_in_a_share_moves_the_sum_and_a_tampered_revealed_round_aborts() -> None:
    n, m = 3, 1
    # (a) one round, every share delivered, venue 0's x word flipped at bit 45: Σx moves by
    # exactly ±2^45 / 2^X_FRAC_BITS lots (64 at 39 bits) — the masks cancel, the flip does not
    sums = []
    for tamper in (None, _flip(45, 0, KIND_SHARE)):
        venues = _venues(n, m, True)
        link = InProcessLink(venues)
        link.tamper = tamper
        d = _driver(link, n, m, True, AdmmSettings())
        _set(venues, _problems(np.random.default_rng(4), n, m), 1)
        d.solve(np.full((n, m), 100.0), 1)
        sums.append(d.ex.xsum.copy())  # type: ignore[attr-defined]
    # (+ or -: the flipped bit of the masked word was 0 or 1, the masks are random)
    assert abs(sums[1][0] - sums[0][0]) == pytest.approx(2.0 ** (45 - X_FRAC_BITS), abs=1e-9)
    # (b) a flip in a share of the round that ends up revealed (a one-round solve): the
    # reveal does not add up to that round's masked sum; the solve is dropped, plan kept
    venues = _venues(n, m, True)
    link = InProcessLink(venues)
    link.tamper = _flip(3, 0, KIND_SHARE)
    d = _driver(link, n, m, True, AdmmSettings())
    _set(venues, _problems(np.random.default_rng(4), n, m), 1)
    out = d.solve(np.full((n, m), 100.0), 1)
    assert out.aborted and out.missing == () and d.counts["reveal_mismatches"] == 1
    assert "do not add up" in d.last_error
    # (c) a reveal altered in one bit of its float64 mantissa (bit 40: x changes by about
    # 2^-12 of itself): the same refusal. (The check compares the revealed x in the shares'
    # fixed point: a change below 2^-40 lots — the last bits of a float64 — passes unseen,
    # and changes no trade.)
    venues = _venues(n, m, True)
    link = InProcessLink(venues)
    link.tamper = _flip(40, 0, KIND_REVEAL)
    d = _driver(link, n, m, True, AdmmSettings())
    _set(venues, _problems(np.random.default_rng(4), n, m), 1)
    out = d.solve(np.full((n, m), 100.0), 20)
    assert out.aborted and d.counts["reveal_mismatches"] == 1


def test_masked_venue_refuses_clear_rounds_and_configuration_limits() -> None:
    venues = _venues(2, 1, True)
    clear = _driver(InProcessLink(venues), 2, 1, False, AdmmSettings())
    out = clear.solve(np.full((2, 1), 100.0), 3)
    assert out.aborted  # the masked venues refuse DualVariables v2: no clear x
    assert venues[0].counts["bad_messages"] >= 1
    assert "DualVariables v2" in venues[0].last_error
    with pytest.raises(ConfigError, match="alpha = 1"):
        MaskedExchange(2, 1, dataclasses.replace(AdmmSettings(), alpha=1.5))
    with pytest.raises(ConfigError, match="at most 16 venues"):
        MaskedExchange(17, 1, AdmmSettings())
    MaskedExchange(16, 1, AdmmSettings())  # the most federated coordination supports

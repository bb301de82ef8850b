"""The federated price protocol: the venues' answers, the coordinator's certified search and
the rounds between them (in process: an in-memory link carries every message as bytes, as
the sockets would).

What is shown: a venue's best response, slopes and breakpoint ladder against independent
computations; the search finds the centralized baseline's optimum (independent bisection) on
random problems of 2-16 venues x 1-16 assets, with and without masking, in few rounds; an
unchanged problem takes one query; a held-out venue is balanced around or, when it cannot be,
the solve is infeasible and the plan kept; a venue that reveals another x than it answered is
caught; the coordinator holds only sums until the reveal; the journaled answers replay to the
same decisions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from arbsphere.adapters.venue_prices import VenuePrices
from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.clock import RealtimeClock
from arbsphere.contracts import default_registry
from arbsphere.coordinator.baseline import centralized_solve, gaps_batch
from arbsphere.coordinator.price_rounds import PriceRoundDriver
from arbsphere.coordinator.price_search import CERTIFIED, PriceSearch, price_step
from arbsphere.errors import ConfigError
from arbsphere.price_protocol import (
    KIND_PRICE_SHARE,
    LADDER_BUCKETS,
    PRICE_MASK_SUFFIX,
    SHARE_WORDS_PER_ASSET,
    PriceShareEncoder,
    check_price_venues,
    ladder_bucket,
    ladder_edge,
    price_response,
    read_sums,
)
from arbsphere.privacy.secure_agg import MaskingParty, public_raw
from arbsphere.privacy.secure_rounds import X_FIXED
from arbsphere.replay.engine import JournalRecord, RecordedRoundLink
from arbsphere.rig.in_process import InProcessLink
from arbsphere.testing import FakeSocket

REG = default_registry()
SESSION = b"test-session-0123456789abcdef" + PRICE_MASK_SUFFIX


def _x(c: float, g: float, f: float, lim: float, lam: float) -> float:
    """Independent best response: minimise c x + g x^2 / 2 + f |x| + lam x on [-lim, lim]
    by checking the stationary points of both signs and the ends."""
    cands = [0.0, lim, -lim, (-(c + lam) - f) / g, (-(c + lam) + f) / g]
    feas = [x for x in cands if -lim <= x <= lim]
    cost = [c * x + 0.5 * g * x * x + f * abs(x) + lam * x for x in feas]
    return feas[int(np.argmin(cost))]


def test_best_response_slopes_and_ladder_match_independent_computations() -> None:
    rng = np.random.default_rng(3)
    m = 64
    c = 100 + rng.normal(0, 0.1, m)
    g = rng.uniform(1e-4, 1e-2, m)
    f = rng.uniform(0.0, 0.03, m)
    f[:8] = 0.0  # no dead-band: two breakpoints only
    lim = rng.integers(0, 60, m).astype(float)
    lam = -c + rng.normal(0, 0.2, m)
    x, sl, sr = np.zeros(m), np.zeros(m), np.zeros(m)
    counts = np.zeros((m, 2 * LADDER_BUCKETS), np.int64)
    price_response(c, g, f, lim, lam, x, sl, sr, counts)
    h = 1e-9
    for a in range(m):
        assert x[a] == pytest.approx(_x(c[a], g[a], f[a], lim[a], lam[a]), abs=1e-9)
        right = (_x(c[a], g[a], f[a], lim[a], lam[a] + h) - x[a]) / h
        left = (x[a] - _x(c[a], g[a], f[a], lim[a], lam[a] - h)) / h
        assert sr[a] == pytest.approx(right, rel=1e-4, abs=1e-3)
        assert sl[a] == pytest.approx(left, rel=1e-4, abs=1e-3)
        # the breakpoints, where the slope changes, by their definition
        bps = [] if lim[a] == 0 else [-c[a] - f[a] - g[a] * lim[a], -c[a] + f[a] + g[a] * lim[a]]
        if lim[a] > 0 and f[a] > 0:
            bps += [-c[a] - f[a], -c[a] + f[a]]
        want = np.zeros(2 * LADDER_BUCKETS, np.int64)
        for b in bps:
            if b < lam[a]:
                want[ladder_bucket(lam[a] - b)] += 1
            elif b > lam[a]:
                want[LADDER_BUCKETS + ladder_bucket(b - lam[a])] += 1
        assert (counts[a] == want).all()


def test_ladder_buckets_are_monotone_and_their_edges_bound_them() -> None:
    d = np.geomspace(1e-12, 1e5, 20_000)
    j = np.array([ladder_bucket(v) for v in d])
    assert (np.diff(j) >= 0).all()
    assert j[0] == 0 and j[-1] == LADDER_BUCKETS - 1
    for v, b in zip(d[::97], j[::97], strict=True):
        if b < LADDER_BUCKETS - 1:  # the last bucket holds everything beyond
            assert v <= ladder_edge(b) * (1 + 1e-12)
        if b > 0:
            assert v > ladder_edge(b - 1) * (1 - 1e-12)


def test_share_words_sum_to_the_venues_sums_also_masked() -> None:
    """Eight venues' share words, masked pairwise, add up (mod 2^64) to the sums of their
    x, slopes and ladders; any strict subset does not."""
    rng = np.random.default_rng(5)
    n, m = 8, 3
    parties = _parties(n)
    c = 100 + rng.normal(0, 0.05, (n, m))
    g = np.full((n, m), 1e-3)
    f = np.full((n, m), 0.01)
    lim = np.full((n, m), 20.0)
    lam = -np.full(m, 100.0)
    acc = np.zeros(m * SHARE_WORDS_PER_ASSET, np.uint64)
    xs, sls, srs = np.zeros(m), np.zeros(m), np.zeros(m)
    counts = np.zeros((m, 2 * LADDER_BUCKETS), np.int64)
    ids = list(range(n))
    for i in range(n):
        enc = PriceShareEncoder(m)
        words = enc.encode(c[i], g[i], f[i], lim[i], lam).copy()
        xs += enc.x
        sls += enc.slope_lo
        srs += enc.slope_hi
        counts += enc.counts
        acc += parties[i].mask_encoded(words, round_id=1, iteration=1, participants=ids,
                                       epoch=255)  # fmt: skip
    s, sl, sr = np.zeros(m), np.zeros(m), np.zeros(m)
    got = np.zeros((m, 2 * LADDER_BUCKETS), np.int64)
    read_sums(acc, m, X_FIXED.scale, s, sl, sr, got)
    assert np.allclose(s, xs, atol=n * 2.0**-39)
    assert np.allclose(sl, sls) and np.allclose(sr, srs)
    assert (got == counts).all() and counts.sum() > 0


# --- the rounds in process ------------------------------------------------------------------


def _parties(n: int) -> list[MaskingParty]:
    keys = [X25519PrivateKey.generate() for _ in range(n)]
    publics = {i: public_raw(k) for i, k in enumerate(keys)}
    return [MaskingParty(i, keys[i], publics, X_FIXED, SESSION) for i in range(n)]


def _venues(n: int, m: int, masked: bool) -> list[VenuePrices]:
    parties: list[MaskingParty | None] = list(_parties(n)) if masked else [None] * n
    return [
        VenuePrices(
            FakeSocket(), REG, VenueSolver(m), i, 100 + i, RealtimeClock(), masking=parties[i]
        )
        for i in range(n)
    ]


def _driver(link: Any, n: int, m: int, masked: bool) -> PriceRoundDriver:
    return PriceRoundDriver(link, REG, PriceSearch(n, m, masked), RealtimeClock(), 1, 50)


def _set(venues: list[VenuePrices], problem: tuple[np.ndarray, ...], seq: int) -> None:
    c, gamma, phi, limit = problem
    for i, v in enumerate(venues):
        for a in range(c.shape[1]):
            v.solver.set_asset(a, c[i, a], gamma[i, a], phi[i, a], limit[i, a], seq=seq)


def _problem(rng: np.random.Generator, base: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    m = base.shape[0]
    c = base + rng.normal(0, 0.03, (n, m))
    gamma = rng.uniform(1e-4, 1e-2, (n, m))
    phi = rng.uniform(0.0, 0.03, (n, m))
    limit = rng.integers(1, 60, (n, m)).astype(float)
    return c, gamma, phi, limit


def _gap(problem: tuple[np.ndarray, ...], x: np.ndarray) -> float:
    c, gamma, phi, limit = problem
    out = np.zeros(1)
    z = x - x.mean(axis=0)
    gaps_batch(c[None], gamma[None], phi[None], limit[None], z[None], 1.0, out)
    return float(out[0])


@pytest.mark.parametrize(("n", "m", "masked"), [(2, 1, True), (4, 4, False), (8, 16, True),
                                                (16, 2, False)])  # fmt: skip
def test_price_solves_reach_the_centralized_optimum_in_few_rounds(
    n: int, m: int, masked: bool
) -> None:
    """A random walk of problems with mispricing episodes (one venue's price pushed 0.3 away,
    pinning optima at position limits): every solve's trades equal the independent
    bisection's x* (up to its floating-point resolution) and the rounds stay few (growing
    with the log of the problem's size)."""
    rng = np.random.default_rng(11 + n)
    venues = _venues(n, m, masked)
    link = InProcessLink(venues)
    driver = _driver(link, n, m, masked)
    base = np.full(m, 100.0)
    rounds = []
    for k in range(120):
        base = base + rng.normal(0, 0.01, m)
        problem = _problem(rng, base, n)
        if k % 40 < 6:
            problem[0][0] += 0.3
        _set(venues, problem, k)
        out = driver.solve(problem[0], max_rounds=100)
        assert not out.aborted and out.converged, driver.last_error
        rounds.append(out.rounds)
        x_star, lam = np.zeros((n, m)), np.zeros(m)
        centralized_solve(problem[0], problem[1], problem[2], problem[3], x_star, lam)
        np.testing.assert_allclose(driver.ex.best_x, x_star, atol=1e-6)
        assert _gap(problem, driver.ex.best_x) <= max(_gap(problem, x_star), 1e-12) + 1e-9
    # a solve's rounds are its slowest asset's; these problems are harsher than the
    # campaign's (curvature, fees and limits drawn over two decades)
    size = np.log2(n * m)
    assert np.median(rounds) <= 1 + size
    assert np.percentile(rounds, 99) <= 4 + 2 * size


def test_the_first_proposal_is_minus_the_mean_mid_and_an_interior_optimum_takes_one_query() -> None:
    """Every solve starts from the public mids (no warm start): a problem whose optimum is
    interior for every venue (S linear around −mean mid) is certified by the first query,
    the same problem solved twice takes the same rounds to the same price, and a held-out
    venue's mid does not enter the first proposal."""
    n, m = 3, 2
    venues = _venues(n, m, masked=False)
    link = InProcessLink(venues)
    driver = _driver(link, n, m, masked=False)
    c = np.array([[100.0, 50.0], [100.02, 50.01], [99.97, 49.98]])
    problem = (c, np.full((n, m), 1e-3), np.full((n, m), 0.001), np.full((n, m), 1e4))
    _set(venues, problem, 1)
    first = driver.solve(c, 50)
    assert first.rounds == 1 and first.converged
    x_star, lam = np.zeros((n, m)), np.zeros(m)
    centralized_solve(*problem, x_star, lam)
    np.testing.assert_allclose(driver.ex.root, lam, atol=1e-9)
    root = driver.ex.root.copy()
    assert driver.solve(c, 50).rounds == 1
    assert np.array_equal(driver.ex.root, root)
    driver.ex.freeze(2, np.zeros(m, np.int64))
    driver.ex.begin(c)
    np.testing.assert_allclose(driver.ex.lam, -c[:2].mean(axis=0))


def test_a_held_out_venue_is_balanced_around_or_the_solve_is_infeasible() -> None:
    n, m = 3, 1
    venues = _venues(n, m, masked=True)
    driver = _driver(InProcessLink(venues), n, m, masked=True)
    c = np.array([[100.0], [100.2], [99.9]])
    problem = (c, np.full((n, m), 1e-3), np.full((n, m), 0.01), np.full((n, m), 30.0))
    _set(venues, problem, 1)
    driver.ex.freeze(0, np.array([12]))
    out = driver.solve(c, 50)
    assert not out.aborted and out.converged
    assert driver.ex.best_x[0, 0] == 12
    assert abs(driver.ex.best_x.sum()) < 1e-6
    # the live venues can offset at most 60 lots: a venue held at 80 leaves no root
    driver.ex.frozen_lots[0] = 80
    out = driver.solve(c, 50)
    assert out.aborted and driver.counts["infeasible_solves"] == 1
    assert driver.counts["aborted_solves"] == 0  # not the venues' doing


def test_a_venue_revealing_another_x_than_it_answered_aborts_the_solve() -> None:
    n, m = 2, 1
    venues = _venues(n, m, masked=True)
    link = InProcessLink(venues)
    driver = _driver(link, n, m, masked=True)
    problem = _problem(np.random.default_rng(4), np.full(m, 100.0), n)
    _set(venues, problem, 1)

    def lie(frames: list[bytes]) -> list[bytes]:
        _, v = REG.decode_values(frames[1])
        if v[10] == KIND_PRICE_SHARE:
            return frames
        # the reveal's words: x per asset, then the prices echoed; asset 0's x moved
        x = np.frombuffer(frames[1][-16:-8], "<f8")[0] + 0.5
        return [frames[0], frames[1][:-16] + np.float64(x).tobytes() + frames[1][-8:]]

    link.tamper = lie
    out = driver.solve(problem[0], 50)
    assert out.aborted and driver.counts["reveal_mismatches"] == 1
    assert "add up to" in driver.last_error


def test_a_venue_revealing_at_other_prices_is_refused_and_counted() -> None:
    n, m = 2, 1
    venues = _venues(n, m, masked=False)
    link = InProcessLink(venues)
    driver = _driver(link, n, m, masked=False)
    problem = _problem(np.random.default_rng(6), np.full(m, 100.0), n)
    _set(venues, problem, 1)

    def other_price(frames: list[bytes]) -> list[bytes]:
        _, v = REG.decode_values(frames[1])
        if v[10] == KIND_PRICE_SHARE or v[9] != 1:
            return frames
        price = np.frombuffer(frames[1][-8:], "<f8")[0]
        return [frames[0], frames[1][:-8] + np.nextafter(price, 0.0).tobytes()]

    link.tamper = other_price
    out = driver.solve(problem[0], 50)
    assert out.aborted and out.missing == (1,)  # its reveal never counted: the wait ran out
    assert driver.counts["reveal_mismatches"] == 1 and driver.counts["bad_solutions"] == 1
    assert "no reveal from venues [1]" in driver.last_error


def test_the_coordinator_sees_only_masked_words_until_the_reveal() -> None:
    """Every byte a venue sent: PriceResponses whose share words are masked (they differ
    from the venue's own unmasked words in every round) and one REVEAL per solve."""
    n, m = 3, 2
    venues = _venues(n, m, masked=True)
    link = InProcessLink(venues)
    driver = _driver(link, n, m, masked=True)
    problem = _problem(np.random.default_rng(8), np.full(m, 100.0), n)
    _set(venues, problem, 1)
    driver.solve(problem[0], 50)
    kinds = []
    for data in link.sent:
        schema, v = REG.decode_values(data)
        assert schema.name == "PriceResponse"
        kinds.append(v[10])
        if v[10] == KIND_PRICE_SHARE:
            i = v[9]
            enc = PriceShareEncoder(m)
            c, gamma, phi, limit = (p[i] for p in problem)
            plain = enc.encode(c, gamma, phi, limit, venues[i]._lam)
            assert not np.array_equal(np.array(v[14:], np.uint64), plain)
    assert kinds.count(2) == n and kinds.count(1) == n * driver.ex.round


def test_a_silent_venue_aborts_the_solve_and_journaled_answers_replay_alike() -> None:
    n, m = 3, 1
    records: list[JournalRecord] = []
    venues = _venues(n, m, masked=True)
    link = InProcessLink(venues, records)
    driver = _driver(link, n, m, masked=True)
    rng = np.random.default_rng(9)
    outcomes = []
    for k in range(6):
        problem = _problem(rng, np.full(m, 100.0), n)
        _set(venues, problem, k)
        link.silent = {2} if k == 3 else set()
        out = driver.solve(problem[0], 50)
        outcomes.append((out.rounds, out.converged, out.aborted, driver.ex.best_x.copy()))
        if k == 3:
            assert out.aborted and out.missing == (2,)
    # the same decisions from the journal alone
    replay_link = RecordedRoundLink()
    replay_link.queue.extend(records)
    replayed = _driver(replay_link, n, m, masked=True)
    rng = np.random.default_rng(9)
    for k in range(6):
        problem = _problem(rng, np.full(m, 100.0), n)
        out = replayed.solve(problem[0], 50)
        want = outcomes[k]
        assert (out.rounds, out.converged, out.aborted) == want[:3]
        assert np.array_equal(replayed.ex.best_x, want[3])


def test_more_venues_than_the_ladder_counts_are_refused() -> None:
    check_price_venues(63)
    with pytest.raises(ConfigError, match="at most 63"):
        check_price_venues(64)


def test_a_newton_step_below_one_float_spacing_certifies_the_price() -> None:
    """Seen live: S = 7e-11 lots at a slope of -1e4 and a breakpoint within 1e-9 of λ — the
    Newton point is λ itself in floating point, and the search must not propose it again
    until the budget runs out."""
    lam = np.array([-100.270911714])
    counts = np.zeros((1, 2 * LADDER_BUCKETS), np.int64)
    counts[0, LADDER_BUCKETS] = 1  # a breakpoint just above, in the first bucket
    state = np.zeros(1, np.int64)
    root = np.zeros(1)
    left = price_step(lam, np.array([7.09e-11]), np.array([-1e4]), np.array([-1e4]), counts,
                      np.array([1e-11]), np.array([-np.inf]), np.array([np.inf]), np.zeros(1),
                      np.zeros(1), state, root)  # fmt: skip
    assert left == 0 and state[0] == CERTIFIED and root[0] == -100.270911714
    # a step larger than the float spacing with the same breakpoint: not certified, moves
    state[0] = 0
    left = price_step(lam, np.array([3e-7]), np.array([-1e4]), np.array([-1e4]), counts,
                      np.array([1e-11]), np.array([-np.inf]), np.array([np.inf]), np.zeros(1),
                      np.zeros(1), state, root)  # fmt: skip
    assert left == 1 and lam[0] > -100.270911714


def test_a_price_on_a_breakpoint_with_float_noise_is_the_root() -> None:
    """Seen live: a Newton step lands λ on a venue's breakpoint; beyond it S is flat and S
    reads 5e-11 lots (float noise of −(c + λ) − φ), more than the answers' fixed-point
    rounding. Within what the steep side's slope times a few ulps of λ explains, λ is the
    root: certified, not a jump to the next breakpoint (which cost 2-5 more rounds)."""
    search = PriceSearch(2, 1, masked=False)
    search.freeze(1, np.zeros(1, np.int64))  # the other venue holds 0 lots
    search.begin(np.array([[100.0], [100.0]]))
    search.lam[:] = -(100.0 + 0.01)  # venue 0's breakpoint -c - φ, in floating point
    enc = PriceShareEncoder(1)
    c, g, f, lim = (np.array([v]) for v in (100.0, 1e-4, 0.01, 50.0))
    search.absorb_share(0, enc.encode(c, g, f, lim, search.lam).copy())
    assert 0 < enc.x[0] < 1e-9 and enc.slope_hi[0] == 0 and enc.slope_lo[0] == -1e4
    assert search.step() and search.converged
    assert search.root[0] == -(100.0 + 0.01)

"""The coordinator's half of the federated price protocol: certified Newton on the aggregate.

Per asset the coordinator looks for the price λ* where the venues' summed best responses
S(λ) = Σ_i x_i(λ) cross zero (:mod:`arbsphere.price_protocol`). A round proposes one price
per asset and gets back, summed over the venues, S, its left and right slopes and the
histogram of the venues' breakpoint distances. From those (:func:`price_step`):

- S = 0 (or, where S is flat on the root's side, within the answers' fixed-point rounding
  and the float error a steep other side leaves at a breakpoint): λ is the root;
- else the Newton point λ − S/S' on the side of the root; if the ladder says no breakpoint
  lies between λ and it, S is linear there and the Newton point is the root (certified: no
  round needed to confirm it);
- else the next proposal is the Newton point, or — when the nearest breakpoint on the root's
  side is :data:`NEAR_FACTOR` times nearer, or the Newton point overshoots the bracket
  [lo, hi] (S(lo) > 0 > S(hi)) — just past that breakpoint (the far edge of its ladder
  bucket), where S's slope is known again; if that too leaves the bracket, the bracket's
  secant or midpoint.

Each round certifies the root, passes a breakpoint of S or shrinks the bracket. The first
proposal is −(mean of the public mids): on the default campaign's recorded problems the
search certified the root after 1 query at p50 and 2 at p99 (max 3).
The solve then ends with a REVEAL at the roots: every venue's
x_i(λ*) in clear (its trades), checked to add up to zero within :data:`REVEAL_TOL_LOTS`.

No wall clock anywhere: the rounds a solve takes depend only on the answers (replay).
Venues held out of the market (``frozen``) count with their fixed lots, slope 0, no
breakpoints. When the live venues cannot offset them (S keeps its sign with no breakpoint
left on the root's side), the solve is *infeasible*: the plan is kept.
"""

from __future__ import annotations

import math
import struct

import numpy as np
from numba import njit

from arbsphere.coordinator.masked_exchange import RevealCollector, add_share
from arbsphere.errors import SolverError
from arbsphere.price_protocol import (
    LADDER_BUCKETS,
    PriceShareEncoder,
    check_price_venues,
    ladder_bucket,
    ladder_edge,
    read_sums,
    share_length,
)
from arbsphere.privacy.secure_rounds import X_FIXED

#: |Σ x_i(λ*)| the revealed trades may miss zero by, per asset (lots): the certified root is
#: exact to the floating point (~1e-10 lots at γ = 1e-4); more means a venue answered
#: inconsistently
REVEAL_TOL_LOTS = 1e-6

#: go to the nearest breakpoint rather than the Newton point when it is this many times nearer
NEAR_FACTOR = 8.0

#: per-asset state codes of :func:`price_step`
SEARCHING = 0
CERTIFIED = 1
INFEASIBLE = 2


@njit(cache=True)
def _ladder_clear(counts, side, upto):  # type: ignore[no-untyped-def]
    """No breakpoint in buckets 0..upto of ``side`` (0 below, 1 above)."""
    base = side * LADDER_BUCKETS
    for j in range(upto + 1):  # noqa: SIM110 (Numba: no generator expressions)
        if counts[base + j] != 0:
            return False
    return True


@njit(cache=True)
def _first_breakpoint(counts, side):  # type: ignore[no-untyped-def]
    base = side * LADDER_BUCKETS
    for j in range(LADDER_BUCKETS):
        if counts[base + j] != 0:
            return j
    return -1


@njit(cache=True)
def _inside(lo, hi, s_lo, s_hi, cand):  # type: ignore[no-untyped-def]
    """``cand`` if strictly inside (lo, hi), else the bracket's secant point, else its
    midpoint; NaN when the bracket cannot shrink in floating point."""
    if lo < cand < hi:
        return cand
    if math.isfinite(lo) and math.isfinite(hi):
        sec = lo + s_lo * (hi - lo) / (s_lo - s_hi)
        if lo < sec < hi:
            return sec
        mid = 0.5 * (lo + hi)
        if lo < mid < hi:
            return mid
        return math.nan
    return cand


@njit(cache=True)
def price_step(  # type: ignore[no-untyped-def]
    lam, s_sum, slope_lo, slope_hi, counts, tol, lo, hi, s_lo, s_hi, state, root
):
    """One round's decision for every asset still searching; returns how many are (-1 when
    an asset has no root: the live venues cannot offset the held-out ones).

    ``lam`` (m): the prices just answered, overwritten with the next proposal; ``s_sum``,
    ``slope_lo``, ``slope_hi`` (m): the summed answers (frozen venues included);
    ``counts`` (m x 2·BUCKETS): the summed ladder; ``tol`` (m): |S| taken as zero;
    ``lo``/``hi``/``s_lo``/``s_hi``: the bracket; ``state``/``root``: per-asset outcome."""
    searching = 0
    infeasible = False
    for a in range(lam.shape[0]):
        if state[a] != SEARCHING:
            continue
        la = lam[a]
        s = s_sum[a]
        if s == 0.0:
            state[a] = CERTIFIED
            root[a] = la
            continue
        if s > 0.0:  # S non-increasing: the root is above
            side = 1
            if la > lo[a]:
                lo[a] = la
                s_lo[a] = s
            slope = slope_hi[a]
        else:
            side = 0
            if la < hi[a]:
                hi[a] = la
                s_hi[a] = s
            slope = slope_lo[a]
        if slope < 0.0:
            d = -s / slope if side == 1 else s / slope  # > 0: distance to the Newton point
            target = la + d if side == 1 else la - d
            if target == la or _ladder_clear(counts[a], side, ladder_bucket(d)):
                # (the Newton point is this very float: S is as near zero as λ can get)
                state[a] = CERTIFIED
                root[a] = target
                continue
            cand = target
            near = ladder_edge(_first_breakpoint(counts[a], side))
            if near * NEAR_FACTOR < d or not lo[a] < cand < hi[a]:
                # the nearest breakpoint is much nearer than the Newton point, or the Newton
                # point overshoots the bracket: the slope here is not the root's; go just past
                # that breakpoint, where S's slope is known again
                step = min(d, near)
                cand = la + step if side == 1 else la - step
        elif abs(s) <= tol[a]:  # flat, and S is zero within the answers' rounding
            state[a] = CERTIFIED
            root[a] = la
            continue
        else:
            j = _first_breakpoint(counts[a], side)
            if j < 0:  # flat to the end on the root's side: no root
                state[a] = INFEASIBLE
                root[a] = la
                infeasible = True
                continue
            e = ladder_edge(j)
            cand = la + e if side == 1 else la - e
        nxt = _inside(lo[a], hi[a], s_lo[a], s_hi[a], cand)
        if math.isnan(nxt):  # the bracket is two adjacent floats: take the better end
            state[a] = CERTIFIED
            root[a] = lo[a] if abs(s_lo[a]) <= abs(s_hi[a]) else hi[a]
            continue
        lam[a] = nxt
        searching += 1
    return -1 if infeasible else searching


@njit(cache=True)
def close_round(  # type: ignore[no-untyped-def]
    acc,
    frozen,
    frozen_lots,
    scale,
    lam,
    s_sum,
    slope_lo,
    slope_hi,
    counts,
    tol,
    lo,
    hi,
    s_lo,
    s_hi,
    state,
    root,
):
    """Read the round's summed words, add the held-out venues' lots, set the zero tolerance
    of a flat S (the live answers' fixed-point rounding, and the float error a steep other
    side leaves at a breakpoint) and take
    :func:`price_step`; returns how many assets are still searching."""
    m = lam.shape[0]
    read_sums(acc, m, scale, s_sum, slope_lo, slope_hi, counts)
    n_live = 0
    for i in range(frozen.shape[0]):
        if frozen[i]:
            for a in range(m):
                s_sum[a] += frozen_lots[i, a]
        else:
            n_live += 1
    for a in range(m):
        # a λ that a Newton step put on a breakpoint (flat beyond it) carries S's float error
        # from the steep side: |slope| x a few ulps of λ
        steep = max(abs(slope_lo[a]), abs(slope_hi[a]))
        tol[a] = n_live * 2.0**-38 + 4.0 * steep * np.spacing(abs(lam[a]))
    return price_step(lam, s_sum, slope_lo, slope_hi, counts, tol, lo, hi, s_lo, s_hi, state,
                      root)  # fmt: skip


@njit(cache=True)
def open_solve(reference_price, frozen, lam, lo, hi, state, root):  # type: ignore[no-untyped-def]
    """The first proposal, −(mean of the live venues' public mids) per asset, and the
    bracket opened. Returns the participants' bitmap."""
    n, m = reference_price.shape
    bits = 0
    live = 0
    for i in range(n):
        if not frozen[i]:
            bits |= 1 << i
            live += 1
    for a in range(m):
        mid = 0.0
        for i in range(n):
            if live == 0 or not frozen[i]:
                mid += reference_price[i, a]
        mid /= live if live else n
        lam[a] = -mid
        lo[a] = -math.inf
        hi[a] = math.inf
        state[a] = SEARCHING
        root[a] = lam[a]
    return bits


class PriceSearch(RevealCollector):
    """The coordinator's state of the price protocol: sums of the live venues' shares, the
    per-asset bracket and proposal, per venue only what is public (held-out venues' lots) or
    revealed (x at the roots)."""

    #: which federated protocol this state speaks (the exchange-ADMM states say "admm")
    protocol = "price"

    def __init__(self, n_venues: int, n_assets: int, masked: bool) -> None:
        check_price_venues(n_venues)
        n, m = n_venues, n_assets
        self.n_venues = n
        self.n_assets = m
        self.masked = masked
        self.share_len = share_length(m)
        self._acc = np.zeros(self.share_len, np.uint64)
        self._got = np.zeros(n, np.bool_)
        self._revealed = np.zeros(n, np.bool_)
        self.frozen = np.zeros(n, np.bool_)
        self.frozen_lots = np.zeros((n, m), np.int64)
        self.participants = 0
        self.round = 0
        self.converged = False
        self.infeasible = False
        #: the proposal of the round in progress, the bracket and the per-asset outcome
        self.lam = np.zeros(m)
        self.lo = np.full(m, -np.inf)
        self.hi = np.full(m, np.inf)
        self.s_lo = np.zeros(m)
        self.s_hi = np.zeros(m)
        self.state = np.zeros(m, np.int64)
        self.root = np.zeros(m)
        self.tol = np.zeros(m)
        #: the last round's sums (what the coordinator learns)
        self.s_sum = np.zeros(m)
        self.slope_lo = np.zeros(m)
        self.slope_hi = np.zeros(m)
        #: the trades: revealed x at the roots (frozen rows: their lots)
        self.best_x = np.zeros((n, m))
        self.z_best = np.zeros((n, m))
        self._scale = float(2**X_FIXED.frac_bits)
        self._counts = np.zeros((m, 2 * LADDER_BUCKETS), np.int64)

    @staticmethod
    def warm_up() -> None:
        """Compile (or load from Numba's cache) the search's kernels on a scratch instance
        before any timing matters (a fresh clone's first solve would stall for seconds)."""
        scratch = PriceSearch(2, 1, masked=False)
        scratch.begin(np.full((2, 1), 100.0))
        enc = PriceShareEncoder(1)
        one = np.ones(1)
        for i in range(2):
            words = enc.encode(one * (100.0 + i), one * 1e-3, one * 0.01, one * 10.0, scratch.lam)
            scratch.absorb_share(i, words.copy())
        scratch.step()

    # --- the interface the service shares with the exchange-ADMM state -------------------
    def freeze(self, venue: int, lots: np.ndarray) -> None:
        """Hold ``venue`` at ``lots`` (it cannot trade); the others balance around it."""
        self.frozen[venue] = True
        self.frozen_lots[venue] = lots

    def thaw(self, venue: int) -> None:
        self.frozen[venue] = False

    def reset(self) -> None:
        """After an aborted solve: nothing carries over (every solve starts from the public
        mids), but the last trades' consensus iterate is forgotten."""
        self.z_best[:] = 0.0

    @property
    def consensus_z(self) -> np.ndarray:
        """The revealed trades minus their mean (the rig's baseline compares it)."""
        return self.z_best

    @property
    def primal_res(self) -> float:
        """‖S‖ at the last proposal (lots)."""
        return float(np.sqrt(self.s_sum @ self.s_sum))

    @property
    def dual_res(self) -> float:
        """The widest finite bracket left (price units; 0 when every asset is certified)."""
        width = self.hi - self.lo
        finite = np.isfinite(width) & (self.state == 0)
        return float(width[finite].max()) if finite.any() else 0.0

    def prices(self) -> np.ndarray:
        return self.root.copy()

    # --- a solve ---------------------------------------------------------------------------
    def begin(self, reference_price: np.ndarray) -> bool:
        """Start a solve from the public mids ``reference_price`` (N x m). Returns True:
        every solve starts from the mids (no warm start — on the default campaign's recorded
        problems the last root, shifted by the mids' move, took 5 queries at p99 against 2
        from the mids, as the optimum jumps between venues' narrow active segments)."""
        self.participants = open_solve(reference_price, self.frozen, self.lam, self.lo, self.hi,
                                       self.state, self.root)  # fmt: skip
        self.round = 0
        self.converged = False
        self.infeasible = False
        self._expect()
        return True

    def _expect(self) -> None:
        self._got[:] = self.frozen
        self._acc[:] = 0

    def missing(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(~self._got)]

    def absorb_share(self, venue: int, words: np.ndarray) -> None:
        add_share(self._acc, self._got, venue, words, self.round + 1)

    def step(self) -> bool:
        """Close the round once every live venue answered; returns whether the search is over
        (every asset certified, or one infeasible)."""
        if not self._got.all():
            raise SolverError(f"round {self.round + 1}: no share yet from venues {self.missing()}")
        self.round += 1
        left = close_round(self._acc, self.frozen, self.frozen_lots, self._scale,
                           self.lam, self.s_sum, self.slope_lo, self.slope_hi, self._counts,
                           self.tol, self.lo, self.hi, self.s_lo, self.s_hi, self.state,
                           self.root)  # fmt: skip
        self.infeasible = left < 0
        self.converged = left == 0
        self._expect()
        return left <= 0

    def settle_unfinished(self) -> None:
        """The budget ran out: every asset still searching takes its best point so far —
        the secant of its bracket, else its last proposal."""
        for a in np.flatnonzero(self.state == SEARCHING):
            lo, hi = self.lo[a], self.hi[a]
            guess = self.lam[a]
            if np.isfinite(lo) and np.isfinite(hi) and self.s_lo[a] != self.s_hi[a]:
                guess = lo + self.s_lo[a] * (hi - lo) / (self.s_lo[a] - self.s_hi[a])
            self.root[a] = guess

    # --- the reveal (RevealCollector), checked against the certified prices ---------------
    def finish_reveal(self) -> str:
        """Check the revealed x: finite, and (when every asset was certified) adding up to
        zero within :data:`REVEAL_TOL_LOTS`; '' when they pass (then ``best_x`` holds the
        trades), else why not."""
        for i in np.flatnonzero(self.frozen):
            self.best_x[i] = self.frozen_lots[i]
        if not np.isfinite(self.best_x).all():
            return "a venue revealed a non-finite x"
        net = self.best_x.sum(axis=0)
        if self.converged and (np.abs(net) > REVEAL_TOL_LOTS).any():
            a = int(np.argmax(np.abs(net)))
            return (
                f"the revealed x at the certified price of asset {a} add up to {net[a]:.3g} "
                f"lots, not 0 (a venue revealed another x than it answered)"
            )
        self.z_best[:] = self.best_x - self.best_x.mean(axis=0)
        return ""

    def digest_parts(self) -> tuple[list[np.ndarray], bytes]:
        """What a later decision depends on (the journal's state digest)."""
        arrays = [self.frozen, self.frozen_lots, self.best_x, self.s_sum, self.root]
        return arrays, struct.pack("<QI", self.participants, self.round)

"""The federated price protocol: what a venue answers to a proposed price, and how it is read.

With separable costs the only coupling between venues is one price per asset (README,
"Federated coordination"):
venue i's best response to a price λ is x_i(λ) = argmin f_i(x) + λx =
clip(soft(−(c_i + λ), φ_i) / γ_i, −L_i, L_i), continuous, piecewise linear and non-increasing
in λ, with (at most) four breakpoints where its slope changes::

    b1 = −c − φ − γL   (below: +L)      b2 = −c − φ   (between b1 and b2: slope −1/γ)
    b3 = −c + φ        (b2..b3: 0)      b4 = −c + φ + γL   (b3..b4: −1/γ; above: −L)

The coordinator looks for λ* with S(λ*) = Σ_i x_i(λ*) = 0 (the exact optimum, as the
centralized baseline's bisection finds it) by proposing prices. Per proposed price each venue
answers, per asset, with words that are *summed* over the venues (pairwise-masked under secure
aggregation, exactly like the ADMM shares; :mod:`arbsphere.privacy.secure_rounds`):

- its response x_i(λ) and its left and right slopes (fixed point,
  :data:`~arbsphere.privacy.secure_rounds.X_FIXED`);
- a *breakpoint ladder*: how many of its own breakpoints lie at each distance from λ, below and
  above, in geometric buckets (:func:`ladder_bucket`), as 8-bit counts packed eight to a word.

The sums give the coordinator S(λ), the aggregate slopes on both sides and the aggregate
histogram of breakpoint distances. If no breakpoint lies between λ and the Newton point
λ − S/S', S is linear there and the Newton point *is* λ* (certified, no further round needed):
the coordinator then asks every venue to reveal x_i(λ*), its trades. Otherwise the Newton
point (or a safeguarded secant / bracket step) is the next proposal. What the coordinator
learns before the reveal is a function of the aggregate response curve S only (its values,
slopes and breakpoints at the proposed prices), never one venue's.

Share words per asset (``SHARE_WORDS_PER_ASSET``): x, left slope, right slope, then
``LADDER_WORDS`` words of packed counts (below side first, then above). Reveal words: the
IEEE-754 bits of x_i(λ*) per asset, as the ADMM reveal.

Counts: each venue has at most 4 breakpoints per asset, so a field's sum over ≤ 63 venues
stays < 256 and never carries into the next field (the masked sum is exact modulo 2^64).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from arbsphere.admm_updates import soft_clip
from arbsphere.contracts import default_registry
from arbsphere.errors import AggregationError, ConfigError
from arbsphere.privacy.secure_rounds import X_FIXED, X_MAX_LOTS

#: PriceProposal ``phase`` (``PricePhase`` in ``contracts.toml``): QUERY asks for the share at
#: the proposed prices (flags: FLAG_BEGIN freezes), REVEAL for x there in clear (the trades;
#: closes the solve), ABORT drops the solve
PRICE_QUERY, PRICE_REVEAL, PRICE_ABORT = default_registry().codes(
    "PricePhase", "QUERY", "REVEAL", "ABORT"
)
#: PriceProposal ``flags``: the first query of a solve, the venue freezes its problem
(FLAG_BEGIN,) = default_registry().codes("PriceFlags", "BEGIN")
#: PriceResponse ``kind``
KIND_PRICE_SHARE, KIND_PRICE_REVEAL = default_registry().codes(
    "PriceResponseKind", "SHARE", "REVEAL"
)
#: appended to the roster's session bytes: the price shares' own HKDF salt
PRICE_MASK_SUFFIX = b"/mask/prices-v1"

#: ladder: bucket j holds distances in (e_{j-1}, e_j], e_j = 2^(LADDER_MIN_EXP + (j+1)/SUB),
#: the last bucket everything beyond; distance 0 (a breakpoint at λ) is in no bucket — the
#: left and right slopes carry it
LADDER_MIN_EXP = -30
LADDER_MAX_EXP = 12
LADDER_SUB = 4
LADDER_BUCKETS = LADDER_SUB * (LADDER_MAX_EXP - LADDER_MIN_EXP) + 1
FIELD_BITS = 8
FIELDS_PER_WORD = 64 // FIELD_BITS
LADDER_WORDS = -(-2 * LADDER_BUCKETS // FIELDS_PER_WORD)
#: words of a share per asset: x, left slope, right slope, ladder
SHARE_WORDS_PER_ASSET = 3 + LADDER_WORDS
#: most venues whose counts may be summed without a field carrying (4 breakpoints each)
MAX_PRICE_VENUES = ((1 << FIELD_BITS) - 1) // 4


def share_length(n_assets: int) -> int:
    """Words of one price share for ``n_assets`` assets."""
    return n_assets * SHARE_WORDS_PER_ASSET


def check_price_venues(n_venues: int) -> None:
    """Refuse more venues than the ladder's 8-bit fields can count without carrying."""
    if n_venues > MAX_PRICE_VENUES:
        raise ConfigError(
            f"the price protocol sums at most {MAX_PRICE_VENUES} venues' breakpoint counts "
            f"(8-bit fields, 4 breakpoints per venue and asset), got {n_venues}"
        )


@njit(cache=True)
def ladder_bucket(d):  # type: ignore[no-untyped-def]
    """The ladder bucket of a distance ``d`` > 0 (monotone non-decreasing in d)."""
    if d <= 0.0:
        return -1
    j = math.ceil(LADDER_SUB * (math.log2(d) - LADDER_MIN_EXP)) - 1
    if j < 0:
        return 0
    if j > LADDER_BUCKETS - 1:
        return LADDER_BUCKETS - 1
    return j


@njit(cache=True)
def ladder_edge(j):  # type: ignore[no-untyped-def]
    """The upper edge of bucket ``j`` (the last bucket: twice the largest finite edge)."""
    if j >= LADDER_BUCKETS - 1:
        return 2.0 ** (LADDER_MAX_EXP + 1)
    return 2.0 ** (LADDER_MIN_EXP + (j + 1) / LADDER_SUB)


@njit(cache=True)
def best_response(c, gamma, phi, limit, lam):  # type: ignore[no-untyped-def]
    """x(λ) = clip(soft(−(c + λ), φ) / γ, −L, L): the same arithmetic as the centralized
    baseline's (:func:`arbsphere.coordinator.baseline.centralized_solve`)."""
    return soft_clip(-(c + lam), phi, gamma, limit)


@njit(cache=True)
def _count(b, lam, counts, base):  # type: ignore[no-untyped-def]
    """Add breakpoint ``b`` to the below (``base``) or above (``base + BUCKETS``) side."""
    if b < lam:
        counts[base + ladder_bucket(lam - b)] += 1
    elif b > lam:
        counts[base + LADDER_BUCKETS + ladder_bucket(b - lam)] += 1


@njit(cache=True)
def price_response(c, gamma, phi, limit, lam, x, slope_lo, slope_hi, counts):  # type: ignore[no-untyped-def]
    """A venue's answer for its m assets at prices ``lam``: x, left/right slopes and the
    breakpoint ladder counts (``counts``: m x 2·BUCKETS, zeroed here)."""
    m = c.shape[0]
    for a in range(m):
        ca, g, f, lim, la = c[a], gamma[a], phi[a], limit[a], lam[a]
        x[a] = best_response(ca, g, f, lim, la)
        b1 = -ca - f - g * lim
        b2 = -ca - f
        b3 = -ca + f
        b4 = -ca + f + g * lim
        s = -1.0 / g
        right = 0.0
        left = 0.0
        if lim > 0.0:
            if (b1 <= la < b2) or (b3 <= la < b4) or (f == 0.0 and b1 <= la < b4):
                right = s
            if (b1 < la <= b2) or (b3 < la <= b4) or (f == 0.0 and b1 < la <= b4):
                left = s
        slope_lo[a] = left
        slope_hi[a] = right
        for k in range(2 * LADDER_BUCKETS):
            counts[a, k] = 0
        if lim > 0.0:
            _count(b1, la, counts[a], 0)
            _count(b4, la, counts[a], 0)
            if f > 0.0:
                _count(b2, la, counts[a], 0)
                _count(b3, la, counts[a], 0)


@njit(cache=True)
def unpack_counts(words, out):  # type: ignore[no-untyped-def]
    """m x LADDER_WORDS packed words (8-bit fields, 8 a word) into m x 2·BUCKETS counts
    (summed words: each field is the venues' sum)."""
    m = out.shape[0]
    mask = np.uint64((1 << FIELD_BITS) - 1)
    for a in range(m):
        for k in range(out.shape[1]):
            w = k // FIELDS_PER_WORD
            shift = np.uint64((k % FIELDS_PER_WORD) * FIELD_BITS)
            out[a, k] = np.int64((words[a, w] >> shift) & mask)


@njit(cache=True)
def _fixed(v, scale, max_abs):  # type: ignore[no-untyped-def]
    """rint(v·scale) as the uint64 two's complement; -1 (as a flag) when |v| > max_abs."""
    if not abs(v) <= max_abs:
        return np.uint64(0), False
    return np.uint64(np.int64(np.rint(v * scale)) & np.int64(-1)), True


@njit(cache=True)
def encode_share(  # type: ignore[no-untyped-def]
    c, gamma, phi, limit, lam, x, slope_lo, slope_hi, counts, scale, max_abs, words
):
    """The unmasked share words (m x SHARE_WORDS_PER_ASSET) of the answer at ``lam``.
    Returns -1, or the first asset whose x or slope is outside the fixed point's range."""
    price_response(c, gamma, phi, limit, lam, x, slope_lo, slope_hi, counts)
    m = c.shape[0]
    for a in range(m):
        w0, ok0 = _fixed(x[a], scale, max_abs)
        w1, ok1 = _fixed(slope_lo[a], scale, max_abs)
        w2, ok2 = _fixed(slope_hi[a], scale, max_abs)
        if not (ok0 and ok1 and ok2) or not gamma[a] > 0.0:
            return a
        words[a, 0] = w0
        words[a, 1] = w1
        words[a, 2] = w2
        for w in range(LADDER_WORDS):
            words[a, 3 + w] = 0
        for k in range(2 * LADDER_BUCKETS):
            shift = np.uint64((k % FIELDS_PER_WORD) * FIELD_BITS)
            words[a, 3 + k // FIELDS_PER_WORD] |= np.uint64(counts[a, k]) << shift
    return -1


class PriceShareEncoder:
    """A venue's share words for m assets (preallocated; one call per proposal)."""

    def __init__(self, n_assets: int) -> None:
        m = n_assets
        self.n_assets = m
        self.x = np.zeros(m)
        self.slope_lo = np.zeros(m)
        self.slope_hi = np.zeros(m)
        self.counts = np.zeros((m, 2 * LADDER_BUCKETS), np.int64)
        self.words = np.zeros((m, SHARE_WORDS_PER_ASSET), np.uint64)
        self._flat = self.words.reshape(-1)

    def encode(
        self, c: np.ndarray, gamma: np.ndarray, phi: np.ndarray, limit: np.ndarray,
        lam: np.ndarray,
    ) -> np.ndarray:  # fmt: skip
        """The unmasked words (flat, m·SHARE_WORDS_PER_ASSET; a view, overwritten by the
        next call) of the answer at ``lam``."""
        bad = encode_share(c, gamma, phi, limit, lam, self.x, self.slope_lo, self.slope_hi,
                           self.counts, X_FIXED.scale, X_FIXED.max_abs, self.words)  # fmt: skip
        if bad >= 0:
            raise AggregationError(
                f"asset {bad}: x {self.x[bad]!r}, slopes {self.slope_lo[bad]!r} / "
                f"{self.slope_hi[bad]!r} (gamma {gamma[bad]!r}) outside the fixed point's "
                f"±{X_MAX_LOTS} lots (gamma must be > 0 and >= 1/{X_MAX_LOTS})",
                reason="range",
            )
        return self._flat


@njit(cache=True)
def read_sums(acc, m, scale, s_sum, slope_lo, slope_hi, counts):  # type: ignore[no-untyped-def]
    """Σx, Σ left slopes, Σ right slopes (floats) and the counts (m x 2·BUCKETS) of summed
    share words (flat, m·SHARE_WORDS_PER_ASSET)."""
    w = acc.reshape((m, SHARE_WORDS_PER_ASSET))
    for a in range(m):
        s_sum[a] = np.int64(w[a, 0]) / scale
        slope_lo[a] = np.int64(w[a, 1]) / scale
        slope_hi[a] = np.int64(w[a, 2]) / scale
    unpack_counts(w[:, 3:], counts)

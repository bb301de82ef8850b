"""Secure aggregation of the SharedSignals a venue derives from its private state.

In federated mode with secure aggregation the two private-derived signals — ``liquidity_lots``
(the borrow proxy) and ``correlation``, already noised by the venue's privacy budgets
(:mod:`arbsphere.adapters.signal_privacy`) — do not travel in the per-tick SharedSignals
(which then carry ``liquidity_lots = -1`` and ``correlation = NaN``). Once per *release epoch*
``e = floor(tick rig receive ns / release_interval_ns)`` — at the tick that triggers the
epoch's release — each venue sends a SignalShare: its released values in fixed point plus one
presence word per signal, pairwise-masked among the participants; the coordinator adds the
shares of an epoch modulo 2^64 and learns only

* Σ liquidity and Σ correlation over the venues that released the signal this epoch, and
* how many venues contributed to each (the presence words' sum).

Share words (:data:`SHARE_WORDS` = 4 uint64, each summed modulo 2^64):

- ``liquidity``: :data:`LIQ_FRAC_BITS` = 16 fractional bits, values in [0, 2^20] lots (the
  venue clips its released value to that range first: post-processing of a DP release, free).
  Headroom: 16 × 2^20 × 2^16 = 2^40 < 2^63.
- ``correlation``: :data:`CORR_FRAC_BITS` = 48 fractional bits (3.6e-15), values in [-1, 1]
  (clamped by the privacy post-processing). Headroom: 16 × 2^48 = 2^52 < 2^63.
- two presence words (integers, 0 fractional bits): 1 if the signal was released this epoch,
  0 if withheld (budget exhausted) or not estimated yet — its value word is then 0.

Headroom for :data:`MAX_SIGNAL_VENUES` (8, as the rounds) is asserted at import by
:class:`~arbsphere.privacy.secure_agg.FixedPoint`.

Mask binding: a :class:`~arbsphere.privacy.secure_agg.MaskingParty` of its own (not the
rounds'): ``session = roster session || SIGNALS_SESSION_SUFFIX`` (another HKDF salt, so no seed
is ever shared with the rounds), ``round_id`` = the release epoch, ``iteration`` = 0,
``epoch`` = the participants' bitmap. Release epochs only grow, so masks never repeat; an epoch
re-masked among survivors has another bitmap. A lone participant sends its words unmasked (its
value *is* the sum). With two venues the sum reveals the other venue's noisy value to each:
the privacy budget's noise is then what protects it.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np

from arbsphere.errors import AggregationError
from arbsphere.privacy.secure_agg import FixedPoint
from arbsphere.privacy.secure_rounds import MAX_MASKED_VENUES, bitmap

#: the most venues whose signal words may be summed without wrapping (as the rounds)
MAX_SIGNAL_VENUES = MAX_MASKED_VENUES
#: fixed point of the liquidity word and the largest liquidity a venue may put in a share
LIQ_FRAC_BITS = 16
LIQ_MAX_LOTS = float(1 << 20)
#: fixed point of the correlation word (values in [-1, 1])
CORR_FRAC_BITS = 48
#: appended to the roster's session bytes: the signal masks' own HKDF salt
SIGNALS_SESSION_SUFFIX = b"/mask/signals-v1"
#: word positions
W_LIQUIDITY, W_CORRELATION, W_LIQ_PRESENT, W_CORR_PRESENT = range(4)
SHARE_WORDS = 4
#: an epoch not complete this many release intervals (of arriving messages' rig time) after
#: its first share is aborted
EPOCH_TIMEOUT_INTERVALS = 3

#: constructing these asserts the headroom for MAX_SIGNAL_VENUES
LIQ_FIXED = FixedPoint(LIQ_FRAC_BITS, LIQ_MAX_LOTS, MAX_SIGNAL_VENUES)
CORR_FIXED = FixedPoint(CORR_FRAC_BITS, 1.0, MAX_SIGNAL_VENUES)
COUNT_FIXED = FixedPoint(0, 1.0, MAX_SIGNAL_VENUES)


def release_epoch(rx_ns: int, interval_ns: int) -> int:
    """The release epoch of a tick received at rig time ``rx_ns``."""
    return int(rx_ns) // int(interval_ns)


def all_venues(n_venues: int) -> int:
    """The bitmap of venues 0..n_venues-1 (what a venue masks among before any round)."""
    return bitmap(range(n_venues))


def share_words(liquidity: float, correlation: float) -> np.ndarray:
    """The unmasked words of one share; NaN (or a negative liquidity: the withheld sentinel)
    means "not released this epoch" (value 0, presence 0)."""
    words = np.zeros(SHARE_WORDS, np.uint64)
    liq = float(liquidity)
    if not math.isnan(liq) and liq >= 0:
        words[W_LIQUIDITY] = LIQ_FIXED.encode([min(liq, LIQ_MAX_LOTS)])[0]
        words[W_LIQ_PRESENT] = 1
    corr = float(correlation)
    if not math.isnan(corr):
        words[W_CORRELATION] = CORR_FIXED.encode([min(1.0, max(-1.0, corr))])[0]
        words[W_CORR_PRESENT] = 1
    return words


def read_sum(acc: np.ndarray) -> tuple[float, float, int, int]:
    """(Σ liquidity, Σ correlation, liquidity contributors, correlation contributors) of summed
    share words (uint64 or their int64 view)."""
    q = np.asarray(acc).view(np.int64) if np.asarray(acc).dtype == np.uint64 else np.asarray(acc)
    if q.shape != (SHARE_WORDS,):
        raise AggregationError(f"signal sum of shape {q.shape}, expected ({SHARE_WORDS},)",
                               reason="shape")  # fmt: skip
    return (
        float(q[W_LIQUIDITY]) / LIQ_FIXED.scale,
        float(q[W_CORRELATION]) / CORR_FIXED.scale,
        int(q[W_LIQ_PRESENT]),
        int(q[W_CORR_PRESENT]),
    )


def members_of(bits: int, n_venues: int) -> Collection[int]:
    """The venue ids of a bitmap below ``n_venues``."""
    return [i for i in range(n_venues) if bits >> i & 1]

"""Secure aggregation of the federated rounds: what a venue masks and how the sum is read.

With over-relaxation α = 1 the coordinator's exchange step needs only sums over the venues
(:func:`~arbsphere.coordinator.admm.exchange_step_sums`): Σx_i (m values) gives
x̄; since Σz_i = 0, r² = N‖x̄‖², ‖z‖² = Σ‖x_i‖² − N‖x̄‖² and the dual residual
s² = Σ‖x_i − z_i^old‖² − N‖x̄‖². So each venue sends one *share* per round — its words
masked with pairwise masks (:class:`~arbsphere.privacy.secure_agg.MaskingParty`) — and the
coordinator learns the three sums and nothing else. At the end of a solve the venues reveal
the x of one round, the one the coordinator names (its best primal residual): those are the
trades.

Share words (``m + 2·Q_LIMBS`` uint64, all summed modulo 2^64):

- ``x`` (m words): signed fixed point, :data:`X_FRAC_BITS` = 39 fractional bits (resolution
  2^-39 ≈ 1.8e-12 lots, rounding error ≤ 9.1e-13 per venue: at the ADMM's ε = 1e-12 absolute
  tolerances, whose relative part dominates once any venue trades a lot), ``|x| <=``
  :data:`X_MAX_LOTS` = 2^20 − 1 lots. Headroom: :data:`MAX_MASKED_VENUES` (16) × (2^20 − 1) ×
  2^39 = 2^63 − 2^43 < 2^63 (asserted by :class:`~arbsphere.privacy.secure_agg.FixedPoint` at
  import): the 2–16 venues federated coordination supports.
- ``‖x_i‖²`` and ``‖x_i − z_i^old‖²`` (:data:`Q_LIMBS` = 3 words each): unsigned fixed point
  with :data:`Q_FRAC_BITS` = 64 fractional bits (5.4e-20: the dual residual s = ρ√s² is tested
  against ε·ρ‖u‖√N, so s² needs far more resolution near 0 than x does) split into 32-bit
  limbs ``[bits 0..31, bits 32..63, bits 64..121]``; values ``<`` :data:`Q_MAX` = 2^58 (9·m·
  X_MAX² < 2^58 for every m ≤ 16,384). Each limb is summed separately: 16 × 2^58 < 2^63 and
  16 × 2^32 never wrap, so the exact sum is Σlimb0 + 2^32·Σlimb1 + 2^64·Σlimb2.

Mask binding: ``session = roster session || MASK_SESSION_SUFFIX``, ``round_id`` = solve id,
``iteration`` = round, ``epoch`` = the participants' bitmap (bit i: venue i). Solve ids only
grow, so masks never repeat, and a solve re-run among survivors (the next solve after a
dropout) has another bitmap and other masks. A lone participant (every other venue held out)
sends its words unmasked: the sum *is* its input, no mask can hide it.

Reveal words (m uint64): the IEEE-754 bits of the venue's float64 x of the revealed round,
exactly what it computed (the coordinator also checks them against that round's masked sum).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from arbsphere.contracts import default_registry
from arbsphere.errors import AggregationError, ConfigError
from arbsphere.privacy.secure_agg import FixedPoint

#: fixed point of the x words
X_FRAC_BITS = 39
#: the largest |x| a venue may mask (lots); its position limit must not exceed it
X_MAX_LOTS = (1 << 20) - 1
#: the most venues whose words may be summed without wrapping (config refuses more)
MAX_MASKED_VENUES = 16
#: fixed point of the quadratic words
Q_FRAC_BITS = 64
Q_LIMBS = 3
#: quadratic values must stay below this (their top limb then holds < 2^58)
Q_MAX = float(2**58)
#: appended to the roster's session bytes: the masks' own HKDF salt
MASK_SESSION_SUFFIX = b"/mask/rounds-v1"
#: LocalSolution v2 ``kind`` (``SolutionKind`` in ``contracts.toml``)
KIND_SHARE, KIND_REVEAL = default_registry().codes("SolutionKind", "SHARE", "REVEAL")

#: the x words' fixed point; constructing it asserts the headroom for MAX_MASKED_VENUES
X_FIXED = FixedPoint(X_FRAC_BITS, float(X_MAX_LOTS), MAX_MASKED_VENUES)
_Q_SCALE = float(2**Q_FRAC_BITS)
_M32 = (1 << 32) - 1
assert MAX_MASKED_VENUES * ((1 << 58) - 1) < (1 << 63)  # top limbs (< 2^58) never wrap


def share_length(n_assets: int) -> int:
    """Words of a share: m x words and two quadratic values of Q_LIMBS words."""
    return n_assets + 2 * Q_LIMBS


def bitmap(participants: Collection[int]) -> int:
    """The participants' bitmap (bit i: venue i)."""
    out = 0
    for p in participants:
        if not 0 <= int(p) < 64:
            raise AggregationError(f"venue id {p}: a bitmap holds venues 0..63", reason="config")
        out |= 1 << int(p)
    return out


def members(bits: int) -> list[int]:
    """The venue ids of a bitmap, ascending."""
    return [i for i in range(64) if bits >> i & 1]


def check_venue_count(n_venues: int) -> None:
    """Refuse more venues than the fixed point's headroom allows."""
    if n_venues > MAX_MASKED_VENUES:
        raise ConfigError(
            f"secure aggregation sums at most {MAX_MASKED_VENUES} venues' words without "
            f"wrapping (x: {X_FRAC_BITS} fractional bits, |x| <= 2^20 - 1 lots), got {n_venues}"
        )


def _limbs(value: float, out: np.ndarray) -> None:
    v = float(value)
    if not (0.0 <= v < Q_MAX):
        raise AggregationError(
            f"quadratic value {v!r}: outside the fixed-point range [0, 2^58)", reason="range"
        )
    q = int(np.rint(v * _Q_SCALE))
    out[0] = q & _M32
    out[1] = (q >> 32) & _M32
    out[2] = q >> 64


def share_words(x: np.ndarray, sq_x: float, sq_d: float) -> np.ndarray:
    """The unmasked words of one share: x (fixed point), ‖x‖², ‖x − z_old‖² (limbs)."""
    m = x.shape[0]
    words = np.empty(share_length(m), np.uint64)
    words[:m] = X_FIXED.encode(x)
    _limbs(sq_x, words[m : m + Q_LIMBS])
    _limbs(sq_d, words[m + Q_LIMBS :])
    return words


def _quadratic(limbs: np.ndarray) -> float:
    q = int(limbs[0]) + (int(limbs[1]) << 32) + (int(limbs[2]) << 64)
    return q / _Q_SCALE


def read_sum(acc: np.ndarray, n_assets: int) -> tuple[np.ndarray, float, float]:
    """(Σx as exact int64 fixed point, Σ‖x_i‖², Σ‖x_i − z_i^old‖²) of summed share words."""
    m = n_assets
    xq = acc[:m].view(np.int64).copy()
    return xq, _quadratic(acc[m : m + Q_LIMBS]), _quadratic(acc[m + Q_LIMBS :])


def reveal_words(x: np.ndarray) -> np.ndarray:
    """The reveal's words: the float64 bits of x."""
    return np.ascontiguousarray(x, dtype="<f8").view(np.uint64).copy()


def revealed_x(words: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(words, dtype=np.uint64).view(np.float64).copy()

"""Exactly delta-neutral integer lots from a (possibly unconverged) float solution.

The executed plan must be exactly delta-neutral even when ADMM stopped early, and exactness is
only decidable in integers. Per asset:

1. shift to a neutral point within the limits: find t with Σ_i clip(x_i − t, −L_i, L_i) = 0
   (the sum is continuous and non-increasing in t: bisection); a converged, neutral x has t ≈ 0
   and is left as it is;
2. round each venue to the nearest lot (within its limit);
3. repair the rounding sum (at most ⌈N/2⌉ lots) one lot at a time, each time moving the venue
   whose rounding error is largest in the needed direction and that still has room (ties:
   lowest venue index).

Deterministic; cost O(N·(60 + N)) per asset whatever the size of the imbalance (a one-lot-per-
pass repair of a far-from-neutral x would cost O(N·|Σx|): milliseconds at large limits). If no
neutral point exists within the limits but all zeros, the asset goes flat and is counted.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def neutralize_lots(x, limit_lots, out):  # type: ignore[no-untyped-def]
    """Fill ``out`` (int64, N x m); returns the number of assets whose lots differ from plain
    rounding of ``x`` (clipped to the limits)."""
    n, m = x.shape
    repaired = 0
    for a in range(m):
        # 1. neutral shift t: S(t) = Σ clip(x − t) is non-increasing; S(lo) >= 0 >= S(hi).
        lo = np.inf
        hi = -np.inf
        for i in range(n):
            lo = min(lo, x[i, a] - limit_lots[i, a])
            hi = max(hi, x[i, a] + limit_lots[i, a])
        total = 0.0
        for i in range(n):
            total += min(max(x[i, a], -limit_lots[i, a]), limit_lots[i, a])
        t = 0.0
        if total != 0.0:
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if mid <= lo or mid >= hi:
                    break
                s_mid = 0.0
                for i in range(n):
                    s_mid += min(max(x[i, a] - mid, -limit_lots[i, a]), limit_lots[i, a])
                t = mid
                if s_mid > 0.0:
                    lo = mid
                elif s_mid < 0.0:
                    hi = mid
                else:
                    break
        s = 0
        for i in range(n):
            lim = limit_lots[i, a]
            r = np.int64(np.round(x[i, a] - t))
            if r > lim:
                r = lim
            elif r < -lim:
                r = -lim
            out[i, a] = r
            s += int(r)
        while s != 0:
            best = -1
            best_err = 0.0
            for i in range(n):
                err = out[i, a] - (x[i, a] - t)  # > 0: rounded up
                if s > 0:
                    if out[i, a] > -limit_lots[i, a] and (best < 0 or err > best_err):
                        best, best_err = i, err
                elif out[i, a] < limit_lots[i, a] and (best < 0 or -err > best_err):
                    best, best_err = i, -err
            if best < 0:
                for i in range(n):
                    out[i, a] = 0
                s = 0
                break
            if s > 0:
                out[best, a] -= 1
                s -= 1
            else:
                out[best, a] += 1
                s += 1
        # Counted as repaired: the executed lots differ from plain rounding of the solver output.
        for i in range(n):
            plain = min(max(np.int64(np.round(x[i, a])), -limit_lots[i, a]), limit_lots[i, a])
            if out[i, a] != plain:
                repaired += 1
                break
    return repaired


@njit(cache=True)
def neutralize_within_magnitudes(x, out):  # type: ignore[no-untyped-def]
    """Exactly delta-neutral integer lots from x without knowing the venues' limits.

    For federated coordination, where the limits stay private: every venue's x already lies
    within its limit (the venue's own x-update clips it), so any lot count between 0 and
    round(x_i) is within the limit too. Per asset: shrink the heavier side proportionally until
    Σ = 0 (only towards zero), round each venue to the nearest lot, then repair the rounding sum
    one lot at a time on the venue with the largest rounding error that can move the needed way
    without leaving [0, round(x_i)] (so no venue ever exceeds |round(x_i)| or changes side;
    ties: lowest venue). Fill ``out`` (int64, N x m); returns the number of assets whose lots
    differ from plain rounding of x."""
    n, m = x.shape
    return neutralize_around_fixed(x, np.zeros(n, np.bool_), np.zeros((n, m), np.int64), out)


@njit(cache=True)
def neutralize_around_fixed(x, fixed, fixed_lots, out):  # type: ignore[no-untyped-def]
    """:func:`neutralize_within_magnitudes` with some venues held at given lots (a venue that
    cannot trade, e.g. out of the market): their rows of ``out`` are ``fixed_lots`` and the
    other venues' lots sum to minus theirs, each still between 0 and its round(x_i). Returns
    the number of assets whose live lots differ from plain rounding of x, or -1 when the other
    venues cannot offset the fixed ones that way (possible only far from convergence; ``out``
    is then unspecified and the caller keeps its plan). With no fixed venue it never fails."""
    n, m = x.shape
    changed = 0
    target = np.zeros(n)
    for a in range(m):
        goal = 0
        for i in range(n):
            if fixed[i]:
                goal -= fixed_lots[i, a]
        pos = 0.0
        neg = 0.0
        for i in range(n):
            if fixed[i]:
                continue
            if x[i, a] > 0.0:
                pos += x[i, a]
            else:
                neg -= x[i, a]
        # scale the heavy side (towards zero only) so the live sum is the goal
        keep_pos = 1.0
        keep_neg = 1.0
        excess = pos - neg - goal
        if excess > 0.0:
            if pos < excess:
                return -1
            keep_pos = (pos - excess) / pos
        elif excess < 0.0:
            if neg < -excess:
                return -1
            keep_neg = (neg + excess) / neg
        s = 0
        for i in range(n):
            if fixed[i]:
                out[i, a] = fixed_lots[i, a]
                continue
            xv = x[i, a]
            target[i] = xv * (keep_pos if xv > 0.0 else keep_neg)
            r = np.int64(np.round(target[i]))
            out[i, a] = r
            s += int(r)
        s -= goal
        while s != 0:
            best = -1
            best_err = 0.0
            for i in range(n):
                if fixed[i]:
                    continue
                err = out[i, a] - target[i]  # > 0: rounded up
                # a lot may move either way while |lots| <= |round(x)| on x's side
                cap = np.int64(np.round(x[i, a]))
                if s > 0:
                    room = out[i, a] > 0 or out[i, a] > cap
                    if room and (best < 0 or err > best_err):
                        best, best_err = i, err
                else:
                    room = out[i, a] < 0 or out[i, a] < cap
                    if room and (best < 0 or -err > best_err):
                        best, best_err = i, -err
            if best < 0:
                return -1
            if s > 0:
                out[best, a] -= 1
                s -= 1
            else:
                out[best, a] += 1
                s += 1
        for i in range(n):
            if not fixed[i] and out[i, a] != np.int64(np.round(x[i, a])):
                changed += 1
                break
    return changed

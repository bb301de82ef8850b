"""Exactly delta-neutral integer lots from a (possibly unconverged) float solution.

The executed plan must be exactly delta-neutral even when ADMM stopped early, and exactness is
only decidable in integers. Per asset: round every venue's exposure to the nearest lot (clipped
to its limit), then repair the sum to exactly zero one lot at a time, each time moving the venue
whose rounding error is largest in the needed direction and that still has room within its limit
(ties: lowest venue index). Deterministic; each venue moves at most ⌈N/2⌉ lots from its rounded
value in the worst case, usually none. If no neutral point exists within the limits the asset
goes flat (all zeros, always neutral and feasible) and is counted.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def neutralize_lots(x, limit_lots, out):  # type: ignore[no-untyped-def]
    """Fill ``out`` (int64, N x m); returns the number of assets that needed a repair."""
    n, m = x.shape
    repaired = 0
    for a in range(m):
        s = 0
        for i in range(n):
            lim = limit_lots[i, a]
            r = np.int64(np.round(x[i, a]))
            if r > lim:
                r = lim
            elif r < -lim:
                r = -lim
            out[i, a] = r
            s += int(r)
        if s != 0:
            repaired += 1
        while s != 0:
            best = -1
            best_err = 0.0
            for i in range(n):
                err = out[i, a] - x[i, a]  # > 0: rounded up
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
    return repaired

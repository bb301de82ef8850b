"""The exact centralized baseline: bisection on one price per asset.

With separable f_i the Lagrangian dual of Σ_i x_i = 0 has one multiplier λ per asset and
x_i(λ) = argmin f_i(x) + λx = clip(soft(−(c_i + λ), φ_i) / γ_i, −L_i, L_i). Each x_i(λ) is
continuous and non-increasing in λ (γ > 0), so S(λ) = Σ_i x_i(λ) is too, and the optimum is any
λ* with S(λ*) = 0. Bracket: at λ_lo = min_i(−c_i − φ_i − γ_i L_i) every x_i = +L_i (S ≥ 0); at
λ_hi = max_i(−c_i + φ_i + γ_i L_i) every x_i = −L_i (S ≤ 0). Bisection runs until the midpoint
equals an endpoint in floating point (the bracket cannot shrink further), so λ* is exact to the
last bit; if S is zero on an interval (every venue inside its fee dead-band) the first λ found
with S = 0 is returned — every such λ gives the same x.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from arbsphere.admm_updates import soft_clip


@njit(cache=True)
def _x_of_lambda(c, gamma, phi, limit, i, a, lam):  # type: ignore[no-untyped-def]
    return soft_clip(-(c[i, a] + lam), phi[i, a], gamma[i, a], limit[i, a])


@njit(cache=True)
def keep_inputs(snap, k, c, gamma, phi, limit, z):  # type: ignore[no-untyped-def]
    """``snap[k] = (c, gamma, phi, limit, z)``: one solve's inputs and consensus iterate, kept
    for the baseline comparison at the end of the run."""
    snap[k, 0] = c
    snap[k, 1] = gamma
    snap[k, 2] = phi
    snap[k, 3] = limit
    snap[k, 4] = z


@njit(cache=True)
def centralized_solve(c, gamma, phi, limit, x_out, lam_out):  # type: ignore[no-untyped-def]
    """Exact optimum into ``x_out`` (N, m) and ``lam_out`` (m); returns total bisection steps."""
    n, m = c.shape
    steps = 0
    for a in range(m):
        lo = math.inf
        hi = -math.inf
        for i in range(n):
            span = phi[i, a] + gamma[i, a] * limit[i, a]
            lo = min(lo, -c[i, a] - span)
            hi = max(hi, -c[i, a] + span)
        lo -= 1.0
        hi += 1.0
        lam = 0.5 * (lo + hi)
        for _ in range(2000):
            mid = 0.5 * (lo + hi)
            if mid <= lo or mid >= hi:
                break
            steps += 1
            s = 0.0
            for i in range(n):
                s += _x_of_lambda(c, gamma, phi, limit, i, a, mid)
            lam = mid
            if s > 0.0:
                lo = mid
            elif s < 0.0:
                hi = mid
            else:
                break
        # The better endpoint when the loop ended on an unshrinkable bracket.
        best = lam
        best_abs = math.inf
        for cand in (lo, lam, hi):
            s = 0.0
            for i in range(n):
                s += _x_of_lambda(c, gamma, phi, limit, i, a, cand)
            if abs(s) < best_abs:
                best_abs = abs(s)
                best = cand
        lam_out[a] = best
        for i in range(n):
            x_out[i, a] = _x_of_lambda(c, gamma, phi, limit, i, a, best)
    return steps


@njit(cache=True)
def objective(c, gamma, phi, limit, x):  # type: ignore[no-untyped-def]
    """Σ_i f_i(x_i); +inf if any |x| exceeds its limit (beyond a 1e-9 relative tolerance)."""
    n, m = c.shape
    total = 0.0
    for i in range(n):
        for a in range(m):
            xv = x[i, a]
            if abs(xv) > limit[i, a] * (1.0 + 1e-9) + 1e-12:
                return math.inf
            total += c[i, a] * xv + 0.5 * gamma[i, a] * xv * xv + phi[i, a] * abs(xv)
    return total


def relative_gap(f_value: float, f_star: float, scale: float) -> float:
    """(f − f*) / max(|f*|, scale). ``scale`` (in objective units, e.g. 1.0 price x lot) keeps
    no-trade ticks (f* = 0) meaningful: their gap is the absolute gap in those units."""
    if scale <= 0:
        raise ValueError(f"scale = {scale!r}: must be > 0")
    return (f_value - f_star) / max(abs(f_star), scale)


@njit(cache=True)
def gaps_batch(c, gamma, phi, limit, z, scale, out):  # type: ignore[no-untyped-def]
    """Relative gaps |f(z_k) − d*_k| / max(|d*_k|, scale) for K snapshots of shape (K, N, m).

    The reference is the dual value d* = f(x*) + Σ_a λ*_a Σ_i x*_ia of the exact baseline: the
    bisection's x* can be off neutral by ~1e-10 lots (floating point), which at prices ~100
    would shift f(x*) by ~1e-8; d* corrects that to first order and, by weak duality, is a
    lower bound on the optimum, so f(z) − d* bounds ADMM's suboptimality from above.

    Used to compare every tick's ADMM result with the exact baseline in one pass, off the
    coordinator's critical path. z (the ADMM consensus iterate, Σz = 0) is clipped to the
    limits first: it can overshoot a limit by up to the primal residual; the clip leaves an
    imbalance of the same size, worth ~λ·residual of objective (~1e-9 at these tolerances)."""
    k_total, n, m = c.shape
    x_star = np.zeros((n, m))
    lam = np.zeros(m)
    zc = np.zeros((n, m))
    for k in range(k_total):
        centralized_solve(c[k], gamma[k], phi[k], limit[k], x_star, lam)
        f_star = objective(c[k], gamma[k], phi[k], limit[k], x_star)
        for a in range(m):
            imbalance = 0.0
            for i in range(n):
                imbalance += x_star[i, a]
            f_star += lam[a] * imbalance
        for i in range(n):
            for a in range(m):
                zc[i, a] = min(max(z[k, i, a], -limit[k, i, a]), limit[k, i, a])
        f_admm = objective(c[k], gamma[k], phi[k], limit[k], zc)
        out[k] = abs(f_admm - f_star) / max(abs(f_star), scale)

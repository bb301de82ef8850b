"""The venue-side updates of exchange ADMM, shared by the in-process solver and the venues.

One venue's x-update (the proximal step of its private f_i) and its consensus (z) update after
a round. They live here, below both ``coordinator`` (whose in-process kernel calls them for
every venue) and ``adapters`` (whose venue solver calls them for its own venue), so the two
paths run the same floating-point operations and give the same iterates.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def soft_clip(w, phi, curvature, limit):  # type: ignore[no-untyped-def]
    """clip(soft(w, φ) / curvature, −L, L): the minimiser of ½·curvature·x² − w·x + φ|x|
    on [−L, L], the closed form of every venue-side update (ADMM's prox, the price
    protocol's best response, the centralized baseline's x(λ))."""
    if w > phi:
        w -= phi
    elif w < -phi:
        w += phi
    else:
        return 0.0
    xv = w / curvature
    if xv > limit:
        return limit
    if xv < -limit:
        return -limit
    return xv


@njit(cache=True)
def prox_element(c, gamma, phi, limit, z, u, rho):  # type: ignore[no-untyped-def]
    """One element of the x-update: clip(soft(ρ(z − u) − c, φ) / (γ + ρ), −L, L)."""
    return soft_clip(rho * (z - u) - c, phi, gamma + rho, limit)


@njit(cache=True)
def venue_x_update(c, gamma, phi, limit, z, u, rho, x):  # type: ignore[no-untyped-def]
    """One venue's x-update over its m assets (1-D arrays): all a venue computes per round."""
    for a in range(c.shape[0]):
        x[a] = prox_element(c[a], gamma[a], phi[a], limit[a], z[a], u[a], rho)


@njit(cache=True)
def venue_z_update(x, z, xhat_mean, alpha):  # type: ignore[no-untyped-def]
    """One venue's consensus update after a round: z <- αx + (1 − α)z − mean(x̂)."""
    for a in range(x.shape[0]):
        z[a] = (alpha * x[a] + (1.0 - alpha) * z[a]) - xhat_mean[a]

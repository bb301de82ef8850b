"""The coordinator's half of federated exchange ADMM: rounds over what the venues return.

The venues keep their local problems (c, γ, φ, L) and run the x-update themselves
(:class:`arbsphere.adapters.venue_solver.VenueSolver`); the coordinator only ever sees each
venue's x_i. Per round it sends (mean of the relaxed iterate x̄, u, ρ, round) to every venue,
gathers the x_i, and runs :func:`~arbsphere.coordinator.admm.exchange_step` — z and u updates,
residuals, the stopping test and residual balancing — the same kernel the in-process solver
runs, so the iterates are the same for the same inputs.

This class owns the numbers only (no sockets): the service moves them over ZeroMQ, the
simulator calls the venues directly.
"""

from __future__ import annotations

import numpy as np

from arbsphere.coordinator.admm import (
    STAT_CONVERGED,
    STAT_DUAL,
    STAT_ITER,
    STAT_PRIMAL,
    STAT_RHO,
    AdmmSettings,
    ExchangeState,
    exchange_step,
)
from arbsphere.errors import SolverError


class FederatedExchange(ExchangeState):
    """Exchange-ADMM state the coordinator may hold: x_i as returned, z, u, ρ, residuals."""

    def __init__(self, n_venues: int, n_assets: int, settings: AdmmSettings) -> None:
        super().__init__(n_venues, n_assets, settings)
        self.best_x = np.zeros((n_venues, n_assets))
        self.best_primal = np.inf
        self.round = 0
        self.converged = False
        self._got = np.zeros(n_venues, np.bool_)
        self.restart_to = 0.0
        #: venues held at fixed lots (out of the market): their x is those lots every round
        self.frozen = np.zeros(n_venues, np.bool_)
        self.frozen_lots = np.zeros((n_venues, n_assets), np.int64)

    def freeze(self, venue: int, lots: np.ndarray) -> None:
        """Hold ``venue`` at ``lots`` (it cannot trade); the others balance around it."""
        self.frozen[venue] = True
        self.frozen_lots[venue] = lots

    def thaw(self, venue: int) -> None:
        """``venue`` trades again. Its own z did not follow the rounds it sat out, so the next
        solve starts cold on every side."""
        self.frozen[venue] = False
        self.reset()

    def _expect(self) -> None:
        """A new round: frozen venues have 'answered' with their fixed lots."""
        self._got[:] = self.frozen
        for i in np.flatnonzero(self.frozen):
            self.x[i] = self.frozen_lots[i]

    def begin(self, reference_price: np.ndarray) -> bool:
        """Start a solve; returns whether it starts cold. A cold start puts the dual near the
        optimum's shadow price, −mean of the venues' public mid prices (see
        :meth:`ExchangeADMM.solve`): ``reference_price`` is (N, m)."""
        if self.round > 0:  # the last solve's rounds ended here (converged or not)
            self.end_solve(self.converged)
        #: the ρ this solve goes on from after a failed first round (0: cold, keep ρ)
        cold, self.restart_to = self.start_solve(reference_price)
        self.round = 0
        self.converged = False
        self.best_primal = np.inf
        self.xhat_mean[:] = 0.0
        self._expect()
        return cold

    def absorb(self, venue: int, x: np.ndarray) -> None:
        """Venue ``venue``'s x_i of the current round."""
        if not 0 <= venue < self.n_venues:
            raise SolverError(f"x from venue {venue}: the exchange has {self.n_venues} venues")
        if self._got[venue]:
            raise SolverError(f"venue {venue} answered round {self.round + 1} twice")
        self.x[venue] = x
        self._got[venue] = True

    def missing(self) -> list[int]:
        """Venues whose x of the current round has not arrived."""
        return [int(i) for i in np.flatnonzero(~self._got)]

    def step(self) -> bool:
        """Close the round once every venue answered; returns whether the solve converged."""
        if not self._got.all():
            raise SolverError(f"round {self.round + 1}: no x yet from venues {self.missing()}")
        st = self.settings
        self.round += 1
        exchange_step(self.x, self.z, self.u, self.xhat_mean, self.stats, self.round, self.rho,
                      st.alpha, st.eps_abs, st.eps_rel, st.adapt_every, st.mu,
                      st.tau, self.restart_to)  # fmt: skip
        primal = float(self.stats[STAT_PRIMAL])
        if primal < self.best_primal:
            self.best_primal = primal
            self.best_x[:] = self.x
        self.rho = float(self.stats[STAT_RHO])
        self.converged = bool(self.stats[STAT_CONVERGED])
        self._expect()
        return self.converged

    #: the exchange holds every venue's x in clear (:class:`MaskedExchange`: only sums)
    masked = False

    @property
    def consensus_z(self) -> np.ndarray:
        """The consensus iterate the rig compares with the centralized baseline per solve."""
        return self.z

    @property
    def primal_res(self) -> float:
        return float(self.stats[STAT_PRIMAL])

    @property
    def dual_res(self) -> float:
        return float(self.stats[STAT_DUAL])

    @property
    def iterations(self) -> int:
        return int(self.stats[STAT_ITER])

    def prices(self) -> np.ndarray:
        """Shadow prices y = ρu."""
        return self.rho * self.u

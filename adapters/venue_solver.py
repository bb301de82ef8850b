"""A venue's half of federated exchange ADMM: its private problem and its x-update.

The venue keeps c, γ, φ and L (its local problem, from its own market data and cost model)
and its consensus variable z_i; per round it receives (x̄, u, ρ) from the coordinator and
returns only x_i. A solve works on the problem as it was when the solve began (a tick that
arrives mid-solve is used by the next one), so every round of a solve sees the same f_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arbsphere.admm_updates import venue_x_update, venue_z_update
from arbsphere.errors import SolverError


@dataclass(frozen=True)
class FrozenProblem:
    """The local problem a solve runs on (recorded by the venue for the rig's baseline)."""

    solve_id: int
    problem_seq: int
    c: np.ndarray
    gamma: np.ndarray
    phi: np.ndarray
    limit: np.ndarray


class VenueSolver:
    """Private local problem (m assets) + the venue's exchange-ADMM state."""

    def __init__(self, n_assets: int) -> None:
        self.n_assets = n_assets
        self.c = np.zeros(n_assets)
        self.gamma = np.ones(n_assets)
        self.phi = np.zeros(n_assets)
        self.limit = np.zeros(n_assets)
        self.quoted = np.zeros(n_assets, np.bool_)
        self.problem_seq = 0
        # the problem of the solve in progress, and the state the rounds move
        self._c = np.zeros(n_assets)
        self._gamma = np.ones(n_assets)
        self._phi = np.zeros(n_assets)
        self._limit = np.zeros(n_assets)
        self.x = np.zeros(n_assets)
        self.z = np.zeros(n_assets)
        self.solve_id = 0
        self.round = 0
        self.pending = False  # x of the last round awaits the coordinator's x̄ to update z

    @staticmethod
    def warm_up() -> None:
        """Load / compile the x- and z-update kernels before any timing matters."""
        scratch = VenueSolver(1)
        scratch.set_asset(0, 100.0, 1e-3, 0.01, 10.0, seq=0)
        scratch.begin(0, cold=True)
        scratch.iterate(np.zeros(1), 1e-3)
        scratch.settle(np.zeros(1), 1.0)

    def set_asset(
        self, asset: int, c: float, gamma: float, phi: float, limit: float, seq: int
    ) -> None:
        """The venue's current local problem for one asset (from its latest tick)."""
        if not 0 <= asset < self.n_assets:
            raise SolverError(f"asset {asset}: the venue solves {self.n_assets} assets")
        self.c[asset] = c
        self.gamma[asset] = gamma
        self.phi[asset] = phi
        self.limit[asset] = limit
        self.quoted[asset] = True
        self.problem_seq = seq

    def begin(self, solve_id: int, cold: bool) -> FrozenProblem:
        """Freeze the current problem for solve ``solve_id``; a cold start zeroes z."""
        self._c[:] = self.c
        self._gamma[:] = self.gamma
        self._phi[:] = self.phi
        self._limit[:] = self.limit
        if cold:
            self.x[:] = 0.0
            self.z[:] = 0.0
            self.pending = False
        self.solve_id = solve_id
        self.round = 0
        return FrozenProblem(solve_id, self.problem_seq, self._c.copy(), self._gamma.copy(),
                             self._phi.copy(), self._limit.copy())  # fmt: skip

    @property
    def frozen_c(self) -> np.ndarray:
        """The solve's frozen problem (read-only views): c, γ, φ, L."""
        return self._c

    @property
    def frozen_gamma(self) -> np.ndarray:
        return self._gamma

    @property
    def frozen_phi(self) -> np.ndarray:
        return self._phi

    @property
    def frozen_limit(self) -> np.ndarray:
        return self._limit

    def settle(self, xhat_mean: np.ndarray, alpha: float) -> None:
        """Apply the coordinator's x̄ of the last round to z (no-op if nothing is pending)."""
        if self.pending:
            venue_z_update(self.x, self.z, xhat_mean, alpha)
            self.pending = False

    def iterate(self, u: np.ndarray, rho: float) -> np.ndarray:
        """One x-update with the coordinator's u and ρ; returns x_i (a view: copy to keep)."""
        if self.pending:
            raise SolverError(
                f"solve {self.solve_id} round {self.round + 1}: the last round's x̄ never came"
            )
        venue_x_update(self._c, self._gamma, self._phi, self._limit, self.z, u, rho, self.x)
        self.round += 1
        self.pending = True
        return self.x

    def abort(self) -> None:
        """The coordinator abandoned the solve: the next one starts cold on both sides."""
        self.pending = False

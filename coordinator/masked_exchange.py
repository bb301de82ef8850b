"""The coordinator's half of federated exchange ADMM under secure aggregation: sums only.

Per round every live venue sends a *share* — its x_i, ‖x_i‖² and ‖x_i − z_i^old‖² in fixed
point, masked with pairwise masks (:mod:`arbsphere.privacy.secure_rounds`). The shares are added
modulo 2^64 as they arrive; once all are in, the masks have cancelled and the exchange step
runs on the three sums (:func:`~arbsphere.coordinator.admm.exchange_step_sums`, α = 1 only).
The coordinator never holds a live venue's x_i or z_i: ``x`` and ``z`` carry only the rows
of venues held out of the market (their lots are public, so their z = lots − x̄ is too).

At the end of a solve the venues reveal the x of the round with the lowest primal residual
(:meth:`begin_reveal` / :meth:`absorb_reveal` / :meth:`finish_reveal`): those are the
trades. The revealed x are checked against that round's masked sum word for word (the same
fixed-point encoding of the same floats): a venue that reveals another x than it masked, or
a share altered on the way, fails the check and the solve is dropped.

Because a newly held-out venue's z is private, holding a venue out starts the next solve cold
on every side (the clear protocol keeps its warm start).
"""

from __future__ import annotations

import numpy as np

from arbsphere.coordinator.admm import (
    STAT_CONVERGED,
    STAT_PRIMAL,
    STAT_RHO,
    AdmmSettings,
    exchange_step_sums,
)
from arbsphere.coordinator.federated import FederatedExchange
from arbsphere.errors import AggregationError, ConfigError, SolverError
from arbsphere.privacy.secure_rounds import (
    X_FIXED,
    X_FRAC_BITS,
    bitmap,
    check_venue_count,
    read_sum,
    share_length,
)


def add_share(
    acc: np.ndarray, got: np.ndarray, venue: int, words: np.ndarray, round_no: int
) -> None:
    """Add venue ``venue``'s share (uint64 words) of round ``round_no`` to ``acc`` (modulo
    2^64) and mark it in ``got``; a venue out of range, a second answer or a share of the
    wrong shape is refused."""
    if not 0 <= venue < got.shape[0]:
        raise SolverError(f"share from venue {venue}: the round has {got.shape[0]} venues")
    if got[venue]:
        raise SolverError(f"venue {venue} answered round {round_no} twice")
    if words.dtype != np.uint64 or words.shape != acc.shape:
        raise SolverError(
            f"share of venue {venue}: {words.dtype} shape {words.shape}, expected "
            f"{acc.shape[0]} uint64 words"
        )
    acc += words  # modulo 2^64
    got[venue] = True


class RevealCollector:
    """The end of a masked solve: every live venue's revealed x, once each (held-out venues'
    rows are their public lots, filled in by the owner's ``finish_reveal``)."""

    n_venues: int
    frozen: np.ndarray
    best_x: np.ndarray
    _revealed: np.ndarray

    def begin_reveal(self) -> None:
        """Expect a reveal from every live venue."""
        self._revealed[:] = self.frozen

    def reveal_missing(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(~self._revealed)]

    def absorb_reveal(self, venue: int, x: np.ndarray) -> None:
        if not 0 <= venue < self.n_venues or self._revealed[venue]:
            raise SolverError(f"venue {venue}: unexpected or repeated reveal")
        self.best_x[venue] = x
        self._revealed[venue] = True


class MaskedExchange(FederatedExchange, RevealCollector):
    """Exchange-ADMM state under secure aggregation: sums of the live venues' shares, u, ρ,
    residuals; per venue only what is public (held-out venues) or revealed (best round)."""

    masked = True

    def __init__(self, n_venues: int, n_assets: int, settings: AdmmSettings) -> None:
        if settings.alpha != 1.0:
            raise ConfigError(
                f"secure aggregation needs over-relaxation alpha = 1 (got {settings.alpha!r}): "
                "with alpha != 1 the exchange step needs every venue's z, not only sums"
            )
        check_venue_count(n_venues)
        super().__init__(n_venues, n_assets, settings)
        self.share_len = share_length(n_assets)
        self._acc = np.zeros(self.share_len, np.uint64)
        #: bitmap of the venues that answer (and mask among) in the current solve
        self.participants = 0
        #: the round with the lowest primal residual, and its exact fixed-point Σx (live venues)
        self.best_round = 0
        self.best_xq = np.zeros(n_assets, np.int64)
        #: the last round's sums, all venues (what the coordinator learns)
        self.xsum = np.zeros(n_assets)
        self.sq_x = 0.0
        self.sq_d = 0.0
        self._revealed = np.zeros(n_venues, np.bool_)
        #: the consensus iterate of the revealed round, z = x − x̄ (for the rig's baseline)
        self.z_best = np.zeros((n_venues, n_assets))
        self._scale = float(2**X_FRAC_BITS)

    @property
    def consensus_z(self) -> np.ndarray:
        return self.z_best

    def freeze(self, venue: int, lots: np.ndarray) -> None:
        """Hold ``venue`` at ``lots``. Its z is private, so the next solve starts cold."""
        super().freeze(venue, lots)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.z_best[:] = 0.0

    def _expect(self) -> None:
        super()._expect()
        self._acc[:] = 0

    def begin(self, reference_price: np.ndarray) -> bool:
        cold = super().begin(reference_price)
        self.participants = bitmap([int(i) for i in np.flatnonzero(~self.frozen)])
        self.best_round = 0
        self.best_xq[:] = 0
        return cold

    def absorb(self, venue: int, x: np.ndarray) -> None:
        raise SolverError(f"venue {venue}: clear x refused under secure aggregation (shares only)")

    def absorb_share(self, venue: int, words: np.ndarray) -> None:
        """Venue ``venue``'s masked share of the current round (uint64 words)."""
        add_share(self._acc, self._got, venue, words, self.round + 1)

    def step(self) -> bool:
        """Close the round once every live venue's share is in; returns whether the solve
        converged."""
        if not self._got.all():
            raise SolverError(f"round {self.round + 1}: no share yet from venues {self.missing()}")
        st = self.settings
        self.round += 1
        xq, sq_x, sq_d = read_sum(self._acc, self.n_assets)
        xsum = self.xsum
        xsum[:] = xq.astype(np.float64) / self._scale
        for i in np.flatnonzero(self.frozen):  # public lots and z: added in clear
            lots = self.x[i]
            xsum += lots
            sq_x += float(lots @ lots)
            d = lots - self.z[i]
            sq_d += float(d @ d)
        self.sq_x, self.sq_d = sq_x, sq_d
        exchange_step_sums(xsum, sq_x, sq_d, self.n_venues, self.u, self.xhat_mean, self.stats,
                           self.round, self.rho, st.eps_abs, st.eps_rel, st.adapt_every, st.mu,
                           st.tau, self.restart_to)  # fmt: skip
        for i in np.flatnonzero(self.frozen):
            self.z[i] = self.x[i] - self.xhat_mean
        primal = float(self.stats[STAT_PRIMAL])
        if primal < self.best_primal:
            self.best_primal = primal
            self.best_round = self.round
            self.best_xq[:] = xq
        self.rho = float(self.stats[STAT_RHO])
        self.converged = bool(self.stats[STAT_CONVERGED])
        self._expect()
        return self.converged

    # --- the reveal (RevealCollector), checked against the best round's sum ----------------
    def finish_reveal(self) -> str:
        """Check the revealed x against the best round's masked sum; '' when they agree (then
        ``best_x`` holds the trades, frozen rows at their lots), else why not."""
        acc = np.zeros(self.n_assets, np.uint64)
        for i in np.flatnonzero(~self.frozen):
            try:
                acc += X_FIXED.encode(self.best_x[i])
            except AggregationError as exc:
                return f"venue {i} revealed an x outside the fixed-point range: {exc}"
        if not np.array_equal(acc.view(np.int64), self.best_xq):
            return (
                f"the revealed x of round {self.best_round} do not add up to that round's "
                "masked sum (a share or a reveal was altered, or a venue revealed another x)"
            )
        for i in np.flatnonzero(self.frozen):
            self.best_x[i] = self.frozen_lots[i]
        self.z_best[:] = self.best_x - self.best_x.mean(axis=0)
        return ""

"""The federated solve: the rounds' driver (exchange ADMM or the price protocol) and the venue
outages around it — a venue whose quotes went stale or that let a round time out is frozen at
its plan lots while the others hedge around it (the freeze log), and thawed when it is back;
a solve a venue did not answer aborts and keeps the plan. Also the per-solve records and
consensus iterates for the rig's baseline, and the rounds socket's handling of departed venues.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq

from arbsphere.clock import Clock
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.federated import FederatedExchange
from arbsphere.coordinator.masked_exchange import MaskedExchange
from arbsphere.coordinator.neutralize import neutralize_around_fixed
from arbsphere.coordinator.price_rounds import PriceRoundDriver
from arbsphere.coordinator.price_search import PriceSearch
from arbsphere.coordinator.rounds import RoundDriver, RoundLink
from arbsphere.coordinator.traces import FED_SOLVE_DTYPE
from arbsphere.errors import ConfigError
from arbsphere.sender_ids import COORDINATOR_SENDER_ID
from arbsphere.tracebuf import TraceBuffer

if TYPE_CHECKING:
    from arbsphere.coordinator.core import Coordinator

#: the federated rounds' driver: exchange ADMM or the price protocol
FederatedRounds = RoundDriver | PriceRoundDriver


class VenueOutages:
    """Which venues are out of the market, decided on the rig timebase of the quotes' origin
    stamps (so a replay decides alike). A venue whose last quote is older than
    ``stale_after_ns`` is out: held at its plan lots while the others hedge around it; it rejoins
    (cold start) when it quotes. So is a venue that let a round time out (its adapter quotes but
    does not answer): without it every solve would wait ``round_timeout`` and abort; it is probed
    again (takes part in a solve) once ``unresponsive_retry_ns`` of quote time has passed."""

    def __init__(self, n_venues: int) -> None:
        self.n_venues = n_venues
        self.stale_after_ns = 250_000_000
        self.unresponsive_retry_ns = 5_000_000_000
        self.unresponsive_at = np.full(n_venues, -1, np.int64)  # quote time it timed out; -1
        #: [venue, frozen from (quote ts), back at (quote ts) or None, last delta id before the
        #: freeze, last delta id decided while frozen (or None), why: "stale_quotes" (no quote
        #: for stale_after) or "no_round_answers" (a round timed out waiting for it)]
        self.freeze_log: list[list[int | str | None]] = []

    def freeze_stale(self, core: Coordinator, ex: FederatedExchange | PriceSearch) -> None:
        """Freeze the venues that are out, refresh the frozen lots of those still out (write-offs
        may have moved them) and thaw the venues that are back, before a solve."""
        latest = core.latest_quote_ts
        for v in range(self.n_venues):
            stale = latest - core.last_quote_ts[v] > self.stale_after_ns
            mute = (
                self.unresponsive_at[v] >= 0
                and latest - self.unresponsive_at[v] < self.unresponsive_retry_ns
            )
            if (stale or mute) and not ex.frozen[v]:
                ex.freeze(v, core.merger.plan[v])
                core.counts["freezes"] += 1
                why = "stale_quotes" if stale else "no_round_answers"
                self.freeze_log.append([v, latest, None, core.delta_id, None, why])
            elif stale or mute:
                ex.frozen_lots[v] = core.merger.plan[v]
            elif ex.frozen[v]:
                ex.thaw(v)
                for entry in self.freeze_log:
                    if entry[0] == v and entry[2] is None:
                        entry[2] = latest
                        entry[4] = core.delta_id

    def after_solve(self, core: Coordinator, out: Any, ex: FederatedExchange | PriceSearch) -> None:
        """An aborted solve holds the venues that did not answer out of the next solves; a
        completed one clears every venue that took part."""
        if out.aborted:
            for v in out.missing:
                self.unresponsive_at[v] = core.latest_quote_ts
                core.counts["unresponsive_venues"] += 1
        else:
            self.unresponsive_at[~ex.frozen] = -1


class FederatedSolve:
    """Federated coordination: the venues solve their x-updates in rounds with the coordinator
    (``rounds``); the best iterate (lowest primal residual) is neutralized around the frozen
    venues without the venues' limits. An aborted solve (a venue did not answer) keeps the
    plan. Every solve is recorded with its consensus iterate for the rig's baseline (the
    inputs stay with the venues, so nothing is compared here)."""

    takes_quotes = True

    def __init__(self, core: Coordinator, rounds: FederatedRounds) -> None:
        self.core = core
        self.rounds = rounds
        self.solves = TraceBuffer(FED_SOLVE_DTYPE, 16_384)
        self._z = np.zeros((4096, core.n_venues, core.n_assets))

    def solve(self, max_rounds: int) -> tuple[int, bool]:
        core = self.core
        rounds = self.rounds
        ex = rounds.ex
        core.outages.freeze_stale(core, ex)
        out = rounds.solve(core.mid, max_rounds)
        core.counts["solves"] += 1
        core.counts["frozen_solves"] += int(ex.frozen.any())
        core.outages.after_solve(core, out, ex)
        if out.aborted:
            core.counts["aborted_solves"] += 1
            core.target[:] = core.merger.plan
        else:
            self._neutralize(ex)
            if not out.converged:
                core.counts["early_stops"] += 1
        self._record(ex, out, max_rounds)
        return out.rounds, out.converged

    def _neutralize(self, ex: FederatedExchange | PriceSearch) -> None:
        core = self.core
        got = int(neutralize_around_fixed(ex.best_x, ex.frozen, ex.frozen_lots, core.target))
        if got < 0:  # the live venues cannot offset the frozen ones yet: keep the plan
            core.counts["neutralize_refused"] += 1
            core.target[:] = core.merger.plan
        else:
            core.counts["neutralize_repairs"] += got

    def _record(self, ex: FederatedExchange | PriceSearch, out: Any, max_rounds: int) -> None:
        k = self.solves.n
        if k == self._z.shape[0]:
            self._z = np.concatenate([self._z, np.zeros_like(self._z)])
        self._z[k] = ex.consensus_z  # masked: the revealed round's x - mean (z unknown)
        self.solves.append((self.rounds.solve_id, -1, out.rounds, max_rounds,
                            int(out.converged), int(out.aborted),
                            ex.primal_res if out.rounds else np.nan,
                            ex.dual_res if out.rounds else np.nan, out.started_ns,
                            out.ended_ns))  # fmt: skip

    def keep_inputs(self) -> None:
        """Nothing: the solve's inputs stay with the venues."""

    def baseline_gaps(self, scale: float = 1.0) -> np.ndarray:
        return np.zeros(0)  # the rig computes it from the venues' records (kpi)

    def save(self, out_dir: Path, trace: np.ndarray, solve_rows: np.ndarray) -> None:
        """Per-solve records (with the trace row of each solve's trigger tick), consensus
        iterates z (K x N x m), the rounds and their convergence, for the rig's baseline."""
        self.solves.view()["row"][:] = solve_rows[: self.solves.n]
        self.solves.save(out_dir / "coordinator.solves.npy")
        np.save(out_dir / "coordinator.solves_z.npy", self._z[: self.solves.n])
        self.rounds.rounds.save(out_dir / "coordinator.rounds.npy")
        self.rounds.save_convergence(out_dir)


def federated_driver(
    protocol: str, link: RoundLink, core: Coordinator, settings: AdmmSettings, masked: bool,
    clock: Clock, round_timeout_ms: int, source: str = "",
) -> FederatedRounds:  # fmt: skip
    """The federated rounds' driver of ``protocol`` ("price" or "admm") over ``link``."""
    if protocol == "price":
        try:
            search = PriceSearch(core.n_venues, core.n_assets, masked)
        except ConfigError as exc:
            raise ConfigError(str(exc), file=source or None, key="n_venues") from exc
        PriceSearch.warm_up()
        return PriceRoundDriver(link, core.reg, search, clock, COORDINATOR_SENDER_ID,
                                round_timeout_ms)  # fmt: skip
    return RoundDriver(
        link, core.reg, exchange_for(core.n_venues, core.n_assets, settings, masked, source),
        clock, COORDINATOR_SENDER_ID, round_timeout_ms,
    )  # fmt: skip


def exchange_for(
    n_venues: int, n_assets: int, settings: AdmmSettings, masked: bool, source: str = ""
) -> FederatedExchange:
    """The rounds' exchange state: sums of masked shares, or every venue's x in clear."""
    if not masked:
        return FederatedExchange(n_venues, n_assets, settings)
    try:
        return MaskedExchange(n_venues, n_assets, settings)
    except ConfigError as exc:
        raise ConfigError(str(exc), file=source or None, key="security.secure_aggregation") from exc


class DepartedVenues:
    """The rounds socket as :class:`ZmqRoundLink` uses it, except that a message to a venue
    that was reached before and has disconnected since (ROUTER_MANDATORY: EHOSTUNREACH — at
    the end of a run the venue adapters stop before the coordinator, which may still be
    working off its queue) is dropped and counted instead of ending the coordinator in the
    middle of a wake-up, its journal cut there: the venue's answer does not come, the round's
    wait runs out (journaled as ROUND_TIMEOUT) and the solve aborts as for any silent venue,
    so a replay makes the same decisions. An identity never reached is still an error."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.reached: set[bytes] = set()
        self.dropped = 0

    def send_multipart(self, frames: Any, flags: int = 0, copy: bool = True) -> None:
        ident = bytes(frames[0])
        try:
            self.sock.send_multipart(frames, flags, copy=copy)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH or ident not in self.reached:
                raise
            self.dropped += 1
            return
        self.reached.add(ident)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

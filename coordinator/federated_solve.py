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
from arbsphere.errors import ConfigError
from arbsphere.sender_ids import COORDINATOR_SENDER_ID

if TYPE_CHECKING:
    from arbsphere.coordinator.core import Coordinator

#: the federated rounds' driver: exchange ADMM or the price protocol
FederatedRounds = RoundDriver | PriceRoundDriver


def solve_federated(core: Coordinator, max_rounds: int) -> tuple[int, bool]:
    """Rounds with the venues; the best iterate (lowest primal residual) neutralized
    without the venues' limits. An aborted solve (a venue did not answer) keeps the plan."""
    rounds = core.rounds
    assert rounds is not None
    ex = rounds.ex
    freeze_stale(core, ex)
    out = rounds.solve(core.mid, max_rounds)
    core.counts["solves"] += 1
    core.counts["frozen_solves"] += int(ex.frozen.any())
    if out.aborted:
        core.counts["aborted_solves"] += 1
        core.target[:] = core.merger.plan
        for v in out.missing:  # held out from the next solve on (see freeze_stale)
            core.unresponsive_at[v] = core.latest_quote_ts
            core.counts["unresponsive_venues"] += 1
    else:
        core.unresponsive_at[~ex.frozen] = -1  # every venue in the solve answered
        got = int(neutralize_around_fixed(ex.best_x, ex.frozen, ex.frozen_lots, core.target))
        if got < 0:  # the live venues cannot offset the frozen ones yet: keep the plan
            core.counts["neutralize_refused"] += 1
            core.target[:] = core.merger.plan
        else:
            core.counts["neutralize_repairs"] += got
        if not out.converged:
            core.counts["early_stops"] += 1
    k = core.fed_solves.n
    if k == core._fed_z.shape[0]:
        core._fed_z = np.concatenate([core._fed_z, np.zeros_like(core._fed_z)])
    core._fed_z[k] = ex.consensus_z  # masked: the revealed round's x - mean (z unknown)
    core.fed_solves.append((rounds.solve_id, -1, out.rounds, max_rounds, int(out.converged),
                            int(out.aborted), ex.primal_res if out.rounds else np.nan,
                            ex.dual_res if out.rounds else np.nan, out.started_ns,
                            out.ended_ns))  # fmt: skip
    return out.rounds, out.converged


def freeze_stale(core: Coordinator, ex: FederatedExchange | PriceSearch) -> None:
    """A venue whose last quote is older than ``stale_after_ns`` (on the rig timebase of
    the quotes' origin stamps, so replays decide alike) is out of the market: held at its
    plan lots while the others hedge around it; it rejoins (cold start) when it quotes. So
    is a venue that let a round time out (its adapter quotes but does not answer): without
    it every solve would wait ``round_timeout`` and abort; it is probed again (takes part
    in a solve) once ``unresponsive_retry_ns`` of quote time has passed."""
    for v in range(core.n_venues):
        stale = core.latest_quote_ts - core.last_quote_ts[v] > core.stale_after_ns
        mute = (
            core.unresponsive_at[v] >= 0
            and core.latest_quote_ts - core.unresponsive_at[v] < core.unresponsive_retry_ns
        )
        if (stale or mute) and not ex.frozen[v]:
            ex.freeze(v, core.merger.plan[v])
            core.counts["freezes"] += 1
            core.freeze_log.append(
                [
                    v,
                    core.latest_quote_ts,
                    None,
                    core.delta_id,
                    None,
                    "stale_quotes" if stale else "no_round_answers",
                ]
            )
        elif stale or mute:
            ex.frozen_lots[v] = core.merger.plan[v]  # write-offs may have moved it
        elif ex.frozen[v]:
            ex.thaw(v)
            for entry in core.freeze_log:
                if entry[0] == v and entry[2] is None:
                    entry[2] = core.latest_quote_ts
                    entry[4] = core.delta_id


def save_federated(core: Coordinator, out_dir: Path) -> None:
    """Per-solve records and consensus iterates z (K x N x m) for the rig's baseline."""
    core.fed_solves.save(out_dir / "coordinator.solves.npy")
    np.save(out_dir / "coordinator.solves_z.npy", core._fed_z[: core.fed_solves.n])
    if core.rounds is not None:
        core.rounds.rounds.save(out_dir / "coordinator.rounds.npy")
        core.rounds.save_convergence(out_dir)


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

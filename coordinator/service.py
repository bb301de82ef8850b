"""The coordinator role process: local problems in, exactly delta-neutral PlanDeltas out.

One process. A PULL socket receives every venue adapter's LocalArbProblem + SharedSignals and
the broker adapter's ExecutionReports (one socket: arrival order is the order of processing);
a PUSH socket sends PlanDeltas to the broker adapter; in federated coordination a ROUTER runs the
rounds with the venues.

This module is the process wiring: the role config, the sockets and their security, the journal,
the governance events, the ready file, the poll loop around :class:`~.receive_loop.ReceiveLoop`,
and the traces and stats written at the stop. The decisions are :mod:`.core` (and
:mod:`.federated_solve`): for each tick (once every venue has quoted) exchange ADMM
(warm-started, iterations capped by the tick's latency budget via a nominal per-iteration cost —
never by wall time), integer neutralization to exactly delta-neutral lots, the legs that move the
plan to the target, the delta-merge kernel applying them to the executed plan, and the PlanDelta
sent. The exact centralized baseline is computed after the send, off the critical path, for the
convergence KPI.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import zmq

from arbsphere.clock import Clock, RealtimeClock
from arbsphere.coordinator.core import Coordinator
from arbsphere.coordinator.federated_solve import DepartedVenues, federated_driver
from arbsphere.coordinator.journal_records import CONFIG_OUTPUT_RULES
from arbsphere.coordinator.journal_thread import JournalThread
from arbsphere.coordinator.plan_events import PlanEvents
from arbsphere.coordinator.receive_loop import INBOUND_HWM, ReceiveLoop
from arbsphere.coordinator.recorder import JournalRecorder
from arbsphere.coordinator.role_config import (
    CoordinatorRoleConfig,
    FederatedSettings,
    JournalSettings,
)
from arbsphere.coordinator.rounds import ZmqRoundLink
from arbsphere.coordinator.signal_aggregate import SignalAggregator
from arbsphere.errors import ConfigError, PipelineError
from arbsphere.journal import JournalWriterConfig
from arbsphere.plan.digest import plan_hash
from arbsphere.rounds_protocol import venue_identity
from arbsphere.runtime import RoleProcess, StopFlag, cpu_usage, run_role
from arbsphere.security.identity import Role
from arbsphere.security.role_security import PIPELINE, ROUNDS
from arbsphere.security.role_sockets import Plaintext, Secured, open_role_security

#: how long one poll waits for input when nothing else is due (ms)
POLL_MS = 100


def start(cfg: CoordinatorRoleConfig, source: str) -> CoordinatorProcess:
    """The coordinator process set up: core warm, sockets bound, journal open."""
    core = build_core(cfg)
    core.warm_up()
    return CoordinatorProcess(cfg, source, RealtimeClock(), core)


def build_core(cfg: CoordinatorRoleConfig) -> Coordinator:
    """The coordinator core as the role config describes it (the rounds are wired later)."""
    return Coordinator(
        n_venues=cfg.n_venues,
        n_assets=cfg.n_assets,
        settings=cfg.admm,
        budget_iterations_cap=cfg.admm.max_iter,
        min_delta_lots=cfg.min_delta_lots,
        ns_per_iteration=float(cfg.ns_per_iteration),
    )


class CoordinatorProcess(RoleProcess):
    """The coordinator's sockets, security, rounds, journal and receive loop, wired once from
    the role config; :meth:`serve` polls; :meth:`save`, :meth:`stats` and :meth:`close` leave
    the run's traces, journal and stats behind (see :func:`arbsphere.runtime.serve_role`)."""

    name = "coordinator"

    def __init__(
        self, cfg: CoordinatorRoleConfig, source: str, clock: Clock, core: Coordinator
    ) -> None:
        self.cfg = cfg
        self.journal_head: dict[str, Any] | None = None
        self.clock = clock
        self.core = core
        self.out_dir = Path(cfg.out_dir)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.security = _security(cfg, source, clock, ctx)
        self.pull, self.push = _pipeline_sockets(ctx, self.security, cfg)
        self.rounds_sock: zmq.Socket[bytes] | None = None
        self.round_link: ZmqRoundLink | None = None
        self.departed: DepartedVenues | None = None
        if cfg.federated is not None:
            self._federate(ctx, cfg.federated, source)
        self.inbound = self.security.receiver(self.pull, PIPELINE, [Role.VENUE, Role.BROKER])
        outbound = self.security.sender(self.push, PIPELINE, Role.BROKER, attest=True)
        self.governance = self.security.connect_governance()
        self.loop = ReceiveLoop(core, clock, outbound, cfg.max_batch)
        self.plan_events = self.security.plan_events(core)
        if self.plan_events is not None:
            self.loop.on_delta = self.plan_events
        self.journal = _open_journal(cfg.journal, source, clock)
        if self.journal is not None:
            self._record(self.journal)

    def _federate(self, ctx: zmq.Context[Any], fed: FederatedSettings, source: str) -> None:
        """Bind the rounds ROUTER and coordinate in rounds with the venues."""
        core = self.core
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # an unknown venue is an error, not a drop
        sock.setsockopt(zmq.LINGER, 0)
        self.security.server(sock, "rounds", [Role.VENUE])
        try:
            sock.bind(fed.rounds_endpoint)
        except zmq.ZMQError as exc:
            raise PipelineError(f"coordinator: cannot bind the rounds socket: {exc}") from exc
        self.rounds_sock = sock
        venue_ids = self.cfg.venue_ids
        self.departed = DepartedVenues(self.security.router(
            sock, ROUNDS, Role.VENUE, lambda name: venue_identity(int(venue_ids[name]))
        ))  # fmt: skip
        self.round_link = ZmqRoundLink(self.departed, self.clock)
        core.use_rounds(federated_driver(
            fed.protocol, self.round_link, core, self.cfg.admm, fed.secure_aggregation,
            self.clock, fed.round_timeout_ms, source,
        ))  # fmt: skip
        core.ns_per_iteration = float(fed.ns_per_round)
        core.outages.stale_after_ns = int(fed.stale_after_ms * 1e6)
        core.outages.unresponsive_retry_ns = int(fed.unresponsive_retry_ms * 1e6)
        if fed.secure_aggregation and fed.signal_release_interval_ms is not None:
            core.signal_agg = SignalAggregator(
                core.n_venues,
                round(fed.signal_release_interval_ms * 1e6),
                names={int(i): str(n) for n, i in self.cfg.venue_ids.items()},
                event=self.security.event,
            )

    def _record(self, journal: JournalThread) -> None:
        """Journal the loop's inputs, batches and outputs (and the rounds' answers), starting
        with the CONFIG record a replay rebuilds the core from."""
        interleave_ns = self.cfg.journal.interleave_ns if self.cfg.journal else 0
        recorder = JournalRecorder(journal)
        self.loop.set_recorder(recorder, interleave_ns)
        if self.round_link is not None:
            self.round_link.recorder = recorder
        recorder.config(journal_config(self.cfg, self.core), self.clock.now_ns())

    def ready_info(self) -> dict[str, Any]:
        def bound(sock: zmq.Socket[bytes] | None) -> str | None:
            return None if sock is None else sock.getsockopt_string(zmq.LAST_ENDPOINT)

        return {
            "pid": os.getpid(), "inbound_endpoint": bound(self.pull),
            "outbound_endpoint": bound(self.push), "rounds_endpoint": bound(self.rounds_sock),
        }  # fmt: skip

    def serve(self, stop: StopFlag) -> None:
        """Poll until ``stop``: each wake-up with input drains it through the receive loop;
        governance and the ledger's plan events are serviced in between."""
        poller = zmq.Poller()
        poller.register(self.pull, zmq.POLLIN)
        if self.governance is not None:
            poller.register(self.governance, zmq.POLLIN)
        plan_events = self.plan_events
        clock = self.clock
        while not stop.is_set:
            timeout_ms = POLL_MS
            if plan_events is not None and plan_events.pending:
                due = plan_events.due_in_ns(clock.now_ns()) or 0
                timeout_ms = min(timeout_ms, -(-due // 1_000_000))
            events = dict(poller.poll(timeout_ms))
            self.security.service(events)
            if self.pull in events:
                self.loop.drain(self.inbound)
            if plan_events is not None:
                plan_events.maybe_flush(clock.now_ns())

    def save(self) -> None:
        """Flush the ledger's plan events, close the journal with its final state, write the
        traces."""
        if self.plan_events is not None:
            self.plan_events.flush()  # before the ledger link closes
        self.journal_head = self._close_journal()
        self.loop.save(self.out_dir)

    def close(self) -> None:
        self.security.close()
        self.pull.close(linger=0)
        self.push.close()
        if self.rounds_sock is not None:
            self.rounds_sock.close(linger=0)

    def _close_journal(self) -> dict[str, Any] | None:
        loop = self.loop
        recorder = loop.journal_recorder
        if self.journal is None or recorder is None:
            return None
        recorder.state(self.core, self.clock.now_ns())
        head = {**self.journal.close().to_dict(), "records": recorder.records}
        if loop.interleave_ns:
            head["interleave_ns"] = loop.interleave_ns
            head["batches_unrecorded"] = loop.batches_unrecorded
        return head

    def stats(self) -> dict[str, Any]:
        """``coordinator.stats.json``: counts, the final plan and positions, the batches, the
        journal, outages, rounds, security, plan events and signal epochs."""
        core, loop = self.core, self.loop
        rounds, plan_events = core.rounds, self.plan_events
        return {
            "role": "coordinator",
            "counts": core.counts,
            "batches": loop.batch_counters(),
            "max_abs_net_delta_lots": core.max_abs_net_lots,
            "final_plan": core.merger.plan.tolist(),
            "final_executed": core.executed.tolist(),
            "final_realized_net_lots": core.executed.sum(axis=0).tolist(),
            "merge": core.merger.counters(),
            "last_error": loop.last_error,
            "cpu": cpu_usage(),
            "journal": self.journal_head,
            "realized_net": core.realized.summary(),
            "final_plan_hash": plan_hash(core.merger.plan),
            "freezes": core.outages.freeze_log,
            "open_legs_at_stop": len(core.open_legs),
            "coordination": self.cfg.coordination,
            "rounds": None if rounds is None else {
                **rounds.counts, "last_error": rounds.last_error,
                "sends_to_departed_venues": self.departed.dropped if self.departed else 0,
            },
            "security": self.security.stats(),
            "plan_events": None if plan_events is None else {
                "ledgered": plan_events.ledgered, "flushes": plan_events.flushes,
                "undecodable": plan_events.errors,
            },
            "signals_aggregate": None if core.signal_agg is None else core.signal_agg.summary(),
        }  # fmt: skip


def journal_config(cfg: CoordinatorRoleConfig, core: Coordinator) -> dict[str, Any]:
    """The journal's CONFIG record: what a replay rebuilds the core from
    (:func:`arbsphere.replay.engine.build_coordinator`). Keys absent from older journals are
    written only when they differ from what their absence means."""
    config: dict[str, Any] = {
        "n_venues": core.n_venues, "n_assets": core.n_assets,
        "min_delta_lots": core.min_delta_lots, "ns_per_iteration": core.ns_per_iteration,
        "max_batch": cfg.max_batch, "admm": dataclasses.asdict(cfg.admm),
        "coordination": cfg.coordination,
        **CONFIG_OUTPUT_RULES,  # outputs stamped with their wake-up's time; snapshots too
    }  # fmt: skip
    rounds = core.rounds
    if rounds is not None:
        config["stale_after_ns"] = core.outages.stale_after_ns
        config["unresponsive_retry_ns"] = core.outages.unresponsive_retry_ns
        config["round_timeout_ms"] = rounds.round_timeout_ms
        if rounds.masked:  # absent: the clear protocol (older journals too)
            config["secure_aggregation"] = True
        if rounds.protocol != "admm":  # absent: exchange ADMM (older journals too)
            config["protocol"] = rounds.protocol
        if core.signal_agg is not None:  # absent: no signal shares (older journals too)
            config["signal_release_interval_ns"] = core.signal_agg.interval_ns
    if cfg.journal is not None and cfg.journal.interleave_ns:  # replay refuses such a journal
        config["interleave_ns"] = cfg.journal.interleave_ns
    return config


def _pipeline_sockets(
    ctx: zmq.Context[zmq.Socket[bytes]], security: _Plaintext | _Secured,
    cfg: CoordinatorRoleConfig,
) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:  # fmt: skip
    """The inbound PULL (ticks, reports) and the outbound PUSH (PlanDeltas), bound."""
    pull = ctx.socket(zmq.PULL)
    # a short queue per sender: a venue adapter whose messages are not taken keeps only its
    # newest tick per asset (adapters/outbox.py), so what waits here is bounded
    pull.setsockopt(zmq.RCVHWM, INBOUND_HWM)
    pull.setsockopt(zmq.RCVBUF, 8_192)
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 1_000_000)
    push.setsockopt(zmq.LINGER, 2000)
    security.server(pull, "inbound", [Role.VENUE, Role.BROKER])
    security.server(push, "plans", [Role.BROKER])
    try:
        pull.bind(cfg.inbound_endpoint)
        push.bind(cfg.outbound_endpoint)
    except zmq.ZMQError as exc:
        raise PipelineError(f"coordinator: cannot bind: {exc}") from exc
    return pull, push


def _security(
    cfg: CoordinatorRoleConfig, source: str, clock: Clock, ctx: zmq.Context[Any]
) -> _Plaintext | _Secured:
    """The role's security, decided once: its ``security`` table, or none (a role run on its
    own, e.g. in a test: plaintext sockets, no tags, no ledger)."""
    if cfg.security is None:
        return _Plaintext()
    return _Secured(open_role_security(cfg.security, source, clock, ctx))


class _Plaintext(Plaintext):
    """No security, and so no PLAN_DELTA events in a ledger."""

    def plan_events(self, core: Coordinator) -> PlanEvents | None:
        return None


class _Secured(Secured):
    """Security on, and every PlanDelta ledgered as a PLAN_DELTA event."""

    def plan_events(self, core: Coordinator) -> PlanEvents | None:
        sec = self.sec
        return PlanEvents(sec, core.reg, sec.roster.entries[self.name_of(Role.BROKER)].sender_id)


def _open_journal(
    settings: JournalSettings | None, source: str, clock: Clock
) -> JournalThread | None:
    """The journal thread of the role config's ``journal`` settings (None: no journal)."""
    if settings is None:
        return None
    try:
        config = JournalWriterConfig(
            segment_size=settings.segment_bytes,
            durability=settings.durability,
            interval_records=settings.interval_records,
            interval_ns=settings.interval_ns,
        )
    except ConfigError as exc:
        raise ConfigError(str(exc), file=source, key=f"journal.{exc.key}") from exc
    return JournalThread(Path(settings.dir), config, clock)


def main() -> None:
    run_role(CoordinatorRoleConfig, start)


if __name__ == "__main__":
    main()

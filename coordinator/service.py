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

import os
from pathlib import Path
from typing import Any

import zmq

from arbsphere.clock import Clock, RealtimeClock
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.core import Coordinator
from arbsphere.coordinator.federated_solve import DepartedVenues, federated_driver
from arbsphere.coordinator.journal_records import CONFIG_OUTPUT_RULES
from arbsphere.coordinator.journal_thread import JournalThread
from arbsphere.coordinator.plan_events import PlanEvents
from arbsphere.coordinator.receive_loop import INBOUND_HWM, ReceiveLoop
from arbsphere.coordinator.recorder import Recorder
from arbsphere.coordinator.rounds import ZmqRoundLink
from arbsphere.coordinator.signal_aggregate import SignalAggregator
from arbsphere.errors import ConfigError, PipelineError
from arbsphere.journal import JournalConfig
from arbsphere.plan.digest import plan_hash
from arbsphere.rounds_protocol import venue_identity
from arbsphere.runtime import (
    StopFlag,
    cpu_usage,
    quiesce_gc,
    require,
    run_role,
    write_json_atomic,
)
from arbsphere.security.identity import Role
from arbsphere.security.role_security import PIPELINE, ROUNDS, open_role_security
from arbsphere.security.secure_socket import SecureSocket


def run(cfg: dict[str, Any], path: Path, stop: StopFlag) -> int:
    source = str(path)
    clock = RealtimeClock()
    out_dir = Path(require(cfg, "out_dir", str, source))
    admm_cfg = require(cfg, "admm", dict, source)
    settings = AdmmSettings(**admm_cfg)
    max_batch = require(cfg, "max_batch", int, source)
    if max_batch < 1:
        raise PipelineError(f"{source}: max_batch must be >= 1, got {max_batch}")
    core = Coordinator(
        n_venues=require(cfg, "n_venues", int, source),
        n_assets=require(cfg, "n_assets", int, source),
        settings=settings,
        budget_iterations_cap=settings.max_iter,
        min_delta_lots=require(cfg, "min_delta_lots", int, source),
        ns_per_iteration=float(require(cfg, "ns_per_iteration", (int, float), source)),
    )
    core.warm_up()

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    pull = ctx.socket(zmq.PULL)
    # a short queue per sender: a venue adapter whose messages are not taken keeps only its
    # newest tick per asset (adapters/outbox.py), so what waits here is bounded
    pull.setsockopt(zmq.RCVHWM, INBOUND_HWM)
    pull.setsockopt(zmq.RCVBUF, 8_192)
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 1_000_000)
    push.setsockopt(zmq.LINGER, 2000)
    sec = open_role_security(cfg, source, clock, ctx)
    if sec is not None:
        sec.server(pull, "inbound", [Role.VENUE, Role.BROKER])
        sec.server(push, "plans", [Role.BROKER])
    try:
        pull.bind(require(cfg, "inbound_endpoint", str, source))
        push.bind(require(cfg, "outbound_endpoint", str, source))
    except zmq.ZMQError as exc:
        raise PipelineError(f"coordinator: cannot bind: {exc}") from exc
    rounds_sock = None
    round_link: ZmqRoundLink | None = None
    departed: DepartedVenues | None = None
    coordination = cfg.get("coordination", "central")
    if coordination not in ("central", "federated"):
        raise ConfigError("must be 'central' or 'federated'", file=source, key="coordination")
    if coordination == "federated":
        rounds_sock = ctx.socket(zmq.ROUTER)
        rounds_sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # an unknown venue is an error, not a drop
        rounds_sock.setsockopt(zmq.LINGER, 0)
        if sec is not None:
            sec.server(rounds_sock, "rounds", [Role.VENUE])
        try:
            rounds_sock.bind(require(cfg, "rounds_endpoint", str, source))
        except zmq.ZMQError as exc:
            raise PipelineError(f"coordinator: cannot bind the rounds socket: {exc}") from exc
        departed = DepartedVenues(_secured_rounds(sec, rounds_sock, cfg, source))
        round_link = ZmqRoundLink(departed, clock)
        masked = secure_aggregation(cfg)
        protocol = cfg.get("protocol", "admm")
        if protocol not in ("price", "admm"):
            raise ConfigError("must be 'price' or 'admm'", file=source, key="protocol")
        core.use_rounds(federated_driver(
            protocol, round_link, core, settings, masked, clock,
            int(require(cfg, "round_timeout_ms", int, source)), source,
        ))  # fmt: skip
        core.ns_per_iteration = float(require(cfg, "ns_per_round", (int, float), source))
        core.outages.stale_after_ns = int(
            require(cfg, "stale_after_ms", (int, float), source) * 1e6
        )
        core.outages.unresponsive_retry_ns = int(
            require(cfg, "unresponsive_retry_ms", (int, float), source) * 1e6
        )
        if masked and cfg.get("signal_release_interval_ms") is not None:
            venue_ids = require(cfg, "venue_ids", dict, source)
            core.signal_agg = SignalAggregator(
                core.n_venues,
                round(require(cfg, "signal_release_interval_ms", (int, float), source) * 1e6),
                names={int(i): str(n) for n, i in venue_ids.items()},
                event=None if sec is None else sec.event,
            )
    inbound: Any = pull
    outbound: Any = push
    gov = None
    if sec is not None:
        broker = sec.names_of(Role.BROKER)[0]
        inbound = SecureSocket(pull, guard=sec.guard(PIPELINE, [*sec.names_of(Role.VENUE), broker]))
        outbound = SecureSocket(
            push, sealer=sec.sealer(PIPELINE, broker),
            attest=sec.sign_plan if sec.settings.attest_plan_deltas else None,
        )  # fmt: skip
        gov = sec.connect_registry()
    loop = ReceiveLoop(core, clock, outbound, max_batch)
    plan_events: PlanEvents | None = None
    if sec is not None:
        plan_events = PlanEvents(sec, core.reg, sec.roster.entries[broker].sender_id)
        loop.on_delta = plan_events
    journal = _open_journal(cfg, source, clock)
    if journal is not None:
        interleave_ns = int(cfg["journal"].get("interleave_ns") or 0)
        if interleave_ns and core.rounds is not None:
            raise ConfigError("recorder interleaving needs central coordination", file=source,
                              key="journal.interleave_ns")  # fmt: skip
        recorder = Recorder(journal)
        loop.set_recorder(recorder, interleave_ns)
        config: dict[str, Any] = {
            "n_venues": core.n_venues, "n_assets": core.n_assets,
            "min_delta_lots": core.min_delta_lots, "ns_per_iteration": core.ns_per_iteration,
            "max_batch": max_batch, "admm": admm_cfg, "coordination": coordination,
            **CONFIG_OUTPUT_RULES,  # outputs stamped with their wake-up's time; snapshots too
        }  # fmt: skip
        if core.rounds is not None and round_link is not None:
            round_link.recorder = recorder
            config["stale_after_ns"] = core.outages.stale_after_ns
            config["unresponsive_retry_ns"] = core.outages.unresponsive_retry_ns
            config["round_timeout_ms"] = core.rounds.round_timeout_ms
            if core.rounds.masked:  # absent: the clear protocol (older journals too)
                config["secure_aggregation"] = True
            if core.rounds.protocol != "admm":  # absent: exchange ADMM (older journals too)
                config["protocol"] = core.rounds.protocol
            if core.signal_agg is not None:  # absent: no signal shares (older journals too)
                config["signal_release_interval_ns"] = core.signal_agg.interval_ns
        if interleave_ns:  # replay refuses such a journal
            config["interleave_ns"] = interleave_ns
        recorder.config(config, clock.now_ns())
    journal_head: dict[str, Any] | None = None
    quiesce_gc()
    write_json_atomic(
        out_dir / "coordinator.ready.json",
        {"pid": os.getpid(),
         "inbound_endpoint": pull.getsockopt_string(zmq.LAST_ENDPOINT),
         "outbound_endpoint": push.getsockopt_string(zmq.LAST_ENDPOINT),
         "rounds_endpoint": None if rounds_sock is None
         else rounds_sock.getsockopt_string(zmq.LAST_ENDPOINT)},
    )  # fmt: skip

    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)
    if gov is not None:
        poller.register(gov, zmq.POLLIN)
    try:
        while not stop.is_set:
            timeout_ms = 100
            if plan_events is not None and plan_events.pending:
                due = plan_events.due_in_ns(clock.now_ns()) or 0
                timeout_ms = min(timeout_ms, -(-due // 1_000_000))
            events = dict(poller.poll(timeout_ms))
            if sec is not None:
                if gov in events:
                    sec.handle_governance()
                sec.maybe_tick()
            if pull in events:
                loop.drain(inbound)
            if plan_events is not None:
                plan_events.maybe_flush(clock.now_ns())
    finally:
        if plan_events is not None:
            plan_events.flush()  # before the ledger link closes
        if journal is not None and loop.journal_recorder is not None:
            loop.journal_recorder.state(core, clock.now_ns())
            journal_head = {**journal.close().to_dict(), "records": loop.journal_recorder.records}
            if loop.interleave_ns:
                journal_head["interleave_ns"] = loop.interleave_ns
                journal_head["batches_unrecorded"] = loop.batches_unrecorded
        loop.save(out_dir)
        realized_net = core.executed.sum(axis=0)
        write_json_atomic(
            out_dir / "coordinator.stats.json",
            {
                "role": "coordinator",
                "counts": core.counts,
                "batches": loop.batch_counters(),
                "max_abs_net_delta_lots": core.max_abs_net_lots,
                "final_plan": core.merger.plan.tolist(),
                "final_executed": core.executed.tolist(),
                "final_realized_net_lots": realized_net.tolist(),
                "merge": core.merger.counters(),
                "last_error": loop.last_error,
                "cpu": cpu_usage(),
                "journal": journal_head,
                "realized_net": core.realized.summary(),
                "final_plan_hash": plan_hash(core.merger.plan),
                "freezes": core.outages.freeze_log,
                "open_legs_at_stop": len(core.open_legs),
                "coordination": coordination,
                "rounds": None
                if core.rounds is None
                else {
                    **core.rounds.counts,
                    "last_error": core.rounds.last_error,
                    "sends_to_departed_venues": departed.dropped if departed else 0,
                },
                "security": None if sec is None else sec.stats(),
                "plan_events": None
                if plan_events is None
                else {
                    "ledgered": plan_events.ledgered,
                    "flushes": plan_events.flushes,
                    "undecodable": plan_events.errors,
                },
                "signals_aggregate": None if core.signal_agg is None else core.signal_agg.summary(),
            },
        )
        if sec is not None:
            sec.close()
        pull.close(linger=0)
        push.close()
        if rounds_sock is not None:
            rounds_sock.close(linger=0)
    return 0


def secure_aggregation(cfg: dict[str, Any]) -> bool:
    """Whether the role's ``security`` table asks for secure aggregation of the rounds (no
    table — a role run on its own — means the clear protocol)."""
    table = cfg.get("security")
    return isinstance(table, dict) and bool(table.get("secure_aggregation", False))


def _secured_rounds(sec: Any, rounds_sock: Any, cfg: dict[str, Any], source: str) -> Any:
    """The rounds ROUTER with tags per venue (the raw socket when the role has no security)."""
    if sec is None:
        return rounds_sock
    venue_ids = require(cfg, "venue_ids", dict, source)
    return SecureSocket(
        rounds_sock, router=True, guard=sec.guard(ROUNDS, sec.names_of(Role.VENUE)),
        sealers_by_peer={
            venue_identity(int(venue_ids[name])): sec.sealer(ROUNDS, name)
            for name in sec.names_of(Role.VENUE)
        },
    )  # fmt: skip


def _open_journal(cfg: dict[str, Any], source: str, clock: Clock) -> JournalThread | None:
    """The role config's ``journal`` table ({dir, durability, segment_bytes, interval_ns,
    interval_records}), or None when absent."""
    table = cfg.get("journal")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError("must be an object", file=source, key="journal")
    try:
        config = JournalConfig(
            segment_size=int(table.get("segment_bytes", 64 << 20)),
            durability=table.get("durability", "interval"),
            interval_records=table.get("interval_records"),
            interval_ns=table.get("interval_ns"),
        )
    except ConfigError as exc:
        raise ConfigError(str(exc), file=source, key=f"journal.{exc.key}") from exc
    return JournalThread(Path(require(table, "dir", str, source)), config, clock)


def main() -> None:
    run_role(run)


if __name__ == "__main__":
    main()

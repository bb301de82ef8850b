"""The adapter contract suite's session for the broker adapter: the role run against fake
coordinator endpoints with the campaign's broker device behind it, driven with a short plan
(:class:`~arbsphere.conformance.plan_script.PlanScript`), every message it pushes collected and
judged — against the contract graph (:func:`~arbsphere.conformance.contract_suite.contract_checks`,
role ``broker``) and as the broker's answers to the deltas it was sent
(:func:`~arbsphere.conformance.broker_contract.broker_checks`).

The broker's device and adapter are started exactly as a campaign run starts them
(:meth:`Orchestrator._start_broker`: an emulated device spawned with the same wiring, a hardware
one expected where the campaign says; the adapter with its run role config and the session
registry's security table: :mod:`arbsphere.rig.conformance_session`), without link impairment
(the suite judges the adapter, not a link made bad on purpose). The coordinator's PUSH of
PlanDeltas and its PULL of reports are bound here on loopback as the coordinator binds them.
PlanDeltas leave one every :data:`SEND_INTERVAL_S` (sealed and attested as the coordinator's
are); the session ends :data:`GRACE_S` after every leg sent has a report and the divergence its
script provoked was reported, or ``listen_s`` after the last message sent — a bound, not a measure:
what is missing then is judged missing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import zmq

from arbsphere.clock import Clock
from arbsphere.conformance.broker_contract import broker_checks
from arbsphere.conformance.contract_suite import contract_checks
from arbsphere.conformance.model import ADAPTER, SuiteResult, for_device
from arbsphere.conformance.plan_script import PlanScript
from arbsphere.contracts import default_registry
from arbsphere.rig.config import Campaign
from arbsphere.rig.conformance_security import tags_reason
from arbsphere.rig.conformance_session import Session, adapter_session, session_check
from arbsphere.security.identity import Role
from arbsphere.sender_ids import BROKER_SENDER_ID

#: pacing of the PlanDeltas (a coordinator's deltas come one per solve, not all at once)
SEND_INTERVAL_S = 0.02
#: after everything was answered, what comes this much later is still collected (a second
#: report of an order comes soon after the first, if at all)
GRACE_S = 0.2
#: the coordinator's PUSH waits this long for the adapter to connect before a send fails
SEND_TIMEOUT_MS = 10_000


def run_broker_adapter_suite(
    campaign: Campaign, clock: Clock, work: Path, *, listen_s: float, n_trades: int = 6
) -> SuiteResult:
    """The broker adapter judged on its answers to ``n_trades`` TRADE deltas (one of them
    with a wrong plan hash, then the snapshot), heard for up to ``listen_s`` after the last."""
    b = campaign.broker
    quiet = dataclasses.replace(campaign, broker=dataclasses.replace(b, impairment=None))
    script = PlanScript(len(campaign.venues), campaign.n_assets, n_trades)
    messages: list[list[bytes]] = []
    t0 = clock.now_ns()
    with adapter_session(quiet, work / f"{b.name}-adapter", clock) as session:
        tags = session.security.opener(b.name)
        reason = tags_reason(session.orch.registry)
        _drive(session, script, messages, clock, listen_s)
    reg = default_registry()
    checks = [
        session_check(session),
        *contract_checks(messages, reg, campaign.contract_graph, "broker",
                         [v.name for v in campaign.venues], BROKER_SENDER_ID,
                         (t0, clock.now_ns()), tags=tags, tags_reason=reason),
        *broker_checks(messages, reg, script.sent, tagged=tags is not None),
    ]  # fmt: skip
    info = {"messages": len(messages), "deltas_sent": len(script.sent),
            "snapshots_sent": script.snapshots, "roles": session.outcome.roles}  # fmt: skip
    return SuiteResult(b.name, ADAPTER, b.link, for_device(checks, b.name), info)


def _drive(
    session: Session, script: PlanScript, messages: list[list[bytes]], clock: Clock,
    listen_s: float,
) -> None:  # fmt: skip
    """Bind the fake coordinator's sockets, start the broker, send the script paced, collect
    what the adapter pushes until :data:`GRACE_S` after it has answered everything, or
    ``listen_s`` after the last send."""
    orch, fake = session.orch, session.security
    pull, push = session.socket(zmq.PULL), session.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
    fake.server(pull, "inbound", [Role.VENUE, Role.BROKER])
    fake.server(push, "plans", [Role.BROKER])
    pull.bind("tcp://127.0.0.1:*")
    push.bind("tcp://127.0.0.1:*")
    orch.inbound = str(pull.getsockopt_string(zmq.LAST_ENDPOINT))
    orch.outbound = str(push.getsockopt_string(zmq.LAST_ENDPOINT))
    plans = fake.plan_sender(push)
    orch._start_broker()
    interval = round(SEND_INTERVAL_S * 1e9)
    next_send = clock.now_ns()
    until: int | None = None
    answered = False
    while until is None or clock.now_ns() < until:
        if until is None and clock.now_ns() >= next_send:
            raw = script.next(clock.now_ns())
            if raw is None:
                until = clock.now_ns() + round(listen_s * 1e9)
            else:
                plans.send(raw)
                next_send += interval
        if pull.poll(5):
            messages.append(pull.recv_multipart())
            if until is not None and not answered and _answered(messages, script):
                answered = True
                until = min(until, clock.now_ns() + round(GRACE_S * 1e9))


def _answered(messages: list[list[bytes]], script: PlanScript) -> bool:
    """Whether every leg sent has a report and every provoked divergence a status (judged
    with the suite's own judge: its ``orders_reported`` and ``replica_divergence`` pass)."""
    checks = {c.name: c for c in broker_checks(messages, default_registry(), script.sent,
                                               tagged=True)}  # fmt: skip
    return all(checks[n].ok for n in ("orders_reported", "replica_divergence"))

"""The adapter contract suite's session for a venue adapter: the role run against fake
coordinator endpoints, its emulated feed device behind it, every message it emits collected and
judged (:func:`arbsphere.conformance.contract_suite.contract_checks`).

The adapter gets the role config a campaign run gives it (:meth:`Orchestrator.venue_config`,
federated when the campaign is, its security table from the session's campaign registry:
:mod:`arbsphere.rig.conformance_session`), with the coordinator's PULL and rounds ROUTER
endpoints bound here on loopback as the coordinator binds them (CurveZMQ servers with its
identity where the campaign's transport is ``curve``); the ROUTER proposes nothing, so the
adapter sends its quotes and signals and no round answers. With tags on, every message is
opened with the coordinator's opener of the venue's link (``message_tags``). Only emulated
feeds are driven here (a hardware feed's adapter needs its device armed; its feed suite covers
the device side). The broker adapter's session: :mod:`arbsphere.rig.conformance_broker`.
"""

from __future__ import annotations

from pathlib import Path

import zmq

from arbsphere.adapters.backends import WIRING_PTY, backend
from arbsphere.clock import Clock
from arbsphere.conformance.contract_suite import contract_checks
from arbsphere.conformance.model import ADAPTER, SuiteResult, for_device
from arbsphere.contracts import default_registry
from arbsphere.rig.config import Campaign, VenueConfig
from arbsphere.rig.conformance_security import tags_reason
from arbsphere.rig.conformance_session import adapter_session, session_check
from arbsphere.rig.orchestrator import Orchestrator, device_name
from arbsphere.runtime import config_to_json
from arbsphere.security.identity import Role
from arbsphere.sender_ids import VENUE_SENDER_BASE


def run_venue_adapter_suite(
    campaign: Campaign,
    v: VenueConfig,
    clock: Clock,
    work: Path,
    *,
    listen_s: float,
    feed_config: dict[str, object],
    start_ns: int,
) -> SuiteResult:
    """Venue ``v``'s adapter judged on ``listen_s`` of its traffic after its feed's schedule
    started at ``start_ns`` (``feed_config``: the emulated feed's config, without wiring)."""
    messages: list[list[bytes]] = []
    t0 = clock.now_ns()
    with adapter_session(campaign, work / f"{v.name}-adapter", clock) as session:
        orch, fake = session.orch, session.security
        tags, reason = fake.opener(v.name), tags_reason(orch.registry)
        pull, router = session.socket(zmq.PULL), session.socket(zmq.ROUTER)
        fake.server(pull, "inbound", [Role.VENUE, Role.BROKER])
        fake.server(router, "rounds", [Role.VENUE])
        pull.bind("tcp://127.0.0.1:*")
        router.bind("tcp://127.0.0.1:*")
        orch.inbound = str(pull.getsockopt_string(zmq.LAST_ENDPOINT))
        orch.rounds_endpoint = (
            None if campaign.coordinator.coordination == "central"
            else str(router.getsockopt_string(zmq.LAST_ENDPOINT))
        )  # fmt: skip
        _start(orch, v, feed_config)
        until = max(start_ns, clock.now_ns()) + round(listen_s * 1e9)
        while clock.now_ns() < until:
            if pull.poll(50):
                messages.append(pull.recv_multipart())
            while router.poll(0):
                router.recv_multipart()  # a venue's hello on the rounds channel: not judged
    checks = [session_check(session), *contract_checks(
        messages, default_registry(), campaign.contract_graph, v.name,
        [x.name for x in campaign.venues], VENUE_SENDER_BASE + v.venue_id, (t0, clock.now_ns()),
        tags=tags, tags_reason=reason,
    )]  # fmt: skip
    info = {"messages": len(messages), "roles": session.outcome.roles}
    return SuiteResult(v.name, ADAPTER, v.link, for_device(checks, v.name), info)


def _start(orch: Orchestrator, v: VenueConfig, feed_config: dict[str, object]) -> None:
    """The venue adapter, then its emulated feed device wired to it."""
    link = backend(v.link)
    device = device_name(v.name)
    port = orch.open_pty(device) if link.wiring == WIRING_PTY else v.port
    role = orch.spawn(v.name, "venue_adapter", "arbsphere.adapters.venue_adapter",
                       config_to_json(orch.venue_config(v, port)))  # fmt: skip
    ready = orch.wait_file(role, orch.proc_dir / f"{v.name}.ready.json")
    module = str(link.emulator("feed"))
    if link.wiring == WIRING_PTY:
        fd = orch.pty_master(device)
        orch.spawn(device, "feed_device", module, {**feed_config, "master_fd": fd},
                    pass_fds=(fd,))  # fmt: skip
    else:
        host, p = ready["address"]
        orch.spawn(device, "feed_device", module,
                    {**feed_config, "target_host": host, "target_port": int(p)})  # fmt: skip

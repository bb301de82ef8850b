"""The security of an adapter contract-suite session: the campaign registry, and the fake
coordinator's end of the adapter's sockets.

A campaign run opens its registry before any role starts (:meth:`Orchestrator.open_registry`:
an identity and credential for every role, the roster, the governance ledger), and every role
config carries its security table from it. A contract-suite session does the same, so the
adapter under test runs exactly as in a run: CurveZMQ to the coordinator where the campaign's
transport is ``curve``, tags on every message where ``tags = true``, its HELLO and events on the
governance channel. The fake coordinator is the roster's coordinator: the loopback registry holds
every role's private keys (README "Security and governance", known limits), so it takes the
coordinator's identity from the registry — its CurveZMQ server key and ZAP on the sockets it
binds, its tag key for the receiving end's :class:`~arbsphere.security.tags.Opener` (the link
key adapter → coordinator on the pipeline channel: what the real coordinator verifies with) and
for sealing (and, with ``attest_plan_deltas``, signing) the PlanDeltas it sends.

This is the smallest honest setup: nothing is mocked on the adapter's side, and the only part of
a run left out is the coordinator's own governance channel — it does not join, so the registry's
ledger checkpoints go unsigned (the venues still co-sign); the ledger is not what the suite
judges and is discarded with the session's work directory. The judging opener's skew window is
widened (it judges after the session: the envelope's origin time has its own check).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import zmq

from arbsphere.clock import Clock
from arbsphere.rig.orchestrator import COORDINATOR
from arbsphere.security.campaign_registry import CampaignRegistry
from arbsphere.security.identity import Role
from arbsphere.security.role_security import PIPELINE, RoleSecurity
from arbsphere.security.role_sockets import Plaintext, Secured
from arbsphere.security.tags import Opener

#: the judging opener's skew bounds (a session lasts seconds; judged after it)
JUDGE_SKEW_NS = 3_600 * 10**9


class FakeCoordinatorSecurity:
    """The coordinator's security for the fake endpoints of one session (see the module
    docstring); with ``registry`` None, plaintext and no tags."""

    def __init__(
        self, registry: CampaignRegistry | None, clock: Clock, ctx: zmq.Context[Any]
    ) -> None:
        self.sockets: Plaintext = Plaintext()
        self.tags = False
        if registry is not None:
            settings = dataclasses.replace(
                registry.role_settings(COORDINATOR),
                max_past_ns=JUDGE_SKEW_NS, max_future_ns=JUDGE_SKEW_NS,
            )  # fmt: skip
            sec = RoleSecurity(settings, clock, ctx, source="conformance session (coordinator)")
            self.sockets = Secured(sec)
            self.tags = settings.tags

    def server(self, sock: zmq.Socket[bytes], domain: str, roles: list[Role]) -> None:
        """``sock`` (before it binds) a server of ``domain`` for ``roles``, as the coordinator
        makes its own."""
        self.sockets.server(sock, domain, roles)

    def plan_sender(self, sock: zmq.Socket[bytes]) -> Any:
        """What the PlanDeltas go out on: ``sock``, or it sealed (and attested) to the broker."""
        return self.sockets.sender(sock, PIPELINE, Role.BROKER, attest=True)

    def opener(self, sender: str) -> Opener | None:
        """The coordinator's opener of ``sender``'s pipeline messages (None: tags off)."""
        sec = self.sockets.role_security
        if sec is None or not self.tags:
            return None
        return sec.guard(PIPELINE, [sender]).opener

    def close(self) -> None:
        self.sockets.close()


def tags_reason(registry: CampaignRegistry | None) -> str:
    """Why ``message_tags`` is skipped in a session (empty: it is judged)."""
    if registry is not None and registry.settings.tags:
        return ""
    return "the campaign runs without message tags ([security] tags = false)"

"""One adapter contract-suite session: the orchestrator that starts the adapter as a campaign
run does, the campaign registry opened first (as a run opens it), the fake coordinator's
security, the ZeroMQ context of the fake endpoints — and their teardown in a run's order (the
registry's final checkpoint while the roles are up, then the roles, then the keys)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from arbsphere.clock import Clock
from arbsphere.rig.config import Campaign
from arbsphere.rig.conformance_security import FakeCoordinatorSecurity
from arbsphere.rig.orchestrator import Orchestrator, RunOutcome


@dataclass
class Session:
    orch: Orchestrator
    security: FakeCoordinatorSecurity
    ctx: zmq.Context[Any]
    outcome: RunOutcome
    sockets: list[zmq.Socket[bytes]] = field(default_factory=list)

    def socket(self, kind: int) -> zmq.Socket[bytes]:
        """A socket of the session's context, closed with it."""
        sock: zmq.Socket[bytes] = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        self.sockets.append(sock)
        return sock


@contextmanager
def adapter_session(campaign: Campaign, run_dir: Path, clock: Clock) -> Iterator[Session]:
    """The session of one adapter under ``run_dir`` (see the module docstring)."""
    ctx: zmq.Context[Any] = zmq.Context()
    orch = Orchestrator(campaign, run_dir, clock)
    registry = orch.registry = orch.open_registry()
    session = Session(orch, FakeCoordinatorSecurity(registry, clock, ctx), ctx,
                      RunOutcome(complete=True, reason=""))  # fmt: skip
    try:
        yield session
    finally:
        registry.finish(True, "conformance session")
        orch.stop_all(session.outcome)
        orch.close_ptys()
        for sock in session.sockets:
            sock.close(linger=0)
        session.security.close()
        registry.cleanup()
        ctx.term()

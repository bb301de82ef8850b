"""One adapter contract-suite session: the orchestrator that starts the adapter as a campaign
run does, the campaign registry opened first (as a run opens it), the fake coordinator's
security, the ZeroMQ context of the fake endpoints — and their teardown in a run's order (the
registry's final checkpoint while the roles are up, then the roles, then the keys).

A session that could not run (a role that did not come up, a device not there, the adapter
never connecting) is a failed check, ``adapter_session``, naming why — the suite's other
checks then judge what little was collected — not an end of ``arbsphere conformance``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from arbsphere.clock import Clock
from arbsphere.conformance.model import ADAPTER, ZERO, Check, measured
from arbsphere.errors import DeviceError, PipelineError
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
    #: why the session could not run as planned ("" : it did)
    error: str = ""

    def socket(self, kind: int) -> zmq.Socket[bytes]:
        """A socket of the session's context, closed with it."""
        sock: zmq.Socket[bytes] = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        self.sockets.append(sock)
        return sock


@contextmanager
def adapter_session(campaign: Campaign, run_dir: Path, clock: Clock) -> Iterator[Session]:
    """The session of one adapter under ``run_dir`` (see the module docstring); a role, device
    or socket failure inside it ends the session and is kept in :attr:`Session.error`."""
    ctx: zmq.Context[Any] = zmq.Context()
    orch = Orchestrator(campaign, run_dir, clock)
    registry = orch.registry = orch.open_registry()
    security: FakeCoordinatorSecurity | None = None
    try:
        security = FakeCoordinatorSecurity(registry, clock, ctx)
        session = Session(orch, security, ctx, RunOutcome(complete=True, reason=""))
        try:
            yield session
        except (PipelineError, DeviceError, zmq.ZMQError) as exc:
            session.error = str(exc) or type(exc).__name__
        finally:
            registry.finish(True, "conformance session")
            orch.stop_all(session.outcome)
            for sock in session.sockets:
                sock.close(linger=0)
    finally:
        orch.close_ptys()
        if security is not None:
            security.close()
        registry.cleanup()
        ctx.term()


def session_check(session: Session) -> Check:
    """``adapter_session``: 0 when the session ran as planned, else 1 with the reason."""
    return measured("adapter_session", ADAPTER, int(bool(session.error)), "errors", ZERO,
                    detail=session.error or "adapter started, driven and stopped")  # fmt: skip

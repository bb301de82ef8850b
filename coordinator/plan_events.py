"""The coordinator's governance events for the PlanDeltas it emits.

Every PlanDelta (TRADE or WRITE_OFF) that leaves the coordinator is ledgered as a PLAN_DELTA
event: its id, kind, leg count, cause, plan hash and the SHA-256 of its bytes as sent (before
tag and attestation) — the same bytes the replay journal holds, so the ledger and the journal
can be cross-checked.
"""

from __future__ import annotations

import hashlib

from arbsphere.contracts import Registry
from arbsphere.errors import DecodeError
from arbsphere.security.ledger import EventKind
from arbsphere.security.role_security import RoleSecurity


class PlanEvents:
    """Callable: ``plan_events(delta_bytes)`` after each PlanDelta sent."""

    def __init__(self, sec: RoleSecurity, reg: Registry, broker_sender_id: int) -> None:
        self.sec = sec
        self.reg = reg
        self.plan_id = reg.schema("PlanDelta", 2).id
        self.subject = broker_sender_id
        self.errors = 0

    def __call__(self, delta: bytes) -> None:
        try:
            schema, v = self.reg.decode_values(delta)
        except DecodeError:
            self.errors += 1
            return
        if schema.id != self.plan_id:
            return
        # envelope (7 values), then delta_id, ts_ns, sender, n_legs, cause_venue, cause_seq,
        # kind, plan_hash
        self.sec.event(
            EventKind.PLAN_DELTA,
            self.subject,
            {
                "delta_id": v[7], "n_legs": v[10], "cause_venue": v[11], "cause_seq": v[12],
                "kind": "trade" if v[13] == 1 else "write_off", "plan_hash": f"{v[14]:016x}",
                "sha256": hashlib.sha256(delta).hexdigest(),
            },
        )  # fmt: skip

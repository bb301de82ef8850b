"""A broker adapter's replica of the coordinator's plan, updated only by PlanDeltas.

Every PlanDelta (TRADE or WRITE_OFF) is merged into the replica with the same delta-merge
kernel the coordinator uses, and the replica's hash is compared with the hash the delta carries
(the coordinator's plan after that delta). A mismatch is a divergence: counted, reported to the
coordinator (ReplicaStatus), and repaired when its PlanSnapshot arrives — the snapshot comes
down the same ordered stream as the deltas, so at that point the replica has applied exactly
the deltas the snapshot includes, and replacing it is exact.

``fault_every`` (test rigging, like link impairment): every k-th TRADE delta, one lot is added to
the replica's first cell after the merge — a corrupted replica the mechanism must catch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arbsphere.contracts import PLAN_LEG_DTYPE, default_registry
from arbsphere.plan.digest import plan_hash
from arbsphere.plan.merge import DeltaMerger
from arbsphere.sender_ids import COORDINATOR_SENDER_ID

KIND_TRADE, KIND_WRITE_OFF = default_registry().codes("PlanDeltaKind", "TRADE", "WRITE_OFF")


class PlanReplica:
    def __init__(self, n_venues: int, n_assets: int, fault_every: int = 0) -> None:
        self.merger = DeltaMerger(n_venues, n_assets, n_senders=4)
        self.fault_every = fault_every
        self.awaiting_snapshot = False
        self.last_delta_id = 0
        self.counts = {
            "deltas": 0, "write_offs": 0, "legs_applied": 0, "checked": 0, "divergences": 0,
            "snapshots": 0, "repaired": 0, "injected_faults": 0, "unrepaired_snapshots": 0,
        }  # fmt: skip
        self._trades = 0

    def warm_up(self) -> None:
        """Compile (or load from Numba's cache) the merge kernel for legs as they arrive — a
        read-only view of a received message, its own specialization — on a scratch plan, so
        the first PlanDelta does not wait for it: on a fresh clone that took seconds, long
        enough for the deltas queued behind it to fall outside the skew window and be refused.
        The replica itself is not touched."""
        scratch = DeltaMerger(*self.merger.plan.shape, n_senders=4)
        legs = np.frombuffer(np.zeros(1, PLAN_LEG_DTYPE).tobytes(), PLAN_LEG_DTYPE)
        scratch.merge(legs)
        plan_hash(scratch.plan)

    @property
    def plan(self) -> np.ndarray:
        return self.merger.plan

    def apply(self, delta_id: int, kind: int, legs: np.ndarray, expected_hash: int) -> bool:
        """Merge one delta's legs and check the hash; True when the replica now diverges (and
        a snapshot should be asked for — once per divergence)."""
        self.counts["deltas"] += 1
        if kind == KIND_WRITE_OFF:
            self.counts["write_offs"] += 1
        self.counts["legs_applied"] += int(self.merger.merge(legs))
        self.last_delta_id = delta_id
        if kind == KIND_TRADE:
            self._trades += 1
            if self.fault_every and self._trades % self.fault_every == 0:
                self.merger.plan[0, 0] += 1
                self.counts["injected_faults"] += 1
        if self.awaiting_snapshot:
            return False
        self.counts["checked"] += 1
        if plan_hash(self.merger.plan) != expected_hash:
            self.counts["divergences"] += 1
            self.awaiting_snapshot = True
            return True
        return False

    def restore(self, delta_id: int, lots: np.ndarray, expected_hash: int) -> None:
        """Replace the replica with a PlanSnapshot (plan after ``delta_id``)."""
        self.counts["snapshots"] += 1
        self.merger.plan[:] = lots.reshape(self.merger.plan.shape)
        self.merger.high_water[COORDINATOR_SENDER_ID] = delta_id
        self.last_delta_id = delta_id
        if plan_hash(self.merger.plan) == expected_hash and self.awaiting_snapshot:
            self.counts["repaired"] += 1
        elif plan_hash(self.merger.plan) != expected_hash:
            self.counts["unrepaired_snapshots"] += 1
        self.awaiting_snapshot = False

    def summary(self) -> dict[str, Any]:
        return {**self.counts, "awaiting_snapshot": self.awaiting_snapshot,
                "final_hash": plan_hash(self.merger.plan),
                "last_delta_id": self.last_delta_id}  # fmt: skip

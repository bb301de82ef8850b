"""The PlanDeltas a broker adapter is driven with in its contract suite, and what was sent.

:class:`PlanScript` builds them with the coordinator's own encoder (:class:`Coordinator`'s
``emit_delta`` and ``plan_snapshot``): ``n_trades`` TRADE deltas over the campaign's venues and
assets, each moving one asset's position between two venues (neutral, one or two legs per
delta), stamped with the time they are sent (the broker's skew window judges them). One of them
(``corrupt_at``, 1-based; 0: none) leaves with a wrong plan hash, and the coordinator's
PlanSnapshot follows it down the stream at once: the broker adapter must report that delta's
divergence (and only that one) and be consistent again after the snapshot.

Every delta sent is recorded as a :class:`SentDelta` with the plan hash this module computes
itself from the legs it sent (``side × size_lots`` summed per venue and asset, then the
project's digest, :func:`arbsphere.plan.digest.plan_hash`), not the coordinator's merge state:
the judge (:mod:`.broker_contract`) compares the broker's replica digests against it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from arbsphere.contracts import default_registry
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.core import Coordinator
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.plan.digest import plan_hash

_REG = default_registry()
(KIND_TRADE,) = _REG.codes("PlanDeltaKind", "TRADE")
_PLAN = _REG.schema("PlanDelta", 2)
#: where a PlanDelta's plan hash sits in its bytes (envelope, then the header's field)
_HASH_AT = _REG.envelope.size + next(f.offset for f in _PLAN.header.fields
                                     if f.name == "plan_hash")  # fmt: skip
_U64 = struct.Struct("<Q")
#: the coordinator's quote book for the script's deltas (leg limit prices come from it)
BID_PX, ASK_PX = 99 * dm.PRICE_SCALE, 101 * dm.PRICE_SCALE


@dataclass(frozen=True)
class SentDelta:
    """One PlanDelta as sent: its legs (venue, asset, side, size_lots) in order, the hash it
    carries and the plan hash computed here from every delta sent so far."""

    delta_id: int
    kind: int
    legs: tuple[tuple[int, int, int, int], ...]
    carried_hash: int
    plan_hash: int

    @property
    def corrupted(self) -> bool:
        return self.carried_hash != self.plan_hash


class PlanScript:
    """Call :meth:`next` with the send time until it returns None (see the module docstring);
    :attr:`sent` holds every delta sent, :attr:`snapshots` how many snapshots."""

    def __init__(self, n_venues: int, n_assets: int, n_trades: int = 6, corrupt_at: int = 3):
        if n_venues < 2:
            raise ValueError(f"a neutral delta needs two venues, the campaign has {n_venues}")
        self.core = Coordinator(n_venues, n_assets, AdmmSettings(), 500, 1)
        self.core.bid_px[:] = BID_PX
        self.core.ask_px[:] = ASK_PX
        self.n_trades = n_trades
        self.corrupt_at = corrupt_at
        self.plan = np.zeros((n_venues, n_assets), np.int64)
        self.sent: list[SentDelta] = []
        self.snapshots = 0
        self._snapshot_due = False

    def next(self, now_ns: int) -> bytes | None:
        """The next message to send now (a PlanDelta or a PlanSnapshot), None when done."""
        core = self.core
        core.send_ts_ns = now_ns
        if self._snapshot_due:
            self._snapshot_due = False
            self.snapshots += 1
            return core.plan_snapshot(now_ns)
        k = len(self.sent)
        if k >= self.n_trades:
            return None
        n_venues, n_assets = self.plan.shape
        i, j, a = k % n_venues, (k + 1) % n_venues, k % n_assets
        lots = 1 + k % 3
        core.target[i, a] += lots
        core.target[j, a] -= lots
        raw = core.emit_delta(ts_ns=now_ns, cause_venue=i, cause_seq=k + 1)
        if raw is None:  # the target always moves by a lot or more: the encoder changed
            raise RuntimeError(f"the coordinator emitted no delta for trade {k + 1}")
        return self._record(raw, k + 1 == self.corrupt_at)

    def _record(self, raw: bytes, corrupt: bool) -> bytes:
        msg = _REG.decode(raw)
        head = msg.header[0]
        legs = tuple((int(x["venue"]), int(x["asset"]), int(x["side"]), int(x["size_lots"]))
                     for x in msg.items)  # fmt: skip
        for venue, asset, side, size in legs:
            self.plan[venue, asset] += side * size
        carried, independent = int(head["plan_hash"]), plan_hash(self.plan)
        if carried != independent:  # the encoder and this module disagree: the suite is wrong
            raise RuntimeError(f"PlanDelta {int(head['delta_id'])} carries plan hash {carried}, "
                               f"the legs sent give {independent}")  # fmt: skip
        if corrupt:
            carried ^= 1
            raw = raw[:_HASH_AT] + _U64.pack(carried) + raw[_HASH_AT + _U64.size :]
            self._snapshot_due = True
        self.sent.append(SentDelta(int(head["delta_id"]), int(head["kind"]), legs, carried,
                                   independent))  # fmt: skip
        return raw

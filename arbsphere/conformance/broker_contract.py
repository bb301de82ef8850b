"""The broker adapter's side of its contract: what it must answer to the PlanDeltas it was sent.

:func:`broker_checks` takes what the adapter pushed to the coordinator (ZeroMQ messages, as
:func:`~.contract_suite.contract_checks` takes them) and the deltas sent to it
(:class:`~.plan_script.SentDelta`) and judges, per the contract (README "Hedge completeness and
plan replicas"): every leg of every TRADE delta is reported by one final ExecutionReport with
order id ``delta_id << 8 | leg`` (``orders_reported``: legs without one; ``reports_once``:
second final reports and reports of orders never sent; an ACK-status report before the final
one is allowed); each report names its leg's delta, venue and asset, a known status and signed
lots that fit it — FILL the whole size, PARTIAL less, REJECT and ACK none, with the leg's side
(``report_fields``); the plan replica: no
ReplicaStatus for a delta whose hash agreed (``replica_consistent``) and, for the delta sent
with a wrong hash on purpose, one DIVERGED status naming it whose ``replica_hash`` is the plan
hash computed independently from the deltas sent and whose ``expected_hash`` is the wrong one
(``replica_divergence``). Decoding faults are :func:`contract_checks`' to count; here a message
that does not decode (with or without a tag trailer) is left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from arbsphere.conformance.model import ADAPTER, ZERO, Check, Limits, measured, skipped
from arbsphere.conformance.plan_script import KIND_TRADE, SentDelta
from arbsphere.contracts import Message, SchemaRegistry
from arbsphere.errors import DecodeError
from arbsphere.security.tags import TAG_BYTES

#: a report's value to its leg: (delta_id, venue, asset, side, size_lots)
_Leg = tuple[int, int, int, int, int]


def broker_checks(
    messages: Sequence[Sequence[bytes]],
    registry: SchemaRegistry,
    sent: Sequence[SentDelta],
    *,
    tagged: bool,
) -> list[Check]:
    """The checks of the broker adapter's reports (module docstring); ``tagged``: its messages
    carry a tag trailer (stripped before decoding)."""
    legs: dict[int, _Leg] = {
        (d.delta_id << 8) | i: (d.delta_id, v, a, side, size)
        for d in sent if d.kind == KIND_TRADE
        for i, (v, a, side, size) in enumerate(d.legs)
    }  # fmt: skip
    decoded = [m for frames in messages for m in _decode(registry, list(frames), tagged)]
    statuses = {int(m): m.name for m in registry.enum("ReportStatus")}
    reported: Counter[int] = Counter()
    bad_fields = 0
    for m in decoded:
        if m.schema.name == "ExecutionReport":
            r = m.header[0]
            oid, status = int(r["order_id"]), statuses.get(int(r["status"]), "")
            reported[oid] += status != "ACK"  # an acknowledgement before the final report
            leg = legs.get(oid)
            bad_fields += leg is not None and not _fits(
                leg, int(r["delta_id"]), int(r["venue"]), int(r["asset"]), status,
                int(r["filled_lots"]),
            )  # fmt: skip
    missing = sum(1 for oid in legs if reported[oid] == 0)
    extra = sum(k - 1 for oid, k in reported.items() if oid in legs and k > 1)
    unknown = sum(k for oid, k in reported.items() if oid not in legs)
    return [
        measured("orders_reported", ADAPTER, missing, "legs", ZERO,
                 detail=f"{missing} of {len(legs)} legs sent without an ExecutionReport"),
        measured("reports_once", ADAPTER, extra + unknown, "reports", ZERO,
                 detail=f"{extra} second reports, {unknown} reports of orders never sent"),
        measured("report_fields", ADAPTER, bad_fields, "reports", ZERO,
                 detail=f"{bad_fields} reports whose delta, venue, asset, final status or "
                 "signed lots do not fit their leg (FILL: all, PARTIAL: less, REJECT: none)"),
        *_replica_checks(decoded, sent),
    ]  # fmt: skip


def _fits(leg: _Leg, delta_id: int, venue: int, asset: int, status: str, lots: int) -> bool:
    want_delta, want_venue, want_asset, side, size = leg
    if (delta_id, venue, asset) != (want_delta, want_venue, want_asset):
        return False
    filled = {"FILL": size, "REJECT": 0, "ACK": 0}.get(status)
    if status == "PARTIAL":
        return lots * side >= 0 and abs(lots) < size
    return filled is not None and lots == side * filled


def _replica_checks(decoded: Sequence[Message], sent: Sequence[SentDelta]) -> list[Check]:
    by_id = {d.delta_id: d for d in sent}
    wrong = 0
    right = 0
    corrupted = [d for d in sent if d.corrupted]
    for m in decoded:
        if m.schema.name != "ReplicaStatus":
            continue
        s = m.header[0]
        d = by_id.get(int(s["delta_id"]))
        if d is None or not d.corrupted:
            wrong += 1
        elif int(s["replica_hash"]) == d.plan_hash and int(s["expected_hash"]) == d.carried_hash:
            right += 1
        else:
            wrong += 1
    consistent = measured(
        "replica_consistent", ADAPTER, wrong, "statuses", ZERO,
        detail=f"{wrong} ReplicaStatus for deltas whose hash agreed, or naming hashes other "
        "than the plan's computed here and the delta's",
    )  # fmt: skip
    if not corrupted:
        return [consistent, skipped("replica_divergence", ADAPTER, "statuses", ZERO,
                                    "no delta was sent with a wrong plan hash")]  # fmt: skip
    ids = [d.delta_id for d in corrupted]
    diverged = measured(
        "replica_divergence", ADAPTER, right, "statuses",
        Limits.within(len(corrupted), len(corrupted)),
        detail=f"deltas {ids} sent with a wrong plan hash: {right} DIVERGED statuses naming "
        "them with the replica's true hash",
    )  # fmt: skip
    return [consistent, diverged]


def _decode(registry: SchemaRegistry, frames: list[bytes], tagged: bool) -> list[Message]:
    candidates = [frames]
    if tagged and frames and len(frames[-1]) > TAG_BYTES:
        candidates = [[*frames[:-1], frames[-1][:-TAG_BYTES]], frames]
    for parts in candidates:
        try:
            return [registry.decode(p) for p in registry.messages_of(parts)]
        except DecodeError:
            continue
    return []

"""The adapter contract suite: every frame an adapter role emits, judged against the contract
graph (:mod:`arbsphere.contracts`).

:func:`contract_checks` takes the ZeroMQ messages an adapter sent on one channel (each a list of
frames, as ``recv_multipart`` gives them) and judges: that it sent any (``contract_frames``);
that every message splits and decodes with the schema registry (``contract_decode``); that
every message's schema and version is one its role speaks in the campaign's graph
(``contract_versions``); that the envelope names the adapter's sender id (``envelope_sender``),
carries a nonce above the previous one on the channel (``envelope_nonce``: a receiver's replay
guard refuses a repeat) and an origin time inside the session (``envelope_origin_ts``). Message
tags (``message_tags``) are checked only where the caller ran the adapter with the campaign
registry's credentials; otherwise the check is skipped with the reason. Running the adapter
(its process, a device behind it, the fake coordinator endpoint) is the caller's job:
``arbsphere conformance`` does it in :mod:`arbsphere.rig.conformance_run`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from arbsphere.conformance.model import ADAPTER, ZERO, Check, Limits, measured, skipped
from arbsphere.contracts import SchemaRegistry
from arbsphere.errors import DecodeError

#: an envelope's origin time may lie this far outside the session (rig clock)
ORIGIN_SLACK_NS = 1_000_000_000


def contract_checks(
    messages: Sequence[Sequence[bytes]],
    registry: SchemaRegistry,
    graph: str,
    role: str,
    venue_names: Sequence[str],
    sender_id: int,
    window_ns: tuple[int, int],
    *,
    tags_reason: str,
) -> list[Check]:
    """The checks of one adapter's channel (see the module docstring). ``role``: the adapter's
    party in ``graph`` (a venue's name, or ``broker``); ``tags_reason``: why tags are not
    judged (the only mode this suite runs in)."""
    speaks = registry.graph(graph).roles(venue_names)[role].speaks
    bad_decode = bad_version = bad_sender = bad_nonce = bad_ts = 0
    seen: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    last_nonce = -1
    lo, hi = window_ns[0] - ORIGIN_SLACK_NS, window_ns[1] + ORIGIN_SLACK_NS
    for frames in messages:
        try:
            parts = registry.messages_of(list(frames))
            decoded = [registry.decode(p) for p in parts]
        except DecodeError:
            bad_decode += 1
            continue
        for m in decoded:
            seen[f"{m.schema.name} v{m.schema.version}"] += 1
            if speaks.get(m.schema.name) != m.schema.version:
                bad_version += 1
                wrong[f"{m.schema.name} v{m.schema.version}"] += 1
            bad_sender += m.sender_id != sender_id
            bad_nonce += m.nonce <= last_nonce
            last_nonce = max(last_nonce, m.nonce)
            bad_ts += not lo <= m.origin_ts_ns <= hi
    n = sum(seen.values())
    speaks_text = ", ".join(f"{k} v{v}" for k, v in sorted(speaks.items()))
    return [
        measured("contract_frames", ADAPTER, len(messages), "messages", Limits.at_least(1),
                 detail=f"ZeroMQ messages received: {dict(seen) or 'none'}"),
        measured("contract_decode", ADAPTER, bad_decode, "messages", ZERO,
                 detail=f"{bad_decode} of {len(messages)} do not split or decode"),
        measured("contract_versions", ADAPTER, bad_version, "messages", ZERO,
                 detail=f"graph {graph} role {role} speaks {speaks_text}; outside it: "
                 f"{dict(wrong) or 'none'}"),
        measured("envelope_sender", ADAPTER, bad_sender, "messages", ZERO,
                 detail=f"sender_id other than {sender_id} in {bad_sender} of {n}"),
        measured("envelope_nonce", ADAPTER, bad_nonce, "messages", ZERO,
                 detail=f"{bad_nonce} of {n} nonces not above the previous one"),
        measured("envelope_origin_ts", ADAPTER, bad_ts, "messages", ZERO,
                 detail=f"{bad_ts} of {n} origin times outside the session "
                 f"(± {ORIGIN_SLACK_NS / 1e9:g} s)"),
        skipped("message_tags", ADAPTER, "messages", ZERO, tags_reason, required=False),
    ]  # fmt: skip

"""The adapter contract suite: every frame an adapter role emits, judged against the contract
graph (:mod:`arbsphere.contracts`).

:func:`contract_checks` takes the ZeroMQ messages an adapter sent on one channel (each a list of
frames, as ``recv_multipart`` gives them) and judges: that it sent any (``contract_frames``);
that every message splits and decodes with the schema registry (``contract_decode``); that
every message's schema and version is one its role speaks in the campaign's graph
(``contract_versions``); that the envelope names the adapter's sender id (``envelope_sender``),
carries a nonce above the previous one on the channel (``envelope_nonce``: a receiver's replay
guard refuses a repeat) and an origin time inside the session (``envelope_origin_ts``).

Message tags (``message_tags``) are judged where the caller ran the adapter with the campaign
registry's credentials and hands in the receiving end's :class:`~arbsphere.security.tags.Opener`
(the link key sender → receiver on the channel): every message must open with it; a message
whose tag is missing or wrong, or that names a sender without a key, counts. The opener's replay
and skew refusals are the receiver's too, but they come after the tag verified, so they are
reported in the detail and judged by ``envelope_nonce`` / ``envelope_origin_ts``. Without an
opener (a campaign with ``[security] tags = false``) the check is skipped with the reason. A
message whose tag does not verify is still decoded (without its last 16 bytes, else whole), so
the envelope checks see every message. Running the adapter (its process, a device behind it,
the fake coordinator endpoint) is the caller's job: ``arbsphere conformance`` does it in
:mod:`arbsphere.rig.conformance_run`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from arbsphere.conformance.model import ADAPTER, ZERO, Check, Limits, measured, skipped
from arbsphere.contracts import Message, SchemaRegistry
from arbsphere.errors import DecodeError, MessageRefused
from arbsphere.security.tags import TAG_BYTES, Opener

#: an envelope's origin time may lie this far outside the session (rig clock)
ORIGIN_SLACK_NS = 1_000_000_000
#: an opener's refusals that mean the tag itself is missing or wrong (the others come after it
#: verified: replay window, skew)
TAG_REFUSALS = frozenset({"short", "unknown_sender", "bad_tag"})


def contract_checks(
    messages: Sequence[Sequence[bytes]],
    registry: SchemaRegistry,
    graph: str,
    role: str,
    venue_names: Sequence[str],
    sender_id: int,
    window_ns: tuple[int, int],
    *,
    tags: Opener | None = None,
    tags_reason: str = "",
) -> list[Check]:
    """The checks of one adapter's channel (see the module docstring). ``role``: the adapter's
    party in ``graph`` (a venue's name, or ``broker``); ``tags``: the receiver's opener of the
    channel (None: tags are not judged, ``tags_reason`` says why)."""
    speaks = registry.graph(graph).roles(venue_names)[role].speaks
    bad_decode = bad_version = bad_sender = bad_nonce = bad_ts = 0
    seen: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    last_nonce = -1
    lo, hi = window_ns[0] - ORIGIN_SLACK_NS, window_ns[1] + ORIGIN_SLACK_NS
    for frames in messages:
        decoded = _decode(registry, list(frames), tags, refused)
        if decoded is None:
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
        _tags_check(len(messages), tags, refused, tags_reason),
    ]  # fmt: skip


def _decode(
    registry: SchemaRegistry, frames: list[bytes], tags: Opener | None, refused: Counter[str]
) -> list[Message] | None:
    """One ZeroMQ message's contract messages (None: it does not split or decode); with
    ``tags``, opened first (a refusal counted in ``refused`` by reason; the message is then
    decoded without what would be its tag, else whole)."""
    candidates = [frames]
    if tags is not None:
        try:
            candidates = [[bytes(p) for p in tags.open_parts(frames)]]
        except MessageRefused as exc:
            refused[exc.reason] += 1
            last = frames[-1] if frames else b""
            if len(last) > TAG_BYTES:
                candidates.insert(0, [*frames[:-1], last[:-TAG_BYTES]])
    for parts in candidates:
        try:
            return [registry.decode(p) for p in registry.messages_of(parts)]
        except DecodeError:
            continue
    return None


def _tags_check(n: int, tags: Opener | None, refused: Counter[str], reason: str) -> Check:
    if tags is None:
        return skipped("message_tags", ADAPTER, "messages", ZERO, reason, required=False)
    bad = sum(k for r, k in refused.items() if r in TAG_REFUSALS)
    after = {r: k for r, k in refused.items() if r not in TAG_REFUSALS}
    return measured(
        "message_tags", ADAPTER, bad, "messages", ZERO,
        detail=f"{bad} of {n} with a missing or wrong tag "
        f"({dict(sorted((r, k) for r, k in refused.items() if r in TAG_REFUSALS)) or 'none'}); "
        f"refused after the tag verified (replay, skew): {after or 'none'}",
    )  # fmt: skip

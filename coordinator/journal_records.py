"""What the coordinator journals: its configuration, every input in arrival order, the batch
boundaries (its decision points), every PlanDelta and PlanSnapshot it sent, and its final state
digest.

Record types (``type`` field of a journal record; payloads little-endian):

==============  ===  ===================================================================
CONFIG            1  UTF-8 JSON: everything that shapes decisions (sizes, ADMM settings,
                     min_delta_lots, ns_per_iteration, max_batch); ts = start
INPUT             2  u16 frame count, then per frame u32 length + bytes (the ZeroMQ
                     multipart message exactly as received); ts = rig receive time
BATCH             3  u32 number of INPUT records the wake-up drained; ts = its end
DELTA             4  the PlanDelta bytes exactly as sent; ts = send time
STATE             5  32-byte SHA-256 of the final decision state (:func:`state_digest`),
                     then UTF-8 JSON of the counters; ts = stop
ROUND_INPUT       6  federated runs: a message received on the rounds socket (identity +
                     LocalSolution), framed as INPUT; ts = rig receive time
ROUND_TIMEOUT     7  federated runs: a round's wait for the venues' answers ran out:
                     u64 solve id, u32 round; ts = when
SNAPSHOT          8  the PlanSnapshot bytes exactly as sent (the answer to a ReplicaStatus
                     input of the wake-up, sent right after its BATCH record and before its
                     PlanDeltas); ts = send time. CONFIG ``journal_snapshots`` says the
                     journal has them (older journals: the snapshots went unrecorded)
==============  ===  ===================================================================

Only CONFIG, INPUT, BATCH and the ROUND records drive a replay; DELTA, SNAPSHOT and STATE are
what a replay must reproduce byte for byte. Timestamps are for the record only: no decision
reads them. One is on the wire: with CONFIG ``stamp = "wakeup"`` the envelope origin stamp of
every PlanDelta and PlanSnapshot is its wake-up's time, the BATCH record's ts (the receivers'
skew windows judge how old a message is by it; the PlanDelta header keeps the causing input's
stamp). Older journals (no ``stamp``) stamped the envelope with the causing input's origin
stamp: a tick that had queued for most of the skew window gave a PlanDelta the broker
refused. A federated solve runs inside its wake-up, so its ROUND records follow the wake-up's
BATCH record (and precede the DELTA it emits): everything the venues answered, stale or bad
answers included, and where the wait ran out — the decisions a round makes from the network,
made again from the journal.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from arbsphere.errors import DecodeError

REC_CONFIG = 1
REC_INPUT = 2
REC_BATCH = 3
REC_DELTA = 4
REC_STATE = 5
REC_ROUND_INPUT = 6
REC_ROUND_TIMEOUT = 7
REC_SNAPSHOT = 8
RECORD_NAMES = {
    REC_CONFIG: "CONFIG", REC_INPUT: "INPUT", REC_BATCH: "BATCH", REC_DELTA: "DELTA",
    REC_STATE: "STATE", REC_ROUND_INPUT: "ROUND_INPUT", REC_ROUND_TIMEOUT: "ROUND_TIMEOUT",
    REC_SNAPSHOT: "SNAPSHOT",
}  # fmt: skip
#: what the coordinator sent: a replay reproduces them in this order, byte for byte
OUTPUT_RECORDS = (REC_DELTA, REC_SNAPSHOT)
#: the CONFIG keys of a journal recorded by the current receive loop (see the module doc):
#: outputs stamped with their wake-up's time, PlanSnapshots journaled. A CONFIG without them
#: is replayed with the earlier rules
CONFIG_OUTPUT_RULES: dict[str, Any] = {"stamp": "wakeup", "journal_snapshots": True}
ROUND_RECORDS = (REC_ROUND_INPUT, REC_ROUND_TIMEOUT)
_ROUND_TIMEOUT = struct.Struct("<QI")

#: the INPUT payload's frame count and per-frame length fields
FRAME_COUNT = struct.Struct("<H")
FRAME_LENGTH = struct.Struct("<I")
_U16 = FRAME_COUNT
_U32 = FRAME_LENGTH


def encode_frames(frames: Sequence[bytes]) -> bytes:
    parts = [_U16.pack(len(frames))]
    for f in frames:
        parts.append(_U32.pack(len(f)))
        parts.append(bytes(f))
    return b"".join(parts)


def decode_frames(payload: bytes | memoryview) -> list[bytes]:
    """Inverse of :func:`encode_frames`; a malformed payload raises :class:`DecodeError`."""
    buf = memoryview(payload)
    if len(buf) < 2:
        raise DecodeError("short", len(buf), "INPUT payload shorter than its frame count")
    (n,) = _U16.unpack_from(buf, 0)
    off = 2
    frames = []
    for i in range(n):
        if off + 4 > len(buf):
            raise DecodeError("short", off, f"INPUT frame {i}: length field cut off")
        (length,) = _U32.unpack_from(buf, off)
        off += 4
        if off + length > len(buf):
            raise DecodeError("bad_length", off - 4, f"INPUT frame {i}: {length} bytes claimed")
        frames.append(bytes(buf[off : off + length]))
        off += length
    if off != len(buf):
        raise DecodeError("bad_length", off, f"INPUT payload has {len(buf) - off} trailing bytes")
    return frames


def encode_batch(n: int) -> bytes:
    return _U32.pack(n)


def decode_batch(payload: bytes | memoryview) -> int:
    if len(payload) != 4:
        raise DecodeError("bad_length", 0, f"BATCH payload of {len(payload)} bytes, expected 4")
    return int(_U32.unpack_from(payload, 0)[0])


def encode_round_timeout(solve_id: int, round_no: int) -> bytes:
    return _ROUND_TIMEOUT.pack(solve_id, round_no)


def decode_round_timeout(payload: bytes | memoryview) -> tuple[int, int]:
    """(solve id, round) of a ROUND_TIMEOUT payload."""
    if len(payload) != _ROUND_TIMEOUT.size:
        raise DecodeError(
            "bad_length", 0,
            f"ROUND_TIMEOUT payload of {len(payload)} bytes, expected {_ROUND_TIMEOUT.size}",
        )  # fmt: skip
    solve_id, round_no = _ROUND_TIMEOUT.unpack_from(payload, 0)
    return int(solve_id), int(round_no)


def encode_config(config: dict[str, Any]) -> bytes:
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def decode_config(payload: bytes | memoryview) -> dict[str, Any]:
    try:
        data = json.loads(bytes(payload).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError("bad_config", 0, f"CONFIG payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DecodeError("bad_config", 0, "CONFIG payload is not a JSON object")
    return data


def state_digest(core: Any) -> bytes:
    """SHA-256 over everything a later decision depends on: the latest local problems (costs,
    curvatures, fees, limits, quotes), the plan and target, the merge high-water marks,
    executed positions, the ADMM warm-start state (x, z, u, ρ, cold flag), the delta id and
    nonce counters, and the last nonce per sender (sorted); under secure aggregation also the
    last round's sums, the participants and the last revealed x (clear runs: unchanged)."""
    h = hashlib.sha256()

    def put(*arrays: np.ndarray) -> None:
        for arr in arrays:
            a = np.ascontiguousarray(arr)
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            h.update(a.tobytes())

    put(core.c, core.gamma, core.phi, core.limit, core.limit_lots, core.bid_px, core.ask_px,
        core.quoted, core.merger.plan, core.merger.high_water, core.executed, core.admm.x,
        core.admm.z, core.admm.u, core.target)  # fmt: skip
    h.update(struct.pack("<d?qq", float(core.admm.rho), bool(core.admm._cold), core.delta_id,
                         core.nonce))  # fmt: skip
    h.update(json.dumps(sorted(core.last_nonce.items())).encode())
    rounds = core.rounds
    if rounds is not None and rounds.protocol == "price":  # prices, outage clocks, search
        put(core.mid, core.last_quote_ts, core.outages.unresponsive_at)
        arrays, scalars = rounds.ex.digest_parts()
        put(*arrays)
        h.update(scalars + struct.pack("<qq", core.latest_quote_ts, rounds.solve_id))
    elif rounds is not None:  # federated: the public prices, outage clocks and exchange state
        ex = rounds.ex
        put(core.mid, core.last_quote_ts, core.outages.unresponsive_at, ex.x, ex.z, ex.u, ex.frozen,
            ex.frozen_lots)  # fmt: skip
        h.update(struct.pack("<d?qq", float(ex.rho), bool(ex.cold), core.latest_quote_ts,
                             rounds.solve_id))  # fmt: skip
        if ex.masked:  # secure aggregation: the last sums and the last revealed trades
            put(ex.xsum, ex.best_x, ex.best_xq)
            h.update(struct.pack("<ddQI", ex.sq_x, ex.sq_d, ex.participants, ex.best_round))
    return h.digest()


def encode_state(core: Any) -> bytes:
    return state_digest(core) + json.dumps(core.counts, sort_keys=True).encode()

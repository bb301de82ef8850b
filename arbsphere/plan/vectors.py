"""Test vectors of the plan hash and the delta merge, for other implementations (the C++ SDK).

``plan_vectors.json`` (next to this module) holds plan-hash vectors (cells -> hash) and a
replica scenario: PlanDelta v2 messages (wire bytes, as the coordinator sends them) applied in
order to a 2 x 3 plan, each with the plan, hash and merge counters :class:`.merge.DeltaMerger`
gives after it. The scenario covers a plain delta, a re-delivered one (duplicate), a repeated
cell within a delta, a delta with one invalid leg (rejected whole), legs out of timestamp
order, and a delta whose carried hash is wrong (a replica must report divergence), then the
PlanSnapshot that repairs it (the plan before that delta, as if it had been lost). A test
keeps the committed file equal to :func:`render_plan_vectors`.

Regenerate: ``python -m arbsphere.plan.vectors``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.contracts import PLAN_LEG_DTYPE, default_registry
from arbsphere.plan.digest import plan_hash
from arbsphere.plan.merge import DeltaMerger

VECTORS_PATH = Path(__file__).resolve().parent / "plan_vectors.json"
N_VENUES, N_ASSETS, N_SENDERS = 2, 3, 4
SENDER = 1  # the coordinator

#: one leg: (ts_ns, delta_id, venue, asset, side, size_lots)
Leg = tuple[int, int, int, int, int, int]

#: (name, legs, corrupt the carried hash)
_DELTAS: list[tuple[str, list[Leg], bool]] = [
    ("two legs", [(1000, 1, 0, 0, 1, 5), (1000, 1, 1, 0, -1, 5)], False),
    ("re-delivered (duplicate)", [(1000, 1, 0, 0, 1, 5), (1000, 1, 1, 0, -1, 5)], False),
    ("repeated cell applies once", [(2000, 2, 0, 1, 1, 3), (2000, 2, 0, 1, 1, 3)], False),
    ("invalid side rejects the delta", [(3000, 3, 0, 2, 1, 4), (3000, 3, 1, 2, 0, 4)], False),
    ("out-of-range asset rejects", [(3500, 4, 0, 2, 1, 4), (3500, 4, 1, 7, -1, 4)], False),
    ("legs of one delta, any order", [(4000, 5, 1, 2, -1, 9), (4000, 5, 0, 2, 1, 9)], False),
    ("large and negative lots", [(5000, 6, 1, 1, -1, 2**40), (5000, 6, 0, 0, -1, 7)], False),
    ("wrong carried hash", [(6000, 7, 0, 0, 1, 1), (6000, 7, 1, 0, -1, 1)], True),
]

_HASH_PLANS: list[tuple[str, list[int]]] = [
    ("zeros 2x3", [0] * 6),
    ("one lot", [1, 0, 0, 0, 0, 0]),
    ("mixed signs", [5, -5, 3, -3, 2**62, -(2**63)]),
    ("empty", []),
    ("16 cells (exactly one 128-byte block)", list(range(16))),
    ("17 cells (crosses a 128-byte block)", list(range(-8, 9))),
]


def _leg_records(legs: list[Leg]) -> np.ndarray:
    items = np.zeros(len(legs), PLAN_LEG_DTYPE)
    for row, (ts, delta_id, venue, asset, side, size) in zip(items, legs, strict=True):
        row["ts_ns"], row["delta_id"], row["sender"] = ts, delta_id, SENDER
        row["venue"], row["asset"], row["side"], row["size_lots"] = venue, asset, side, size
        row["limit_px"] = 100_000_000 * (venue + 1)
    return items


def _delta_message(index: int, legs: list[Leg], carried: int) -> bytes:
    reg = default_registry()
    schema = reg.schema("PlanDelta", 2)
    items = _leg_records(legs)
    hdr = np.zeros(1, schema.header.dtype)
    hdr["delta_id"], hdr["ts_ns"], hdr["sender"] = legs[0][1], legs[0][0], SENDER
    hdr["n_legs"], hdr["cause_venue"], hdr["cause_seq"] = len(legs), 0, 100 + index
    hdr["kind"] = int(reg.enum("PlanDeltaKind")["TRADE"])
    hdr["plan_hash"] = carried
    return reg.encode(
        schema, hdr, items, sender_id=SENDER, nonce=index + 1, origin_ts_ns=legs[0][0]
    )


def _replica_steps() -> list[dict[str, Any]]:
    merger = DeltaMerger(N_VENUES, N_ASSETS, N_SENDERS)
    steps = []
    for index, (name, legs, corrupt) in enumerate(_DELTAS):
        merger.merge(_leg_records(legs))
        after = plan_hash(merger.plan)
        carried = after ^ 1 if corrupt else after
        steps.append(
            {
                "name": name,
                "message_hex": _delta_message(index, legs, carried).hex(),
                "plan": [int(v) for v in merger.plan.reshape(-1)],
                "plan_hash": f"{after:016X}",
                "diverged": corrupt,
                "counters": merger.counters(),
            }
        )
    return steps


def _snapshot(plan: list[int], delta_id: int) -> dict[str, Any]:
    """A PlanSnapshot v1 of ``plan`` (the plan after ``delta_id``) as the coordinator sends it;
    a replica restored from it skips that delta re-delivered (a duplicate)."""
    reg = default_registry()
    schema = reg.schema("PlanSnapshot", 1)
    cells = np.array(plan, np.int64)
    hdr = np.zeros(1, schema.header.dtype)
    hdr["delta_id"], hdr["plan_hash"] = delta_id, plan_hash(cells)
    hdr["n_venues"], hdr["n_assets"], hdr["n_cells"] = N_VENUES, N_ASSETS, cells.size
    items = np.zeros(cells.size, schema.item.dtype)  # type: ignore[union-attr]
    items["lots"] = cells
    raw = reg.encode(schema, hdr, items, sender_id=SENDER, nonce=100, origin_ts_ns=7000)
    return {"message_hex": raw.hex(), "plan": plan, "plan_hash": f"{plan_hash(cells):016X}"}


def render_plan_vectors() -> str:
    """The text of ``plan_vectors.json``."""
    steps = _replica_steps()
    doc = {
        "description": (
            "Plan hash (BLAKE2b, 8-byte digest, over int64 LE cells in C order, read as u64 LE) "
            "and a plan replica fed PlanDelta v2 messages one batch each; after every step the "
            "plan, its hash and the merge counters of arbsphere.plan.merge.DeltaMerger."
        ),
        "hashes": [
            {
                "name": name,
                "cells": cells,
                "plan_hash": f"{plan_hash(np.array(cells, np.int64)):016X}",
            }
            for name, cells in _HASH_PLANS
        ],
        "replica": {
            "n_venues": N_VENUES,
            "n_assets": N_ASSETS,
            "n_senders": N_SENDERS,
            "steps": steps,
            "snapshot": _snapshot(steps[-2]["plan"], _DELTAS[-2][1][0][1]),
        },
    }
    return json.dumps(doc, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else VECTORS_PATH
    path.write_text(render_plan_vectors(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

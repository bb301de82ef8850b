"""The governance ledger: layout, round trip, and every refusal of :func:`verify_ledger`."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from arbsphere.contracts import default_registry
from arbsphere.errors import LedgerError, SecurityError
from arbsphere.security.ledger import (
    CHECKPOINTS_FILE,
    LEDGER_FILE,
    EventKind,
    LedgerWriter,
    canonical_details,
    checkpoint_message,
    read_entries,
    verify_ledger,
)
from arbsphere.testing import StepClock

SCHEMA = default_registry().schema("AuditLogEvent")
FILE_HEADER = 16


# Fixed keys (deterministic test data; the ledger itself only ever sees them as key objects).
KEYS = {
    name: Ed25519PrivateKey.from_private_bytes(hashlib.sha256(name.encode()).digest())
    for name in ("coordinator", "venue-a", "venue-b", "mallory")
}
TRUSTED: dict[str, Ed25519PublicKey] = {
    n: k.public_key() for n, k in KEYS.items() if n != "mallory"
}
VENUES = {"venue-a": KEYS["venue-a"], "venue-b": KEYS["venue-b"]}

EVENTS: list[tuple[EventKind, int, int, dict[str, Any]]] = [
    (EventKind.RUN_START, 1, 0, {"run_id": "r-1", "campaign": "loopback"}),
    (EventKind.CONFIG_HASH, 1, 0, {"sha256": "ab" * 32}),
    (EventKind.ROLE_JOINED, 2, 2, {"role": "venue", "did": "did:key:z6Mk\u00e9"}),
    (EventKind.CREDENTIAL_ISSUED, 1, 2, {"serial": 7, "not_after_ns": 123, "ttl_s": 900.5}),
    (EventKind.MESSAGE_REFUSED, 1, 3, {"reason": "replay", "nonce": 2**63}),
    (EventKind.BUDGET_SPENT, 4, 2, {"epsilon": 0.125, "left": [1, 2, None, True]}),
    (EventKind.PLAN_DELTA, 1, 9, {"delta_id": 41, "nested": {"z": 1, "a": {"b": []}}}),
    (EventKind.RUN_STOP, 1, 0, {}),
]


def write_ledger(
    directory: Path,
    events: list[tuple[EventKind, int, int, dict[str, Any]]] = EVENTS,
    *,
    checkpoint_every: int = 3,
    final_checkpoint: bool = True,
) -> None:
    with LedgerWriter(directory, StepClock(1_700_000_000_000_001_000, 1_000)) as w:
        for i, (kind, actor, subject, details) in enumerate(events):
            assert w.append(kind, actor, subject, details) == i
            if (i + 1) % checkpoint_every == 0:
                w.checkpoint("coordinator", KEYS["coordinator"], VENUES)
        if final_checkpoint:
            w.checkpoint("coordinator", KEYS["coordinator"], VENUES)


def ref_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH over leaf data, written out here independently of the module."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def split_records(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, entry bytes) of every record, parsed independently of the module."""
    out, off = [], FILE_HEADER
    while off < len(data):
        n = int.from_bytes(data[off : off + 4], "little")
        out.append((off, data[off + 4 : off + 4 + n]))
        off += 4 + n
    assert off == len(data)
    return out


def join_records(header: bytes, entries: list[bytes]) -> bytes:
    return header + b"".join(len(e).to_bytes(4, "little") + e for e in entries)


def refusal(directory: Path, **kwargs: Any) -> LedgerError:
    with pytest.raises(LedgerError) as info:
        verify_ledger(directory, TRUSTED, **kwargs)
    return info.value


def checkpoint_lines(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (directory / CHECKPOINTS_FILE).read_text().splitlines()]


def write_checkpoint_lines(directory: Path, lines: list[dict[str, Any]]) -> None:
    (directory / CHECKPOINTS_FILE).write_text("".join(json.dumps(x) + "\n" for x in lines))


# --- format and round trip ---------------------------------------------------------------


def test_event_kind_numbering_is_fixed() -> None:
    assert {k.name: int(k) for k in EventKind} == {
        "RUN_START": 1,
        "RUN_STOP": 2,
        "CONFIG_HASH": 3,
        "ROLE_JOINED": 4,
        "ROLE_LEFT": 5,
        "CREDENTIAL_ISSUED": 6,
        "CREDENTIAL_ROTATED": 7,
        "CREDENTIAL_REFUSED": 8,
        "CREDENTIAL_EXPIRED": 9,
        "CREDENTIAL_REVOKED": 10,
        "MESSAGE_REFUSED": 11,
        "BUDGET_SPENT": 12,
        "BUDGET_REFUSED": 13,
        "PLAN_DELTA": 14,
        "AGGREGATION_ABORTED": 15,
    }


def test_canonical_json() -> None:
    assert (
        canonical_details({"b": 1, "a": [1.5, None, "é"]}) == '{"a":[1.5,null,"é"],"b":1}'.encode()
    )
    for bad in ({"x": float("nan")}, {"x": (1, 2)}, {1: "int key"}, {"x": {1, 2}}, [1], {"x": b""}):
        with pytest.raises(LedgerError) as info:
            canonical_details(bad)  # type: ignore[arg-type]
        assert info.value.reason == "bad_details"


def test_round_trip_layout_chain_and_root(tmp_path: Path) -> None:
    write_ledger(tmp_path)
    result = verify_ledger(tmp_path, TRUSTED, require_cosigners=["venue-a", "venue-b"])
    data = (tmp_path / LEDGER_FILE).read_bytes()
    assert data[:8] == b"ARBSLEDG"
    assert int.from_bytes(data[8:10], "little") == 1
    assert int.from_bytes(data[10:12], "little") == SCHEMA.id

    records = split_records(data)
    assert len(records) == len(EVENTS)
    prev = bytes(32)
    clock = StepClock(1_700_000_000_000_001_000, 1_000)
    for seq, ((_offset, raw), (kind, actor, subject, details)) in enumerate(
        zip(records, EVENTS, strict=True)
    ):
        head = np.frombuffer(raw[:96], dtype=SCHEMA.header_dtype)[0]
        payload = raw[96:]
        assert SCHEMA.header.size == 96
        assert int(head["event_kind"]) == kind
        assert (int(head["actor"]), int(head["subject"])) == (actor, subject)
        assert int(head["seq"]) == seq
        assert int(head["ts_ns"]) == clock.now_ns()  # one clock read per append
        assert int(head["_pad0"]) == 0 and int(head["_pad1"]) == 0
        assert bytes(head["prev_hash"]) == prev
        assert bytes(head["payload_hash"]) == hashlib.sha256(payload).digest()
        assert payload == json.dumps(
            details, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        prev = hashlib.sha256(raw).digest()
        if seq in (2, 5):
            clock.now_ns()  # the checkpoint after entries 3 and 6 read the clock once

    entries = read_entries(tmp_path)
    assert [e.details for e in entries] == [e[3] for e in EVENTS]
    assert [e.kind for e in entries] == [e[0] for e in EVENTS]
    assert [e.offset for e in entries] == [r[0] for r in records]

    root = ref_mth([r[1] for r in records])
    assert result.events == 8
    assert result.size == 8
    assert result.checkpoints == 3
    assert result.root_hex == root.hex()
    assert result.kinds["RUN_START"] == 1 and sum(result.kinds.values()) == 8
    assert result.final_cosigners == ("venue-a", "venue-b")

    lines = checkpoint_lines(tmp_path)
    assert [x["size"] for x in lines] == [3, 6, 8]
    for line in lines:
        size = line["size"]
        assert line["root"] == ref_mth([r[1] for r in records[:size]]).hex()
        message = b"arbsphere-ledger-checkpoint-v1\n" + size.to_bytes(8, "little") + root[:0]
        message += bytes.fromhex(line["root"])
        assert checkpoint_message(size, bytes.fromhex(line["root"])) == message
        TRUSTED[line["signer"]].verify(bytes.fromhex(line["signature"]), message)
        for c in line["cosignatures"]:
            TRUSTED[c["signer"]].verify(bytes.fromhex(c["signature"]), message)
    # anchored to the manifest's root
    verify_ledger(tmp_path, TRUSTED, expected_size=8, expected_root=root)
    assert refusal(tmp_path, expected_root=bytes(32)).reason == "anchor_mismatch"
    assert refusal(tmp_path, expected_size=7).reason == "anchor_mismatch"


def test_refusals_are_security_errors(tmp_path: Path) -> None:
    write_ledger(tmp_path, final_checkpoint=False)
    with pytest.raises(SecurityError):
        verify_ledger(tmp_path, TRUSTED)


# --- entry damage ----------------------------------------------------------------------------


def _expected(field: str, index: int, last: int) -> tuple[str, int | None]:
    """Where an edit of ``field`` of entry ``index`` is detected: ``field`` bytes that no check
    of the entry itself covers show up as a chain break at the next entry, or for the last
    entry as a checkpoint root mismatch."""
    if field in ("_pad0", "_pad1"):
        return "nonzero_padding", index
    if field == "seq":
        return "seq", index
    if field == "prev_hash":
        return "chain", index
    if field in ("payload_hash", "payload"):
        return "payload_hash", index
    return ("chain", index + 1) if index < last else ("checkpoint_root", None)


@pytest.mark.parametrize("index", [0, 3, 7])
def test_every_byte_edit_is_detected_at_the_right_entry(tmp_path: Path, index: int) -> None:
    write_ledger(tmp_path)
    path = tmp_path / LEDGER_FILE
    original = path.read_bytes()
    offset, raw = split_records(original)[index]
    fields = [(f.name, f.offset, f.size) for f in SCHEMA.header.fields]
    fields.append(("payload", 96, len(raw) - 96))
    last = len(EVENTS) - 1
    for name, start, size in fields:
        for pos in range(start, start + size):
            data = bytearray(original)
            data[offset + 4 + pos] ^= 0x01 if name != "event_kind" else 0x40
            path.write_bytes(bytes(data))
            err = refusal(tmp_path)
            if name == "event_kind":  # 0x40 in either byte: no such kind
                assert (err.reason, err.index) == ("unknown_kind", index), pos
                continue
            assert (err.reason, err.index) == _expected(name, index, last), (name, pos, err)
    # a valid other kind: not covered by the entry's own checks
    data = bytearray(original)
    data[offset + 4] = int(EventKind.ROLE_LEFT)
    path.write_bytes(bytes(data))
    assert (refusal(tmp_path).reason, refusal(tmp_path).index) == _expected("kind", index, last)


def test_length_prefix_edits_are_detected_at_the_entry(tmp_path: Path) -> None:
    write_ledger(tmp_path)
    path = tmp_path / LEDGER_FILE
    original = path.read_bytes()
    offset, _ = split_records(original)[4]
    for pos in range(4):
        for bit in range(8):
            data = bytearray(original)
            data[offset + pos] ^= 1 << bit
            path.write_bytes(bytes(data))
            err = refusal(tmp_path)
            assert err.index == 4, (pos, bit, err)
            assert err.reason in {"bad_length", "truncated", "payload_hash", "payload"}


def test_file_header_damage(tmp_path: Path) -> None:
    write_ledger(tmp_path)
    path = tmp_path / LEDGER_FILE
    original = path.read_bytes()
    for pos in range(FILE_HEADER):
        data = bytearray(original)
        data[pos] ^= 0x10
        path.write_bytes(bytes(data))
        assert refusal(tmp_path).reason in {"file_header", "file_version"}, pos
    path.write_bytes(original[:10])
    assert refusal(tmp_path).reason == "truncated"


def test_truncated_tail_names_entry_and_offset(tmp_path: Path) -> None:
    write_ledger(tmp_path)
    path = tmp_path / LEDGER_FILE
    original = path.read_bytes()
    offset, _ = split_records(original)[-1]
    for cut in range(offset + 1, len(original)):
        path.write_bytes(original[:cut])
        err = refusal(tmp_path)
        assert (err.reason, err.index) == ("truncated", 7), cut
        assert f"byte offset {offset}" in str(err)
    # a cut at the record boundary leaves a shorter, well-formed file: the checkpoint says more
    path.write_bytes(original[:offset])
    assert refusal(tmp_path).reason == "checkpoint_size"


def test_removed_reordered_inserted_entries(tmp_path: Path) -> None:
    write_ledger(tmp_path)
    path = tmp_path / LEDGER_FILE
    original = path.read_bytes()
    head, entries = original[:FILE_HEADER], [r[1] for r in split_records(original)]
    cases = {
        "removed 3": (entries[:3] + entries[4:], ("seq", 3)),
        "removed 0": (entries[1:], ("seq", 0)),
        "swapped 2,3": ([*entries[:2], entries[3], entries[2], *entries[4:]], ("seq", 2)),
        "duplicated 5": ([*entries[:6], entries[5], *entries[6:]], ("seq", 6)),
        "appended copy": ([*entries, entries[-1]], ("seq", 8)),
    }
    for desc, (edited, expected) in cases.items():
        path.write_bytes(join_records(head, edited))
        err = refusal(tmp_path)
        assert (err.reason, err.index) == expected, desc


def test_rewritten_chain_is_caught_by_the_signed_checkpoint(tmp_path: Path) -> None:
    """A forger who rebuilds a whole valid chain (one detail changed) cannot match the
    signed root; re-signing needs a trusted key."""
    write_ledger(tmp_path)
    forged_events = list(EVENTS)
    forged_events[4] = (EventKind.MESSAGE_REFUSED, 1, 3, {"reason": "tag", "nonce": 2**63})
    forged = tmp_path / "forged"
    write_ledger(forged, forged_events)
    (tmp_path / LEDGER_FILE).write_bytes((forged / LEDGER_FILE).read_bytes())
    read_entries(tmp_path)  # the chain itself is intact
    assert refusal(tmp_path).reason == "checkpoint_root"
    # the forger's own checkpoints carry the trusted names but other keys' signatures
    lines = checkpoint_lines(forged)
    fake = KEYS["mallory"]
    for line in lines:
        msg = checkpoint_message(line["size"], bytes.fromhex(line["root"]))
        line["signature"] = fake.sign(msg).hex()
    write_checkpoint_lines(tmp_path, lines)
    assert refusal(tmp_path).reason == "bad_signature"
    for line in lines:
        line["signer"] = "mallory"
    write_checkpoint_lines(tmp_path, lines)
    assert refusal(tmp_path).reason == "unknown_signer"


def test_unknown_kind_and_noncanonical_payload(tmp_path: Path) -> None:
    write_ledger(tmp_path)
    path = tmp_path / LEDGER_FILE
    original = path.read_bytes()
    head, entries = original[:FILE_HEADER], [r[1] for r in split_records(original)]

    def rebuilt(i: int, raw: bytes) -> bytes:
        """Entries with entry ``i`` replaced and the chain and payload hashes redone."""
        out, prev = [], bytes(32)
        for j, e in enumerate(entries):
            e = raw if j == i else e
            payload = e[96:]
            e = e[:32] + prev + hashlib.sha256(payload).digest() + payload
            out.append(e)
            prev = hashlib.sha256(e).digest()
        return join_records(head, out)

    e2 = entries[2]
    path.write_bytes(rebuilt(2, (99).to_bytes(2, "little") + e2[2:]))
    assert (refusal(tmp_path).reason, refusal(tmp_path).index) == ("unknown_kind", 2)
    for bad in (b'{"role": "venue"}', b'{"b":1,"a":2}', b'{"a":1e5}', b"[1]", b"\xff", b"{"):
        path.write_bytes(rebuilt(2, e2[:96] + bad))
        err = refusal(tmp_path)
        assert (err.reason, err.index) in {("non_canonical", 2), ("payload", 2)}, bad


# --- checkpoint damage -----------------------------------------------------------------------


def test_checkpoint_refusals(tmp_path: Path) -> None:
    write_ledger(tmp_path)
    good = checkpoint_lines(tmp_path)

    def edited(k: int, **changes: Any) -> str:
        lines = json.loads(json.dumps(good))
        lines[k].update(changes)
        write_checkpoint_lines(tmp_path, lines)
        return refusal(tmp_path, require_cosigners=["venue-a", "venue-b"]).reason

    root = bytes.fromhex(good[1]["root"])
    wrong_root = bytes([root[0] ^ 1]) + root[1:]
    assert edited(1, root=wrong_root.hex()) == "checkpoint_root"
    assert edited(1, size=5) == "checkpoint_root"
    assert edited(1, size=7) == "checkpoint_root"
    assert edited(2, size=9) == "checkpoint_size"
    sig = bytes.fromhex(good[2]["signature"])
    assert edited(2, signature=(bytes([sig[0] ^ 0x80]) + sig[1:]).hex()) == "bad_signature"
    assert edited(2, signature=(sig[:63] + bytes([sig[63] ^ 1])).hex()) == "bad_signature"
    other = KEYS["venue-a"].sign(checkpoint_message(8, bytes.fromhex(good[2]["root"])))
    assert edited(2, signature=other.hex()) == "bad_signature"
    assert edited(0, signer="mallory") == "unknown_signer"
    assert edited(0, signer="venue-a") == "bad_signature"
    a_sig = good[2]["cosignatures"][0]
    assert edited(2, cosignatures=[{"signer": "venue-a", "signature": "00" * 64}]) == (
        "bad_signature"
    )
    assert edited(2, cosignatures=[a_sig, a_sig]) == "duplicate_cosigner"
    assert edited(2, cosignatures=[a_sig]) == "missing_cosigner"
    assert edited(2, cosignatures=[{**a_sig, "signer": "mallory"}]) == "unknown_signer"
    assert edited(2, root="zz" * 32) == "checkpoint_format"
    assert edited(2, signature="ab") == "checkpoint_format"
    assert edited(2, size=-1) == "checkpoint_format"
    assert edited(2, size=True) == "checkpoint_format"
    assert edited(2, extra=1) == "checkpoint_format"

    # order: a checkpoint below its predecessor
    write_checkpoint_lines(tmp_path, [good[1], good[0], good[2]])
    assert refusal(tmp_path).reason == "checkpoint_order"
    # the last checkpoint dropped: entries after the (new) last checkpoint
    write_checkpoint_lines(tmp_path, good[:2])
    err = refusal(tmp_path)
    assert (err.reason, err.index) == ("uncovered_entries", 6)
    # no checkpoints at all
    write_checkpoint_lines(tmp_path, [])
    assert refusal(tmp_path).reason == "no_checkpoint"
    (tmp_path / CHECKPOINTS_FILE).unlink()
    assert refusal(tmp_path).reason == "no_checkpoint"
    # a torn last line
    text = "".join(json.dumps(x) + "\n" for x in good)
    (tmp_path / CHECKPOINTS_FILE).write_text(text[:-10])
    assert refusal(tmp_path).reason == "checkpoint_format"
    (tmp_path / CHECKPOINTS_FILE).write_bytes(text.encode()[:-3] + b"\xff\n")
    assert refusal(tmp_path).reason == "checkpoint_format"
    # and back to good
    (tmp_path / CHECKPOINTS_FILE).write_text(text)
    verify_ledger(tmp_path, TRUSTED, require_cosigners=["venue-a", "venue-b"])


def test_required_cosigner_missing_and_untrusted_signer(tmp_path: Path) -> None:
    with LedgerWriter(tmp_path, StepClock(1_700_000_000_000_001_000, 1_000)) as w:
        w.append(EventKind.RUN_START, 1, 0, {"run": 1})
        w.checkpoint("coordinator", KEYS["coordinator"], {"venue-a": KEYS["venue-a"]})
    verify_ledger(tmp_path, TRUSTED, require_cosigners=["venue-a"])
    err = refusal(tmp_path, require_cosigners=["venue-a", "venue-b"])
    assert err.reason == "missing_cosigner" and "venue-b" in str(err)
    untrusted = {"coordinator": TRUSTED["coordinator"]}
    with pytest.raises(LedgerError) as info:
        verify_ledger(tmp_path, untrusted)
    assert info.value.reason == "unknown_signer"


def test_entries_after_last_checkpoint_are_refused(tmp_path: Path) -> None:
    write_ledger(tmp_path, checkpoint_every=5, final_checkpoint=False)
    err = refusal(tmp_path)
    assert (err.reason, err.index) == ("uncovered_entries", 5)


# --- the writer ------------------------------------------------------------------------------


def test_concurrent_appends_make_a_valid_ledger(tmp_path: Path) -> None:
    n_threads, per_thread = 8, 150
    seqs: list[list[int]] = [[] for _ in range(n_threads)]
    with LedgerWriter(tmp_path, StepClock(1_700_000_000_000_001_000, 1_000)) as w:
        barrier = threading.Barrier(n_threads)

        def worker(t: int) -> None:
            barrier.wait()
            for j in range(per_thread):
                seqs[t].append(w.append(EventKind.BUDGET_SPENT, t, j, {"t": t, "j": j}))
                if t == 0 and j % 50 == 49:
                    w.checkpoint("coordinator", KEYS["coordinator"])

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        w.checkpoint("coordinator", KEYS["coordinator"], VENUES)
    total = n_threads * per_thread
    assert sorted(s for per in seqs for s in per) == list(range(total))
    result = verify_ledger(tmp_path, TRUSTED, require_cosigners=VENUES)
    assert result.events == total
    assert {k: v for k, v in result.kinds.items() if v} == {"BUDGET_SPENT": total}
    assert list(result.kinds) == [k.name for k in EventKind]
    entries = read_entries(tmp_path)
    assert {(e.details["t"], e.details["j"]) for e in entries} == {
        (t, j) for t in range(n_threads) for j in range(per_thread)
    }
    for t in range(n_threads):  # each thread's own appends keep their order
        assert [entries[s].details["j"] for s in seqs[t]] == list(range(per_thread))
    assert all(a.ts_ns < b.ts_ns for a, b in itertools.pairwise(entries))


def test_reopen_continues_without_losing_entries(tmp_path: Path) -> None:
    clock = StepClock(1_700_000_000_000_001_000, 1_000)
    with LedgerWriter(tmp_path, clock) as w:
        for i in range(5):
            w.append(EventKind.ROLE_JOINED, i, 0, {"i": i})
        w.checkpoint("coordinator", KEYS["coordinator"])
        w.append(EventKind.ROLE_LEFT, 0, 0, {"after": "checkpoint"})  # not yet checkpointed
    before = (tmp_path / LEDGER_FILE).read_bytes()
    with LedgerWriter(tmp_path, clock) as w:
        assert w.size == 6
        assert len(w.checkpoints) == 1
        assert w.append(EventKind.RUN_STOP, 0, 0, {}) == 6
        w.checkpoint("coordinator", KEYS["coordinator"], VENUES)
    after = (tmp_path / LEDGER_FILE).read_bytes()
    assert after.startswith(before)  # nothing rewritten
    result = verify_ledger(tmp_path, TRUSTED, require_cosigners=VENUES)
    assert (result.events, result.checkpoints) == (7, 2)
    assert [e.details for e in read_entries(tmp_path)][5:] == [{"after": "checkpoint"}, {}]


def test_reopen_refuses_damaged_ledger(tmp_path: Path) -> None:
    with LedgerWriter(tmp_path, StepClock(1_700_000_000_000_001_000, 1_000)) as w:
        for i in range(3):
            w.append(EventKind.ROLE_JOINED, i, 0, {"i": i})
        w.checkpoint("coordinator", KEYS["coordinator"])
    path = tmp_path / LEDGER_FILE
    data = path.read_bytes()
    path.write_bytes(data[:-5])  # torn tail: refused, not repaired
    with pytest.raises(LedgerError) as info:
        LedgerWriter(tmp_path, StepClock(1_700_000_000_000_001_000, 1_000))
    assert (info.value.reason, info.value.index) == ("truncated", 2)
    assert path.read_bytes() == data[:-5]
    path.write_bytes(data)
    cps = checkpoint_lines(tmp_path)
    cps[0]["root"] = "00" * 32
    write_checkpoint_lines(tmp_path, cps)
    with pytest.raises(LedgerError) as info:
        LedgerWriter(tmp_path, StepClock(1_700_000_000_000_001_000, 1_000))
    assert info.value.reason == "checkpoint_root"


def test_one_writer_at_a_time_and_no_use_after_close(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path, StepClock(1_700_000_000_000_001_000, 1_000))
    with pytest.raises(LedgerError) as info:
        LedgerWriter(tmp_path, StepClock(1_700_000_000_000_001_000, 1_000))
    assert info.value.reason == "locked"
    w.append(EventKind.RUN_START, 0, 0, {})
    w.close()
    w.close()  # idempotent
    with pytest.raises(LedgerError) as info:
        w.append(EventKind.RUN_STOP, 0, 0, {})
    assert info.value.reason == "closed"
    with pytest.raises(LedgerError):
        w.checkpoint("coordinator", KEYS["coordinator"])
    LedgerWriter(
        tmp_path, StepClock(1_700_000_000_000_001_000, 1_000)
    ).close()  # the lock was released


def test_append_refuses_bad_arguments(tmp_path: Path) -> None:
    with LedgerWriter(tmp_path, StepClock(1_700_000_000_000_001_000, 1_000)) as w:
        for args in [
            (EventKind.RUN_START, -1, 0, {}),
            (EventKind.RUN_START, 0, 2**32, {}),
            (99, 0, 0, {}),
            (EventKind.RUN_START, 0, 0, {"x": float("inf")}),
            (EventKind.RUN_START, 0, 0, {"x": "\ud800"}),
            (EventKind.RUN_START, 0, 0, {"x": "y" * (1 << 20)}),
        ]:
            with pytest.raises(LedgerError):
                w.append(*args)  # type: ignore[arg-type]
        assert w.size == 0
        with pytest.raises(LedgerError) as info:
            w.checkpoint("venue-a", KEYS["coordinator"], {"venue-a": KEYS["venue-a"]})
        assert info.value.reason == "bad_signer"


def test_accepted_entries_survive_a_crash(tmp_path: Path) -> None:
    """A writer process that dies without close (os._exit) loses no accepted entry."""
    script = (
        "import os, sys\n"
        "from arbsphere.security.ledger import LedgerWriter, EventKind\n"
        "class C:\n"
        "    t = 0\n"
        "    def now_ns(self):\n"
        "        self.t += 1\n"
        "        return self.t\n"
        "w = LedgerWriter(sys.argv[1], C())\n"
        "for i in range(200):\n"
        "    w.append(EventKind.PLAN_DELTA, 1, i, {'i': i})\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=60)
    with LedgerWriter(tmp_path, StepClock(1_700_000_000_000_001_000, 1_000)) as w:
        assert w.size == 200
        w.checkpoint("coordinator", KEYS["coordinator"])
    assert verify_ledger(tmp_path, TRUSTED).events == 200
    assert [e.details["i"] for e in read_entries(tmp_path)] == list(range(200))


def test_cosignature_added_later(tmp_path: Path) -> None:
    with LedgerWriter(
        tmp_path, StepClock(1_700_000_000_000_001_000, 1_000), sync_every_append=True
    ) as w:
        for i in range(4):
            w.append(EventKind.CREDENTIAL_ROTATED, 1, i, {"i": i})
        cp = w.checkpoint("coordinator", KEYS["coordinator"])
        # a venue receives (size, root) over the wire and signs the documented message
        msg = checkpoint_message(cp.size, cp.root)
        a_sig = KEYS["venue-a"].sign(msg)
        with pytest.raises(LedgerError) as info:
            w.add_cosignature(4, "venue-b", a_sig, public_key=TRUSTED["venue-b"])
        assert info.value.reason == "bad_signature"
        with pytest.raises(LedgerError) as info:
            w.add_cosignature(3, "venue-a", a_sig)
        assert info.value.reason == "checkpoint_size"
        with pytest.raises(LedgerError) as info:
            w.add_cosignature(4, "coordinator", a_sig)
        assert info.value.reason == "duplicate_cosigner"
        updated = w.add_cosignature(4, "venue-a", a_sig, public_key=TRUSTED["venue-a"])
        assert [c.signer for c in updated.cosignatures] == ["venue-a"]
        err = refusal(tmp_path, require_cosigners=["venue-a", "venue-b"])
        assert err.reason == "missing_cosigner"
        # without a key the writer records it; the verifier still refuses a bad one
        w.add_cosignature(4, "venue-b", KEYS["mallory"].sign(msg))
        assert refusal(tmp_path).reason == "bad_signature"
    lines = checkpoint_lines(tmp_path)
    assert len(lines) == 1 and len(lines[0]["cosignatures"]) == 2
    lines[0]["cosignatures"][1]["signature"] = KEYS["venue-b"].sign(msg).hex()
    write_checkpoint_lines(tmp_path, lines)
    verify_ledger(tmp_path, TRUSTED, require_cosigners=["venue-a", "venue-b"])


def test_equal_size_checkpoints_and_empty_ledger(tmp_path: Path) -> None:
    with LedgerWriter(tmp_path, StepClock(1_700_000_000_000_001_000, 1_000)) as w:
        w.checkpoint("coordinator", KEYS["coordinator"])  # empty tree
        w.append(EventKind.RUN_START, 0, 0, {})
        w.checkpoint("coordinator", KEYS["coordinator"])
        w.checkpoint("coordinator", KEYS["coordinator"], VENUES)  # same size again
    result = verify_ledger(tmp_path, TRUSTED, require_cosigners=VENUES)
    assert (result.events, result.checkpoints, result.size) == (1, 3, 1)
    lines = checkpoint_lines(tmp_path)
    assert lines[0]["root"] == hashlib.sha256(b"").hexdigest()
    assert lines[1]["root"] == lines[2]["root"]

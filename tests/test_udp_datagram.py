"""UDP datagrams: pack/unpack, malformed datagrams by problem and offset, gap detection."""

from __future__ import annotations

import struct

import pytest

from arbsphere.errors import DatagramError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.udp_datagram import (
    HEADER_SIZE,
    GapDetector,
    pack_datagram,
    session_id,
    unpack_datagram,
)

SESSION = b"SESSION-01"


def _tick(seq: int) -> bytes:
    rec = dm.new_record(dm.MSG_TICK, 1)
    rec["device_seq"] = seq
    return dm.encode(rec)


def _hb(seq: int) -> bytes:
    rec = dm.new_record(dm.MSG_HEARTBEAT, 1)
    rec["device_seq"] = seq
    return dm.encode(rec)


def test_pack_unpack_round_trip() -> None:
    msgs = [_tick(5), _hb(6), _tick(7)]
    raw = pack_datagram(SESSION, 5, msgs)
    assert len(raw) == HEADER_SIZE + 72 + 24 + 72
    assert raw[:24] == struct.pack("<10sH4xQ", SESSION, 3, 5)
    dg = unpack_datagram(raw)
    assert dg.session == SESSION and dg.sequence == 5
    assert dg.count == 3 and dg.next_sequence == 8
    assert [bytes(m) for m in dg.messages] == msgs
    assert unpack_datagram(memoryview(raw)).count == 3


def test_heartbeat_datagram() -> None:
    raw = pack_datagram(SESSION, 42, [])
    assert len(raw) == HEADER_SIZE
    dg = unpack_datagram(raw)
    assert dg.count == 0 and dg.sequence == 42


def test_session_id_and_pack_validation() -> None:
    assert session_id("A") == b"A         "
    assert session_id(b"0123456789") == b"0123456789"
    with pytest.raises(ValueError, match="longer than 10"):
        session_id("ELEVEN-CHAR")
    with pytest.raises(ValueError, match="exactly 10 bytes, got 3"):
        pack_datagram(b"abc", 0, [])
    with pytest.raises(ValueError, match="sequence -1"):
        pack_datagram(SESSION, -1, [])
    with pytest.raises(ValueError, match="message 1: header length 72 but 71 bytes"):
        pack_datagram(SESSION, 0, [_tick(0), _tick(1)[:-1]])
    with pytest.raises(ValueError, match="shorter than a header"):
        pack_datagram(SESSION, 0, [b"\x01\x01"])


def _length_at(raw: bytes, pos: int, value: int) -> bytes:
    return raw[: pos + 2] + value.to_bytes(2, "little") + raw[pos + 4 :]


@pytest.mark.parametrize(
    ("make", "problem", "offset"),
    [
        (lambda r: r[:23], "short", 23),
        (lambda r: b"", "short", 0),
        # count says 3, only 2 messages present
        (lambda r: r[:10] + (3).to_bytes(2, "little") + r[12:], "count_mismatch", 10),
        # count says 1 but 2 messages present
        (lambda r: r[:10] + (1).to_bytes(2, "little") + r[12:], "trailing_bytes", 24 + 72),
        (lambda r: r + b"\x00\x00", "trailing_bytes", 24 + 72 + 24),
        # second message truncated inside its header / its body
        (lambda r: r[: 24 + 72 + 5], "short", 24 + 72 + 5),
        (lambda r: r[:-1], "bad_length", 24 + 72 + 2),
        # message lengths that cannot be right
        (lambda r: _length_at(r, 24, 0), "bad_length", 26),
        (lambda r: _length_at(r, 24, 7), "bad_length", 26),
        (lambda r: _length_at(r, 24, 500), "bad_length", 26),
    ],
)
def test_malformed_datagrams(make, problem: str, offset: int) -> None:  # type: ignore[no-untyped-def]
    raw = pack_datagram(SESSION, 0, [_tick(0), _hb(1)])
    with pytest.raises(DatagramError) as info:
        unpack_datagram(make(raw))
    assert info.value.problem == problem
    assert info.value.offset == offset


def test_gap_detector_in_order_and_gap() -> None:
    g = GapDetector()
    assert g.observe(SESSION, 100, 2) == 0  # first datagram sets the start
    assert g.observe(SESSION, 102, 3) == 0
    assert g.observe(SESSION, 110, 1) == 5  # 105..109 lost
    assert g.observe(SESSION, 111, 0) == 0  # heartbeat announcing 111: no loss
    assert g.observe(SESSION, 114, 0) == 3  # heartbeat reveals 111..113 lost
    assert g.counters() == {
        "datagrams": 5,
        "messages": 6,
        "gaps": 2,
        "missing": 8,
        "recovered": 0,
        "duplicates": 0,
        "reordered": 0,
        "session_changes": 0,
    }


def test_gap_detector_reorder_and_duplicates() -> None:
    g = GapDetector(first_sequence=0)
    assert g.observe(SESSION, 0, 2) == 0
    assert g.observe(SESSION, 4, 2) == 2  # 2, 3 missing
    assert g.observe(SESSION, 3, 1) == 0  # late 3: reordered
    assert g.observe(SESSION, 3, 1) == 0  # again: duplicate
    assert g.observe(SESSION, 0, 2) == 0  # duplicate
    assert (g.gaps, g.missing, g.recovered, g.reordered, g.duplicates) == (1, 1, 1, 1, 2)
    assert g.observe(SESSION, 2, 1) == 0  # the last hole filled
    assert (g.missing, g.recovered, g.reordered) == (0, 2, 2)
    assert g.observe(SESSION, 6, 1) == 0  # back in order


def test_gap_detector_first_sequence_counts_initial_loss() -> None:
    g = GapDetector(first_sequence=0)
    assert g.observe(SESSION, 3, 1) == 3
    assert g.gaps == 1 and g.missing == 3


def test_gap_detector_session_change() -> None:
    g = GapDetector()
    g.observe(SESSION, 0, 5)
    assert g.observe(b"SESSION-02", 0, 1) == 0  # device restarted: new session from 0
    assert g.session_changes == 1 and g.gaps == 0 and g.duplicates == 0
    assert g.observe(b"SESSION-02", 1, 1) == 0
    assert g.observe(SESSION, 5, 1) == 0  # a late datagram of the old session, in its order
    assert g.session_changes == 2 and g.gaps == 0

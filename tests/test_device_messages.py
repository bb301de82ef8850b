"""Device messages: layouts, round trips, malformed input by problem tag and offset."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import pytest

from arbsphere.errors import DecodeError, LayoutError
from arbsphere.firmware_interfaces import messages as dm

ROOT = Path(__file__).resolve().parents[1]
ALL_TYPES = (
    dm.MSG_TICK, dm.MSG_ORDER, dm.MSG_ACK, dm.MSG_HEARTBEAT,
    dm.MSG_SYNC, dm.MSG_FOLLOW_UP, dm.MSG_DELAY_REQ, dm.MSG_DELAY_RESP,
)  # fmt: skip


def _tick(seq: int = 9, device_id: int = 3) -> np.ndarray:
    rec = dm.new_record(dm.MSG_TICK, device_id)
    rec["venue_id"], rec["asset_id"], rec["device_seq"] = 1, 0, seq
    rec["intended_send_ns"], rec["send_ns"] = 1_000, 1_250
    rec["bid_px"], rec["ask_px"] = 99 * dm.PRICE_SCALE, 101 * dm.PRICE_SCALE
    rec["bid_size"], rec["ask_size"] = 5, 6
    return rec


def test_declared_sizes_and_constants() -> None:
    assert dm.PRICE_SCALE == 100_000_000
    assert dm.DEVICE_MESSAGE_VERSION == 1
    assert (dm.MSG_TICK, dm.MSG_ORDER, dm.MSG_ACK, dm.MSG_HEARTBEAT) == (1, 2, 3, 4)
    assert (dm.MSG_SYNC, dm.MSG_FOLLOW_UP, dm.MSG_DELAY_REQ, dm.MSG_DELAY_RESP) == (16, 17, 18, 19)
    assert (dm.ACK_STATUS_ACK, dm.ACK_STATUS_FILL, dm.ACK_STATUS_PARTIAL, dm.ACK_STATUS_REJECT) == (
        1,
        2,
        3,
        4,
    )
    assert dm.HEADER_DTYPE.itemsize == 8
    sizes = {t: dm.LAYOUTS[t].size for t in ALL_TYPES}
    assert sizes == {1: 72, 2: 56, 3: 56, 4: 24, 16: 24, 17: 24, 18: 32, 19: 24}
    assert dm.TICK_DTYPE.itemsize == 72 and dm.ORDER_DTYPE.itemsize == 56
    assert dm.ACK_DTYPE.itemsize == 56 and dm.HEARTBEAT_DTYPE.itemsize == 24
    for t in ALL_TYPES:
        names = dm.LAYOUTS[t].dtype.names
        assert names is not None and names[:4] == dm.HEADER_DTYPE.names
    # offsets from the field list, written out by hand
    expected = {
        (dm.MSG_TICK, "device_seq"): 16,
        (dm.MSG_TICK, "bid_px"): 40,
        (dm.MSG_TICK, "ask_size"): 64,
        (dm.MSG_ORDER, "side"): 12,
        (dm.MSG_ORDER, "order_id"): 16,
        (dm.MSG_ORDER, "rig_send_ns"): 48,
        (dm.MSG_ACK, "status"): 8,
        (dm.MSG_ACK, "order_id"): 16,
        (dm.MSG_ACK, "device_tx_ns"): 48,
        (dm.MSG_HEARTBEAT, "device_time_ns"): 16,
    }
    for (t, name), offset in expected.items():
        assert dm.LAYOUTS[t].field(name).offset == offset, (t, name)


def test_new_record_fills_header() -> None:
    for t in ALL_TYPES:
        rec = dm.new_record(t, 0xDEADBEEF)
        assert rec.shape == (1,)
        assert int(rec["msg_type"][0]) == t
        assert int(rec["version"][0]) == 1
        assert int(rec["length"][0]) == dm.LAYOUTS[t].size
        assert int(rec["device_id"][0]) == 0xDEADBEEF
    with pytest.raises(ValueError, match="msg_type 20 has no layout"):
        dm.new_record(20, 1)
    with pytest.raises(ValueError, match="device_id -1"):
        dm.new_record(dm.MSG_TICK, -1)


def test_round_trip_every_type_random_bodies() -> None:
    rng = np.random.default_rng(3)
    for t in ALL_TYPES:
        for _ in range(20):
            rec = np.frombuffer(rng.bytes(dm.LAYOUTS[t].size), dm.LAYOUTS[t].dtype).copy()
            hdr = dm.new_record(t, int(rng.integers(0, 2**32)))
            for f in ("msg_type", "version", "length", "device_id"):
                rec[f] = hdr[f]
            raw = dm.encode(rec)
            assert len(raw) == dm.LAYOUTS[t].size
            mtype, back = dm.decode(raw)
            assert mtype == t and back.tobytes() == raw
            assert dm.encode(back[0]) == raw  # np.void accepted too


def test_encode_rejects_inconsistent_header() -> None:
    rec = _tick()
    rec["length"] = 64
    with pytest.raises(ValueError, match="header length is 64, expected 72"):
        dm.encode(rec)
    rec = _tick()
    rec["msg_type"] = dm.MSG_ORDER
    with pytest.raises(ValueError, match="header msg_type is 2, expected 1"):
        dm.encode(rec)
    with pytest.raises(ValueError, match="not a device message dtype"):
        dm.encode(np.zeros(1, dm.HEADER_DTYPE))
    with pytest.raises(ValueError, match="one record"):
        dm.encode(np.repeat(_tick(), 2))


def _set(pos: int, value: bytes) -> Callable[[bytes], bytes]:
    return lambda b: b[:pos] + value + b[pos + len(value) :]


@pytest.mark.parametrize("base", [0, 5])
@pytest.mark.parametrize(
    ("mutate", "problem", "offset"),
    [
        (lambda b: b[:0], "short", 0),
        (lambda b: b[:7], "short", 7),
        (lambda b: b[:71], "short", 71),
        (_set(0, b"\x63"), "unknown_type", 0),
        (_set(0, b"\x00"), "unknown_type", 0),
        (_set(0, b"\x14"), "reserved_type", 0),
        # a TICK header re-typed as SYNC: a SYNC's length is 24, not 72
        (_set(0, b"\x10"), "bad_length", 2),
        (_set(1, b"\x02"), "bad_version", 1),
        (_set(2, (64).to_bytes(2, "little")), "bad_length", 2),
        (_set(2, (80).to_bytes(2, "little")), "bad_length", 2),
        # a valid HEARTBEAT header whose length claims a TICK's size
        (_set(0, b"\x04"), "bad_length", 2),
    ],
)
def test_decode_malformed(
    mutate: Callable[[bytes], bytes], problem: str, offset: int, base: int
) -> None:
    prefix = b"\xaa" * base
    raw = prefix + mutate(dm.encode(_tick()))
    with pytest.raises(DecodeError) as info:
        dm.decode(raw, base)
    assert info.value.problem == problem
    assert info.value.offset == base + offset
    with pytest.raises(DecodeError) as again:
        dm.message_length_at(raw, base)
    assert (again.value.problem, again.value.offset) == (problem, base + offset)


def test_reserved_type_detail_names_the_type() -> None:
    raw = _set(0, bytes([20]))(dm.encode(_tick()))
    with pytest.raises(DecodeError, match="type 20 \\(SYNC_RESERVED_20\\) is reserved"):
        dm.decode(raw)


def test_decode_bad_version_detail() -> None:
    raw = _set(1, b"\x07")(dm.encode(_tick()))
    with pytest.raises(DecodeError, match="TICK version 7; expected 1"):
        dm.decode(raw)


def test_decode_view_and_copy() -> None:
    buf = bytearray(dm.encode(_tick(seq=5)))
    _, view = dm.decode(buf)
    _, copied = dm.decode(buf, copy=True)
    buf[16] = 6  # device_seq low byte
    assert int(view["device_seq"][0]) == 6
    assert int(copied["device_seq"][0]) == 5
    _, ro = dm.decode(bytes(buf))
    assert not ro.flags.writeable


def test_walk_buffer_of_mixed_messages() -> None:
    hb = dm.new_record(dm.MSG_HEARTBEAT, 3)
    hb["device_seq"], hb["device_time_ns"] = 10, -7
    buf = dm.encode(_tick(1)) + dm.encode(hb) + dm.encode(_tick(2))
    assert dm.message_length_at(buf, 0) == 72
    assert dm.message_length_at(buf, 72) == 24
    got = [(t, int(r["device_seq"][0])) for t, r in dm.iter_messages(buf)]
    assert got == [(1, 1), (4, 10), (1, 2)]
    with pytest.raises(DecodeError) as info:
        list(dm.iter_messages(buf + b"\x01\x01"))
    assert (info.value.problem, info.value.offset) == ("short", len(buf) + 2)


def test_decode_ticks_batch() -> None:
    batch = dm.new_records(dm.MSG_TICK, 4, 5)
    batch["device_seq"] = np.arange(5)
    raw = b"\xee" * 3 + dm.encode_batch(batch)
    ticks = dm.decode_ticks(raw, 3)
    assert ticks["device_seq"].tolist() == [0, 1, 2, 3, 4]
    bad = bytearray(raw)
    bad[3 + 2 * 72 + 1] = 9  # version of the third tick
    with pytest.raises(DecodeError) as info:
        dm.decode_ticks(bytes(bad), 3)
    assert (info.value.problem, info.value.offset) == ("bad_version", 3 + 2 * 72 + 1)
    with pytest.raises(DecodeError) as short:
        dm.decode_ticks(raw[:-10], 3)
    assert (short.value.problem, short.value.offset) == ("short", len(raw) - 10)
    hb = dm.encode(dm.new_record(dm.MSG_HEARTBEAT, 4)) * 3  # 72 bytes of valid heartbeats
    with pytest.raises(DecodeError) as other:
        dm.decode_ticks(dm.encode(_tick()) + hb)
    assert (other.value.problem, other.value.offset) == ("unexpected_type", 72)


def test_packer_matches_encode() -> None:
    rng = np.random.default_rng(11)
    for t in ALL_TYPES:
        rec = dm.new_record(t, 77)
        values = []
        for name in dm.value_fields(t):
            if name not in ("msg_type", "version", "length", "device_id"):
                kind = rec.dtype.fields[name][0]  # type: ignore[index]
                info = np.iinfo(kind)
                rec[name] = int(rng.integers(info.min, info.max, dtype=kind, endpoint=True))
            values.append(int(rec[name][0]))
        assert dm.packer(t).pack(*values) == dm.encode(rec)


def test_decode_random_garbage_never_crashes() -> None:
    rng = np.random.default_rng(2)
    good = dm.encode(_tick())
    for _ in range(2000):
        buf = bytearray(good)
        for _ in range(int(rng.integers(1, 4))):
            buf[int(rng.integers(0, 8))] = int(rng.integers(0, 256))
        buf = buf[: int(rng.integers(0, len(buf) + 1))]
        try:
            mtype, rec = dm.decode(bytes(buf))
        except DecodeError:
            continue
        assert rec.dtype.itemsize == int(rec["length"][0]) == dm.LAYOUTS[mtype].size


def test_tick_dtype_usable_in_numba() -> None:
    @numba.njit(cache=False)
    def mid_sum(ticks):  # type: ignore[no-untyped-def]
        s = 0
        for i in range(ticks.shape[0]):
            s += (ticks[i].bid_px + ticks[i].ask_px) // 2
        return s

    batch = dm.new_records(dm.MSG_TICK, 1, 3)
    batch["bid_px"], batch["ask_px"] = [98, 100, 102], [100, 102, 104]
    assert mid_sum(batch) == 99 + 101 + 103


def test_declaration_errors_name_file_and_key() -> None:
    text = (ROOT / "firmware_interfaces" / "device_messages.toml").read_text()
    with pytest.raises(LayoutError, match=r"x.toml: messages\[1\]: type 1 already used by TICK"):
        dm.load_declarations(text.replace("type = 2", "type = 1"), source="x.toml")
    with pytest.raises(
        LayoutError, match=r"reserved_types\.SYNC_RESERVED_20 = 4 collides with HEARTBEAT"
    ):
        dm.load_declarations(
            text.replace("SYNC_RESERVED_20 = 20", "SYNC_RESERVED_20 = 4"), source="x.toml"
        )
    with pytest.raises(LayoutError, match=r"x.toml: messages\[3\].*offset 9"):
        dm.load_declarations(
            text.replace(
                '["device_seq", "u64"],\n    ["device_time_ns"',
                '["flag", "u8"],\n    ["device_seq", "u64"],\n    ["device_time_ns"',
            ),
            source="x.toml",
        )
    with pytest.raises(LayoutError, match=r"x\.toml: not valid TOML"):
        dm.load_declarations("[device", source="x.toml")
    decl = dm.load_declarations(text, source="x.toml")
    assert [m.name for m in decl.messages] == [
        "TICK", "ORDER", "ACK", "HEARTBEAT", "ARM", "ARMED", "START", "SYNC", "FOLLOW_UP",
        "DELAY_REQ", "DELAY_RESP",
    ]  # fmt: skip


# Clock-sync messages as bytes, written out by hand from the declared layout (little-endian):
# header msg_type u8 | version u8 | length u16 | device_id u32, then the body fields.
SYNC_VECTORS = [
    (
        dm.MSG_SYNC, {"sync_seq": 7, "origin_ns": 0x0102030405060708},
        "10 01 1800 2a000000 0700000000000000 0807060504030201",
    ),
    (
        dm.MSG_FOLLOW_UP, {"sync_seq": 7, "t1_ns": -2},
        "11 01 1800 2a000000 0700000000000000 feffffffffffffff",
    ),
    (
        dm.MSG_DELAY_REQ, {"sync_seq": 2**64 - 1, "t2_ns": 1, "t3_ns": 2**62},
        "12 01 2000 2a000000 ffffffffffffffff 0100000000000000 0000000000000040",
    ),
    (
        dm.MSG_DELAY_RESP, {"sync_seq": 1, "t4_ns": 1_795_000_000_000_000_000},
        "13 01 1800 2a000000 0100000000000000 0080d35bfd1ee918",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("msg_type", "fields", "hexbytes"), SYNC_VECTORS)
def test_sync_messages_match_fixed_vectors(
    msg_type: int, fields: dict[str, int], hexbytes: str
) -> None:
    rec = dm.new_record(msg_type, 42)
    for name, value in fields.items():
        rec[name] = value
    raw = bytes.fromhex(hexbytes.replace(" ", ""))
    assert dm.encode(rec) == raw
    got_type, arr = dm.decode(raw)
    assert got_type == msg_type
    assert {k: int(arr[0][k]) for k in fields} == fields


def test_decode_values_matches_decode_and_errors() -> None:
    import numpy as np

    from arbsphere.errors import DecodeError

    rec = dm.new_record(dm.MSG_TICK, 7)
    rec["device_seq"] = 42
    rec["bid_px"] = 123
    raw = dm.encode(rec)
    mtype, values = dm.decode_values(raw)
    assert mtype == dm.MSG_TICK
    fields = dm.value_fields(dm.MSG_TICK)
    assert values[fields.index("device_seq")] == 42
    assert values[fields.index("bid_px")] == 123
    rng = np.random.default_rng(9)
    for _ in range(2000):
        buf = bytearray(raw)
        buf[int(rng.integers(0, 8))] = int(rng.integers(0, 256))
        buf = buf[: int(rng.integers(0, len(buf) + 1))]
        try:
            dm.decode(bytes(buf))
        except DecodeError as exc:
            with pytest.raises(DecodeError) as info:
                dm.decode_values(bytes(buf))
            assert (info.value.problem, info.value.offset) == (exc.problem, exc.offset)


def test_start_handshake_layouts_match_an_independent_packing() -> None:
    """ARM / ARMED / START byte for byte as a firmware author would pack them from the
    declaration's comments (little-endian, header then body)."""
    arm = dm.new_record(dm.MSG_ARM, 11)
    arm["arm_seq"], arm["start_ns"], arm["tick_interval_ns"] = 3, -5, 500_000
    arm["n_ticks"], arm["venue_id"], arm["n_assets"] = 40_000, 1, 4
    assert dm.encode(arm) == struct.pack("<BBHIqqqQHHI", 5, 1, 48, 11, 3, -5, 500_000,
                                         40_000, 1, 4, 0)  # fmt: skip
    armed = dm.new_record(dm.MSG_ARMED, 11)
    armed["arm_seq"], armed["status"] = 3, dm.ARM_STATUS_REFUSED
    armed["start_device_ns"], armed["device_time_ns"] = 7, 9
    assert dm.encode(armed) == struct.pack("<BBHIQB7xqq", 6, 1, 40, 11, 3, 2, 7, 9)
    start = dm.new_record(dm.MSG_START, 11)
    start["arm_seq"], start["start_ns"] = 3, 123
    assert dm.encode(start) == struct.pack("<BBHIQq", 7, 1, 24, 11, 3, 123)
    assert {5, 6, 7} == dm.START_TYPES and dm.ARM_STATUS_OK == 1

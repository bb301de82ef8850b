"""Frozen wire vectors: every one decodes and re-encodes byte for byte, and every one is
cross-checked by a computation independent of the code under test (bitwise CRC-32C, textbook
COBS, hand-written ``struct`` formats)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cobs import cobs

from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.crc import CHECK_VALUE, crc32c
from arbsphere.firmware_interfaces.serial_framing import FrameDecoder, decode_frame, encode_frame
from arbsphere.firmware_interfaces.udp_datagram import pack_datagram, unpack_datagram

VECTORS = Path(__file__).resolve().parents[1] / "firmware_interfaces" / "vectors"


def _load(name: str) -> list[dict[str, Any]]:
    data = json.loads((VECTORS / name).read_text())
    vectors: list[dict[str, Any]] = data["vectors"]
    return vectors


# --- independent reference implementations ----------------------------------------------------
def ref_crc32c(data: bytes) -> int:
    """Bitwise reflected CRC-32C (poly 0x82F63B78, init and xorout 0xFFFFFFFF)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def ref_cobs_encode(data: bytes) -> bytes:
    """Textbook COBS: split at zeros, blocks of at most 254 data bytes, code = len + 1."""
    out = bytearray()
    block = bytearray()
    for byte in data:
        if len(block) == 254:  # a full block (code FF) implies no zero after it
            out += b"\xff" + block
            block.clear()
        if byte == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
        else:
            block.append(byte)
    out += bytes([len(block) + 1]) + block
    return bytes(out)


def ref_cobs_decode(enc: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(enc):
        code = enc[i]
        out += enc[i + 1 : i + code]
        i += code
        if code != 0xFF and i < len(enc):
            out.append(0)
    return bytes(out)


# Hand-written formats, independent of device_messages.toml (x = pad byte).
REF_FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "TICK": (
        "<BBHI HH4x Q q q q q q q",
        (
            "venue_id",
            "asset_id",
            "device_seq",
            "intended_send_ns",
            "send_ns",
            "bid_px",
            "ask_px",
            "bid_size",
            "ask_size",
        ),
    ),
    "ORDER": (
        "<BBHI HHb3x Q Q q q q",
        (
            "venue_id",
            "asset_id",
            "side",
            "order_id",
            "delta_id",
            "size_lots",
            "limit_px",
            "rig_send_ns",
        ),
    ),
    "ACK": (
        "<BBHI B7x Q q q q q",
        ("status", "order_id", "filled_lots", "fill_px", "device_rx_ns", "device_tx_ns"),
    ),
    "HEARTBEAT": ("<BBHI Q q", ("device_seq", "device_time_ns")),
}


def ref_message(name: str, msg_type: int, device_id: int, fields: dict[str, int]) -> bytes:
    fmt, names = REF_FORMATS[name]
    size = struct.calcsize(fmt)
    return struct.pack(fmt, msg_type, 1, size, device_id, *(fields[n] for n in names))


# --- CRC ---------------------------------------------------------------------------------------
def test_crc_published_vectors() -> None:
    vectors = _load("crc32c.json")
    assert any(v["crc32c"] == "E3069283" for v in vectors)
    assert crc32c(b"123456789") == CHECK_VALUE == 0xE3069283
    for v in vectors:
        data = bytes.fromhex(v["data_hex"])
        want = int(v["crc32c"], 16)
        assert crc32c(data) == want, v["name"]
        assert ref_crc32c(data) == want, v["name"]


def test_crc_running_value() -> None:
    data = bytes(range(32))
    assert crc32c(data[13:], crc32c(data[:13])) == 0x46DD794E


# --- COBS --------------------------------------------------------------------------------------
def test_cobs_vectors() -> None:
    vectors = _load("cobs.json")
    names = {v["name"] for v in vectors}
    for required in (
        "empty",
        "one zero",
        "two zeros",
        "11 22 00 33",
        "254 non-zero bytes",
        "255 non-zero bytes",
        "253 non-zero bytes then 00",
        "254 non-zero bytes then 00",
        "255 non-zero bytes then 00",
        "10 zeros",
    ):
        assert required in names
    for v in vectors:
        dec, enc = bytes.fromhex(v["decoded_hex"]), bytes.fromhex(v["encoded_hex"])
        assert ref_cobs_encode(dec) == enc, v["name"]
        assert ref_cobs_decode(enc) == dec, v["name"]
        assert cobs.encode(dec) == enc, v["name"]
        assert cobs.decode(enc) == dec, v["name"]
        assert 0 not in enc


def test_cobs_small_vectors_by_hand() -> None:
    by_name = {v["name"]: v for v in _load("cobs.json")}
    assert by_name["empty"]["encoded_hex"] == "01"
    assert by_name["one zero"]["encoded_hex"] == "0101"
    assert by_name["two zeros"]["encoded_hex"] == "010101"
    assert by_name["11 22 00 33"]["encoded_hex"] == "0311220233"
    assert by_name["10 zeros"]["encoded_hex"] == "01" * 11
    run = bytes(range(1, 255))
    assert by_name["254 non-zero bytes"]["encoded_hex"] == "ff" + run.hex()
    assert by_name["255 non-zero bytes"]["encoded_hex"] == "ff" + run.hex() + "02ff"
    assert by_name["254 non-zero bytes then 00"]["encoded_hex"] == "ff" + run.hex() + "0101"


# --- serial frames of each message type ---------------------------------------------------------
@pytest.mark.parametrize("vector", _load("serial_frames.json"), ids=lambda v: v["name"])
def test_serial_frame_vectors(vector: dict[str, Any]) -> None:
    msg = bytes.fromhex(vector["message_hex"])
    frame = bytes.fromhex(vector["frame_hex"])
    fields: dict[str, int] = vector["fields"]
    # independent: hand-written struct, bitwise CRC, textbook COBS
    assert ref_message(vector["name"], vector["msg_type"], vector["device_id"], fields) == msg
    crc = ref_crc32c(msg)
    assert crc == int(vector["crc32c"], 16)
    assert ref_cobs_encode(msg + crc.to_bytes(4, "little")) + b"\x00" == frame
    # decode
    payload = decode_frame(frame[:-1])
    assert payload == msg
    mtype, rec = dm.decode(payload)
    assert mtype == vector["msg_type"] and dm.NAMES[mtype] == vector["name"]
    assert int(rec["device_id"][0]) == vector["device_id"]
    for key, value in fields.items():
        assert int(rec[key][0]) == value, key
    # re-encode from the field values
    fresh = dm.new_record(mtype, vector["device_id"])
    for key, value in fields.items():
        fresh[key] = value
    assert dm.encode(fresh) == msg
    assert encode_frame(dm.encode(rec)) == frame


def test_serial_frames_as_one_stream() -> None:
    vectors = _load("serial_frames.json")
    stream = b"".join(bytes.fromhex(v["frame_hex"]) for v in vectors)
    dec = FrameDecoder()
    got = []
    for i in range(0, len(stream), 7):  # arbitrary chunking
        got += dec.feed(stream[i : i + 7])
    assert got == [bytes.fromhex(v["message_hex"]) for v in vectors]
    assert dec.frames_ok == 4 and dec.last_error is None


# --- UDP datagrams ------------------------------------------------------------------------------
@pytest.mark.parametrize("vector", _load("udp_datagram.json"), ids=lambda v: v["name"])
def test_udp_datagram_vectors(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["datagram_hex"])
    session = vector["session"].encode("ascii")
    ticks: list[dict[str, int]] = vector["ticks"]
    # independent: header by hand, ticks with the reference struct
    ref = struct.pack("<10sH4xQ", session, len(ticks), vector["sequence"])
    ref += b"".join(ref_message("TICK", 1, vector["device_id"], t) for t in ticks)
    assert ref == raw
    dg = unpack_datagram(raw)
    assert dg.session == session and dg.sequence == vector["sequence"]
    assert len(dg.messages) == len(ticks)
    for view, want in zip(dg.messages, ticks, strict=True):
        mtype, rec = dm.decode(view)
        assert mtype == dm.MSG_TICK
        for key, value in want.items():
            assert int(rec[key][0]) == value, key
    assert pack_datagram(dg.session, dg.sequence, [bytes(m) for m in dg.messages]) == raw
    if ticks:
        batch = dm.decode_ticks(raw, 24)
        assert batch["device_seq"].tolist() == [t["device_seq"] for t in ticks]

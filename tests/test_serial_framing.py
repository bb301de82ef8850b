"""Serial framing: COBS + CRC-32C frames, malformed frames by problem and offset, stream
deframing across arbitrary chunk boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from cobs import cobs

from arbsphere.errors import FrameError
from arbsphere.firmware_interfaces.crc import crc32c
from arbsphere.firmware_interfaces.serial_framing import (
    MAX_PAYLOAD,
    FrameDecoder,
    decode_frame,
    encode_frame,
    max_encoded_size,
)

PAYLOAD = bytes.fromhex("0101480000000000") + bytes(range(1, 17))  # has zeros, 24 bytes


def _payloads(n: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        size = int(rng.integers(0, 300))
        raw = bytearray(rng.integers(0, 4, size, dtype=np.uint8))  # many zeros
        out.append(bytes(raw))
    return out


def test_round_trip_random_payloads() -> None:
    for p in [*_payloads(200), bytes(MAX_PAYLOAD), b"\xff" * MAX_PAYLOAD]:
        frame = encode_frame(p)
        assert frame.endswith(b"\x00") and 0 not in frame[:-1]
        assert len(frame) - 1 <= max_encoded_size()
        assert decode_frame(frame[:-1]) == p


def test_encode_refuses_oversize_payload() -> None:
    with pytest.raises(ValueError, match="1025 bytes exceeds MAX_PAYLOAD 1024"):
        encode_frame(bytes(MAX_PAYLOAD + 1))


def _err(frame: bytes, **kw: int) -> FrameError:
    with pytest.raises(FrameError) as info:
        decode_frame(frame, **kw)
    return info.value


def test_empty_frame() -> None:
    e = _err(b"")
    assert (e.problem, e.offset) == ("empty", 0)


def test_cobs_errors_locate_the_bad_byte() -> None:
    frame = encode_frame(PAYLOAD)[:-1]
    # a zero inside the frame (a delimiter can never be data)
    bad = bytearray(frame)
    bad[6] = 0
    e = _err(bytes(bad))
    assert (e.problem, e.offset) == ("cobs", 6)
    # the last code byte points past the end of the frame
    truncated = frame[:-2]
    e = _err(truncated)
    assert e.problem == "cobs"
    last_code = _code_offsets(truncated)[-1]
    assert last_code + truncated[last_code] > len(truncated)
    assert e.offset == last_code


def _code_offsets(enc: bytes) -> list[int]:
    out, i = [], 0
    while i < len(enc):
        out.append(i)
        i += enc[i]
    return out


def test_short_frame() -> None:
    e = _err(b"\x03\x01\x02")  # decodes to 2 bytes: no room for the CRC
    assert (e.problem, e.offset) == ("short", 3)


def test_crc_error_reports_trailer_offset_and_values() -> None:
    payload = b"\x11\x22\x33\x44\x55"  # no zeros: frame = code, payload, CRC
    crc = crc32c(payload)
    assert 0 not in crc.to_bytes(4, "little")
    frame = bytearray(encode_frame(payload)[:-1])
    frame[3] ^= 0x01  # flip a payload bit
    e = _err(bytes(frame))
    assert e.problem == "crc"
    assert e.offset == 1 + len(payload)  # trailer follows the code byte and payload
    flipped = bytes(frame[1:6])
    assert f"0x{crc:08X}" in e.detail and f"0x{crc32c(flipped):08X}" in e.detail


def test_crc_trailer_offset_after_zeros() -> None:
    # With zeros before the trailer, its encoded offset shifts by the code bytes; compare with
    # a brute-force search for where the trailer's bytes land in the encoding.
    payload = b"\x00\x00\x07"
    frame = bytearray(encode_frame(payload)[:-1])
    frame[-5] ^= 0x01  # corrupt the 0x07 payload byte (last byte before the 4-byte trailer)
    e = _err(bytes(frame))
    assert e.problem == "crc"
    # encoding: 01 01 | 06 07 c0 c1 c2 c3 (trailer has no zeros for this payload)
    assert bytes(frame[:3]) == b"\x01\x01\x06"
    assert e.offset == 4


def test_oversize() -> None:
    frame = encode_frame(bytes(40))[:-1]
    e = _err(frame, max_payload=16)
    assert e.problem == "oversize"
    limit = max_encoded_size(16)
    assert e.offset == limit and len(frame) > limit
    # encoded within the limit but decodes to too much: zeros cost one code byte each, so
    # 1025 zero bytes + CRC encode to 1030 <= 1033 bytes
    data = bytes(MAX_PAYLOAD + 1)
    frame = cobs.encode(data + crc32c(data).to_bytes(4, "little"))
    assert len(frame) <= max_encoded_size()
    e = _err(frame)
    assert e.problem == "oversize"
    assert e.offset == MAX_PAYLOAD + 1  # decoded zero k sits at encoded code byte k + 1


def test_decoder_delivers_across_any_chunking() -> None:
    payloads = _payloads(30, seed=4)
    stream = b"".join(encode_frame(p) for p in payloads)
    rng = np.random.default_rng(9)
    for _ in range(5):
        dec = FrameDecoder()
        got: list[bytes] = []
        pos = 0
        while pos < len(stream):
            step = int(rng.integers(1, 40))
            got += dec.feed(stream[pos : pos + step])
            pos += step
        assert got == payloads
        assert dec.frames_ok == 30 and dec.bytes_in == len(stream) and dec.buffered == 0
    dec = FrameDecoder()
    byte_by_byte: list[bytes] = []
    for b in stream:
        byte_by_byte += dec.feed(bytes([b]))
    assert byte_by_byte == payloads


def test_decoder_counts_corrupt_frame_between_good_ones() -> None:
    good = [encode_frame(b"first\x00"), encode_frame(b"second"), encode_frame(b"third")]
    bad = bytearray(good[1])
    bad[2] ^= 0x20
    stream = good[0] + bytes(bad) + good[2]
    dec = FrameDecoder()
    got = dec.feed(stream[:10]) + dec.feed(stream[10:])
    assert got == [b"first\x00", b"third"]
    assert dec.crc_errors == 1 and dec.frames_ok == 2
    err = dec.last_error
    assert err is not None and err.problem == "crc"
    # absolute stream offset = start of the bad frame + trailer offset in that frame
    assert err.offset == len(good[0]) + 1 + len(b"second")
    c = dec.counters()
    assert c["crc_errors"] == 1 and c["frames_ok"] == 2 and c["bytes_in"] == len(stream)


def test_decoder_cobs_error_and_empty_frames() -> None:
    good = encode_frame(b"ok")
    stream = b"\x00\x00" + good + b"\x05\x01" + b"\x00" + good
    dec = FrameDecoder()
    assert dec.feed(stream) == [b"ok", b"ok"]
    assert dec.empty_frames == 2 and dec.cobs_errors == 1
    assert dec.last_error is not None
    assert (dec.last_error.problem, dec.last_error.offset) == ("cobs", 2 + len(good))


def test_decoder_discards_overlong_run_without_growing() -> None:
    dec = FrameDecoder(max_payload=32)
    limit = max_encoded_size(32)
    noise = b"\x07" * 500
    got: list[bytes] = []
    for i in range(0, len(noise), 50):
        got += dec.feed(noise[i : i + 50])
        assert dec.buffered <= limit
    got += dec.feed(b"\x00" + encode_frame(b"after"))
    assert got == [b"after"]
    assert dec.oversize == 1
    assert dec.last_error is not None and dec.last_error.problem == "oversize"
    assert dec.last_error.offset == limit
    assert dec.counters()["bytes_discarded"] == 500


def test_decoder_short_frame_counted() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"\x02\x09\x00" + encode_frame(b"x")) == [b"x"]
    assert dec.short_frames == 1 and dec.last_error is not None
    assert dec.last_error.problem == "short"

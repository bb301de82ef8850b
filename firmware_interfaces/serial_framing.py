"""Serial framing of device messages: COBS + CRC-32C, zero delimiter.

One frame on the wire::

    COBS( payload || CRC-32C(payload) as u32 little-endian ) || 0x00

COBS (Cheshire & Baker 1999, the ``cobs`` package) removes every zero byte from the encoded
data, so ``0x00`` only ever marks a frame end and a receiver resynchronises at the next
delimiter after line noise. :func:`decode_frame` checks one frame; :class:`FrameDecoder` deframes
a byte stream read in arbitrary chunks, never raises on bad frames but counts them and
remembers the last error with its absolute stream offset.
"""

from __future__ import annotations

from cobs import cobs

from arbsphere.errors import FrameError
from arbsphere.firmware_interfaces.crc import crc32c

#: Largest payload (bytes, CRC excluded) a frame may carry.
MAX_PAYLOAD: int = 1024
CRC_SIZE: int = 4
DELIMITER: bytes = b"\x00"


def max_encoded_size(max_payload: int = MAX_PAYLOAD) -> int:
    """Longest COBS-encoded frame (delimiter excluded) for ``max_payload`` payload bytes."""
    n = max_payload + CRC_SIZE
    return n + n // 254 + 1


def encode_frame(payload: bytes | bytearray | memoryview) -> bytes:
    """The wire bytes of one frame carrying ``payload``, delimiter included."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD {MAX_PAYLOAD}")
    data = bytes(payload)
    return cobs.encode(data + crc32c(data).to_bytes(CRC_SIZE, "little")) + DELIMITER


def decode_frame(frame: bytes | bytearray | memoryview, max_payload: int = MAX_PAYLOAD) -> bytes:
    """The payload of one frame given WITHOUT its trailing delimiter.

    Raises :class:`FrameError` with problem ``empty``, ``oversize``, ``cobs``, ``short`` or
    ``crc`` and the byte offset within the encoded frame where the problem was detected.
    """
    raw = bytes(frame)
    if not raw:
        raise FrameError("empty", 0, "empty frame (two delimiters in a row)")
    limit = max_encoded_size(max_payload)
    if len(raw) > limit:
        raise FrameError(
            "oversize",
            limit,
            f"encoded frame of {len(raw)} bytes; at most {limit} for {max_payload} payload bytes",
        )
    try:
        decoded = cobs.decode(raw)
    except cobs.DecodeError as exc:
        raise FrameError("cobs", _cobs_error_offset(raw), f"invalid COBS: {exc}") from exc
    if len(decoded) < CRC_SIZE:
        raise FrameError(
            "short",
            len(raw),
            f"decoded frame has {len(decoded)} bytes; needs at least the {CRC_SIZE}-byte CRC",
        )
    n = len(decoded) - CRC_SIZE
    if n > max_payload:
        raise FrameError(
            "oversize",
            _encoded_index(raw, max_payload),
            f"payload of {n} bytes exceeds max_payload {max_payload}",
        )
    payload = decoded[:n]
    expected = int.from_bytes(decoded[n:], "little")
    computed = crc32c(payload)
    if expected != computed:
        raise FrameError(
            "crc",
            _encoded_index(raw, n),
            f"CRC-32C trailer 0x{expected:08X}, computed 0x{computed:08X} over {n} bytes",
        )
    return payload


def _cobs_error_offset(raw: bytes) -> int:
    """Offset of the byte that makes ``raw`` invalid COBS: a zero, or a code running past
    the end (the offset of that code byte)."""
    i = 0
    end = len(raw)
    while i < end:
        code = raw[i]
        if code == 0:
            return i
        stop = i + code
        if stop > end:
            return i
        zero = raw.find(0, i + 1, stop)
        if zero >= 0:
            return zero
        i = stop
    return end


def _encoded_index(raw: bytes, target: int) -> int:
    """Offset in the (valid) COBS encoding ``raw`` of decoded byte ``target``."""
    i = 0
    d = 0
    end = len(raw)
    while i < end:
        code = raw[i]
        n = code - 1
        if target < d + n:
            return i + 1 + (target - d)
        d += n
        i += code
        if code != 0xFF and i < end:
            if target == d:  # the implied zero sits where the next code byte is
                return i
            d += 1
    return end


class FrameDecoder:
    """Stream deframer for a byte stream read in arbitrary chunks.

    A partial frame stays buffered across :meth:`feed` calls. A run longer than the longest
    valid frame without a delimiter is discarded up to the next delimiter and counted as
    ``oversize``, so the buffer never grows beyond one maximal frame. Bad frames never raise:
    each is counted by problem and :attr:`last_error` keeps the latest, its offset being the
    absolute stream offset (bytes since the decoder was created) of the offending byte.
    Empty frames (consecutive delimiters, e.g. a sender's resync prefix) are counted in
    ``empty_frames`` but are not errors.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        if max_payload < 0:
            raise ValueError(f"max_payload must be >= 0, got {max_payload}")
        self.max_payload = max_payload
        self._limit = max_encoded_size(max_payload)
        self._buf = bytearray()
        self._buf_start = 0  # stream offset of _buf[0]
        self._discarding = False
        self.frames_ok = 0
        self.crc_errors = 0
        self.cobs_errors = 0
        self.short_frames = 0
        self.oversize = 0
        self.empty_frames = 0
        self.bytes_in = 0
        self.bytes_discarded = 0
        self.last_error: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held until its delimiter arrives."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Consume ``data``; return the complete, CRC-valid payloads it finished, in order."""
        chunk = bytes(data)
        base = self.bytes_in  # stream offset of chunk[0]
        self.bytes_in += len(chunk)
        out: list[bytes] = []
        pos = 0
        while True:
            zero = chunk.find(0, pos)
            if zero < 0:
                self._hold(chunk, pos, base)
                return out
            if self._discarding:
                self.bytes_discarded += zero - pos
                self._discarding = False
            elif self._buf:
                self._buf += chunk[pos:zero]
                frame, start = bytes(self._buf), self._buf_start
                self._buf.clear()
                self._frame(frame, start, out)
            else:
                self._frame(chunk[pos:zero], base + pos, out)
            pos = zero + 1

    def _hold(self, chunk: bytes, pos: int, base: int) -> None:
        rest = len(chunk) - pos
        if self._discarding:
            self.bytes_discarded += rest
            return
        if not self._buf:
            self._buf_start = base + pos
        self._buf += chunk[pos:]
        if len(self._buf) > self._limit:
            self._error(
                FrameError(
                    "oversize",
                    self._buf_start + self._limit,
                    f"no delimiter within {self._limit} bytes; discarding to the next delimiter",
                )
            )
            self.bytes_discarded += len(self._buf)
            self._buf.clear()
            self._discarding = True

    def _frame(self, frame: bytes, start: int, out: list[bytes]) -> None:
        if not frame:
            self.empty_frames += 1
            return
        try:
            payload = decode_frame(frame, self.max_payload)
        except FrameError as exc:
            self._error(FrameError(exc.problem, start + exc.offset, exc.detail))
            return
        self.frames_ok += 1
        out.append(payload)

    def _error(self, err: FrameError) -> None:
        if err.problem == "crc":
            self.crc_errors += 1
        elif err.problem == "cobs":
            self.cobs_errors += 1
        elif err.problem == "short":
            self.short_frames += 1
        else:  # oversize ("empty" never reaches here)
            self.oversize += 1
        self.last_error = err

    def counters(self) -> dict[str, int]:
        """All counters by name (for link statistics and KPIs)."""
        return {
            "frames_ok": self.frames_ok,
            "crc_errors": self.crc_errors,
            "cobs_errors": self.cobs_errors,
            "short_frames": self.short_frames,
            "oversize": self.oversize,
            "empty_frames": self.empty_frames,
            "bytes_in": self.bytes_in,
            "bytes_discarded": self.bytes_discarded,
            "buffered": len(self._buf),
        }

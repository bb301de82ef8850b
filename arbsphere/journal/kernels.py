"""Numba kernels over whole batches of journal records: CRC-32C, packing, scanning, resync.

Per-record work in Python would cap the journal far below a million records a second, so
everything that touches every record byte runs here, once per batch or per segment. The
CRC-32C is the table-driven slice-by-8 algorithm (Castagnoli polynomial, reflected
0x82F63B78); the tests check it against the ``crc32c`` package on random data, and the record
CRCs of a journal against :func:`arbsphere.firmware_interfaces.crc.crc32c`.

Scan status codes (:data:`SCAN_OK` ...) say why :func:`scan_records` stopped before the end.

The public kernels carry explicit signatures (input arrays typed read-only, which writable
arrays convert to), so they are compiled -- or loaded from Numba's cache -- once at import,
never on a first append or scan, whatever mix of read-only (file bytes, ``bytes`` payloads)
and writable arrays a caller passes.
"""

from __future__ import annotations

import numpy as np
from numba import from_dtype, njit, types

from .format import INDEX_DTYPE

__all__ = [
    "CRC_TABLES",
    "SCAN_BAD_CRC",
    "SCAN_BAD_LENGTH",
    "SCAN_BAD_SEQ",
    "SCAN_OK",
    "SCAN_PARTIAL_HEADER",
    "SCAN_PARTIAL_RECORD",
    "crc32c_range",
    "fill_crcs",
    "pack_records",
    "resync",
    "scan_records",
]

SCAN_OK = 0
SCAN_PARTIAL_HEADER = 1  # fewer than 24 bytes left
SCAN_BAD_LENGTH = 2  # record_len < 28 or larger than a segment can hold
SCAN_PARTIAL_RECORD = 3  # record_len runs past the end of the file
SCAN_BAD_CRC = 4
SCAN_BAD_SEQ = 5  # CRC fine, but not the next sequence number

_HDR = 24
_OVERHEAD = 28

_I8 = types.int64
_RO_U8 = types.Array(types.uint8, 1, "C", readonly=True)
_RO_U16 = types.Array(types.uint16, 1, "C", readonly=True)
_RO_I8 = types.Array(types.int64, 1, "C", readonly=True)
_W_U8 = types.Array(types.uint8, 1, "C")
_TABLES = types.Array(types.int64, 2, "C", readonly=True)
_INDEX = types.Array(from_dtype(INDEX_DTYPE), 1, "C")


def _make_tables() -> np.ndarray:
    t = np.zeros((8, 256), np.int64)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        t[0, i] = c
    for k in range(1, 8):
        for i in range(256):
            t[k, i] = (t[k - 1, i] >> 8) ^ t[0, t[k - 1, i] & 0xFF]
    return t


#: Slice-by-8 lookup tables of CRC-32C (int64 so that Numba arithmetic stays in one type).
CRC_TABLES = _make_tables()
CRC_TABLES.setflags(write=False)


@njit(cache=True, nogil=True)
def _u16(b: np.ndarray, i: int) -> int:
    return int(np.int64(b[i]) | (np.int64(b[i + 1]) << 8))


@njit(cache=True, nogil=True)
def _u32(b: np.ndarray, i: int) -> int:
    return int(
        np.int64(b[i])
        | (np.int64(b[i + 1]) << 8)
        | (np.int64(b[i + 2]) << 16)
        | (np.int64(b[i + 3]) << 24)
    )


@njit(cache=True, nogil=True)
def _u64(b: np.ndarray, i: int) -> np.uint64:
    return np.uint64(_u32(b, i)) | (np.uint64(_u32(b, i + 4)) << np.uint64(32))


@njit(cache=True, nogil=True)
def _put_u32(b: np.ndarray, i: int, v: int) -> None:
    b[i] = v & 0xFF
    b[i + 1] = (v >> 8) & 0xFF
    b[i + 2] = (v >> 16) & 0xFF
    b[i + 3] = (v >> 24) & 0xFF


@njit(cache=True, nogil=True)
def _put_u64(b: np.ndarray, i: int, v: np.uint64) -> None:
    for k in range(8):
        b[i + k] = (v >> np.uint64(8 * k)) & np.uint64(0xFF)


@njit(cache=True, nogil=True)
def _crc(buf: np.ndarray, start: int, stop: int, t: np.ndarray) -> int:
    c = np.int64(0xFFFFFFFF)
    i = start
    while i + 8 <= stop:
        lo = c ^ _u32(buf, i)
        hi = _u32(buf, i + 4)
        c = (
            t[7, lo & 0xFF]
            ^ t[6, (lo >> 8) & 0xFF]
            ^ t[5, (lo >> 16) & 0xFF]
            ^ t[4, lo >> 24]
            ^ t[3, hi & 0xFF]
            ^ t[2, (hi >> 8) & 0xFF]
            ^ t[1, (hi >> 16) & 0xFF]
            ^ t[0, hi >> 24]
        )
        i += 8
    while i < stop:
        c = t[0, (c ^ buf[i]) & 0xFF] ^ (c >> 8)
        i += 1
    return int(c ^ 0xFFFFFFFF)


@njit(_I8(_RO_U8, _I8, _I8, _TABLES), cache=True, nogil=True)
def crc32c_range(buf: np.ndarray, start: int, stop: int, t: np.ndarray) -> int:
    """CRC-32C of ``buf[start:stop]`` (``t`` = :data:`CRC_TABLES`)."""
    return _crc(buf, start, stop, t)


@njit(_I8(_W_U8, _I8, _I8, _TABLES), cache=True, nogil=True)
def fill_crcs(buf: np.ndarray, start: int, stop: int, t: np.ndarray) -> int:
    """Write the CRC of every record in ``buf[start:stop]`` (records back to back, their
    ``record_len`` fields already set). Returns the number of records."""
    pos = start
    n = 0
    while pos < stop:
        length = _u32(buf, pos)
        end = pos + length - 4
        _put_u32(buf, end, _crc(buf, pos, end, t))
        pos += length
        n += 1
    return n


@njit(
    _I8(_W_U8, _I8, _I8, _I8, _I8, _RO_U16, _RO_U16, _RO_I8, _RO_U8, _RO_I8, _TABLES),
    cache=True,
    nogil=True,
)
def pack_records(
    buf: np.ndarray,
    pos: int,
    seq: int,
    lo: int,
    hi: int,
    types: np.ndarray,
    flags: np.ndarray,
    ts_ns: np.ndarray,
    payload: np.ndarray,
    bounds: np.ndarray,
    t: np.ndarray,
) -> int:
    """Pack records ``lo..hi-1`` (payload ``i`` is ``payload[bounds[i]:bounds[i+1]]``) with
    sequences ``seq, seq+1, ...`` and their CRCs into ``buf`` from ``pos``; returns the end."""
    for i in range(lo, hi):
        p0 = bounds[i]
        n = bounds[i + 1] - p0
        length = n + _OVERHEAD
        _put_u32(buf, pos, length)
        ty = np.int64(types[i])
        buf[pos + 4] = ty & 0xFF
        buf[pos + 5] = (ty >> 8) & 0xFF
        fl = np.int64(flags[i])
        buf[pos + 6] = fl & 0xFF
        buf[pos + 7] = (fl >> 8) & 0xFF
        _put_u64(buf, pos + 8, np.uint64(seq + (i - lo)))
        _put_u64(buf, pos + 16, np.uint64(ts_ns[i]))
        body = pos + _HDR
        for k in range(n):
            buf[body + k] = payload[p0 + k]
        end = body + n
        _put_u32(buf, end, _crc(buf, pos, end, t))
        pos = end + 4
    return pos


@njit(types.UniTuple(_I8, 3)(_RO_U8, _I8, _I8, _I8, _I8, _INDEX, _TABLES), cache=True, nogil=True)
def scan_records(
    buf: np.ndarray,
    start: int,
    stop: int,
    first_seq: int,
    max_len: int,
    out: np.ndarray,
    t: np.ndarray,
) -> tuple[int, int, int]:
    """Walk the records of ``buf[start:stop]`` checking length, CRC and sequence continuity
    (``first_seq`` expected first), filling ``out`` (:data:`INDEX_DTYPE`) row by row.

    Returns ``(n_valid, status, pos)``: ``pos`` is the end of the last valid record, where the
    first problem (``status`` != :data:`SCAN_OK`) starts.
    """
    pos = start
    n = 0
    expected = np.uint64(first_seq)
    while pos < stop:
        if stop - pos < _HDR:
            return n, SCAN_PARTIAL_HEADER, pos
        length = _u32(buf, pos)
        if length < _OVERHEAD or length > max_len:
            return n, SCAN_BAD_LENGTH, pos
        if pos + length > stop:
            return n, SCAN_PARTIAL_RECORD, pos
        end = pos + length - 4
        if _crc(buf, pos, end, t) != _u32(buf, end):
            return n, SCAN_BAD_CRC, pos
        seq = _u64(buf, pos + 8)
        if seq != expected:
            return n, SCAN_BAD_SEQ, pos
        row = out[n]
        row["offset"] = pos
        row["length"] = length
        row["type"] = _u16(buf, pos + 4)
        row["flags"] = _u16(buf, pos + 6)
        row["seq"] = seq
        row["ts_ns"] = np.int64(_u64(buf, pos + 16))
        n += 1
        expected += np.uint64(1)
        pos += length
    return n, SCAN_OK, pos


@njit(types.UniTuple(_I8, 2)(_RO_U8, _I8, _I8, _I8, _I8, _TABLES), cache=True, nogil=True)
def resync(
    buf: np.ndarray, origin: int, stop: int, min_seq: int, max_len: int, t: np.ndarray
) -> tuple[int, int]:
    """First offset ``p`` in ``(origin, stop)`` where a whole record with a valid CRC and a
    plausible sequence begins: ``min_seq <= seq <= min_seq + (p - origin) // 28`` (every record
    lost in between took at least 28 bytes). ``origin`` is where the damage starts.

    Returns ``(p, seq)``, or ``(-1, 0)`` if no valid record follows ``origin``: then the
    damage reaches the end of the file (a tail) rather than sitting in the middle.
    """
    lo = np.uint64(min_seq)
    for p in range(origin + 1, stop - _OVERHEAD + 1):
        length = _u32(buf, p)
        if length < _OVERHEAD or length > max_len or p + length > stop:
            continue
        seq = _u64(buf, p + 8)
        if seq < lo or seq > lo + np.uint64((p - origin) // _OVERHEAD):
            continue
        end = p + length - 4
        if _crc(buf, p, end, t) == _u32(buf, end):
            return p, int(np.int64(seq))
    return -1, 0

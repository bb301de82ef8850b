"""Byte layout of the replay journal (format version 1).

A journal is a directory of append-only **segment files** named ``journal-NNNNNNNN.seg``
(segment index, 8 decimal digits, from 0). Other files in the directory are ignored. Every
integer is little-endian; there is no padding anywhere.

Segment header (72 bytes, at offset 0 of every segment file)::

    offset size type   field
       0     8  bytes  magic           b"ARBSJRNL"
       8     2  u16    format_version  1
      10     2  u16    header_size     72
      12     4  u32    flags           0 (none defined; a reader rejects anything else)
      16     8  u64    segment_index   0, 1, 2, ... (equals the number in the file name)
      24     8  u64    first_seq       sequence of this segment's first record
                                       (= previous segment's last seq + 1; 1 for segment 0)
      32    32  bytes  chain_start     chain digest after the previous segment's last record
                                       (32 zero bytes for segment 0), see "Hash chain"
      64     4  u32    reserved        0
      68     4  u32    header_crc      CRC-32C of bytes 0..67

Records follow the header back to back, from offset 72 to the end of the file::

    offset  size type   field
       0      4  u32    record_len  total bytes of this record, 28 + payload length
       4      2  u16    type        record type (the caller's)
       6      2  u16    flags       record flags (the caller's bits)
       8      8  u64    seq         sequence: 1 for the journal's first record, +1 per record,
                                    contiguous across segments
      16      8  i64    ts_ns       rig timestamp in ns, passed by the caller (e.g. rx time)
      24      P  bytes  payload     P = record_len - 28 bytes
    24+P      4  u32    crc         CRC-32C (Castagnoli) of bytes 0 .. 24+P-1 of this record

A record never spans segments. A segment is at most ``segment_size`` bytes (the writer's
configuration, not stored: at most 2^30); a record that does not fit in the current segment
starts the next one. Readers accept ``record_len`` from 28 to 2^30 - 72. A crash can leave
the last segment ending in a partial record or zero bytes, or without a whole header (a torn
tail); the reader's module describes how that is told apart from corruption.

Why SHA-256 and not BLAKE2b: on the rig hosts SHA-256 runs at ~1.8 GB/s (SHA extensions),
BLAKE2b at ~0.9 GB/s, and ``sha256sum`` is everywhere.

Hash chain (SHA-256). Let ``C_s`` be ``chain_start`` of segment ``s``. The chain digest after
a record of segment ``s`` is ``SHA-256(C_s || every record byte of segment s up to and
including that record)`` -- record bytes as stored, header, payload and CRC. ``C_0`` is 32 zero
bytes and ``C_{s+1}`` is the chain digest after the last record of segment ``s`` (``C_s``
itself if segment ``s`` holds no record). So the digest after record n covers every record
byte of the journal from its first record to record n, in order, and each segment header
commits to everything before it. The journal **head** is (digest after the last record, last
seq, record count); an empty journal's head is (32 zero bytes, 0, 0). By hand, the digest
after the last record of a segment file ``f``::

    { dd if=f bs=1 skip=32 count=32 2>/dev/null; tail -c +73 f; } | sha256sum
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arbsphere.firmware_interfaces.crc import crc32c

__all__ = [
    "FORMAT_VERSION",
    "GENESIS_DIGEST",
    "INDEX_DTYPE",
    "MAGIC",
    "RECORD_HEADER",
    "RECORD_HEADER_SIZE",
    "RECORD_OVERHEAD",
    "SEGMENT_HEADER_SIZE",
    "SegmentHeader",
    "pack_segment_header",
    "segment_index_of",
    "segment_name",
    "unpack_segment_header",
]

MAGIC = b"ARBSJRNL"
FORMAT_VERSION = 1
SEGMENT_HEADER_SIZE = 72
RECORD_HEADER_SIZE = 24
#: Bytes a record adds to its payload: the 24-byte header and the 4-byte CRC.
RECORD_OVERHEAD = RECORD_HEADER_SIZE + 4
DIGEST_SIZE = 32
GENESIS_DIGEST = bytes(DIGEST_SIZE)

#: record_len, type, flags, seq, ts_ns (the CRC follows the payload).
RECORD_HEADER = struct.Struct("<IHHQq")
#: Everything of the segment header but its CRC (bytes 0..67).
_SEGMENT_HEADER_BODY = struct.Struct("<8sHHIQQ32sI")
_CRC = struct.Struct("<I")

#: One row per record, as returned by the bulk reader. ``offset`` is the record's byte offset
#: in its segment file; the payload is ``[offset + 24, offset + length - 4)``.
INDEX_DTYPE = np.dtype(
    [
        ("offset", "<i8"),
        ("length", "<u4"),
        ("type", "<u2"),
        ("flags", "<u2"),
        ("seq", "<u8"),
        ("ts_ns", "<i8"),
    ]
)

_NAME = re.compile(r"^journal-(\d{8})\.seg$")


def segment_name(index: int) -> str:
    """File name of segment ``index``."""
    return f"journal-{index:08d}.seg"


def segment_index_of(path: Path) -> int | None:
    """The segment index in a segment file name, or None if ``path`` is not a segment."""
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class SegmentHeader:
    """The fields of a segment header. ``problems`` lists what a reader found wrong with it."""

    magic: bytes
    version: int
    header_size: int
    flags: int
    segment_index: int
    first_seq: int
    chain_start: bytes
    reserved: int
    crc: int
    crc_ok: bool

    def problems(self) -> list[str]:
        out = []
        if not self.crc_ok:
            out.append(f"header CRC mismatch (stored {self.crc:#010x})")
        if self.magic != MAGIC:
            out.append(f"magic {self.magic!r} is not {MAGIC!r}")
        if self.version != FORMAT_VERSION:
            out.append(f"format version {self.version} is not {FORMAT_VERSION}")
        if self.header_size != SEGMENT_HEADER_SIZE:
            out.append(f"header size {self.header_size} is not {SEGMENT_HEADER_SIZE}")
        if self.flags != 0 or self.reserved != 0:
            out.append(f"flags {self.flags:#x} / reserved {self.reserved:#x} are not 0")
        return out


def pack_segment_header(segment_index: int, first_seq: int, chain_start: bytes) -> bytes:
    """The 72 header bytes of a segment."""
    body = _SEGMENT_HEADER_BODY.pack(
        MAGIC, FORMAT_VERSION, SEGMENT_HEADER_SIZE, 0, segment_index, first_seq, chain_start, 0
    )
    return body + _CRC.pack(crc32c(body))


def unpack_segment_header(data: bytes | memoryview) -> SegmentHeader:
    """Parse the first 72 bytes of ``data`` (the caller checks there are that many)."""
    body = bytes(data[: _SEGMENT_HEADER_BODY.size])
    magic, version, hsize, flags, index, first_seq, chain, reserved = _SEGMENT_HEADER_BODY.unpack(
        body
    )
    (crc,) = _CRC.unpack_from(data, _SEGMENT_HEADER_BODY.size)
    return SegmentHeader(
        magic, version, hsize, flags, index, first_seq, chain, reserved, crc, crc32c(body) == crc
    )

"""UDP datagrams of device messages (MoldUDP64-like, little-endian, aligned) and gap detection.

One datagram::

    header (24 B): session u8[10] | count u16 | _pad u32 | sequence u64
    then `count` device messages back to back, each sized by its own header `length`

``sequence`` is the device sequence number of the first message; a datagram with ``count`` 0
is a heartbeat that announces the next expected sequence (MoldUDP64 style). The messages
must exactly fill the datagram. :func:`unpack_datagram` raises
:class:`~arbsphere.errors.DatagramError` (``short``, ``count_mismatch``, ``bad_length``,
``trailing_bytes``) with the offset at fault; message contents are checked by
:mod:`.messages`. :class:`GapDetector` turns the header sequence numbers into loss, duplicate
and reorder counts.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from arbsphere.errors import DatagramError
from arbsphere.firmware_interfaces.messages import DECLARATIONS
from arbsphere.firmware_interfaces.messages import HEADER_SIZE as MSG_HEADER_SIZE

HEADER_LAYOUT = DECLARATIONS.datagram_header
HEADER_SIZE: int = HEADER_LAYOUT.size
SESSION_SIZE: int = HEADER_LAYOUT.field("session").count
MAX_COUNT: int = 0xFFFF
_HEADER = struct.Struct("<" + HEADER_LAYOUT.struct_format)  # session, count, sequence
_OFF_COUNT = HEADER_LAYOUT.field("count").offset
_MSG_LENGTH = struct.Struct("<H")
_MSG_LENGTH_OFFSET = DECLARATIONS.header.field("length").offset

assert HEADER_SIZE == 24, "datagram header layout changed; update the module docstring"


def session_id(name: str | bytes) -> bytes:
    """A 10-byte session field from a short ASCII name, padded with spaces."""
    raw = name.encode("ascii") if isinstance(name, str) else bytes(name)
    if len(raw) > SESSION_SIZE:
        raise ValueError(f"session name {raw!r} longer than {SESSION_SIZE} bytes")
    return raw.ljust(SESSION_SIZE, b" ")


def pack_datagram(
    session: bytes, sequence: int, messages: Sequence[bytes | bytearray | memoryview]
) -> bytes:
    """One datagram carrying ``messages`` (already encoded) starting at ``sequence``.

    ``session`` must be exactly 10 bytes (see :func:`session_id`); every message's header
    length must equal its byte length.
    """
    if len(session) != SESSION_SIZE:
        raise ValueError(f"session must be exactly {SESSION_SIZE} bytes, got {len(session)}")
    if not 0 <= sequence < 2**64:
        raise ValueError(f"sequence {sequence} does not fit u64")
    if len(messages) > MAX_COUNT:
        raise ValueError(f"{len(messages)} messages exceed the u16 count field")
    for i, msg in enumerate(messages):
        if len(msg) < MSG_HEADER_SIZE:
            raise ValueError(f"message {i} has {len(msg)} bytes, shorter than a header")
        (length,) = _MSG_LENGTH.unpack_from(msg, _MSG_LENGTH_OFFSET)
        if length != len(msg):
            raise ValueError(f"message {i}: header length {length} but {len(msg)} bytes given")
    return _HEADER.pack(bytes(session), len(messages), sequence) + b"".join(messages)


@dataclass(frozen=True)
class Datagram:
    """A checked datagram; ``messages`` are views into the received buffer."""

    session: bytes
    sequence: int
    messages: list[memoryview]

    @property
    def count(self) -> int:
        return len(self.messages)

    @property
    def next_sequence(self) -> int:
        """Sequence number of the message after the last one in this datagram."""
        return self.sequence + len(self.messages)


def unpack_datagram(buf: bytes | bytearray | memoryview) -> Datagram:
    """Split a datagram into its messages, checking that they exactly fill it."""
    mv = memoryview(buf)
    end = len(mv)
    if end < HEADER_SIZE:
        raise DatagramError(
            "short", end, f"need {HEADER_SIZE} bytes for the datagram header, have {end}"
        )
    session, count, sequence = _HEADER.unpack_from(mv, 0)
    messages: list[memoryview] = []
    pos = HEADER_SIZE
    for i in range(count):
        if pos == end:
            raise DatagramError(
                "count_mismatch",
                _OFF_COUNT,
                f"count says {count} messages, datagram ends after {i}",
            )
        if end - pos < MSG_HEADER_SIZE:
            raise DatagramError(
                "short",
                end,
                f"message {i} at offset {pos}: {end - pos} bytes left, header needs "
                f"{MSG_HEADER_SIZE}",
            )
        (length,) = _MSG_LENGTH.unpack_from(mv, pos + _MSG_LENGTH_OFFSET)
        if length < MSG_HEADER_SIZE or length > end - pos:
            raise DatagramError(
                "bad_length",
                pos + _MSG_LENGTH_OFFSET,
                f"message {i} at offset {pos} declares length {length}; "
                f"{end - pos} bytes left in the datagram",
            )
        messages.append(mv[pos : pos + length])
        pos += length
    if pos != end:
        raise DatagramError(
            "trailing_bytes",
            pos,
            f"{end - pos} bytes after the {count} messages the header announces",
        )
    return Datagram(bytes(session), int(sequence), messages)


class GapDetector:
    """Tracks expected sequence per session: counts gaps (missing messages), duplicates,
    reorders (late arrivals of a missing range) and session changes.

    ``gaps`` counts gap events and ``missing`` the messages still missing (a late arrival
    that fills a hole moves its messages from ``missing`` to ``recovered`` and counts one
    ``reordered``). A datagram whose messages were all seen already is a ``duplicate``. The
    first datagram of a session is accepted as the start unless ``first_sequence`` is given,
    in which case messages before it count as missing. At most ``max_holes`` open holes are
    remembered per session; older ones stay counted as missing.
    """

    def __init__(self, first_sequence: int | None = None, max_holes: int = 1024) -> None:
        self.first_sequence = first_sequence
        self.max_holes = max_holes
        self._expected: dict[bytes, int] = {}
        self._holes: dict[bytes, list[list[int]]] = {}  # [start, stop) ranges, ascending
        self._session: bytes | None = None
        self.datagrams = 0
        self.messages = 0
        self.gaps = 0
        self.missing = 0
        self.recovered = 0
        self.duplicates = 0
        self.reordered = 0
        self.session_changes = 0

    def observe(self, session: bytes, sequence: int, count: int) -> int:
        """Account one datagram; return how many messages are missing just before it."""
        self.datagrams += 1
        self.messages += count
        if self._session is not None and session != self._session:
            self.session_changes += 1
        self._session = session
        expected = self._expected.get(session)
        if expected is None:
            expected = sequence if self.first_sequence is None else self.first_sequence
            self._holes[session] = []
        stop = sequence + count
        if sequence >= expected:
            lost = sequence - expected
            if lost:
                self.gaps += 1
                self.missing += lost
                holes = self._holes[session]
                holes.append([expected, sequence])
                if len(holes) > self.max_holes:
                    del holes[0]
            self._expected[session] = stop
            return lost
        # Starts before the expected sequence: a late arrival, a duplicate, or both.
        filled = self._fill(session, sequence, min(stop, expected))
        if filled:
            self.reordered += 1
            self.recovered += filled
            self.missing -= filled
        else:
            self.duplicates += 1
        self._expected[session] = max(expected, stop)
        return 0

    def _fill(self, session: bytes, start: int, stop: int) -> int:
        """Remove [start, stop) from the session's holes; return how many messages it filled."""
        filled = 0
        kept: list[list[int]] = []
        for lo, hi in self._holes[session]:
            a, b = max(lo, start), min(hi, stop)
            if a >= b:
                kept.append([lo, hi])
                continue
            filled += b - a
            if lo < a:
                kept.append([lo, a])
            if b < hi:
                kept.append([b, hi])
        self._holes[session] = kept
        return filled

    def counters(self) -> dict[str, int]:
        """All counters by name (for link statistics and KPIs)."""
        return {
            "datagrams": self.datagrams,
            "messages": self.messages,
            "gaps": self.gaps,
            "missing": self.missing,
            "recovered": self.recovered,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "session_changes": self.session_changes,
        }

"""Malformed input for a device, and the raw write that puts it on its link.

A device must survive garbage on its link without crashing and without answering it. Every
garbage unit here carries a marker the suite recognises if the device does answer it: SYNCs
with a ``sync_seq`` from :data:`GARBAGE_SEQ_BASE` (a DELAY_REQ carrying one answered garbage)
and ORDERs with an ``order_id`` from :data:`GARBAGE_ORDER_BASE` (any ACK of one did).

:func:`garbage_units` builds them per link backend: message-level garbage (unknown and
reserved types, a bad version, a SYNC addressed to another device) inside valid transport
units, and transport-level garbage (serial: bad CRC, broken COBS, an empty and an oversize
frame; UDP: short, truncated, count mismatch, trailing bytes, oversize datagrams).
:data:`RAW_WRITERS` writes bytes as they are to the device end of a rig-side link, one writer
per registered backend (``tests/test_conformance_suites.py`` fails for a backend without one):
the link classes only send well-formed units.
"""

from __future__ import annotations

import os
import select
import socket
import struct
from collections.abc import Callable

from arbsphere.adapters.links import FeedLink
from arbsphere.errors import LinkError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.serial_framing import encode_frame
from arbsphere.firmware_interfaces.udp_datagram import pack_datagram, session_id

GARBAGE_SEQ_BASE = 0x7A7A_0000_0000
GARBAGE_ORDER_BASE = 0x7B7B_0000_0000
_SESSION = session_id("GARBAGE")
#: a raw serial write that makes no progress for this long fails
WRITE_STALL_S = 1.0


def _sync(device_id: int, seq: int) -> bytes:
    rec = dm.new_record(dm.MSG_SYNC, device_id)
    rec["sync_seq"] = seq
    return dm.encode(rec)


def _order(device_id: int, order_id: int, *, size: int = 5, side: int = 1) -> bytes:
    rec = dm.new_record(dm.MSG_ORDER, device_id)
    rec["order_id"] = order_id
    rec["side"] = side
    rec["size_lots"] = size
    rec["limit_px"] = 100 * dm.PRICE_SCALE
    return dm.encode(rec)


def _with_header(msg: bytes, *, msg_type: int | None = None, version: int | None = None) -> bytes:
    b = bytearray(msg)
    if msg_type is not None:
        b[0] = msg_type
    if version is not None:
        b[1] = version
    return bytes(b)


def bad_messages(device_id: int, marker: Callable[[int], bytes], first: int) -> list[bytes]:
    """Message-level garbage: each a whole message the device must not answer (``marker(k)``:
    a SYNC or ORDER carrying marker ``first + k``)."""
    reserved = min(dm.RESERVED_TYPES) if dm.RESERVED_TYPES else 20
    return [
        _with_header(marker(first), msg_type=99),  # unknown type
        _with_header(marker(first + 1), msg_type=reserved),  # reserved type
        _with_header(marker(first + 2), version=dm.DEVICE_MESSAGE_VERSION + 7),  # bad version
        _sync(device_id + 1, GARBAGE_SEQ_BASE + first + 3),  # addressed to another device
    ]


def garbage_units(backend: str, device_id: int, *, orders: bool = False) -> list[bytes]:
    """Raw transport units of garbage for a device on ``backend`` (``orders``: the markers are
    ORDERs, for a broker device; else SYNCs)."""

    def marker(k: int) -> bytes:
        if orders:
            return _order(device_id, GARBAGE_ORDER_BASE + k)
        return _sync(device_id, GARBAGE_SEQ_BASE + k)

    messages = bad_messages(device_id, marker, 0)
    if backend == "serial":
        return _serial_garbage(messages, marker)
    if backend == "udp":
        return _udp_garbage(messages, marker)
    raise LinkError(f"no garbage defined for link backend {backend!r} (conformance/garbage.py)")


def _serial_garbage(messages: list[bytes], marker: Callable[[int], bytes]) -> list[bytes]:
    bad_crc = bytearray(encode_frame(marker(10)))
    bad_crc[-3] ^= 0x5A if bad_crc[-3] != 0x5A else 0x5B  # a CRC byte, delimiter kept
    truncated = encode_frame(marker(11)[:-8])  # the message shorter than its header says
    return [
        *(encode_frame(m) for m in messages),
        bytes(bad_crc),
        truncated,
        b"\x07\x41\x42\x00",  # a COBS block longer than the frame
        b"\x00\x00",  # empty frames
        b"\x55" * 600 + b"\x00",  # oversize frame
        b"\x01" * 40 + b"\x00",  # a frame of zero bytes: its CRC does not match
    ]


def _udp_garbage(messages: list[bytes], marker: Callable[[int], bytes]) -> list[bytes]:
    good = pack_datagram(_SESSION, 1, [marker(20)])
    count_mismatch = bytearray(pack_datagram(_SESSION, 2, [marker(21)]))
    struct.pack_into("<H", count_mismatch, 10, 2)  # header count 2, one message present
    return [
        *(pack_datagram(_SESSION, 10 + i, [m]) for i, m in enumerate(messages)),
        b"\x01\x02\x03",  # shorter than a datagram header
        good[:-5],  # truncated
        bytes(count_mismatch),
        good + b"\xee" * 8,  # trailing bytes
        good[:24] + marker(22)[:-8],  # message shorter than its length field
        bytes(range(256)) * 12,  # oversize noise (3072 bytes)
    ]


def _write_udp(link: FeedLink, data: bytes) -> None:
    peer = getattr(link, "peer", None)
    if peer is None:
        raise LinkError(f"{link.name}: the device's address is not known yet")
    with socket.socket(fileno=os.dup(link.fileno())) as sock:  # the dup closes, not the link
        try:
            sock.sendto(data, peer)
        except OSError as exc:
            raise LinkError(f"{link.name}: raw send to {peer} failed: {exc}") from exc


def _write_serial(link: FeedLink, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(link.fileno(), view) :]
        except BlockingIOError:
            if not select.select([], [link.fileno()], [], WRITE_STALL_S)[1]:
                raise LinkError(
                    f"{link.name}: the port took no byte for {WRITE_STALL_S} s"
                ) from None
        except OSError as exc:
            raise LinkError(f"{link.name}: raw write failed: {exc}") from exc


#: backend name -> write bytes as they are to the device end of a link of that backend
RAW_WRITERS: dict[str, Callable[[FeedLink, bytes], None]] = {
    "udp": _write_udp,
    "serial": _write_serial,
}

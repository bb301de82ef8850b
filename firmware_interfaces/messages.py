"""Device messages: the fixed records feed and broker devices put on the wire.

This module owns the device message layouts (declared once in ``device_messages.toml``, shipped
as package data) and their encode/decode. A device message is one fixed-size little-endian
record, the common 8-byte header followed by the body of its type::

    header (8 B): msg_type u8 | version u8 | length u16 (whole message) | device_id u32
    TICK 1 (72 B), ORDER 2 (56 B), ACK 3 (56 B), HEARTBEAT 4 (24 B),
    start handshake: ARM 5 (48 B), ARMED 6 (40 B), START 7 (24 B),
    clock-sync exchange: SYNC 16 (24 B), FOLLOW_UP 17 (24 B), DELAY_REQ 18 (32 B),
    DELAY_RESP 19 (24 B)

Type code 20 is reserved. Decoding never returns a silently
wrong record: :func:`decode` raises :class:`~arbsphere.errors.DecodeError` with a problem tag
(``short``, ``unknown_type``, ``reserved_type``, ``bad_version``, ``bad_length``) and the
absolute byte offset of the offending byte or field.

The transports (serial frames, UDP datagrams) live in :mod:`.serial_framing` and
:mod:`.udp_datagram`; this module knows nothing about them.
"""

from __future__ import annotations

import struct
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from arbsphere.errors import DecodeError, LayoutError
from arbsphere.layout import Layout, build_layout

DECLARATION_FILE = "device_messages.toml"


@dataclass(frozen=True)
class MessageType:
    """One declared device message type."""

    name: str
    code: int
    c_name: str
    doc: str
    layout: Layout


@dataclass(frozen=True)
class Declarations:
    """Everything ``device_messages.toml`` declares."""

    version: int
    price_scale: int
    header: Layout
    messages: tuple[MessageType, ...]
    reserved: Mapping[str, int]
    ack_status: Mapping[str, int]
    arm_status: Mapping[str, int]
    datagram_c_name: str
    datagram_header: Layout


def load_declarations(text: str, *, source: str) -> Declarations:
    """Parse a device message declaration (the text of ``device_messages.toml``).

    Raises :class:`~arbsphere.errors.LayoutError` naming the file and the key at fault.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LayoutError(f"{source}: not valid TOML: {exc}") from exc
    dev = _table(data, "device", source)
    header_spec = _list(dev, "header", f"{source}: [device]")
    header = build_layout("header", header_spec, source=f"{source}: [device]")
    if header.size != 8:
        raise LayoutError(f"{source}: [device].header must be 8 bytes, is {header.size}")
    messages: list[MessageType] = []
    codes: dict[int, str] = {}
    entries = data.get("messages")
    if not isinstance(entries, list) or not entries:
        raise LayoutError(f"{source}: no [[messages]] declared")
    for index, entry in enumerate(entries):
        where = f"{source}: messages[{index}]"
        if not isinstance(entry, dict):
            raise LayoutError(f"{where}: must be a table")
        name = _str(entry, "name", where)
        code = _int(entry, "type", where)
        if not 0 < code < 256:
            raise LayoutError(f"{where}: type {code} outside 1..255")
        if code in codes:
            raise LayoutError(f"{where}: type {code} already used by {codes[code]}")
        codes[code] = name
        body = _list(entry, "body", where)
        layout = build_layout(name, [*header_spec, *body], source=where)
        if layout.size % 8 != 0:
            raise LayoutError(f"{where}: {name} size {layout.size} is not a multiple of 8")
        messages.append(
            MessageType(name, code, _str(entry, "c_name", where), str(entry.get("doc", "")), layout)
        )
    reserved = {k: int(v) for k, v in _table(data, "reserved_types", source).items()}
    for rname, code in reserved.items():
        if code in codes:
            raise LayoutError(
                f"{source}: reserved_types.{rname} = {code} collides with {codes[code]}"
            )
    dgram = _table(data, "datagram", source)
    return Declarations(
        version=_int(dev, "version", f"{source}: [device]"),
        price_scale=_int(dev, "price_scale", f"{source}: [device]"),
        header=header,
        messages=tuple(messages),
        reserved=reserved,
        ack_status={k: int(v) for k, v in _table(data, "ack_status", source).items()},
        arm_status={k: int(v) for k, v in _table(data, "arm_status", source).items()},
        datagram_c_name=_str(dgram, "c_name", f"{source}: [datagram]"),
        datagram_header=build_layout(
            "datagram_header",
            _list(dgram, "header", f"{source}: [datagram]"),
            source=f"{source}: [datagram]",
        ),
    )


def _table(data: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise LayoutError(f"{source}: [{key}] missing or not a table")
    return value


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise LayoutError(f"{where}: key '{key}' must be a list of fields, got {value!r}")
    return value


def _int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise LayoutError(f"{where}: key '{key}' must be an integer, got {value!r}")
    return value


def _str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise LayoutError(f"{where}: key '{key}' must be a non-empty string, got {value!r}")
    return value


DECLARATIONS = load_declarations(
    resources.files(__package__ or "arbsphere.firmware_interfaces")
    .joinpath(DECLARATION_FILE)
    .read_text(encoding="utf-8"),
    source=DECLARATION_FILE,
)
_BY_NAME = {m.name: m for m in DECLARATIONS.messages}

PRICE_SCALE: int = DECLARATIONS.price_scale
DEVICE_MESSAGE_VERSION: int = DECLARATIONS.version
HEADER_SIZE: int = DECLARATIONS.header.size

MSG_TICK: int = _BY_NAME["TICK"].code
MSG_ORDER: int = _BY_NAME["ORDER"].code
MSG_ACK: int = _BY_NAME["ACK"].code
MSG_HEARTBEAT: int = _BY_NAME["HEARTBEAT"].code
MSG_ARM: int = _BY_NAME["ARM"].code
MSG_ARMED: int = _BY_NAME["ARMED"].code
MSG_START: int = _BY_NAME["START"].code
MSG_SYNC: int = _BY_NAME["SYNC"].code
MSG_FOLLOW_UP: int = _BY_NAME["FOLLOW_UP"].code
MSG_DELAY_REQ: int = _BY_NAME["DELAY_REQ"].code
MSG_DELAY_RESP: int = _BY_NAME["DELAY_RESP"].code
#: The clock-sync exchange's message types (never market or order traffic).
SYNC_TYPES: frozenset[int] = frozenset((MSG_SYNC, MSG_FOLLOW_UP, MSG_DELAY_REQ, MSG_DELAY_RESP))
#: The start handshake's message types.
START_TYPES: frozenset[int] = frozenset((MSG_ARM, MSG_ARMED, MSG_START))
RESERVED_TYPES: frozenset[int] = frozenset(DECLARATIONS.reserved.values())

ACK_STATUS_ACK: int = DECLARATIONS.ack_status["ACK"]
ACK_STATUS_FILL: int = DECLARATIONS.ack_status["FILL"]
ACK_STATUS_PARTIAL: int = DECLARATIONS.ack_status["PARTIAL"]
ACK_STATUS_REJECT: int = DECLARATIONS.ack_status["REJECT"]

ARM_STATUS_OK: int = DECLARATIONS.arm_status["OK"]
ARM_STATUS_REFUSED: int = DECLARATIONS.arm_status["REFUSED"]

#: msg_type -> layout of the whole message (header fields included)
LAYOUTS: dict[int, Layout] = {m.code: m.layout for m in DECLARATIONS.messages}
#: msg_type -> declared name ("TICK", ...)
NAMES: dict[int, str] = {m.code: m.name for m in DECLARATIONS.messages}

HEADER_DTYPE: np.dtype[Any] = DECLARATIONS.header.dtype
TICK_DTYPE: np.dtype[Any] = LAYOUTS[MSG_TICK].dtype
ORDER_DTYPE: np.dtype[Any] = LAYOUTS[MSG_ORDER].dtype
ACK_DTYPE: np.dtype[Any] = LAYOUTS[MSG_ACK].dtype
HEARTBEAT_DTYPE: np.dtype[Any] = LAYOUTS[MSG_HEARTBEAT].dtype
#: Largest declared message (bytes); transports size their buffers from it.
MAX_MESSAGE_SIZE: int = max(layout.size for layout in LAYOUTS.values())

_HEADER = struct.Struct("<BBHI")
_OFF_TYPE = DECLARATIONS.header.field("msg_type").offset
_OFF_VERSION = DECLARATIONS.header.field("version").offset
_OFF_LENGTH = DECLARATIONS.header.field("length").offset
_RESERVED_NAMES = {code: name for name, code in DECLARATIONS.reserved.items()}
_BY_DTYPE = {m.layout.dtype: m for m in DECLARATIONS.messages}


def new_record(msg_type: int, device_id: int) -> np.ndarray:
    """A zeroed 1-element record of ``msg_type`` with its header filled in."""
    layout = _layout_for_encode(msg_type)
    if not 0 <= device_id < 2**32:
        raise ValueError(f"device_id {device_id} does not fit u32")
    rec = np.zeros(1, layout.dtype)
    rec["msg_type"] = msg_type
    rec["version"] = DEVICE_MESSAGE_VERSION
    rec["length"] = layout.size
    rec["device_id"] = device_id
    return rec


def new_records(msg_type: int, device_id: int, n: int) -> np.ndarray:
    """``n`` zeroed records of ``msg_type`` with their headers filled in (batch builders)."""
    rec = np.repeat(new_record(msg_type, device_id), n)
    return rec


def encode(record: np.ndarray | np.void) -> bytes:
    """The wire bytes of one message record (shape ``(1,)`` array or ``np.void``).

    The header must be consistent with the record's dtype (type, version, length); a
    mismatch is a programming error and raises ``ValueError`` naming the field.
    """
    arr = np.asarray(record).reshape(-1)
    if arr.shape[0] != 1:
        raise ValueError(f"encode takes one record, got {arr.shape[0]}; use encode_batch")
    mtype = _BY_DTYPE.get(arr.dtype)
    if mtype is None:
        raise ValueError(f"dtype {arr.dtype} is not a device message dtype")
    raw = arr.tobytes()
    msg_type, version, length, _device = _HEADER.unpack_from(raw)
    if msg_type != mtype.code or version != DEVICE_MESSAGE_VERSION or length != len(raw):
        return encode_batch(arr)  # raises naming the inconsistent field
    return raw


def encode_batch(records: np.ndarray) -> bytes:
    """Wire bytes of consecutive records of one message type (e.g. the ticks of a datagram)."""
    arr = np.asarray(records).reshape(-1)
    mtype = _BY_DTYPE.get(arr.dtype)
    if mtype is None:
        raise ValueError(f"dtype {arr.dtype} is not a device message dtype")
    for field, want in (
        ("msg_type", mtype.code),
        ("version", DEVICE_MESSAGE_VERSION),
        ("length", mtype.layout.size),
    ):
        bad = np.flatnonzero(arr[field] != want)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{mtype.name} record {i}: header {field} is {int(arr[field][i])}, expected {want}"
            )
    return arr.tobytes()


def _layout_for_encode(msg_type: int) -> Layout:
    layout = LAYOUTS.get(msg_type)
    if layout is None:
        raise ValueError(f"msg_type {msg_type} has no layout (declared: {sorted(LAYOUTS)})")
    return layout


def message_length_at(buf: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """Validate the header at ``offset`` and return the message length.

    Raises :class:`DecodeError` exactly like :func:`decode`, including ``short`` when the
    buffer ends before the whole message.
    """
    return _check_header(buf, offset)[1].size


def decode(
    buf: bytes | bytearray | memoryview, offset: int = 0, *, copy: bool = False
) -> tuple[int, np.ndarray]:
    """Decode the message at ``offset``: ``(msg_type, 1-element record array)``.

    The array is a view into ``buf`` (read-only for ``bytes``) unless ``copy`` is true; take a
    copy when ``buf`` is a receive buffer that will be reused. Bytes after the message are
    ignored (walk a buffer with the returned record's ``length``).
    """
    msg_type, layout = _check_header(buf, offset)
    rec = np.frombuffer(buf, layout.dtype, count=1, offset=offset)
    return msg_type, (rec.copy() if copy else rec)


def iter_messages(buf: bytes | bytearray | memoryview) -> Iterator[tuple[int, np.ndarray]]:
    """Decode back-to-back messages filling ``buf`` exactly (a ``short`` error if it does not)."""
    offset = 0
    end = len(buf)
    while offset < end:
        msg_type, rec = decode(buf, offset)
        yield msg_type, rec
        offset += LAYOUTS[msg_type].size


def decode_ticks(buf: bytes | bytearray | memoryview, offset: int = 0) -> np.ndarray:
    """All bytes from ``offset`` as back-to-back TICKs, validated in one vectorised pass.

    Returns a (read-only for ``bytes``) TICK_DTYPE view. The first bad header raises the
    same :class:`DecodeError` :func:`decode` would give for it; a valid message of another
    type raises ``unexpected_type`` at its type byte.
    """
    size = LAYOUTS[MSG_TICK].size
    n, rest = divmod(len(buf) - offset, size)
    ticks = np.frombuffer(buf, TICK_DTYPE, count=n, offset=offset)
    ok = (
        (ticks["msg_type"] == MSG_TICK)
        & (ticks["version"] == DEVICE_MESSAGE_VERSION)
        & (ticks["length"] == size)
    )
    bad = np.flatnonzero(~ok)
    if bad.size:
        at = offset + int(bad[0]) * size
        msg_type, _ = _check_header(buf, at)  # raises for a malformed header
        raise DecodeError(
            "unexpected_type",
            at + _OFF_TYPE,
            f"expected TICK ({MSG_TICK}) in a tick batch, found {NAMES[msg_type]} ({msg_type})",
        )
    if rest:
        _check_header(buf, offset + n * size)  # raises: short or malformed header
    return ticks


def _check_header(buf: bytes | bytearray | memoryview, offset: int) -> tuple[int, Layout]:
    end = len(buf)
    if offset < 0 or offset > end:
        raise ValueError(f"offset {offset} outside buffer of {end} bytes")
    if end - offset < HEADER_SIZE:
        raise DecodeError(
            "short",
            end,
            f"need {HEADER_SIZE} header bytes at offset {offset}, have {end - offset}",
        )
    msg_type, version, length, _device = _HEADER.unpack_from(buf, offset)
    layout = LAYOUTS.get(msg_type)
    if layout is None:
        if msg_type in _RESERVED_NAMES:
            raise DecodeError(
                "reserved_type",
                offset + _OFF_TYPE,
                f"type {msg_type} ({_RESERVED_NAMES[msg_type]}) is reserved and has no layout "
                "in this version",
            )
        raise DecodeError(
            "unknown_type",
            offset + _OFF_TYPE,
            f"type {msg_type}; known types {sorted(LAYOUTS)} ({', '.join(NAMES.values())})",
        )
    if version != DEVICE_MESSAGE_VERSION:
        raise DecodeError(
            "bad_version",
            offset + _OFF_VERSION,
            f"{NAMES[msg_type]} version {version}; expected {DEVICE_MESSAGE_VERSION}",
        )
    if length != layout.size:
        raise DecodeError(
            "bad_length",
            offset + _OFF_LENGTH,
            f"{NAMES[msg_type]} header length {length}; expected {layout.size}",
        )
    if end - offset < layout.size:
        raise DecodeError(
            "short",
            end,
            f"{NAMES[msg_type]} needs {layout.size} bytes at offset {offset}, have {end - offset}",
        )
    return msg_type, layout


def packer(msg_type: int) -> struct.Struct:
    """A precompiled ``struct.Struct`` for one whole message of ``msg_type`` (hot paths).

    Pack it with the values of :func:`value_fields` in that order (header fields first,
    ``_pad*`` fields omitted); the bytes equal :func:`encode` of the same record (tested).
    """
    return struct.Struct("<" + _layout_for_encode(msg_type).struct_format)


def value_fields(msg_type: int) -> tuple[str, ...]:
    """Field names :func:`packer` takes, in order."""
    return _layout_for_encode(msg_type).value_fields


_FAST: dict[int, tuple[struct.Struct, int]] = {}


def decode_values(buf: bytes | bytearray | memoryview) -> tuple[int, tuple[Any, ...]]:
    """Hot-path decode of one whole message: ``(msg_type, values)`` in :func:`value_fields`
    order. Validates type, version and length exactly like :func:`decode`; on any problem it
    defers to :func:`decode`, which raises the specific :class:`DecodeError`."""
    if len(buf) >= 8:
        msg_type = buf[0]
        fast = _FAST.get(msg_type)
        if fast is None and msg_type in LAYOUTS and msg_type not in RESERVED_TYPES:
            st = packer(msg_type)
            fast = _FAST[msg_type] = (st, st.size)
        if fast is not None:
            st, size = fast
            if (
                len(buf) == size
                and buf[1] == DEVICE_MESSAGE_VERSION
                and (buf[2] | (buf[3] << 8)) == size
            ):
                return msg_type, st.unpack(buf)
    decode(buf)  # raises the specific error
    msg_type, _ = decode(buf)  # valid, with trailing bytes (decode ignores them)
    st = packer(msg_type)
    return msg_type, st.unpack(bytes(buf[: st.size]))

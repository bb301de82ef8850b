"""The canonical IR: schema registry, message envelope, encode/decode.

The registry (``contracts.toml``, shipped with the package) declares every IR record once. This
module turns it into :class:`Schema` objects with NumPy dtypes, encodes and decodes messages
(envelope + payload) and checks that the parties of a contract graph speak compatible schema
versions.

It also names what the declaration numbers. The registry's ``[enums.*]`` become
:class:`~enum.IntEnum` (or :class:`~enum.IntFlag`) classes (:meth:`SchemaRegistry.enum`;
:meth:`SchemaRegistry.codes` gives their codes as plain ints for hot paths), and each schema version
has a :class:`FieldIndex`: the position of every field in the flat value tuple
:meth:`SchemaRegistry.decode_values` returns. Code binds the positions and codes it uses to module
constants at import — a name the declaration lacks raises :class:`ContractError` there — so a
hot path indexes a tuple with a plain int, as fast as a literal, and follows the declaration.

Wire format of one message (all little-endian)::

    envelope (32 B): magic u32 "ARBS" | schema_id u16 | schema_version u16 | sender_id u32 |
                     payload_len u32 | nonce u64 | origin_ts_ns i64
    payload:         header record [+ count_field x item record]

Decoding never returns a silently wrong record: every inconsistency raises
:class:`~arbsphere.errors.DecodeError` with a problem tag (``short``, ``bad_magic``,
``unknown_schema``, ``bad_version``, ``bad_length``) and the byte offset of the offending field.
"""

from __future__ import annotations

import struct
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from arbsphere.errors import ConfigError, ContractError, ContractVersionError, DecodeError
from arbsphere.layout import SCALAR_TYPES, Layout, build_layout

REGISTRY_FILE = "contracts.toml"
#: distinct (schema, version, payload length) shapes the decode fast path remembers
_MAX_DECODED_SHAPES = 4096


#: integer wire types -> (smallest, largest) value
_INT_RANGES: dict[str, tuple[int, int]] = {
    t: (
        (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1)
        if t[0] == "i"
        else (0, (1 << (8 * size)) - 1)
    )
    for t, (_np, _c, size) in SCALAR_TYPES.items()
    if t[0] in "iu"
}


class FieldOffsets:
    """Where each field of one record sits among its values, one ``int`` attribute per field
    (``_pad*`` fields take no value; a ``u8`` array is one ``bytes`` value, another array one
    value per element, the attribute naming the first). An undeclared name raises
    :class:`ContractError` naming the record and its fields."""

    def __init__(
        self, where: str, fields: list[tuple[str, int, int]], source: str = REGISTRY_FILE
    ) -> None:
        #: "PlanDelta v2 header" and the like, and the declaring file, for messages
        self.where_ = where
        self.source_ = source
        #: (name, position, number of values) in declared order
        self.fields_ = tuple(fields)
        for name, pos, _width in fields:
            self.__dict__[name] = pos

    def __getattr__(self, name: str) -> int:
        if name.startswith("__") or name.endswith("_"):  # protocols; our own, before set
            raise AttributeError(name)
        known = ", ".join(n for n, _p, _w in self.fields_) or "none"
        raise ContractError(
            f"{self.where_} has no field {name!r} (its fields: {known})", file=self.source_
        )

    def span(self, *names: str) -> slice:
        """The positions of ``names``, consecutive fields in this order (for unpacking in one
        slice); :class:`ContractError` if the declaration does not have them so."""
        if not names:
            raise ContractError(f"{self.where_}: span of no fields", file=self.source_)
        widths = {n: (p, w) for n, p, w in self.fields_}
        start = at = getattr(self, names[0])
        for name in names:
            pos, width = widths.get(name) or (getattr(self, name), 0)
            if pos != at:
                order = ", ".join(n for n, _p, _w in self.fields_)
                raise ContractError(
                    f"{self.where_}: fields {', '.join(names)} are not consecutive in this "
                    f"order ({name} is value {pos}, expected {at}; declared: {order})",
                    file=self.source_,
                )
            at += width
        return slice(start, at)

    @property
    def width(self) -> int:
        """Values one record takes."""
        return sum(w for _n, _p, w in self.fields_)


class FieldIndex(FieldOffsets):
    """Positions in the flat tuple :meth:`SchemaRegistry.decode_values` returns (and
    :meth:`SchemaRegistry.packer` takes) for one schema version: ``F.<field>`` of every envelope and
    header field; the items' values follow from ``items`` on, ``stride`` per item, item ``k``'s
    field at ``F.items + F.stride * k + F.item.<field>``. :meth:`span` and :meth:`item_span`
    give several consecutive fields at once.

    Reading an attribute goes through the ``__getattr__`` hook's slower lookup: a hot path
    binds the positions it needs to module-level ints (or slices) once, at import."""

    def __init__(
        self, where: str, fields: list[tuple[str, int, int]], header_start: int,
        item: FieldOffsets, source: str,
    ) -> None:  # fmt: skip
        super().__init__(where, fields, source)
        #: position of the header's first value (= values of the envelope)
        self.header_start = header_start
        #: the item's fields, positions within one item (no fields: the schema has no items)
        self.item = item
        #: position of the first item's first value (= values of envelope and header)
        self.items = self.width
        #: values per item (0: no items)
        self.stride = item.width

    def item_span(self, *names: str) -> tuple[int, int]:
        """(start, stop) of the consecutive item fields ``names`` in the first item; item ``k``
        is ``values[start + F.stride * k : stop + F.stride * k]``."""
        s = self.item.span(*names)
        return self.items + s.start, self.items + s.stop

    def n_values(self, n_items: int = 0) -> int:
        """Values of a message of ``n_items`` items."""
        return self.items + self.stride * n_items

    def expect(self, header: Sequence[str], item: Sequence[str] | None = None) -> None:
        """Refuse (:class:`ContractError`) unless the header's fields, and the item's when
        given, are exactly ``header`` (``item``) in this order: what a :meth:`SchemaRegistry.packer`
        call passes positionally after the envelope values."""
        for part, names, offsets, start in (
            ("header", header, self, self.header_start),
            ("item", item, self.item, 0),
        ):
            if names is None:
                continue
            have = tuple(n for n, p, _w in offsets.fields_ if p >= start)
            if tuple(names) != have:
                raise ContractError(
                    f"{self.where_} {part}: code passes {', '.join(names)}; the declaration "
                    f"has {', '.join(have)}",
                    file=self.source_,
                )


#: FieldIndex's own attributes: no declared field may take these names
_RESERVED = frozenset(n for n in dir(FieldIndex) if not n.startswith("__")) | {
    "item", "items", "stride", "header_start",
}  # fmt: skip


def _offsets(layout: Layout, start: int = 0) -> list[tuple[str, int, int]]:
    out = []
    at = start
    for f in layout.fields:
        if f.name.startswith("_pad"):
            continue
        width = 1 if f.count == 1 or f.type == "u8" else f.count
        out.append((f.name, at, width))
        at += width
    return out


@dataclass(frozen=True)
class Schema:
    """One version of one IR record type."""

    name: str
    id: int
    version: int
    doc: str
    header: Layout
    item: Layout | None
    count_field: str | None
    #: positions of its fields in :meth:`SchemaRegistry.decode_values`'s tuple
    fields: FieldIndex = field(repr=False, compare=False)

    @property
    def header_dtype(self) -> np.dtype[Any]:
        return self.header.dtype

    @property
    def item_dtype(self) -> np.dtype[Any] | None:
        return None if self.item is None else self.item.dtype

    def payload_size(self, count: int) -> int:
        """Payload bytes (envelope excluded) of a message with ``count`` items."""
        return self.header.size + (count * self.item.size if self.item is not None else 0)


@dataclass(frozen=True)
class Message:
    """A decoded message. ``header`` is a 1-element array, ``items`` a (possibly empty) array."""

    schema: Schema
    sender_id: int
    nonce: int
    origin_ts_ns: int
    header: np.ndarray
    items: np.ndarray


@dataclass(frozen=True)
class GraphRole:
    """A party of a contract graph and the schema versions it speaks."""

    name: str
    kind: str
    speaks: Mapping[str, int]


@dataclass(frozen=True)
class VenueRole:
    """The role every venue adapter of a deployment takes, whatever its name (a graph's
    ``venues`` table), and how many venue adapters may take part."""

    kind: str
    speaks: Mapping[str, int]
    min_count: int
    max_count: int


@dataclass(frozen=True)
class ContractGraph:
    """A deployment shape: the coordinator and the adapters that take part, with versions.

    ``adapters`` are parties by name (e.g. the broker); ``venues``, when declared, is the role
    of any number (``min_count``..``max_count``) of venue adapters of any name — a campaign's
    ``[venues.*]`` tables. A named adapter keeps its own role."""

    name: str
    doc: str
    coordinator: Mapping[str, int]
    adapters: Mapping[str, GraphRole]
    venues: VenueRole | None = None

    def roles(self, venue_names: Collection[str] = ()) -> dict[str, GraphRole]:
        """Every party of a deployment with these venue adapters: the named adapters, and
        each venue not named here in the graph's venue role."""
        out = dict(self.adapters)
        if self.venues is not None:
            for name in venue_names:
                if name not in out:
                    out[name] = GraphRole(name, self.venues.kind, self.venues.speaks)
        return out


class SchemaRegistry:
    """The schema registry loaded from its TOML declaration."""

    def __init__(self, data: Mapping[str, Any], source: str) -> None:
        self.source = source
        reg = _table(data, "registry", source)
        self.magic: int = _int(reg, "magic", f"{source}: [registry]")
        self.envelope = build_layout(
            "Envelope", reg.get("envelope"), source=f"{source}: [registry]"
        )
        self.envelope_dtype = self.envelope.dtype
        #: positions of the envelope's values (the same in every schema's tuple)
        self.envelope_fields = FieldOffsets("the envelope", _offsets(self.envelope), source)
        self.enums: dict[str, type[IntEnum]] = _parse_enums(data.get("enums", {}), source)
        self._by_key: dict[tuple[int, int], Schema] = {}
        self._by_name: dict[tuple[str, int], Schema] = {}
        self._latest: dict[str, Schema] = {}
        schemas = data.get("schemas")
        if not isinstance(schemas, list) or not schemas:
            raise ConfigError("no [[schemas]] declared", file=source, key="schemas")
        for index, entry in enumerate(schemas):
            schema = _parse_schema(
                entry, f"{source}: schemas[{index}]", self.envelope, self.enums, source, index
            )
            key = (schema.id, schema.version)
            if key in self._by_key:
                raise ConfigError(
                    f"schema id {schema.id} version {schema.version} declared twice",
                    file=source,
                    key=f"schemas[{index}]",
                )
            other = self._latest.get(schema.name)
            if other is not None and other.id != schema.id:
                raise ConfigError(
                    f"schema {schema.name} declared with ids {other.id} and {schema.id}",
                    file=source,
                    key=f"schemas[{index}].id",
                )
            self._by_key[key] = schema
            self._by_name[(schema.name, schema.version)] = schema
            if other is None or schema.version > other.version:
                self._latest[schema.name] = schema
        self._env_struct = struct.Struct("<" + self.envelope.struct_format)
        self._unpackers: dict[tuple[int, int, int], struct.Struct] = {}
        #: (schema id, version, payload_len) seen decoded -> (schema, unpacker, position of the
        #: item count in the values or -1, the count that length implies): the hot path's one
        #: lookup (bounded: a length is cached only once a message of it decoded whole)
        self._decoded_shapes: dict[
            tuple[int, int, int], tuple[Schema, struct.Struct, int, int]
        ] = {}
        self._n_env_values = len(self.envelope.value_fields)
        self._count_pos = {
            key: s.header.value_fields.index(s.count_field)
            for key, s in self._by_key.items()
            if s.count_field is not None
        }
        self.graphs: dict[str, ContractGraph] = {}
        for gname, gdata in _table(data, "graphs", source).items():
            self.graphs[gname] = self._parse_graph(gname, gdata)

    # --- look-ups ---------------------------------------------------------------------------
    def schema(self, name: str, version: int | None = None) -> Schema:
        """The schema ``name`` at ``version`` (None: its latest); KeyError naming the known
        ones if there is none."""
        if version is None:
            if name not in self._latest:
                raise KeyError(f"unknown schema {name!r}; known: {sorted(self._latest)}")
            return self._latest[name]
        try:
            return self._by_name[(name, version)]
        except KeyError:
            raise KeyError(f"schema {name!r} has no version {version}") from None

    def fields(self, name: str, version: int | None = None) -> FieldIndex:
        """The value positions of schema ``name`` (its latest version by default)."""
        return self.schema(name, version).fields

    def enum(self, name: str) -> type[IntEnum]:
        """The IntEnum (IntFlag for ``flags = true``) built from ``[enums.<name>]``."""
        try:
            return self.enums[name]
        except KeyError:
            raise ContractError(
                f"no enum {name!r} declared (declared: {', '.join(sorted(self.enums))})",
                file=self.source,
                key=f"enums.{name}",
            ) from None

    def codes(self, enum: str, *members: str) -> tuple[int, ...]:
        """The codes of ``members`` of ``enum`` as plain ints (hot-path comparisons)."""
        cls = self.enum(enum)
        out = []
        for member in members:
            if member not in cls.__members__:
                raise ContractError(
                    f"enum {enum} has no value {member!r} (its values: "
                    f"{', '.join(cls.__members__)})",
                    file=self.source,
                    key=f"enums.{enum}.values.{member}",
                )
            out.append(int(cls[member]))
        return tuple(out)

    def check_enum(self, cls: type[IntEnum], name: str) -> None:
        """Refuse a Python enum written out by hand (for typed attribute access) whose names
        or codes differ from ``[enums.<name>]``."""
        declared = {m.name: int(m) for m in self.enum(name)}
        written = {m.name: int(m) for m in cls}
        if declared != written:
            raise ContractError(
                f"{cls.__module__}.{cls.__qualname__} {written} differs from the declaration "
                f"{declared}",
                file=self.source,
                key=f"enums.{name}",
            )

    def schemas(self) -> list[Schema]:
        """Every declared schema version, by (id, version)."""
        return [self._by_key[k] for k in sorted(self._by_key)]

    def versions(self, name: str) -> list[int]:
        """The declared versions of schema ``name``, ascending."""
        return sorted(v for (n, v) in self._by_name if n == name)

    def graph(self, name: str) -> ContractGraph:
        """The contract graph ``name`` (who speaks which schemas); KeyError if undeclared."""
        if name not in self.graphs:
            raise KeyError(f"unknown contract graph {name!r}; known: {sorted(self.graphs)}")
        return self.graphs[name]

    # --- encode / decode --------------------------------------------------------------------
    def encode(
        self,
        schema: Schema,
        header: np.ndarray | np.void,
        items: np.ndarray | None = None,
        *,
        sender_id: int,
        nonce: int,
        origin_ts_ns: int,
    ) -> bytes:
        """Encode one message. ``header`` must have the schema's header dtype."""
        hdr = np.asarray(header).reshape(-1)
        if hdr.dtype != schema.header.dtype or hdr.shape[0] != 1:
            raise ValueError(f"{schema.name}: header must be one record of the schema's dtype")
        payload_parts = [hdr.tobytes()]
        count = 0
        if schema.item is not None:
            arr = np.zeros(0, schema.item.dtype) if items is None else np.asarray(items).reshape(-1)
            if arr.dtype != schema.item.dtype:
                raise ValueError(f"{schema.name}: items must have the schema's item dtype")
            count = arr.shape[0]
            assert schema.count_field is not None
            if int(hdr[0][schema.count_field]) != count:
                raise ValueError(
                    f"{schema.name}: header {schema.count_field}={int(hdr[0][schema.count_field])}"
                    f" but {count} items given"
                )
            payload_parts.append(arr.tobytes())
        elif items is not None and len(items):
            raise ValueError(f"{schema.name} has no item records")
        env = np.zeros(1, self.envelope_dtype)
        env["magic"] = self.magic
        env["schema_id"] = schema.id
        env["schema_version"] = schema.version
        env["sender_id"] = sender_id
        env["payload_len"] = schema.payload_size(count)
        env["nonce"] = nonce
        env["origin_ts_ns"] = origin_ts_ns
        return env.tobytes() + b"".join(payload_parts)

    def decode(self, buf: bytes | bytearray | memoryview) -> Message:
        """Decode one message; raises :class:`DecodeError` naming problem and offset."""
        mv = memoryview(buf)
        env_size = self.envelope.size
        if len(mv) < env_size:
            raise DecodeError(
                "short", len(mv), f"need {env_size} bytes for the envelope, have {len(mv)}"
            )
        env = np.frombuffer(mv, self.envelope_dtype, count=1)[0]
        magic = int(env["magic"])
        if magic != self.magic:
            raise DecodeError(
                "bad_magic", self._off("magic"), f"expected 0x{self.magic:08x}, found 0x{magic:08x}"
            )
        sid, ver = int(env["schema_id"]), int(env["schema_version"])
        candidates = [s for (i, _), s in self._by_key.items() if i == sid]
        if not candidates:
            known = sorted({i for i, _ in self._by_key})
            raise DecodeError(
                "unknown_schema", self._off("schema_id"), f"schema id {sid} (known ids {known})"
            )
        schema = self._by_key.get((sid, ver))
        if schema is None:
            name = candidates[0].name
            raise DecodeError(
                "bad_version",
                self._off("schema_version"),
                f"{name} (id {sid}) version {ver}; supported: {self.versions(name)}",
            )
        payload_len = int(env["payload_len"])
        available = len(mv) - env_size
        if payload_len != available:
            raise DecodeError(
                "bad_length",
                self._off("payload_len"),
                f"payload_len {payload_len} but {available} bytes follow the envelope",
            )
        if payload_len < schema.header.size:
            raise DecodeError(
                "bad_length",
                self._off("payload_len"),
                f"{schema.name} header needs {schema.header.size} bytes, payload_len {payload_len}",
            )
        header = np.frombuffer(mv, schema.header.dtype, count=1, offset=env_size)
        if schema.item is None:
            if payload_len != schema.header.size:
                raise DecodeError(
                    "bad_length",
                    self._off("payload_len"),
                    f"{schema.name} is {schema.header.size} bytes, payload_len {payload_len}",
                )
            items = np.zeros(0, np.uint8)
        else:
            assert schema.count_field is not None
            count = int(header[0][schema.count_field])
            expected = schema.payload_size(count)
            if expected != payload_len:
                field_off = env_size + schema.header.field(schema.count_field).offset
                raise DecodeError(
                    "bad_length",
                    field_off,
                    f"{schema.name} {schema.count_field}={count} implies payload {expected} "
                    f"bytes, payload_len says {payload_len}",
                )
            items = np.frombuffer(
                mv, schema.item.dtype, count=count, offset=env_size + schema.header.size
            )
        return Message(
            schema=schema,
            sender_id=int(env["sender_id"]),
            nonce=int(env["nonce"]),
            origin_ts_ns=int(env["origin_ts_ns"]),
            header=header,
            items=items,
        )

    def packer(self, schema: Schema, n_items: int = 0) -> struct.Struct:
        """A precompiled ``struct.Struct`` for a whole message of ``schema`` with ``n_items``
        items: pack it with (envelope values..., header values..., item values... per item),
        in the declared field order without ``_pad*`` fields. For hot paths; the result is the
        same bytes :meth:`encode` produces (tested)."""
        if schema.item is None and n_items:
            raise ValueError(f"{schema.name} has no item records")
        fmt = "<" + self.envelope.struct_format + schema.header.struct_format
        if schema.item is not None:
            fmt += schema.item.struct_format * n_items
        return struct.Struct(fmt)

    def envelope_values(
        self, schema: Schema, n_items: int, sender_id: int, nonce: int, origin_ts_ns: int
    ) -> tuple[int, ...]:
        """Envelope values for :meth:`packer` in declared order."""
        return (
            self.magic,
            schema.id,
            schema.version,
            sender_id,
            schema.payload_size(n_items),
            nonce,
            origin_ts_ns,
        )

    def split_messages(self, frame: bytes) -> list[bytes]:
        """The messages packed back to back in one frame (a tick's LocalArbProblem and
        SharedSignals travel so: one ZeroMQ frame, one tag, one CurveZMQ box), cut where each
        envelope's ``payload_len`` says; a frame of one message comes back as it is. Every
        message must name the first's sender (one tag covers them all). Raises
        :class:`DecodeError` with the offset in the frame: a truncated envelope, a wrong magic,
        a length running past the end, a second sender. What each message holds is for
        :meth:`decode_values` to check."""
        env_size = self.envelope.size
        n = len(frame)
        if n >= env_size:
            unpack = self._env_struct.unpack_from
            magic, _sid, _ver, sender, payload_len, _nonce, _ts = unpack(frame)
            if magic == self.magic:
                end = env_size + payload_len
                if end == n:
                    return [frame]  # the common case: one message
                if end + env_size <= n:  # a tick: its problem, then its signals
                    magic2, _sid, _ver, sender2, payload_len2, _nonce, _ts = unpack(frame, end)
                    if (
                        magic2 == self.magic
                        and sender2 == sender
                        and end + env_size + payload_len2 == n
                    ):
                        return [frame[:end], frame[end:]]
        if n == 0:
            raise DecodeError("short", 0, f"an empty frame: an envelope needs {env_size} bytes")
        out: list[bytes] = []
        first_sender = -1
        at = 0
        while at < n:
            if n - at < env_size:
                raise DecodeError(
                    "short", at, f"{n - at} bytes left in the frame, an envelope needs {env_size}"
                )
            magic, _sid, _ver, sender, payload_len, _nonce, _ts = self._env_struct.unpack_from(
                frame, at
            )
            if magic != self.magic:
                raise DecodeError(
                    "bad_magic",
                    at + self._off("magic"),
                    f"message {len(out)} of the frame: expected 0x{self.magic:08x}, "
                    f"found 0x{magic:08x}",
                )
            end = at + env_size + payload_len
            if end > n:
                raise DecodeError(
                    "bad_length",
                    at + self._off("payload_len"),
                    f"message {len(out)} of the frame: payload_len {payload_len} runs "
                    f"{end - n} bytes past the frame's {n}",
                )
            if out and sender != first_sender:
                raise DecodeError(
                    "mixed_senders",
                    at + self._off("sender_id"),
                    f"message {len(out)} of the frame names sender {sender}, message 0 "
                    f"sender {first_sender}",
                )
            first_sender = sender
            out.append(frame[at:end])
            at = end
        return out

    def messages_of(self, frames: list[bytes]) -> list[bytes]:
        """The messages of a received ZeroMQ message: one frame is cut by
        :meth:`split_messages` (a tick's problem and signals, a datagram's reports); several
        frames are one message each (journals whose venue adapters sent a tick's problem and
        signals as two frames hold ticks so)."""
        return frames if len(frames) > 1 else self.split_messages(frames[0])

    def decode_values(self, buf: bytes | bytearray | memoryview) -> tuple[Schema, tuple[Any, ...]]:
        """Hot-path decode: ``(schema, values)`` where values are the envelope, header and item
        values in declared order without ``_pad*`` fields (as :meth:`packer` takes them).

        Same validation as :meth:`decode` on the envelope and lengths; on any inconsistency it
        defers to :meth:`decode`, which raises the specific :class:`DecodeError`."""
        env_size = self.envelope.size
        if len(buf) >= env_size:
            magic, sid, ver, _sender, payload_len, _nonce, _ts = self._env_struct.unpack_from(buf)
            known = self._decoded_shapes.get((sid, ver, payload_len))
            if known is not None and magic == self.magic and payload_len == len(buf) - env_size:
                values = known[1].unpack(buf)
                if known[2] < 0 or values[known[2]] == known[3]:
                    return known[0], values
            schema = self._by_key.get((sid, ver))
            if magic == self.magic and schema is not None and payload_len == len(buf) - env_size:
                count = 0
                if schema.item is not None:
                    if payload_len < schema.header.size:
                        self.decode(buf)
                    count = (payload_len - schema.header.size) // schema.item.size
                if schema.payload_size(count) == payload_len:
                    unpacker = self._unpackers.get((sid, ver, count))
                    if unpacker is None:
                        unpacker = self.packer(schema, count)
                        self._unpackers[(sid, ver, count)] = unpacker
                    values = unpacker.unpack(buf)
                    count_at = (
                        -1
                        if schema.count_field is None
                        else self._n_env_values + self._count_pos[(sid, ver)]
                    )
                    if count_at < 0 or values[count_at] == count:
                        if len(self._decoded_shapes) < _MAX_DECODED_SHAPES:
                            self._decoded_shapes[(sid, ver, payload_len)] = (
                                schema, unpacker, count_at, count,
                            )  # fmt: skip
                        return schema, values
        self.decode(buf)  # raises the specific error
        raise DecodeError(
            "inconsistent", 0, "message failed the fast-path checks"
        )  # pragma: no cover

    def _off(self, field: str) -> int:
        return self.envelope.field(field).offset

    # --- graphs ----------------------------------------------------------------------------
    def _parse_graph(self, name: str, data: Any) -> ContractGraph:
        where = f"graphs.{name}"
        if not isinstance(data, dict):
            raise ConfigError("must be a table", file=self.source, key=where)
        coordinator = self._parse_speaks(data.get("coordinator"), f"{where}.coordinator")
        adapters: dict[str, GraphRole] = {}
        venues: VenueRole | None = None
        if "venues" in data:
            venues = self._parse_venue_role(data["venues"], f"{where}.venues")
        for aname, adata in _table(data, "adapters", f"{self.source}: {where}").items():
            akey = f"{where}.adapters.{aname}"
            if not isinstance(adata, dict) or not isinstance(adata.get("kind"), str):
                raise ConfigError("needs a string 'kind'", file=self.source, key=akey)
            adapters[aname] = GraphRole(
                aname, adata["kind"], self._parse_speaks(adata.get("speaks"), f"{akey}.speaks")
            )
        return ContractGraph(name, str(data.get("doc", "")), coordinator, adapters, venues)

    def _parse_venue_role(self, data: Any, key: str) -> VenueRole:
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise ConfigError("needs a string 'kind'", file=self.source, key=key)
        count = data.get("count")
        bounds = (
            [int(c) for c in count]
            if isinstance(count, list)
            and all(isinstance(c, int) and not isinstance(c, bool) for c in count)
            else []
        )
        if len(bounds) != 2 or not 1 <= bounds[0] <= bounds[1]:
            raise ConfigError(
                f"must be [min, max] venue adapters with 1 <= min <= max, got {count!r}",
                file=self.source, key=f"{key}.count",
            )  # fmt: skip
        unknown = sorted(set(data) - {"kind", "count", "speaks", "doc"})
        if unknown:
            raise ConfigError("unknown key", file=self.source, key=f"{key}.{unknown[0]}")
        speaks = self._parse_speaks(data.get("speaks"), f"{key}.speaks")
        return VenueRole(data["kind"], speaks, bounds[0], bounds[1])

    def _parse_speaks(self, data: Any, key: str) -> dict[str, int]:
        if not isinstance(data, dict) or not data:
            raise ConfigError("must be a table of schema = version", file=self.source, key=key)
        out: dict[str, int] = {}
        for sname, ver in data.items():
            if sname not in self._latest:
                raise ConfigError(
                    f"unknown schema {sname!r}", file=self.source, key=f"{key}.{sname}"
                )
            if not isinstance(ver, int) or (sname, ver) not in self._by_name:
                raise ConfigError(
                    f"{sname} has no version {ver!r} (declared: {self.versions(sname)})",
                    file=self.source,
                    key=f"{key}.{sname}",
                )
            out[sname] = ver
        return out


def check_compatibility(
    registry: SchemaRegistry,
    graph_name: str,
    declared: Mapping[str, Mapping[str, int]],
    *,
    source: str,
    venues: Collection[str] = (),
) -> None:
    """Refuse a campaign whose adapters speak schema versions the graph does not accept.

    ``declared`` maps adapter name -> {schema: version} as the campaign's adapters declare them
    (an adapter absent from ``declared`` speaks the graph's versions); ``venues`` names the
    campaign's venue adapters, which take the graph's venue role (when it has one: then their
    number must be within its count). Raises :class:`ContractVersionError` naming adapter,
    schema and both versions.
    """
    graph = registry.graph(graph_name)
    if graph.venues is not None and venues:
        lo, hi = graph.venues.min_count, graph.venues.max_count
        if not lo <= len(venues) <= hi:
            raise ContractVersionError(
                f"graph '{graph_name}' takes {lo} to {hi} venue adapters, the campaign has "
                f"{len(venues)}",
                file=source,
                key="venues",
            )
    roles = graph.roles(venues)
    for aname in declared:
        if aname not in roles:
            raise ContractVersionError(
                f"adapter '{aname}' is not part of contract graph '{graph_name}' "
                f"(its adapters: {sorted(roles)})",
                file=source,
                key=f"adapters.{aname}",
            )
    for aname, role in sorted(roles.items()):
        speaks = declared.get(aname, role.speaks)
        for sname, required in sorted(role.speaks.items()):
            have = speaks.get(sname)
            key = f"adapters.{aname}.schemas.{sname}"
            if have is None:
                raise ContractVersionError(
                    f"adapter '{aname}' does not declare schema {sname}; graph '{graph_name}' "
                    f"requires {sname} v{required}",
                    file=source,
                    key=key,
                )
            coord = graph.coordinator.get(sname)
            if have != required or (coord is not None and coord != have):
                raise ContractVersionError(
                    f"adapter '{aname}' speaks {sname} v{have} but graph '{graph_name}' requires "
                    f"v{required} (coordinator speaks v{coord})",
                    file=source,
                    key=key,
                )


@cache
def default_registry() -> SchemaRegistry:
    """The registry shipped with the package (parsed once per process)."""
    text = resources.files("arbsphere").joinpath(REGISTRY_FILE).read_text(encoding="utf-8")
    return load_registry_text(text, source=REGISTRY_FILE)


def load_registry_text(text: str, *, source: str) -> SchemaRegistry:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=source) from exc
    return SchemaRegistry(data, source)


# --- parsing helpers ---------------------------------------------------------------------------
def _table(data: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"missing table [{key}]", file=source, key=key)
    return value


def _int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"must be an integer, got {value!r}", file=where, key=key)
    return value


def _parse_enums(data: Any, source: str) -> dict[str, type[IntEnum]]:
    """``[enums.<Name>]`` tables -> IntEnum / IntFlag classes (checked: names, codes)."""
    if not isinstance(data, dict):
        raise ContractError("must be a table of [enums.<Name>] tables", file=source, key="enums")
    out: dict[str, type[IntEnum]] = {}
    for name, spec in data.items():
        key = f"enums.{name}"
        if not name.isidentifier() or not isinstance(spec, dict):
            raise ContractError("an enum is a table named by an identifier", file=source, key=key)
        unknown = sorted(set(spec) - {"doc", "values", "flags"})
        if unknown:
            raise ContractError(
                f"unknown key {unknown[0]!r} (known: doc, values, flags)", file=source, key=key
            )
        doc, values, flags = spec.get("doc"), spec.get("values"), spec.get("flags", False)
        if not isinstance(doc, str) or not doc:
            raise ContractError("needs a doc string", file=source, key=f"{key}.doc")
        if not isinstance(flags, bool):
            raise ContractError(
                f"must be true or false, got {flags!r}", file=source, key=f"{key}.flags"
            )
        if not isinstance(values, dict) or not values:
            raise ContractError(
                "needs values = { NAME = code, ... }", file=source, key=f"{key}.values"
            )
        seen: dict[int, str] = {}
        for member, code in values.items():
            mkey = f"{key}.values.{member}"
            if not member.isidentifier() or member != member.upper() or member.startswith("_"):
                raise ContractError(
                    f"value names are UPPER_CASE identifiers, got {member!r}", file=source, key=mkey
                )
            if not isinstance(code, int) or isinstance(code, bool):
                raise ContractError(f"code must be an integer, got {code!r}", file=source, key=mkey)
            if code in seen:
                raise ContractError(
                    f"code {code} already names {seen[code]}", file=source, key=mkey
                )
            if flags and (code <= 0 or code & (code - 1)):
                raise ContractError(
                    f"a flag must be a power of two, got {code}", file=source, key=mkey
                )
            seen[code] = member
        base: Any = IntFlag if flags else IntEnum  # the functional API, by a name known now
        cls: type[IntEnum] = base(name, list(values.items()), module=__name__)
        cls.__doc__ = doc
        out[name] = cls
    return out


def _check_enum_fields(
    layout: Layout, part: str, enums: Mapping[str, type[IntEnum]], schema: str, source: str,
    index: int,
) -> None:  # fmt: skip
    """A field naming an enum: the enum is declared, the field an integer scalar every code
    fits."""
    for f in layout.fields:
        if f.enum is None:
            continue
        key = f"schemas[{index}].{part}.{f.name}"
        cls = enums.get(f.enum)
        if cls is None:
            raise ContractError(
                f"{schema} field {f.name} names enum {f.enum!r}, which is not declared "
                f"(declared: {', '.join(sorted(enums)) or 'none'})",
                file=source,
                key=key,
            )
        if f.type not in _INT_RANGES or f.count != 1:
            raise ContractError(
                f"{schema} field {f.name} carries enum {f.enum} but is {f.type}"
                f"{f'[{f.count}]' if f.count != 1 else ''}, not an integer scalar",
                file=source,
                key=key,
            )
        lo, hi = _INT_RANGES[f.type]
        codes = [int(m) for m in cls.__members__.values()]
        if issubclass(cls, IntFlag):
            codes.append(sum(codes))  # every flag at once
        for code in codes:
            if not lo <= code <= hi:
                raise ContractError(
                    f"{schema} field {f.name} ({f.type}) cannot carry enum {f.enum} code {code}"
                    f" ({lo}..{hi})",
                    file=source,
                    key=key,
                )


def _field_index(
    name: str, version: int, envelope: Layout, header: Layout, item: Layout | None, source: str,
    index: int,
) -> FieldIndex:  # fmt: skip
    where = f"{name} v{version}"
    env = _offsets(envelope)
    head = _offsets(header, len(env))
    env_names = {n for n, _p, _w in env}
    for part, fields in (("header", head), ("item", _offsets(item) if item else [])):
        for fname, _p, _w in fields:
            clash = fname in _RESERVED or (part == "header" and fname in env_names)
            if clash or fname.startswith("_") or fname.endswith("_"):
                raise ContractError(
                    f"{where} {part} field {fname!r} would shadow "
                    + ("an envelope field" if fname in env_names else "a FieldIndex name"),
                    file=source,
                    key=f"schemas[{index}].{part}.{fname}",
                )
    return FieldIndex(
        where,
        env + head,
        len(env),
        FieldOffsets(f"{where} item", _offsets(item) if item is not None else [], source),
        source,
    )


def _parse_schema(
    entry: Any, where: str, envelope: Layout, enums: Mapping[str, type[IntEnum]], source: str,
    index: int,
) -> Schema:  # fmt: skip
    if not isinstance(entry, dict):
        raise ConfigError("must be a table", file=where)
    name = entry.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"name must be an identifier, got {name!r}", file=where, key="name")
    sid = _int(entry, "id", where)
    version = _int(entry, "version", where)
    if not 0 < sid < 2**16 or not 0 < version < 2**16:
        raise ConfigError(f"id and version must be in 1..65535 ({sid}, {version})", file=where)
    header = build_layout(f"{name}.header", entry.get("header"), source=where)
    item_spec = entry.get("item")
    count_field = entry.get("count_field")
    item = None
    if item_spec is not None:
        item = build_layout(f"{name}.item", item_spec, source=where)
        if not isinstance(count_field, str):
            raise ConfigError(
                "a schema with items needs count_field", file=where, key="count_field"
            )
        try:
            f = header.field(count_field)
        except KeyError:
            raise ConfigError(
                f"count_field {count_field!r} is not a header field", file=where, key="count_field"
            ) from None
        if f.type not in ("u8", "u16", "u32") or f.count != 1:
            raise ConfigError(
                f"count_field {count_field!r} must be an unsigned scalar",
                file=where,
                key="count_field",
            )
    elif count_field is not None:
        raise ConfigError("count_field given but no item layout", file=where, key="count_field")
    label = f"{name} v{version}"
    _check_enum_fields(header, "header", enums, label, source, index)
    if item is not None:
        _check_enum_fields(item, "item", enums, label, source, index)
    return Schema(
        name=name,
        id=sid,
        version=version,
        doc=str(entry.get("doc", "")),
        header=header,
        item=item,
        count_field=count_field,
        fields=_field_index(name, version, envelope, header, item, source, index),
    )


def _default(name: str) -> Schema:
    return default_registry().schema(name)


#: The PlanLeg record (the PlanDelta item), the unit the delta-merge kernel works on.
PLAN_LEG_DTYPE: np.dtype[Any] = _default("PlanDelta").item.dtype  # type: ignore[union-attr]
#: The message envelope.
ENVELOPE_DTYPE: np.dtype[Any] = default_registry().envelope_dtype
#: Positions of the envelope's values in every schema's :meth:`SchemaRegistry.decode_values` tuple.
ENVELOPE_FIELDS: FieldOffsets = default_registry().envelope_fields

"""The canonical IR: schema registry, message envelope, encode/decode.

The registry (``contracts.toml``, shipped with the package) declares every IR record once. This
module turns it into :class:`Schema` objects with NumPy dtypes, encodes and decodes messages
(envelope + payload) and checks that the parties of a contract graph speak compatible schema
versions.

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
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from arbsphere.errors import ConfigError, ContractVersionError, DecodeError
from arbsphere.layout import Layout, build_layout

REGISTRY_FILE = "contracts.toml"
#: distinct (schema, version, payload length) shapes the decode fast path remembers
_MAX_DECODED_SHAPES = 4096


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

    @property
    def header_dtype(self) -> np.dtype[Any]:
        return self.header.dtype

    @property
    def item_dtype(self) -> np.dtype[Any] | None:
        return None if self.item is None else self.item.dtype

    def payload_size(self, count: int) -> int:
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


class Registry:
    """The schema registry loaded from its TOML declaration."""

    def __init__(self, data: Mapping[str, Any], source: str) -> None:
        self.source = source
        reg = _table(data, "registry", source)
        self.magic: int = _int(reg, "magic", f"{source}: [registry]")
        self.envelope = build_layout(
            "Envelope", reg.get("envelope"), source=f"{source}: [registry]"
        )
        self.envelope_dtype = self.envelope.dtype
        self._by_key: dict[tuple[int, int], Schema] = {}
        self._by_name: dict[tuple[str, int], Schema] = {}
        self._latest: dict[str, Schema] = {}
        schemas = data.get("schemas")
        if not isinstance(schemas, list) or not schemas:
            raise ConfigError("no [[schemas]] declared", file=source, key="schemas")
        for index, entry in enumerate(schemas):
            schema = _parse_schema(entry, f"{source}: schemas[{index}]")
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
        if version is None:
            if name not in self._latest:
                raise KeyError(f"unknown schema {name!r}; known: {sorted(self._latest)}")
            return self._latest[name]
        try:
            return self._by_name[(name, version)]
        except KeyError:
            raise KeyError(f"schema {name!r} has no version {version}") from None

    def schema_names(self) -> list[str]:
        return sorted(self._latest)

    def schemas(self) -> list[Schema]:
        return [self._by_key[k] for k in sorted(self._by_key)]

    def versions(self, name: str) -> list[int]:
        return sorted(v for (n, v) in self._by_name if n == name)

    def graph(self, name: str) -> ContractGraph:
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
    registry: Registry,
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
def default_registry() -> Registry:
    """The registry shipped with the package (parsed once per process)."""
    text = resources.files("arbsphere").joinpath(REGISTRY_FILE).read_text(encoding="utf-8")
    return load_registry_text(text, source=REGISTRY_FILE)


def load_registry_text(text: str, *, source: str) -> Registry:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=source) from exc
    return Registry(data, source)


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


def _parse_schema(entry: Any, where: str) -> Schema:
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
    return Schema(
        name=name,
        id=sid,
        version=version,
        doc=str(entry.get("doc", "")),
        header=header,
        item=item,
        count_field=count_field,
    )


def _default(name: str) -> Schema:
    return default_registry().schema(name)


#: The PlanLeg record (the PlanDelta item), the unit the delta-merge kernel works on.
PLAN_LEG_DTYPE: np.dtype[Any] = _default("PlanDelta").item.dtype  # type: ignore[union-attr]
#: The message envelope.
ENVELOPE_DTYPE: np.dtype[Any] = default_registry().envelope_dtype

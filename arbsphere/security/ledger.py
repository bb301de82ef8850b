"""The governance ledger of a campaign run: hash-chained entries, an RFC 6962 Merkle tree over
them, and signed checkpoints. This module owns the two ledger files of a result set, their
writer (:class:`LedgerWriter`) and their verifier (:func:`verify_ledger`).

Files (all integers little-endian)::

    ledger.bin                 file header (16 B): magic b"ARBSLEDG" | format version u16 (1) |
                               entry schema id u16 | entry schema version u16 | reserved u16 (0)
                               then per entry: length u32 | entry (length bytes)
    ledger.checkpoints.jsonl   one JSON object per line and checkpoint:
                               {"size", "root" (hex), "ts_ns", "signer", "signature" (hex),
                                "cosignatures": [{"signer", "signature" (hex)}, ...]}

An entry is the registry's ``AuditLogEvent`` header (96 B: event_kind u16, pad, actor u32,
subject u32, pad, seq u64, ts_ns i64, prev_hash[32], payload_hash[32]) followed by the payload,
the canonical JSON of the event's details (sorted keys, no whitespace, UTF-8, no NaN/Infinity).
``seq`` counts from 0; ``prev_hash`` is SHA-256 of the previous entry's bytes (32 zero bytes for
entry 0); ``payload_hash`` is SHA-256 of the payload. Each entry's bytes are one Merkle leaf.

A checkpoint signs (Ed25519) :func:`checkpoint_message` ``= b"arbsphere-ledger-checkpoint-v1\\n"
|| size u64 || root[32]``; cosigners (the venues) sign the same bytes. ``ts_ns`` is when the
checkpoint was taken, informational and not signed. A checkpoint's size may equal its
predecessor's (then so must its root).

:class:`EventKind` numbers are part of the file format and never change; new kinds get new
numbers (0 is never used)::

    1 RUN_START           6 CREDENTIAL_ISSUED    11 MESSAGE_REFUSED
    2 RUN_STOP            7 CREDENTIAL_ROTATED   12 BUDGET_SPENT
    3 CONFIG_HASH         8 CREDENTIAL_REFUSED   13 BUDGET_REFUSED
    4 ROLE_JOINED         9 CREDENTIAL_EXPIRED   14 PLAN_DELTA
    5 ROLE_LEFT          10 CREDENTIAL_REVOKED   15 AGGREGATION_ABORTED

Durability: :meth:`LedgerWriter.append` hands the whole record to the OS with one ``write()``
before it returns, so an accepted entry survives a crash of the process; it is fsynced by
:meth:`~LedgerWriter.checkpoint` (before the checkpoint line is written, so a checkpoint never
covers entries a power loss can take away), by :meth:`~LedgerWriter.close`, and on every append
with ``sync_every_append=True``. The files are only ever appended to, except that
:meth:`~LedgerWriter.add_cosignature` replaces the checkpoints file atomically (write, fsync,
rename) with the same lines plus one cosignature.

Reopening: a :class:`LedgerWriter` on a directory that already holds a ledger checks it (every
entry, the chain, every checkpoint's root; not the signatures, it has no trusted keys) and
continues it. A ledger with a torn tail (a crash inside a ``write()``) or any other damage is
refused, never repaired. One writer per directory at a time (an exclusive ``flock``).

Every refusal is a :class:`~arbsphere.errors.LedgerError` (or its :class:`ProofError`) whose
``reason`` is a short tag, ``path`` the file and ``index`` the entry number where known.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import struct
import threading
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from arbsphere.clock import Clock
from arbsphere.contracts import default_registry
from arbsphere.errors import LayoutError, LedgerError, ProofError
from arbsphere.security.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion

LEDGER_FILE = "ledger.bin"
CHECKPOINTS_FILE = "ledger.checkpoints.jsonl"
FILE_MAGIC = b"ARBSLEDG"
FORMAT_VERSION = 1
CHECKPOINT_DOMAIN = b"arbsphere-ledger-checkpoint-v1\n"
MAX_ENTRY_BYTES = 1 << 20
HASH_LEN = 32
SIGNATURE_LEN = 64
ZERO_HASH = bytes(HASH_LEN)

_SCHEMA = default_registry().schema("AuditLogEvent")
_HEADER = struct.Struct("<" + _SCHEMA.header.struct_format)
_FILE_HEADER = struct.Struct("<8sHHHH")
_LEN = struct.Struct("<I")
_FIELDS = ("event_kind", "actor", "subject", "seq", "ts_ns", "prev_hash", "payload_hash")
if _SCHEMA.header.value_fields != _FIELDS or _HEADER.size != _SCHEMA.header.size:
    raise LayoutError(
        f"AuditLogEvent v{_SCHEMA.version} has fields {_SCHEMA.header.value_fields} "
        f"({_SCHEMA.header.size} B); the ledger is written for {_FIELDS} ({_HEADER.size} B)"
    )
HEADER_SIZE = _HEADER.size
_FILE_HEADER_BYTES = _FILE_HEADER.pack(FILE_MAGIC, FORMAT_VERSION, _SCHEMA.id, _SCHEMA.version, 0)
_U32_MAX = 2**32 - 1
_I64 = (-(2**63), 2**63 - 1)


class EventKind(IntEnum):
    """Kinds of governance events. The numbers are part of the file format."""

    RUN_START = 1
    RUN_STOP = 2
    CONFIG_HASH = 3
    ROLE_JOINED = 4
    ROLE_LEFT = 5
    CREDENTIAL_ISSUED = 6
    CREDENTIAL_ROTATED = 7
    CREDENTIAL_REFUSED = 8
    CREDENTIAL_EXPIRED = 9
    CREDENTIAL_REVOKED = 10
    MESSAGE_REFUSED = 11
    BUDGET_SPENT = 12
    BUDGET_REFUSED = 13
    PLAN_DELTA = 14
    AGGREGATION_ABORTED = 15


_KINDS = frozenset(int(k) for k in EventKind)


# --- entries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerEntry:
    """One decoded entry. ``raw`` is its bytes (header + payload), ``offset`` the byte offset of
    its length prefix in ``ledger.bin``."""

    seq: int
    kind: EventKind
    actor: int
    subject: int
    ts_ns: int
    prev_hash: bytes
    payload_hash: bytes
    details: dict[str, Any]
    raw: bytes
    offset: int

    @property
    def entry_hash(self) -> bytes:
        """SHA-256 of the entry's bytes (the next entry's ``prev_hash``)."""
        return hashlib.sha256(self.raw).digest()

    @property
    def leaf_hash(self) -> bytes:
        """The entry's Merkle leaf hash."""
        return leaf_hash(self.raw)


def canonical_details(details: Mapping[str, Any]) -> bytes:
    """The canonical payload bytes of ``details``: sorted keys, no whitespace, UTF-8.

    ``details`` must be JSON-native (dicts with str keys, lists, str, int, finite float, bool,
    None) so that decoding the payload gives back an equal dict; anything else is refused."""
    if not isinstance(details, Mapping):
        raise LedgerError(
            f"details must be a dict, got {type(details).__name__}", reason="bad_details"
        )
    try:
        text = json.dumps(
            details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        payload = text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise LedgerError(f"details are not canonical JSON: {exc}", reason="bad_details") from exc
    if json.loads(payload) != details:
        raise LedgerError(
            f"details do not survive a JSON round trip (tuples, non-str keys?): {text[:200]}",
            reason="bad_details",
        )
    return payload


def _encode_entry(
    kind: int, actor: int, subject: int, seq: int, ts_ns: int, prev: bytes, payload: bytes
) -> bytes:
    digest = hashlib.sha256(payload).digest()
    return _HEADER.pack(kind, actor, subject, seq, ts_ns, prev, digest) + payload


def _decode_entry(raw: bytes, index: int, offset: int, prev: bytes, path: str) -> LedgerEntry:
    """Decode and check one entry (its bytes ``raw``) expected at ``index`` after an entry
    whose hash is ``prev``."""

    def fail(message: str, reason: str) -> LedgerError:
        return LedgerError(
            f"{message} (entry at byte offset {offset})", reason=reason, path=path, index=index
        )

    kind, actor, subject, seq, ts_ns, prev_hash, payload_hash = _HEADER.unpack_from(raw)
    if _HEADER.pack(kind, actor, subject, seq, ts_ns, prev_hash, payload_hash) != raw[:HEADER_SIZE]:
        raise fail("header padding bytes are not zero", "nonzero_padding")
    if kind not in _KINDS:
        raise fail(f"unknown event kind {kind}", "unknown_kind")
    if seq != index:
        raise fail(f"seq is {seq}, expected {index}", "seq")
    if prev_hash != prev:
        raise fail(
            f"prev_hash {prev_hash.hex()} is not the SHA-256 of entry {index - 1} "
            f"({prev.hex()}); that entry or this prev_hash was altered"
            if index
            else f"prev_hash of entry 0 is {prev_hash.hex()}, expected zeros",
            "chain",
        )
    payload = raw[HEADER_SIZE:]
    if hashlib.sha256(payload).digest() != payload_hash:
        raise fail("payload does not match payload_hash", "payload_hash")
    try:
        details = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise fail(f"payload is not UTF-8 JSON: {exc}", "payload") from exc
    if not isinstance(details, dict):
        raise fail(f"payload is a JSON {type(details).__name__}, not an object", "payload")
    try:
        canonical = canonical_details(details)
    except LedgerError as exc:
        raise fail(f"payload is not canonical JSON: {exc}", "non_canonical") from exc
    if canonical != payload:
        raise fail(
            "payload is not canonical JSON (key order, whitespace, escapes)", "non_canonical"
        )
    return LedgerEntry(
        seq=seq,
        kind=EventKind(kind),
        actor=actor,
        subject=subject,
        ts_ns=ts_ns,
        prev_hash=prev_hash,
        payload_hash=payload_hash,
        details=details,
        raw=raw,
        offset=offset,
    )


def _parse_ledger(data: bytes, path: str) -> list[LedgerEntry]:
    """Every entry of a ``ledger.bin`` image, checked (header, lengths, seq, chain, payload)."""
    if len(data) < _FILE_HEADER.size:
        raise LedgerError(
            f"file is {len(data)} bytes, shorter than its {_FILE_HEADER.size}-byte header",
            reason="truncated",
            path=path,
        )
    magic, version, schema_id, schema_version, reserved = _FILE_HEADER.unpack_from(data)
    if magic != FILE_MAGIC or reserved != 0:
        raise LedgerError(
            f"bad file header {data[: _FILE_HEADER.size].hex()}", reason="file_header", path=path
        )
    if version != FORMAT_VERSION or (schema_id, schema_version) != (_SCHEMA.id, _SCHEMA.version):
        raise LedgerError(
            f"format version {version}, entry schema {schema_id} v{schema_version}; this reader "
            f"reads version {FORMAT_VERSION}, schema {_SCHEMA.id} v{_SCHEMA.version}",
            reason="file_version",
            path=path,
        )
    entries: list[LedgerEntry] = []
    offset = _FILE_HEADER.size
    prev = ZERO_HASH
    while offset < len(data):
        index = len(entries)
        remain = len(data) - offset
        if remain < _LEN.size:
            raise LedgerError(
                f"truncated: length prefix at byte offset {offset} needs {_LEN.size} bytes, "
                f"{remain} remain",
                reason="truncated",
                path=path,
                index=index,
            )
        (length,) = _LEN.unpack_from(data, offset)
        if not HEADER_SIZE <= length <= MAX_ENTRY_BYTES:
            raise LedgerError(
                f"entry length {length} at byte offset {offset} outside "
                f"{HEADER_SIZE}..{MAX_ENTRY_BYTES}",
                reason="bad_length",
                path=path,
                index=index,
            )
        if remain - _LEN.size < length:
            raise LedgerError(
                f"truncated: entry at byte offset {offset} declares {length} bytes, "
                f"{remain - _LEN.size} remain",
                reason="truncated",
                path=path,
                index=index,
            )
        raw = data[offset + _LEN.size : offset + _LEN.size + length]
        entry = _decode_entry(raw, index, offset, prev, path)
        entries.append(entry)
        prev = entry.entry_hash
        offset += _LEN.size + length
    return entries


def read_entries(path_dir: str | os.PathLike[str]) -> list[LedgerEntry]:
    """The decoded entries of the ledger in ``path_dir`` (for reports). Checks the file's
    structure and hash chain, raising :class:`LedgerError` on damage; checkpoints, proofs and
    signatures are :func:`verify_ledger`'s job."""
    path = Path(path_dir) / LEDGER_FILE
    return _parse_ledger(_read(path), str(path))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LedgerError(f"cannot read: {exc}", reason="io", path=str(path)) from exc


# --- checkpoints ---------------------------------------------------------------------------


def checkpoint_message(size: int, root: bytes) -> bytes:
    """The bytes a checkpoint's signer and cosigners sign: domain || size u64 LE || root."""
    if not 0 <= size < 2**64:
        raise ValueError(f"checkpoint size {size} outside u64")
    if len(root) != HASH_LEN:
        raise ValueError(f"checkpoint root must be {HASH_LEN} bytes, got {len(root)}")
    return CHECKPOINT_DOMAIN + size.to_bytes(8, "little") + bytes(root)


@dataclass(frozen=True)
class Cosignature:
    """A cosigner's Ed25519 signature over a checkpoint's message."""

    signer: str
    signature: bytes


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: the first ``size`` entries have Merkle root ``root``."""

    size: int
    root: bytes
    ts_ns: int
    signer: str
    signature: bytes
    cosignatures: tuple[Cosignature, ...] = ()

    @property
    def message(self) -> bytes:
        return checkpoint_message(self.size, self.root)

    def to_json(self) -> str:
        """The checkpoint's line in ``ledger.checkpoints.jsonl`` (without newline)."""
        return json.dumps(
            {
                "size": self.size,
                "root": self.root.hex(),
                "ts_ns": self.ts_ns,
                "signer": self.signer,
                "signature": self.signature.hex(),
                "cosignatures": [
                    {"signer": c.signer, "signature": c.signature.hex()} for c in self.cosignatures
                ],
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, line: str, number: int, path: str) -> Checkpoint:
        """Parse checkpoint ``number`` (0-based line number) of the checkpoints file."""
        try:
            obj = json.loads(line)
            size, ts_ns = obj["size"], obj["ts_ns"]
            if not (_is_int(size) and 0 <= size < 2**64 and _is_int(ts_ns)):
                raise ValueError(f"size {size!r} / ts_ns {ts_ns!r} are not integers in range")
            cosigs = tuple(
                Cosignature(_name(c["signer"]), _hex(c["signature"], SIGNATURE_LEN))
                for c in obj["cosignatures"]
            )
            if set(obj) != {"size", "root", "ts_ns", "signer", "signature", "cosignatures"}:
                raise ValueError(f"keys {sorted(obj)}")
            return cls(
                size,
                _hex(obj["root"], HASH_LEN),
                ts_ns,
                _name(obj["signer"]),
                _hex(obj["signature"], SIGNATURE_LEN),
                cosigs,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerError(
                f"checkpoint {number} (line {number + 1}) is malformed: {exc}",
                reason="checkpoint_format",
                path=path,
            ) from exc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"signer name {value!r} is not a non-empty string")
    return value


def _hex(value: Any, length: int) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a hex string")
    raw = bytes.fromhex(value)
    if len(raw) != length or raw.hex() != value:
        raise ValueError(f"{value!r} is not {length} bytes of lower-case hex")
    return raw


def _read_checkpoints(path: Path) -> list[Checkpoint]:
    if not path.exists():
        return []
    try:
        text = _read(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LedgerError(
            f"not UTF-8 at byte {exc.start}", reason="checkpoint_format", path=str(path)
        ) from exc
    lines = text.split("\n")
    if lines[-1] != "":
        raise LedgerError(
            f"checkpoint {len(lines) - 1} (line {len(lines)}) is torn (no newline)",
            reason="checkpoint_format",
            path=str(path),
        )
    return [Checkpoint.from_json(line, i, str(path)) for i, line in enumerate(lines[:-1])]


def _check_roots(checkpoints: list[Checkpoint], tree: MerkleTree, path: str) -> None:
    """Each checkpoint's size is within the tree and not below its predecessor's, and its
    root is the tree's root at that size."""
    previous = 0
    for k, cp in enumerate(checkpoints):
        if cp.size > tree.size:
            raise LedgerError(
                f"checkpoint {k} covers {cp.size} entries, the ledger has {tree.size}",
                reason="checkpoint_size",
                path=path,
            )
        if cp.size < previous:
            raise LedgerError(
                f"checkpoint {k} size {cp.size} is below checkpoint {k - 1}'s {previous}",
                reason="checkpoint_order",
                path=path,
            )
        if cp.root != tree.root(cp.size):
            raise LedgerError(
                f"checkpoint {k} root {cp.root.hex()} is not the root of the first "
                f"{cp.size} entries ({tree.root(cp.size).hex()})",
                reason="checkpoint_root",
                path=path,
            )
        previous = cp.size


# --- the writer ----------------------------------------------------------------------------


class LedgerWriter:
    """Appends governance events to the ledger in ``path_dir`` and writes signed checkpoints.

    Thread-safe: one lock serialises appends, checkpoints and cosignatures; the clock is read
    under it, so ``ts_ns`` follows ``seq`` order for a monotonic clock."""

    def __init__(
        self, path_dir: str | os.PathLike[str], clock: Clock, *, sync_every_append: bool = False
    ) -> None:
        self.directory = Path(path_dir)
        self._clock = clock
        self._sync_every_append = sync_every_append
        self._lock = threading.Lock()
        self._failed: LedgerError | None = None
        self._closed = False
        self._path = self.directory / LEDGER_FILE
        self._cp_path = self.directory / CHECKPOINTS_FILE
        self._tree = MerkleTree()
        self._prev = ZERO_HASH
        self._checkpoints: list[Checkpoint] = []
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise LedgerError(f"cannot open: {exc}", reason="io", path=str(self._path)) from exc
        try:
            self._lock_file()
            self._load_or_create()
        except BaseException:
            os.close(self._fd)
            raise

    # --- public API ----------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of entries (the next entry's seq)."""
        return self._tree.size

    def root(self) -> bytes:
        """Merkle root of all entries."""
        with self._lock:
            return self._tree.root()

    @property
    def checkpoints(self) -> tuple[Checkpoint, ...]:
        with self._lock:
            return tuple(self._checkpoints)

    def append(self, kind: EventKind, actor: int, subject: int, details: Mapping[str, Any]) -> int:
        """Append one event; returns its seq. The entry is handed to the OS before this
        returns (fsynced too with ``sync_every_append``)."""
        if kind not in _KINDS:
            raise LedgerError(f"unknown event kind {kind!r}", reason="bad_field")
        for name, value in (("actor", actor), ("subject", subject)):
            if not _is_int(value) or not 0 <= value <= _U32_MAX:
                raise LedgerError(f"{name} {value!r} is not a u32", reason="bad_field")
        payload = canonical_details(details)
        if HEADER_SIZE + len(payload) > MAX_ENTRY_BYTES:
            raise LedgerError(
                f"details of {len(payload)} bytes exceed the entry limit {MAX_ENTRY_BYTES}",
                reason="bad_details",
            )
        with self._lock:
            self._check_usable("append")
            seq = self._tree.size
            ts_ns = self._clock.now_ns()
            if not _I64[0] <= ts_ns <= _I64[1]:
                raise LedgerError(f"clock returned {ts_ns}, outside i64", reason="bad_field")
            entry = _encode_entry(kind, actor, subject, seq, ts_ns, self._prev, payload)
            self._write(self._fd, _LEN.pack(len(entry)) + entry, sync=self._sync_every_append)
            self._tree.append(leaf_hash(entry))
            self._prev = hashlib.sha256(entry).digest()
            return seq

    def checkpoint(
        self,
        signer_name: str,
        signing_key: Ed25519PrivateKey,
        cosigners: Mapping[str, Ed25519PrivateKey] | None = None,
    ) -> Checkpoint:
        """Sign the current size and root (fsyncing the entries first), with the given
        cosigners' signatures, and append the checkpoint line (fsynced)."""
        names = [signer_name, *(cosigners or {})]
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise LedgerError(
                f"signer names {names} must be distinct non-empty strings", reason="bad_signer"
            )
        with self._lock:
            self._check_usable("checkpoint")
            self._sync(self._fd)
            size, root = self._tree.size, self._tree.root()
            message = checkpoint_message(size, root)
            cp = Checkpoint(
                size=size,
                root=root,
                ts_ns=self._clock.now_ns(),
                signer=signer_name,
                signature=signing_key.sign(message),
                cosignatures=tuple(
                    Cosignature(name, key.sign(message)) for name, key in (cosigners or {}).items()
                ),
            )
            self._append_checkpoint_line(cp)
            self._checkpoints.append(cp)
            return cp

    def add_checkpoint(
        self,
        size: int,
        signer: str,
        signature: bytes,
        cosignatures: Mapping[str, bytes],
        public_keys: Mapping[str, Ed25519PublicKey],
    ) -> Checkpoint:
        """Append a checkpoint of the first ``size`` entries signed elsewhere (the coordinator
        and the venues sign :func:`checkpoint_message` over the wire). Every signature is
        verified against ``public_keys`` first; a size below the last checkpoint's is refused.
        The entries are fsynced before the checkpoint line is written."""
        names = [signer, *cosignatures]
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise LedgerError(
                f"signer names {names} must be distinct non-empty strings", reason="bad_signer"
            )
        with self._lock:
            self._check_usable("add_checkpoint")
            if not 0 <= size <= self._tree.size:
                raise LedgerError(
                    f"checkpoint size {size} outside 0..{self._tree.size}", reason="checkpoint_size"
                )
            if self._checkpoints and size < self._checkpoints[-1].size:
                raise LedgerError(
                    f"checkpoint size {size} below the last one's {self._checkpoints[-1].size}",
                    reason="checkpoint_size",
                )
            root = self._tree.root(size)
            message = checkpoint_message(size, root)
            for name, sig in ((signer, signature), *cosignatures.items()):
                key = public_keys.get(name)
                if key is None:
                    raise LedgerError(f"no public key for signer {name}", reason="unknown_signer")
                try:
                    key.verify(bytes(sig), message)
                except InvalidSignature as exc:
                    raise LedgerError(
                        f"signature of {name} on checkpoint of size {size} does not verify",
                        reason="bad_signature",
                    ) from exc
            self._sync(self._fd)
            cp = Checkpoint(
                size=size,
                root=root,
                ts_ns=self._clock.now_ns(),
                signer=signer,
                signature=bytes(signature),
                cosignatures=tuple(Cosignature(n, bytes(sig)) for n, sig in cosignatures.items()),
            )
            self._append_checkpoint_line(cp)
            self._checkpoints.append(cp)
            return cp

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 6962 consistency proof between two sizes of this ledger's tree."""
        with self._lock:
            return self._tree.consistency_proof(old_size, new_size)

    def root_at(self, size: int) -> bytes:
        """Merkle root of the first ``size`` entries."""
        with self._lock:
            return self._tree.root(size)

    def add_cosignature(
        self,
        size: int,
        signer: str,
        signature: bytes,
        *,
        public_key: Ed25519PublicKey | None = None,
    ) -> Checkpoint:
        """Add ``signer``'s signature to the latest checkpoint of ``size`` (a venue cosigning
        :func:`checkpoint_message` over the wire). With ``public_key`` the signature is
        verified first; either way :func:`verify_ledger` verifies it later."""
        if not isinstance(signer, str) or not signer:
            raise LedgerError(
                f"cosigner name {signer!r} must be a non-empty string", reason="bad_signer"
            )
        if len(signature) != SIGNATURE_LEN:
            raise LedgerError(
                f"signature of {signer} is {len(signature)} bytes, not {SIGNATURE_LEN}",
                reason="bad_signature",
            )
        with self._lock:
            self._check_usable("add_cosignature")
            matches = [k for k, cp in enumerate(self._checkpoints) if cp.size == size]
            if not matches:
                raise LedgerError(f"no checkpoint of size {size}", reason="checkpoint_size")
            k = matches[-1]
            cp = self._checkpoints[k]
            if signer == cp.signer or any(c.signer == signer for c in cp.cosignatures):
                raise LedgerError(
                    f"checkpoint {k} is already signed by {signer}", reason="duplicate_cosigner"
                )
            if public_key is not None:
                try:
                    public_key.verify(bytes(signature), cp.message)
                except InvalidSignature as exc:
                    raise LedgerError(
                        f"cosignature of {signer} on checkpoint {k} does not verify",
                        reason="bad_signature",
                    ) from exc
            updated = Checkpoint(
                cp.size,
                cp.root,
                cp.ts_ns,
                cp.signer,
                cp.signature,
                (*cp.cosignatures, Cosignature(signer, bytes(signature))),
            )
            lines = [c.to_json() for c in self._checkpoints]
            lines[k] = updated.to_json()
            self._replace_checkpoints("".join(line + "\n" for line in lines))
            self._checkpoints[k] = updated
            return updated

    def close(self) -> None:
        """Fsync and close the ledger (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._failed is None:
                    self._sync(self._fd)
            finally:
                os.close(self._fd)  # also releases the flock

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------
    def _lock_file(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise LedgerError(
                "another writer holds this ledger", reason="locked", path=str(self._path)
            ) from exc

    def _load_or_create(self) -> None:
        path = str(self._path)
        data = _read(self._path)
        if not data:
            if self._cp_path.exists() and self._cp_path.stat().st_size:
                raise LedgerError(
                    "checkpoints exist but the ledger is empty",
                    reason="checkpoint_size",
                    path=str(self._cp_path),
                )
            self._write(self._fd, _FILE_HEADER_BYTES, sync=True)
            self._sync_dir()
            return
        entries = _parse_ledger(data, path)
        for entry in entries:
            self._tree.append(entry.leaf_hash)
        if entries:
            self._prev = entries[-1].entry_hash
        self._checkpoints = _read_checkpoints(self._cp_path)
        _check_roots(self._checkpoints, self._tree, str(self._cp_path))

    def _check_usable(self, method: str) -> None:
        if self._failed is not None:
            raise LedgerError(
                f"{method}: the writer failed earlier: {self._failed}",
                reason="failed",
                path=str(self._path),
            ) from self._failed
        if self._closed:
            raise LedgerError(f"{method} after close", reason="closed", path=str(self._path))

    def _write(self, fd: int, data: bytes, *, sync: bool) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        except OSError as exc:
            self._failed = LedgerError(f"write failed: {exc}", reason="io", path=str(self._path))
            raise self._failed from exc

    def _sync(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            self._failed = LedgerError(f"fsync failed: {exc}", reason="io", path=str(self._path))
            raise self._failed from exc

    def _sync_dir(self) -> None:
        dfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._sync(dfd)
        finally:
            os.close(dfd)

    def _append_checkpoint_line(self, cp: Checkpoint) -> None:
        try:
            fd = os.open(self._cp_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise LedgerError(f"cannot open: {exc}", reason="io", path=str(self._cp_path)) from exc
        try:
            self._write(fd, (cp.to_json() + "\n").encode(), sync=True)
        finally:
            os.close(fd)
        if len(self._checkpoints) == 0:
            self._sync_dir()

    def _replace_checkpoints(self, text: str) -> None:
        tmp = self._cp_path.with_suffix(".jsonl.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
            try:
                self._write(fd, text.encode(), sync=True)
            finally:
                os.close(fd)
            os.replace(tmp, self._cp_path)
        except OSError as exc:
            raise LedgerError(
                f"cannot replace: {exc}", reason="io", path=str(self._cp_path)
            ) from exc
        self._sync_dir()


# --- verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerVerification:
    """What :func:`verify_ledger` checked: counts and the final (checkpointed) tree head.
    ``kinds`` has every :class:`EventKind` name (in number order), zero when absent."""

    events: int
    checkpoints: int
    size: int
    root_hex: str
    kinds: dict[str, int] = field(default_factory=dict)
    final_signer: str = ""
    final_cosigners: tuple[str, ...] = ()


def _verify_signature(
    trusted: Mapping[str, Ed25519PublicKey],
    signer: str,
    signature: bytes,
    message: bytes,
    what: str,
    path: str,
) -> None:
    key = trusted.get(signer)
    if key is None:
        raise LedgerError(
            f"{what}: signer {signer!r} is not trusted", reason="unknown_signer", path=path
        )
    try:
        key.verify(signature, message)
    except InvalidSignature as exc:
        raise LedgerError(
            f"{what}: signature of {signer!r} does not verify", reason="bad_signature", path=path
        ) from exc


def _verify_checkpoint_signatures(
    k: int, cp: Checkpoint, trusted: Mapping[str, Ed25519PublicKey], path: str
) -> None:
    _verify_signature(trusted, cp.signer, cp.signature, cp.message, f"checkpoint {k}", path)
    seen = {cp.signer}
    for c in cp.cosignatures:
        if c.signer in seen:
            raise LedgerError(
                f"checkpoint {k}: {c.signer!r} signs more than once",
                reason="duplicate_cosigner",
                path=path,
            )
        seen.add(c.signer)
        _verify_signature(
            trusted, c.signer, c.signature, cp.message, f"checkpoint {k} cosignature", path
        )


def verify_ledger(
    path_dir: str | os.PathLike[str],
    trusted: Mapping[str, Ed25519PublicKey],
    *,
    require_cosigners: Collection[str] = (),
    expected_size: int | None = None,
    expected_root: bytes | None = None,
) -> LedgerVerification:
    """Re-read and verify the ledger in ``path_dir``; raise on the first failure.

    Checks, in order: the file header; every length prefix and entry (a torn tail names the
    entry and byte offset); seq contiguous from 0; the prev_hash chain; every payload_hash
    and canonical payload; then every checkpoint: well-formed, size within the ledger and not
    decreasing, root equal to the recomputed tree root at that size, signature and
    cosignatures by trusted keys (an unknown signer is refused), and a consistency proof from
    the previous checkpoint (generated from the tree, checked by :func:`verify_consistency`);
    that a checkpoint exists and the last one covers every entry; an inclusion proof of every
    entry against the last checkpoint; the ``require_cosigners`` on the last checkpoint; and,
    if given, the anchor ``expected_size``/``expected_root`` (e.g. from the manifest)."""
    directory = Path(path_dir)
    path, cp_path = str(directory / LEDGER_FILE), str(directory / CHECKPOINTS_FILE)
    entries = _parse_ledger(_read(directory / LEDGER_FILE), path)
    tree = MerkleTree([e.leaf_hash for e in entries])
    checkpoints = _read_checkpoints(directory / CHECKPOINTS_FILE)
    _check_roots(checkpoints, tree, cp_path)
    _verify_checkpoint_chain(checkpoints, tree, trusted, cp_path)
    final = _final_checkpoint(checkpoints, len(entries), path, cp_path)
    _verify_inclusions(entries, tree, final, path)
    cosigners = tuple(c.signer for c in final.cosignatures)
    missing = sorted(set(require_cosigners) - set(cosigners))
    if missing:
        raise LedgerError(
            f"last checkpoint ({len(checkpoints) - 1}) lacks cosignatures of {missing}",
            reason="missing_cosigner",
            path=cp_path,
        )
    _check_anchor(final, expected_size, expected_root, path)
    kinds = Counter({k.name: 0 for k in EventKind})
    kinds.update(e.kind.name for e in entries)
    return LedgerVerification(
        events=len(entries),
        checkpoints=len(checkpoints),
        size=final.size,
        root_hex=final.root.hex(),
        kinds={k.name: kinds[k.name] for k in EventKind},
        final_signer=final.signer,
        final_cosigners=cosigners,
    )


def _verify_checkpoint_chain(
    checkpoints: list[Checkpoint],
    tree: MerkleTree,
    trusted: Mapping[str, Ed25519PublicKey],
    cp_path: str,
) -> None:
    """Every checkpoint's signatures, and a consistency proof from the one before it."""
    for k, cp in enumerate(checkpoints):
        _verify_checkpoint_signatures(k, cp, trusted, cp_path)
        if k:
            prev = checkpoints[k - 1]
            try:
                verify_consistency(
                    prev.size,
                    cp.size,
                    prev.root,
                    cp.root,
                    tree.consistency_proof(prev.size, cp.size),
                )
            except ProofError as exc:
                raise ProofError(
                    f"checkpoints {k - 1}->{k}: {exc}", reason=exc.reason, path=cp_path
                ) from exc


def _final_checkpoint(
    checkpoints: list[Checkpoint], n_entries: int, path: str, cp_path: str
) -> Checkpoint:
    """The last checkpoint, which must exist and cover every entry."""
    if not checkpoints:
        raise LedgerError(
            "no checkpoint: a run must end with a checkpoint covering every entry",
            reason="no_checkpoint",
            path=cp_path,
        )
    final = checkpoints[-1]
    if final.size != n_entries:
        raise LedgerError(
            f"{n_entries - final.size} entries after the last checkpoint (size {final.size})",
            reason="uncovered_entries",
            path=path,
            index=final.size,
        )
    return final


def _verify_inclusions(
    entries: list[LedgerEntry], tree: MerkleTree, final: Checkpoint, path: str
) -> None:
    """An inclusion proof of every entry against the last checkpoint."""
    for entry in entries:
        try:
            verify_inclusion(
                entry.leaf_hash,
                entry.seq,
                final.size,
                tree.inclusion_proof(entry.seq, final.size),
                final.root,
            )
        except ProofError as exc:
            raise ProofError(str(exc), reason=exc.reason, path=path, index=entry.seq) from exc


def _check_anchor(
    final: Checkpoint, expected_size: int | None, expected_root: bytes | None, path: str
) -> None:
    """The last checkpoint against the anchor kept elsewhere (e.g. in the manifest), if any."""
    if expected_size is not None and expected_size != final.size:
        raise LedgerError(
            f"ledger size {final.size}, the anchor says {expected_size}",
            reason="anchor_mismatch",
            path=path,
        )
    if expected_root is not None and bytes(expected_root) != final.root:
        raise LedgerError(
            f"ledger root {final.root.hex()}, the anchor says {bytes(expected_root).hex()}",
            reason="anchor_mismatch",
            path=path,
        )

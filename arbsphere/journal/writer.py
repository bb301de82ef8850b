"""The journal writer: batched appends into a preallocated buffer, one ``write()`` per batch.

``append`` packs one record's header and payload into a preallocated buffer (the CRCs are
filled for the whole batch by a Numba kernel when the batch is written); ``append_many`` packs
an array of records, CRCs included, in one kernel call. A batch is written with one
``write()`` when the buffer is full, when the durability mode pushes (below), on
``flush``/``sync``/``head``/``close``, and before a segment rolls; the chain is hashed per
batch with one ``update()``. Nothing reads a clock except the injected
:class:`~arbsphere.clock.Clock`, and only for ``interval_ns``.

Durability modes. :attr:`JournalWriter.durable_seq` is the highest sequence whose mode's
promise holds *now*; it never moves before the promise holds (it is set after ``write()`` or
``fdatasync`` returned). :attr:`JournalWriter.written_seq` is the highest sequence handed to
the OS, whatever the mode.

=============  =====================================  ===============  ================
mode           records are pushed                     process crash    power loss
=============  =====================================  ===============  ================
none           written when the buffer fills, at the  written records  anything not yet
               ``interval_*`` triggers if set, on     survive          written back by
               flush/sync/close; never fsynced                         the kernel lost
interval       written as ``none``; fsynced when      written records  at most one
               ``interval_records`` are unsynced or   survive          window of records
               ``interval_ns`` passed since the                        lost
               oldest unsynced one was appended
every_record   written and fsynced before            nothing           nothing
               ``append``/``append_many`` returns     acknowledged     acknowledged
                                                      lost             lost
=============  =====================================  ===============  ================

``durable_seq``: ``none`` -- the highest sequence written to the OS page cache (survives a
crash of this process, not a power loss or kernel crash); ``interval`` and ``every_record``
-- the highest fsynced sequence (survives a power loss). In ``every_record`` that is every
appended record whenever an append has returned. The ``interval`` triggers are checked inside
``append``, ``append_many`` and ``poll``; there is no background thread, so the loss window is
bounded by ``interval_ns`` only if the owner calls one of them at least that often (call
``poll`` when idle). fsync is ``os.fdatasync`` on the segment file (enough for appends on
Linux: it flushes the file size too) plus one ``fsync`` of the directory after a segment was
created; storage that acknowledges writes from a volatile cache weakens every promise. In the
fsync modes a segment is fsynced before the next one is created, so after a power loss only
the last segment can have a damaged (torn) tail, which :func:`recover` truncates. Mode
``none`` orders nothing: after a power loss an earlier segment can be damaged too, and
recovery reports that as corruption instead of truncating it.

Lifecycle: ``open`` -> ``closed``; the first OS error moves the writer to ``failed`` and every
later call re-raises it (``raise ... from`` the original), so no record is ever reported
durable after a write or fsync failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from arbsphere.clock import Clock
from arbsphere.errors import ConfigError, JournalError

from . import kernels as _k
from .format import (
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    RECORD_OVERHEAD,
    SEGMENT_HEADER_SIZE,
    pack_segment_header,
    segment_name,
)
from .reader import lock_journal, scan_journal, truncate_tail
from .records import Durability, JournalHead, JournalWriterConfig, VerifyReport

__all__ = ["JournalWriter"]

_OPEN, _CLOSED, _FAILED = "open", "closed", "failed"
_pack_header = RECORD_HEADER.pack_into


def _sync_fd(fd: int) -> None:
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - not Linux
        os.fsync(fd)


class JournalWriter:
    """Single writer of one journal directory (held under an exclusive ``flock``).

    Use :meth:`open`; appends return sequence numbers (1 for the journal's first record);
    :attr:`durable_seq` is the highest sequence whose durability promise holds now.
    """

    _resources: contextlib.ExitStack  # holds the directory lock
    _fd: int

    def __init__(self) -> None:  # use JournalWriter.open
        raise TypeError("use JournalWriter.open(directory, config, clock)")

    @classmethod
    def open(
        cls,
        directory: str | Path,
        config: JournalWriterConfig | None = None,
        clock: Clock | None = None,
        *,
        recover: bool = False,
        keep_seq: int = 0,
    ) -> JournalWriter:
        """Open (or create) the journal in ``directory`` for appending.

        An existing journal is verified first (every segment, :func:`verify`). With problems
        it raises :class:`JournalCorruptError`, unless ``recover`` is True and the only problem
        is a torn tail: then the tail is truncated (:func:`recover`, honouring ``keep_seq``)
        and appending continues in the same last segment, the chain continuing from the last
        valid record. The recovery report is :attr:`recovery`.
        """
        cfg = config if config is not None else JournalWriterConfig()
        if cfg.interval_ns is not None and clock is None:
            raise ConfigError("interval_ns needs a clock passed to the writer", key="interval_ns")
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"cannot create journal directory: {exc.strerror}", path=str(path)
            ) from exc
        resources = contextlib.ExitStack()
        dir_fd = resources.enter_context(lock_journal(path))
        self = object.__new__(cls)
        self._resources = resources
        self._fd = -1
        try:
            self._init(path, cfg, clock, dir_fd, recover, keep_seq)
        except BaseException:
            self._release()
            raise
        return self

    def _init(
        self,
        path: Path,
        cfg: JournalWriterConfig,
        clock: Clock | None,
        dir_fd: int,
        recover: bool,
        keep_seq: int,
    ) -> None:
        self.directory = path
        self.config = cfg
        self._clock = clock
        self._dir_fd = dir_fd
        self._state = _OPEN
        self._error: BaseException | None = None
        cap = cfg.batch_bytes
        self._buf = bytearray(cap)
        self._np = np.frombuffer(self._buf, np.uint8)
        self._cap = cap
        self._used = 0
        self._crc_from = 0  # buffer offset from which record CRCs are still to be filled
        self._seg_limit = cfg.segment_size
        self._max_payload = cfg.max_payload
        mode = cfg.durability
        self._fsync_mode = mode is not Durability.NONE
        self._every = mode is Durability.EVERY_RECORD
        self._every_n = cfg.interval_records
        self._interval = cfg.interval_ns
        self._policy = not self._every and (self._every_n is not None or self._interval is not None)
        self._pending = 0  # records appended since the last push
        self._deadline = 0

        scan = scan_journal(path)
        report = scan.report
        if not report.ok and recover:
            report = truncate_tail(scan, dir_fd, keep_seq=keep_seq)
        report.raise_for_problems()
        self.recovery: VerifyReport = report
        head = report.head
        self._next_seq = head.last_seq + 1
        self._count = head.record_count  # records in segments before the current one
        self._written_seq = head.last_seq
        self._durable_seq = head.last_seq
        self._synced_seq = head.last_seq
        if scan.segments:
            last = scan.segments[-1]
            self._seg_index = last.index
            self._seg_path = last.path
            self._seg_bytes = last.valid_end
            self._seg_records = last.n_valid
            self._count -= last.n_valid
            self._chain_start = last.chain_start
            self._hasher = last.hasher
            self._fd = self._os(
                lambda: os.open(last.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC), last.path
            )
            self._dir_dirty = False
            if self._fsync_mode:  # an earlier writer may have been in mode none
                self._sync_existing([st.path for st in scan.segments])
        else:
            self._seg_index = -1
            self._hasher = hashlib.sha256(head.digest)
            self._seg_records = 0
            self._chain_start = head.digest
            self._new_segment()

    # -- public API -------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Highest sequence appended (0 before the first record)."""
        return self._next_seq - 1

    @property
    def written_seq(self) -> int:
        """Highest sequence handed to the OS with ``write()``."""
        return self._written_seq

    @property
    def durable_seq(self) -> int:
        """Highest sequence whose durability promise holds now: written to the OS in mode
        ``none``, fsynced in ``interval`` and ``every_record``."""
        return self._durable_seq

    def append(
        self, type: int, ts_ns: int, payload: bytes | bytearray | memoryview, flags: int = 0
    ) -> int:
        """Append one record; returns its sequence. ``ts_ns`` is the caller's rig time."""
        if self._state is not _OPEN:
            self._raise_state("append")
        if not isinstance(payload, bytes | bytearray):
            payload = memoryview(payload).cast("B")
        n = len(payload)
        length = n + RECORD_OVERHEAD
        if self._seg_bytes + self._used + length > self._seg_limit:
            if n > self._max_payload:
                raise ValueError(
                    f"payload of {n} bytes exceeds {self._max_payload} (segment_size "
                    f"{self._seg_limit})"
                )
            self._roll()
        if self._used + length > self._cap:
            self._flush()
            if length > self._cap:
                self._grow(length)
        pos = self._used
        seq = self._next_seq
        try:
            _pack_header(self._buf, pos, length, type, flags, seq, ts_ns)
        except Exception as exc:  # struct.error: a field out of range
            raise ValueError(
                f"record field out of range (type {type!r}, flags {flags!r}, ts_ns {ts_ns!r}): "
                f"{exc}"
            ) from None
        body = pos + RECORD_HEADER_SIZE
        self._buf[body : body + n] = payload
        self._used = body + n + 4
        self._next_seq = seq + 1
        if self._every:
            self._push()
        elif self._policy:
            self._after_append(1)
        return seq

    def append_many(
        self,
        types: int | np.ndarray,
        ts_ns: np.ndarray,
        payloads: np.ndarray | Sequence[bytes],
        *,
        lengths: np.ndarray | None = None,
        flags: int | np.ndarray = 0,
    ) -> range:
        """Append ``len(ts_ns)`` records in one go; returns their sequences (a ``range``).

        ``payloads`` is a 2-D uint8 array (one row per record, all the same length), a 1-D
        uint8 array of the payloads back to back with ``lengths`` giving each one's size, or a
        sequence of bytes objects. ``types`` and ``flags`` are scalars or one per record.
        """
        if self._state is not _OPEN:
            self._raise_state("append_many")
        ts = np.ascontiguousarray(ts_ns, dtype=np.int64)
        count = int(ts.shape[0])
        flat, bounds = self._payload_layout(payloads, lengths, count)
        types_a = self._u16_column("types", types, count)
        flags_a = self._u16_column("flags", flags, count)
        if count == 0:
            return range(self._next_seq, self._next_seq)
        sizes = np.diff(bounds)
        if int(sizes.max()) > self._max_payload:
            raise ValueError(
                f"a payload of {int(sizes.max())} bytes exceeds {self._max_payload} "
                f"(segment_size {self._seg_limit})"
            )
        ends = bounds + RECORD_OVERHEAD * np.arange(count + 1, dtype=np.int64)  # cumulative
        first = self._next_seq
        i = 0
        while i < count:
            room = min(self._seg_limit - self._seg_bytes, self._cap) - self._used
            k = int(np.searchsorted(ends, ends[i] + room, side="right")) - 1 - i
            if k <= 0:
                length = int(ends[i + 1] - ends[i])
                if self._seg_bytes + self._used + length > self._seg_limit:
                    self._roll()
                else:
                    self._flush()
                    if length > self._cap:
                        self._grow(length)
                continue
            self._fill_crcs()
            self._used = _k.pack_records(
                self._np,
                self._used,
                self._next_seq,
                i,
                i + k,
                types_a,
                flags_a,
                ts,
                flat,
                bounds,
                _k.CRC_TABLES,
            )
            self._crc_from = self._used
            self._next_seq += k
            i += k
        if self._every:
            self._push()
        elif self._policy:
            self._after_append(count)
        return range(first, first + count)

    def poll(self) -> int:
        """Apply the ``interval_ns`` trigger without appending (call it when idle so the loss
        window stays bounded); returns :attr:`durable_seq`."""
        if self._state is not _OPEN:
            self._raise_state("poll")
        if self._pending and self._interval is not None:
            assert self._clock is not None
            if self._clock.now_ns() >= self._deadline:
                self._push()
        return self._durable_seq

    def flush(self) -> None:
        """Write buffered records to the OS (no fsync)."""
        if self._state is not _OPEN:
            self._raise_state("flush")
        self._flush()

    def sync(self) -> None:
        """Write buffered records and fsync, whatever the mode."""
        if self._state is not _OPEN:
            self._raise_state("sync")
        self._flush()
        self._sync()
        self._pending = 0

    def head(self) -> JournalHead:
        """Head over the records written so far (buffered records are written first)."""
        if self._state is not _OPEN:
            self._raise_state("head")
        self._flush()
        return self._head()

    def close(self) -> JournalHead:
        """Write what is buffered (and fsync in the fsync modes), close, return the head."""
        if self._state is _CLOSED:
            raise JournalError("close: writer is already closed", path=str(self.directory))
        if self._state is _FAILED:
            self._release()
            self._raise_state("close")
        try:
            self._flush()
            if self._fsync_mode:
                self._sync()
            head = self._head()
        finally:
            self._release()
        self._state = _CLOSED
        return head

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state is _OPEN:
            self.close()  # also on an exception: what was appended gets written
        elif self._state is _FAILED:
            self._release()

    # -- internals ------------------------------------------------------------------------

    def _raise_state(self, method: str) -> None:
        msg = f"JournalWriter.{method}: writer is {self._state}"
        if self._error is not None:
            raise JournalError(f"{msg} ({self._error})", path=str(self.directory)) from self._error
        raise JournalError(msg, path=str(self.directory))

    def _os(self, op: Any, path: Path) -> Any:
        try:
            return op()
        except OSError as exc:
            err = JournalError(f"{exc.strerror or exc}", path=str(path))
            err.__cause__ = exc
            self._error = err
            self._state = _FAILED
            raise err from exc

    def _release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
        self._resources.close()  # the directory lock

    def _head(self) -> JournalHead:
        digest = self._hasher.digest() if self._seg_records else self._chain_start
        return JournalHead(bytes(digest), self._written_seq, self._count + self._seg_records)

    def _write_all(self, data: memoryview | bytes) -> None:
        fd, view, done = self._fd, memoryview(data), 0
        while done < len(view):
            done += self._os(lambda d=done: os.write(fd, view[d:]), self._seg_path)

    @staticmethod
    def _payload_layout(
        payloads: np.ndarray | Sequence[bytes], lengths: np.ndarray | None, count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Payloads as one flat uint8 array and ``count + 1`` int64 bounds."""
        if isinstance(payloads, np.ndarray):
            if payloads.dtype != np.uint8:
                raise ValueError(f"payload array must be uint8, got {payloads.dtype}")
            if payloads.ndim == 2:
                if lengths is not None:
                    raise ValueError("lengths is only for a flat (1-D) payload array")
                if payloads.shape[0] != count:
                    raise ValueError(f"{payloads.shape[0]} payload rows for {count} records")
                size = payloads.shape[1]
                flat = np.ascontiguousarray(payloads).reshape(-1)
                return flat, np.arange(count + 1, dtype=np.int64) * size
            if payloads.ndim != 1 or lengths is None:
                raise ValueError("a 1-D payload array needs lengths (one per record)")
            flat = np.ascontiguousarray(payloads)
            sizes = np.asarray(lengths, dtype=np.int64)
        else:
            if lengths is not None:
                raise ValueError("lengths is only for a flat (1-D) payload array")
            if len(payloads) != count:
                raise ValueError(f"{len(payloads)} payloads for {count} records")
            flat = np.frombuffer(b"".join(payloads), np.uint8)
            sizes = np.fromiter((len(p) for p in payloads), np.int64, count)
        if sizes.shape != (count,) or (count and int(sizes.min()) < 0):
            raise ValueError(f"lengths must be {count} non-negative sizes")
        bounds = np.zeros(count + 1, np.int64)
        np.cumsum(sizes, out=bounds[1:])
        if int(bounds[-1]) > flat.shape[0]:
            raise ValueError(f"lengths add up to {int(bounds[-1])} > {flat.shape[0]} bytes")
        return flat, bounds

    @staticmethod
    def _u16_column(name: str, value: int | np.ndarray, count: int) -> np.ndarray:
        arr = np.asarray(value)
        if arr.ndim == 0:
            arr = np.full(count, arr, dtype=np.int64)
        if arr.shape != (count,):
            raise ValueError(f"{name}: expected a scalar or {count} values, got {arr.shape}")
        if count and (int(arr.min()) < 0 or int(arr.max()) > 0xFFFF):
            raise ValueError(f"{name}: values must be in [0, 65535]")
        return np.ascontiguousarray(arr, dtype=np.uint16)

    def _after_append(self, n: int) -> None:
        pending = self._pending
        self._pending = pending + n
        if self._every_n is not None and self._pending >= self._every_n:
            self._push()
            return
        if self._interval is not None:
            now = self._clock.now_ns()  # type: ignore[union-attr]
            if pending == 0:
                self._deadline = now + self._interval
            elif now >= self._deadline:
                self._push()

    def _push(self) -> None:
        self._flush()
        if self._fsync_mode:
            self._sync()
        self._pending = 0

    def _fill_crcs(self) -> None:
        if self._crc_from < self._used:
            _k.fill_crcs(self._np, self._crc_from, self._used, _k.CRC_TABLES)
            self._crc_from = self._used

    def _flush(self) -> None:
        used = self._used
        if not used:
            return
        self._fill_crcs()
        view = memoryview(self._buf)[:used]
        self._hasher.update(view)
        self._write_all(view)
        last = self._next_seq - 1
        self._seg_records += last - self._written_seq
        self._seg_bytes += used
        self._used = 0
        self._crc_from = 0
        self._written_seq = last
        if not self._fsync_mode:
            self._durable_seq = last
            self._pending = 0

    def _sync(self) -> None:
        if self._synced_seq == self._written_seq and not self._dir_dirty:
            return
        self._os(lambda: _sync_fd(self._fd), self._seg_path)
        if self._dir_dirty:
            self._os(lambda: os.fsync(self._dir_fd), self.directory)
            self._dir_dirty = False
        self._synced_seq = self._written_seq
        self._durable_seq = self._written_seq

    def _sync_existing(self, paths: list[Path]) -> None:
        """fsync the segments found at open (quick when already clean) and the directory, so
        that records already in the journal count as durable in an fsync mode."""
        for path in paths:

            def sync_one(path: Path = path) -> None:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _sync_fd(fd)
                finally:
                    os.close(fd)

            self._os(sync_one, path)
        self._os(lambda: os.fsync(self._dir_fd), self.directory)

    def _grow(self, length: int) -> None:
        self._buf = bytearray(length)
        self._np = np.frombuffer(self._buf, np.uint8)
        self._cap = length

    def _roll(self) -> None:
        self._flush()
        if self._fsync_mode:
            self._sync()
        chain = self._hasher.digest() if self._seg_records else self._chain_start
        fd, self._fd = self._fd, -1
        self._os(lambda: os.close(fd), self._seg_path)
        self._chain_start = bytes(chain)
        self._hasher = hashlib.sha256(self._chain_start)
        self._new_segment()

    def _new_segment(self) -> None:
        self._seg_index += 1
        self._seg_path = self.directory / segment_name(self._seg_index)
        self._count += self._seg_records
        self._seg_records = 0
        header = pack_segment_header(self._seg_index, self._next_seq, self._chain_start)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        self._fd = self._os(lambda: os.open(self._seg_path, flags, 0o644), self._seg_path)
        self._write_all(header)
        self._seg_bytes = SEGMENT_HEADER_SIZE
        self._dir_dirty = True

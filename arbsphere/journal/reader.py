"""Reading, verifying and recovering a journal.

Every segment is read whole and checked in one Numba pass (record lengths, CRC-32C, sequence
continuity), its valid bytes hashed with one ``update()`` into the chain, its header checked
against the previous segment (index, first sequence, chain digest). Problems are located by
segment file, byte offset and the sequence expected there (:class:`JournalProblem`).

Middle or tail. After a bad record the scanner looks for the next whole valid record
(:func:`kernels.resync`). If one follows, the damage is *corruption in the middle*: it is
reported with the number of records and bytes it covers, scanning continues after it, and
nothing is ever truncated because of it. If no valid record follows and the damage is in the
last segment, it is a *torn tail* -- what a crash during a write leaves (a partial record,
zero-filled or garbled bytes at the end, a segment file whose header never got written).
:func:`recover` truncates a torn tail to the last whole valid record (or deletes a last
segment without a whole header), fsyncs, and says what it removed; it refuses (raises
:class:`JournalCorruptError`) when there is any other problem. A writer then continues in the
same last segment, chain continuing (:meth:`JournalWriter.open`).

Recovery can lose only records behind the last valid one, i.e. never a record whose
durability promise held (the promise means its bytes are on disk whole and later appends do
not touch them). Pass ``keep_seq`` (e.g. the last acknowledged sequence from a manifest) to
make that a checked condition.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from arbsphere.errors import JournalError

from . import kernels as _k
from .format import (
    GENESIS_DIGEST,
    INDEX_DTYPE,
    RECORD_HEADER_SIZE,
    RECORD_OVERHEAD,
    SEGMENT_HEADER_SIZE,
    segment_index_of,
    unpack_segment_header,
)
from .records import MAX_SEGMENT_SIZE, JournalHead, JournalProblem, VerifyReport, corrupt

__all__ = [
    "JournalReader",
    "Record",
    "RecordBatch",
    "lock_journal",
    "recover",
    "verify",
]

#: Largest ``record_len`` any segment can hold; longer is "bad_length", not "partial_record".
MAX_RECORD_LEN = MAX_SEGMENT_SIZE - SEGMENT_HEADER_SIZE

_STATUS_KIND = {
    _k.SCAN_PARTIAL_HEADER: "partial_header",
    _k.SCAN_BAD_LENGTH: "bad_length",
    _k.SCAN_PARTIAL_RECORD: "partial_record",
    _k.SCAN_BAD_CRC: "bad_crc",
    _k.SCAN_BAD_SEQ: "bad_seq",
}
_STATUS_DETAIL = {
    _k.SCAN_PARTIAL_HEADER: "fewer than 24 bytes left for a record header",
    _k.SCAN_BAD_LENGTH: f"record_len below 28 or above {MAX_RECORD_LEN}",
    _k.SCAN_PARTIAL_RECORD: "record_len runs past the end of the file",
    _k.SCAN_BAD_CRC: "CRC-32C mismatch",
    _k.SCAN_BAD_SEQ: "valid record with an unexpected sequence",
}


class Record(NamedTuple):
    """One journal record; ``payload`` is a view into its segment's bytes."""

    type: int
    flags: int
    seq: int
    ts_ns: int
    payload: memoryview


@dataclass(frozen=True)
class RecordBatch:
    """The verified records of one segment: its bytes and one :data:`INDEX_DTYPE` row per
    record (offset, length, type, flags, seq, ts_ns)."""

    segment: int
    path: Path
    data: bytes
    index: np.ndarray

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def payload(self, i: int) -> memoryview:
        off = int(self.index["offset"][i])
        return memoryview(self.data)[
            off + RECORD_HEADER_SIZE : off + int(self.index["length"][i]) - 4
        ]

    def payload_matrix(self) -> np.ndarray:
        """All payloads as an ``(n, P)`` uint8 view, when every record has the same length."""
        lengths = self.index["length"]
        if len(lengths) == 0:
            return np.zeros((0, 0), np.uint8)
        length = int(lengths[0])
        if not np.all(lengths == length):
            raise ValueError(f"{self.path.name}: payload lengths differ; use payload(i)")
        rows = np.frombuffer(
            self.data, np.uint8, count=len(lengths) * length, offset=int(self.index["offset"][0])
        ).reshape(len(lengths), length)
        return rows[:, RECORD_HEADER_SIZE : length - 4]

    def __iter__(self) -> Iterator[Record]:
        mv = memoryview(self.data)
        idx = self.index
        for off, length, type_, flags, seq, ts in zip(
            idx["offset"].tolist(),
            idx["length"].tolist(),
            idx["type"].tolist(),
            idx["flags"].tolist(),
            idx["seq"].tolist(),
            idx["ts_ns"].tolist(),
            strict=True,
        ):
            yield Record(type_, flags, seq, ts, mv[off + RECORD_HEADER_SIZE : off + length - 4])


@dataclass
class SegmentState:
    """What a scan learned about one segment: its valid prefix (before the first problem) and
    the chain over it -- what a writer needs to continue the segment."""

    index: int
    path: Path
    size: int
    valid_end: int  # 0: not even a whole header (recovery deletes the file)
    first_seq: int
    n_valid: int
    chain_start: bytes
    hasher: Any  # hashlib sha256 over chain_start + the valid prefix
    header_ok: bool  # header whole, valid and consistent with the previous segment
    next_seq: int | None  # expected first seq of the next segment, None if unknown
    chain_end: bytes | None  # chain after the segment's last record, None if unknown

    @property
    def prefix_digest(self) -> bytes:
        return bytes(self.hasher.digest()) if self.n_valid else self.chain_start


@dataclass
class _SegmentScan:
    state: SegmentState
    data: bytes
    rows: np.ndarray  # every record that verified (also after a resync)
    problems: list[JournalProblem]


@dataclass
class JournalScan:
    """A finished scan: the report and the per-segment states."""

    report: VerifyReport
    segments: list[SegmentState] = field(default_factory=list)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise JournalError(f"cannot read segment: {exc.strerror}", path=str(path)) from exc


def _count_records(buf: np.ndarray, start: int, stop: int) -> int:
    """Records (whole or partial) in damaged bytes, following their length fields; 0 if the
    bytes are all zero."""
    if not buf[start:stop].any():
        return 0
    n, pos = 0, start
    while pos < stop and n < 1_000_000:
        n += 1
        if stop - pos < 4:
            break
        length = int.from_bytes(buf[pos : pos + 4].tobytes(), "little")
        if length < RECORD_OVERHEAD:
            break
        pos += length
    return n


class _RecordsScan(NamedTuple):
    """The records of one segment after its header: every one that verified (also after a
    resync), the valid prefix before the first problem, and the next segment's first seq."""

    rows: np.ndarray
    valid_end: int
    n_valid: int
    next_seq: int | None  # None: the segment does not end cleanly


class _SegmentScanner:
    """Scans one segment's bytes: the header against what the previous segment left, then the
    records in Numba passes, collecting each problem located in this segment."""

    def __init__(self, path: Path, index: int, data: bytes, is_last: bool) -> None:
        self.path = path
        self.index = index
        self.data = data
        self.is_last = is_last
        self.size = len(data)
        self.buf = np.frombuffer(data, np.uint8)
        self.problems: list[JournalProblem] = []

    def _problem(
        self, kind: str, offset: int, seq: int, records: int, nbytes: int, tail: bool, detail: str
    ) -> None:
        self.problems.append(
            JournalProblem(kind, self.index, self.path, offset, seq, records, nbytes, tail, detail)
        )

    def scan(self, exp_seq: int | None, exp_chain: bytes | None) -> _SegmentScan:
        """The segment's state, verified rows and problems; ``exp_seq``/``exp_chain`` are what
        the previous segment says this one starts with (None: unknown)."""
        if self.size < SEGMENT_HEADER_SIZE or (self.is_last and not self.buf.any()):
            return self._headerless(exp_seq, exp_chain)
        trusted, first_seq, chain_start = self._check_header(exp_seq, exp_chain)
        header_ok = not self.problems
        records = self._scan_records(first_seq)
        hasher = hashlib.sha256(chain_start)
        hasher.update(memoryview(self.data)[SEGMENT_HEADER_SIZE : records.valid_end])
        state = SegmentState(
            self.index,
            self.path,
            self.size,
            records.valid_end,
            first_seq,
            records.n_valid,
            chain_start,
            hasher,
            header_ok,
            records.next_seq,
            None,
        )
        record_ok = records.valid_end == self.size and records.next_seq is not None
        if record_ok and (trusted or exp_chain is not None):
            state.chain_end = state.prefix_digest
        return _SegmentScan(state, self.data, records.rows, self.problems)

    def _headerless(self, exp_seq: int | None, exp_chain: bytes | None) -> _SegmentScan:
        """A segment without a whole header, or a last one of zero bytes only: no records."""
        size = self.size
        seq0 = exp_seq if exp_seq is not None else 0
        what = "is all zero bytes" if size >= SEGMENT_HEADER_SIZE else "has no whole header"
        kind = "torn_header" if self.is_last else "bad_header"
        self._problem(kind, 0, seq0, 0, size, self.is_last, f"segment file of {size} bytes {what}")
        chain = exp_chain if exp_chain is not None else GENESIS_DIGEST
        state = SegmentState(
            self.index, self.path, size, 0, seq0, 0, chain, hashlib.sha256(chain), False, None, None
        )
        return _SegmentScan(state, self.data, np.empty(0, INDEX_DTYPE), self.problems)

    def _check_header(
        self, exp_seq: int | None, exp_chain: bytes | None
    ) -> tuple[bool, int, bytes]:
        """Checks the header on its own and against the previous segment; returns whether it is
        trusted and the first seq and chain start the records are checked from."""
        header = unpack_segment_header(self.data)
        issues = header.problems()
        trusted = not issues  # CRC and format fields fine: its first_seq and chain can be used
        if trusted:
            if header.segment_index != self.index:
                issues.append(f"segment_index {header.segment_index}, file name says {self.index}")
            if exp_seq is not None and header.first_seq != exp_seq:
                issues.append(f"first_seq {header.first_seq}, expected {exp_seq}")
        if issues:
            seq = exp_seq if exp_seq is not None else header.first_seq
            self._problem("bad_header", 0, seq, 0, SEGMENT_HEADER_SIZE, False, "; ".join(issues))
        if trusted and exp_chain is not None and header.chain_start != exp_chain:
            self._problem(
                "chain_mismatch",
                32,
                header.first_seq,
                0,
                32,
                False,
                f"chain_start {header.chain_start.hex()[:16]}... is not the chain digest after "
                f"the previous segment ({exp_chain.hex()[:16]}...)",
            )
        first_seq = header.first_seq if trusted or exp_seq is None else exp_seq
        chain_start = header.chain_start if trusted or exp_chain is None else exp_chain
        return trusted, first_seq, chain_start

    def _scan_records(self, first_seq: int) -> _RecordsScan:
        """Every record after the header, one Numba pass per stretch of valid records."""
        size, buf = self.size, self.buf
        rows = np.empty((size - SEGMENT_HEADER_SIZE) // RECORD_OVERHEAD, INDEX_DTYPE)
        pos, seq, total = SEGMENT_HEADER_SIZE, first_seq, 0
        valid_end, n_valid = -1, 0
        next_seq: int | None = None
        tables = _k.CRC_TABLES
        while True:
            n, status, end = _k.scan_records(
                buf, pos, size, seq, MAX_RECORD_LEN, rows[total:], tables
            )
            total += n
            seq += n
            if status == _k.SCAN_OK:
                next_seq = seq
                break
            if valid_end < 0:
                valid_end, n_valid = end, total
            resume = self._after_bad_record(status, end, seq)
            if resume is None:
                break
            pos, seq = resume
        if valid_end < 0:
            valid_end, n_valid = size, total
        return _RecordsScan(rows[:total], valid_end, n_valid, next_seq)

    def _after_bad_record(self, status: int, end: int, seq: int) -> tuple[int, int] | None:
        """Records the problem at offset ``end`` (where ``seq`` was expected) and returns the
        offset and seq where valid records resume, or None if none follows."""
        kind, detail = _STATUS_KIND[status], _STATUS_DETAIL[status]
        if status == _k.SCAN_BAD_SEQ:
            # A whole valid record sits here: records are missing or repeated, never a tail.
            found = int.from_bytes(self.data[end + 8 : end + 16], "little")
            self._problem(
                kind, end, seq, max(found - seq, 0), 0, False, f"{detail}: found seq {found}"
            )
            return end, found
        p, found = _k.resync(self.buf, end, self.size, seq, MAX_RECORD_LEN, _k.CRC_TABLES)
        if p >= 0:
            self._problem(
                kind,
                end,
                seq,
                int(found) - seq,
                int(p) - end,
                False,
                f"{detail}; valid records resume at offset {p} with seq {found}",
            )
            return int(p), int(found)
        if not self.buf[end:].any():
            kind, detail = "zero_fill", "zero bytes up to the end of the file"
        affected = _count_records(self.buf, end, self.size)
        tail_detail = f"{detail}; no valid record follows"
        self._problem(kind, end, seq, affected, self.size - end, self.is_last, tail_detail)
        return None


class _Walk:
    """Scans the segments of a journal in order, building its :class:`VerifyReport`."""

    def __init__(self, directory: str | Path, expected_head: JournalHead | None) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise JournalError("not a journal directory", path=str(self.directory))
        self.expected_head = expected_head
        self.report = VerifyReport(self.directory, JournalHead())
        self.segments: list[SegmentState] = []

    def _files(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.iterdir():
            index = segment_index_of(path)
            if index is not None:
                found.append((index, path))
        return sorted(found)

    def __iter__(self) -> Iterator[_SegmentScan]:
        report = self.report
        files = self._files()
        exp_seq: int | None = 1
        exp_chain: bytes | None = GENESIS_DIGEST
        exp_index = 0
        prefix_ok = True
        head = JournalHead()
        for k, (index, path) in enumerate(files):
            missing = None
            if index != exp_index:
                missing = JournalProblem(
                    "missing_segment",
                    index,
                    path,
                    0,
                    exp_seq if exp_seq is not None else 0,
                    0,
                    0,
                    False,
                    f"segment(s) {exp_index}..{index - 1} missing before {path.name}",
                )
                exp_seq, exp_chain = None, None
            data = _read(path)
            scanner = _SegmentScanner(path, index, data, is_last=k == len(files) - 1)
            scan = scanner.scan(exp_seq, exp_chain)
            if missing is not None:
                st = scan.state
                if missing.seq and not any(p.kind == "bad_header" for p in scan.problems):
                    missing = replace(missing, records_affected=st.first_seq - missing.seq)
                scan.problems.insert(0, missing)
            st = scan.state
            report.problems.extend(scan.problems)
            report.segments += 1
            report.records += len(scan.rows)
            report.bytes += st.size
            if prefix_ok:
                header_problem = any(p.offset < SEGMENT_HEADER_SIZE for p in scan.problems)
                if not header_problem and st.n_valid:
                    head = JournalHead(
                        st.prefix_digest,
                        st.first_seq + st.n_valid - 1,
                        head.record_count + st.n_valid,
                    )
                prefix_ok = not scan.problems
            self.segments.append(st)
            exp_index, exp_seq, exp_chain = index + 1, st.next_seq, st.chain_end
            yield scan
        report.head = head
        want = self.expected_head
        if report.ok and want is not None and head != want:
            last = self.segments[-1] if self.segments else None
            report.problems.append(
                JournalProblem(
                    "head_mismatch",
                    last.index if last else -1,
                    last.path if last else self.directory,
                    last.size if last else 0,
                    head.last_seq,
                    abs(want.record_count - head.record_count),
                    0,
                    False,
                    f"head (chain {head.digest.hex()[:16]}..., last seq {head.last_seq}, "
                    f"{head.record_count} records) differs from the expected "
                    f"(chain {want.digest.hex()[:16]}..., last seq {want.last_seq}, "
                    f"{want.record_count} records)",
                )
            )


def scan_journal(directory: str | Path, *, expected_head: JournalHead | None = None) -> JournalScan:
    """Check every segment; return the report and per-segment states (nothing is changed)."""
    walk = _Walk(directory, expected_head)
    for _ in walk:
        pass
    return JournalScan(walk.report, walk.segments)


def verify(directory: str | Path, *, expected_head: JournalHead | None = None) -> VerifyReport:
    """Check headers, record lengths, CRCs, sequence continuity and the hash chain of every
    segment (and the head, if ``expected_head`` is given, e.g. from a manifest).

    Returns the report; ``report.ok`` is False if anything is wrong, and
    ``report.raise_for_problems()`` turns that into :class:`JournalCorruptError`. Verify a
    journal no writer has open (a live writer's unflushed tail looks torn).
    """
    return scan_journal(directory, expected_head=expected_head).report


@contextlib.contextmanager
def lock_journal(directory: str | Path) -> Iterator[int]:
    """Hold an exclusive advisory lock (``flock``) on the journal directory; yields its fd.
    One writer or one recovery at a time; the kernel drops the lock if the holder dies."""
    path = Path(directory)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise JournalError(
            f"cannot open journal directory: {exc.strerror}", path=str(path)
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalError(
                "journal is locked by another writer or recovery", path=str(path)
            ) from None
        yield fd
    finally:
        os.close(fd)


def truncate_tail(scan: JournalScan, dir_fd: int, *, keep_seq: int = 0) -> VerifyReport:
    """Cut the torn tail a scan found (see :func:`recover`); updates ``scan`` in place."""
    report = scan.report
    if report.ok:
        return report
    if not report.tail_only:
        first = next(p for p in report.problems if not p.tail)
        raise corrupt(
            f"{report.directory}: recovery truncates only a torn tail, and this journal has "
            f"{sum(not p.tail for p in report.problems)} other problem(s); first: {first}",
            first,
        )
    (tail,) = report.problems
    if tail.seq <= keep_seq:
        raise corrupt(
            f"{report.directory}: recovery would drop seq {tail.seq}.. but seq {keep_seq} was "
            f"acknowledged durable: {tail}",
            tail,
        )
    state = scan.segments[-1]
    try:
        if state.valid_end == 0:
            tail.path.unlink()
            os.fsync(dir_fd)
            scan.segments.pop()
            report.segments -= 1
        else:
            os.truncate(tail.path, tail.offset)
            fd = os.open(tail.path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            state.size = tail.offset
            state.next_seq = state.first_seq + state.n_valid
            state.chain_end = state.prefix_digest
    except OSError as exc:
        raise JournalError(
            f"cannot truncate torn tail: {exc.strerror}", path=str(tail.path)
        ) from exc
    report.bytes -= tail.bytes_affected
    report.problems = []
    report.truncated = tail
    return report


def recover(directory: str | Path, *, keep_seq: int = 0) -> VerifyReport:
    """Open a journal after a crash: verify everything, then truncate a torn tail to the last
    whole valid record (or delete a last segment without a whole header) and fsync.

    Returns the report (``report.truncated`` says what was removed; ``report.head`` is the
    head after recovery). Raises :class:`JournalCorruptError` -- changing nothing -- if there
    is any problem other than a torn tail, or if the tail starts at or before ``keep_seq``.
    """
    with lock_journal(directory) as dir_fd:
        return truncate_tail(scan_journal(directory), dir_fd, keep_seq=keep_seq)


class JournalReader:
    """Replay a journal: per-segment batches (bulk, NumPy) or single records.

    Iteration verifies as it goes (CRC, continuity, chain, and ``expected_head`` at the end)
    and raises :class:`JournalCorruptError` at the first problem, before yielding anything of
    the damaged segment: replay never skips silently. After a full iteration :attr:`head` is
    the journal's head.
    """

    def __init__(self, directory: str | Path, *, expected_head: JournalHead | None = None) -> None:
        self.directory = Path(directory)
        self.expected_head = expected_head
        self.head: JournalHead | None = None

    def batches(self) -> Iterator[RecordBatch]:
        walk = _Walk(self.directory, self.expected_head)
        for scan in walk:
            if scan.problems:
                walk.report.raise_for_problems()
            yield RecordBatch(scan.state.index, scan.state.path, scan.data, scan.rows)
        walk.report.raise_for_problems()
        self.head = walk.report.head

    def records(self) -> Iterator[Record]:
        for batch in self.batches():
            yield from batch

    def __iter__(self) -> Iterator[Record]:
        return self.records()

    def read_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Every record's index row (:data:`INDEX_DTYPE`) for the whole journal and the segment
        index of each row; payload bytes are not kept."""
        rows, segs = [], []
        for batch in self.batches():
            rows.append(batch.index)
            segs.append(np.full(len(batch), batch.segment, np.int64))
        if not rows:
            return np.empty(0, INDEX_DTYPE), np.empty(0, np.int64)
        return np.concatenate(rows), np.concatenate(segs)

"""The replay journal: byte layout, round trips across rolls, the hash chain, durability rules,
detection and location of every flipped byte, torn-tail recovery at every byte offset.

The oracle :func:`_by_hand` re-implements the format from its docstring with ``struct``, the
``crc32c`` package and ``hashlib`` (no code of the journal package), so the writer and the
reader are both checked against an independent reading of the documented layout.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import struct
from pathlib import Path

import crc32c
import numpy as np
import pytest

from arbsphere.errors import ConfigError, JournalCorruptError, JournalError
from arbsphere.journal import (
    JournalHead,
    JournalReader,
    JournalWriter,
    JournalWriterConfig,
    recover,
    segment_name,
    verify,
)
from arbsphere.journal import kernels as jk
from arbsphere.journal import writer as writer_module
from arbsphere.testing import StepClock

HDR = 72


def payload_of(seq: int) -> bytes:
    """Deterministic payloads of varying length (0..40 bytes) derived from the sequence."""
    n = (seq * 7) % 41
    return bytes((seq * 31 + k) & 0xFF for k in range(n))


def _segments(d: Path) -> list[Path]:
    return sorted(d.glob("journal-*.seg"))


def _by_hand(d: Path) -> tuple[JournalHead, list[tuple[int, int, int, int, bytes]]]:
    """Independent reading of a (valid) journal: head and (seq, type, flags, ts, payload)."""
    chain = bytes(32)
    records = []
    seq = 0
    for index, path in enumerate(_segments(d)):
        data = path.read_bytes()
        assert path.name == segment_name(index)
        magic, ver, hsize, flags, idx, first, start, res = struct.unpack_from("<8sHHIQQ32sI", data)
        assert (magic, ver, hsize, flags, idx, res) == (b"ARBSJRNL", 1, 72, 0, index, 0)
        assert struct.unpack_from("<I", data, 68)[0] == crc32c.crc32c(data[:68])
        assert first == seq + 1 and start == chain
        h = hashlib.sha256(start)
        pos = HDR
        while pos < len(data):
            length, rtype, rflags, rseq, ts = struct.unpack_from("<IHHQq", data, pos)
            body = data[pos : pos + length - 4]
            assert struct.unpack_from("<I", data, pos + length - 4)[0] == crc32c.crc32c(body)
            assert rseq == seq + 1
            seq = rseq
            records.append((rseq, rtype, rflags, ts, bytes(data[pos + 24 : pos + length - 4])))
            pos += length
        h.update(data[HDR:])
        if pos > HDR:
            chain = h.digest()
    return JournalHead(chain, seq, len(records)), records


def _write(d: Path, n: int, cfg: JournalWriterConfig, start: int = 1) -> JournalHead:
    w = JournalWriter.open(d, cfg)
    for seq in range(start, start + n):
        assert w.append(seq % 5, 1_000 * seq - 7, payload_of(seq), flags=seq % 3) == seq
    return w.close()


# -- layout ---------------------------------------------------------------------------------


def test_crc_kernel_matches_crc32c_package() -> None:
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, 5000, dtype=np.uint8)
    assert jk.crc32c_range(np.frombuffer(b"123456789", np.uint8), 0, 9, jk.CRC_TABLES) == (
        0xE3069283
    )
    for start, stop in [(0, 0), (0, 1), (3, 11), (1, 4097), (17, 5000)] + [
        tuple(sorted(rng.integers(0, 5000, 2))) for _ in range(50)
    ]:
        got = jk.crc32c_range(data, int(start), int(stop), jk.CRC_TABLES)
        assert got == crc32c.crc32c(data[start:stop].tobytes()), (start, stop)


def test_fixed_byte_vector(tmp_path: Path) -> None:
    """A segment header and two records written out by hand, byte for byte."""
    header = bytes.fromhex(
        "4152 4253 4a52 4e4c"  # magic "ARBSJRNL"
        "0100 4800 0000 0000"  # version 1, header size 72, flags 0
        "0000 0000 0000 0000"  # segment index 0
        "0100 0000 0000 0000"  # first seq 1
        + "00"
        * 32  # chain start: genesis (32 zero bytes)
        + "0000 0000"  # reserved
        "14b6 a591"  # header CRC-32C of bytes 0..67 = 0x91a5b614
    )
    rec1 = bytes.fromhex(
        "2000 0000"  # record_len 32 = 28 + 4
        "0201 0300"  # type 0x0102, flags 0x0003
        "0100 0000 0000 0000"  # seq 1
        "15cd 853d fe9c 9717"  # ts_ns 1_700_000_000_123_456_789
        "7469 636b"  # payload b"tick"
        "67a0 5d10"  # CRC-32C = 0x105da067
    )
    rec2 = bytes.fromhex(
        "1e00 0000"  # record_len 30 = 28 + 2
        "0700 0000"  # type 7, flags 0
        "0200 0000 0000 0000"  # seq 2
        "fbff ffff ffff ffff"  # ts_ns -5
        "00ff"  # payload
        "b36b 6931"  # CRC-32C = 0x31696bb3
    )
    # The CRCs above were computed once with the crc32c package; re-check them here.
    assert crc32c.crc32c(header[:68]) == 0x91A5B614
    assert crc32c.crc32c(rec1[:-4]) == 0x105DA067
    assert crc32c.crc32c(rec2[:-4]) == 0x31696BB3

    w = JournalWriter.open(tmp_path, JournalWriterConfig())
    assert w.append(0x0102, 1_700_000_000_123_456_789, b"tick", flags=3) == 1
    assert w.append(7, -5, b"\x00\xff") == 2
    head = w.close()
    assert (tmp_path / "journal-00000000.seg").read_bytes() == header + rec1 + rec2
    assert head == JournalHead(hashlib.sha256(bytes(32) + rec1 + rec2).digest(), 2, 2)
    assert verify(tmp_path, expected_head=head).ok
    # The vectorised path produces the same bytes.
    other = tmp_path / "many"
    w = JournalWriter.open(other)
    w.append_many(
        np.array([0x0102, 7]),
        np.array([1_700_000_000_123_456_789, -5]),
        [b"tick", b"\x00\xff"],
        flags=np.array([3, 0]),
    )
    assert w.close() == head
    assert (other / "journal-00000000.seg").read_bytes() == header + rec1 + rec2


# -- round trips, rolls, the chain -----------------------------------------------------------


def test_round_trip_across_segment_rolls(tmp_path: Path) -> None:
    cfg = JournalWriterConfig(segment_size=2048, batch_bytes=512)
    w = JournalWriter.open(tmp_path, cfg)
    expected: list[tuple[int, int, int, int, bytes]] = []
    seq = 1
    rng = np.random.default_rng(11)
    for round_ in range(30):
        kind = round_ % 4
        n = int(rng.integers(1, 60))
        seqs = range(seq, seq + n)
        ts = np.array([-(s << 40) if s % 2 else s << 40 for s in seqs], np.int64)
        if kind == 0:  # single appends, one larger than the batch buffer
            for s, t in zip(seqs, ts.tolist(), strict=True):
                p = payload_of(s) if s % 17 else bytes(700)
                assert w.append(3, t, p, flags=s & 0xFFFF) == s
                expected.append((s, 3, s & 0xFFFF, t, p))
        elif kind == 1:  # list of bytes
            ps = [payload_of(s) for s in seqs]
            assert w.append_many(4, ts, ps) == seqs
            expected += [(s, 4, 0, t, p) for s, t, p in zip(seqs, ts.tolist(), ps, strict=True)]
        elif kind == 2:  # fixed-size rows
            rows = rng.integers(0, 256, (n, 50), dtype=np.uint8)
            types = np.arange(n) % 65536
            assert w.append_many(types, ts, rows, flags=7) == seqs
            expected += [
                (s, int(types[i]), 7, int(ts[i]), rows[i].tobytes()) for i, s in enumerate(seqs)
            ]
        else:  # flat buffer + lengths, some empty
            lens = rng.integers(0, 90, n)
            flat = rng.integers(0, 256, int(lens.sum()), dtype=np.uint8)
            assert w.append_many(9, ts, flat, lengths=lens) == seqs
            cut = np.concatenate([[0], np.cumsum(lens)])
            expected += [
                (s, 9, 0, int(ts[i]), flat[cut[i] : cut[i + 1]].tobytes())
                for i, s in enumerate(seqs)
            ]
        seq += n
    head = w.close()
    segs = _segments(tmp_path)
    assert len(segs) > 5
    assert all(p.stat().st_size <= 2048 for p in segs)

    oracle_head, records = _by_hand(tmp_path)
    assert records == expected
    assert head == oracle_head == JournalHead(head.digest, seq - 1, seq - 1)
    report = verify(tmp_path, expected_head=head)
    assert report.ok and report.head == head and report.segments == len(segs)
    reader = JournalReader(tmp_path, expected_head=head)
    got = [(r.seq, r.type, r.flags, r.ts_ns, r.payload.tobytes()) for r in reader]
    assert got == expected and reader.head == head
    index, seg_of = JournalReader(tmp_path).read_index()
    assert index["seq"].tolist() == list(range(1, seq))
    assert index["ts_ns"].tolist() == [e[3] for e in expected]
    assert sorted(set(seg_of.tolist())) == list(range(len(segs)))


def test_bulk_reader_payload_matrix(tmp_path: Path) -> None:
    rows = np.arange(300 * 16, dtype=np.uint8).reshape(300, 16)
    w = JournalWriter.open(tmp_path, JournalWriterConfig(segment_size=4096))
    w.append_many(1, np.arange(300), rows)
    w.close()
    got = np.concatenate([b.payload_matrix() for b in JournalReader(tmp_path).batches()])
    assert np.array_equal(got, rows)


def test_reopen_continues_segment_and_chain(tmp_path: Path) -> None:
    cfg = JournalWriterConfig(segment_size=1024)
    _write(tmp_path, 40, cfg)
    before = _segments(tmp_path)
    head = _write(tmp_path, 40, cfg, start=41)
    oracle, records = _by_hand(tmp_path)
    assert head == oracle and [r[0] for r in records] == list(range(1, 81))
    assert _segments(tmp_path)[: len(before)] == before  # continued, nothing rewritten
    assert verify(tmp_path, expected_head=head).ok


def test_chain_catches_what_crcs_cannot(tmp_path: Path) -> None:
    """Rewrite a record with a valid CRC (and a segment with a valid header): the CRCs pass,
    the chain and the head do not."""
    head = _write(tmp_path, 60, JournalWriterConfig(segment_size=512))
    seg = _segments(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    length = struct.unpack_from("<I", data, HDR)[0]
    data[HDR + 24] ^= 0xFF
    struct.pack_into(
        "<I", data, HDR + length - 4, crc32c.crc32c(bytes(data[HDR : HDR + length - 4]))
    )
    seg.write_bytes(bytes(data))
    report = verify(tmp_path, expected_head=head)
    assert [(p.kind, p.segment, p.offset) for p in report.problems] == [("chain_mismatch", 1, 32)]
    # The same forgery in the last segment: only the head from the manifest can tell.
    shutil.rmtree(tmp_path)
    head = _write(tmp_path, 5, JournalWriterConfig())
    seg = _segments(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    data[HDR + 24] ^= 0xFF
    length = struct.unpack_from("<I", data, HDR)[0]
    struct.pack_into(
        "<I", data, HDR + length - 4, crc32c.crc32c(bytes(data[HDR : HDR + length - 4]))
    )
    seg.write_bytes(bytes(data))
    assert verify(tmp_path).ok
    report = verify(tmp_path, expected_head=head)
    assert [p.kind for p in report.problems] == ["head_mismatch"]


def test_missing_segment_and_spliced_records(tmp_path: Path) -> None:
    _write(tmp_path, 60, JournalWriterConfig(segment_size=512))
    segs = _segments(tmp_path)
    segs[1].unlink()
    report = verify(tmp_path)
    kinds = [(p.kind, p.segment, p.offset) for p in report.problems]
    assert kinds[0] == ("missing_segment", 2, 0) and not report.tail_only
    first_of_2 = struct.unpack_from("<Q", segs[2].read_bytes(), 24)[0]
    first_of_1 = struct.unpack_from("<Q", segs[0].read_bytes(), 24)[0] + _count(segs[0])
    assert report.problems[0].records_affected == first_of_2 - first_of_1
    with pytest.raises(JournalCorruptError):
        recover(tmp_path)


def _count(seg: Path) -> int:
    data = seg.read_bytes()
    pos, n = HDR, 0
    while pos < len(data):
        pos += struct.unpack_from("<I", data, pos)[0]
        n += 1
    return n


# -- durability ------------------------------------------------------------------------------


class SyncSpy:
    """Stands in for fdatasync: records what the writer had written when it synced."""

    def __init__(self) -> None:
        self.writer: JournalWriter | None = None
        self.synced_seq = 0
        self.calls = 0

    def __call__(self, fd: int) -> None:
        os.fdatasync(fd)
        self.calls += 1
        if self.writer is not None:
            self.synced_seq = self.writer.written_seq


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> SyncSpy:
    s = SyncSpy()
    monkeypatch.setattr(writer_module, "_sync_fd", s)
    return s


def _written_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in _segments(d))


def test_durability_none(tmp_path: Path, spy: SyncSpy) -> None:
    w = JournalWriter.open(tmp_path, JournalWriterConfig(batch_bytes=1000))
    spy.writer = w
    for seq in range(1, 31):  # 68-byte records: 14 fill the buffer, the 15th writes them
        w.append(1, seq, bytes(40))
        assert w.durable_seq == w.written_seq == 14 * ((seq - 1) // 14)
        assert _written_bytes(tmp_path) == HDR + 68 * w.durable_seq  # really in the file
    w.flush()
    assert w.durable_seq == 30 and _written_bytes(tmp_path) == HDR + 68 * 30
    w.append_many(1, np.arange(5), np.zeros((5, 40), np.uint8))
    assert w.durable_seq == 30
    w.close()
    assert spy.calls == 0  # the mode never fsyncs
    # With a records trigger the buffer is written every n records.
    d = tmp_path / "n"
    w = JournalWriter.open(d, JournalWriterConfig(interval_records=4))
    for seq in range(1, 11):
        w.append(1, seq, b"x")
        assert w.durable_seq == 4 * (seq // 4)
    w.close()


def test_durability_every_record(tmp_path: Path, spy: SyncSpy) -> None:
    w = JournalWriter.open(
        tmp_path, JournalWriterConfig(durability="every_record", segment_size=512)
    )
    spy.writer = w
    for seq in range(1, 40):  # crosses several segment rolls
        w.append(1, seq, payload_of(seq))
        assert w.durable_seq == seq == spy.synced_seq
    r = w.append_many(2, np.arange(10), [payload_of(s) for s in range(40, 50)])
    assert w.durable_seq == r[-1] == spy.synced_seq
    calls = spy.calls
    head = w.close()
    assert spy.calls == calls  # nothing left to sync
    assert head.last_seq == 49


def test_durability_interval(tmp_path: Path, spy: SyncSpy) -> None:
    clock = StepClock(1_000)
    cfg = JournalWriterConfig(durability="interval", interval_ns=500, interval_records=5)
    w = JournalWriter.open(tmp_path, cfg, clock)
    spy.writer = w

    def check(expected: int) -> None:
        assert w.durable_seq == expected
        assert w.durable_seq <= spy.synced_seq  # never durable before its fsync

    w.append(1, 0, b"a")  # oldest unsynced at t=1000: deadline 1500
    check(0)
    clock.now = 1_499
    w.append(1, 0, b"b")
    assert w.poll() == 0
    check(0)
    clock.now = 1_500
    assert w.poll() == 2  # the time trigger
    check(2)
    clock.now = 1_600
    for seq in range(3, 8):  # the records trigger: 5 unsynced
        w.append(1, 0, b"c")
        check(7 if seq == 7 else 2)
    w.flush()  # written, not synced: not durable in this mode
    clock.now = 1_700
    w.append(1, 0, b"d")
    assert w.written_seq == 7
    check(7)
    clock.now = 2_200
    w.append(1, 0, b"e")  # deadline 1700 + 500 reached
    check(9)
    w.append_many(1, np.arange(12), np.zeros((12, 3), np.uint8))  # >= 5 at once
    check(21)
    clock.now = 9_000
    w.append_many(1, np.arange(2), np.zeros((2, 3), np.uint8))
    check(21)  # first unsynced records: the deadline starts now
    w.sync()
    check(23)
    head = w.close()
    assert head.last_seq == 23 and spy.synced_seq == 23


def test_reopening_in_an_fsync_mode_syncs_what_is_there(tmp_path: Path, spy: SyncSpy) -> None:
    _write(tmp_path, 50, JournalWriterConfig(segment_size=512))  # mode none: nothing fsynced
    assert spy.calls == 0
    w = JournalWriter.open(tmp_path, JournalWriterConfig(durability="every_record"))
    assert spy.calls == len(_segments(tmp_path)) and w.durable_seq == 50
    w.close()


def test_interval_ns_needs_clock_and_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="interval_ns"):
        JournalWriter.open(tmp_path, JournalWriterConfig(durability="interval", interval_ns=10))
    with pytest.raises(ConfigError, match="durability"):
        JournalWriterConfig(durability="sometimes")
    with pytest.raises(ConfigError, match="interval_records or interval_ns"):
        JournalWriterConfig(durability="interval")
    with pytest.raises(ConfigError, match="segment_size"):
        JournalWriterConfig(segment_size=100)
    with pytest.raises(ConfigError, match="interval_ns must be an integer") as exc:
        JournalWriterConfig(durability="interval", interval_ns=1.5)  # type: ignore[arg-type]
    assert exc.value.key == "interval_ns"


def test_writer_lifecycle_and_lock(tmp_path: Path) -> None:
    w = JournalWriter.open(tmp_path, JournalWriterConfig(segment_size=256))
    with pytest.raises(JournalError, match="locked"):
        JournalWriter.open(tmp_path)
    with pytest.raises(JournalError, match="locked"):
        recover(tmp_path)
    with pytest.raises(ValueError, match="exceeds"):
        w.append(1, 0, bytes(157))
    with pytest.raises(ValueError, match="out of range"):
        w.append(70_000, 0, b"")
    w.append(1, 0, bytes(156))  # the largest payload a 256-byte segment holds
    w.close()
    with pytest.raises(JournalError, match="append: writer is closed"):
        w.append(1, 0, b"")
    with JournalWriter.open(tmp_path) as w2:
        w2.append(1, 0, b"")
    assert verify(tmp_path).head.last_seq == 2


def test_a_failed_write_fails_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = JournalWriter.open(tmp_path, JournalWriterConfig(durability="every_record"))
    w.append(1, 0, b"kept")

    def no_space(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module.os, "write", no_space)
    with pytest.raises(JournalError, match="No space") as first:
        w.append(1, 0, b"lost")
    monkeypatch.undo()
    assert isinstance(first.value.__cause__, OSError)
    assert w.durable_seq == 1  # never reported durable
    with pytest.raises(JournalError, match="append: writer is failed") as later:
        w.append(1, 0, b"x")
    assert later.value.__cause__ is first.value
    with pytest.raises(JournalError, match="close: writer is failed"):
        w.close()
    assert JournalWriter.open(tmp_path).close().last_seq == 1  # lock released, journal intact


# -- flipped bytes ---------------------------------------------------------------------------


def test_every_flipped_byte_is_detected_and_located(tmp_path: Path) -> None:
    d = tmp_path / "j"
    head = _write(d, 60, JournalWriterConfig(segment_size=700))
    index, seg_of = JournalReader(d).read_index()
    segs = _segments(d)
    assert len(segs) >= 3
    last_seq = int(index["seq"][-1])
    total = 0
    for k, path in enumerate(segs):
        pristine = path.read_bytes()
        rows = index[seg_of == k]
        first_seq = int(rows["seq"][0])
        starts = rows["offset"].tolist()
        for pos in range(len(pristine)):
            if pos < HDR:
                want = (k, 0, first_seq, False)
                rec_len = None
            else:
                r = int(np.searchsorted(rows["offset"], pos, side="right")) - 1
                seq = int(rows["seq"][r])
                want = (k, starts[r], seq, seq == last_seq)
                rec_len = int(rows["length"][r]) if r + 1 < len(rows) else None
            flipped = bytearray(pristine)
            flipped[pos] ^= 1 << ((pos * 5) % 8)
            path.write_bytes(flipped)
            report = verify(d, expected_head=head)
            assert len(report.problems) == 1, (pos, report.problems)
            p = report.problems[0]
            assert (p.segment, p.offset, p.seq, p.tail) == want, (k, pos, p)
            if rec_len is not None:  # a record in the middle of a segment: exactly it is hit
                assert (p.records_affected, p.bytes_affected) == (1, rec_len), (k, pos, p)
            if pos % 97 == 0 and not p.tail:  # recovery never truncates corruption
                with pytest.raises(JournalCorruptError) as exc:
                    recover(d)
                assert (exc.value.segment, exc.value.offset, exc.value.seq) == want[:3]
                assert path.read_bytes() == bytes(flipped)
            total += 1
        path.write_bytes(pristine)
    assert total >= 2000
    assert verify(d, expected_head=head).ok


def test_reader_refuses_to_replay_past_corruption(tmp_path: Path) -> None:
    _write(tmp_path, 60, JournalWriterConfig(segment_size=512))
    seg = _segments(tmp_path)[1]
    data = bytearray(seg.read_bytes())
    data[HDR + 30] ^= 0x10
    seg.write_bytes(bytes(data))
    seen = []
    with pytest.raises(JournalCorruptError) as exc:
        for batch in JournalReader(tmp_path).batches():
            seen.append(batch.segment)
    assert seen == [0]
    assert (exc.value.segment, exc.value.offset) == (1, HDR)
    assert exc.value.seq == struct.unpack_from("<Q", data, 24)[0]


# -- torn tails ------------------------------------------------------------------------------


def test_truncation_at_every_offset_of_the_last_records(tmp_path: Path) -> None:
    pristine_dir = tmp_path / "pristine"
    full_head = _write(pristine_dir, 60, JournalWriterConfig(segment_size=700))
    _, full_records = _by_hand(pristine_dir)
    index, seg_of = JournalReader(pristine_dir).read_index()
    last_k = int(seg_of[-1])
    rows = index[seg_of == last_k]
    assert len(rows) >= 3
    last_path = _segments(pristine_dir)[-1]
    size = last_path.stat().st_size
    ends = {HDR} | {int(o + n) for o, n in zip(rows["offset"], rows["length"], strict=True)}
    d = tmp_path / "j"
    cfg = JournalWriterConfig(segment_size=700)
    for cut in range(size):
        shutil.copytree(pristine_dir, d)
        seg = d / last_path.name
        os.truncate(seg, cut)
        report = verify(d, expected_head=full_head)
        if cut < HDR:
            kept = int(rows["seq"][0]) - 1
            assert [(p.kind, p.offset, p.seq, p.tail) for p in report.problems] == [
                ("torn_header", 0, kept + 1, True)
            ]
        elif cut in ends:  # a clean cut between records: only the manifest head can tell
            kept = int(rows["seq"][rows["offset"] < cut][-1]) if cut > HDR else rows["seq"][0] - 1
            assert [p.kind for p in report.problems] == ["head_mismatch"]
            assert verify(d).ok
        else:
            r = int(np.searchsorted(rows["offset"], cut, side="right")) - 1
            off = int(rows["offset"][r])
            kept = int(rows["seq"][r]) - 1
            kind = "partial_header" if cut - off < 24 else "partial_record"
            assert [
                (p.kind, p.segment, p.offset, p.seq, p.records_affected, p.bytes_affected, p.tail)
                for p in report.problems
            ] == [(kind, last_k, off, kept + 1, 1, cut - off, True)]
            assert report.tail_only and report.head.last_seq == kept

        rec = recover(d, keep_seq=kept)
        assert rec.ok and rec.head.last_seq == kept
        assert (rec.truncated is None) == (cut in ends)
        oracle, records = _by_hand(d)
        assert oracle == rec.head and records == full_records[:kept]
        # A writer continues where the valid records end, the chain continuing.
        w = JournalWriter.open(d, cfg)
        assert w.append(1, 0, payload_of(kept + 1)) == kept + 1
        w.append_many(2, np.array([5]), [payload_of(kept + 2)])
        head = w.close()
        assert verify(d, expected_head=head).ok
        oracle, records = _by_hand(d)
        assert oracle == head and records[:kept] == full_records[:kept]
        assert [r[4] for r in records[kept:]] == [payload_of(kept + 1), payload_of(kept + 2)]
        shutil.rmtree(d)


def test_recover_zero_filled_and_garbled_tails(tmp_path: Path) -> None:
    head = _write(tmp_path, 20, JournalWriterConfig())
    seg = _segments(tmp_path)[0]
    size = seg.stat().st_size
    with seg.open("ab") as fh:
        fh.write(bytes(300))
    report = verify(tmp_path)
    assert [(p.kind, p.offset, p.seq, p.bytes_affected, p.tail) for p in report.problems] == [
        ("zero_fill", size, 21, 300, True)
    ]
    with pytest.raises(JournalCorruptError, match="torn tail"):
        JournalWriter.open(tmp_path)  # without recover=True a torn journal is refused
    w = JournalWriter.open(tmp_path, recover=True)
    assert w.recovery.truncated is not None and w.recovery.head == head
    w.append(1, 0, b"after")
    w.close()
    assert seg.stat().st_size == size + 28 + 5
    # A whole-looking last record with a bad CRC and nothing valid after it: a tail too.
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF
    seg.write_bytes(bytes(data))
    report = verify(tmp_path)
    assert [(p.kind, p.seq, p.tail) for p in report.problems] == [("bad_crc", 21, True)]
    with pytest.raises(JournalCorruptError, match="acknowledged"):
        recover(tmp_path, keep_seq=21)  # would drop a record the caller says was durable
    assert recover(tmp_path, keep_seq=20).head == head


def test_torn_new_segment_header_is_removed(tmp_path: Path) -> None:
    head = _write(tmp_path, 30, JournalWriterConfig(segment_size=512))
    n = len(_segments(tmp_path))
    torn = tmp_path / segment_name(n)
    torn.write_bytes(b"ARBSJRNL\x01\x00")  # a crash while creating the next segment
    report = recover(tmp_path)
    assert report.truncated is not None and report.truncated.kind == "torn_header"
    assert not torn.exists() and report.head == head
    assert _write(tmp_path, 30, JournalWriterConfig(segment_size=512), start=31).last_seq == 60
    assert _by_hand(tmp_path)[0].last_seq == 60

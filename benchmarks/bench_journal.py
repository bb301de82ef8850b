"""Benchmark: journal append and verify/replay throughput, against raw file I/O in the same run.

Records of 100 bytes (72-byte payload + 28 bytes of header and CRC), 64 MiB segments, a
256 KiB write buffer, in a temporary directory (the page cache absorbs the writes: these are
CPU costs, not disk bandwidth). Figures are per-round medians:

- ``append_many``: batches of 1024 records per call, durability ``none`` (target >= 1 M
  records/s), and ``interval`` (fsync every 10 ms on an injected monotonic clock or every
  65536 records);
- ``append``: one Python call per record, durability ``none``;
- ``verify``: every segment read, CRC-checked, sequence-checked and chain-hashed (target >=
  2 M records/s); ``replay_batches``: the same through :meth:`JournalReader.batches` (bulk
  index arrays); ``replay_records``: one :class:`Record` per record in Python;
- floors measured side by side: ``os.write`` of the same bytes in the same buffer size
  (append), reading the segment files and SHA-256 over them (verify); ratios = floor time /
  journal time as throughput fractions.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.journal import JournalReader, JournalWriter, JournalWriterConfig, verify

PAYLOAD = 72
RECORD = PAYLOAD + 28
BATCH = 1024
N_RECORDS = 2_048_000  # per round, batched
N_SINGLE = 300_000  # per round, one call per record
ROUNDS = 3
TARGET_APPEND = 1_000_000
TARGET_VERIFY = 2_000_000
INTERVAL_CFG = JournalWriterConfig(
    durability="interval", interval_ns=10_000_000, interval_records=65_536
)
#: the measurements, each timed once per round (``records`` in the first round only)
TIMES = (
    "many",
    "many_interval",
    "single",
    "raw_write",
    "verify",
    "batches",
    "records",
    "read_hash",
)


class _Monotonic:
    def now_ns(self) -> int:
        return time.monotonic_ns()


def _append_many(directory: Path, cfg: JournalWriterConfig, rows: np.ndarray) -> float:
    ts = np.arange(BATCH, dtype=np.int64)
    w = JournalWriter.open(directory, cfg, _Monotonic())
    t0 = time.perf_counter_ns()
    for _ in range(N_RECORDS // BATCH):
        w.append_many(1, ts, rows)
    w.close()
    return (time.perf_counter_ns() - t0) / 1e9


def _append_single(directory: Path, payload: bytes) -> float:
    w = JournalWriter.open(directory, JournalWriterConfig())
    append = w.append
    t0 = time.perf_counter_ns()
    for i in range(N_SINGLE):
        append(1, i, payload)
    w.close()
    return (time.perf_counter_ns() - t0) / 1e9


def _raw_write(path: Path, nbytes: int, chunk: int) -> float:
    buf = bytearray(os.urandom(chunk))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    t0 = time.perf_counter_ns()
    try:
        for _ in range(nbytes // chunk):
            os.write(fd, buf)
    finally:
        os.close(fd)
    return (time.perf_counter_ns() - t0) / 1e9


def _read_and_hash(directory: Path) -> float:
    import hashlib

    t0 = time.perf_counter_ns()
    for path in sorted(directory.glob("journal-*.seg")):
        hashlib.sha256(path.read_bytes()).digest()
    return (time.perf_counter_ns() - t0) / 1e9


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter_ns()
    out = fn()
    return (time.perf_counter_ns() - t0) / 1e9, out


def _count_batches(d: Path) -> int:
    n = 0
    for batch in JournalReader(d).batches():
        n += len(batch)
    return n


def _count_records(d: Path) -> int:
    n = 0
    for _rec in JournalReader(d).records():
        n += 1
    return n


def _round(
    root: Path, r: int, rows: np.ndarray, payload: bytes, t: dict[str, list[float]]
) -> int | None:
    """Round ``r`` of every measurement, its times appended to ``t``; the first round also
    replays one :class:`Record` per record (slow: once is enough) and returns the journal's
    size in bytes."""
    d = root / f"none-{r}"
    t["many"].append(_append_many(d, JournalWriterConfig(), rows))
    t["raw_write"].append(_raw_write(root / "raw", N_RECORDS * RECORD, 256 << 10))
    t["verify"].append(_timed(lambda: verify(d))[0])
    t["read_hash"].append(_read_and_hash(d))
    dt, n = _timed(lambda: _count_batches(d))
    assert n == N_RECORDS
    t["batches"].append(dt)
    journal_bytes = None
    if r == 0:
        report = verify(d)
        assert report.ok and report.records == N_RECORDS
        journal_bytes = report.bytes
        dt, n = _timed(lambda: _count_records(d))
        assert n == N_RECORDS
        t["records"].append(dt)
    d_int = root / f"interval-{r}"
    t["many_interval"].append(_append_many(d_int, INTERVAL_CFG, rows))
    t["single"].append(_append_single(root / f"single-{r}", payload))
    for p in (d, d_int, root / f"single-{r}"):
        for f in p.iterdir():
            f.unlink()
    return journal_bytes


def run() -> dict[str, Any]:
    rows = np.random.default_rng(7).integers(0, 256, (BATCH, PAYLOAD), dtype=np.uint8)
    payload = rows[0].tobytes()
    t: dict[str, list[float]] = {k: [] for k in TIMES}
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        root = Path(tmp)
        # warm-up: kernels are loaded at import; this warms the page cache and allocator
        _append_many(root / "warm", JournalWriterConfig(), rows)
        sizes = [_round(root, r, rows, payload, t) for r in range(ROUNDS)]
    journal_bytes = sizes[0]
    assert journal_bytes is not None
    return _figures({k: statistics.median(v) for k, v in t.items()}, journal_bytes)


def _figures(med: dict[str, float], journal_bytes: int) -> dict[str, Any]:
    """Throughputs and floor ratios from the median time of each measurement."""
    many = N_RECORDS / med["many"]
    verify_rate = N_RECORDS / med["verify"]
    return {
        "record_bytes": RECORD,
        "records_per_round": N_RECORDS,
        "append_many_records_per_s": round(many),
        "append_many_MB_per_s": round(many * RECORD / 1e6, 1),
        "append_many_interval_records_per_s": round(N_RECORDS / med["many_interval"]),
        "append_records_per_s": round(N_SINGLE / med["single"]),
        "raw_write_MB_per_s": round(N_RECORDS * RECORD / med["raw_write"] / 1e6, 1),
        "append_many_fraction_of_raw_write": round(med["raw_write"] / med["many"], 3),
        "verify_records_per_s": round(verify_rate),
        "verify_MB_per_s": round(journal_bytes / med["verify"] / 1e6, 1),
        "read_sha256_MB_per_s": round(journal_bytes / med["read_hash"] / 1e6, 1),
        "verify_fraction_of_read_sha256": round(med["read_hash"] / med["verify"], 3),
        "replay_batches_records_per_s": round(N_RECORDS / med["batches"]),
        "replay_records_records_per_s": round(N_RECORDS / med["records"]),
        "target_append_records_per_s": TARGET_APPEND,
        "target_verify_records_per_s": TARGET_VERIFY,
        "meets_targets": bool(many >= TARGET_APPEND and verify_rate >= TARGET_VERIFY),
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value}")

"""Crash consistency of the journal: SIGKILL a writing child process at random moments.

A child process (this file run as a script) appends records -- single appends and batches of
random size, with random pauses of a few ms so a kill lands between, inside and after
batches -- and prints every new ``durable_seq`` to stdout, one flushed line each. The parent
kills it with SIGKILL after a random (seeded) delay, recovers the journal with
``keep_seq`` = the last acknowledged sequence, checks that every record up to it is there with
its exact payload (derived from the sequence) and that the chain verifies, then starts the next
child on the same journal, which continues it.

What SIGKILL can test is the process-crash half of each mode's promise: the page cache
survives, so records ``none`` acknowledged (written to the OS) must survive as well as those
``interval`` and ``every_record`` acknowledged (fsynced). Power loss is not simulated here;
the torn tails it can leave are covered byte by byte in ``test_journal.py``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from arbsphere.journal import JournalReader, JournalWriter, JournalWriterConfig, recover

MODES = {
    "none": JournalWriterConfig(segment_size=16 << 10, batch_bytes=2048, interval_records=37),
    "interval": JournalWriterConfig(
        durability="interval",
        segment_size=16 << 10,
        batch_bytes=2048,
        interval_records=64,
        interval_ns=2_000_000,
    ),
    "every_record": JournalWriterConfig(durability="every_record", segment_size=16 << 10),
}
CYCLES = 3
SEED = 20240617


def payload_for(seq: int) -> bytes:
    return (seq.to_bytes(8, "little") * 16)[: (seq * 13) % 120]


def type_for(seq: int) -> int:
    return seq % 7


def ts_for(seq: int) -> int:
    return seq * 1_000 - 3


class _Monotonic:
    def now_ns(self) -> int:
        return time.monotonic_ns()


def child(directory: str, mode: str, seed: int) -> None:
    """Append until killed (or 30 s), printing each new durable_seq on its own line."""
    rng = random.Random(seed)
    w = JournalWriter.open(directory, MODES[mode], _Monotonic())
    out = sys.stdout
    acked = w.durable_seq
    out.write(f"ready {acked}\n")
    out.flush()
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        nxt = w.last_seq + 1
        if rng.random() < 0.5:
            w.append(type_for(nxt), ts_for(nxt), payload_for(nxt))
        else:
            seqs = range(nxt, nxt + rng.randint(1, 120))
            w.append_many(
                np.array([type_for(s) for s in seqs]),
                np.array([ts_for(s) for s in seqs], np.int64),
                [payload_for(s) for s in seqs],
            )
        w.poll()
        if w.durable_seq > acked:
            acked = w.durable_seq
            out.write(f"{acked}\n")
            out.flush()
        if rng.random() < 0.05:
            time.sleep(rng.random() * 0.004)
    w.close()


def _start(directory: Path, mode: str, seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, str(directory), mode, str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _check(directory: Path, acked: int) -> int:
    report = recover(directory, keep_seq=acked)  # raises if an acknowledged record is missing
    assert report.ok and report.head.last_seq >= acked
    reader = JournalReader(directory, expected_head=report.head)
    n = 0
    for rec in reader:  # verifies CRCs, continuity, the chain and the head on the way
        n += 1
        assert rec.seq == n
        assert (rec.type, rec.ts_ns) == (type_for(n), ts_for(n))
        assert rec.payload == payload_for(n), n
    assert n == report.head.last_seq and reader.head == report.head
    return n


@pytest.mark.slow
def test_sigkill_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    acked = dict.fromkeys(MODES, 0)
    for _cycle in range(CYCLES):
        procs = {m: _start(tmp_path / m, m, rng.randrange(1 << 30)) for m in MODES}
        for mode, proc in procs.items():  # children start in parallel; wait for each
            assert proc.stdout is not None and proc.stderr is not None
            line = proc.stdout.readline()
            if not line.startswith(b"ready"):
                proc.kill()
                raise AssertionError(f"{mode} child failed: {line!r} {proc.stderr.read()!r}")
            assert int(line.split()[1]) >= acked[mode]
        for proc in procs.values():
            time.sleep(rng.uniform(0.02, 0.2))
            os.kill(proc.pid, signal.SIGKILL)
        for mode, proc in procs.items():
            out, _ = proc.communicate(timeout=10)
            assert proc.returncode == -signal.SIGKILL
            seqs = [int(x) for x in out.split(b"\n")[:-1]]  # complete lines only
            assert seqs == sorted(seqs)
            if seqs:
                acked[mode] = seqs[-1]
            _check(tmp_path / mode, acked[mode])
    assert all(a > 0 for a in acked.values()), acked


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]))

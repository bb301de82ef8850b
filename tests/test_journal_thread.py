"""The coordinator's journal writer thread: records framed on the receive loop's side come out
of the journal exactly as handed over, in order, while the writer drains concurrently."""

from __future__ import annotations

import threading
from pathlib import Path

from arbsphere.clock import RealtimeClock
from arbsphere.coordinator.journal_records import REC_BATCH, REC_DELTA, REC_INPUT, encode_frames
from arbsphere.coordinator.journal_thread import JournalThread
from arbsphere.journal import JournalWriterConfig
from arbsphere.replay.engine import journal_records


def test_records_come_out_framed_and_in_order_across_concurrent_drains(tmp_path: Path) -> None:
    config = JournalWriterConfig(segment_size=1 << 20, durability="interval", interval_records=100)
    journal = JournalThread(tmp_path / "j", config, RealtimeClock())
    expected: list[tuple[int, int, bytes]] = []
    stop = threading.Event()

    def wake_often() -> None:  # drains racing the appends (the lock keeps records whole)
        while not stop.is_set():
            journal._wake.set()

    racer = threading.Thread(target=wake_often)
    racer.start()
    try:
        for k in range(20_000):
            if k % 3 == 0:
                frames = [bytes([k % 251]) * (1 + k % 97), b"sig" * (k % 5)][: 1 + k % 2]
                journal.append(REC_INPUT, k, frames)
                expected.append((REC_INPUT, k, encode_frames(frames)))
            else:
                rtype = REC_BATCH if k % 3 == 1 else REC_DELTA
                payload = k.to_bytes(4, "little") * (1 + k % 7)
                journal.append(rtype, k, payload)
                expected.append((rtype, k, payload))
            journal.flush()
    finally:
        stop.set()
        racer.join()
    head = journal.close()
    got = [(r.type, r.ts_ns, r.payload) for r in journal_records(tmp_path / "j", head)]
    assert head.record_count == len(expected) == journal.appended
    assert got == expected
    assert len(list((tmp_path / "j").iterdir())) > 1  # rolled segments on the way

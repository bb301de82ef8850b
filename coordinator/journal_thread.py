"""The coordinator's journal writer on its own thread, so writes and fsyncs never hold up a
decision.

The receive loop frames each record as it hands it over (a few C-level appends to a byte
buffer and three arrays, under a lock held for nothing else); the writer thread swaps the
buffers out every ``IDLE_POLL_S`` (or at once when :meth:`JournalThread.flush` sees a large
backlog) and appends them to the :class:`~arbsphere.journal.JournalWriter` in one vectorised
call, in exactly the order they were handed over — the journal's content never depends on
thread timing — applying the writer's durability mode (``poll`` for the interval deadline).
The writer thread runs no Python per record (framing records there in a Python loop costs
~0.5 ms per drain holding the GIL, which the recorder bench's interleaved on/off run shows at the
coordinator path's p99). ``close`` drains everything, closes the
writer and returns the chain head for the manifest. A writer failure is kept and re-raised by
``close`` (and ends the thread): records are never silently dropped.
"""

from __future__ import annotations

import sys
import threading
from array import array
from pathlib import Path

import numpy as np

from arbsphere.clock import Clock
from arbsphere.coordinator.journal_records import FRAME_COUNT, FRAME_LENGTH
from arbsphere.errors import JournalError
from arbsphere.journal import JournalHead, JournalWriter, JournalWriterConfig

#: how often the writer thread drains the queue. Fewer, larger drains disturb the receive loop
#: less (recorder on/off p99 1.13x at 5 ms, ~1.04-1.07x at 50 ms); records still queued are
#: not written yet (lost in a crash) and were never acknowledged durable: the writer's
#: ``durable_seq`` only covers what it has appended and written/synced
IDLE_POLL_S = 0.05
GIL_SWITCH_INTERVAL_S = 0.00005
_U16 = FRAME_COUNT
_U32 = FRAME_LENGTH
#: records queued before the loop wakes the writer thread early
WAKE_BACKLOG = 8192


class JournalThread:
    def __init__(self, directory: Path, config: JournalWriterConfig, clock: Clock) -> None:
        # With a second thread, a waiting receive loop gets the GIL back after at most the
        # switch interval (default 5 ms: that would be a latency spike); 50 µs bounds it.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self.writer = JournalWriter.open(directory, config, clock)
        self._lock = threading.Lock()
        self._buf, self._types, self._ts, self._sizes = _empty()
        self._wake = threading.Event()
        self._stop = False
        self._error: BaseException | None = None
        self.appended = 0
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    # -- the receive loop's side (JournalSink) -------------------------------------------------
    def append(self, rtype: int, ts_ns: int, payload: bytes | list[bytes]) -> int:
        """Frame one record into the pending buffers (an INPUT's frames in
        :func:`~.journal_records.encode_frames`' layout)."""
        with self._lock:
            buf = self._buf
            if isinstance(payload, bytes):
                buf += payload
                size = len(payload)
            else:
                start = len(buf)
                buf += _U16.pack(len(payload))
                for frame in payload:
                    buf += _U32.pack(len(frame))
                    buf += frame
                size = len(buf) - start
            self._types.append(rtype)
            self._ts.append(ts_ns)
            self._sizes.append(size)
        return 0  # the sequence is assigned by the writer thread, in this same order

    def flush(self) -> None:
        # Waking the writer on every wake-up of the loop would cost a thread switch per batch
        # (tens of thousands a second, on the same cores): it drains every IDLE_POLL_S anyway,
        # and is woken early only when a large backlog has built up.
        if len(self._types) >= WAKE_BACKLOG:
            self._wake.set()

    # -- the writer thread ------------------------------------------------------------------
    def _drain(self) -> None:
        """Everything handed over so far, swapped out under the lock and appended in one
        vectorised ``append_many`` (its kernels run without the GIL)."""
        with self._lock:
            if not self._types:
                return
            buf, types, ts, sizes = self._buf, self._types, self._ts, self._sizes
            self._buf, self._types, self._ts, self._sizes = _empty()
        n = len(types)
        self.writer.append_many(
            np.frombuffer(types, np.uint16), np.frombuffer(ts, np.int64),
            np.frombuffer(buf, np.uint8), lengths=np.frombuffer(sizes, np.int64),
        )  # fmt: skip
        self.appended += n

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(IDLE_POLL_S)
                self._wake.clear()
                self._drain()
                if self._stop:
                    return
                self.writer.poll()
        except BaseException as exc:  # kept for close(): the owner decides what happens
            self._error = exc

    @property
    def durable_seq(self) -> int:
        return self.writer.durable_seq

    def close(self) -> JournalHead:
        """Drain, close the writer, return its head; re-raise a writer failure."""
        self._stop = True
        self._wake.set()
        self._thread.join()
        if self._error is not None:
            raise JournalError(f"journal writer failed: {self._error}") from self._error
        self._drain()
        return self.writer.close()


def _empty() -> tuple[bytearray, array[int], array[int], array[int]]:
    """Fresh pending buffers: payload bytes, then type, timestamp and size per record."""
    return bytearray(), array("H"), array("q"), array("q")

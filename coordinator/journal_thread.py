"""The coordinator's journal writer on its own thread, so writes and fsyncs never hold up a
decision.

The receive loop hands records over through a deque (appending to it is all the loop pays);
the writer thread drains it every ``IDLE_POLL_S`` (or at once when :meth:`JournalThread.flush`
sees a large backlog) and appends the records to the
:class:`~arbsphere.rig.journal.JournalWriter` in exactly the order they were handed over — the
journal's content never depends on thread timing — applying the writer's durability mode
(``poll`` for the interval deadline). ``close`` drains
everything, closes the writer and returns the chain head for the manifest. A writer failure is
kept and re-raised by ``close`` (and ends the thread): records are never silently dropped.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from pathlib import Path

import numpy as np

from arbsphere.clock import Clock
from arbsphere.coordinator.journal_records import FRAME_COUNT, FRAME_LENGTH
from arbsphere.errors import JournalError
from arbsphere.rig.journal import JournalConfig, JournalHead, JournalWriter

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
    def __init__(self, directory: Path, config: JournalConfig, clock: Clock) -> None:
        # With a second thread, a waiting receive loop gets the GIL back after at most the
        # switch interval (default 5 ms: that would be a latency spike); 50 µs bounds it.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self.writer = JournalWriter.open(directory, config, clock)
        self._queue: deque[tuple[int, int, bytes | list[bytes]]] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._error: BaseException | None = None
        self.appended = 0
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    # -- the receive loop's side (JournalSink) -------------------------------------------------
    def append(self, rtype: int, ts_ns: int, payload: bytes | list[bytes]) -> int:
        self._queue.append((rtype, ts_ns, payload))
        return 0  # the sequence is assigned by the writer thread, in this same order

    def flush(self) -> None:
        # Waking the writer on every wake-up of the loop would cost a thread switch per batch
        # (tens of thousands a second, on the same cores): it drains every IDLE_POLL_S anyway,
        # and is woken early only when a large backlog has built up.
        if len(self._queue) >= WAKE_BACKLOG:
            self._wake.set()

    # -- the writer thread ------------------------------------------------------------------
    def _drain(self) -> None:
        """Everything handed over so far, in one vectorised ``append_many`` (its kernels run
        without the GIL, so the receive loop is never held up for long). One pass builds the
        flat payload buffer: INPUT frames are framed here (:func:`encode_frames`' layout)."""
        q = self._queue
        n = len(q)
        if not n:
            return
        types = np.empty(n, np.uint16)
        ts = np.empty(n, np.int64)
        sizes = np.empty(n, np.int64)
        parts: list[bytes] = []
        put = parts.append
        u16 = _U16.pack
        u32 = _U32.pack
        for i in range(n):
            rtype, t, payload = q.popleft()
            types[i] = rtype
            ts[i] = t
            if isinstance(payload, bytes):
                put(payload)
                sizes[i] = len(payload)
            else:
                put(u16(len(payload)))
                size = 2
                for frame in payload:
                    put(u32(len(frame)))
                    put(frame)
                    size += 4 + len(frame)
                sizes[i] = size
        flat = np.frombuffer(b"".join(parts), np.uint8)
        self.writer.append_many(types, ts, flat, lengths=sizes)
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

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
from arbsphere.coordinator.journal_records import encode_frames
from arbsphere.errors import JournalError
from arbsphere.rig.journal import JournalConfig, JournalHead, JournalWriter

#: longest wait of the writer thread without a flush request (bounds the interval deadline)
IDLE_POLL_S = 0.005
GIL_SWITCH_INTERVAL_S = 0.00005
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
        without the GIL, so the receive loop is never held up for long)."""
        q = self._queue
        n = len(q)
        if not n:
            return
        items = [q.popleft() for _ in range(n)]
        types = np.fromiter((t for t, _, _ in items), np.uint16, n)
        ts = np.fromiter((t for _, t, _ in items), np.int64, n)
        payloads = [p if isinstance(p, bytes) else encode_frames(p) for _, _, p in items]
        self.writer.append_many(types, ts, payloads)
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

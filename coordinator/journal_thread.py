"""The coordinator's journal writer on its own thread, so writes and fsyncs never hold up a
decision.

The receive loop hands records over through a deque (appending to it is all the loop pays);
:meth:`JournalThread.flush` (called once a wake-up's PlanDelta is out) wakes the writer thread,
which appends them to the :class:`~arbsphere.rig.journal.JournalWriter` in exactly the order
they were handed over — the journal's content never depends on thread timing — and applies the
writer's durability mode (``poll`` for the interval deadline while idle). ``close`` drains
everything, closes the writer and returns the chain head for the manifest. A writer failure is
kept and re-raised by ``close`` (and ends the thread): records are never silently dropped.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

from arbsphere.clock import Clock
from arbsphere.errors import JournalError
from arbsphere.rig.journal import JournalConfig, JournalHead, JournalWriter

#: longest wait of the writer thread without a flush request (bounds the interval deadline)
IDLE_POLL_S = 0.01


class JournalThread:
    def __init__(self, directory: Path, config: JournalConfig, clock: Clock) -> None:
        self.writer = JournalWriter.open(directory, config, clock)
        self._queue: deque[tuple[int, int, bytes]] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._error: BaseException | None = None
        self.appended = 0
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    # -- the receive loop's side (JournalSink) -------------------------------------------------
    def append(self, rtype: int, ts_ns: int, payload: bytes) -> int:
        self._queue.append((rtype, ts_ns, payload))
        return 0  # the sequence is assigned by the writer thread, in this same order

    def flush(self) -> None:
        self._wake.set()

    # -- the writer thread ------------------------------------------------------------------
    def _drain(self) -> None:
        q = self._queue
        w = self.writer
        while q:
            rtype, ts, payload = q.popleft()
            w.append(rtype, ts, payload)
            self.appended += 1

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

"""The pipeline's roles wired in one process, without sockets: what stands in for the sockets.

:class:`InProcessLink` is a :class:`~arbsphere.coordinator.rounds.RoundLink` that hands every
round message (DualVariables or PriceProposal, as bytes) straight to the venue's answer code
(:meth:`VenueRounds.handle <arbsphere.adapters.venue_rounds.VenueRounds.handle>` or
:meth:`VenuePrices.handle <arbsphere.adapters.venue_prices.VenuePrices.handle>`) and queues its
answer for the coordinator's rounds driver. :class:`QueuedSocket` is the coordinator's inbound
socket as the :class:`~arbsphere.coordinator.receive_loop.ReceiveLoop` reads it (frames queued
by the caller, taken without waiting); :class:`SentMessages` its outbound one (PlanDeltas and
PlanSnapshots kept in send order). :class:`SimClock` is a clock that stands still until it is
moved. The simulator (:mod:`.sim`) and the rounds tests run the real drivers, receive loop and
venue code through these.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from arbsphere.coordinator.journal_records import (
    REC_ROUND_INPUT,
    REC_ROUND_TIMEOUT,
    encode_frames,
    encode_round_timeout,
)
from arbsphere.errors import PipelineError
from arbsphere.replay.engine import JournalRecord

#: plain ints: what :meth:`QueuedSocket.getsockopt` answers for ``zmq.EVENTS``
_ZMQ_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


class InProcessLink:
    """The rounds' link with the venues called directly: every DualVariables (or
    PriceProposal) goes (as bytes) to the venue's ``handle``, every answer is queued as
    (identity, bytes). A venue in ``silent`` reads but never answers: the wait then runs out
    (``receive`` returns None at once, whatever the deadline). Journals like the live link
    when ``records`` is a list."""

    def __init__(self, venues: Sequence[Any], records: list[JournalRecord] | None = None):
        self.venues = venues  # VenueRounds or VenuePrices: anything with ``handle``
        self.silent: set[int] = set()
        self.queue: deque[list[bytes]] = deque()
        self.records = records
        #: (frames) -> frames, applied to answers before delivery
        self.tamper: Callable[[list[bytes]], list[bytes]] | None = None
        #: every answer a venue sent, as it sent it (kept only when ``keep_sent``)
        self.sent: list[bytes] = []
        self.keep_sent = True
        #: the receive time the venues are given for every message
        self.rx_ns = 0

    def send(self, frames: tuple[bytes, bytes]) -> None:
        ident, msg = frames
        i = int(ident.decode().split("-")[1])
        if i in self.silent:
            return
        out = self.venues[i].handle(msg, self.rx_ns)
        if out is not None:
            if self.keep_sent:
                self.sent.append(out)
            answer = [ident, out]
            if self.tamper is not None:
                answer = self.tamper(answer)
            self.queue.append(answer)

    def receive(self, deadline_ns: int, solve_id: int, round_no: int) -> list[bytes] | None:
        if not self.queue:
            if self.records is not None:
                self._record(REC_ROUND_TIMEOUT, encode_round_timeout(solve_id, round_no))
            return None
        frames = self.queue.popleft()
        if self.records is not None:
            self._record(REC_ROUND_INPUT, encode_frames(frames))
        return frames

    def _record(self, rtype: int, payload: bytes) -> None:
        assert self.records is not None
        n = len(self.records)
        self.records.append(JournalRecord(n, n + 1, rtype, 0, payload))


class QueuedSocket:
    """An inbound socket as the receive loop reads it: ``recv_multipart(zmq.NOBLOCK)`` takes the
    oldest queued message (raising ``zmq.Again`` when none is queued) and
    ``getsockopt(zmq.EVENTS)`` says whether one is."""

    def __init__(self) -> None:
        self.queue: deque[list[bytes]] = deque()

    def put(self, frames: list[bytes]) -> None:
        self.queue.append(frames)

    def recv_multipart(self, flags: int = 0, copy: bool = True) -> list[bytes]:
        if not self.queue:
            raise zmq.Again()
        return self.queue.popleft()

    def getsockopt(self, option: int) -> int:
        if option != _ZMQ_EVENTS:
            raise PipelineError(f"QueuedSocket answers zmq.EVENTS only, not option {option}")
        return _POLLIN if self.queue else 0


class SentMessages:
    """An outbound socket that keeps what is sent, in order, until :meth:`take` empties it
    (``keep`` False: a socket whose messages are delivered otherwise, kept nowhere)."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.sent: list[bytes] = []

    def send(self, data: bytes, copy: bool = True) -> None:
        if self.keep:
            self.sent.append(bytes(data))

    def take(self) -> list[bytes]:
        out, self.sent = self.sent, []
        return out


class SimClock:
    """Simulated time: reads ``t_ns`` until the simulation moves it."""

    def __init__(self, t_ns: int = 0) -> None:
        self.t_ns = t_ns

    def now_ns(self) -> int:
        return self.t_ns

"""The coordinator's journal recorder: what :mod:`.journal_records` describes, appended to a
journal writer from the receive loop without holding up a decision.

Appends copy into the writer's buffer; the buffer goes to the file (and is synced, per the
journal's durability mode) only in :meth:`Recorder.after_batch`, which the loop calls once a
wake-up's PlanDelta has been sent — off the critical path.
"""

from __future__ import annotations

from typing import Any, Protocol

from arbsphere.coordinator.journal_records import (
    REC_BATCH,
    REC_CONFIG,
    REC_DELTA,
    REC_INPUT,
    REC_ROUND_INPUT,
    REC_ROUND_TIMEOUT,
    REC_STATE,
    encode_batch,
    encode_config,
    encode_round_timeout,
    encode_state,
)


class JournalSink(Protocol):
    """The part of a journal writer the recorder uses. ``payload`` is the record's bytes, or
    for an INPUT the list of frames as received, which the sink encodes with
    :func:`~.journal_records.encode_frames` (on its own thread: off the receive loop)."""

    def append(self, rtype: int, ts_ns: int, payload: bytes | list[bytes]) -> int: ...

    def flush(self) -> None: ...


class Recorder:
    def __init__(self, sink: JournalSink) -> None:
        self.sink = sink
        self.records = 0

    def _put(self, rtype: int, ts_ns: int, payload: bytes | list[bytes]) -> None:
        self.sink.append(rtype, ts_ns, payload)
        self.records += 1

    def config(self, config: dict[str, Any], ts_ns: int) -> None:
        self._put(REC_CONFIG, ts_ns, encode_config(config))

    def input(self, frames: list[bytes], rx_ns: int) -> None:
        # the frames list as received (recv_multipart makes a new one each time): the sink
        # encodes it, off the receive loop
        self.sink.append(REC_INPUT, rx_ns, frames)
        self.records += 1

    def round_input(self, frames: list[bytes], rx_ns: int) -> None:
        """A message received on the rounds socket (federated), framed like an INPUT."""
        self.sink.append(REC_ROUND_INPUT, rx_ns, frames)
        self.records += 1

    def round_timeout(self, solve_id: int, round_no: int, ts_ns: int) -> None:
        self._put(REC_ROUND_TIMEOUT, ts_ns, encode_round_timeout(solve_id, round_no))

    def batch(self, n: int, ts_ns: int) -> None:
        self._put(REC_BATCH, ts_ns, encode_batch(n))

    def delta(self, data: bytes, ts_ns: int) -> None:
        self._put(REC_DELTA, ts_ns, data)

    def state(self, core: Any, ts_ns: int) -> None:
        self._put(REC_STATE, ts_ns, encode_state(core))

    def after_batch(self) -> None:
        self.sink.flush()

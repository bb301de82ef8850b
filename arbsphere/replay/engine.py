"""Bit-exact re-execution of the coordinator from its journal.

The coordinator is a deterministic state machine over its journaled inputs: the CONFIG record
rebuilds it, INPUT records are queued exactly as received, and each BATCH record runs one
wake-up over exactly the inputs the recording drained (batch boundaries depend on arrival
timing, so they are recorded, never re-derived). Every PlanDelta and PlanSnapshot the replay
sends is compared byte for byte, in order, with the recorded DELTA and SNAPSHOT records, and the
final state digest with the STATE record. A journal recorded before the snapshots were journaled
(no CONFIG ``journal_snapshots``) replays its PlanSnapshots unchecked (counted), and one recorded
before the wake-up stamp (no CONFIG ``stamp``) stamps its outputs with their cause's stamp.
The first difference is reported with the record it belongs to and, for a PlanDelta or
PlanSnapshot, the first differing field with both values.

Under secure aggregation (CONFIG ``secure_aggregation``) the recorded answers are the masked
shares and the reveals: the replay adds the same words and gets the same sums bit for bit.

A federated run's solves take rounds with the venues inside a wake-up: the ROUND records after
its BATCH record (every message the rounds socket received, and every wait that ran out) are
what the rounds receive in the replay (:class:`RecordedRoundLink`), so the exchange steps and
their decisions are made again from exactly what the venues answered. A replay that asks for
an answer the recording did not get, or leaves one unread, has diverged at that record.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zmq

from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.journal_records import (
    OUTPUT_RECORDS,
    REC_BATCH,
    REC_CONFIG,
    REC_DELTA,
    REC_INPUT,
    REC_ROUND_INPUT,
    REC_STATE,
    RECORD_NAMES,
    ROUND_RECORDS,
    decode_batch,
    decode_config,
    decode_frames,
    decode_round_timeout,
    state_digest,
)
from arbsphere.errors import DecodeError, JournalError

if TYPE_CHECKING:
    from arbsphere.coordinator.receive_loop import ReceiveLoop


@dataclass(frozen=True)
class JournalRecord:
    """One record as the replay needs it."""

    index: int  # position in the journal (0-based)
    seq: int
    type: int
    ts_ns: int
    payload: bytes


@dataclass
class Divergence:
    """Where a replay first differs from the recording."""

    record_index: int
    record_seq: int
    record_type: str
    field: str
    recorded: Any
    replayed: Any

    def __str__(self) -> str:
        return (
            f"record {self.record_index} (seq {self.record_seq}, {self.record_type}): "
            f"{self.field}: recorded {self.recorded!r}, replayed {self.replayed!r}"
        )


@dataclass
class ReplayResult:
    records: int = 0
    inputs: int = 0
    batches: int = 0
    deltas_recorded: int = 0
    deltas_replayed: int = 0
    snapshots_recorded: int = 0
    snapshots_replayed: int = 0
    #: PlanSnapshots replayed from a journal that did not record them (not compared)
    snapshots_unjournaled: int = 0
    round_records: int = 0
    state_checked: bool = False
    divergence: Divergence | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.divergence is None and self.state_checked


class _QueuePull:
    """Stands in for the PULL socket: the recorded inputs of one wake-up."""

    def __init__(self) -> None:
        self.queue: deque[list[bytes]] = deque()

    def recv_multipart(self, flags: int = 0, copy: bool = True) -> list[bytes]:
        if not self.queue:
            raise zmq.Again()
        return self.queue.popleft()

    def getsockopt(self, option: int) -> int:
        """``ZMQ_EVENTS``: POLLIN while a recorded input of the wake-up is left."""
        assert option == zmq.EVENTS
        return zmq.POLLIN if self.queue else 0


#: the envelope's schema_id (u16 after the u32 magic)
_SCHEMA_ID = struct.Struct("<H")
#: the schemas the coordinator sends (DELTA and SNAPSHOT records)
_OUTPUT_SCHEMAS = ("PlanDelta", "PlanSnapshot")


def _output_schema(data: bytes) -> str:
    """The name of an output message's schema, by its envelope's schema id."""
    from arbsphere.contracts import default_registry

    sid = _SCHEMA_ID.unpack_from(data, 4)[0] if len(data) >= 6 else -1
    for name in _OUTPUT_SCHEMAS:
        if default_registry().schema(name).id == sid:
            return name
    return f"schema {sid}"


class _CapturePush:
    """What the replayed coordinator sends, in order. ``drop_snapshots``: a journal that did not
    record its PlanSnapshots; they are counted, not kept for comparison."""

    def __init__(self) -> None:
        self.sent: deque[bytes] = deque()
        self.drop_snapshots = False
        self.dropped = 0

    def send(self, data: bytes, copy: bool = True) -> None:
        if self.drop_snapshots and _output_schema(data) == "PlanSnapshot":
            self.dropped += 1
            return
        self.sent.append(bytes(data))


class RoundMismatch(Exception):
    """The replayed rounds asked for something other than what the journal recorded."""

    def __init__(self, record: JournalRecord | None, name: str, recorded: Any, replayed: Any):
        super().__init__(f"{name}: recorded {recorded!r}, replayed {replayed!r}")
        self.record = record
        self.name = name
        self.recorded = recorded
        self.replayed = replayed


class RecordedRoundLink:
    """The rounds' link in a replay: the ROUND records of the current wake-up, in order.
    What the replayed coordinator sends to the venues is counted, not compared (DualVariables
    carry wall-clock origin stamps; the decisions they lead to are what is compared)."""

    def __init__(self) -> None:
        self.queue: deque[JournalRecord] = deque()
        self.sent = 0
        self.last: JournalRecord | None = None

    def send(self, frames: tuple[bytes, bytes]) -> None:
        self.sent += 1

    def receive(self, deadline_ns: int, solve_id: int, round_no: int) -> list[bytes] | None:
        if not self.queue:
            raise RoundMismatch(self.last, "round answers", "no more in this wake-up",
                                f"a wait in solve {solve_id} round {round_no}")  # fmt: skip
        rec = self.queue.popleft()
        self.last = rec
        if rec.type == REC_ROUND_INPUT:
            return decode_frames(rec.payload)
        recorded = decode_round_timeout(rec.payload)
        if recorded != (solve_id, round_no):
            raise RoundMismatch(rec, "round timeout (solve, round)", recorded,
                                (solve_id, round_no))  # fmt: skip
        return None


class _RecordClock:
    """The replay's clock: the timestamp of the record being replayed (trace only)."""

    def __init__(self) -> None:
        self.t = 0

    def now_ns(self) -> int:
        return self.t


def build_coordinator(config: dict[str, Any], clock: Any = None) -> Any:
    """The coordinator core exactly as the CONFIG record describes it (a federated one with a
    :class:`RecordedRoundLink` as its rounds' link)."""
    from arbsphere.coordinator.core import Coordinator
    from arbsphere.coordinator.federated_solve import federated_driver

    coordination = config.get("coordination", "central")
    if coordination not in ("central", "federated"):
        raise JournalError(f"CONFIG record: coordination {coordination!r} is not replayable")
    if coordination == "federated" and "stale_after_ns" not in config:
        raise JournalError(
            "the journal is of a federated run recorded before the venues' round answers were "
            "journaled (its CONFIG has no stale_after_ns): it cannot be replayed"
        )
    if config.get("interleave_ns"):
        raise JournalError(
            f"the journal was recorded with the recorder interleaved on and off every "
            f"{config['interleave_ns'] / 1e6:g} ms (journal.interleave_ms, a benchmark mode): it "
            "misses the inputs of the off periods and cannot be replayed"
        )
    # a journal whose CONFIG has no ``keep_rho`` was recorded by a coordinator that kept the
    # last solve's ρ on a warm start and warm-started from unconverged solves too
    no_keep_rho = {"keep_rho": True, "warm_from_unconverged": True}
    settings = AdmmSettings(**({} if "keep_rho" in config["admm"] else no_keep_rho),
                            **config["admm"])  # fmt: skip
    core = Coordinator(
        n_venues=int(config["n_venues"]), n_assets=int(config["n_assets"]), settings=settings,
        budget_iterations_cap=settings.max_iter, min_delta_lots=int(config["min_delta_lots"]),
        ns_per_iteration=float(config["ns_per_iteration"]),
    )  # fmt: skip
    core.warm_up()
    if coordination == "federated":
        # secure aggregation: the recorded answers are masked shares and reveals, summed again
        masked = bool(config.get("secure_aggregation", False))
        protocol = config.get("protocol", "admm")  # absent: exchange ADMM (older journals)
        if protocol not in ("price", "admm"):
            raise JournalError(f"CONFIG record: protocol {protocol!r} is not replayable")
        core.use_rounds(federated_driver(
            protocol, RecordedRoundLink(), core, settings, masked,
            clock if clock is not None else _RecordClock(), int(config["round_timeout_ms"]),
        ))  # fmt: skip
        outages = core.outages
        outages.stale_after_ns = int(config["stale_after_ns"])
        outages.unresponsive_retry_ns = int(
            config.get("unresponsive_retry_ns", outages.unresponsive_retry_ns)
        )
        interval = config.get("signal_release_interval_ns")
        if interval is not None:  # the SignalShares are summed again (no ledger events)
            from arbsphere.coordinator.signal_aggregate import SignalAggregator

            core.signal_agg = SignalAggregator(core.n_venues, int(interval))
    return core


def _field_diff(recorded: bytes, replayed: bytes) -> tuple[str, Any, Any]:
    """The first differing field of a PlanDelta or PlanSnapshot (name, recorded, replayed)."""
    from arbsphere.contracts import default_registry

    reg = default_registry()
    names: list[str] = []
    a: tuple[Any, ...] = ()
    b: tuple[Any, ...] = ()
    try:
        schema, a = reg.decode_values(recorded)
        _, b = reg.decode_values(replayed)
        names = [f"envelope.{n}" for n in reg.envelope.value_fields]
        names += list(schema.header.value_fields)
        if schema.item is not None:
            k = 0
            items = "cells" if schema.name == "PlanSnapshot" else "legs"
            while len(names) < len(a):
                names += [f"{items}[{k}].{n}" for n in schema.item.value_fields]
                k += 1
    except DecodeError:
        names = []
    if names and len(a) == len(b):
        for name, x, y in zip(names, a, b, strict=True):
            if x != y:
                return name, x, y
    for i, (x, y) in enumerate(zip(recorded, replayed, strict=False)):
        if x != y:
            return f"byte {i}", x, y
    return "length", len(recorded), len(replayed)


def replay_records(records: Iterable[JournalRecord]) -> ReplayResult:
    """Re-execute the coordinator over ``records`` and compare with what was recorded."""
    replay = _Replay()
    try:
        replay.run(records)
    except _Diverged as exc:
        replay.result.divergence = exc.divergence
        return replay.result
    return replay.finish()


class _Diverged(Exception):
    """The replay differs from the recording at ``divergence`` (ends the replay)."""

    def __init__(self, rec: JournalRecord, name: str, recorded: Any, replayed: Any) -> None:
        super().__init__(name)
        self.divergence = Divergence(
            rec.index, rec.seq, RECORD_NAMES.get(rec.type, str(rec.type)), name, recorded,
            replayed,
        )  # fmt: skip


class _Replay:
    """One replay: the coordinator's receive loop as the CONFIG record describes it, fed the
    recorded inputs one wake-up (BATCH) at a time through stand-in sockets, its outputs
    compared with the recorded ones. Each step raises :class:`_Diverged` at a difference."""

    def __init__(self) -> None:
        self.result = ReplayResult()
        self.pull = _QueuePull()
        self.push = _CapturePush()
        self.clock = _RecordClock()
        self.loop: ReceiveLoop | None = None  # once the CONFIG record is read
        self.link: RecordedRoundLink | None = None  # a federated run's rounds

    def run(self, records: Iterable[JournalRecord]) -> None:
        """Replay every record in journal order."""
        result = self.result
        clock = self.clock
        pull_queue = self.pull.queue
        loop = None
        pending_inputs = 0  # INPUT records queued since the last BATCH
        it = iter(records)
        ahead: deque[JournalRecord] = deque()  # read ahead past a BATCH, not yet replayed
        while True:
            if ahead:
                rec = ahead.popleft()
            else:
                nxt = next(it, None)
                if nxt is None:
                    return
                rec = nxt
            result.records += 1
            clock.t = rec.ts_ns
            rtype = rec.type
            if rtype == REC_CONFIG:
                loop = self.configure(rec)
            elif loop is None:
                raise _Diverged(rec, "first record", "CONFIG", RECORD_NAMES.get(rtype, rtype))
            elif rtype == REC_INPUT:
                pull_queue.append(decode_frames(rec.payload))
                pending_inputs += 1
                result.inputs += 1
            elif rtype == REC_BATCH:
                self.wake_up(loop, rec, pending_inputs, it, ahead)
                pending_inputs = 0
            elif rtype in OUTPUT_RECORDS:
                self.compare_output(rec)
            elif rtype == REC_STATE:
                self.check_state(loop, rec)
            elif rtype in ROUND_RECORDS:
                raise _Diverged(rec, "round record", "right after a BATCH of a federated run",
                                "elsewhere")  # fmt: skip
            else:
                raise _Diverged(rec, "record type", "one of 1..8", rtype)

    def configure(self, rec: JournalRecord) -> ReceiveLoop:
        """CONFIG: build the coordinator and its receive loop (once, first)."""
        if self.loop is not None:
            raise _Diverged(rec, "CONFIG", "once, first", "again")
        config = decode_config(rec.payload)
        stamp = config.get("stamp", "cause")
        if stamp not in ("cause", "wakeup"):
            raise JournalError(f"CONFIG record: stamp {stamp!r} is not replayable")
        from arbsphere.coordinator.receive_loop import ReceiveLoop

        loop = ReceiveLoop(
            build_coordinator(config, self.clock), self.clock, self.push, int(config["max_batch"])
        )
        # a journal without CONFIG stamp "wakeup" stamped its outputs with their cause's origin
        # stamp; one without journal_snapshots sent PlanSnapshots (answers to ReplicaStatus
        # inputs) without journaling them
        loop.stamp_wakeup = stamp == "wakeup"
        self.push.drop_snapshots = not config.get("journal_snapshots", False)
        rounds = loop.core.rounds
        if rounds is not None and isinstance(rounds.link, RecordedRoundLink):  # always, federated
            self.link = rounds.link
        self.loop = loop
        return loop

    def wake_up(
        self, loop: ReceiveLoop, rec: JournalRecord, pending_inputs: int,
        it: Iterator[JournalRecord], ahead: deque[JournalRecord],
    ) -> None:  # fmt: skip
        """BATCH: one wake-up over exactly the inputs queued since the last one, its rounds
        (federated) answered from the ROUND records that follow it."""
        n = decode_batch(rec.payload)
        if n != pending_inputs:
            raise _Diverged(rec, "inputs in batch", n, pending_inputs)
        link = self.link
        if link is not None:
            self.gather_rounds(link, it, ahead)
            link.last = rec
        saved = loop.max_batch
        loop.max_batch = max(n, 1)
        try:
            loop.drain(self.pull)
        except RoundMismatch as exc:
            raise _Diverged(exc.record or rec, exc.name, exc.recorded, exc.replayed) from None
        loop.max_batch = saved
        if link is not None and link.queue:
            raise _Diverged(link.queue[0], "round records", "read by this wake-up's solve",
                            "left unread")  # fmt: skip
        self.result.batches += 1

    def gather_rounds(
        self, link: RecordedRoundLink, it: Iterator[JournalRecord], ahead: deque[JournalRecord]
    ) -> None:
        """The wake-up's rounds: the ROUND records after its BATCH, among the outputs it sent
        (snapshots and write-offs go out before the solve), up to the next INPUT or BATCH.
        The outputs and the record that ends the run go to ``ahead``, replayed in order after
        the wake-up."""
        result = self.result
        while (nxt := next(it, None)) is not None and nxt.type in (
            *ROUND_RECORDS,
            *OUTPUT_RECORDS,
        ):
            if nxt.type in OUTPUT_RECORDS:
                ahead.append(nxt)
                continue
            result.records += 1
            result.round_records += 1
            link.queue.append(nxt)
        if nxt is not None:
            ahead.append(nxt)

    def compare_output(self, rec: JournalRecord) -> None:
        """DELTA or SNAPSHOT: the next message the replay sent is the recorded one, byte for
        byte (the first differing field is named)."""
        result = self.result
        push = self.push
        kind = "PlanDelta" if rec.type == REC_DELTA else "PlanSnapshot"
        if rec.type == REC_DELTA:
            result.deltas_recorded += 1
        else:
            result.snapshots_recorded += 1
        if not push.sent:
            raise _Diverged(rec, kind, f"{len(rec.payload)} bytes", "none emitted")
        replayed = push.sent.popleft()
        sent_kind = _output_schema(replayed)
        if sent_kind == "PlanDelta":
            result.deltas_replayed += 1
        elif sent_kind == "PlanSnapshot":
            result.snapshots_replayed += 1
        if sent_kind != kind:  # e.g. a snapshot the recording did not journal
            raise _Diverged(rec, "output", kind, sent_kind)
        if replayed != rec.payload:
            name, a, b = _field_diff(rec.payload, replayed)
            raise _Diverged(rec, f"{kind}.{name}", a, b)

    def check_state(self, loop: ReceiveLoop, rec: JournalRecord) -> None:
        """STATE: nothing more was sent, and the final state digest is the recorded one."""
        push = self.push
        if push.sent:
            more = ", ".join(_output_schema(d) for d in push.sent)
            raise _Diverged(rec, "outputs", "no more", f"{len(push.sent)} more sent: {more}")
        digest = state_digest(loop.core)
        recorded = rec.payload[:32]
        if digest != recorded:
            raise _Diverged(rec, "final state digest", recorded.hex(), digest.hex())
        self.result.state_checked = True

    def finish(self) -> ReplayResult:
        """The result of a replay that reached the end of the journal without a difference."""
        result = self.result
        dropped = self.push.dropped
        result.snapshots_unjournaled = dropped
        if dropped:
            result.notes.append(
                f"{dropped} PlanSnapshots (answers to a diverged replica) were sent but not "
                "journaled by this recording: replayed, not compared"
            )
        if not result.state_checked:
            result.notes.append(
                "the journal has no STATE record (the recording did not stop cleanly)"
            )
        return result


def journal_records(directory: Any, expected_head: Any = None) -> Iterator[JournalRecord]:
    """The records of a journal directory, verified as they are read (CRC, continuity, chain,
    and ``expected_head`` — a :class:`~arbsphere.journal.JournalHead` — at the end)."""
    from arbsphere.journal import JournalReader

    reader = JournalReader(directory, expected_head=expected_head)
    for i, rec in enumerate(reader.records()):
        yield JournalRecord(i, rec.seq, rec.type, rec.ts_ns, bytes(rec.payload))

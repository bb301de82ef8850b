"""Deterministic coordinator: record a run's inputs, replay them, get the same PlanDeltas byte
for byte; an altered input is named at the record where the replay diverges."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from test_coordinator_loop import _tick

from arbsphere.adapters.venue_adapter import TickTranslator, VenueCosts
from arbsphere.contracts import default_registry
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.core import Coordinator
from arbsphere.coordinator.journal_records import (
    CONFIG_OUTPUT_RULES,
    REC_DELTA,
    REC_INPUT,
    decode_frames,
    encode_frames,
)
from arbsphere.coordinator.receive_loop import ReceiveLoop
from arbsphere.coordinator.recorder import JournalRecorder
from arbsphere.errors import JournalError
from arbsphere.replay.engine import JournalRecord, replay_records
from arbsphere.testing import FakeSocket, StepClock


class ListSink:
    def __init__(self) -> None:
        self.records: list[JournalRecord] = []

    def append(self, rtype: int, ts_ns: int, payload: bytes | list[bytes]) -> int:
        seq = len(self.records) + 1
        data = payload if isinstance(payload, bytes) else encode_frames(payload)
        self.records.append(JournalRecord(len(self.records), seq, rtype, ts_ns, data))
        return seq

    def flush(self) -> None:
        pass


CONFIG: dict[str, Any] = {
    "n_venues": 2, "n_assets": 1, "min_delta_lots": 1, "ns_per_iteration": 50.0,
    "max_batch": 8, "admm": dataclasses.asdict(AdmmSettings()), **CONFIG_OUTPUT_RULES,
}  # fmt: skip


def _record_run(
    seed: int = 3,
    n_ticks: int = 400,
    one_frame: bool = True,
    settings: AdmmSettings | None = None,
    config: dict[str, Any] | None = None,
) -> tuple[list[JournalRecord], list[bytes]]:
    """A recorded coordinator run over a random walk with mispricings, random batching; each
    tick's problem and signals in one frame as the venue adapters send them (``one_frame``
    False: two frames, as journals of adapters that sent them apart hold them)."""
    rng = np.random.default_rng(seed)
    core = Coordinator(2, 1, settings or AdmmSettings(), 500, min_delta_lots=1)
    core.warm_up()
    push = FakeSocket()
    sink = ListSink()
    loop = ReceiveLoop(core, StepClock(1_001_000, 1_000), push, CONFIG["max_batch"])
    loop.recorder = JournalRecorder(sink)
    loop.recorder.config(config or CONFIG, 0)
    tr = [TickTranslator(v, 10 + v, VenueCosts(0.5, 1e-4, 100), 200_000) for v in (0, 1)]
    pull = FakeSocket(noblock_only=True)
    mid = 100.0
    for k in range(n_ticks):
        mid += rng.normal(0, 0.01)
        venue = int(rng.integers(0, 2))
        dev = rng.normal(0, 0.05) * (1 if venue else -1)
        frames = list(tr[venue].translate(_tick(venue, k, mid + dev), k, 0))
        pull.queue.append([b"".join(frames)] if one_frame else frames)
        if rng.random() < 0.4:  # a wake-up after a random number of arrivals
            loop.drain(pull)
    while pull.queue:
        loop.drain(pull)
    loop.recorder.state(core, 1)
    return sink.records, list(push.sent)


@pytest.mark.parametrize("one_frame", [True, False])
def test_replay_reproduces_every_plan_delta_and_the_final_state(one_frame: bool) -> None:
    records, sent = _record_run(one_frame=one_frame)
    inputs = [decode_frames(r.payload) for r in records if r.type == REC_INPUT]
    assert {len(f) for f in inputs} == ({1} if one_frame else {2})
    deltas = [r for r in records if r.type == REC_DELTA]
    assert len(deltas) == len(sent) > 10  # the run re-hedged many times
    assert [r.payload for r in deltas] == sent
    result = replay_records(records)
    assert result.identical, result.divergence
    assert result.deltas_replayed == len(sent) and result.batches > 50


def test_a_journal_from_before_the_rho_restart_replays_with_the_old_warm_start() -> None:
    # a coordinator that kept ρ across warm solves and warm-started from unconverged ones;
    # its CONFIG has neither key. Replayed with the current rules it would diverge
    old = AdmmSettings(keep_rho=True, warm_from_unconverged=True)
    admm = {k: v for k, v in dataclasses.asdict(AdmmSettings()).items()
            if k not in ("keep_rho", "warm_from_unconverged")}  # fmt: skip
    records, sent = _record_run(settings=old, config={**CONFIG, "admm": admm})
    result = replay_records(records)
    assert result.identical, result.divergence
    assert result.deltas_replayed == len(sent) > 10
    records, _ = _record_run(settings=old, config=CONFIG)  # claims the current rules
    assert not replay_records(records).identical


def test_altered_input_is_named_at_the_first_divergent_record() -> None:
    records, _ = _record_run()
    # raise the local cost c (its mid price) by 0.2 of the tick that triggered a PlanDelta
    # halfway through: the last INPUT before that delta's BATCH (a superseded tick would
    # rightly change nothing)
    reg = default_registry()
    deltas = [r for r in records if r.type == REC_DELTA]
    target = deltas[len(deltas) // 2]
    victim = next(r for r in reversed(records[: target.index]) if r.type == REC_INPUT)
    frames = decode_frames(victim.payload)
    # one frame carrying the problem and then the signals (two frames in older journals)
    msgs = reg.messages_of(frames)
    schema, values = reg.decode_values(msgs[0])
    c_index = len(reg.envelope.value_fields) + len(schema.header.value_fields) + 1
    changed = list(values)
    changed[c_index] += 0.2
    problem = reg.packer(schema, 1).pack(*changed)
    altered = list(records)
    altered[victim.index] = dataclasses.replace(
        victim, payload=encode_frames([problem + b"".join(msgs[1:])])
    )
    result = replay_records(altered)
    d = result.divergence
    assert d is not None and not result.identical
    assert d.record_index > victim.index  # found at or after the altered input, never before
    assert d.record_type in ("DELTA", "STATE")
    if d.record_type == "DELTA":
        assert d.field.startswith("PlanDelta.") and d.recorded != d.replayed
    assert str(d).startswith(f"record {d.record_index} (seq {d.record_seq}")


def test_dropped_input_breaks_the_batch_count() -> None:
    records, _ = _record_run()
    first_input = next(r for r in records if r.type == REC_INPUT)
    result = replay_records([r for r in records if r is not first_input])
    assert result.divergence is not None
    assert result.divergence.field == "inputs in batch"


def test_interleaved_recorder_journals_only_even_periods_and_replay_refuses_it() -> None:
    """journal.interleave_ms (the recorder bench's mode): the pipeline runs the same in both
    halves (every tick solved, every PlanDelta sent), the journal holds exactly the even
    periods' wake-ups, and replay refuses such a journal by name."""
    period = 1_000_000
    core = Coordinator(2, 1, AdmmSettings(), 500, min_delta_lots=1)
    core.warm_up()
    clock = StepClock(1_001_000, 1_000)  # +1 µs per reading: a wake-up stays inside its period
    push = FakeSocket()
    loop = ReceiveLoop(core, clock, push, 8)
    sink = ListSink()
    loop.set_recorder(JournalRecorder(sink), interleave_ns=period)
    loop.recorder.config({**CONFIG, "interleave_ns": period}, 0)  # type: ignore[union-attr]
    tr = [TickTranslator(v, 10 + v, VenueCosts(0.5, 1e-4, 100), 200_000) for v in (0, 1)]
    pull = FakeSocket(noblock_only=True)
    for k in range(12):
        clock.now = k * period + 2000  # wake-up k lies in period k
        mid = 100.0 + (0.3 if k % 4 < 2 else -0.3) * (k % 2)  # venue 1 swings: deltas both halves
        pull.queue.append(list(tr[0].translate(_tick(0, k, 100.0), k, 0)))
        pull.queue.append(list(tr[1].translate(_tick(1, k, mid), k, 0)))
        loop.drain(pull)
    assert loop.batches == 12 and loop.batches_unrecorded == 6
    assert loop.core.counts["solves"] == 12
    journaled = sink.records[1:]  # after the CONFIG
    assert {r.ts_ns // period % 2 for r in journaled} == {0}  # only even periods
    inputs = [r for r in journaled if r.type == REC_INPUT]
    assert len(inputs) == 12  # 2 ticks in each of the 6 recorded wake-ups
    deltas_sent_odd = [d for d in push.sent if d not in {r.payload for r in journaled}]
    assert push.sent and deltas_sent_odd  # the unrecorded periods still traded
    result_error = None
    try:
        replay_records(sink.records)
    except JournalError as exc:
        result_error = str(exc)
    assert result_error is not None and "interleaved" in result_error and "1 ms" in result_error

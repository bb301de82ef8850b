"""The coordinator's receive loop: drain, apply in arrival order, one solve per batch."""

from __future__ import annotations

from typing import Any

import numpy as np

from arbsphere.adapters.venue_adapter import TickTranslator, VenueCosts
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.core import Coordinator
from arbsphere.coordinator.receive_loop import ReceiveLoop
from arbsphere.testing import FakeSocket, StepClock


def _tick(venue: int, seq: int, mid: float) -> tuple[Any, ...]:
    bid = int((mid - 0.01) * 1e8)
    ask = int((mid + 0.01) * 1e8)
    return (0, 0, 0, 0, venue, 0, seq, 1000 * seq, 1000 * seq, bid, ask, 50, 50)


def _loop(max_batch: int) -> tuple[ReceiveLoop, FakeSocket, FakeSocket, list[TickTranslator]]:
    core = Coordinator(2, 1, AdmmSettings(), 500, min_delta_lots=1)
    core.warm_up()
    push = FakeSocket()
    loop = ReceiveLoop(core, StepClock(1_001_000, 1_000), push, max_batch)
    translators = [TickTranslator(v, 10 + v, VenueCosts(0.5, 1e-4, 100), 200_000) for v in (0, 1)]
    return loop, FakeSocket(noblock_only=True), push, translators


def _queue(pull: FakeSocket, tr: list[TickTranslator], ticks: list[tuple[int, int, float]]) -> None:
    for venue, seq, mid in ticks:
        pull.queue.append(list(tr[venue].translate(_tick(venue, seq, mid), seq, 0)))


def test_batch_solves_once_on_newest_state_and_flags_superseded() -> None:
    loop, pull, push, tr = _loop(max_batch=64)
    # venue 0 quotes three times, venue 1 once: all four queued before the wake-up.
    _queue(pull, tr, [(0, 1, 100.0), (1, 1, 100.0), (0, 2, 100.5), (0, 3, 101.0)])
    loop.drain(pull)
    rows = loop.trace.view()
    assert len(rows) == 4 and loop.core.counts["solves"] == 1 and loop.batches == 1
    assert rows["superseded"].tolist() == [1, 0, 1, 0]
    assert rows["solved"].tolist() == [0, 1, 0, 1]
    assert rows["trigger"].tolist() == [0, 0, 0, 1]
    assert rows["solve_done_ns"][0] == 0 and rows["solve_done_ns"][1] == rows["solve_done_ns"][3]
    # The solve ran on the newest quote of venue 0 (mid 101.0): venue 0 is the dear venue and
    # sells, venue 1 buys; the one delta is attributed to the trigger tick (venue 0, seq 3).
    assert len(push.sent) == 1 and rows["delta_id"].tolist() == [0, 0, 0, 1]
    assert loop.core.merger.plan[0, 0] < 0 < loop.core.merger.plan[1, 0]
    assert int(np.abs(loop.core.merger.net_delta()).max()) == 0
    assert loop.superseded == 2 and loop.batch_counters()["max_batch"] == 4


def test_max_batch_one_solves_every_tick_in_order() -> None:
    loop, pull, _, tr = _loop(max_batch=1)
    _queue(pull, tr, [(0, 1, 100.0), (1, 1, 100.0), (0, 2, 100.5), (0, 3, 101.0)])
    for _ in range(4):
        loop.drain(pull)
    rows = loop.trace.view()
    # the first tick comes before venue 1 has quoted: not solved; every later tick is its own
    # batch, solved on its own, never superseded.
    assert rows["solved"].tolist() == [0, 1, 1, 1]
    assert rows["superseded"].tolist() == [0, 0, 0, 0]
    assert loop.core.counts["solves"] == 3 and loop.batches == 4


def test_batches_cap_at_max_batch_and_leave_the_rest_queued() -> None:
    loop, pull, _, tr = _loop(max_batch=3)
    _queue(pull, tr, [(0, k, 100.0 + 0.1 * k) for k in range(1, 6)] + [(1, 1, 100.0)])
    loop.drain(pull)
    assert len(pull.queue) == 3 and loop.trace.n == 3
    assert loop.core.counts["solves"] == 0  # venue 1 has not quoted yet
    loop.drain(pull)
    assert not pull.queue and loop.core.counts["solves"] == 1
    rows = loop.trace.view()
    assert rows["batch"].tolist() == [0, 0, 0, 1, 1, 1]
    assert rows["superseded"].tolist() == [1, 1, 0, 1, 0, 0]


def test_empty_wake_up_is_not_a_batch() -> None:
    loop, pull, _, _ = _loop(max_batch=8)
    loop.drain(pull)
    assert loop.batches == 0 and loop.trace.n == 0


def test_one_frame_and_two_frame_ticks_decide_alike() -> None:
    """A tick's problem and signals in one frame (the venue adapters' form) and in two frames
    (older journals): the same batches, solves, counts and PlanDelta bytes."""
    ticks = [(0, 1, 100.0), (1, 1, 100.0), (0, 2, 100.5), (1, 2, 100.1), (0, 3, 101.0)]
    out = []
    for one_frame in (True, False):
        loop, pull, push, tr = _loop(max_batch=2)
        for venue, seq, mid in ticks:
            problem, signals = tr[venue].translate(_tick(venue, seq, mid), seq, 0)
            pull.queue.append([problem + signals] if one_frame else [problem, signals])
        while pull.queue:
            loop.drain(pull)
        core = loop.core
        assert core.counts["signals"] == len(ticks) and core.counts["decode_errors"] == 0
        out.append((push.sent, core.counts["solves"], loop.trace.view()["solved"].tolist()))
    assert out[0] == out[1] and out[0][1] > 0 and out[0][0]


def test_a_frame_with_a_second_sender_inside_is_refused_and_counted() -> None:
    loop, pull, _, tr = _loop(max_batch=8)
    problem, _ = tr[0].translate(_tick(0, 1, 100.0), 1, 0)
    _, other_signals = tr[1].translate(_tick(1, 1, 100.0), 1, 0)  # venue 1's sender id
    pull.queue.append([problem + other_signals])
    loop.drain(pull)
    assert loop.core.counts["decode_errors"] == 1 and loop.trace.n == 0
    assert "mixed_senders" in loop.last_error


def test_ticks_a_venue_sent_together_in_one_frame_decide_as_separate_messages() -> None:
    """A venue adapter that fell behind sends the ticks its link delivered together in one
    frame (one tag, one send): the coordinator gives every tick its trace row, supersedes
    the same ticks and sends the same PlanDeltas as when each came in a message of its own."""
    ticks = [(0, 1, 100.0), (0, 2, 100.2), (1, 1, 100.0), (1, 2, 100.1), (0, 3, 101.0)]
    out = []
    for coalesced in (False, True):
        loop, pull, push, tr = _loop(max_batch=64)
        frames: dict[int, list[bytes]] = {0: [], 1: []}
        for venue, seq, mid in ticks:
            problem, signals = tr[venue].translate(_tick(venue, seq, mid), seq, 0)
            if coalesced:
                frames[venue] += (problem, signals)
            else:
                pull.queue.append([problem + signals])
        if coalesced:  # venue 0's first two ticks, venue 1's two, venue 0's third
            pull.queue.append([b"".join(frames[0][:4])])
            pull.queue.append([b"".join(frames[1])])
            pull.queue.append([b"".join(frames[0][4:])])
        loop.drain(pull)
        rows = loop.trace.view()
        assert len(rows) == len(ticks) and loop.core.counts["signals"] == len(ticks)
        # the PlanDeltas but their envelope's send stamp (the wake-up's clock reading)
        deltas = [d[:24] + d[32:] for d in push.sent]
        out.append((deltas, rows["superseded"].tolist(), rows["seq"].tolist(),
                    loop.core.counts["solves"]))  # fmt: skip
    assert out[0] == out[1] and out[0][0] and out[0][1] == [1, 1, 1, 0, 0]


def test_a_stale_tick_inside_a_frame_is_counted_and_the_others_applied() -> None:
    loop, pull, _, tr = _loop(max_batch=8)
    first = b"".join(tr[0].translate(_tick(0, 1, 100.0), 1, 0))
    second = b"".join(tr[0].translate(_tick(0, 2, 100.1), 2, 0))
    third = b"".join(tr[0].translate(_tick(0, 3, 100.2), 3, 0))
    pull.queue.append([second])
    pull.queue.append([first + third])  # the first's nonce is older than the second's
    loop.drain(pull)
    core = loop.core
    assert core.counts["stale_messages"] == 1
    assert loop.trace.view()["seq"].tolist() == [2, 3]
    assert core.counts["signals"] == 3  # every signals message counted, the stale tick's too


def test_a_burst_is_shed_by_superseding_within_a_bounded_number_of_wake_ups() -> None:
    """Overload: two venues that fell behind each queue 2,000 ticks as 200 frames of 10 (their
    adapters coalesce what their links delivered together). The coordinator takes them in
    ceil(400 / max_batch) wake-ups — its queueing delay is bounded by that many solves, not by
    the burst's length in ticks — solves once per wake-up on the newest quotes, and accounts
    for every tick: solved or superseded (counted), none lost."""
    max_batch = 64
    loop, pull, _, tr = _loop(max_batch=max_batch)
    frames: dict[int, list[bytes]] = {0: [], 1: []}
    for seq in range(1, 2001):
        for venue in (0, 1):
            mid = 100.0 + 0.3 * venue * (seq % 7 == 0) + 0.001 * seq
            frames[venue].append(b"".join(tr[venue].translate(_tick(venue, seq, mid), seq, 0)))
    for k in range(0, 2000, 10):
        for venue in (0, 1):
            pull.queue.append([b"".join(frames[venue][k : k + 10])])
    wakeups = 0
    while pull.queue:
        loop.drain(pull)
        wakeups += 1
    assert wakeups == -(-400 // max_batch)
    rows = loop.trace.view()
    core = loop.core
    assert len(rows) == 4000 and core.counts["solves"] == wakeups
    assert int(rows["solved"].sum()) + int(rows["superseded"].sum()) == 4000
    assert int(rows["superseded"].sum()) == loop.superseded == 4000 - 2 * wakeups
    assert int(rows["batch"].max()) == wakeups - 1
    assert core.counts["stale_messages"] == 0 and core.counts["decode_errors"] == 0
    assert int(np.abs(core.merger.net_delta()).max()) == 0

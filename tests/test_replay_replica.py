"""Replay under load, with the broker's plan replica in the loop (issue 20, item 6).

The coordinator loop and its recorder, the plan stream sealed and opened with the real tags
(the broker's skew window: ``max_past_ns`` 2 s), the broker adapter's loop and replica, and its
ReplicaStatus fed back into the coordinator's input stream; then ``replay_records`` over the
journal. The ticks reach the coordinator almost ``max_past`` old (an overloaded coordinator:
its own skew window still accepts them), as in a default run on a slow host. Deterministic:
the clocks are set by hand, nothing depends on the host's speed.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zmq
from test_coordinator_loop import _tick
from test_federated_rounds import REG, Venues, _connect, _RoundSink
from test_replay import CONFIG, ListSink

from arbsphere.adapters.broker_adapter import _BrokerLoop
from arbsphere.adapters.plan_replica import PlanReplica
from arbsphere.adapters.venue_adapter import TickTranslator, VenueCosts
from arbsphere.clock import RealtimeClock
from arbsphere.contracts import default_registry
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.core import Coordinator
from arbsphere.coordinator.journal_records import (
    CONFIG_OUTPUT_RULES,
    REC_DELTA,
    REC_ROUND_TIMEOUT,
    REC_SNAPSHOT,
    RECORD_NAMES,
    encode_config,
)
from arbsphere.coordinator.receive_loop import ReceiveLoop
from arbsphere.coordinator.recorder import JournalRecorder
from arbsphere.errors import MessageRefused
from arbsphere.plan.digest import plan_hash
from arbsphere.replay.engine import JournalRecord, replay_records
from arbsphere.security.tags import Opener, Sealer
from arbsphere.sender_ids import COORDINATOR_SENDER_ID
from arbsphere.testing import FakeBrokerLink, FakeSocket, StepClock

SEC = 1_000_000_000
MAX_PAST_NS = 2 * SEC  # the rig's default [security] max_past_ms
#: a tick's age when the coordinator takes it (its own skew window accepts it: < 2 s)
QUEUED_NS = (1_850_000_000, 1_950_000_000)
TRANSIT_NS = 100_000_000  # coordinator's wake-up -> the broker adapter opening its deltas
KEY = bytes(range(32))


class SealedPlanStream:
    """The coordinator's PUSH to the broker (sealed) and the broker's guarded PULL (opened with
    the skew window; a refused message is dropped and counted, as SecureSocket does)."""

    def __init__(self, broker_clock: StepClock) -> None:
        self.sealer = Sealer(KEY, sender_id=COORDINATOR_SENDER_ID)
        self.opener = Opener(
            {COORDINATOR_SENDER_ID: KEY}, broker_clock, max_past_ns=MAX_PAST_NS,
            max_future_ns=SEC // 2,
        )  # fmt: skip
        self.wire: deque[bytes] = deque()
        self.sent: list[bytes] = []

    def send(self, data: bytes, copy: bool = True) -> None:  # the coordinator's side
        self.sent.append(bytes(data))
        self.wire.append(self.sealer.seal(data))

    def getsockopt(self, option: int) -> int:  # the broker's side
        assert option == zmq.EVENTS
        return int(zmq.POLLIN) if self.wire else 0

    def recv(self, flags: int = 0, copy: bool = True) -> bytes:
        while self.wire:
            try:
                return bytes(self.opener.open(self.wire.popleft()))
            except MessageRefused:
                continue
        raise zmq.Again()


def _run(fault_every: int = 0, n_wakeups: int = 120, legacy: bool = False) -> dict[str, Any]:
    """Record a run: every wake-up takes one tick per venue (venue 1 swinging around venue 0,
    so the plan trades often), its outputs go down the sealed plan stream, the broker adapter
    handles them and whatever it sends back (ReplicaStatus) is the coordinator's next input.
    ``legacy``: as recorded before the fix (outputs stamped with their cause's origin stamp,
    PlanSnapshots not journaled, CONFIG without ``stamp`` / ``journal_snapshots``)."""
    coord_clock, broker_clock = StepClock(), StepClock()
    core = Coordinator(2, 1, AdmmSettings(), 500, min_delta_lots=1)
    core.warm_up()
    stream = SealedPlanStream(broker_clock)
    loop = ReceiveLoop(core, coord_clock, stream, CONFIG["max_batch"])
    sink = ListSink()
    loop.set_recorder(JournalRecorder(sink))
    assert loop.recorder is not None
    loop.stamp_wakeup = not legacy
    old = {k: v for k, v in CONFIG.items() if k not in CONFIG_OUTPUT_RULES}
    loop.recorder.config(old if legacy else CONFIG, 0)
    link = FakeBrokerLink(broker_clock)
    replica = PlanReplica(2, 1, fault_every=fault_every)
    out = FakeSocket()
    broker = _BrokerLoop(default_registry(), 200, replica, link, stream, stream, out,
                         broker_clock)  # fmt: skip
    tr = [TickTranslator(v, 10 + v, VenueCosts(0.5, 1e-4, 100), 200_000) for v in (0, 1)]
    pull = FakeSocket(noblock_only=True)
    rng = np.random.default_rng(5)
    for k in range(n_wakeups):
        now = 10 * SEC + k * 20_000_000
        mid = 100.0 + rng.choice([-0.4, 0.0, 0.4])
        origin = now - int(rng.choice(QUEUED_NS))  # the adapter's stamp, queued since
        for venue, price in ((0, 100.0), (1, mid)):
            pull.queue.append(list(tr[venue].translate(_tick(venue, k, price), origin, 0)))
        while out.sent:  # the broker's ReplicaStatus: in the coordinator's input stream
            pull.queue.append([out.sent.pop(0)])
        coord_clock.now = now
        while pull.queue:
            loop.drain(pull)
        broker_clock.now = now + TRANSIT_NS
        broker.plans()
    loop.recorder.state(core, coord_clock.now + 1)
    records = sink.records
    if legacy:  # the recorder did not journal them
        records = [r for r in records if r.type != REC_SNAPSHOT]
    return {"records": records, "sent": stream.sent, "core": core, "replica": replica,
            "opener": stream.opener, "broker": broker}  # fmt: skip


def _types(records: list[JournalRecord]) -> list[str]:
    return [RECORD_NAMES[r.type] for r in records]


def test_late_ticks_still_give_plan_deltas_the_broker_accepts() -> None:
    """A tick that waited almost the skew window in the coordinator's queue must not make its
    PlanDelta too old for the broker: the delta is stamped when the coordinator decides (its
    wake-up), so the replica never misses one and never diverges without an injected fault."""
    run = _run()
    core, replica, opener = run["core"], run["replica"], run["opener"]
    assert core.counts["deltas"] > 20  # the plan traded all along
    assert opener.refusals["skew_past"] == 0, opener.refusals
    assert opener.accepted == len(run["sent"]) == core.counts["deltas"]
    assert run["broker"].counts["deltas"] == core.counts["deltas"]  # every delta was ordered
    assert replica.counts["divergences"] == 0 and core.counts["snapshots_sent"] == 0
    assert plan_hash(replica.plan) == plan_hash(core.merger.plan)
    result = replay_records(run["records"])
    assert result.identical, result.divergence


@pytest.mark.parametrize("fault_every", [3, 1])
def test_replica_status_answers_are_journaled_and_replayed_bit_exact(fault_every: int) -> None:
    """A diverged replica (injected faults) asks for a PlanSnapshot: the snapshot the live
    coordinator sent is in the journal, after its wake-up's BATCH record and in send order with
    the PlanDeltas, and the replay reproduces it byte for byte (before: the replay's snapshot
    was compared with the next recorded PlanDelta — ``PlanDelta.byte 4: recorded 3, replayed
    10`` — since the live one was never journaled)."""
    run = _run(fault_every=fault_every)
    core, replica, records = run["core"], run["replica"], run["records"]
    assert replica.counts["injected_faults"] > 0
    assert replica.counts["divergences"] > 0 and core.counts["snapshots_sent"] > 0
    assert replica.counts["repaired"] == replica.counts["snapshots"] == core.counts[
        "snapshots_sent"]  # fmt: skip
    outputs = [r.payload for r in records if r.type in (REC_DELTA, REC_SNAPSHOT)]
    assert outputs == run["sent"]  # everything the coordinator sent, in order
    types = _types(records)
    for i, name in enumerate(types):
        if name == "SNAPSHOT":  # after its wake-up's BATCH, never among the inputs
            before = [t for t in types[:i] if t not in ("SNAPSHOT", "DELTA")]
            assert before[-1] == "BATCH"
    result = replay_records(records)
    assert result.identical, result.divergence
    assert result.snapshots_replayed == core.counts["snapshots_sent"]
    assert result.deltas_replayed == core.counts["deltas"]


def test_a_missing_snapshot_record_is_named() -> None:
    run = _run(fault_every=3)
    records = run["records"]
    first = next(r for r in records if r.type == REC_SNAPSHOT)
    result = replay_records([r for r in records if r is not first])
    d = result.divergence
    assert d is not None and d.record_type == "DELTA" and d.record_index > first.index
    assert (d.field, d.recorded, d.replayed) == ("output", "PlanDelta", "PlanSnapshot")


def test_a_journal_recorded_before_the_fix_still_replays_identically() -> None:
    """Today's failure, as a default run on a slow host recorded it: PlanDeltas stamped with
    their ~2 s old tick's stamp are refused by the broker's skew window, the replica misses
    them and diverges, its ReplicaStatus is answered with an unjournaled PlanSnapshot. Such a
    journal (no CONFIG ``stamp`` / ``journal_snapshots``) replays with its own rules: identical,
    the snapshots replayed and counted but not compared."""
    run = _run(legacy=True)
    core, replica, opener = run["core"], run["replica"], run["opener"]
    assert opener.refusals["skew_past"] > 0  # the broker refused late-stamped PlanDeltas ...
    assert replica.counts["divergences"] > 0  # ... so its replica diverged, no fault injected
    assert core.counts["snapshots_sent"] == replica.counts["repaired"] > 0
    assert not any(r.type == REC_SNAPSHOT for r in run["records"])
    result = replay_records(run["records"])
    assert result.identical, result.divergence
    assert result.snapshots_unjournaled == core.counts["snapshots_sent"]
    assert result.deltas_replayed == core.counts["deltas"]
    # replayed with the current rules it diverges at once (the first PlanDelta's stamp)
    config = run["records"][0]
    claims = dataclasses.replace(config, payload=encode_config(CONFIG))
    d = replay_records([claims, *run["records"][1:]]).divergence
    assert d is not None and d.field == "PlanDelta.envelope.origin_ts_ns"


@pytest.fixture
def rounds_router() -> Iterator[tuple[Any, str]]:
    """The coordinator's rounds ROUTER (ROUTER_MANDATORY, as in the service)."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    yield sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)
    sock.close(linger=0)


def test_a_venue_gone_before_the_coordinator_stops_times_out_its_round_and_replays(
    rounds_router: tuple[Any, str],
) -> None:
    """At the end of a run the venue adapters stop before the coordinator, which may still be
    working off its queue: a round sent to a departed venue (ROUTER_MANDATORY: EHOSTUNREACH)
    ended the coordinator inside a wake-up, its journal cut there (the replay then stopped at
    ``round answers: recorded 'no more in this wake-up'``). Now the send is dropped and
    counted, the wait runs out (journaled) and the solve aborts; the replay agrees."""
    from arbsphere.coordinator.federated import FederatedExchange
    from arbsphere.coordinator.federated_solve import DepartedVenues
    from arbsphere.coordinator.rounds import RoundDriver, ZmqRoundLink
    from arbsphere.replay.engine import RecordedRoundLink

    sock, endpoint = rounds_router
    venues = Venues(endpoint, 2, 1)
    departed = DepartedVenues(sock)
    link = ZmqRoundLink(departed, RealtimeClock())
    sink = _RoundSink()
    link.recorder = sink
    live = RoundDriver(link, REG, FederatedExchange(2, 1, AdmmSettings()), RealtimeClock(), 1,
                       round_timeout_ms=200)  # fmt: skip
    _connect(live, venues)  # reaches both venues
    with venues.lock:
        for i, solver in enumerate(venues.solvers):
            solver.set_asset(0, 100.0 + 0.05 * i, 1e-3, 0.01, 10.0, seq=1)
    venues.thread.start()
    prices = np.array([[100.0], [100.05]])
    try:
        first = live.solve(prices, 50)
    finally:
        venues.close()  # the venue adapters stop
    deadline = time.monotonic() + 5
    while True:  # until the ROUTER has dropped them (it notices asynchronously)
        try:
            sock.send_multipart((live.identities[0], b"probe"))
        except zmq.ZMQError as exc:
            assert exc.errno == zmq.EHOSTUNREACH
            break
        assert time.monotonic() < deadline, "the departed venue stayed routable"
        time.sleep(0.01)
    second = live.solve(prices, 50)  # before: zmq.error.ZMQError: Host unreachable
    assert not first.aborted and second.aborted and departed.dropped >= 2
    assert [r.type for r in sink.records].count(REC_ROUND_TIMEOUT) == 1

    recorded = RecordedRoundLink()
    recorded.queue.extend(sink.records)
    replay = RoundDriver(recorded, REG, FederatedExchange(2, 1, AdmmSettings()),
                         RealtimeClock(), 1, round_timeout_ms=200)  # fmt: skip
    again = [replay.solve(prices, 50), replay.solve(prices, 50)]
    assert [(o.rounds, o.converged, o.aborted) for o in again] == [
        (o.rounds, o.converged, o.aborted) for o in (first, second)
    ]
    assert not recorded.queue and replay.counts == live.counts

    # an identity never reached is still an error (a misconfigured venue), not a drop
    with pytest.raises(zmq.ZMQError):
        departed.send_multipart((b"never-connected", b"x"))

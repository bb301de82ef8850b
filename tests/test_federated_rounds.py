"""Federated rounds over real ZeroMQ sockets: the coordinator's RoundDriver (ROUTER) and two
venues' VenueRounds (DEALER) in another thread. The iterates equal the in-process solver's;
nothing but x_i leaves a venue (asserted on the captured bytes); a silent venue aborts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zmq

from arbsphere.adapters.venue_rounds import VenueRounds
from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.clock import RealtimeClock
from arbsphere.contracts import default_registry
from arbsphere.coordinator.admm import AdmmSettings, ExchangeADMM
from arbsphere.coordinator.federated import FederatedExchange
from arbsphere.coordinator.journal_records import (
    REC_ROUND_INPUT,
    REC_ROUND_TIMEOUT,
    encode_frames,
    encode_round_timeout,
)
from arbsphere.coordinator.rounds import RoundDriver, ZmqRoundLink
from arbsphere.replay.engine import JournalRecord, RecordedRoundLink, RoundMismatch
from arbsphere.rounds_protocol import venue_identity

REG = default_registry()


class CapturingSocket:
    """A DEALER that keeps a copy of everything the venue sends."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.sent: list[bytes] = []

    def send(self, data: bytes, copy: bool = True) -> None:
        self.sent.append(bytes(data))
        self.sock.send(data, copy=copy)

    def recv(self, flags: int = 0, copy: bool = True) -> bytes:
        data: bytes = self.sock.recv(flags, copy=copy)
        return data


class Venues:
    """n venues answering rounds in a background thread (``silent``: never answer)."""

    def __init__(self, endpoint: str, n: int, m: int, silent: frozenset[int] = frozenset()):
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        # warm, as a venue adapter is before it reports ready: a cold first x-update (Numba
        # start-up and cache load, ~0.2 s) would outlast a short round timeout
        VenueSolver.warm_up()
        self.solvers = [VenueSolver(m) for _ in range(n)]
        self.socks: list[CapturingSocket] = []
        self.rounds: list[VenueRounds] = []
        for i in range(n):
            s = self.ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.IDENTITY, venue_identity(i))
            s.setsockopt(zmq.LINGER, 0)
            s.connect(endpoint)
            cap = CapturingSocket(s)
            self.socks.append(cap)
            self.rounds.append(VenueRounds(cap, REG, self.solvers[i], i, 100 + i, RealtimeClock()))
        self.silent = silent
        self.stop = threading.Event()
        self.lock = threading.Lock()  # held while the venues' problems are being changed
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        poller = zmq.Poller()
        for cap in self.socks:
            poller.register(cap.sock, zmq.POLLIN)
        while not self.stop.is_set():
            ready = dict(poller.poll(20))
            with self.lock:
                for i, cap in enumerate(self.socks):
                    if cap.sock in ready:
                        if i in self.silent:
                            cap.sock.recv()
                            continue
                        self.rounds[i].on_readable()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for cap in self.socks:
            cap.sock.close(linger=0)


@pytest.fixture
def router() -> Iterator[tuple[Any, str]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    yield sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)
    sock.close(linger=0)


def _connect(driver: RoundDriver, venues: Venues) -> None:
    """Wait until the ROUTER can route to every venue (a DEALER connects asynchronously)."""
    deadline = time.monotonic() + 5
    for ident in driver.identities:
        while True:
            try:
                driver.link.sock.send_multipart((ident, b"hello"))  # type: ignore[attr-defined]  # refused by the venue: counted
                break
            except zmq.ZMQError:
                assert time.monotonic() < deadline, f"{ident!r} never connected"
                time.sleep(0.01)


def test_rounds_over_zeromq_reproduce_the_in_process_solver_and_leak_nothing(
    router: tuple[Any, str],
) -> None:
    sock, endpoint = router
    n, m = 3, 2
    settings = AdmmSettings(max_iter=300)
    venues = Venues(endpoint, n, m)
    driver = RoundDriver(ZmqRoundLink(sock, RealtimeClock()), REG,
                         FederatedExchange(n, m, settings), RealtimeClock(), 1, 2000)  # fmt: skip
    _connect(driver, venues)
    venues.thread.start()
    central = ExchangeADMM(n, m, settings)
    rng = np.random.default_rng(3)
    private: list[float] = []  # gamma and phi: must never appear
    try:
        for k in range(1, 7):
            c = 100.0 + rng.normal(0, 0.05, (n, m))
            gamma = rng.uniform(1e-4, 1e-2, (n, m))
            phi = rng.uniform(0.001, 0.03, (n, m))
            limit = rng.integers(1, 60, (n, m)).astype(float) + 0.5
            with venues.lock:
                for i, v in enumerate(venues.solvers):
                    for a in range(m):
                        v.set_asset(a, c[i, a], gamma[i, a], phi[i, a], limit[i, a], seq=k)
            private += [*gamma.ravel(), *phi.ravel()]
            cap = 300 if k % 3 else 4
            out = driver.solve(c, cap)
            res = central.solve(c, gamma, phi, limit, max_iter=cap)
            assert not out.aborted and out.rounds == res.iterations
            np.testing.assert_array_equal(driver.ex.z, res.z)
            np.testing.assert_array_equal(driver.ex.u, res.u)
    finally:
        venues.close()
    assert driver.counts["aborted_solves"] == 0 and driver.counts["stale_solutions"] == 0
    # Privacy: every message a venue sent is a LocalSolution — envelope, (solve, round, venue,
    # n_assets, problem_seq) and one (asset, x) per asset, nothing more — and no x is an impact
    # or fee parameter; a limit shows only as the x of a venue sitting at it (inherent: x_i
    # itself is what the venue shares).
    captured = [msg for cap in venues.socks for msg in cap.sent]
    assert len(captured) == n * driver.counts["rounds"]
    schema = REG.schema("LocalSolution", 1)
    header_fields = {"solve_id", "round", "venue_id", "n_assets", "problem_seq"}
    secret = set(private)
    for data in captured:
        msg = REG.decode(data)
        assert msg.schema == schema and len(data) == REG.envelope.size + schema.payload_size(m)
        assert set(schema.header.value_fields) == header_fields
        assert set(schema.item.value_fields) == {"asset_id", "x"}  # type: ignore[union-attr]
        assert msg.header["problem_seq"][0] >= 1
        for x in msg.items["x"].tolist():
            assert x not in secret and -x not in secret


def test_a_silent_venue_aborts_the_solve_and_the_next_one_starts_cold(
    router: tuple[Any, str],
) -> None:
    sock, endpoint = router
    venues = Venues(endpoint, 2, 1, silent=frozenset({1}))
    driver = RoundDriver(ZmqRoundLink(sock, RealtimeClock()), REG,
                         FederatedExchange(2, 1, AdmmSettings()), RealtimeClock(), 1,
                         round_timeout_ms=200)  # fmt: skip
    _connect(driver, venues)
    with venues.lock:
        for i, v in enumerate(venues.solvers):
            v.set_asset(0, 100.0 + i, 1e-3, 0.01, 10.0, seq=1)
    venues.thread.start()
    try:
        out = driver.solve(np.array([[100.0], [101.0]]), 10)
        assert out.aborted and out.rounds == 0
        assert driver.counts["aborted_solves"] == 1
        assert "no answer from venues [1] within 200 ms" in driver.last_error
        assert driver.ex.cold  # both sides restart from z = 0
        # The answering venue is told of the abort: wait for its thread to take the message
        # (it arrives asynchronously; closing at once could stop the thread before it reads).
        deadline = time.monotonic() + 5
        while venues.rounds[0].counts["aborted"] == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        venues.close()
    assert venues.rounds[0].counts["aborted"] == 1


class _RoundSink:
    """Records what a live link journals, as journal records."""

    def __init__(self) -> None:
        self.records: list[JournalRecord] = []

    def round_input(self, frames: list[bytes], rx_ns: int) -> None:
        self.records.append(
            JournalRecord(len(self.records), len(self.records) + 1, REC_ROUND_INPUT, rx_ns,
                          encode_frames(frames))
        )  # fmt: skip

    def round_timeout(self, solve_id: int, round_no: int, ts_ns: int) -> None:
        self.records.append(
            JournalRecord(len(self.records), len(self.records) + 1, REC_ROUND_TIMEOUT, ts_ns,
                          encode_round_timeout(solve_id, round_no))
        )  # fmt: skip


def test_recorded_round_answers_and_timeouts_replay_the_same_solves(
    router: tuple[Any, str],
) -> None:
    """A live solve with a venue that answers and one that stays silent for the first solve:
    the journaled answers and timeout, fed back through RecordedRoundLink, give the same
    outcomes and the same exchange state; a timeout recorded for another round is refused."""
    sock, endpoint = router
    venues = Venues(endpoint, 2, 1, silent=frozenset({1}))
    link = ZmqRoundLink(sock, RealtimeClock())
    sink = _RoundSink()
    link.recorder = sink
    live = RoundDriver(link, REG, FederatedExchange(2, 1, AdmmSettings()), RealtimeClock(), 1,
                       round_timeout_ms=200)  # fmt: skip
    _connect(live, venues)
    with venues.lock:
        for i, solver in enumerate(venues.solvers):
            solver.set_asset(0, 100.0 + 0.05 * i, 1e-3, 0.01, 10.0, seq=1)
    venues.thread.start()
    prices = np.array([[100.0], [100.05]])
    try:
        first = live.solve(prices, 10)
        venues.silent = frozenset()
        second = live.solve(prices, 50)
    finally:
        venues.close()
    assert first.aborted and not second.aborted and second.rounds > 1
    kinds = [r.type for r in sink.records]
    assert kinds.count(REC_ROUND_TIMEOUT) == 1
    assert kinds.count(REC_ROUND_INPUT) >= 1 + 2 * second.rounds

    recorded = RecordedRoundLink()
    recorded.queue.extend(sink.records)
    replay = RoundDriver(recorded, REG, FederatedExchange(2, 1, AdmmSettings()),
                         RealtimeClock(), 1, round_timeout_ms=200)  # fmt: skip
    again = [replay.solve(prices, 10), replay.solve(prices, 50)]
    assert [(o.rounds, o.converged, o.aborted) for o in again] == [
        (o.rounds, o.converged, o.aborted) for o in (first, second)
    ]
    assert not recorded.queue
    for name in ("x", "z", "u", "best_x"):
        assert np.array_equal(getattr(replay.ex, name), getattr(live.ex, name)), name
    assert replay.ex.rho == live.ex.rho
    assert replay.counts == live.counts

    # The timeout recorded for solve 1 round 1, asked for in solve 1 round 2: refused.
    wrong = RecordedRoundLink()
    wrong.queue.extend(r for r in sink.records if r.type == REC_ROUND_TIMEOUT)
    with pytest.raises(RoundMismatch, match=r"\(1, 1\).*\(1, 2\)"):
        wrong.receive(0, 1, 2)
    with pytest.raises(RoundMismatch, match="no more"):
        wrong.receive(0, 1, 2)


def _quote(venue: int, seq: int, ts_ns: int, mid: float) -> tuple[Any, ...]:
    """A VenueQuote as the coordinator's loop hands it to ``on_quote`` (decode values)."""
    from arbsphere.firmware_interfaces.messages import PRICE_SCALE

    schema = REG.schema("VenueQuote")
    bid = round((mid - 0.01) * PRICE_SCALE)
    ask = round((mid + 0.01) * PRICE_SCALE)
    raw = REG.packer(schema, 1).pack(
        *REG.envelope_values(schema, 1, 10 + venue, seq, ts_ns), venue, 1, seq, ts_ns,
        10_000_000, 0, bid, ask,
    )  # fmt: skip
    return REG.decode_values(raw)[1]


def test_a_venue_that_stops_answering_rounds_is_held_out_then_probed(
    router: tuple[Any, str],
) -> None:
    """Its quotes keep coming but its rounds time out: one aborted solve, then the coordinator
    holds it at its plan lots and solves with the others (no round sent to it, no wait) until
    the retry time has passed in quote time; then it is probed, answers, and is back."""
    from arbsphere.coordinator.core import Coordinator

    sock, endpoint = router
    venues = Venues(endpoint, 2, 1, silent=frozenset({1}))
    core = Coordinator(2, 1, AdmmSettings(), 500, min_delta_lots=1)
    driver = RoundDriver(ZmqRoundLink(sock, RealtimeClock()), REG,
                         FederatedExchange(2, 1, AdmmSettings()), RealtimeClock(), 1,
                         round_timeout_ms=200)  # fmt: skip
    core.use_rounds(driver)
    core.outages.stale_after_ns = 10**12  # quotes never go stale here
    core.outages.unresponsive_retry_ns = 50_000_000
    _connect(driver, venues)
    with venues.lock:
        for i, solver in enumerate(venues.solvers):
            solver.set_asset(0, 100.0 + 0.05 * i, 1e-3, 0.01, 10.0, seq=1)
    venues.thread.start()
    counts = driver.counts
    try:
        ts = 1_000_000_000
        for v in (0, 1):
            core.on_quote(_quote(v, 1, ts, 100.0 + 0.05 * v))
        core.solve(10_000_000)  # venue 1 silent: the round times out
        assert core.counts["aborted_solves"] == 1 and core.counts["unresponsive_venues"] == 1
        sent = counts["messages_out"]
        for k in range(2, 5):  # within the retry time: held out, venue 0 solves alone
            ts += 10_000_000
            for v in (0, 1):
                core.on_quote(_quote(v, k, ts, 100.0 + 0.05 * v))
            core.solve(10_000_000)
        assert core.counts["aborted_solves"] == 1  # no more waits
        assert core.counts["frozen_solves"] == 3
        assert counts["messages_out"] - sent == counts["rounds"] * 1 + 3  # + 3 FINALs, venue 0
        ((venue, frozen_at, back_at, _, _, why),) = core.outages.freeze_log
        assert (venue, frozen_at, back_at, why) == (1, 1_000_000_000 + 10_000_000, None,
                                                    "no_round_answers")  # fmt: skip
        venues.silent = frozenset()  # it answers again
        ts += 60_000_000  # past the retry time (quote time): probed in the next solve
        for v in (0, 1):
            core.on_quote(_quote(v, 5, ts, 100.0 + 0.05 * v))
        core.solve(10_000_000)
    finally:
        venues.close()
    assert core.counts["aborted_solves"] == 1
    assert core.outages.freeze_log[0][2] == ts  # back
    assert core.outages.unresponsive_at[1] == -1 and not driver.ex.frozen[1]

"""One federated ADMM round against the bare ZeroMQ round trip, measured side by side.

Two venue processes (DEALER) and the coordinator (ROUTER, this process), loopback tcp.

1. The floor: the coordinator sends a message of a DualVariables' size to both venues, each
   echoes a message of a LocalSolution's size back; one round = until both answers are in.
2. Federated rounds: the same sockets and processes running :class:`RoundDriver` and
   :class:`VenueRounds` (decode, x-update, encode, exchange step) on a 2 x 1 problem whose
   tolerance is tight enough that every solve runs its full round cap.

Pairs alternate (floor, rounds, floor, rounds ...) and the median of the per-pair p50 / p99
ratios is reported with both distributions.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

import numpy as np
import zmq

N_VENUES = 2
ROUNDS_PER_SOLVE = 20


def _venue(endpoint: str, venue_id: int, mode: Any, stop: Any) -> None:
    from arbsphere.adapters.venue_rounds import VenueRounds
    from arbsphere.adapters.venue_solver import VenueSolver
    from arbsphere.clock import RealtimeClock
    from arbsphere.contracts import default_registry
    from arbsphere.rounds_protocol import venue_identity

    reg = default_registry()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, venue_identity(venue_id))
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    solver = VenueSolver(1)
    VenueSolver.warm_up()
    # a venue that wants to buy (venue 0) or sell (venue 1): the rounds have work to do
    solver.set_asset(0, 100.0 + 0.05 * venue_id, 1e-3, 0.01, 50.0, seq=1)
    rounds = VenueRounds(sock, reg, solver, venue_id, 10 + venue_id, RealtimeClock())
    echo = bytes(reg.schema("LocalSolution", 1).payload_size(1) + reg.envelope.size)
    sock.send(b"ready")
    while not stop.is_set():
        if not sock.poll(50):
            continue
        if mode.value == 0:
            sock.recv()
            sock.send(echo)
        else:
            rounds.on_readable()
    sock.close(linger=0)


def _floor_round(sock: Any, idents: list[bytes], msg: bytes) -> int:
    t0 = time.perf_counter_ns()
    for ident in idents:
        sock.send_multipart((ident, msg))
    for _ in idents:
        sock.recv_multipart()
    return time.perf_counter_ns() - t0


def run(seconds_per_phase: float = 3.0, pairs: int = 3) -> dict[str, Any]:
    from arbsphere.clock import RealtimeClock
    from arbsphere.contracts import default_registry
    from arbsphere.coordinator.admm import AdmmSettings
    from arbsphere.coordinator.federated import FederatedExchange
    from arbsphere.coordinator.rounds import RoundDriver, ZmqRoundLink
    from arbsphere.rounds_protocol import venue_identity

    reg = default_registry()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    mp_ctx = mp.get_context("spawn")
    mode = mp_ctx.Value("i", 0)
    stop = mp_ctx.Event()
    procs = [mp_ctx.Process(target=_venue, args=(endpoint, i, mode, stop)) for i in range(2)]
    for p in procs:
        p.start()
    for _ in procs:
        sock.recv_multipart()  # "ready"
    idents = [venue_identity(i) for i in range(N_VENUES)]
    floor_msg = bytes(reg.schema("DualVariables", 2).payload_size(1) + reg.envelope.size)
    # eps 0: never converges, so every solve runs ROUNDS_PER_SOLVE rounds
    settings = AdmmSettings(eps_abs=0.0, eps_rel=0.0, max_iter=ROUNDS_PER_SOLVE)
    driver = RoundDriver(ZmqRoundLink(sock, RealtimeClock()), reg,
                         FederatedExchange(N_VENUES, 1, settings), RealtimeClock(),
                         1, round_timeout_ms=5000)  # fmt: skip
    mids = np.array([[100.0], [100.05]])
    ratios_p50: list[float] = []
    ratios_p99: list[float] = []
    floors: list[np.ndarray] = []
    rounds_all: list[np.ndarray] = []
    try:
        mode.value = 1
        time.sleep(0.1)
        for _ in range(5):  # warm-up: kernel cache loads, first connections
            driver.solve(mids, ROUNDS_PER_SOLVE)
        for _ in range(pairs):
            time.sleep(0.1)  # the last solve's FINAL (no answer) is handled in rounds mode
            mode.value = 0
            time.sleep(0.1)
            floor = []
            end = time.monotonic() + seconds_per_phase
            while time.monotonic() < end:
                floor.append(_floor_round(sock, idents, floor_msg))
            mode.value = 1
            time.sleep(0.1)
            first = driver.rounds.n
            end = time.monotonic() + seconds_per_phase
            while time.monotonic() < end:
                driver.solve(mids, ROUNDS_PER_SOLVE)
            r = driver.rounds.view()[first:]
            if not len(r) or not floor:
                raise RuntimeError(
                    f"bench_rounds: {len(r)} rounds, {len(floor)} floor round trips in a phase; "
                    f"driver counts {driver.counts}, last error {driver.last_error!r}"
                )
            per_round = (r["closed_ns"] - r["sent_ns"]).astype(np.int64)
            f = np.asarray(floor, np.int64)
            floors.append(f)
            rounds_all.append(per_round)
            ratios_p50.append(float(np.percentile(per_round, 50) / np.percentile(f, 50)))
            ratios_p99.append(float(np.percentile(per_round, 99) / np.percentile(f, 99)))
    finally:
        stop.set()
        for p in procs:
            p.join(5)
        sock.close(linger=0)
    f_all = np.concatenate(floors)
    r_all = np.concatenate(rounds_all)
    return {
        "venues": N_VENUES,
        "floor_round_trip_us": {
            "p50": float(np.percentile(f_all, 50)) / 1e3,
            "p99": float(np.percentile(f_all, 99)) / 1e3,
            "count": len(f_all),
        },
        "federated_round_us": {
            "p50": float(np.percentile(r_all, 50)) / 1e3,
            "p99": float(np.percentile(r_all, 99)) / 1e3,
            "count": len(r_all),
        },
        "ratio_p50": float(np.median(ratios_p50)),
        "ratio_p99": float(np.median(ratios_p99)),
        "pairs": pairs,
        "aborted_solves": driver.counts["aborted_solves"],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))

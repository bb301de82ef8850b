"""One federated round against the bare ZeroMQ round trip, measured side by side.

Two venue processes (DEALER) and the coordinator (ROUTER, this process), loopback tcp; the
same sockets and processes carry every phase:

1. **Price rounds** (the default protocol, the headline): :class:`PriceRoundDriver` and
   :class:`VenuePrices` — the venue encodes its best response, slopes and breakpoint ladder,
   pairwise-masked as under the campaign's secure aggregation (X25519 keys, the price stream's
   HKDF salt); the coordinator sums the shares, takes the certified Newton / bracket step and
   ends every solve with the REVEAL. The venues' problems follow the default campaign's market
   (:func:`problem_stream`: the synthetic market's quotes for 2 venues x 1 asset at 2,000
   ticks/s, priced as the venue adapters price them, :data:`TICKS_PER_SOLVE` ticks per venue
   between solves); the coordinator proposes from the same public mids; the round cap is the
   campaign's (``budget_us / ns_per_round`` = 100).
2. **Its floor**: the coordinator sends a message of a PriceProposal's size to both venues,
   each echoes one of a PriceResponse share's size; one round = until both answers are in.
3. **Exchange-ADMM rounds** (``protocol = "admm"``, context): :class:`RoundDriver` and
   :class:`VenueRounds` (decode, x-update, encode, exchange step; clear, unmasked) on a 2 x 1
   problem whose tolerance is tight enough that every solve runs its full 20-round cap, against
   its own floor (DualVariables / LocalSolution sizes).

Per pair the floor and the rounds of each protocol alternate which goes first; every round of
every pair is pooled per arm and the ratio of the pooled p50 / p99 given with the pair-level
90 % interval (:func:`benchmarks.bench_recorder.pooled_ratios`). The price protocol's round
trips per solve (query rounds + the REVEAL) are counted over every measured solve.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

import numpy as np
import zmq

from benchmarks.bench_recorder import pooled_ratios
from benchmarks.targets import target

N_VENUES = 2
N_ASSETS = 1
ROUNDS_PER_SOLVE = 20  # ADMM: every solve runs the cap (eps 0)
#: the default campaign's round cap: budget_us 10,000 / ns_per_round 100,000 ns
PRICE_MAX_ROUNDS = 100
#: ticks per venue between two solves: the default campaign's 80,000 measured ticks over its
#: ~3,600 solves in a 20 s run are ~11 per venue
TICKS_PER_SOLVE = 10
#: solves in the problem stream (cycled)
STREAM_SOLVES = 4096
#: venue modes
FLOOR_ADMM, ADMM, FLOOR_PRICE, PRICE = 0, 1, 2, 3
#: targets (issue 20): a price round within 1.3x the bare round trip; round trips per solve
TARGET_ROUND_RATIO_P50 = 1.3
TARGET_ROUND_TRIPS_P50 = 2
TARGET_ROUND_TRIPS_P99 = 4


def problem_stream(
    n_venues: int,
    n_assets: int,
    solves: int,
    ticks_per_solve: int = TICKS_PER_SOLVE,
    *,
    seed: int = 7,
    rate_hz: float = 2000.0,
    fee_bp: float = 0.5,
    gamma: float = 1e-4,
    position_limit_lots: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The venues' local problems (c, gamma, phi, limit), each ``(solves, n_venues,
    n_assets)``, as the campaign's venue adapters hold them: the synthetic market's quotes
    (:class:`RoundRobinQuotes`, the campaign's defaults), each venue's latest quote of each
    asset priced by :class:`VenueCosts`, sampled every ``ticks_per_solve`` ticks (from the
    first tick at which every asset has been quoted)."""
    from arbsphere.adapters.venue_adapter import VenueCosts
    from arbsphere.firmware_interfaces.emulators.market import MarketConfig, RoundRobinQuotes

    if solves < 1 or ticks_per_solve < 1:
        raise ValueError(f"solves {solves}, ticks_per_solve {ticks_per_solve}: must be >= 1")
    cfg = MarketConfig(seed=seed, n_venues=n_venues, n_assets=n_assets, rate_hz=rate_hz,
                       base_price=100.0, half_spread_bp=1.0)  # fmt: skip
    costs = VenueCosts(fee_bp, gamma, position_limit_lots)
    first = max(ticks_per_solve, n_assets) - 1  # the tick after which the first solve runs
    ends = first + ticks_per_solve * np.arange(solves)
    shape = (solves, n_venues, n_assets)
    c, g, phi, lim = np.zeros(shape), np.full(shape, gamma), np.zeros(shape), np.zeros(shape)
    for v in range(n_venues):
        q = RoundRobinQuotes(cfg, v).next_batch(int(ends[-1]) + 1)
        for a in range(n_assets):
            last = ends - (ends - a) % n_assets  # the latest tick quoting asset a
            for s, k in enumerate(last.tolist()):
                mid, _half, p, _liq, limit = costs.price(
                    int(q["bid_px"][k]), int(q["ask_px"][k]),
                    int(q["bid_size"][k]), int(q["ask_size"][k]),
                )  # fmt: skip
                c[s, v, a], phi[s, v, a], lim[s, v, a] = mid, p, float(limit)
    return c, g, phi, lim


def _venue(
    endpoint: str,
    venue_id: int,
    mode: Any,
    stop: Any,
    private_raw: bytes,
    publics: dict[int, bytes],
    session: bytes,
    stream: tuple[np.ndarray, ...],
) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from arbsphere.adapters.venue_prices import VenuePrices
    from arbsphere.adapters.venue_rounds import VenueRounds
    from arbsphere.adapters.venue_solver import VenueSolver
    from arbsphere.clock import RealtimeClock
    from arbsphere.contracts import default_registry
    from arbsphere.price_protocol import share_length
    from arbsphere.privacy.secure_agg import MaskingParty
    from arbsphere.privacy.secure_rounds import X_FIXED
    from arbsphere.rounds_protocol import venue_identity

    reg = default_registry()
    clock = RealtimeClock()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, venue_identity(venue_id))
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    VenueSolver.warm_up()
    # ADMM: a venue that wants to buy (venue 0) or sell (venue 1): the rounds have work to do
    admm_solver = VenueSolver(1)
    admm_solver.set_asset(0, 100.0 + 0.05 * venue_id, 1e-3, 0.01, 50.0, seq=1)
    rounds = VenueRounds(sock, reg, admm_solver, venue_id, 10 + venue_id, clock)
    # price: the campaign's problem stream, masked as under secure aggregation
    c, g, phi, lim = stream
    m = c.shape[1]
    price_solver = VenueSolver(m)
    masking = MaskingParty(venue_id, X25519PrivateKey.from_private_bytes(private_raw), publics,
                           X_FIXED, session)  # fmt: skip
    prices = VenuePrices(sock, reg, price_solver, venue_id, 10 + venue_id, clock,
                         masking=masking)  # fmt: skip

    def load(k: int) -> None:
        s = k % len(c)
        for a in range(m):
            price_solver.set_asset(a, c[s, a], g[s, a], phi[s, a], lim[s, a], seq=k)

    load(0)
    closed = 0
    echo = {
        FLOOR_ADMM: bytes(reg.schema("LocalSolution", 1).payload_size(1) + reg.envelope.size),
        FLOOR_PRICE: bytes(reg.schema("PriceResponse").payload_size(share_length(m))
                           + reg.envelope.size),
    }  # fmt: skip
    sock.send(b"ready")
    while not stop.is_set():
        if not sock.poll(50):
            continue
        now = mode.value
        if now in echo:
            sock.recv()
            sock.send(echo[now])
        elif now == ADMM:
            rounds.on_readable()
        else:
            while True:  # one message at a time: the next problem is in before a BEGIN
                try:
                    data = sock.recv(zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    break
                prices.handle(data, clock.now_ns())
                done = prices.counts["reveals"] + prices.counts["aborted"]
                if done != closed:  # solve `done` closed: the venue's next ticks are in
                    closed = done
                    load(closed)
    sock.close(linger=0)


def _floor_round(sock: Any, idents: list[bytes], msg: bytes) -> int:
    t0 = time.perf_counter_ns()
    for ident in idents:
        sock.send_multipart((ident, msg))
    for _ in idents:
        sock.recv_multipart()
    return time.perf_counter_ns() - t0


def _pcts_us(x: np.ndarray) -> dict[str, float | int]:
    return {
        "p50": round(float(np.percentile(x, 50)) / 1e3, 1),
        "p99": round(float(np.percentile(x, 99)) / 1e3, 1),
        "count": len(x),
    }


def _compare(rounds: list[np.ndarray], floors: list[np.ndarray]) -> dict[str, Any]:
    """Pooled p50 / p99 of the rounds against the floor, ratios with the pair-level 90 %
    interval, and the per-pair p50 ratios."""
    pooled = pooled_ratios([{"round": r} for r in rounds], [{"round": f} for f in floors],
                           keys=("round",))["round"]  # fmt: skip
    per_pair = [
        round(float(np.percentile(r, 50) / np.percentile(f, 50)), 3)
        for r, f in zip(rounds, floors, strict=True)
    ]
    return {
        "round_us": _pcts_us(np.concatenate(rounds)),
        "floor_round_trip_us": _pcts_us(np.concatenate(floors)),
        "ratio_p50": pooled["ratio_p50"],
        "ratio_p50_ci90_runs": pooled["ratio_p50_ci90_runs"],
        "ratio_p99": pooled["ratio_p99"],
        "ratio_p99_ci90_runs": pooled["ratio_p99_ci90_runs"],
        "ratio_p50_per_pair": per_pair,
    }


def run(seconds_per_phase: float = 3.0, pairs: int = 3) -> dict[str, Any]:
    bench = _RoundsBench(seconds_per_phase)
    try:
        bench.warm_up()
        samples = bench.measure(pairs)
    finally:
        bench.close()
    return _results(bench, samples, pairs, seconds_per_phase)


def _start_venues(endpoint: str, stream: tuple[np.ndarray, ...]) -> tuple[Any, Any, list[Any]]:
    """Spawn the venue processes, each with its X25519 key, every venue's public key, one fresh
    session and its own problems; returns the shared mode, the stop event and the processes."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    from arbsphere.price_protocol import PRICE_MASK_SUFFIX
    from arbsphere.privacy.secure_agg import public_raw

    keys = [X25519PrivateKey.generate() for _ in range(N_VENUES)]
    publics = {i: public_raw(k) for i, k in enumerate(keys)}
    session = np.random.default_rng().bytes(32) + PRICE_MASK_SUFFIX
    mp_ctx = mp.get_context("spawn")
    mode = mp_ctx.Value("i", ADMM)
    stop = mp_ctx.Event()
    procs = []
    for i in range(N_VENUES):
        raw = keys[i].private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        own = tuple(p[:, i, :] for p in stream)  # this venue's problems only
        args = (endpoint, i, mode, stop, raw, publics, session, own)
        procs.append(mp_ctx.Process(target=_venue, args=args))
    for p in procs:
        p.start()
    return mode, stop, procs


class _RoundsBench:
    """The coordinator side (this process): the ROUTER socket, the venue processes, both round
    drivers, and the phases that switch the venues' mode and time rounds or floor trips."""

    def __init__(self, seconds_per_phase: float) -> None:
        from arbsphere.clock import RealtimeClock
        from arbsphere.contracts import default_registry
        from arbsphere.coordinator.admm import AdmmSettings
        from arbsphere.coordinator.federated import FederatedExchange
        from arbsphere.coordinator.price_rounds import PriceRoundDriver
        from arbsphere.coordinator.price_search import PriceSearch
        from arbsphere.coordinator.rounds import RoundDriver, ZmqRoundLink
        from arbsphere.rounds_protocol import venue_identity

        self.seconds_per_phase = seconds_per_phase
        reg = default_registry()
        clock = RealtimeClock()
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sock = self.sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind("tcp://127.0.0.1:*")
        self.stream = problem_stream(N_VENUES, N_ASSETS, STREAM_SOLVES)
        endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.mode, self.stop, self.procs = _start_venues(endpoint, self.stream)
        for _ in self.procs:
            sock.recv_multipart()  # "ready"
        self.idents = [venue_identity(i) for i in range(N_VENUES)]
        self.floor_msgs = {
            FLOOR_ADMM: bytes(reg.schema("DualVariables", 2).payload_size(1) + reg.envelope.size),
            FLOOR_PRICE: bytes(reg.schema("PriceProposal").payload_size(N_ASSETS)
                               + reg.envelope.size),
        }  # fmt: skip
        link = ZmqRoundLink(sock, clock)
        # eps 0: never converges, so every solve runs ROUNDS_PER_SOLVE rounds
        settings = AdmmSettings(eps_abs=0.0, eps_rel=0.0, max_iter=ROUNDS_PER_SOLVE)
        self.admm = RoundDriver(link, reg, FederatedExchange(N_VENUES, 1, settings), clock, 1,
                                round_timeout_ms=5000)  # fmt: skip
        self.price = PriceRoundDriver(link, reg, PriceSearch(N_VENUES, N_ASSETS, masked=True),
                                      clock, 1, round_timeout_ms=5000)  # fmt: skip
        self.admm_mids = np.array([[100.0], [100.05]])
        self.trips: list[int] = []
        self.solve_ns: list[int] = []

    def price_solve(self, record: bool) -> None:
        price = self.price
        k = price.solve_id  # the venues load problem k once solve k - 1 closed
        out = price.solve(self.stream[0][k % STREAM_SOLVES], PRICE_MAX_ROUNDS)
        if record and not out.aborted:
            self.trips.append(out.rounds + 1)  # + the REVEAL's round trip
            self.solve_ns.append(out.ended_ns - out.started_ns)

    def set_mode(self, m: int) -> None:
        time.sleep(0.1)  # the last solve's closing message is handled in the old mode
        self.mode.value = m
        time.sleep(0.1)

    def warm_up(self) -> None:
        for _ in range(5):  # kernel cache loads, first connections
            self.admm.solve(self.admm_mids, ROUNDS_PER_SOLVE)
        self.set_mode(PRICE)
        warm_end = time.monotonic() + 1.0
        while time.monotonic() < warm_end:
            self.price_solve(record=False)

    def measure(self, pairs: int) -> dict[int, list[np.ndarray]]:
        """``pairs`` pairs of each protocol's phase and its floor's, alternating which goes
        first; every phase's samples (ns) by mode."""
        samples: dict[int, list[np.ndarray]] = {
            m: [] for m in (FLOOR_ADMM, ADMM, FLOOR_PRICE, PRICE)
        }
        for k in range(pairs):
            for floor_mode, rounds_mode in ((FLOOR_PRICE, PRICE), (FLOOR_ADMM, ADMM)):
                order = (floor_mode, rounds_mode) if k % 2 == 0 else (rounds_mode, floor_mode)
                for m in order:
                    samples[m].append(self.phase(m))
        return samples

    def phase(self, m: int) -> np.ndarray:
        """One phase in mode ``m``: floor round trips, or each closed round's time (ns)."""
        self.set_mode(m)
        end = time.monotonic() + self.seconds_per_phase
        if m in self.floor_msgs:
            floor = []
            while time.monotonic() < end:
                floor.append(_floor_round(self.sock, self.idents, self.floor_msgs[m]))
            return np.asarray(floor, np.int64)
        driver: Any = self.admm if m == ADMM else self.price
        first = driver.rounds.n
        while time.monotonic() < end:
            if m == ADMM:
                self.admm.solve(self.admm_mids, ROUNDS_PER_SOLVE)
            else:
                self.price_solve(record=True)
        r = driver.rounds.view()[first:]
        if not len(r):
            raise RuntimeError(
                f"bench_rounds: no {driver.protocol} rounds in a phase; driver counts "
                f"{driver.counts}, last error {driver.last_error!r}"
            )
        return (r["closed_ns"] - r["sent_ns"]).astype(np.int64)

    def close(self) -> None:
        self.stop.set()
        for p in self.procs:
            p.join(5)
        self.sock.close(linger=0)


def _round_trips(trips: list[int]) -> dict[str, Any]:
    """The price protocol's round trips per solve (the REVEAL's included)."""
    rt = np.asarray(trips, np.int64)
    trips_p50, trips_p99 = (float(x) for x in np.percentile(rt, [50, 99]))
    return {
        "p50": trips_p50,
        "p99": trips_p99,
        "max": int(rt.max()),
        "solves": len(rt),
        "histogram": dict(
            zip(*(x.tolist() for x in np.unique(rt, return_counts=True)), strict=True)
        ),
        "ticks_per_solve": TICKS_PER_SOLVE,
    }


def _results(
    bench: _RoundsBench, samples: dict[int, list[np.ndarray]], pairs: int, seconds: float
) -> dict[str, Any]:
    from arbsphere.price_protocol import share_length

    price_cmp = _compare(samples[PRICE], samples[FLOOR_PRICE])
    admm_cmp = _compare(samples[ADMM], samples[FLOOR_ADMM])
    round_trips = _round_trips(bench.trips)
    solves = round_trips["solves"]
    floor_ref = (
        f"vs the bare round trip, {price_cmp['round_us']['p50']:.0f} vs "
        f"{price_cmp['floor_round_trip_us']['p50']:.0f} us"
    )
    targets = [
        target("rounds", "price round / bare round trip, p50", price_cmp["ratio_p50"],
               TARGET_ROUND_RATIO_P50, interval=price_cmp["ratio_p50_ci90_runs"],
               reference=floor_ref),
        target("rounds", "price round trips per solve (reveal included), p50",
               round_trips["p50"], TARGET_ROUND_TRIPS_P50, reference=f"{solves} solves"),
        target("rounds", "price round trips per solve (reveal included), p99",
               round_trips["p99"], TARGET_ROUND_TRIPS_P99, reference=f"{solves} solves"),
    ]  # fmt: skip
    return {
        "venues": N_VENUES,
        "assets": N_ASSETS,
        "pairs": pairs,
        "seconds_per_phase": seconds,
        "price": {
            **price_cmp,
            "masked": True,
            "share_words": share_length(N_ASSETS),
            "max_rounds": PRICE_MAX_ROUNDS,
            "solve_us": _pcts_us(np.asarray(bench.solve_ns, np.int64)),
            "round_trips_per_solve": round_trips,
            "counts": dict(bench.price.counts),
        },
        "admm": {
            **admm_cmp,
            "masked": False,
            "rounds_per_solve": ROUNDS_PER_SOLVE,
            "aborted_solves": bench.admm.counts["aborted_solves"],
        },
        "targets": targets,
    }


def summary_lines(out: dict[str, Any]) -> list[str]:
    """The section's lines: each protocol's round against its floor, the round trips."""
    lines = []
    for name, what in (("price", "price round (masked, the headline)"),
                       ("admm", "ADMM round (clear, context)")):  # fmt: skip
        c = out[name]
        ci = c["ratio_p50_ci90_runs"]
        ci_s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        lines.append(
            f"  {what:34s} p50 {c['round_us']['p50']:7.1f} vs floor "
            f"{c['floor_round_trip_us']['p50']:7.1f} us: ratio {c['ratio_p50']:.3f}{ci_s}; "
            f"p99 {c['round_us']['p99']:.0f} vs {c['floor_round_trip_us']['p99']:.0f} us: "
            f"{c['ratio_p99']:.3f}"
        )
    rt = out["price"]["round_trips_per_solve"]
    lines.append(
        f"  price round trips per solve (reveal included, {rt['solves']} solves, "
        f"{rt['ticks_per_solve']} ticks per venue between solves): p50 {rt['p50']:.0f}, "
        f"p99 {rt['p99']:.0f}, max {rt['max']}; histogram {rt['histogram']}"
    )
    return lines


if __name__ == "__main__":
    import json

    from benchmarks.targets import target_line

    result = run()
    print(json.dumps(result, indent=2))
    print("\n".join(summary_lines(result)))
    print("\n".join(target_line(t) for t in result["targets"]))

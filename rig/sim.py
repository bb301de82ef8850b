"""``arbsphere sim SCENARIO``: the federated coordination in process on the synthetic market.

No devices, sockets or processes: every venue is a :class:`VenueSolver` (its private problem
and x-update), the coordinator a :class:`FederatedExchange` — the same objects and kernels the
pipeline runs, called directly, one step per market tick (all venues quote every asset). Per
step: the venues price their quotes into their local problems; the rounds run up to the
budget's cap; the best iterate is neutralized (around any venue that is out of the market);
the legs are merged into the plan and filled by the broker's fill policy (immediately);
shortfalls are written off and compensated at the next step. Deterministic: same scenario and
seed, same result set (only the measured wall times differ).

Scenarios (:data:`SCENARIOS`): ``calm``, ``volatile``, ``outage`` (one of three venues stops
quoting for a third of the run: it is frozen at its lots, the others hedge around it),
``flash-spread`` (one venue's spread widens twenty-fold for a while), ``wide`` (8 venues x 16
assets). The result set (``results/sim-<scenario>/<run-id>/``): ``kpi.json``, ``trace.parquet``
(one row per step), ``report.html``, ``manifest.json`` (hashes every file).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arbsphere.adapters.venue_adapter import VenueCosts
from arbsphere.adapters.venue_solver import VenueSolver
from arbsphere.clock import Clock
from arbsphere.contracts import PLAN_LEG_DTYPE
from arbsphere.coordinator.admm import AdmmSettings
from arbsphere.coordinator.baseline import gaps_batch
from arbsphere.coordinator.federated import FederatedExchange
from arbsphere.coordinator.neutralize import neutralize_around_fixed
from arbsphere.coordinator.traces import RealizedNet
from arbsphere.errors import ConfigError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.emulators.fill_policy import FillPolicy
from arbsphere.firmware_interfaces.emulators.market import MarketConfig, VenueQuoteStream
from arbsphere.kpi.analysis import pcts
from arbsphere.kpi.report import render_report
from arbsphere.kpi.resultset import ResultSetWriter
from arbsphere.plan.digest import plan_hash
from arbsphere.plan.merge import STAT_MAX_ABS_NET, DeltaMerger, emit_and_merge


@dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    n_venues: int = 2
    n_assets: int = 1
    seconds: float = 10.0
    rate_hz: float = 200.0
    market: dict[str, Any] = field(default_factory=dict)
    #: (venue, start fraction, end fraction) of the run the venue does not quote
    outage: tuple[int, float, float] | None = None
    #: (venue, start fraction, end fraction, spread factor)
    flash: tuple[int, float, float, float] | None = None
    fills: dict[str, Any] = field(default_factory=dict)
    fee_bp: float = 0.5
    gamma: float = 1e-4
    position_limit_lots: int = 100
    #: generous by default: in process a round costs microseconds, and the sim is where the
    #: algorithm's convergence (not the transport) is under test; budget / ns_per_round rounds
    budget_us: float = 50_000.0
    ns_per_round: float = 100_000.0
    admm: AdmmSettings = field(default_factory=AdmmSettings)
    seed: int = 7


MIXED = {"mode": "mixed", "reject": 0.02, "partial": 0.05, "seed": 7}
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("calm", "two venues, quiet market, few mispricings",
                 market={"vol_bp_per_sqrt_s": 10.0, "episode_rate_per_s": 0.5}, fills=MIXED),
        Scenario("volatile", "two venues, 4x the volatility, frequent large mispricings",
                 market={"vol_bp_per_sqrt_s": 80.0, "episode_rate_per_s": 4.0,
                         "episode_size_bp": 15.0}, fills=MIXED),
        Scenario("outage", "three venues; venue 2 stops quoting from 30 % to 60 % of the run",
                 n_venues=3, outage=(2, 0.3, 0.6),
                 market={"episode_rate_per_s": 3.0}, fills=MIXED),
        Scenario("flash-spread", "two venues; venue 1's spread widens 20x from 40 % to 50 %",
                 flash=(1, 0.4, 0.5, 20.0), market={"episode_rate_per_s": 3.0}, fills=MIXED),
        Scenario("wide", "8 venues x 16 assets", n_venues=8, n_assets=16, seconds=2.0,
                 rate_hz=100.0, market={"episode_rate_per_s": 2.0}, fills=MIXED),
    )
}  # fmt: skip

#: the first steps whose every round's z is kept for the convergence plot
CONVERGENCE_STEPS = 256

STEP_DTYPE = np.dtype(
    [
        ("step", "<i8"),
        ("t_s", "<f8"),
        ("rounds", "<u4"),
        ("converged", "u1"),
        ("primal_res", "<f8"),
        ("dual_res", "<f8"),
        ("solve_us", "<f8"),  # wall time of the rounds (measured, not used for decisions)
        ("legs", "<u4"),
        ("write_offs", "<u4"),
        ("frozen", "<u2"),  # venues out of the market this step
        ("plan_net_max", "<i8"),  # max |Σ plan| over assets after the step's deltas
        ("realized_net_max", "<i8"),  # max |Σ executed| over assets after the fills
        ("neutralize_refused", "u1"),
        ("frozen_traded", "u1"),  # a leg at a venue out of the market (must never happen)
        ("objective_gap", "<f8"),  # vs the centralized optimum (NaN with a frozen venue)
    ]
)


def _quotes(s: Scenario) -> tuple[MarketConfig, np.ndarray]:
    """(config, quotes (steps, venues, assets) of QUOTE_DTYPE)."""
    cfg = MarketConfig(seed=s.seed, n_venues=s.n_venues, n_assets=s.n_assets, rate_hz=s.rate_hz,
                       **s.market)  # fmt: skip
    steps = round(s.seconds * s.rate_hz)
    q = np.zeros((steps, s.n_venues, s.n_assets), VenueQuoteStream(cfg, 0, 0).next_batch(1).dtype)
    for v in range(s.n_venues):
        for a in range(s.n_assets):
            q[:, v, a] = VenueQuoteStream(cfg, v, a).next_batch(steps)
    if s.flash is not None:
        venue, lo, hi, factor = s.flash
        k0, k1 = round(lo * steps), round(hi * steps)
        mid = (q["bid_px"][k0:k1, venue] + q["ask_px"][k0:k1, venue]) // 2
        half = (q["ask_px"][k0:k1, venue] - q["bid_px"][k0:k1, venue]) // 2
        q["bid_px"][k0:k1, venue] = mid - half * factor
        q["ask_px"][k0:k1, venue] = mid + half * factor
    return cfg, q


def simulate(s: Scenario) -> tuple[np.ndarray, dict[str, Any]]:
    """Run the scenario; (one STEP_DTYPE row per step, counters)."""
    _, quotes = _quotes(s)
    steps, n, m = quotes.shape
    venues = [VenueSolver(m) for _ in range(n)]
    costs = VenueCosts(s.fee_bp, s.gamma, s.position_limit_lots)  # as the venue adapters price
    ex = FederatedExchange(n, m, s.admm)
    merger = DeltaMerger(n, m, n_senders=4)
    policy = FillPolicy(**s.fills) if s.fills else FillPolicy()
    executed = np.zeros((n, m), np.int64)
    realized = RealizedNet(m)
    target = np.zeros((n, m), np.int64)
    legs = np.zeros(n * m, PLAN_LEG_DTYPE)
    write_off = np.zeros(1, PLAN_LEG_DTYPE)
    mids = np.zeros((n, m))
    bid = np.zeros((n, m), np.int64)
    ask = np.zeros((n, m), np.int64)
    closing = 20  # after the last tick: steps on the last quotes until no shortfall is open
    rows = np.zeros(steps + closing, STEP_DTYPE)
    snap = np.full(
        (steps + closing, 5, n, m), np.nan
    )  # c, gamma, phi, limit, z per step (for the gap)
    max_rounds = max(1, min(s.admm.max_iter, int(s.budget_us * 1000 // s.ns_per_round)))
    counts = {"solves": 0, "deltas": 0, "legs": 0, "early_stops": 0, "shortfalls": 0,
              "write_offs": 0, "compensating_deltas": 0, "neutralize_refused": 0,
              "frozen_steps": 0}  # fmt: skip
    out_lo, out_hi = (-1, -1)
    if s.outage is not None:
        out_lo, out_hi = round(s.outage[1] * steps), round(s.outage[2] * steps)
    delta_id = 0
    pending_shortfall = False
    dt_ns = round(1e9 / s.rate_hz)
    round_rows: list[tuple[int, int, float, float]] = []
    round_z: list[np.ndarray] = []
    n_done = 0
    stepping_started = time.perf_counter()
    for k in range(steps + closing):
        if k >= steps and not pending_shortfall:
            break
        n_done = k + 1
        q_k = min(k, steps - 1)
        t_ns = k * dt_ns
        out_venue = s.outage[0] if s.outage is not None and out_lo <= k < out_hi else -1
        for v in range(n):
            if v == out_venue:
                continue  # no quote: the venue is out of the market
            for a in range(m):
                qq = quotes[q_k, v, a]
                b, x = int(qq["bid_px"]), int(qq["ask_px"])
                mid, _half, phi, _liq, limit = costs.price(
                    b, x, int(qq["bid_size"]), int(qq["ask_size"])
                )
                venues[v].set_asset(a, mid, s.gamma, phi, float(limit), seq=k)
                mids[v, a], bid[v, a], ask[v, a] = mid, b, x
        if out_venue >= 0:
            ex.freeze(out_venue, merger.plan[out_venue])
            counts["frozen_steps"] += 1
        elif ex.frozen.any():
            ex.thaw(int(np.flatnonzero(ex.frozen)[0]))
        # the rounds
        t0 = time.perf_counter_ns()
        cold = ex.begin(mids)
        live = [v for v in range(n) if not ex.frozen[v]]
        for v in live:
            venues[v].begin(k + 1, cold)
        for _ in range(max_rounds):
            for v in live:
                venues[v].settle(ex.xhat_mean, s.admm.alpha)
                ex.absorb(v, venues[v].iterate(ex.u, ex.rho))
            done = ex.step()
            if k < CONVERGENCE_STEPS:
                round_rows.append((k, ex.round, ex.primal_res, ex.dual_res))
                round_z.append(ex.z.copy())
            if done:
                break
        for v in live:
            venues[v].settle(ex.xhat_mean, s.admm.alpha)
        solve_us = (time.perf_counter_ns() - t0) / 1e3
        counts["solves"] += 1
        counts["early_stops"] += int(not ex.converged)
        refused = neutralize_around_fixed(ex.best_x, ex.frozen, ex.frozen_lots, target) < 0
        if refused:
            counts["neutralize_refused"] += 1
            target[:] = merger.plan
        n_legs = int(
            emit_and_merge(merger.plan, target, 1, t_ns, 1, delta_id + 1, bid, ask, legs,
                           merger.high_water, merger.seen, merger.stats)
        )  # fmt: skip
        plan_net = int(np.abs(merger.plan.sum(axis=0)).max())
        n_write_offs = 0
        frozen_traded = bool(n_legs) and bool(ex.frozen[legs["venue"][:n_legs]].any())
        if n_legs:
            delta_id += 1
            counts["deltas"] += 1
            counts["legs"] += n_legs
            counts["compensating_deltas"] += int(pending_shortfall)
            for i in range(n_legs):
                leg = legs[i]
                signed = int(leg["side"]) * int(leg["size_lots"])
                status, filled, _late = policy.decide((delta_id << 8) | i, int(leg["size_lots"]))
                v, a = int(leg["venue"]), int(leg["asset"])
                executed[v, a] += int(leg["side"]) * filled
                unfilled = signed - int(leg["side"]) * filled
                if status != dm.ACK_STATUS_FILL and unfilled:
                    counts["shortfalls"] += 1
                    delta_id += 1
                    write_off[0] = (t_ns, delta_id, 1, v, a, -1 if unfilled > 0 else 1, 0,
                                    abs(unfilled), 0)  # fmt: skip
                    merger.merge(write_off)
                    n_write_offs += 1
        pending_shortfall = n_write_offs > 0
        counts["write_offs"] += n_write_offs
        realized.observe(executed, t_ns)
        if not ex.frozen.any():
            snap[k, 0] = mids
            for v in range(n):
                snap[k, 1, v] = venues[v]._gamma
                snap[k, 2, v] = venues[v]._phi
                snap[k, 3, v] = venues[v]._limit
            snap[k, 4] = ex.z
        rows[k] = (k, t_ns / 1e9, ex.round, int(ex.converged), ex.primal_res, ex.dual_res,
                   solve_us, n_legs, n_write_offs, int(ex.frozen.sum()), plan_net,
                   int(np.abs(executed.sum(axis=0)).max()), int(refused), int(frozen_traded),
                   np.nan)  # fmt: skip
    # the stepping alone: the baseline gaps below (every recorded round's, for the convergence
    # plot: 69k bisections of 8 x 16 in `wide`, ~5 s) are analysis, not simulation speed
    stepping_s = time.perf_counter() - stepping_started
    rows = rows[:n_done]
    snap = snap[:n_done]
    ok = ~np.isnan(snap[:, 0, 0, 0])
    if ok.any():
        gaps = np.zeros(int(ok.sum()))
        c, g, f, lim, z = (np.ascontiguousarray(snap[ok, i]) for i in range(5))
        gaps_batch(c, g, f, lim, z, 1.0, gaps)
        rows["objective_gap"][ok] = gaps
    counts["closing_steps"] = max(0, len(rows) - steps)
    convergence = _round_gaps(snap, round_rows, round_z)
    counts["final_plan_net"] = int(np.abs(merger.plan.sum(axis=0)).max())
    counts["final_plan_hash"] = plan_hash(merger.plan)
    counts["max_plan_net_after_trades"] = int(merger.stats[STAT_MAX_ABS_NET])
    return rows, {"counts": counts, "realized": realized.summary(), "convergence": convergence,
                  "stepping_s": stepping_s}  # fmt: skip


def _round_gaps(
    snap: np.ndarray, round_rows: list[tuple[int, int, float, float]], round_z: list[np.ndarray]
) -> dict[str, np.ndarray]:
    """Per round of the first steps' solves: round, gap of that round's z, residuals."""
    if not round_rows:
        return {}
    info = np.array(round_rows)
    steps = info[:, 0].astype(np.int64)
    ok = ~np.isnan(snap[steps, 0, 0, 0])  # steps with a frozen venue have no baseline
    gaps = np.full(len(steps), np.nan)
    if ok.any():
        sel = steps[ok]
        out = np.zeros(int(ok.sum()))
        z = np.ascontiguousarray(np.array(round_z)[ok])
        c, g, f, lim = (np.ascontiguousarray(snap[sel, i]) for i in range(4))
        gaps_batch(c, g, f, lim, z, 1.0, out)
        gaps[ok] = out
    return {"round": info[:, 1].astype(np.int64), "objective_gap": gaps,
            "primal_res": info[:, 2], "dual_res": info[:, 3]}  # fmt: skip


def sim_kpi(s: Scenario, rows: np.ndarray, info: dict[str, Any], wall_s: float) -> dict[str, Any]:
    c = info["counts"]
    stepping_s = float(info["stepping_s"])
    trade_steps = rows["legs"] > 0
    return {
        "hedge": {
            "coordination": "federated (in process)",
            "solves": c["solves"],
            "deltas": c["deltas"],
            "legs": c["legs"],
            "early_stops": c["early_stops"],
            "rounds_per_tick": pcts(rows["rounds"].astype(float)),
            "objective_gap_vs_centralized": {
                **pcts(rows["objective_gap"]), "unit": "relative",
                "count": int((~np.isnan(rows["objective_gap"])).sum()),
                "not_compared_frozen": int((rows["frozen"] > 0).sum()),
            },
            "final_primal_residual": pcts(rows["primal_res"]),
            "time_to_tolerance_us": pcts(rows["solve_us"][rows["converged"] == 1]),
            "max_abs_net_delta": int(rows["plan_net_max"][trade_steps].max())
            if trade_steps.any() else 0,
            "final_plan_net": c["final_plan_net"],
            "neutralize_refused": c["neutralize_refused"],
            "compensation": {k: c[k] for k in ("shortfalls", "write_offs",
                                               "compensating_deltas")},
            "realized_net_delta": info["realized"],
        },
        "sim": {
            "scenario": s.name, "steps": len(rows), "venues": s.n_venues, "assets": s.n_assets,
            "frozen_steps": c["frozen_steps"], "wall_s": round(wall_s, 3),
            "stepping_s": round(stepping_s, 6),
            "analysis_s": round(max(wall_s - stepping_s, 0.0), 3),
            "steps_per_s": round(len(rows) / stepping_s, 1) if stepping_s > 0 else None,
        },
    }  # fmt: skip


def run_sim(name: str, clock: Clock, results_dir: Path, seconds: float | None = None) -> Path:
    """Simulate scenario ``name`` and write its result set; returns the run directory."""
    if name not in SCENARIOS:
        raise ConfigError(f"unknown scenario {name!r}; scenarios: {', '.join(SCENARIOS)}",
                          key="scenario")  # fmt: skip
    s = SCENARIOS[name]
    if seconds is not None:
        if not 0 < seconds <= 3600:
            raise ConfigError(f"--seconds {seconds!r}: must be in (0, 3600]", key="seconds")
        s = Scenario(**{**asdict(s), "seconds": seconds, "admm": s.admm})
    out = ResultSetWriter.new(results_dir, f"sim-{name}", clock.now_ns())
    t0 = time.perf_counter()
    rows, info = simulate(s)
    wall = time.perf_counter() - t0
    kpi = sim_kpi(s, rows, info, wall)
    out.write_with("trace.parquet", lambda p: pd.DataFrame(rows).to_parquet(p, index=False))
    out.write_json("kpi.json", kpi, sort_keys=False)
    out.set_status(complete=True)
    out.add({
        "scenario": {**asdict(s), "admm": asdict(s.admm)},
        "method": "in-process federated exchange ADMM on the synthetic market; fills from "
        "the broker emulator's fill policy, applied at once; no devices, no wall clock in "
        "any decision",
    })  # fmt: skip
    out.write_with("report.html", lambda p: render_report(
        kpi, None, out.manifest(), p, convergence=info["convergence"] or None
    ))  # fmt: skip
    out.finish()
    return out.run_dir

"""The issue-20 benches' pure helpers, without running a campaign: target records and lines,
what a kpi.json says about keeping up, round trips per solve, the busy-core process, the scale
cells and their campaigns and table, the rounds bench's problem stream, CPU per hop, the
overload arms' targets."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.targets import (
    busy_core,
    mark,
    percentiles,
    run_figures,
    solve_round_trips,
    target,
    target_line,
)


def test_a_target_is_met_by_its_operator_and_printed_with_interval_and_mark() -> None:
    t = target("pipeline", "ratio p50", 1.21, 1.3, interval=[1.1, 1.35], reference="a vs b")
    assert t["met"] is True and t["op"] == "<="
    line = target_line(t)
    assert "ratio p50: 1.210 [1.100, 1.350] (a vs b)" in line
    assert line.endswith("target <= 1.3  PASS")
    assert target("x", "y", 1.31, 1.3)["met"] is False
    assert target("x", "stale", 0, 0, op="==")["met"] is True
    assert target("x", "stale", 3, 0, op="==")["met"] is False
    assert target("x", "drops counted", 0, 0, op=">=")["met"] is True
    missing = target("x", "y", None, 1.3)
    assert missing["met"] is None and target_line(missing).endswith("n/a")
    assert [mark(m) for m in (True, False, None)] == ["PASS", "FAIL", "n/a"]
    big = target("x", "queue p99", 123456.7, 100000, unit="us")
    assert "123,457 us" in target_line(big) and "<= 100,000 us  FAIL" in target_line(big)
    with pytest.raises(ValueError, match="target op"):
        target("x", "y", 1.0, 1.0, op="<")


def _kpi() -> dict[str, Any]:
    return {
        "tick_to_trade": {"p50": 900.0, "p99": 4000.0, "count": 321},
        "stages": {"adapter_to_coordinator": {"p50": 300.0, "p99": 250_000.0, "max": 9e5}},
        "hedge": {"superseded_ticks": 1234, "aborted_solves": 2},
        "loss": {"dropped": 17, "gaps": 0},
        "throughput": {"ticks_sent": 10_000, "ticks_in": 9_983},
        "host_load": {"rig_busy_pct": 80.0, "other_busy_pct": 45.0},
        "governance": {
            "refusals": {
                "credential": {},
                "message": {"skew_past": 5, "bad_tag": 1},
                "budget": {"liquidity_exhausted": 2},
            },
        },
        "health": {
            "verdict": "fell_behind",
            "summary": "FELL BEHIND — 5 stale",
            "queueing_bound_us": 100_000.0,
            "findings": [
                {"name": "stale_refusals", "value": 5},
                {"name": "refused", "value": 1},
                {"name": "adapter_dropped", "value": 0},
            ],
        },
    }


def test_run_figures_reads_what_kpi_json_says_about_keeping_up() -> None:
    fig = run_figures(_kpi())
    assert fig["tick_to_trade_us"] == {"p50": 900.0, "p99": 4000.0, "count": 321}
    assert fig["queueing_us"] == {"p50": 300.0, "p99": 250_000.0, "max": 9e5}
    assert fig["queueing_bound_us"] == 100_000.0
    assert (fig["stale_refusals"], fig["other_refusals"], fig["security_refusals"]) == (5, 1, 8)
    assert (fig["dropped"], fig["adapter_dropped"], fig["superseded_ticks"]) == (17, 0, 1234)
    assert fig["verdict"] == "fell_behind" and fig["other_busy_pct"] == 45.0
    # a run that never reached its window: no figures, no crash
    empty = run_figures({})
    assert empty["verdict"] is None and empty["stale_refusals"] is None
    assert empty["security_refusals"] is None and empty["tick_to_trade_us"]["p50"] is None


def test_round_trips_count_the_reveal_and_only_measured_unaborted_solves(tmp_path: Path) -> None:
    from arbsphere.coordinator.traces import FED_SOLVE_DTYPE

    rows = np.zeros(5, FED_SOLVE_DTYPE)
    rows["rounds"] = [7, 1, 3, 2, 9]
    rows["started_ns"] = [500, 1_000, 1_500, 2_000, 2_500]  # the window starts at 1,000
    rows["aborted"] = [0, 0, 0, 0, 1]
    np.save(tmp_path / "coordinator.solves.npy", rows)
    assert solve_round_trips(tmp_path, 1_000).tolist() == [2, 4, 3]
    assert solve_round_trips(tmp_path, 1_000, reveal=False).tolist() == [1, 3, 2]
    assert len(solve_round_trips(tmp_path / "central", 0)) == 0  # no solve table
    p = percentiles(np.array([2, 2, 2, 4]))
    assert p["p50"] == 2.0 and p["count"] == 4 and 3.9 < (p["p99"] or 0) <= 4
    assert percentiles(np.zeros(0))["p50"] is None


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, clock ticks


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_busy_core_spins_for_the_block_and_is_gone_after_it() -> None:
    with busy_core() as proc:
        time.sleep(0.6)
        assert proc.poll() is None  # still spinning
        assert _cpu_seconds(proc.pid) >= 0.2  # it burns CPU, it does not sleep
    assert proc.returncode is not None  # killed and reaped
    assert not Path(f"/proc/{proc.pid}").exists() or proc.poll() is not None
    with pytest.raises(RuntimeError), busy_core() as proc2:  # stopped when the block fails too
        raise RuntimeError("campaign failed")
    assert proc2.returncode is not None


def test_scale_cells_parse_and_default_to_the_nine_cells() -> None:
    from benchmarks.bench_scale import CELLS, parse_cells

    assert parse_cells("all") == parse_cells("") == parse_cells(None) == list(CELLS)
    assert len(CELLS) == 9 and CELLS[0] == (2, 1) and CELLS[-1] == (8, 16)
    assert parse_cells("8x16, 2X1,8x16") == [(8, 16), (2, 1)]
    for bad in ("8", "1x4", "9x1", "2x0", "axb", ","):
        with pytest.raises(ValueError):
            parse_cells(bad)


def test_a_scale_cell_is_the_base_campaign_with_n_venues_m_assets_and_the_total_rate() -> None:
    from arbsphere.rig.config import load_campaign
    from benchmarks.bench_scale import cell_campaign

    base = load_campaign(Path("campaigns/loopback-8x16.toml"))
    full = cell_campaign(8, 16, 4000.0, 6.0)
    # the 8 x 16 cell is the file itself at its own rate, shortened
    assert dataclasses.replace(full, source=base.source, name=base.name, duration_s=10.0) == base
    c = cell_campaign(4, 4, 4000.0, 6.0)
    assert [v.name for v in c.venues] == ["venue_a", "venue_b", "venue_c", "venue_d"]
    assert c.n_assets == 4 and c.rate_hz == 1000.0 and c.duration_s == 6.0
    assert c.coordinator == base.coordinator and c.security == base.security
    assert c.coordinator.coordination == "federated" and c.coordinator.protocol == "price"
    # 2 x 1: the default campaign's topology (UDP and serial pty) at 2 x 2,000
    pair = cell_campaign(2, 1, 4000.0, 6.0)
    loop = load_campaign(Path("campaigns/loopback.toml"))
    assert [(v.name, v.link) for v in pair.venues] == [(v.name, v.link) for v in loop.venues]
    assert pair.rate_hz == loop.rate_hz and pair.n_assets == 1


def _cell(n: int, m: int, verdict: str, t2t: float | None, trips: int) -> dict[str, Any]:
    return {
        "venues": n, "assets": m, "rate_hz_per_venue": 4000 / n, "complete": True,
        "tick_to_trade_us": {"p50": t2t, "p99": None if t2t is None else 4 * t2t},
        "round_trips_per_solve": {"p50": trips, "p99": 2 * trips, "count": 10},
        "queueing_us": {"p99": 2.5e6}, "verdict": verdict, "solves": 10,
        "superseded_ticks": 5, "stale_refusals": 0, "dropped": 0, "coordinator_cpu_pct": 50.0,
    }  # fmt: skip


def test_scale_table_puts_venues_in_rows_and_assets_in_columns() -> None:
    from benchmarks.bench_scale import cell_text, scale_table

    cells = [_cell(2, 1, "healthy", 12_300.0, 2), _cell(2, 16, "degraded", 45_600.0, 3),
             _cell(8, 16, "fell_behind", 2_100_000.0, 15)]  # fmt: skip
    out = {"total_rate_hz": 4000.0, "duration_s": 6.0, "cells": cells}
    assert cell_text(cells[0]) == "12.3/49.2 ms, rt 2/4, healthy"
    lines = scale_table(out)
    header, row2, row8 = lines[1], lines[2], lines[3]
    assert header.split("|")[1].strip() == "1" and header.split("|")[2].strip() == "16"
    assert row2.split("|")[0].strip() == "2" and "healthy" in row2.split("|")[1]
    assert "degraded" in row2.split("|")[2]
    assert row8.split("|")[1].strip() == "" and "2100/8400 ms, rt 15/30, fell_behind" in row8
    assert any(line.strip().startswith("8x16") and "2500" in line for line in lines)


def test_problem_stream_prices_each_venues_latest_quote_of_each_asset() -> None:
    from arbsphere.adapters.venue_adapter import VenueCosts
    from arbsphere.firmware_interfaces.emulators.market import MarketConfig, RoundRobinQuotes
    from benchmarks.bench_rounds import problem_stream

    n, m, solves, tps = 3, 4, 40, 3
    c, g, phi, lim = problem_stream(n, m, solves, tps)
    assert c.shape == g.shape == phi.shape == lim.shape == (solves, n, m)
    cfg = MarketConfig(seed=7, n_venues=n, n_assets=m, rate_hz=2000.0)
    costs = VenueCosts(0.5, 1e-4, 100)
    first = max(tps, m) - 1  # every asset quoted before the first solve
    for v in range(n):
        q = RoundRobinQuotes(cfg, v).next_batch(first + tps * solves)
        for s in (0, 1, 17, solves - 1):
            end = first + tps * s
            for a in range(m):
                k = max(i for i in range(end + 1) if q["asset_id"][i] == a)
                mid, _h, p, _liq, limit = costs.price(
                    int(q["bid_px"][k]), int(q["ask_px"][k]),
                    int(q["bid_size"][k]), int(q["ask_size"][k]),
                )  # fmt: skip
                assert (c[s, v, a], phi[s, v, a], lim[s, v, a]) == (mid, p, limit)
    assert (g == 1e-4).all() and (lim <= 100).all() and (phi > 0).all()
    assert len(np.unique(c[:, 0, 0])) > 1  # the market moves between solves
    with pytest.raises(ValueError):
        problem_stream(2, 1, 0)


def _load(roles: dict[str, float]) -> dict[str, Any]:
    return {"roles": {k: {"cpu_us_per_tick": v, "cpu_pct": 1.0} for k, v in roles.items()}}


def test_cpu_per_tick_is_compared_hop_by_hop() -> None:
    from benchmarks.bench_pipeline import cpu_ratios, cpu_table

    runs = [
        {"host_load": {
            "pipeline": _load({"coordinator": 90.0 * f, "venue_a": 60.0, "broker": 10.0,
                               "venue_a-device": 40.0, "orchestrator": 3.0}),
            "floor": _load({"relay-mid": 40.0, "venue_a": 40.0, "relay-out": 10.0,
                            "venue_a-device": 40.0, "orchestrator": 2.0}),
        }}
        for f in (1.0, 1.2)
    ]  # fmt: skip
    out = cpu_ratios(runs)["roles"]
    assert out["coordinator"]["hop"] == "relay-mid"
    assert out["coordinator"]["ratio"] == pytest.approx(99.0 / 40.0, abs=1e-3)
    assert out["coordinator"]["ratio_range"] == [2.25, 2.7]
    assert out["venue_a"]["hop"] == "relay-in venue_a" and out["venue_a"]["ratio"] == 1.5
    assert out["broker"]["hop"] == "relay-out" and out["broker"]["ratio"] == 1.0
    assert out["venue_a-device"]["hop"] is None and out["orchestrator"]["hop"] is None
    lines = cpu_table({"roles": out})
    assert any("coordinator" in line and "relay-mid" in line for line in lines)
    assert any("venue_a-device" in line and "(same)" in line for line in lines)


def test_overload_targets_busy_core_zero_stale_and_drops_overload_queueing_bound() -> None:
    from benchmarks.bench_overload import BUSY, arm_targets, summary_table

    fig = run_figures(_kpi())
    assert arm_targets("1x", fig) == []
    busy = arm_targets(BUSY, fig)
    assert [t["met"] for t in busy] == [False, False]  # 5 stale, 17 dropped
    clean = {**fig, "stale_refusals": 0, "dropped": 0}
    assert [t["met"] for t in arm_targets(BUSY, clean)] == [True, True]
    queue, drops = arm_targets("2x", fig)
    assert queue["measured"] == 250.0 and queue["limit"] == 100.0 and queue["met"] is False
    assert drops["measured"] == 17 and drops["met"] is True
    ok = arm_targets("4x", {**fig, "queueing_us": {"p99": 40_000.0}})[0]
    assert ok["met"] is True and ok["unit"] == "ms"
    lines = summary_table({"arms": [{"arm": BUSY, "rate_hz_per_venue": 2000.0, **fig}]})
    assert BUSY in lines[1] and "FELL BEHIND" in lines[1] and "45 %" in lines[1]
    assert lines[-1].endswith("100.0 ms")


def test_transport_and_federated_campaigns_take_the_asked_rate() -> None:
    from arbsphere.rig.config import load_campaign
    from benchmarks.bench_federated import campaigns
    from benchmarks.bench_transport import arm_campaigns

    base = load_campaign(Path("campaigns/loopback-central.toml"))
    arms = arm_campaigns(base, 3.0, 500.0)
    assert {c.rate_hz for c in arms.values()} == {500.0}
    assert {c.rate_hz for c in arm_campaigns(base, 3.0).values()} == {base.rate_hz}
    fed, cen = campaigns(10.0)
    assert (fed.coordinator.coordination, cen.coordinator.coordination) == ("federated", "central")
    assert fed.rate_hz == cen.rate_hz == 2000.0 and fed.duration_s == cen.duration_s == 10.0
    assert fed.seed == cen.seed and fed.warmup_s == cen.warmup_s

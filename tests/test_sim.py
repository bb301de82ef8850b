"""``arbsphere sim``: every scenario stays exactly delta-neutral, converges to the baseline
with a generous budget, keeps an out-of-market venue out of the trades, and writes a
verifiable result set; its decisions are the coordinator core's (a change to the core changes
them), in the receive loop's order, in either federated protocol."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from arbsphere.clock import RealtimeClock
from arbsphere.errors import ConfigError
from arbsphere.kpi.resultset import sha256_file
from arbsphere.kpi.verify import verify_result_set
from arbsphere.rig.cli import main
from arbsphere.rig.sim import SCENARIOS, SimPipeline, run_sim, scenario, simulate


@pytest.mark.parametrize("name", ["calm", "volatile", "outage", "flash-spread"])
def test_scenarios_stay_neutral_and_match_the_baseline(name: str) -> None:
    s = dataclasses.replace(SCENARIOS[name], seconds=4.0)
    rows, info = simulate(s)
    traded = rows["legs"] > 0
    assert traded.any()
    assert (rows["plan_net_max"][traded] == 0).all()  # every trade leaves the plan neutral
    assert info["counts"]["final_plan_net"] == 0
    assert rows["frozen_traded"].sum() == 0
    gaps = rows["objective_gap"][~np.isnan(rows["objective_gap"])]
    assert len(gaps) > 0.5 * len(rows) and float(np.percentile(gaps, 99)) <= 1e-6
    assert info["counts"]["write_offs"] == info["counts"]["shortfalls"]


def test_outage_freezes_the_venue_once_its_quotes_are_stale_and_the_others_hedge_around_it(
) -> None:  # fmt: skip
    s = dataclasses.replace(SCENARIOS["outage"], seconds=4.0)
    rows, info = simulate(s)
    frozen = rows["frozen"] > 0
    steps = len(rows) - info["counts"]["closing_steps"]
    lo, hi = round(0.3 * steps), round(0.6 * steps)
    # frozen once its last quote is older than stale_after_ms (judged on the quotes' stamps),
    # back at its first quote after the outage
    stale_steps = int(s.stale_after_ms * 1e6 // round(1e9 / s.rate_hz))
    assert stale_steps > 0
    assert np.array_equal(np.flatnonzero(frozen), np.arange(lo + stale_steps, hi))
    assert info["counts"]["freezes"] == 1
    assert (rows["legs"][frozen] > 0).any()  # the two live venues keep trading
    assert rows["frozen_traded"].sum() == 0 and (rows["plan_net_max"][rows["legs"] > 0] == 0).all()


@pytest.mark.parametrize("protocol", ["price", "admm"])
def test_same_scenario_same_decisions(protocol: str) -> None:
    s = dataclasses.replace(SCENARIOS["volatile"], seconds=2.0, protocol=protocol)
    a, info_a = simulate(s)
    b, info_b = simulate(s)
    assert info_a["counts"] == info_b["counts"]
    cols = [c for c in a.dtype.names or () if c != "solve_us"]
    for c in cols:
        np.testing.assert_array_equal(a[c], b[c], err_msg=c)


def test_sim_writes_a_verifiable_result_set(tmp_path: Path) -> None:
    run_dir = run_sim("wide", RealtimeClock(), tmp_path, seconds=0.5)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["campaign"] == "sim-wide" and manifest["scenario"]["n_assets"] == 16
    for rel, digest in manifest["files"].items():
        assert sha256_file(run_dir / rel) == digest, rel
    assert verify_result_set(run_dir).unlisted == ()
    kpi = json.loads((run_dir / "kpi.json").read_text())
    assert kpi["hedge"]["final_plan_net"] == 0 and kpi["sim"]["venues"] == 8
    trace = pd.read_parquet(run_dir / "trace.parquet")
    assert len(trace) == kpi["sim"]["steps"]
    report = (run_dir / "report.html").read_text()
    assert "Hedge" in report
    conv = report.index("Convergence against the centralized baseline")
    assert report[conv:].index("<img") < report[conv:].index("<h2", 5)


def test_cli_lists_scenarios_and_names_an_unknown_one(tmp_path: Path) -> None:
    assert main(["sim"]) == 0
    assert main(["sim", "stormy", "--results-dir", str(tmp_path)]) == 2
    with pytest.raises(ConfigError, match="unknown scenario 'stormy'; scenarios: calm"):
        run_sim("stormy", RealtimeClock(), tmp_path)


def test_steps_per_s_counts_the_stepping_not_the_gap_analysis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import arbsphere.rig.sim as sim_module

    real = sim_module._round_gaps

    def slow_round_gaps(*args: Any) -> Any:  # the per-round baselines, made slow on purpose
        time.sleep(0.5)
        return real(*args)

    monkeypatch.setattr(sim_module, "_round_gaps", slow_round_gaps)
    run_dir = run_sim("calm", RealtimeClock(), tmp_path, seconds=0.5)
    s = json.loads((run_dir / "kpi.json").read_text())["sim"]
    assert s["analysis_s"] >= 0.5 and s["wall_s"] >= s["stepping_s"] + 0.5
    # (stepping_s is kept to the µs in the JSON, steps_per_s to 0.1)
    assert s["steps_per_s"] == pytest.approx(s["steps"] / s["stepping_s"], rel=1e-3)


def test_the_trades_are_the_coordinator_cores_decisions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sim has no decision code of its own: with the core's neutralization made to refuse
    every solve, the core keeps the plan and the sim trades nothing."""
    import arbsphere.coordinator.federated_solve as federated_solve

    s = dataclasses.replace(SCENARIOS["volatile"], seconds=0.5)
    _, info = simulate(s)
    assert info["counts"]["legs"] > 0
    monkeypatch.setattr(federated_solve, "neutralize_around_fixed", lambda *args: -1)
    rows, info = simulate(s)
    c = info["counts"]
    assert c["legs"] == 0 and rows["legs"].sum() == 0
    assert c["neutralize_refused"] == c["solves"] == len(rows)


def test_each_wakeup_calls_the_core_in_the_receive_loops_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Per wake-up: the reports, then the quotes, in arrival order; then the write-offs,
    the solve and the delta. Every leg is reported back, every shortfall written off."""
    from arbsphere.coordinator.core import Coordinator

    calls: list[str] = []
    for name in ("on_quote", "on_report", "write_off", "solve", "emit_delta"):
        real = getattr(Coordinator, name)

        def spy(self: Coordinator, *args: Any, _real: Any = real, _name: str = name) -> Any:
            calls.append(_name)
            return _real(self, *args)

        monkeypatch.setattr(Coordinator, name, spy)
    s = dataclasses.replace(SCENARIOS["volatile"], seconds=1.0)
    rows, info = simulate(s)
    c = info["counts"]
    assert calls.count("on_report") == c["legs"] > 0
    assert calls.count("write_off") == c["write_offs"] == c["shortfalls"] > 0
    assert calls.count("solve") == calls.count("emit_delta") == c["solves"] == rows["solved"].sum()
    # split into wake-ups at each solve's delta: inputs first, then the decision
    order = {"on_report": 0, "on_quote": 1, "write_off": 2, "solve": 3, "emit_delta": 4}
    wakeup: list[int] = []
    for call in calls:
        wakeup.append(order[call])
        if call == "emit_delta":
            assert wakeup == sorted(wakeup), wakeup
            wakeup = []
    assert c["compensating_deltas"] > 0


def test_admm_protocol_runs_the_exchange_rounds() -> None:
    s = dataclasses.replace(SCENARIOS["flash-spread"], seconds=1.0, protocol="admm")
    sim = SimPipeline(s)
    assert sim.solve.rounds.protocol == "admm"
    rows, info = simulate(s)
    traded = rows["legs"] > 0
    assert traded.any() and (rows["plan_net_max"][traded] == 0).all()
    gaps = rows["objective_gap"][~np.isnan(rows["objective_gap"])]
    assert len(gaps) == len(rows) - info["counts"]["closing_steps"]
    assert float(np.percentile(gaps, 99)) <= 1e-6
    price_rows, _ = simulate(dataclasses.replace(s, protocol="price"))
    assert not np.array_equal(price_rows["rounds"], rows["rounds"])  # another protocol ran


def test_protocol_is_chosen_per_run_and_checked(tmp_path: Path) -> None:
    assert scenario("calm").protocol == "price"
    assert scenario("calm", protocol="admm").protocol == "admm"
    with pytest.raises(ConfigError, match="--protocol 'gossip'"):
        scenario("calm", protocol="gossip")
    run_dir = run_sim("calm", RealtimeClock(), tmp_path, seconds=0.2, protocol="admm")
    kpi = json.loads((run_dir / "kpi.json").read_text())
    assert "admm" in kpi["hedge"]["coordination"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["scenario"]["protocol"] == "admm"

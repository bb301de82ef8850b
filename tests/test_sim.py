"""``arbsphere sim``: every scenario stays exactly delta-neutral, converges to the baseline
with a generous budget, keeps an out-of-market venue out of the trades, and writes a
verifiable result set."""

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
from arbsphere.rig.sim import SCENARIOS, run_sim, simulate


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


def test_outage_freezes_the_venue_and_the_others_hedge_around_it() -> None:
    s = dataclasses.replace(SCENARIOS["outage"], seconds=4.0)
    rows, info = simulate(s)
    frozen = rows["frozen"] > 0
    steps = len(rows) - info["counts"]["closing_steps"]
    assert frozen.sum() == round(0.6 * steps) - round(0.3 * steps)
    assert (rows["legs"][frozen] > 0).any()  # the two live venues keep trading
    assert rows["frozen_traded"].sum() == 0 and (rows["plan_net_max"][rows["legs"] > 0] == 0).all()


def test_same_scenario_same_decisions() -> None:
    s = dataclasses.replace(SCENARIOS["volatile"], seconds=2.0)
    a, _ = simulate(s)
    b, _ = simulate(s)
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

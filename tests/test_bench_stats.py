"""The on/off benches' pooled percentile ratios and their bootstrap intervals, on samples
whose true ratio is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.bench_recorder import pooled_ratios


def _runs(rng: np.random.Generator, scale: float, n: int) -> list[dict[str, np.ndarray]]:
    return [
        {
            "tick_to_trade": scale * rng.lognormal(13.5, 0.6, n),  # ~0.7 ms, heavy tail
            "coordinator_path": scale * rng.lognormal(11.0, 0.5, 4 * n),
        }
        for _ in range(3)
    ]


def test_a_known_slowdown_is_recovered_and_bracketed() -> None:
    rng = np.random.default_rng(7)
    out = pooled_ratios(_runs(rng, 1.2, 2000), _runs(rng, 1.0, 2000))
    for key in ("tick_to_trade", "coordinator_path"):
        row = out[key]
        assert (
            row["samples_on"] == row["samples_off"] == (6000 if key == "tick_to_trade" else 24000)
        )
        for q in (50, 99):
            lo, hi = row[f"ratio_p{q}_ci90"]
            assert lo <= row[f"ratio_p{q}"] <= hi
            assert lo < 1.2 < hi or abs(row[f"ratio_p{q}"] - 1.2) < 0.03, (key, q, row)
            assert lo > 1.05, (key, q, row)  # a 20 % slowdown is told from none
            assert hi - lo < 0.25


def test_identical_arms_give_an_interval_around_one_and_more_samples_narrow_it() -> None:
    rng = np.random.default_rng(8)
    few = pooled_ratios(_runs(rng, 1.0, 300), _runs(rng, 1.0, 300))["tick_to_trade"]
    many = pooled_ratios(_runs(rng, 1.0, 6000), _runs(rng, 1.0, 6000))["tick_to_trade"]
    for row in (few, many):
        lo, hi = row["ratio_p99_ci90"]
        assert lo < 1.0 < hi, row
    width = [r["ratio_p99_ci90"][1] - r["ratio_p99_ci90"][0] for r in (few, many)]
    assert width[1] < 0.5 * width[0]


def _drifting_runs(
    rng: np.random.Generator, drift: list[float], n: int
) -> list[dict[str, np.ndarray]]:
    return [
        {
            "tick_to_trade": d * rng.lognormal(13.5, 0.6, n),
            "coordinator_path": d * rng.lognormal(11.0, 0.5, 4 * n),
        }
        for d in drift
    ]


def test_drift_between_runs_widens_the_run_level_interval_only() -> None:
    # The arms are identical but the host drifts between runs: each run is 6-12 % slower or
    # faster than its pair's other run. The sample-level interval only says how well the
    # pooled samples pin their own percentile, so it excludes the true ratio (1.0); the
    # pair-level one contains it.
    rng = np.random.default_rng(11)
    on = _drifting_runs(rng, [1.10, 0.95, 1.12], 4000)
    off = _drifting_runs(rng, [1.00, 1.05, 1.00], 4000)
    row = pooled_ratios(on, off)["coordinator_path"]
    lo, hi = row["ratio_p50_ci90"]
    assert not lo <= 1.0 <= hi, row
    lo_r, hi_r = row["ratio_p50_ci90_runs"]
    assert lo_r <= 1.0 <= hi_r and lo_r <= lo and hi <= hi_r, row


def test_the_run_level_interval_still_tells_a_real_slowdown_without_drift() -> None:
    rng = np.random.default_rng(12)
    out = pooled_ratios(_runs(rng, 1.2, 2000), _runs(rng, 1.0, 2000))
    for key in ("tick_to_trade", "coordinator_path"):
        lo, hi = out[key]["ratio_p50_ci90_runs"]
        assert 1.05 < lo < 1.2 < hi < 1.35, (key, out[key])


def test_transport_arms_differ_only_in_what_they_compare() -> None:
    """The transport bench's three arms: the ``curve`` comparison changes the transport only,
    ``tags`` the tags only; everything else (rate, seed, duration, ledger) is the same."""
    import dataclasses
    from pathlib import Path

    from arbsphere.rig.config import load_campaign
    from benchmarks.bench_transport import COMPARISONS, arm_campaigns

    base = load_campaign(Path("campaigns/loopback-central.toml"))
    arms = arm_campaigns(base, 3.0)
    assert (arms["curve_tags"].security.transport, arms["curve_tags"].security.tags) == (
        "curve",
        True,
    )
    assert (arms["plaintext_tags"].security.transport, arms["plaintext_tags"].security.tags) == (
        "plaintext",
        True,
    )
    assert (arms["plaintext"].security.transport, arms["plaintext"].security.tags) == (
        "plaintext",
        False,
    )
    changed = {"curve": {"transport"}, "tags": {"tags"}, "all": {"transport", "tags"}}
    for name, (on, off) in COMPARISONS.items():
        a, b = arms[on], arms[off]
        assert dataclasses.replace(a, security=b.security) == b, name
        fields = {
            f.name
            for f in dataclasses.fields(a.security)
            if getattr(a.security, f.name) != getattr(b.security, f.name)
        }
        assert fields == changed[name]
    assert all(c.duration_s == 3.0 and c.seed == base.seed for c in arms.values())


def test_transport_rotation_puts_each_arm_in_each_position_equally_often() -> None:
    from benchmarks.bench_transport import ARMS, rotation

    arms = list(ARMS)
    orders = [rotation(k, arms) for k in range(2 * len(arms))]
    assert all(sorted(o) == sorted(arms) for o in orders)
    for pos in range(len(arms)):
        counts = {arm: sum(o[pos] == arm for o in orders) for arm in arms}
        assert set(counts.values()) == {2}, (pos, counts)
    assert orders[0] == arms and orders[1] == arms[1:] + arms[:1]


def test_pipeline_bench_pools_only_answered_ticks_of_the_measured_window(tmp_path: Path) -> None:
    from benchmarks.bench_pipeline import relay_samples

    rows = np.zeros(6, [("intended_ns", "<i8"), ("device_rx_ns", "<i8")])
    rows["intended_ns"] = [100, 900, 1_000, 2_000, 3_000, 4_000]  # the window starts at 1,000
    rows["device_rx_ns"] = [600, 1_500, 1_400, 0, 3_700, 4_250]  # 2,000: never answered
    np.save(tmp_path / "relay-out.trace.npy", rows)
    trace, samples = relay_samples(tmp_path, 1_000)
    assert len(trace) == 4 and samples.tolist() == [400, 700, 250]
    # a pipeline 2x the floor in every pair is recovered, its pair-level interval around 2
    rng = np.random.default_rng(5)
    floors = [rng.lognormal(np.log(500e3), 0.3, 900) for _ in range(3)]
    pooled = pooled_ratios(
        [{"tick_to_trade": 2 * f} for f in floors],
        [{"tick_to_trade": f} for f in floors],
        keys=("tick_to_trade",),
    )
    t = pooled["tick_to_trade"]
    assert set(pooled) == {"tick_to_trade"} and t["ratio_p50"] == 2.0
    lo, hi = t["ratio_p50_ci90_runs"]
    assert 1.9 < lo <= 2.0 <= hi < 2.1


def test_unsecured_rate_arm_turns_off_exactly_security_and_journal() -> None:
    import dataclasses

    from arbsphere.rig.config import load_campaign
    from benchmarks.bench_pipeline import arm_campaign, rate_duration

    base = load_campaign(Path("campaigns/loopback-central.toml"))
    assert base.security.transport == "curve" and base.security.tags and base.journal.enabled
    assert arm_campaign(base, "default") == base
    arm = arm_campaign(base, "unsecured")
    assert arm.security.transport == "plaintext" and not arm.security.tags
    assert not arm.journal.enabled
    # nothing else differs: the same market, rate, venues, broker and coordinator
    changed = {
        f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(arm, f.name)
    }
    assert changed == {"security", "journal"}
    assert dataclasses.replace(arm.security, transport="curve", tags=True) == base.security
    assert dataclasses.replace(arm.journal, enabled=True) == base.journal
    with pytest.raises(ValueError, match="unknown by-rate arm 'bogus'"):
        arm_campaign(base, "bogus")
    # low rates run longer (about as many trades as the reference rate), high ones do not
    assert rate_duration(10.0, 250) == 20.0
    assert rate_duration(10.0, 500) == rate_duration(10.0, 2000) == 10.0


def test_rates_table_names_each_arm_and_what_it_runs() -> None:
    from benchmarks.bench_pipeline import RATE_ARMS, rates_table

    row = {
        "rate_hz_per_venue": 250, "pipeline_p50_us": 900.0, "floor_p50_us": 600.0,
        "ratio_p50": 1.5, "ratio_p99": 1.2, "trades": 400,
        "rig_busy_pct": {"pipeline": 19.0, "floor": None},
    }  # fmt: skip
    out = {
        "rates": [{**row, "arm": "default"}, {**row, "arm": "unsecured", "ratio_p50": 1.25}],
        "arms": dict(RATE_ARMS),
    }
    lines = rates_table(out)
    assert "default" in lines[1] and "1.500" in lines[1] and "19 % / -" in lines[1]
    assert "unsecured" in lines[2] and "1.250" in lines[2]
    assert any(line.strip().startswith("unsecured: plaintext") for line in lines)

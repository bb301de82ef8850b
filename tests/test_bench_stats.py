"""The on/off benches' pooled percentile ratios and their bootstrap intervals, on samples
whose true ratio is known."""

from __future__ import annotations

import numpy as np

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

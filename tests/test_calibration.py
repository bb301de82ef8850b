"""Self-calibration end to end on a short run: injected clock offsets, drifts, a step and a
one-way delay on real emulated devices and links, recovered within the issue's limits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from arbsphere.clock import RealtimeClock
from arbsphere.clocksync import HISTORY_DTYPE
from arbsphere.kpi.verify import verify_result_set
from arbsphere.rig.calibration import (
    CalibrationLine,
    clock_lines,
    delay_lines,
    link_asymmetry,
    run_calibration,
)
from arbsphere.rig.config import CalibrationLimits, ClockConfig, load_campaign

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_calibration_recovers_injected_errors_within_limits(tmp_path: Path) -> None:
    # 5 s warm-up + 7 s measured: the drift windows still exceed 10 s (exchanges start before
    # the traffic) and venue_b's step at 11 s falls inside the measured window.
    campaign = dataclasses.replace(
        load_campaign(ROOT / "campaigns" / "calibration.toml"), duration_s=7.0, rate_hz=300.0
    )
    result = run_calibration(campaign, RealtimeClock(), results_dir=tmp_path)
    assert result.complete, result.reason
    # Every line within the limit — except where the link's own asymmetry (measured
    # from the injected truth over the same exchanges) is what exceeds it: a two-way exchange
    # cannot see that part, so no estimator can remove it. On this kind of VM a pty's
    # asymmetry wanders by several µs over seconds (a bare pty pair shows it with no rig), so
    # the serial device's offset and drift carry it; the rig's share must still be in limit.
    failed = [line for line in result.lines if line.verdict == "fail"]
    assert not failed, failed
    kinds = {(line.quantity.split(" ")[0], line.device) for line in result.lines}
    for dev in ("venue_a-device", "venue_b-device", "broker-device"):
        assert ("offset", dev) in kinds and ("drift", dev) in kinds
    assert ("step", "venue_b-device") in kinds and ("one-way", "venue_a-device") in kinds
    saved = json.loads((result.run_dir / "calibration.json").read_text())
    assert saved["passed"] is True and len(saved["lines"]) == len(result.lines)
    assert saved["link_limited_lines"] == sum(
        line.verdict == "link-limited" for line in result.lines
    )
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert "injected/kpi.json" in manifest["files"] and "baseline/kpi.json" in manifest["files"]
    assert manifest["kind"] == "calibration" and manifest["passed"] is True
    assert verify_result_set(result.run_dir).unlisted == ()  # every file listed, hashes match


def _history(offset_err_ns: float, drift_ppm: float, n: int = 400) -> np.ndarray:
    h = np.zeros(n, HISTORY_DTYPE)
    h["time_ns"] = 10**18 + np.arange(n) * 31_250_000
    h["state"] = 2
    h["offset_ns"] = 1_000_000 + drift_ppm * 1e-6 * (h["time_ns"] - 10**18) + offset_err_ns
    h["drift_ppm"] = drift_ppm
    return h


def test_clock_lines_judge_against_the_injected_clock() -> None:
    limits = CalibrationLimits()
    clock = ClockConfig(offset_ns=1_000_000, drift_ppm=50.0)
    good = clock_lines("d", clock, _history(3_000, 50.0), 10**18, 10**18, limits)
    assert [line.passed for line in good] == [True, True]
    assert good[0].link_asymmetry is None  # no lucky exchange: nothing to say of the link
    assert good[0].error == pytest.approx(3.0, abs=0.01)  # µs (DeviceClock truncates to ns)
    bad: list[CalibrationLine] = clock_lines(
        "d", clock, _history(12_000, 50.7), 10**18, 10**18, limits
    )
    assert [line.passed for line in bad] == [False, False]
    never = clock_lines("d", clock, None, 10**18, 10**18, limits)
    assert never[0].passed is False and "never synchronised" in never[0].note


def test_link_asymmetry_is_the_truth_the_exchange_cannot_see() -> None:
    h = _history(0.0, 50.0)
    truth = h["offset_ns"].copy()
    t_s = (h["time_ns"] - h["time_ns"][0]) / 1e9
    # the link: 4 µs of asymmetry (half of it is the sample error) rising 1 µs per second
    h["sample_offset_ns"] = truth + 4_000 + 1_000 * t_s
    h["lucky"] = True
    h["lucky"][::5] = False
    h["sample_offset_ns"][::5] += 90_000  # unlucky exchanges: queued, never fitted
    asym = link_asymmetry(h, truth)
    assert asym.trend_ppm(len(h) - 1, 10_000_000_000) == pytest.approx(1.0, abs=1e-6)
    # the level at each exchange is the median of the last second's usable ones
    assert asym.level_ns[100] == pytest.approx(4_000 + 1_000 * t_s[100] - 500, abs=40)
    assert asym.trend_ppm(1, 10_000_000_000) is None  # too few exchanges for a slope


def test_clock_lines_report_the_links_share_of_the_error() -> None:
    limits = CalibrationLimits()
    clock = ClockConfig(offset_ns=1_000_000, drift_ppm=50.0)
    h = _history(0.0, 50.0)
    t_s = (h["time_ns"] - h["time_ns"][0]) / 1e9
    h["lucky"] = True
    h["sample_offset_ns"] = h["offset_ns"] + 600 * t_s  # the link drifts 0.6 ppm ...
    h["drift_ppm"] = 50.6  # ... and the estimate follows it, as any two-way estimate must
    offset, drift = clock_lines("d", clock, h, 10**18, 10**18, limits)
    assert drift.passed is False and drift.error == pytest.approx(0.6, abs=1e-6)
    assert drift.link_asymmetry == pytest.approx(0.6, abs=1e-6)
    assert drift.verdict == "link-limited"  # 0.6 ppm over 0.5, all of it the link's
    assert dataclasses.replace(drift, link_asymmetry=0.05).verdict == "fail"
    assert dataclasses.replace(drift, error=0.3, passed=True).verdict == "pass"
    assert "link asymmetry trend +0.60 ppm" in drift.note
    assert offset.link_asymmetry is not None and offset.link_asymmetry > 0


def test_delay_lines_judge_against_the_delay_the_emulator_applied() -> None:
    limits = CalibrationLimits()
    wire, path = delay_lines("d", 500.0, 530.0, 22.0, None, None, limits)[0], None
    assert wire.error == pytest.approx(8.0) and wire.passed is True and path is None
    late = delay_lines("d", 500.0, 530.0, 22.0, None, None, limits, release_late_us=6.0)
    assert late[0].error == pytest.approx(2.0) and "applied 506.0 us" in late[0].note
    h = _history(0.0, 0.0)
    b = h.copy()
    h["path_delay_ns"] = 513_000.0
    b["path_delay_ns"] = 10_000.0
    both = delay_lines("d", 500.0, 530.0, 22.0, h, b, limits, release_late_us=6.0)
    assert both[1].recovered == pytest.approx(503.0) and both[1].error == pytest.approx(0.0)
    off = delay_lines("d", 500.0, 545.0, 22.0, h, b, limits)
    assert off[0].passed is False and off[0].error == pytest.approx(23.0)

"""The rig's own CI gates a real loopback run through its pytest plugin (no conftest.py).

One short run (3 s measured at 1,000 ticks/s per venue) serves every test here: the plugin
runs ``campaigns/loopback.toml`` once for the session (``arb_campaign`` marker, overrides as
keywords). The gates are ones that hold on any host that completes the run — no link errors on
loopback, a solve's median far under a second — never "latency below X on this host"; the
clock-bound rules are checked against the values the test reads back.
"""

from __future__ import annotations

import json

import pytest

from arbsphere.kpi.resultset import sha256_file
from arbsphere.kpi.resultset_view import ResultSetView
from arbsphere.rig.gates import Gate, evaluate

pytestmark = [
    pytest.mark.slow,
    pytest.mark.arb_campaign(
        "campaigns/loopback.toml", duration_s=3.0, warmup_s=2.0, rate_hz=1000.0
    ),
]


@pytest.mark.arb_gate("loss", "crc_errors", "==", 0)
@pytest.mark.arb_gate("loss", "decode_errors", "==", 0)
@pytest.mark.arb_gate("loss", "gaps", "==", 0)
@pytest.mark.arb_gate("solve", "p50", "<=", "1s")
def test_loopback_slo() -> None:
    """Each gate above is its own test case (one JUnit row each)."""


def test_gates_judged_against_the_values_read_back(arb_run: ResultSetView) -> None:
    assert arb_run.complete, arb_run.incomplete_reason
    raw = json.loads((arb_run.run_dir / "kpi.json").read_text())
    stage = arb_run.stage("solve")
    assert stage.count == raw["stages"]["solve"]["count"] > 0
    p99 = stage.value_us("p99")
    assert p99 is not None and p99 == raw["stages"]["solve"]["p99"]  # stages are in µs
    bound = stage.uncertainty_us
    assert evaluate(Gate("solve", "p99", "<=", f"{p99 + bound + 1}us"), arb_run).outcome == "pass"
    assert evaluate(Gate("solve", "p99", "<=", f"{p99 - bound - 1}us"), arb_run).outcome == "fail"
    assert arb_run.manifest_sha256 == sha256_file(arb_run.run_dir / "manifest.json")
    assert set(arb_run.timestamp_sources) == set(arb_run.manifest["timestamps"])
    # loopback (lo) never gives hardware receive stamps
    assert arb_run.capability("hardware_rx_timestamps")[0] is False

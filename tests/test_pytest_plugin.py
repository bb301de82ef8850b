"""The pytest plugin (``arbsphere.rig.pytest_plugin``), driven by pytest's own ``pytester``.

Every run here gates a fabricated result set (a ``kpi.json`` and ``manifest.json`` written by
the test, passed with ``--arb-run-dir``), so outcomes are fixed by the numbers written, never by
this host's speed; the hardware skip needs no run at all. The real gate on a loopback run is
``tests/test_plugin_loopback.py``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from arbsphere.errors import ConfigError
from arbsphere.kpi.resultset_view import ResultSetView
from arbsphere.rig.gates import Gate, evaluate, to_us

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]


def _stage(p50: float, p99: float, bound: float) -> dict[str, Any]:
    return {
        "unit": "us", "count": 1000, "p50": p50, "p90": p99, "p99": p99, "p999": p99,
        "p9999": p99, "max": p99, "uncertainty_us": bound, "synchronised": True,
    }  # fmt: skip


KPI = {
    "tick_to_trade": _stage(800.0, 1900.0, 150.0),
    "stages": {"solve": _stage(400.0, 1500.0, 0.0), "order_wire": _stage(20.0, 50.0, 4.0)},
    "loss": {"gaps": 0, "dropped": 3},
    "health": {"verdict": "healthy"},
}
MANIFEST = {
    "status": "complete",
    "incomplete_reason": None,
    "git": {"commit": "0123abcd", "dirty": False},
    "timestamps": {"venue_a": {"rx": "kernel-software", "tx": "kernel-software"}},
    "devices": {
        "venue_a": {"link": "udp", "device": "emulator", "timestamping": {"hardware_rx": False}},
        "venue_b": {"link": "serial", "settings": {"in_effect": {"low_latency": True}}},
    },
}

GATES_FILE = """
import pytest

@pytest.mark.arb_gate("tick_to_trade", "p50", "<=", "2ms")
@pytest.mark.arb_gate("solve", "p99", "<=", "1ms")
@pytest.mark.arb_gate("tick_to_trade", "p99", "<=", "2ms")
@pytest.mark.arb_gate("solve", "p99", "<=", "1.2ms", marginal="2ms")
@pytest.mark.arb_gate("loss", "gaps", "==", 0)
def test_slo():
    pass

@pytest.mark.arb_requires("hardware_rx_timestamps")
def test_needs_hw_stamps(arb_run):
    pass

@pytest.mark.arb_requires("serial_low_latency")
def test_needs_low_latency(arb_run):
    assert arb_run.stage("solve").value_us("p99") == 1500.0
"""


def _result_set(where: Path, **manifest: Any) -> Path:
    where.mkdir(parents=True)
    (where / "kpi.json").write_text(json.dumps(KPI))
    (where / "manifest.json").write_text(json.dumps({**MANIFEST, **manifest}))
    return where


def _rows(junit: Path) -> dict[str, ET.Element]:
    tree = ET.parse(junit)
    return {case.attrib["name"]: case for case in tree.iter("testcase")}


def test_one_junit_row_per_gate_with_its_outcome(pytester: pytest.Pytester) -> None:
    run_dir = _result_set(pytester.path / "rs")
    pytester.makepyfile(test_gates=GATES_FILE)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("--arb-run-dir", str(run_dir), f"--junitxml={junit}", "-rs")
    result.assert_outcomes(passed=4, failed=1, skipped=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*gate solve.p99<=1ms failed: solve.p99 = 1500 µs ±0 µs*limit <= 1000 µs*",
            "*arb_gate marginal: solve.p99<=1.2ms~2ms*",
            "*inconclusive: gate tick_to_trade.p99<=2ms: *1900 µs ±150 µs*",
            "*capability missing: hardware_rx_timestamps: lacking on venue_a*",
        ]
    )
    rows = _rows(junit)
    assert sorted(rows) == sorted(
        [
            "test_slo[rs-tick_to_trade.p50<=2ms]",
            "test_slo[rs-solve.p99<=1ms]",
            "test_slo[rs-tick_to_trade.p99<=2ms]",
            "test_slo[rs-solve.p99<=1.2ms~2ms]",
            "test_slo[rs-loss.gaps==0]",
            "test_needs_hw_stamps[rs]",
            "test_needs_low_latency[rs]",
        ]
    )
    props = {
        name: {p.attrib["name"]: p.attrib["value"] for p in case.iter("property")}
        for name, case in rows.items()
    }
    assert props["test_slo[rs-solve.p99<=1.2ms~2ms]"]["arb_outcome"] == "marginal"
    assert props["test_slo[rs-tick_to_trade.p99<=2ms]"]["arb_outcome"] == "inconclusive"
    assert props["test_slo[rs-tick_to_trade.p99<=2ms]"]["arb_clock_bound_us"] == "150.0"
    assert rows["test_slo[rs-solve.p99<=1ms]"].find("failure") is not None
    suite = {
        p.attrib["name"]: p.attrib["value"]
        for p in ET.parse(junit).getroot().find("testsuite").find("properties")  # type: ignore[union-attr]
    }
    assert suite["arb.rs.manifest_sha256"] == ResultSetView.load(run_dir).manifest_sha256
    assert suite["arb.rs.git_revision"] == "0123abcd"
    assert suite["arb.rs.timestamps.venue_a"] == "rx=kernel-software tx=kernel-software"


def test_inconclusive_can_fail_and_incomplete_sets_fail(pytester: pytest.Pytester) -> None:
    run_dir = _result_set(pytester.path / "rs")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.arb_gate("tick_to_trade", "p99", "<=", "2ms")
        def test_slo():
            pass
        """
    )
    result = pytester.runpytest("--arb-run-dir", str(run_dir), "--arb-inconclusive", "fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*inconclusive: gate tick_to_trade.p99<=2ms*"])
    cut = _result_set(pytester.path / "cut", status="incomplete", incomplete_reason="a death")
    result = pytester.runpytest("--arb-run-dir", str(cut))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*result set incomplete: a death*"])


def test_hardware_campaign_skipped_unless_asked_for(pytester: pytest.Pytester) -> None:
    text = (ROOT / "campaigns" / "loopback.toml").read_text()
    text = text.replace('device = "emulator"', 'device = "hardware"', 1)
    text = text.replace("bind_port = 0 ", "bind_port = 45999 ", 1)
    (pytester.path / "hw.toml").write_text(text)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.arb_gate("tick_to_trade", "p99", "<=", "2ms")
        def test_on_hardware():
            pass

        def test_without_campaign(arb_run):
            pass
        """
    )
    result = pytester.runpytest("--arb-campaign", "hw.toml", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        ["*hw.toml drives hardware devices (venue_a): run with --arb-backend hardware to enable*"]
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*no ArbSphere result set: pass --arb-campaign FILE*"])


def test_plugin_is_registered_through_the_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*ArbSphere Rig latency gates*", "*--arb-backend=*"])


def test_gate_rules_at_the_edges(tmp_path: Path) -> None:
    rs = ResultSetView.load(_result_set(tmp_path / "rs"))
    assert to_us("2ms", "us") == 2000.0 and to_us("800ns", "us") == 0.8 and to_us(3, "ms") == 3e3
    # order_wire p99 = 50 ±4 µs: 46 and 54 are the bound's edges (inconclusive), beyond decides
    outcomes = {
        limit: evaluate(Gate("order_wire", "p99", "<=", limit), rs).outcome
        for limit in ("45us", "46us", "54us", "55us")
    }
    assert outcomes == {"45us": "fail", "46us": "inconclusive", "54us": "inconclusive",
                        "55us": "pass"}  # fmt: skip
    # with a marginal band the marginal edge decides; within the bound of the limit: flagged
    assert evaluate(Gate("order_wire", "p99", "<=", "52us", marginal="80us"), rs).outcome == (
        "marginal"
    )
    assert evaluate(Gate("loss", "dropped", "<=", 0), rs).outcome == "fail"
    assert evaluate(Gate("health", "verdict", "==", "healthy"), rs).outcome == "pass"
    with pytest.raises(ConfigError, match="marginal must lie at or above"):
        evaluate(Gate("order_wire", "p99", "<=", "52us", marginal="10us"), rs)
    with pytest.raises(ConfigError, match="is not a duration"):
        evaluate(Gate("order_wire", "p99", "<=", "2 parsecs"), rs)
    with pytest.raises(ConfigError, match="unknown capability"):
        rs.capability("warp_drive")

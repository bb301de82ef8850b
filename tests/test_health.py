"""The run's health verdict (kpi/health.py): did the pipeline keep up? From synthetic stats and
KPIs — healthy, degraded, fell behind — to the terminal's line and report.html's section."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from test_report import _fixture

from arbsphere.kpi.health import (
    health_kpi,
    health_of_result_set,
    queueing_bound_us,
)
from arbsphere.kpi.report import render_report
from arbsphere.rig import cli, console
from arbsphere.rig.campaign_run import CampaignResult

LOOPBACK = Path(__file__).resolve().parents[1] / "campaigns" / "loopback.toml"
FINDINGS = [
    "stale_refusals", "dropped", "queueing_delay", "link_errors", "adapter_dropped",
    "coordinator_discarded", "refused", "aborted_solves", "aborted_signal_epochs",
    "unacked_orders", "superseded_ticks", "plan_replica",
]  # fmt: skip


def _stage(p50: float, p99: float, mx: float, count: int = 6000) -> dict[str, Any]:
    return {"unit": "us", "count": count, "p50": p50, "p90": p99, "p99": p99, "p999": mx, "max": mx}


def _healthy() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A run that kept up: nothing stale, nothing dropped, queueing p99 3.1 ms."""
    kpi: dict[str, Any] = {
        "tick_to_trade": _stage(1100.0, 4200.0, 9000.0, 300),
        "stages": {"adapter_to_coordinator": _stage(310.0, 3100.0, 12_000.0)},
        "hedge": {
            "ticks_solved": 2000, "superseded_ticks": 4000, "aborted_solves": 0, "deltas": 40,
            "replicas": {"broker": {"divergences": 2, "repaired": 2, "consistent_at_stop": True}},
        },
        "throughput": {"ticks_sent": 12_000, "ticks_in": 6000, "warmup_ticks": 6000},
        "loss": {"gaps": 0, "crc_errors": 0, "decode_errors": 0, "dropped": 0,
                 "unacked_orders": 0},
        "signals_aggregate": {"epochs_complete": 10, "epochs_aborted": 0},
    }  # fmt: skip
    sec = {"messages": {"pipeline": {"accepted": 12_000, "refused": {}}}}
    stats: dict[str, dict[str, Any]] = {
        "coordinator": {
            "role": "coordinator",
            "counts": {"stale_messages": 0, "unknown_messages": 0, "snapshots_sent": 2},
            "security": copy.deepcopy(sec),
        },
        "broker": {"role": "broker_adapter", "security": copy.deepcopy(sec)},
        "venue_a": {"role": "venue_adapter", "adapter": {"stale_dropped": 0}},
        "venue_b": {"role": "venue_adapter", "adapter": {"stale_dropped": 0}},
        "venue_a-device": {"ticks_sent": 6000},  # devices carry no security section
    }
    return kpi, stats


def _fell_behind() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """results/loopback/20261207T175043Z in small: ticks queued ~2 s in front of the
    coordinator, the skew window refused the older ones, and they count as dropped."""
    kpi, stats = _healthy()
    kpi["stages"]["adapter_to_coordinator"] = _stage(1_987_051.5, 1_999_634.4, 2_001_731.6)
    kpi["loss"]["dropped"] = 34_404
    kpi["signals_aggregate"]["epochs_aborted"] = 3
    stats["coordinator"]["security"]["messages"]["pipeline"]["refused"] = {"skew_past": 34_445}
    stats["broker"]["security"]["messages"]["pipeline"]["refused"] = {"skew_past": 50}
    return kpi, stats


def _by_name(health: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in health["findings"]}


def test_queueing_bound_is_ten_budgets_with_a_50_ms_floor() -> None:
    assert queueing_bound_us(10_000.0) == 100_000.0  # loopback.toml: 10 ms budget
    assert queueing_bound_us(5_000.0) == 50_000.0  # loopback-central.toml
    assert queueing_bound_us(200.0) == 50_000.0
    assert queueing_bound_us(None) == 50_000.0


def test_a_run_that_kept_up_is_healthy_with_every_finding_listed() -> None:
    kpi, stats = _healthy()
    health = health_kpi(kpi, stats, budget_us=200.0, max_past_ms=2000.0)
    assert health["verdict"] == "healthy" and health["reasons"] == []
    assert health["summary"] == "ok (0 stale, 0 dropped, queueing p99 3.1 ms <= 50 ms)"
    assert health["queueing_bound_us"] == 50_000.0
    found = _by_name(health)
    assert [f["name"] for f in health["findings"]] == FINDINGS
    assert all(f["ok"] for f in health["findings"])
    assert found["queueing_delay"]["value"] == 3100.0 and found["queueing_delay"]["limit"] == 50_000
    assert found["queueing_delay"]["detail"]["p50"] == 310.0
    assert found["stale_refusals"]["value"] == 0 and found["dropped"]["value"] == 0
    # informational, never a failure: batching and replica repairs
    assert found["superseded_ticks"]["severity"] == "info"
    assert found["superseded_ticks"]["value"] == pytest.approx(4000 / 6000, abs=1e-4)
    assert found["plan_replica"]["severity"] == "info" and found["plan_replica"]["value"] == 2
    assert found["plan_replica"]["detail"]["snapshots_sent"] == 2
    json.dumps(health)  # goes into kpi.json as is


def test_a_run_that_fell_behind_names_stale_refusals_drops_and_the_queueing_delay() -> None:
    kpi, stats = _fell_behind()
    health = health_kpi(kpi, stats, budget_us=10_000.0, max_past_ms=2000.0)
    assert health["verdict"] == "fell_behind"
    assert health["summary"] == (
        "FELL BEHIND — 34,495 messages refused as stale (skew_past), 34,404 ticks dropped, "
        "queueing delay p50 1.99 s (bound 100 ms), 3 signal epochs aborted"
    )
    reasons = {r["name"]: r for r in health["reasons"]}
    assert list(reasons) == ["stale_refusals", "dropped", "queueing_delay",
                             "aborted_signal_epochs"]  # fmt: skip
    assert (reasons["stale_refusals"]["value"], reasons["stale_refusals"]["limit"]) == (34_495, 0)
    assert reasons["stale_refusals"]["severity"] == "fell_behind"
    assert (reasons["dropped"]["value"], reasons["dropped"]["severity"]) == (34_404, "degraded")
    q = reasons["queueing_delay"]
    assert (q["value"], q["limit"], q["severity"]) == (1_987_051.5, 100_000.0, "fell_behind")
    stale = _by_name(health)["stale_refusals"]["detail"]
    assert stale["by_reason"] == {"skew_past": 34_495}
    assert stale["by_role"] == {"broker": 50, "coordinator": 34_445}


def test_stale_refusals_alone_mean_the_run_fell_behind() -> None:
    kpi, stats = _healthy()
    stats["coordinator"]["security"]["messages"]["pipeline"]["refused"] = {"skew_past": 1}
    health = health_kpi(kpi, stats, budget_us=200.0)
    assert health["verdict"] == "fell_behind"
    assert [r["name"] for r in health["reasons"]] == ["stale_refusals"]


def test_drops_or_a_queueing_tail_over_the_bound_degrade_a_run() -> None:
    kpi, stats = _healthy()
    kpi["stages"]["adapter_to_coordinator"] = _stage(900.0, 61_000.0, 80_000.0)
    health = health_kpi(kpi, stats, budget_us=200.0)
    assert health["verdict"] == "degraded"
    assert health["summary"] == "DEGRADED — queueing delay p99 61 ms (bound 50 ms)"
    (q,) = health["reasons"]
    assert (q["name"], q["value"], q["limit"]) == ("queueing_delay", 61_000.0, 50_000.0)
    # the same tail within a federated campaign's larger bound (10 x 10 ms) is healthy
    assert health_kpi(kpi, stats, budget_us=10_000.0)["verdict"] == "healthy"

    counters = [
        ("dropped", lambda k, s: k["loss"].update(dropped=5), 5),
        ("link_errors", lambda k, s: k["loss"].update(gaps=2, crc_errors=1), 3),
        ("adapter_dropped", lambda k, s: s["venue_b"]["adapter"].update(stale_dropped=4), 4),
        ("coordinator_discarded",
         lambda k, s: s["coordinator"]["counts"].update(stale_messages=6), 6),
        ("refused", lambda k, s: s["broker"]["security"]["messages"]["pipeline"].update(
            refused={"bad_tag": 7}), 7),
        ("aborted_solves", lambda k, s: k["hedge"].update(aborted_solves=8), 8),
        ("aborted_signal_epochs",
         lambda k, s: k["signals_aggregate"].update(epochs_aborted=9), 9),
        ("unacked_orders", lambda k, s: k["loss"].update(unacked_orders=10), 10),
    ]  # fmt: skip
    for name, spoil, value in counters:
        kpi, stats = _healthy()
        spoil(kpi, stats)
        health = health_kpi(kpi, stats, budget_us=200.0)
        assert health["verdict"] == "degraded", name
        assert [(r["name"], r["value"], r["limit"]) for r in health["reasons"]] == [
            (name, value, 0)
        ], name
        assert health["summary"].startswith("DEGRADED — "), name


def test_a_flood_of_superseded_ticks_or_replica_repairs_is_no_failure() -> None:
    kpi, stats = _healthy()
    kpi["hedge"]["superseded_ticks"] = 5990
    kpi["hedge"]["replicas"]["broker"].update(divergences=50, repaired=50)
    stats["coordinator"]["counts"]["snapshots_sent"] = 50
    assert health_kpi(kpi, stats, budget_us=200.0)["verdict"] == "healthy"


def _console() -> Console:
    return Console(file=io.StringIO(), width=200, force_terminal=True, color_system="standard")


def _printed(markup: str | None) -> tuple[str, str]:
    """(plain text, text with ANSI colour codes) of one printed line of markup."""
    assert markup is not None
    con = _console()
    con.print(markup, highlight=False)
    raw = con.file.getvalue()  # type: ignore[attr-defined]
    plain = Console(file=io.StringIO(), width=200, color_system=None)
    plain.print(markup, highlight=False)
    return plain.file.getvalue().strip(), raw  # type: ignore[attr-defined]


RED, YELLOW, GREEN = "\x1b[31m", "\x1b[33m", "\x1b[32m"


def test_terminal_line_says_fell_behind_in_red_and_complete_is_not_green() -> None:
    kpi, stats = _fell_behind()
    kpi["health"] = health_kpi(kpi, stats, budget_us=10_000.0)
    text, raw = _printed(console.health_line(kpi))
    assert text == (
        "health: FELL BEHIND — 34,495 messages refused as stale (skew_past), 34,404 ticks "
        "dropped, queueing delay p50 1.99 s (bound 100 ms), 3 signal epochs aborted"
    )
    assert RED in raw and GREEN not in raw
    text, raw = _printed(console.complete_line(kpi, Path("results/loopback/x")))
    assert text == "complete: result set results/loopback/x (health: FELL BEHIND)"
    assert GREEN not in raw and RED in raw


def test_terminal_line_for_healthy_and_degraded_runs() -> None:
    kpi, stats = _healthy()
    kpi["health"] = health_kpi(kpi, stats, budget_us=200.0)
    text, raw = _printed(console.health_line(kpi))
    assert text == "health: ok (0 stale, 0 dropped, queueing p99 3.1 ms <= 50 ms)"
    assert GREEN in raw and RED not in raw
    text, raw = _printed(console.complete_line(kpi, Path("r")))
    assert text == "complete: result set r" and GREEN in raw
    kpi["loss"]["dropped"] = 12
    kpi["health"] = health_kpi(kpi, stats, budget_us=200.0)
    text, raw = _printed(console.health_line(kpi))
    assert text == "health: DEGRADED — 12 ticks dropped" and YELLOW in raw and GREEN not in raw
    text, raw = _printed(console.complete_line(kpi, Path("r")))
    assert text == "complete: result set r (health: DEGRADED)" and GREEN not in raw
    assert console.health_line({}) is None  # a kpi from before health: no line


def test_run_command_prints_the_health_line_after_the_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """cmd_run's own output, the campaign itself replaced by a finished result."""
    kpi, stats = _fell_behind()
    kpi["health"] = health_kpi(kpi, stats, budget_us=10_000.0)
    kpi["hedge"].update(max_abs_net_delta=0, early_stops=0,
                        objective_gap_vs_centralized={"p50": 0.0, "max": 1e-9})  # fmt: skip
    kpi["throughput"].update(ticks_per_s=2000.0, orders_out=30)
    result = CampaignResult(tmp_path / "run", True, "", kpi, {})
    monkeypatch.setattr(cli, "execute_campaign", lambda *a, **k: result)
    con = Console(file=io.StringIO(), width=200, color_system=None)
    args = cli.build_parser().parse_args(["run", str(LOOPBACK), "--duration", "1"])
    assert cli.cmd_run(args, con) == 0  # the result set is complete: exit 0 still
    lines = con.file.getvalue().splitlines()  # type: ignore[attr-defined]
    health = next(i for i, line in enumerate(lines) if line.startswith("health: "))
    table_end = max(i for i, line in enumerate(lines) if line.lstrip().startswith("adapter_to"))
    assert health == table_end + 2  # the table's closing blank line, then the verdict
    assert lines[health].startswith("health: FELL BEHIND — 34,495 messages refused as stale")
    assert f"complete: result set {tmp_path / 'run'} (health: FELL BEHIND)" in lines


def test_report_has_a_health_section_near_the_top(tmp_path: Path) -> None:
    kpi, hlog = _fixture(tmp_path)  # the existing report tests' synthetic run
    run_kpi, stats = _fell_behind()
    kpi["health"] = health_kpi(run_kpi, stats, budget_us=10_000.0, max_past_ms=2000.0)
    out = tmp_path / "report.html"
    render_report(kpi, hlog, {"campaign": "c", "run_id": "r", "status": "complete"}, out)
    doc = out.read_text()
    assert 'class="status complete"' in doc  # the manifest's status is untouched ...
    start = doc.index("<h2>Health</h2>")  # ... and the health stands beside it, above latency
    assert start < doc.index("<h2>Latency</h2>") and doc.count("<h2>Health</h2>") == 1
    section = doc[start : doc.index("<h2>", start + 5)]
    assert '<span class="status fell_behind">fell behind</span>' in section
    assert "34,495 messages refused as stale (skew_past)" in section
    for name in FINDINGS:
        assert f"<tr><th>{name}</th>" in section, name
    row = section[section.index("<tr><th>queueing_delay</th>") :]
    row = row[: row.index("</tr>")]
    assert '<td class="num">1,987,051.5</td><td class="num">100,000.0</td>' in row
    assert "<strong>fell behind</strong>" in row
    row = section[section.index("<tr><th>link_errors</th>") :]
    assert row[: row.index("</tr>")].count("<td>ok</td>") == 1
    assert "Health" not in doc[doc.index("<h2>Latency</h2>") :]  # not again as a generic table

    del kpi["health"]
    render_report(kpi, hlog, {"campaign": "c", "run_id": "r", "status": "complete"}, out)
    assert "<h2>Health</h2>" not in out.read_text()


def test_health_of_an_existing_result_set_is_recomputed_from_its_files(tmp_path: Path) -> None:
    kpi, stats = _fell_behind()
    (tmp_path / "proc").mkdir()
    for role, s in stats.items():
        (tmp_path / "proc" / f"{role}.stats.json").write_text(json.dumps(s))
    (tmp_path / "kpi.json").write_text(json.dumps(kpi))
    config = {"coordinator": {"budget_us": 10_000.0}, "security": {"max_past_ms": 2000.0}}
    (tmp_path / "manifest.json").write_text(json.dumps({"config": config}))
    health = health_of_result_set(tmp_path)
    assert health == health_kpi(kpi, stats, budget_us=10_000.0, max_past_ms=2000.0)
    assert health["verdict"] == "fell_behind" and health["queueing_bound_us"] == 100_000.0

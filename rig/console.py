"""What a run prints on the terminal: the headline latency table, the health line and the line
naming the result set (rich markup). Shared by ``arbsphere run`` and ``arbsphere replay``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table


def sci(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1e}"


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, int | float) and v >= 1000:
        return f"{v / 1000:.1f}k"  # compact for an 80-column terminal; kpi.json has it all
    if isinstance(v, float):
        return f"{v:.1f}" if v >= 100 else f"{v:.2f}"
    return str(v)


def headline_table(kpi: dict[str, Any]) -> Table:
    """The stages' latency percentiles for the terminal. The figures are never cut: each
    numeric column is as wide as its widest cell, and on a narrow terminal (80 columns, or a
    pipe / CI log, which rich treats as 80) the stage names fold onto a second line instead
    (left to itself rich elides figures: "93.…" for 93.4k)."""
    rows: list[tuple[str, ...]] = []
    for name, s in [("tick_to_trade", kpi["tick_to_trade"]), *kpi["stages"].items()]:
        if s.get("synchronised") is False:
            unc = "unsync"
        else:
            u = s.get("uncertainty_us")
            unc = "-" if u is None else ("0" if u == 0 else fmt(u))
        rows.append(
            (name, str(s["count"]), *(fmt(s[k]) for k in ("p50", "p90", "p99", "p999", "max")),
             unc)
        )  # fmt: skip
    table = Table(
        title="Latency in µs (k = x1000; ±clk: clock-alignment bound; more in kpi.json)",
        title_justify="left",
        box=box.SIMPLE_HEAD,  # no vertical rules and one space between columns: every stage
        padding=(0, 1, 0, 0),  # name and figure fits in 80 columns
        pad_edge=False,
    )
    table.add_column("stage", overflow="fold")
    heads = ("count", "p50", "p90", "p99", "p99.9", "max", "±clk")
    for i, col in enumerate(heads, start=1):
        width = max(len(col), *(len(r[i]) for r in rows))
        table.add_column(col, justify="right", no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(*row)
    return table


HEALTH_STYLE = {"healthy": "green", "degraded": "yellow", "fell_behind": "red"}
HEALTH_WORD = {"healthy": "ok", "degraded": "degraded", "fell_behind": "FELL BEHIND"}


def health_line(kpi: dict[str, Any]) -> str | None:
    """The run's health verdict as one line of rich markup (``kpi.json`` ``health``, see
    :mod:`arbsphere.kpi.health`): green "health: ok (...)", yellow "health: DEGRADED — ...",
    red "health: FELL BEHIND — ..."; None when the kpi has no health section."""
    health = kpi.get("health")
    if not isinstance(health, dict) or health.get("verdict") not in HEALTH_STYLE:
        return None
    style = HEALTH_STYLE[health["verdict"]]
    return f"[{style}]health: {escape(str(health.get('summary', health['verdict'])))}[/]"


def complete_line(kpi: dict[str, Any], run_dir: Path) -> str:
    """The line naming the result set ("complete: result set DIR"), green only when the run was
    healthy too: the result set is complete either way, but a run that fell behind must not
    end on an all-green line."""
    health = kpi.get("health")
    verdict = health.get("verdict") if isinstance(health, dict) else None
    path = escape(str(run_dir))
    if verdict is None or verdict == "healthy":
        return f"[green]complete[/]: result set {path}"
    style = HEALTH_STYLE.get(verdict, "yellow")
    word = HEALTH_WORD.get(verdict, str(verdict)).upper()
    return f"[yellow]complete[/]: result set {path} [{style}](health: {escape(word)})[/]"

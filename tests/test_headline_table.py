"""The terminal's headline latency table: every figure whole at 80 columns (a pipe or CI log)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from arbsphere.rig.console import headline_table


def _stage(count: int, base: float, unc: float | None = 0.0, sync: bool = True) -> dict[str, Any]:
    return {
        "unit": "us", "count": count, "p50": base, "p90": 1.5 * base, "p99": 2.3 * base,
        "p999": 2.5 * base, "max": 2.5 * base, "uncertainty_us": unc, "synchronised": sync,
    }  # fmt: skip


def test_every_figure_and_stage_name_is_whole_on_an_80_column_console() -> None:
    """A real `make run` printed "800…" for a count of 80000 and "93.…" for 93.4k: rich
    shrank the numeric columns to fit 80 columns and elided them."""
    kpi = {
        "tick_to_trade": _stage(70, 61_712.0, 94.68),
        "stages": {
            "feed_wire": _stage(68_655, 8.5, 83.67),
            "adapter_to_coordinator": _stage(80_000, 3_412.0),
            "coordinator_to_broker": _stage(80, 408.6),
            "rig_tick_to_order": _stage(80, 62_512.0),
            "order_wire": _stage(80, 12.35, None, sync=False),
        },
    }
    console = Console(width=80, file=io.StringIO(), record=True, color_system=None)
    console.print(headline_table(kpi))
    text = console.export_text()
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert lines["adapter_to_coordinator"][1:] == [
        "80000", "3.4k", "5.1k", "7.8k", "8.5k", "8.5k", "0",
    ]  # fmt: skip
    assert lines["tick_to_trade"][1:] == [
        "70", "61.7k", "92.6k", "141.9k", "154.3k", "154.3k", "94.68",
    ]  # fmt: skip
    assert lines["coordinator_to_broker"][1] == "80"
    assert lines["order_wire"][-1] == "unsync"  # no clock model: said, not a number

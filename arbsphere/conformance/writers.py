"""Writers of conformance results, separate from the record (:mod:`.model`): a terminal table,
JUnit XML and JSON. Each takes the same list of :class:`~.model.SuiteResult`.

JUnit XML: one ``<testsuite>`` per device suite, one ``<testcase>`` per check
(``classname`` ``conformance.<device>.<interface>``); a failed *required* check is a
``<failure>``, a skipped check a ``<skipped>`` with its reason; every other check (passed,
marginal, or failed but not required) is a passing testcase with its verdict in ``system-out``.
JSON (:data:`JSON_SCHEMA` names the layout): ``{schema, passed, counts, suites: [SuiteResult
JSON]}``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from arbsphere.conformance.model import (
    ADAPTER,
    FAIL,
    MARGINAL,
    PASS,
    SKIPPED,
    Check,
    SuiteResult,
)
from arbsphere.conformance.model import verdict_counts as _counts
from arbsphere.runtime import write_json_atomic

JSON_SCHEMA = "arbsphere.conformance/1"
_STYLE = {PASS: "green", MARGINAL: "yellow", FAIL: "red", SKIPPED: "dim"}


def _value(c: Check) -> str:
    if c.value is None:
        return "-"
    v = c.value
    return f"{v:,.4g}" if isinstance(v, float) and not float(v).is_integer() else f"{v:,.0f}"


def print_results(results: Sequence[SuiteResult], console: Console) -> None:
    """One table per device: check, value, unit, limits, verdict; why a check did not pass is
    a numbered note under the table (full width: reasons are sentences)."""
    for r in results:
        what = "adapter" if r.interface == ADAPTER else f"{r.interface} device"
        table = Table(
            title=f"{r.device} ({what}, {r.backend} link)",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for col in ("check", "value", "unit", "pass", "marginal", "verdict", "note"):
            table.add_column(col, justify="right" if col == "value" else "left", no_wrap=True)
        notes: list[str] = []
        for c in r.checks:
            word = c.verdict if c.required else f"{c.verdict} (info)"
            style = _STYLE[c.verdict]
            note = ""
            if c.verdict != PASS and c.detail:
                notes.append(c.detail)
                note = f"[{len(notes)}]"
            limits = c.limits
            table.add_row(c.name, _value(c), c.unit, limits.pass_text(), limits.marginal_text(),
                          f"[{style}]{word}[/]", note)  # fmt: skip
        console.print(table)
        for i, text in enumerate(notes, 1):
            console.print(f"  [{i}] {text}", markup=False, highlight=False)
        if notes:
            console.print()


def to_json(results: Sequence[SuiteResult]) -> dict[str, Any]:
    checks = [c for r in results for c in r.checks]
    return {
        "schema": JSON_SCHEMA,
        "passed": all(r.passed for r in results),
        "counts": _counts(checks),
        "suites": [r.to_json() for r in results],
    }


def write_json(results: Sequence[SuiteResult], path: Path) -> None:
    write_json_atomic(path, to_json(results))


def junit_xml(results: Sequence[SuiteResult]) -> ET.ElementTree[ET.Element]:
    root = ET.Element("testsuites", name="arbsphere conformance")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for r in results:
        suite = ET.SubElement(root, "testsuite", name=f"{r.device} ({r.interface}, {r.backend})")
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        for c in r.checks:
            case = ET.SubElement(
                suite, "testcase", name=c.name, classname=f"conformance.{r.device}.{r.interface}"
            )
            counts["tests"] += 1
            summary = (
                f"value {_value(c)} {c.unit}, limits {c.limits.text()}, verdict "
                f"{c.verdict}: {c.detail}"
            )
            if c.verdict == SKIPPED:
                ET.SubElement(case, "skipped", message=c.detail)
                counts["skipped"] += 1
            elif not c.ok:
                failure = ET.SubElement(case, "failure", message=summary, type=c.verdict)
                failure.text = summary
                counts["failures"] += 1
            else:
                ET.SubElement(case, "system-out").text = summary
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("errors", "0")
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("errors", "0")
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(results: Sequence[SuiteResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    junit_xml(results).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)


def load_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data

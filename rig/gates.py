"""SLO gates on a result set: ``tick_to_trade p99 <= 2 ms``, judged with the clock bound.

A :class:`Gate` names a ``kpi.json`` section (a latency stage such as ``tick_to_trade``, or any
section by dotted path such as ``loss``), a statistic (``p99``, or a key such as ``dropped``),
an operator and a limit, and optionally a *marginal* limit. :func:`evaluate` gives one of four
outcomes:

``pass``
    the value meets the limit, farther from it than the stage's clock-uncertainty bound.
``marginal``
    the value misses ``limit`` but meets ``marginal`` (the tolerated band beyond the limit), or
    meets ``limit`` within the bound: the gate passes, flagged.
``inconclusive``
    the value lies within the stage's clock-uncertainty bound (``uncertainty_us``, the ±clk
    column) of the deciding edge — ``marginal`` when given, else ``limit`` — so the rig cannot
    say on which side it is. Never called a pass.
``fail``
    the value misses the deciding edge by more than the bound, the stage has no samples, or
    the result set is incomplete.

Latency limits take a unit (``"2ms"``, ``"500us"``, ``"1.5 s"``, ``"800ns"``; a bare number is
in the stage's own unit). Non-latency statistics compare as plain numbers (or, for ``==`` /
``!=``, as given: ``("health", "verdict", "==", "healthy")``) and have no bound.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arbsphere.errors import ConfigError
from arbsphere.kpi.resultset_view import ResultSetView, is_latency_section

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}
_US_PER_UNIT = {"ns": 1e-3, "us": 1.0, "µs": 1.0, "ms": 1e3, "s": 1e6}
_QUANTITY = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zµ]*)\s*$")


@dataclass(frozen=True)
class Gate:
    """``stage stat op limit`` with an optional tolerated ``marginal`` limit."""

    stage: str
    stat: str
    op: str
    limit: Any
    marginal: Any = None

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ConfigError(
                f"{self.label}: operator {self.op!r} is not one of {', '.join(_OPS)}",
                key="arb_gate",
            )
        if self.marginal is not None and self.op in ("==", "!="):
            raise ConfigError(f"{self.label}: marginal needs <, <=, > or >=", key="arb_gate")

    @property
    def label(self) -> str:
        """Short id, e.g. ``tick_to_trade.p99<=2ms`` (the test id of the gate's test case)."""
        text = f"{self.stage}.{self.stat}{self.op}{self.limit}"
        return text + (f"~{self.marginal}" if self.marginal is not None else "")


@dataclass(frozen=True)
class Verdict:
    """A gate's outcome (``pass`` / ``marginal`` / ``inconclusive`` / ``fail``) and why."""

    outcome: str
    value: Any
    text: str
    bound_us: float = 0.0


def to_us(quantity: Any, default_unit: str) -> float:
    """``"2ms"`` -> 2000.0; a bare number is in ``default_unit``."""
    if isinstance(quantity, int | float) and not isinstance(quantity, bool):
        return float(quantity) * _US_PER_UNIT[default_unit]
    m = _QUANTITY.match(str(quantity))
    unit = (m.group(2) or default_unit) if m else ""
    if m is None or unit not in _US_PER_UNIT:
        raise ConfigError(
            f"limit {quantity!r} is not a duration such as '2ms', '500us', '1.5s'",
            key="arb_gate",
        )
    return float(m.group(1)) * _US_PER_UNIT[unit]


def evaluate(gate: Gate, rs: ResultSetView) -> Verdict:
    """Judge ``gate`` on the result set ``rs``."""
    if not rs.complete:
        return Verdict("fail", None, f"result set incomplete: {rs.incomplete_reason}")
    section = rs.section(gate.stage)
    if is_latency_section(section):
        return _evaluate_latency(gate, rs)
    if not isinstance(section, dict) or gate.stat not in section:
        raise ConfigError(f"{gate.label}: kpi.json {gate.stage!r} has no {gate.stat!r}")
    value = section[gate.stat]
    if gate.op in ("==", "!="):
        ok = _OPS[gate.op](value, gate.limit)
        return Verdict("pass" if ok else "fail", value, f"{gate.stage}.{gate.stat} = {value!r}")
    return _judge(gate, float(value), float(gate.limit), _num(gate.marginal), 0.0, "")


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def _evaluate_latency(gate: Gate, rs: ResultSetView) -> Verdict:
    stage = rs.stage(gate.stage)
    value = stage.value_us(gate.stat)
    if value is None:
        return Verdict("fail", None, f"{gate.stage} has no samples (count {stage.count})")
    if gate.op in ("==", "!="):
        raise ConfigError(f"{gate.label}: a latency gate needs <, <=, > or >=", key="arb_gate")
    limit = to_us(gate.limit, stage.unit)
    marginal = None if gate.marginal is None else to_us(gate.marginal, stage.unit)
    return _judge(gate, value, limit, marginal, stage.uncertainty_us, " µs")


def _judge(
    gate: Gate, value: float, limit: float, marginal: float | None, bound: float, unit: str
) -> Verdict:
    """Place ``value`` against ``limit`` / ``marginal`` with ±``bound``."""
    upper = gate.op in ("<=", "<")
    if marginal is not None and (marginal < limit if upper else marginal > limit):
        side = "at or above" if upper else "at or below"
        raise ConfigError(f"{gate.label}: marginal must lie {side} the limit", key="arb_gate")
    edge = marginal if marginal is not None else limit
    what = (
        f"{gate.stage}.{gate.stat} = {value:g}{unit} ±{bound:g}{unit} (clock bound), "
        f"limit {gate.op} {limit:g}{unit}"
        + (f", marginal up to {marginal:g}{unit}" if marginal is not None else "")
    )
    if bound > 0 and abs(value - edge) <= bound:
        return Verdict("inconclusive", value, f"{what}: within the clock bound of {edge:g}", bound)
    if not _OPS[gate.op](value, edge):
        return Verdict("fail", value, what, bound)
    if not _OPS[gate.op](value, limit) or (bound > 0 and abs(value - limit) <= bound):
        return Verdict("marginal", value, f"{what}: in the marginal band", bound)
    return Verdict("pass", value, what, bound)

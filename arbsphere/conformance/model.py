"""The result model of the conformance suites: one :class:`Check` per named measurement.

A check has a measured ``value`` with its ``unit``, :class:`Limits` (a pass band, a wider
marginal band, fail outside both), a :data:`verdict` and a ``detail`` line saying what was
seen. ``required`` checks decide the outcome (:func:`passed`): a failed required check fails
the suite; a marginal one passes with a warning (OpenHTF's marginal pass: inside the wide band,
outside the one a device should keep on a quiet host); a check that could not run is
``skipped`` with the reason, never passed silently. OpenHTF's measurements
(``Measurement('x').in_range(...).with_units(...)``) are the model; the writers
(:mod:`.writers`) are separate from the record.

Limits are one-sided or two-sided: ``Limits.at_most(pass_, marginal)`` (lower is better),
``Limits.at_least(...)`` (higher is better) and ``Limits.within(lo, hi, marginal_lo,
marginal_hi)``. A value of None (nothing to measure) fails a check unless it is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

PASS = "pass"
MARGINAL = "marginal"
FAIL = "fail"
SKIPPED = "skipped"
VERDICTS = (PASS, MARGINAL, FAIL, SKIPPED)

#: the interfaces a suite judges
FEED = "feed"
BROKER = "broker"
ADAPTER = "adapter"


@dataclass(frozen=True)
class Limits:
    """Pass band ``[lo, hi]``, marginal band ``[marginal_lo, marginal_hi]`` around it (None: no
    bound on that side). A value in the pass band passes, in the marginal band is marginal,
    anywhere else fails."""

    lo: float | None = None
    hi: float | None = None
    marginal_lo: float | None = None
    marginal_hi: float | None = None

    def __post_init__(self) -> None:
        if self.lo is not None and self.hi is not None and self.lo > self.hi:
            raise ValueError(f"limits: lo {self.lo} > hi {self.hi}")
        if self.marginal_hi is not None and self.hi is not None and self.marginal_hi < self.hi:
            raise ValueError(f"limits: marginal_hi {self.marginal_hi} < hi {self.hi}")
        if self.marginal_lo is not None and self.lo is not None and self.marginal_lo > self.lo:
            raise ValueError(f"limits: marginal_lo {self.marginal_lo} > lo {self.lo}")

    @classmethod
    def at_most(cls, hi: float, marginal: float | None = None) -> Limits:
        return cls(hi=hi, marginal_hi=marginal)

    @classmethod
    def at_least(cls, lo: float, marginal: float | None = None) -> Limits:
        return cls(lo=lo, marginal_lo=marginal)

    @classmethod
    def within(
        cls,
        lo: float,
        hi: float,
        marginal_lo: float | None = None,
        marginal_hi: float | None = None,
    ) -> Limits:
        return cls(lo=lo, hi=hi, marginal_lo=marginal_lo, marginal_hi=marginal_hi)

    def judge(self, value: float | None) -> str:
        """:data:`PASS`, :data:`MARGINAL` or :data:`FAIL` for ``value`` (None or NaN: fail)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return FAIL
        if _inside(value, self.lo, self.hi):
            return PASS
        m_lo = self.lo if self.marginal_lo is None else self.marginal_lo
        m_hi = self.hi if self.marginal_hi is None else self.marginal_hi
        if (self.marginal_lo is not None or self.marginal_hi is not None) and _inside(
            value, m_lo, m_hi
        ):
            return MARGINAL
        return FAIL

    def text(self) -> str:
        """``<= 0``, ``>= 0.99 (marginal >= 0.9)``, ``[0.95, 1.05] (marginal [0.8, 1.2])``."""
        main = _band(self.lo, self.hi)
        if self.marginal_lo is None and self.marginal_hi is None:
            return main
        m_lo = self.lo if self.marginal_lo is None else self.marginal_lo
        m_hi = self.hi if self.marginal_hi is None else self.marginal_hi
        return f"{main} (marginal {_band(m_lo, m_hi)})"

    def pass_text(self) -> str:
        """The pass band alone (``<= 0``, ``[0.95, 1.05]``)."""
        return _band(self.lo, self.hi)

    def marginal_text(self) -> str:
        """The marginal band alone, or "" when there is none."""
        if self.marginal_lo is None and self.marginal_hi is None:
            return ""
        m_lo = self.lo if self.marginal_lo is None else self.marginal_lo
        m_hi = self.hi if self.marginal_hi is None else self.marginal_hi
        return _band(m_lo, m_hi)

    def to_json(self) -> dict[str, float | None]:
        return {
            "pass_lo": self.lo,
            "pass_hi": self.hi,
            "marginal_lo": self.marginal_lo,
            "marginal_hi": self.marginal_hi,
        }


def _inside(value: float, lo: float | None, hi: float | None) -> bool:
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _num(x: float) -> str:
    return f"{x:g}"


def _band(lo: float | None, hi: float | None) -> str:
    if lo is None and hi is None:
        return "any"
    if lo is None:
        assert hi is not None
        return f"<= {_num(hi)}"
    if hi is None:
        return f">= {_num(lo)}"
    if lo == hi:
        return f"== {_num(lo)}"
    return f"[{_num(lo)}, {_num(hi)}]"


#: a count of bad things: zero passes, anything else fails
ZERO = Limits.at_most(0)


@dataclass(frozen=True)
class Check:
    """One named measurement of one interface of one device, judged against its limits."""

    name: str
    interface: str
    value: float | None
    unit: str
    limits: Limits
    verdict: str
    required: bool = True
    detail: str = ""
    #: the device (or adapter) judged: the campaign's role name, or what a lab calls it
    device: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"check {self.name}: verdict {self.verdict!r} not in {VERDICTS}")

    @property
    def ok(self) -> bool:
        """Not a reason to fail the suite: passed (marginally too), skipped, or not required."""
        return self.verdict != FAIL or not self.required

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "interface": self.interface,
            "device": self.device,
            "value": self.value,
            "unit": self.unit,
            "limits": self.limits.to_json(),
            "limits_text": self.limits.text(),
            "verdict": self.verdict,
            "required": self.required,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Check:
        lim = data["limits"]
        return cls(
            name=str(data["name"]),
            interface=str(data["interface"]),
            value=data["value"],
            unit=str(data["unit"]),
            limits=Limits(lim["pass_lo"], lim["pass_hi"], lim["marginal_lo"], lim["marginal_hi"]),
            verdict=str(data["verdict"]),
            required=bool(data["required"]),
            detail=str(data["detail"]),
            device=str(data.get("device", "")),
        )


def measured(
    name: str,
    interface: str,
    value: float | None,
    unit: str,
    limits: Limits,
    *,
    required: bool = True,
    detail: str = "",
) -> Check:
    """A check judged from its value: the verdict is ``limits.judge(value)``."""
    return Check(name, interface, value, unit, limits, limits.judge(value), required, detail)


def skipped(
    name: str, interface: str, unit: str, limits: Limits, reason: str, *, required: bool = True
) -> Check:
    """A check that did not run, with the reason (never a silent pass)."""
    return Check(name, interface, None, unit, limits, SKIPPED, required, reason)


@dataclass(frozen=True)
class SuiteResult:
    """The checks of one suite run against one device."""

    device: str
    interface: str
    backend: str
    checks: tuple[Check, ...]
    #: what the suite saw beyond the checks (counters, the session's timings)
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return passed(self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "interface": self.interface,
            "backend": self.backend,
            "passed": self.passed,
            "counts": verdict_counts(self.checks),
            "checks": [c.to_json() for c in self.checks],
            "info": dict(self.info),
        }


def for_device(checks: Iterable[Check], device: str) -> tuple[Check, ...]:
    """``checks`` with ``device`` set."""
    return tuple(replace(c, device=device) for c in checks)


def passed(checks: Iterable[Check]) -> bool:
    """True when no required check failed (marginal passes; skipped says why)."""
    return all(c.ok for c in checks)


def verdict_counts(checks: Iterable[Check]) -> dict[str, int]:
    out = dict.fromkeys(VERDICTS, 0)
    for c in checks:
        out[c.verdict] += 1
    return out

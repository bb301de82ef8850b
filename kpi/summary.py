"""Percentiles of HDR counts arrays and the per-stage KPI latency summary record.

Percentile semantics follow HdrHistogram ``getValueAtPercentile`` as implemented by the C
library and Python ``hdrh`` (which the tests compare against): the target count is
``max(int(p * total / 100 + 0.5), 1)`` (``p`` capped at 100), the answer is the *highest
equivalent value* of the first bucket whose cumulative count reaches the target (the *lowest*
equivalent value for ``p == 0``). (Java's ``AbstractHistogram`` rounds the target up with
``ceil`` instead of to nearest; the two can differ by one rank.)

:func:`latency_summary` turns one stage's counts (recorded in ns) into the record used in
``kpi.json``: ``{"unit", "count", "p50", "p90", "p99", "p999", "p9999", "max"}``, values in the
requested unit rounded to 3 decimals; with no samples every value is ``None`` (JSON null),
never a made-up zero. ``max`` is HdrHistogram's ``getMaxValue`` (highest equivalent value of the
largest recorded value), so no percentile ever exceeds it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .hdr import HdrRecorder, HdrSpec

__all__ = [
    "PERCENTILES",
    "UNIT_NS",
    "latency_summary",
    "percentile_curve",
    "value_at_percentile",
    "values_at_percentiles",
]

PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99)
_KEYS = ("p50", "p90", "p99", "p999", "p9999")
UNIT_NS: dict[str, float] = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def _check_counts(counts: np.ndarray, spec: HdrSpec) -> np.ndarray:
    arr = np.asarray(counts)
    if arr.ndim != 1 or arr.shape[0] != spec.counts_len:
        raise ValueError(
            f"counts must be one-dimensional with {spec.counts_len} entries for {spec}, "
            f"got shape {arr.shape}"
        )
    return arr.astype(np.int64, copy=False)


def _check_percentile(percentile: float) -> float:
    p = float(percentile)
    if not 0.0 <= p <= 100.0:  # also rejects NaN
        raise ValueError(f"percentile must be in [0, 100], got {percentile!r}")
    return p


def _value_at_index(index: int, spec: HdrSpec, highest: bool) -> int:
    half_mag = spec.sub_bucket_half_count_magnitude
    half = spec.sub_bucket_half_count
    bucket = (index >> half_mag) - 1
    sub_bucket = (index & (half - 1)) + half
    if bucket < 0:
        sub_bucket -= half
        bucket = 0
    lowest_equivalent = sub_bucket << (bucket + spec.unit_magnitude)
    if not highest:
        return lowest_equivalent
    return lowest_equivalent + (1 << (bucket + spec.unit_magnitude)) - 1


def values_at_percentiles(
    counts: np.ndarray, spec: HdrSpec, percentiles: Sequence[float]
) -> list[int]:
    """Values at several percentiles in one pass; raises ValueError if no value is recorded."""
    arr = _check_counts(counts, spec)
    ps = [_check_percentile(p) for p in percentiles]
    cumulative = np.cumsum(arr)
    total = int(cumulative[-1]) if cumulative.size else 0
    if total == 0:
        raise ValueError("no values recorded: percentiles are undefined")
    out: list[int] = []
    for p in ps:
        target = max(int((min(p, 100.0) * total / 100) + 0.5), 1)
        index = int(np.searchsorted(cumulative, target, side="left"))
        out.append(_value_at_index(index, spec, highest=p != 0.0))
    return out


def value_at_percentile(counts: np.ndarray, spec: HdrSpec, percentile: float) -> int:
    """HdrHistogram ``getValueAtPercentile`` on a counts array laid out by ``spec``."""
    return values_at_percentiles(counts, spec, [percentile])[0]


def _max_value(counts: np.ndarray, spec: HdrSpec) -> int:
    nonzero = np.flatnonzero(counts)
    index = int(nonzero[-1])
    if index == 0:  # only zeros recorded: hdrh getMaxValue reports 0
        return 0
    return _value_at_index(index, spec, highest=True)


def latency_summary(
    recorder_or_counts: HdrRecorder | np.ndarray, spec: HdrSpec | None = None, unit: str = "us"
) -> dict[str, object]:
    """KPI summary of one stage: count, p50..p99.99 and max in ``unit`` (values recorded in ns).

    With a :class:`HdrRecorder` the spec defaults to the recorder's and the record also carries
    ``out_of_range`` (values refused at recording time).
    """
    if unit not in UNIT_NS:
        raise ValueError(f"unit must be one of {sorted(UNIT_NS)}, got {unit!r}")
    extra: dict[str, object] = {}
    if isinstance(recorder_or_counts, HdrRecorder):
        if spec is not None and spec != recorder_or_counts.spec:
            raise ValueError(f"spec {spec} differs from the recorder's {recorder_or_counts.spec}")
        spec = recorder_or_counts.spec
        counts = recorder_or_counts.counts
        extra["out_of_range"] = recorder_or_counts.out_of_range
    else:
        if spec is None:
            raise ValueError("a spec is required to summarise a bare counts array")
        counts = _check_counts(recorder_or_counts, spec)
    count = int(counts.sum())
    scale = UNIT_NS[unit]
    summary: dict[str, object] = {"unit": unit, "count": count}
    if count == 0:
        summary.update(dict.fromkeys(_KEYS))
        summary["max"] = None
    else:
        values = values_at_percentiles(counts, spec, PERCENTILES)
        summary.update({k: round(v / scale, 3) for k, v in zip(_KEYS, values, strict=True)})
        summary["max"] = round(_max_value(counts, spec) / scale, 3)
    summary.update(extra)
    return summary


def percentile_curve(
    counts: np.ndarray, spec: HdrSpec, points_per_decade: int = 20, max_nines: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(x = 1/(1-p), value)`` for a percentile plot on the usual HdrHistogram axis.

    ``x`` runs from 1 (p = 0 %, the lowest value) to the resolution the sample supports
    (``1/(1-p)`` up to the sample count, at most ``10**max_nines``), ``points_per_decade``
    points per factor 10. Empty counts give two empty arrays.
    """
    arr = _check_counts(counts, spec)
    total = int(arr.sum())
    if total == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    top = min(math.log10(max(total, 10)), float(max_nines))
    xs = np.logspace(0.0, top, max(2, int(top * points_per_decade) + 1))
    ps = 100.0 * (1.0 - 1.0 / xs)
    ps[0] = 0.0
    values = values_at_percentiles(arr, spec, [float(p) for p in ps])
    return xs, np.asarray(values, dtype=np.int64)

"""HDR-compatible latency recording in batches inside Numba.

This module owns the bucket layout of our latency histograms. :class:`HdrSpec` derives the
layout exactly as HdrHistogram (Java ``AbstractHistogram``, C ``hdr_calculate_bucket_config``,
Python ``hdrh.histogram.HdrHistogram``) does, so a counts array recorded here is index-for-index
identical to ``HdrHistogram(lowest, highest, sig_figs).counts`` and can be encoded with the
library's own ``encode()`` (see :meth:`HdrRecorder.to_hdrh`).

Recording one value with ``hdrh.record_value`` costs ~850 ns in Python; the kernels here bucket
and increment a whole batch inside Numba (a few ns per value), and can be called from other
``@njit`` kernels (:func:`record_value`, :func:`record_batch`, :func:`record_batch_stats`).

Range: a value is recordable when ``0 <= value <= highest``. Values outside that range are
never written into the counts; every kernel returns how many it refused and
:class:`HdrRecorder` keeps the running total in ``out_of_range`` -- nothing is dropped silently.
(HdrHistogram itself would still accept values up to the top of the last bucket, a little above
``highest``; we are stricter so that "out of range" has one meaning.)

Kernel state is plain arrays: ``counts`` (int64, ``spec.counts_len``) and ``stats`` (int64[4],
indices :data:`STAT_TOTAL`, :data:`STAT_MIN`, :data:`STAT_MAX`, :data:`STAT_OUT_OF_RANGE`;
:func:`new_stats` gives the empty state, min = INT64_MAX, max = 0 as in HdrHistogram).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np
from hdrh.histogram import HdrHistogram
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros

from arbsphere.errors import ConfigError

__all__ = [
    "STAT_MAX",
    "STAT_MIN",
    "STAT_OUT_OF_RANGE",
    "STAT_TOTAL",
    "HdrRecorder",
    "HdrSpec",
    "counts_index",
    "new_stats",
    "record_batch",
    "record_batch_stats",
    "record_value",
]

STAT_TOTAL = 0
STAT_MIN = 1
STAT_MAX = 2
STAT_OUT_OF_RANGE = 3
_INT64_MAX = np.iinfo(np.int64).max


def _buckets_needed(value: int, sub_bucket_count: int, unit_magnitude: int) -> int:
    """HdrHistogram ``getBucketsNeededToCoverValue``."""
    smallest_untrackable = sub_bucket_count << unit_magnitude
    needed = 1
    while smallest_untrackable <= value:
        if smallest_untrackable > _INT64_MAX // 2:
            return needed + 1
        smallest_untrackable <<= 1
        needed += 1
    return needed


@dataclass(frozen=True)
class HdrSpec:
    """Range and precision of one histogram, and the bucket layout derived from them.

    ``lowest``/``highest`` are in the recorded unit (ns for latencies). The derived fields use
    the same (floating-point) formulas as the reference implementations on purpose: index
    compatibility matters more than elegance.
    """

    lowest: int = 1
    highest: int = 3_600_000_000_000
    sig_figs: int = 3
    unit_magnitude: int = field(init=False)
    sub_bucket_half_count_magnitude: int = field(init=False)
    sub_bucket_count: int = field(init=False)
    sub_bucket_half_count: int = field(init=False)
    sub_bucket_mask: int = field(init=False)
    bucket_count: int = field(init=False)
    counts_len: int = field(init=False)

    def __post_init__(self) -> None:
        for name in ("lowest", "highest", "sig_figs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ConfigError(f"must be an integer, got {value!r}", key=name)
        if self.lowest < 1:
            raise ConfigError(f"must be >= 1, got {self.lowest}", key="lowest")
        if self.highest < 2 * self.lowest:
            raise ConfigError(
                f"must be >= 2 * lowest ({2 * self.lowest}), got {self.highest}", key="highest"
            )
        if self.highest > _INT64_MAX:
            raise ConfigError(f"must fit in int64, got {self.highest}", key="highest")
        if not 1 <= self.sig_figs <= 5:
            raise ConfigError(f"must be in 1..5, got {self.sig_figs}", key="sig_figs")
        unit_magnitude = math.floor(math.log(self.lowest) / math.log(2))
        largest_single_unit = 2 * math.pow(10, self.sig_figs)
        count_magnitude = math.ceil(math.log(largest_single_unit) / math.log(2))
        half_magnitude = count_magnitude - 1 if count_magnitude > 1 else 0
        if unit_magnitude + half_magnitude > 61:
            raise ConfigError(
                f"lowest={self.lowest} with sig_figs={self.sig_figs} needs more than 63 bits",
                key="lowest",
            )
        sub_bucket_count = 1 << (half_magnitude + 1)
        bucket_count = _buckets_needed(self.highest, sub_bucket_count, unit_magnitude)
        derived = {
            "unit_magnitude": unit_magnitude,
            "sub_bucket_half_count_magnitude": half_magnitude,
            "sub_bucket_count": sub_bucket_count,
            "sub_bucket_half_count": sub_bucket_count // 2,
            "sub_bucket_mask": (sub_bucket_count - 1) << unit_magnitude,
            "bucket_count": bucket_count,
            "counts_len": (bucket_count + 1) * (sub_bucket_count // 2),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @classmethod
    def of_histogram(cls, histogram: HdrHistogram) -> HdrSpec:
        """The spec of an ``hdrh`` histogram (e.g. one decoded from a log)."""
        return cls(
            int(histogram.lowest_trackable_value),
            int(histogram.highest_trackable_value),
            int(histogram.significant_figures),
        )

    def new_counts(self) -> np.ndarray:
        """A zeroed int64 counts array of ``counts_len``."""
        return np.zeros(self.counts_len, dtype=np.int64)

    def kernel_args(self) -> tuple[int, int, int]:
        """``(highest, unit_magnitude, sub_bucket_half_count_magnitude)`` for the kernels."""
        return (self.highest, self.unit_magnitude, self.sub_bucket_half_count_magnitude)

    def index_of(self, value: int) -> int:
        """Counts index of ``value`` (Python reference of :func:`counts_index`)."""
        if not 0 <= value <= self.highest:
            raise ValueError(f"value {value} outside 0..{self.highest}")
        bucket = (
            (value | self.sub_bucket_mask).bit_length()
            - self.unit_magnitude
            - (self.sub_bucket_half_count_magnitude + 1)
        )
        sub_bucket = value >> (bucket + self.unit_magnitude)
        return ((bucket + 1) << self.sub_bucket_half_count_magnitude) + (
            sub_bucket - self.sub_bucket_half_count
        )


def new_stats() -> np.ndarray:
    """Empty kernel stats: total 0, min INT64_MAX, max 0, out-of-range 0."""
    stats = np.zeros(4, dtype=np.int64)
    stats[STAT_MIN] = _INT64_MAX
    return stats


@njit(cache=True)
def counts_index(value: int, unit_magnitude: int, sub_bucket_half_count_magnitude: int) -> int:
    """Counts index of ``value`` (0 <= value <= highest), as HdrHistogram ``countsArrayIndex``."""
    half_mag = np.int64(sub_bucket_half_count_magnitude)
    unit_mag = np.int64(unit_magnitude)
    mask = ((np.int64(1) << (half_mag + 1)) - 1) << unit_mag
    v = np.int64(value)
    # leading_zeros is a Numba intrinsic (LLVM ctlz); mypy sees its typing-context signature
    bucket = np.int64(64) - leading_zeros(v | mask) - unit_mag - (half_mag + 1)  # type: ignore[call-arg]
    sub_bucket = v >> (bucket + unit_mag)
    return ((bucket + 1) << half_mag) + sub_bucket - (np.int64(1) << half_mag)


@njit(cache=True)
def record_value(
    counts: np.ndarray,
    stats: np.ndarray,
    value: int,
    highest: int,
    unit_magnitude: int,
    sub_bucket_half_count_magnitude: int,
) -> bool:
    """Record one value from inside a kernel; False (and stats[OUT_OF_RANGE] += 1) if refused."""
    if value < 0 or value > highest:
        stats[STAT_OUT_OF_RANGE] += 1
        return False
    counts[counts_index(value, unit_magnitude, sub_bucket_half_count_magnitude)] += 1
    stats[STAT_TOTAL] += 1
    if value < stats[STAT_MIN]:
        stats[STAT_MIN] = value
    if value > stats[STAT_MAX]:
        stats[STAT_MAX] = value
    return True


@njit(cache=True)
def record_batch(
    counts: np.ndarray,
    values: np.ndarray,
    highest: int,
    unit_magnitude: int,
    sub_bucket_half_count_magnitude: int,
) -> int:
    """Add every in-range value of ``values`` to ``counts``; return how many were out of range."""
    out_of_range = 0
    for i in range(values.shape[0]):
        v = values[i]
        if v < 0 or v > highest:
            out_of_range += 1
            continue
        counts[counts_index(v, unit_magnitude, sub_bucket_half_count_magnitude)] += 1
    return out_of_range


@njit(cache=True)
def record_batch_stats(
    counts: np.ndarray,
    stats: np.ndarray,
    values: np.ndarray,
    highest: int,
    unit_magnitude: int,
    sub_bucket_half_count_magnitude: int,
) -> int:
    """:func:`record_batch` that also keeps total/min/max/out-of-range in ``stats``."""
    out_of_range = 0
    recorded = 0
    lo = stats[STAT_MIN]
    hi = stats[STAT_MAX]
    for i in range(values.shape[0]):
        v = values[i]
        if v < 0 or v > highest:
            out_of_range += 1
            continue
        counts[counts_index(v, unit_magnitude, sub_bucket_half_count_magnitude)] += 1
        recorded += 1
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    stats[STAT_TOTAL] += recorded
    stats[STAT_MIN] = lo
    stats[STAT_MAX] = hi
    stats[STAT_OUT_OF_RANGE] += out_of_range
    return out_of_range


class HdrRecorder:
    """Latency counts of one stage: a counts array plus total/min/max/out-of-range."""

    def __init__(self, spec: HdrSpec | None = None) -> None:
        self.spec = spec if spec is not None else HdrSpec()
        self.counts = self.spec.new_counts()
        self.stats = new_stats()
        self._args = self.spec.kernel_args()

    def record(self, values: np.ndarray) -> None:
        """Record a batch of integer values (ns). Out-of-range values are counted, not recorded."""
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise ValueError(f"values must be one-dimensional, got shape {arr.shape}")
        if arr.dtype != np.int64:
            if arr.dtype.kind not in "iu" or not np.can_cast(arr.dtype, np.int64, "safe"):
                raise TypeError(f"values must be integers castable to int64, got {arr.dtype}")
            arr = arr.astype(np.int64)
        record_batch_stats(self.counts, self.stats, arr, *self._args)

    @property
    def total(self) -> int:
        """Number of values recorded (in range)."""
        return int(self.stats[STAT_TOTAL])

    @property
    def out_of_range(self) -> int:
        """Number of values refused because they were < 0 or > ``spec.highest``."""
        return int(self.stats[STAT_OUT_OF_RANGE])

    @property
    def min(self) -> int | None:
        """Smallest recorded raw value, None before the first value."""
        return int(self.stats[STAT_MIN]) if self.total else None

    @property
    def max(self) -> int | None:
        """Largest recorded raw value, None before the first value."""
        return int(self.stats[STAT_MAX]) if self.total else None

    def to_hdrh(self) -> HdrHistogram:
        """An ``hdrh`` histogram with identical counts, total, min and max (ready for encode)."""
        hist = HdrHistogram(self.spec.lowest, self.spec.highest, self.spec.sig_figs)
        np.ctypeslib.as_array(hist.counts)[:] = self.counts
        hist.total_count = self.total
        if self.total:
            hist.min_value = self.min
            hist.max_value = self.max
        else:
            hist.min_value = sys.maxsize
            hist.max_value = 0
        return hist

    def reset(self) -> None:
        """Forget everything recorded (counts, totals, out-of-range)."""
        self.counts[:] = 0
        self.stats[:] = new_stats()

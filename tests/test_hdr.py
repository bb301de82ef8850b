"""HDR recording kernels and KPI percentile summaries against the reference ``hdrh`` library."""

from __future__ import annotations

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from arbsphere.errors import ConfigError
from arbsphere.kpi.hdr import (
    STAT_MAX,
    STAT_MIN,
    STAT_OUT_OF_RANGE,
    STAT_TOTAL,
    HdrRecorder,
    HdrSpec,
    counts_index,
    new_stats,
    record_batch,
    record_value,
)
from arbsphere.kpi.summary import (
    PERCENTILES,
    latency_summary,
    percentile_curve,
    value_at_percentile,
    values_at_percentiles,
)

QUERY_PERCENTILES = (0.0, 0.1, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0)


def _hdrh_counts(hist: HdrHistogram) -> np.ndarray:
    return np.ctypeslib.as_array(hist.counts).astype(np.int64)


def _boundary_values(spec: HdrSpec) -> np.ndarray:
    """Values at and around every bucket and sub-bucket-half boundary up to ``highest``."""
    out: list[int] = [0, 1, spec.lowest, spec.highest, spec.highest - 1]
    for bucket in range(spec.bucket_count + 1):
        shift = bucket + spec.unit_magnitude
        for sub in (spec.sub_bucket_half_count, spec.sub_bucket_count - 1, spec.sub_bucket_count):
            edge = sub << shift
            out.extend((edge - 1, edge, edge + 1, edge + (1 << shift) - 1))
    arr = np.asarray(out, dtype=np.int64)
    return arr[(arr >= 0) & (arr <= spec.highest)]


def _dataset(spec: HdrSpec, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [
        rng.lognormal(mean=11.0, sigma=1.5, size=20_000),  # ~60 µs median, heavy tail
        rng.exponential(scale=2_000.0, size=5_000),
        rng.integers(0, spec.highest + 1, size=5_000, dtype=np.int64),
        np.repeat(_boundary_values(spec), 3),
    ]
    values = np.concatenate([np.asarray(p).astype(np.int64) for p in parts])
    return rng.permutation(values[values <= spec.highest])


def _spec_id(spec: HdrSpec) -> str:
    return f"{spec.lowest}-{spec.highest}-{spec.sig_figs}"


SPECS = [
    HdrSpec(),
    HdrSpec(1_000, 10_000_000_000, 2),
    HdrSpec(1, 2_000_000, 5),
    HdrSpec(64, 10**9, 1),
]


@pytest.mark.parametrize("spec", SPECS, ids=_spec_id)
def test_spec_layout_matches_hdrh(spec: HdrSpec) -> None:
    ref = HdrHistogram(spec.lowest, spec.highest, spec.sig_figs)
    assert spec.unit_magnitude == ref.unit_magnitude
    assert spec.sub_bucket_half_count_magnitude == ref.sub_bucket_half_count_magnitude
    assert spec.sub_bucket_count == ref.sub_bucket_count
    assert spec.sub_bucket_mask == ref.sub_bucket_mask
    assert spec.bucket_count == ref.bucket_count
    assert spec.counts_len == ref.counts_len
    assert spec.new_counts().shape == (ref.counts_len,)


def test_default_spec_layout_fixed_vector() -> None:
    # 1 ns .. 1 h at 3 significant figures: 2048 sub-buckets, 32 buckets, 33 * 1024 counters.
    spec = HdrSpec()
    assert (spec.unit_magnitude, spec.sub_bucket_half_count_magnitude) == (0, 10)
    assert (spec.sub_bucket_count, spec.bucket_count, spec.counts_len) == (2048, 32, 33792)


@pytest.mark.parametrize("spec", SPECS, ids=_spec_id)
def test_counts_index_matches_hdrh(spec: HdrSpec) -> None:
    ref = HdrHistogram(spec.lowest, spec.highest, spec.sig_figs)
    for value in _boundary_values(spec):
        expected = ref.get_counts_array_index(int(value))
        assert counts_index(value, spec.unit_magnitude, spec.sub_bucket_half_count_magnitude) == (
            expected
        )
        assert spec.index_of(int(value)) == expected


@pytest.mark.parametrize("spec", SPECS, ids=_spec_id)
def test_record_batch_identical_to_hdrh_record_value(spec: HdrSpec) -> None:
    values = _dataset(spec, seed=spec.sig_figs)
    bad = np.array([-1, -(10**12), spec.highest + 1, spec.highest * 2], dtype=np.int64)
    mixed = np.concatenate([values, bad])
    np.random.default_rng(7).shuffle(mixed)

    ref = HdrHistogram(spec.lowest, spec.highest, spec.sig_figs)
    for v in values:
        assert ref.record_value(int(v))

    rec = HdrRecorder(spec)
    for start in range(0, mixed.size, 4096):  # batches, as the pipeline records them
        rec.record(mixed[start : start + 4096])

    assert rec.out_of_range == bad.size
    assert rec.total == values.size == int(rec.counts.sum())
    assert np.array_equal(rec.counts, _hdrh_counts(ref))
    assert (rec.min, rec.max) == (int(values.min()), int(values.max()))

    ours = rec.to_hdrh()
    assert ours.get_total_count() == ref.get_total_count()
    assert ours.get_max_value() == ref.get_max_value()
    assert ours.get_min_value() == ref.get_min_value()
    expected = ref.get_percentile_to_value_dict(list(QUERY_PERCENTILES))  # one pass each
    assert ours.get_percentile_to_value_dict(list(QUERY_PERCENTILES)) == expected
    for p in QUERY_PERCENTILES:
        assert value_at_percentile(rec.counts, spec, p) == expected[p], p
    assert ours.get_value_at_percentile(99.9) == ref.get_value_at_percentile(99.9)
    assert ours.encode() == ref.encode()


def test_record_batch_returns_out_of_range_and_does_not_record_them() -> None:
    spec = HdrSpec(1, 1_000_000, 3)
    counts = spec.new_counts()
    values = np.array([5, -1, 1_000_000, 1_000_001, 7, -5, 2**62], dtype=np.int64)
    assert record_batch(counts, values, *spec.kernel_args()) == 4
    assert counts.sum() == 3
    assert counts[spec.index_of(5)] == 1
    assert counts[spec.index_of(7)] == 1
    assert counts[spec.index_of(1_000_000)] == 1


def test_record_value_kernel_keeps_stats() -> None:
    spec = HdrSpec()
    counts, stats = spec.new_counts(), new_stats()
    for v in (300, 12, -3, 4_000_000_000_000, 9_000):
        record_value(counts, stats, v, *spec.kernel_args())
    assert stats[STAT_TOTAL] == 3
    assert stats[STAT_MIN] == 12
    assert stats[STAT_MAX] == 9_000
    assert stats[STAT_OUT_OF_RANGE] == 2
    assert counts.sum() == 3


def test_recorder_reset_and_empty_encode() -> None:
    rec = HdrRecorder()
    assert rec.min is None and rec.max is None
    rec.record(np.array([10, 20, -1], dtype=np.int64))
    rec.reset()
    assert (rec.total, rec.out_of_range, rec.min, rec.max) == (0, 0, None, None)
    assert not rec.counts.any()
    assert rec.to_hdrh().encode() == HdrHistogram(1, 3_600_000_000_000, 3).encode()


def test_recorder_accepts_small_int_dtypes_and_rejects_others() -> None:
    rec = HdrRecorder()
    rec.record(np.array([1, 2, 3], dtype=np.int32))
    rec.record(np.array([4], dtype=np.uint16))
    assert rec.total == 4
    with pytest.raises(TypeError, match="float64"):
        rec.record(np.array([1.5]))
    with pytest.raises(TypeError, match="uint64"):
        rec.record(np.array([1], dtype=np.uint64))
    with pytest.raises(ValueError, match="shape"):
        rec.record(np.zeros((2, 2), dtype=np.int64))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"lowest": 0}, "lowest"),
        ({"lowest": 10, "highest": 19}, "highest"),
        ({"sig_figs": 6}, "sig_figs"),
        ({"sig_figs": 0}, "sig_figs"),
        ({"highest": 1.5e9}, "highest"),
    ],
)
def test_spec_rejects_bad_configuration(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        HdrSpec(**kwargs)  # type: ignore[arg-type]
    assert info.value.key == key


# --- summary ---------------------------------------------------------------------------------


def test_latency_summary_fixed_vector() -> None:
    # 1 µs, 2 µs, ..., 1000 µs. Hand-computed HDR buckets (3 sig figs, 1 ns unit):
    # p50 -> 500th value 500_000 ns lies in the bucket of width 256 starting at 499_968 -> 500_223
    # p99 -> 990_000 ns, width 512 from 989_696 -> 990_207; max 1_000_000 -> 999_936 + 511.
    rec = HdrRecorder()
    rec.record(np.arange(1, 1001, dtype=np.int64) * 1000)
    summary = latency_summary(rec)
    assert summary["unit"] == "us"
    assert summary["count"] == 1000
    assert summary["p50"] == 500.223
    assert summary["p99"] == 990.207
    assert summary["max"] == 1000.447
    assert summary["out_of_range"] == 0
    assert latency_summary(rec.counts, rec.spec, unit="ns")["p50"] == 500_223


def test_latency_summary_empty_is_null_not_zero() -> None:
    summary = latency_summary(HdrRecorder())
    assert summary["count"] == 0
    for key in ("p50", "p90", "p99", "p999", "p9999", "max"):
        assert summary[key] is None
    with pytest.raises(ValueError, match="no values recorded"):
        value_at_percentile(HdrSpec().new_counts(), HdrSpec(), 50.0)


def test_summary_matches_hdrh_and_order_statistics_within_hdr_precision() -> None:
    """Independent check against the sorted raw values.

    With ``sig_figs = 3`` a value ``v`` lies in a bucket of width ``w <= v / 1024`` (the top
    half of every bucket has 1024 sub-buckets; below 2048 the width is 1 ns, exact), and HDR
    reports the bucket's highest equivalent value ``v + w - 1 < v * (1 + 2**-10)``. So the HDR
    answer exceeds the true order statistic by a relative error ``< 2**-10 ~ 0.098% <= 10**-3``
    and is never below it. The rank is HdrHistogram's ``round(p * N / 100)``.
    """
    rng = np.random.default_rng(42)
    values = np.concatenate(
        [rng.lognormal(11.0, 1.2, 150_000), rng.pareto(1.5, 50_000) * 20_000 + 500]
    ).astype(np.int64)
    rec = HdrRecorder()
    rec.record(values)
    ref = rec.to_hdrh()
    ordered = np.sort(values)
    ps = (*PERCENTILES, 0.5, 37.0, 99.999)
    hdr_values = values_at_percentiles(rec.counts, rec.spec, ps)
    for p, got in zip(ps, hdr_values, strict=True):
        assert got == ref.get_value_at_percentile(p)
        rank = max(int(p * values.size / 100 + 0.5), 1)
        true = int(ordered[rank - 1])
        assert true <= got <= true * (1 + 2**-10), (p, true, got)
        assert (got - true) / true <= 10**-3
    summary = latency_summary(rec)
    for key, p in zip(("p50", "p90", "p99", "p999", "p9999"), PERCENTILES, strict=True):
        rank = max(int(p * values.size / 100 + 0.5), 1)
        true_us = ordered[rank - 1] / 1000
        assert true_us - 0.0005 <= summary[key] <= true_us * (1 + 2**-10) + 0.0005
    assert summary["max"] == round(ref.get_max_value() / 1000, 3)


def test_percentile_bad_input_named() -> None:
    spec = HdrSpec()
    with pytest.raises(ValueError, match="101"):
        value_at_percentile(spec.new_counts(), spec, 101.0)
    with pytest.raises(ValueError, match="entries"):
        value_at_percentile(np.zeros(10, dtype=np.int64), spec, 50.0)
    with pytest.raises(ValueError, match="unit"):
        latency_summary(HdrRecorder(), unit="furlongs")


def test_percentile_curve_monotone_and_ends_at_max() -> None:
    rec = HdrRecorder()
    rec.record(np.random.default_rng(1).lognormal(10, 1, 10_000).astype(np.int64))
    xs, values = percentile_curve(rec.counts, rec.spec)
    assert xs[0] == 1.0 and xs[-1] == pytest.approx(10_000)
    assert np.all(np.diff(values) >= 0)
    assert values[0] == rec.to_hdrh().get_value_at_percentile(0.0)

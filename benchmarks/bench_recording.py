"""Benchmark: ns per recorded latency value, Numba ``record_batch`` vs ``hdrh.record_value``.

Both are measured side by side in the same run (rounds alternate between them) on the same
seeded lognormal latencies (~60 µs median, heavy tail); the figures are per-round medians.
``record_batch`` runs after a warm-up call (JIT/cache load excluded) over 10 M values in
batches of 4096, the batch size of the pipeline's throughput path; ``hdrh`` records 200 k
values one Python call each. Target: <= 20 ns/value for ``record_batch``.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from hdrh.histogram import HdrHistogram

from arbsphere.kpi.hdr import HdrSpec, new_stats, record_batch, record_batch_stats

BATCH = 4096
ROUNDS = 5
BATCH_VALUES_PER_ROUND = 2_000_000  # 10 M in total
HDRH_VALUES_PER_ROUND = 40_000  # 200 k in total
POOL = 1 << 20
TARGET_NS_PER_VALUE = 20


def _time_batches(pool: np.ndarray, n_values: int, spec: HdrSpec, with_stats: bool) -> float:
    counts = spec.new_counts()
    stats = new_stats()
    args = spec.kernel_args()
    n_batches = n_values // BATCH
    starts = [(i * BATCH) % (pool.size - BATCH) for i in range(n_batches)]
    views = [pool[s : s + BATCH] for s in starts]
    t0 = time.perf_counter_ns()
    if with_stats:
        for view in views:
            record_batch_stats(counts, stats, view, *args)
    else:
        for view in views:
            record_batch(counts, view, *args)
    elapsed = time.perf_counter_ns() - t0
    assert int(counts.sum()) == n_batches * BATCH  # every value was in range and recorded
    return elapsed / (n_batches * BATCH)


def _time_hdrh(values: list[int], spec: HdrSpec) -> float:
    hist = HdrHistogram(spec.lowest, spec.highest, spec.sig_figs)
    record = hist.record_value
    t0 = time.perf_counter_ns()
    for v in values:
        record(v)
    elapsed = time.perf_counter_ns() - t0
    assert hist.get_total_count() == len(values)
    return elapsed / len(values)


def run() -> dict[str, float | int]:
    """Measure and return ns/value of both recorders, their ratio and the target."""
    spec = HdrSpec()
    rng = np.random.default_rng(20240601)
    pool = np.clip(rng.lognormal(11.0, 1.0, POOL), 0, spec.highest).astype(np.int64)
    hdrh_values = [int(v) for v in pool[:HDRH_VALUES_PER_ROUND]]

    warm = spec.new_counts()  # warm-up: load/compile the kernels before timing
    record_batch(warm, pool[:BATCH], *spec.kernel_args())
    record_batch_stats(warm, new_stats(), pool[:BATCH], *spec.kernel_args())

    batch_ns: list[float] = []
    stats_ns: list[float] = []
    hdrh_ns: list[float] = []
    for _ in range(ROUNDS):
        batch_ns.append(_time_batches(pool, BATCH_VALUES_PER_ROUND, spec, with_stats=False))
        stats_ns.append(_time_batches(pool, BATCH_VALUES_PER_ROUND, spec, with_stats=True))
        hdrh_ns.append(_time_hdrh(hdrh_values, spec))
    batch = statistics.median(batch_ns)
    hdrh = statistics.median(hdrh_ns)
    return {
        "record_batch_ns_per_value": round(batch, 2),
        "record_batch_stats_ns_per_value": round(statistics.median(stats_ns), 2),
        "hdrh_record_value_ns_per_value": round(hdrh, 1),
        "ratio": round(hdrh / batch, 1),
        "target_ns_per_value": TARGET_NS_PER_VALUE,
        "record_batch_values": ROUNDS * (BATCH_VALUES_PER_ROUND // BATCH) * BATCH,
        "hdrh_values": ROUNDS * HDRH_VALUES_PER_ROUND,
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value}")

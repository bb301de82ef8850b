"""Analysis: role traces with known injected delays -> exact stage latencies and KPI wiring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from arbsphere.adapters.broker_adapter import ACK_TRACE_DTYPE, ORDER_TRACE_DTYPE
from arbsphere.adapters.venue_adapter import TICK_TRACE_DTYPE
from arbsphere.coordinator.traces import SOLVE_TRACE_DTYPE
from arbsphere.kpi.analysis import analyse, build_kpi, write_hlog
from arbsphere.kpi.hlog import read_interval_log

T0 = 1_700_000_000_000_000_000
# Injected per-stage delays (ns); HDR with 3 significant figures records them exactly enough.
FEED, DECODE, HOP1, SOLVE, MERGE, HOP2, ENCODE, WIRE, ACK = (
    40_000, 7_000, 90_000, 12_000, 3_000, 80_000, 5_000, 30_000, 25_000,
)  # fmt: skip


def _write_traces(proc: Path, n: int, every: int) -> None:
    ticks = np.zeros(n, TICK_TRACE_DTYPE)
    ticks["venue"] = np.arange(n) % 2
    ticks["seq"] = np.arange(n) // 2
    intended = T0 + np.arange(n) * 250_000
    late = 2_000  # the device sent 2 µs after the intended time
    ticks["intended_dev_ns"] = intended
    ticks["send_dev_ns"] = intended + late
    ticks["rx_ns"] = ticks["send_dev_ns"] + FEED
    ticks["decoded_ns"] = ticks["rx_ns"] + DECODE
    np.save(proc / "venue_a.trace.npy", ticks[ticks["venue"] == 0])
    np.save(proc / "venue_b.trace.npy", ticks[ticks["venue"] == 1])
    solve = np.zeros(n, SOLVE_TRACE_DTYPE)
    solve["venue"], solve["seq"] = ticks["venue"], ticks["seq"]
    solve["rx_ns"] = ticks["decoded_ns"] + HOP1
    solve["solve_done_ns"] = solve["rx_ns"] + SOLVE
    solve["merge_done_ns"] = solve["solve_done_ns"] + MERGE
    with_delta = np.arange(n) % every == 0
    solve["delta_id"] = np.where(with_delta, np.cumsum(with_delta), 0)
    solve["sent_ns"] = np.where(with_delta, solve["merge_done_ns"] + 1_000, 0)
    solve["objective_gap"] = 1e-10
    np.save(proc / "coordinator.trace.npy", solve)
    d = solve[with_delta]
    orders = np.zeros(2 * len(d), ORDER_TRACE_DTYPE)
    orders["delta_id"] = np.repeat(d["delta_id"], 2)
    orders["leg"] = np.tile([0, 1], len(d))
    orders["order_id"] = (orders["delta_id"] << 8) | orders["leg"]
    orders["rx_ns"] = np.repeat(d["merge_done_ns"] + HOP2, 2)
    orders["tx_ns"] = orders["rx_ns"] + ENCODE
    np.save(proc / "broker.orders.npy", orders)
    acks = np.zeros(len(orders), ACK_TRACE_DTYPE)
    acks["order_id"] = orders["order_id"]
    acks["device_rx_dev_ns"] = orders["tx_ns"] + WIRE
    acks["device_tx_dev_ns"] = acks["device_rx_dev_ns"] + 1_000
    acks["rx_ns"] = acks["device_tx_dev_ns"] + ACK
    np.save(proc / "broker.acks.npy", acks)
    stats = {
        "coordinator": {"counts": {"problems": n, "solves": n, "deltas": len(d)},
                        "max_abs_net_delta_lots": 0, "final_realized_net_lots": [0]},
        "venue_a": {"link": {"crc_errors": 0, "gaps": 2}, "sequence": {"gaps": 1},
                    "adapter": {"decode_errors": 1}},
        "venue_b": {"link": {"crc_errors": 3, "cobs_errors": 1}, "sequence": {"gaps": 0},
                    "adapter": {"decode_errors": 0}},
        "venue_a-device": {"ticks_sent": n // 2 + 5},
        "venue_b-device": {"ticks_sent": n // 2},
        "broker": {"adapter": {"orders": len(orders), "acks": len(acks),
                               "open_orders_at_stop": 0}},
    }  # fmt: skip
    for name, data in stats.items():
        (proc / f"{name}.stats.json").write_text(json.dumps(data))


def _near(value: float, expected_ns: int) -> bool:
    """Within HDR precision (3 significant figures) of the injected value, in µs."""
    return abs(value - expected_ns / 1e3) <= expected_ns / 1e3 * 2e-3


def test_injected_delays_are_recovered_per_stage(tmp_path: Path) -> None:
    n, every = 4000, 10
    _write_traces(tmp_path, n, every)
    a = analyse(tmp_path, ["venue_a", "venue_b"], "broker", T0, 0.25)
    kpi = build_kpi(a, duration_s=1.0, venue_names=["venue_a", "venue_b"], broker_name="broker")
    expected = {
        "feed_wire": (FEED, n), "adapter_decode": (DECODE, n),
        "adapter_to_coordinator": (HOP1, n), "solve": (SOLVE, n),
        "delta_merge": (MERGE, n // every), "coordinator_to_broker": (HOP2, n // every),
        "broker_encode": (ENCODE, n // every), "order_wire": (WIRE, n // every),
        "ack_wire": (ACK, n // every),
        "rig_tick_to_order": (DECODE + HOP1 + SOLVE + MERGE + HOP2 + ENCODE, n // every),
    }  # fmt: skip
    for stage, (delay, count) in expected.items():
        s = kpi["stages"][stage]
        assert s["count"] == count, stage
        assert _near(s["p50"], delay) and _near(s["max"], delay), (stage, s)
        assert s["negative"] == 0
    # tick_to_trade starts at the intended time: it includes the device's 2 µs lateness.
    t2t = 2_000 + FEED + DECODE + HOP1 + SOLVE + MERGE + HOP2 + ENCODE + WIRE
    assert kpi["tick_to_trade"]["count"] == n // every
    assert _near(kpi["tick_to_trade"]["p50"], t2t)
    # Loss and hedge counters are wired from the roles' stats.
    assert kpi["loss"]["gaps"] == 3
    assert kpi["loss"]["crc_errors"] == 4
    assert kpi["loss"]["decode_errors"] == 1
    assert kpi["loss"]["dropped"] == 5  # sent n + 5, the coordinator received n
    assert kpi["hedge"]["max_abs_net_delta"] == 0
    assert kpi["hedge"]["objective_gap_vs_centralized"]["max"] == 1e-10


def test_hlog_intervals_partition_the_samples(tmp_path: Path) -> None:
    _write_traces(tmp_path, 4000, 10)
    a = analyse(tmp_path, ["venue_a", "venue_b"], "broker", T0, 0.25)
    write_hlog(a, tmp_path / "latency.hlog", T0, 0.25, comment="test")
    intervals = read_interval_log(tmp_path / "latency.hlog")
    starts = sorted({iv.start_s for iv in intervals})
    assert starts == [0.0, 0.25, 0.5, 0.75]  # 4000 ticks at 4/ms span 1 s
    per_tag: dict[str, int] = {}
    for iv in intervals:
        per_tag[iv.tag] = per_tag.get(iv.tag, 0) + iv.histogram.get_total_count()
    assert per_tag["feed_wire"] == 4000
    assert per_tag["tick_to_trade"] == 400

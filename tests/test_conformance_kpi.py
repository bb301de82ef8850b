"""``kpi.json`` ``conformance``: a campaign's devices judged on the run's own recorded traffic
(the role stats and traces in ``proc/``) with the suites' judges, and its report section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.adapters.sync_master import SYNC_TRACE_DTYPE
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.kpi.conformance import conformance_html, conformance_kpi

ORDERS = np.dtype([("order_id", "<u8"), ("side", "i1"), ("size_lots", "<i8"), ("tx_ns", "<i8")])
ACKS = np.dtype(
    [
        ("order_id", "<u8"),
        ("status", "u1"),
        ("filled_lots", "<i8"),
        ("device_rx_dev_ns", "<i8"),
        ("device_tx_dev_ns", "<i8"),
        ("rx_ns", "<i8"),
    ]
)
TRACE = np.dtype(
    [("seq", "<u8"), ("intended_dev_ns", "<i8"), ("send_dev_ns", "<i8"), ("rx_ns", "<i8")]
)


def write_run(proc: Path, *, crc_errors: int = 0, duplicate_ack: bool = False) -> None:
    """A recorded run: one UDP venue at 1000 ticks/s (warm-up 100 ticks) and the broker."""
    proc.mkdir(parents=True, exist_ok=True)
    n = 1100
    t = np.arange(n, dtype=np.int64) * 1_000_000
    trace = np.zeros(n, TRACE)
    trace["seq"], trace["intended_dev_ns"] = np.arange(n), t
    trace["send_dev_ns"], trace["rx_ns"] = t + 20_000, t + 80_000
    np.save(proc / "venue_a.trace.npy", trace)
    sync = np.zeros(40, SYNC_TRACE_DTYPE)
    sync["sync_seq"] = np.arange(1, 41)
    sync["t1_ns"] = np.arange(1, 41) * 25_000_000
    sync["t2_ns"], sync["t3_ns"] = sync["t1_ns"] + 40_000, sync["t1_ns"] + 60_000
    sync["t4_ns"] = sync["t1_ns"] + 100_000
    np.save(proc / "venue_a.sync.npy", sync)
    np.save(proc / "broker.sync.npy", sync)
    orders = np.zeros(4, ORDERS)
    orders["order_id"], orders["side"], orders["size_lots"] = [1, 2, 3, 4], [1, -1, 1, -1], 10
    np.save(proc / "broker.orders.npy", orders)
    ids = [1, 2, 3, 4, 4] if duplicate_ack else [1, 2, 3, 4]
    acks = np.zeros(len(ids), ACKS)
    acks["order_id"], acks["status"], acks["filled_lots"] = ids, dm.ACK_STATUS_FILL, 10
    acks["device_rx_dev_ns"] = np.arange(len(ids)) * 10
    acks["device_tx_dev_ns"] = acks["rx_ns"] = np.arange(len(ids)) * 10 + 5
    np.save(proc / "broker.acks.npy", acks)
    link = {"units": n, "malformed": crc_errors, "crc_errors": crc_errors, "gaps": 0,
            "duplicates": 0, "session_changes": 0}  # fmt: skip
    stats: dict[str, dict[str, Any]] = {
        "venue_a": {"link": link, "adapter": {"decode_errors": 0},
                    "sequence": {"gaps": 0, "missing": 0, "duplicates": 0},
                    "sync": {"syncs_sent": 45}},  # the last 5: the feed had finished
        "broker": {"link": {"units": 5, "malformed": 0}, "sync": {"syncs_sent": 40}},
    }  # fmt: skip
    for name, s in stats.items():
        (proc / f"{name}.stats.json").write_text(json.dumps(s))


def judge(proc: Path) -> dict[str, Any]:
    stats = {n: json.loads((proc / f"{n}.stats.json").read_text()) for n in ("venue_a", "broker")}
    return conformance_kpi(proc, stats, [("venue_a", "udp")], ("broker", "udp"), rate_hz=1000.0,
                           warmup_ticks=100)  # fmt: skip


def verdicts(section: dict[str, Any], device: str) -> dict[str, str]:
    return {c["name"]: c["verdict"] for c in section["devices"][device]["checks"]}


def test_a_clean_run_passes_and_lists_what_it_cannot_judge(tmp_path: Path) -> None:
    write_run(tmp_path)
    section = judge(tmp_path)
    assert section["passed"] is True
    feed = verdicts(section, "venue_a-device")
    for name in ("framing", "tick_sequence", "datagram_sequence", "sync_answers",
                 "sync_causality", "rate_lateness", "rate_arrival"):  # fmt: skip
        assert feed[name] == "pass", (name, section["devices"]["venue_a-device"])
    broker = verdicts(section, "broker-device")
    assert broker["answered_once"] == broker["fill_size"] == "pass"
    assert broker["fill_price"] == "skipped"  # the broker trace holds no prices
    not_run = section["devices"]["venue_a-device"]["not_run"]
    assert "arbsphere conformance" in not_run["malformed_survives"]
    assert "handshake_armed" in not_run
    html = conformance_html(section)
    assert "Device conformance" in html and "venue_a-device" in html and "not run" in html


def test_faults_in_the_recorded_traffic_fail_their_checks(tmp_path: Path) -> None:
    write_run(tmp_path, crc_errors=3, duplicate_ack=True)
    section = judge(tmp_path)
    assert section["passed"] is False
    assert verdicts(section, "venue_a-device")["framing"] == "fail"
    assert verdicts(section, "broker-device")["answered_once"] == "fail"
    assert "FAILED" in conformance_html(section)

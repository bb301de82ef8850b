"""A link's hardware stamps, converted from the NIC's clock, carry their uncertainty into the
bound of every stage that ends on them (and stamps on the rig's own clock add nothing)."""

from __future__ import annotations

import json
from pathlib import Path

from test_analysis import T0, _write_traces

from arbsphere.kpi.analysis import analyse

VENUES = ["venue_a", "venue_b"]


def _stamps(proc: Path, name: str, extra: dict[str, object]) -> None:
    path = proc / f"{name}.stats.json"
    stats = json.loads(path.read_text())
    stats.update(extra)
    path.write_text(json.dumps(stats))


def test_hardware_stamp_uncertainty_goes_into_the_stage_bounds(tmp_path: Path) -> None:
    _write_traces(tmp_path, 400, 10)
    # venue_a's link takes hardware receive stamps (1.5 µs); venue_b's software ones (0); the
    # broker link's transmit stamps 0.7 µs, its receive stamps 0.4 µs
    _stamps(tmp_path, "venue_a", {"role": "venue_adapter", "venue_id": 0,
                                  "timestamps": {"rx_uncertainty_ns": 1_500}})  # fmt: skip
    _stamps(tmp_path, "venue_b", {"role": "venue_adapter", "venue_id": 1,
                                  "timestamps": {"rx_uncertainty_ns": 0}})  # fmt: skip
    _stamps(tmp_path, "broker", {"timestamps": {"tx_uncertainty_ns": 700,
                                                "rx_uncertainty_ns": 400}})  # fmt: skip
    a = analyse(tmp_path, VENUES, "broker", T0, 0.25)
    unc = {stage: sc.uncertainty_ns for stage, sc in a.stage_clock.items()}
    assert unc["adapter_decode"] == 1_500  # decoded (rig clock) - rx (venue_a's hardware)
    assert unc["adapter_to_coordinator"] == 0 and unc["solve"] == 0
    assert unc["broker_encode"] == 700  # order tx (hardware) - broker rx (rig clock)
    assert unc["rig_tick_to_order"] == 2_200  # both ends converted: the bounds add
    assert a.ticks.loc[a.ticks["venue"] == 1, "rx_unc_ns"].eq(0).all()
    assert a.ticks["ack_rx_unc_ns"].dropna().eq(400).all()


def test_stamps_on_the_rig_clock_add_no_column_and_no_bound(tmp_path: Path) -> None:
    _write_traces(tmp_path, 400, 10)
    _stamps(tmp_path, "venue_a", {"role": "venue_adapter", "venue_id": 0,
                                  "timestamps": {"rx_uncertainty_ns": 0}})  # fmt: skip
    a = analyse(tmp_path, VENUES, "broker", T0, 0.25)
    assert not {"rx_unc_ns", "order_tx_unc_ns", "ack_rx_unc_ns"} & set(a.ticks.columns)
    assert a.stage_clock["rig_tick_to_order"].uncertainty_ns == 0

"""Rig side of the clock-sync exchange: schedule, wire messages, recorded exchanges."""

from __future__ import annotations

from typing import Any

import pytest

from arbsphere.adapters.sync_master import SyncMaster, SyncSettings, open_sync_master
from arbsphere.errors import ConfigError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.runtime import config_from_json
from arbsphere.testing import FakeFeedLink, StepClock


def sent(link: FakeFeedLink) -> list[tuple[int, tuple[object, ...]]]:
    """What the master sent, decoded, in order."""
    return [dm.decode_values(m) for batch in link.sent for m in batch]


def _req(device_id: int, seq: int, t2: int, t3: int) -> tuple[object, ...]:
    rec = dm.new_record(dm.MSG_DELAY_REQ, device_id)
    rec["sync_seq"], rec["t2_ns"], rec["t3_ns"] = seq, t2, t3
    return dm.decode_values(dm.encode(rec))[1]


def test_sync_schedule_and_messages() -> None:
    clock = StepClock(1_000_000_000)
    link = FakeFeedLink(clock, tx_delay_ns=7)
    m = SyncMaster(link, clock, interval_ns=62_500_000, device_id=42)
    assert m.poll(clock.now)  # first one due at once
    assert not m.poll(clock.now + 62_499_999)
    assert m.timeout_ms(clock.now, 100) == 63  # rounds up, never spins early
    types = [(t, v[4], v[5]) for t, v in sent(link)]
    assert types == [(dm.MSG_SYNC, 1, 1_000_000_000), (dm.MSG_FOLLOW_UP, 1, 1_000_000_007)]
    clock.now += 62_500_000
    assert m.poll(clock.now)
    # a stalled loop does not burst: after a 1 s stall one SYNC, then the interval again
    clock.now += 1_000_000_000
    assert m.poll(clock.now) and not m.poll(clock.now + 1)
    assert m.counts["syncs_sent"] == 3 and m.pending == {
        1: 1_000_000_007,
        2: 1_062_500_007,
        3: 2_062_500_007,
    }


def test_delay_req_recorded_with_t1_and_answered_with_t4() -> None:
    clock = StepClock(5_000)
    link = FakeFeedLink(clock, tx_delay_ns=7)
    m = SyncMaster(link, clock, interval_ns=1_000, device_id=42)
    m.poll(clock.now)
    m.on_delay_req(_req(42, 1, 123_456, 123_999), rx_ns=9_000)
    m.on_delay_req(_req(42, 1, 123_456, 123_999), rx_ns=9_500)  # duplicate: t1 unknown now
    m.on_delay_req(_req(43, 77, 1, 2), rx_ns=9_900)  # never sent
    rows = m.trace.view()
    assert rows.tolist() == [
        (42, 1, 5_007, 123_456, 123_999, 9_000),
        (42, 1, 0, 123_456, 123_999, 9_500),
        (43, 77, 0, 1, 2, 9_900),
    ]
    resp = [v for t, v in sent(link) if t == dm.MSG_DELAY_RESP]
    assert [(v[4], v[5]) for v in resp] == [(1, 9_000), (1, 9_500), (77, 9_900)]
    assert m.counts["delay_reqs"] == 3 and m.counts["delay_reqs_unmatched"] == 2


def test_unreachable_device_counts_unsent_syncs() -> None:
    clock = StepClock(0)
    link = FakeFeedLink(clock, tx_delay_ns=7)
    link.reachable = False
    m = SyncMaster(link, clock, interval_ns=10, device_id=42)
    assert not m.poll(0)
    assert m.counts["syncs_unsent"] == 1 and m.next_seq == 1 and not m.pending


@pytest.mark.parametrize(
    ("data", "key"),
    [({"interval_ns": -1, "device_id": 1}, "sync.interval_ns"),
     ({"interval_ns": 0, "device_id": 1}, "sync.interval_ns"),
     ({"interval_ns": 1.5, "device_id": 1}, "sync.interval_ns"),
     ({"interval_ns": True, "device_id": 1}, "sync.interval_ns"),
     ({"interval_ns": "16", "device_id": 1}, "sync.interval_ns"),
     ({"interval_ns": 10}, "sync.device_id"),
     ({"interval_ns": 10, "device_id": 2**32}, "sync.device_id")],
)  # fmt: skip
def test_sync_settings_refuse_a_bad_interval_or_device(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_json(SyncSettings, data, "x.json", "sync")
    assert info.value.file == "x.json" and info.value.key == key, str(info.value)


def test_open_sync_master_runs_one_only_when_configured() -> None:
    clock = StepClock(0)
    link = FakeFeedLink(clock, tx_delay_ns=7)
    assert open_sync_master(None, link, clock) is None
    m = open_sync_master(SyncSettings(interval_ns=10, device_id=42), link, clock)
    assert m is not None and m.interval_ns == 10

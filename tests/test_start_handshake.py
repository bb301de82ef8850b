"""The start handshake: the device side (emulators' StartHandshake, fixed vectors and injected
clock offsets) and the rig side (the venue adapter's FeedArming), and the two together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from arbsphere.adapters.feed_arming import (
    ARM_REPEAT_NS,
    ArmingSettings,
    FeedArming,
    read_schedule,
    schedule_record,
)
from arbsphere.clock import DeviceClock
from arbsphere.errors import ConfigError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.start_handshake import (
    DEVICE_TIME_OFFSET,
    Capabilities,
    Schedule,
    StartHandshake,
    responder_offset,
    rig_time_of,
)
from arbsphere.firmware_interfaces.sync_responder import SyncResponder
from arbsphere.testing import FakeFeedLink, StepClock

DEVICE = 11
START = 5_000_000_000
INTERVAL = 1_000_000


def arm(seq: int, *, device: int = DEVICE, venue: int = 1, n_assets: int = 2,
        interval: int = INTERVAL, n_ticks: int = 500, start: int = START) -> bytes:  # fmt: skip
    rec = dm.new_record(dm.MSG_ARM, device)
    rec["arm_seq"], rec["start_ns"], rec["tick_interval_ns"] = seq, start, interval
    rec["n_ticks"], rec["venue_id"], rec["n_assets"] = n_ticks, venue, n_assets
    return dm.encode(rec)


def start_msg(seq: int, device: int = DEVICE) -> bytes:
    rec = dm.new_record(dm.MSG_START, device)
    rec["arm_seq"], rec["start_ns"] = seq, START
    return dm.encode(rec)


def armed_fields(raw: bytes) -> dict[str, int]:
    mtype, values = dm.decode_values(raw)
    assert mtype == dm.MSG_ARMED
    return dict(zip(dm.value_fields(mtype), (int(v) for v in values), strict=True))


def device(offset_ns: int = 0, drift_ppm: float = 0.0, known: float | None = None,
           **cap: Any) -> StartHandshake:  # fmt: skip
    dev = DeviceClock(StepClock(), offset_ns=offset_ns, drift_ppm=drift_ppm, epoch_ns=0)
    caps = Capabilities(venue_id=1, n_assets=2, **cap)
    return StartHandshake(DEVICE, dev, caps, lambda: known)


# --- device side ---------------------------------------------------------------------------


def test_arm_answered_ok_with_the_start_on_the_device_clock() -> None:
    hs = device(offset_ns=250_000, known=250_000.0)
    answer = hs.on_message(arm(7), rx_rig_ns=1_000)
    assert answer is not None
    got = armed_fields(answer.stamp(123))
    assert got == {
        "msg_type": dm.MSG_ARMED, "version": dm.DEVICE_MESSAGE_VERSION, "length": 40,
        "device_id": DEVICE, "arm_seq": 7, "status": dm.ARM_STATUS_OK,
        "start_device_ns": START + 250_000, "device_time_ns": 123,
    }  # fmt: skip
    assert DEVICE_TIME_OFFSET == 32  # the header file's offset: firmware authors see the same
    assert hs.start_device_ns() == START + 250_000
    assert hs.start_rig_ns() == START  # the emulated oscillator reads start_device_ns then
    assert hs.counters()["start_handshake"]["armed_ok"] == 1


@pytest.mark.parametrize(
    ("offset_ns", "d_out", "d_back"),
    [(0, 40_000, 40_000), (3_000_000, 25_000, 90_000), (-7_654_321, 120_000, 30_000)],
)
def test_start_follows_the_offset_learned_from_the_sync_exchange(
    offset_ns: int, d_out: int, d_back: int
) -> None:
    """The device's offset comes from its own sync exchange (t1..t4); the start on its clock
    equals start_ns + the injected offset within the exchange's error, half the asymmetry of
    the path (at most half the round trip)."""
    rig = StepClock(1_000_000_000)
    dev = DeviceClock(rig, offset_ns=offset_ns)
    responder = SyncResponder(DEVICE, dev)
    hs = StartHandshake(DEVICE, dev, Capabilities(1, 2), responder_offset(responder))
    assert hs.on_message(arm(1), rig.now) is not None
    assert hs.start_device_ns() is None and hs.start_rig_ns() is None  # no offset: waits
    t1 = 1_000_000_000
    sync = dm.new_record(dm.MSG_SYNC, DEVICE)
    sync["sync_seq"] = 1
    req = responder.on_message(dm.encode(sync), t1 + d_out)
    assert req is not None
    t3_rig = t1 + d_out + 15_000
    req.stamp(t3_rig)
    for mtype, field, value in ((dm.MSG_FOLLOW_UP, "t1_ns", t1),
                                (dm.MSG_DELAY_RESP, "t4_ns", t3_rig + d_back)):  # fmt: skip
        rec = dm.new_record(mtype, DEVICE)
        rec["sync_seq"], rec[field] = 1, value
        responder.on_message(dm.encode(rec), 0)
    start_dev = hs.start_device_ns()
    assert start_dev is not None
    error = start_dev - (START + offset_ns)
    assert error == (d_out - d_back) // 2
    assert abs(error) <= (d_out + d_back) / 2  # the sync error bound
    start_rig = hs.start_rig_ns()
    assert start_rig is not None and dev.device_time(start_rig) == start_dev


def test_inverse_of_a_drifting_stepped_device_clock() -> None:
    from arbsphere.clock import ClockStep

    dev = DeviceClock(StepClock(), offset_ns=-40_000, drift_ppm=87.5, epoch_ns=1_000_000_000,
                      steps=[ClockStep(3_000_000_000, 2_500)])  # fmt: skip
    for device_ns in (2_000_000_000, 2_999_000_000, 9_876_543_210):
        assert abs(dev.device_time(rig_time_of(dev, device_ns)) - device_ns) <= 1


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"venue": 3}, "venue_mismatch"),
        ({"n_assets": 4}, "n_assets_mismatch"),
        ({"interval": 10}, "interval_unsupported"),
        ({"n_ticks": 0}, "n_ticks_unsupported"),
    ],
)
def test_arm_refused_with_a_counted_reason(kwargs: dict[str, int], reason: str) -> None:
    hs = device(known=0.0)
    answer = hs.on_message(arm(2, **kwargs), 0)
    assert answer is not None and answer.status == dm.ARM_STATUS_REFUSED
    assert armed_fields(answer.template)["start_device_ns"] == 0
    c = hs.counters()["start_handshake"]
    assert c["armed_refused"] == 1 and c["refused"][reason] == 1 and c["armed_ok"] == 0
    assert hs.accepted is None and hs.start_rig_ns() is None  # it stays idle
    assert hs.on_message(start_msg(2), 0) is None
    assert hs.counters()["start_handshake"]["ignored"]["unmatched_start"] == 1


def test_repeated_arm_gets_the_same_armed_and_older_ones_are_ignored() -> None:
    hs = device(known=None)
    first = hs.on_message(arm(5), 0)
    again = hs.on_message(arm(5), 0)
    assert first is not None and again is first  # the same answer, start 0: on START
    assert armed_fields(first.template)["start_device_ns"] == 0
    assert hs.on_message(arm(4), 0) is None  # older than the last accepted
    assert hs.on_message(arm(5, device=99), 0) is None
    c = hs.counters()["start_handshake"]
    assert c["arms"] == 3 and c["arms_repeated"] == 1 and c["armed_ok"] == 1
    assert c["ignored"]["stale_arm"] == 1 and c["ignored"]["wrong_device"] == 1


def test_without_an_offset_the_device_starts_on_start() -> None:
    hs = device(known=None)
    hs.on_message(arm(9), 0)
    assert hs.start_rig_ns() is None
    hs.on_message(start_msg(8), 6_000_000_000)  # an older arm_seq: not this schedule
    assert hs.start_rig_ns() is None
    hs.on_message(start_msg(9), 6_000_000_123)
    assert hs.start_rig_ns() == 6_000_000_123
    s = hs.begin(6_000_000_123)
    assert (s.arm_seq, s.n_ticks, s.tick_interval_ns) == (9, 500, INTERVAL)
    hs.on_message(start_msg(9), 6_100_000_000)
    c = hs.counters()["start_handshake"]
    assert c["starts"] == 1 and c["started_on"] == "start_message"
    assert c["ignored"]["stale_start"] == 1 and c["ignored"]["start_while_running"] == 1
    busy = hs.on_message(arm(10), 0)  # a new schedule while one runs
    assert busy is not None and busy.status == dm.ARM_STATUS_REFUSED
    assert hs.counters()["start_handshake"]["refused"]["busy"] == 1


def test_a_preset_device_answers_an_arm_of_its_own_schedule() -> None:
    """An emulator launched with start_at_ns runs its schedule and confirms an ARM of it."""
    dev = DeviceClock(StepClock(), offset_ns=1_000)
    preset = Schedule(0, START, INTERVAL, 500, 1, 2)
    cap = Capabilities(1, 2, INTERVAL, INTERVAL, n_ticks=500)
    hs = StartHandshake(DEVICE, dev, cap, lambda: None, preset=preset)
    ok = hs.on_message(arm(3), 0)
    assert ok is not None and ok.status == dm.ARM_STATUS_OK
    assert ok.start_device_ns == START + 1_000 and hs.start_rig_ns() == START
    other = hs.on_message(arm(4, n_ticks=499), 0)
    assert other is not None and other.status == dm.ARM_STATUS_REFUSED
    assert hs.counters()["start_handshake"]["refused"]["n_ticks_unsupported"] == 1


def test_malformed_and_foreign_input_is_counted_never_answered() -> None:
    hs = device()
    assert hs.on_message(arm(1)[:20], 0) is None
    assert hs.on_message(arm(1) + b"\0" * 8, 0) is None
    sync = dm.new_record(dm.MSG_SYNC, DEVICE)
    assert hs.on_message(dm.encode(sync), 0) is None
    assert hs.counters()["start_handshake"]["ignored"]["malformed_message"] == 3


# --- rig side ------------------------------------------------------------------------------


def arming(tmp_path: Path, clock: StepClock) -> tuple[FeedArming, FakeFeedLink]:
    link = FakeFeedLink(clock)
    settings = ArmingSettings(DEVICE, str(tmp_path / "v.arm.json"), str(tmp_path / "v.armed.json"))
    return FeedArming(settings, link), link


def write_schedule(tmp_path: Path, seq: int = 42) -> None:
    record = schedule_record(seq, START, INTERVAL, 500, 1, 2)
    (tmp_path / "v.arm.json").write_text(json.dumps(record))


def sent_types(link: FakeFeedLink) -> list[tuple[int, int]]:
    return [(t, int(v[4])) for t, v in (dm.decode_values(m) for b in link.sent for m in b)]


def test_adapter_arms_repeats_until_armed_then_starts_at_start_ns(tmp_path: Path) -> None:
    clock = StepClock(1_000_000_000)
    a, link = arming(tmp_path, clock)
    assert not a.poll(clock.now) and a.state == "waiting"  # no schedule file yet
    assert a.timeout_ms(clock.now, 100) == 20
    write_schedule(tmp_path)
    clock.advance(20_000_000)
    a.poll(clock.now)
    link.reachable = False  # a UDP device not heard from yet: nothing can be sent
    a.poll(clock.now)
    link.reachable = True
    for _ in range(2):
        clock.advance(ARM_REPEAT_NS)
        a.poll(clock.now)
    assert sent_types(link) == [(dm.MSG_ARM, 42)] * 2
    assert a.counts["arms_sent"] == 2 and a.counts["arms_unsent"] == 1
    raw = dm.decode_values(link.sent[0][0])[1]
    assert tuple(int(v) for v in raw[4:10]) == (42, START, INTERVAL, 500, 1, 2)
    device_side = device(offset_ns=0, known=0.0)
    answer = device_side.on_message(link.sent[0][0], clock.now)
    assert answer is not None
    a.on_armed(dm.decode_values(answer.stamp(77))[1], clock.now)
    a.on_armed(dm.decode_values(answer.stamp(78))[1], clock.now)  # a repeated ARM's answer
    a.on_armed((*dm.decode_values(answer.stamp(78))[1][:4], 41, 1, 0, 0), clock.now)
    assert a.state == "armed" and a.counts["armed_ok"] == 1
    assert a.counts["armed_repeated"] == 1 and a.counts["unexpected_armed"] == 1
    assert json.loads((tmp_path / "v.armed.json").read_text()) == {
        "status": "ok", "arm_seq": 42, "start_device_ns": START, "device_time_ns": 77,
        "rx_ns": clock.now, "arms_sent": 2,
    }  # fmt: skip
    clock.now = START - 1
    assert not a.poll(clock.now) and a.timeout_ms(clock.now, 100) == 1
    clock.now = START
    assert a.poll(clock.now) and a.state == "started"
    assert sent_types(link)[-1] == (dm.MSG_START, 42) and a.counts["starts_sent"] == 1


def test_adapter_records_a_refusal_and_stops(tmp_path: Path) -> None:
    clock = StepClock(1_000_000_000)
    a, link = arming(tmp_path, clock)
    write_schedule(tmp_path)
    a.poll(clock.now)
    a.poll(clock.now)
    answer = device(known=0.0, min_interval_ns=2 * INTERVAL).on_message(link.sent[0][0], 0)
    assert answer is not None
    a.on_armed(dm.decode_values(answer.stamp(0))[1], clock.now)
    assert a.state == "refused" and a.counts["armed_refused"] == 1
    assert json.loads((tmp_path / "v.armed.json").read_text())["status"] == "refused"
    clock.now = START + 1
    assert a.poll(clock.now) and a.counts["starts_sent"] == 0  # no START for a refusal


def test_schedule_file_errors_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({**schedule_record(1, 2, 3, 4, 5, 6), "n_ticks": "many"}))
    with pytest.raises(ConfigError) as err:
        read_schedule(path)
    assert err.value.key == "n_ticks" and str(path) in str(err.value)
    path.write_text("{}")
    with pytest.raises(ConfigError, match="arm_seq"):
        read_schedule(path)


def test_after_its_schedule_an_armed_device_takes_the_next_arm_only() -> None:
    hs = device(known=0.0)
    hs.on_message(arm(5), 0)
    hs.begin(START)
    hs.finish()
    assert hs.accepted is None and hs.start_rig_ns() is None  # idle again
    assert hs.on_message(arm(5), 0) is not None  # the old ARM's answer, repeated ...
    assert hs.accepted is None  # ... starts nothing
    assert hs.on_message(arm(4), 0) is None
    nxt = hs.on_message(arm(6, start=START + 10**9), 0)
    assert nxt is not None and nxt.status == dm.ARM_STATUS_OK
    assert hs.start_rig_ns() == START + 10**9
    c = hs.counters()["start_handshake"]
    assert c["schedules_run"] == 1 and c["armed_ok"] == 2 and c["started_on"] == "offset"


def _sync_msg(mtype: int, seq: int, value: int = 0) -> bytes:
    rec = dm.new_record(mtype, DEVICE)
    rec["sync_seq"] = seq
    field = {dm.MSG_SYNC: "origin_ns", dm.MSG_FOLLOW_UP: "t1_ns", dm.MSG_DELAY_RESP: "t4_ns"}
    rec[field[mtype]] = value
    return dm.encode(rec)


def test_a_new_run_restarts_the_devices_sync_session_after_a_quiet_spell() -> None:
    """An external device outlives a run; the next run's sync master numbers from 1 again. A
    SYNC 1 right after others is out of order (not answered); after a second without SYNC it
    starts a new session whose offsets owe nothing to the old run's."""
    from arbsphere.firmware_interfaces.sync_responder import SESSION_GAP_NS

    r = SyncResponder(DEVICE, DeviceClock(StepClock(), offset_ns=1_000))
    offset = responder_offset(r)
    t = 10_000_000_000
    for seq in (1, 2, 3):
        req = r.on_message(_sync_msg(dm.MSG_SYNC, seq), t + 50)
        assert req is not None
        req.stamp(t + 60)
        r.on_message(_sync_msg(dm.MSG_FOLLOW_UP, seq, t), 0)
        r.on_message(_sync_msg(dm.MSG_DELAY_RESP, seq, t + 110), 0)
        t += 31_250_000
    assert offset() == 1_000 and r.counts["sync_exchanges"] == 3
    assert r.on_message(_sync_msg(dm.MSG_SYNC, 1), t) is None  # within the session
    assert r.rejects["out_of_order_sync"] == 1
    t += SESSION_GAP_NS
    assert r.on_message(_sync_msg(dm.MSG_SYNC, 1), t) is not None  # the next run
    assert r.counts["sync_restarts"] == 1 and offset() is None  # the old run's are forgotten

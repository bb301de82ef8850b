"""Each misbehaving-device switch of the emulators makes the conformance check named for it fail,
while the checks the fault does not touch still pass: the suite run unchanged (through
``arbsphere.rig.conformance_run``, as ``arbsphere conformance`` runs it) against an emulator
with a ``misbehave`` table. A test here fails if its check stops catching its fault."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from arbsphere.clock import RealtimeClock
from arbsphere.conformance import BrokerSuiteSettings, FeedSuiteSettings, SuiteResult
from arbsphere.conformance.model import FAIL, PASS
from arbsphere.rig.config import Campaign, load_campaign
from arbsphere.rig.conformance_run import ConformanceSettings, run_conformance

ROOT = Path(__file__).resolve().parents[1]
#: short sessions: enough ticks, syncs and orders to judge, a few seconds a device
FEED = FeedSuiteSettings(idle_s=0.3, traffic_s=1.0, malformed_s=0.4)
BROKER = BrokerSuiteSettings(idle_s=0.2, n_orders=120, answer_s=1.0, malformed_s=0.4)
#: checks every well-behaved emulator passes whatever its switch breaks elsewhere
ALWAYS = ("device_id", "message_decode")


def campaign(broker_link: str = "udp") -> Campaign:
    c = load_campaign(ROOT / "campaigns" / "loopback.toml")
    return dataclasses.replace(c, broker=dataclasses.replace(c.broker, link=broker_link))


def run_one(device: str, switches: Mapping[str, Any], broker_link: str = "udp") -> SuiteResult:
    settings = ConformanceSettings(feed=FEED, broker=BROKER, only=(device,),
                                   misbehave={device: dict(switches)})  # fmt: skip
    (result,) = run_conformance(campaign(broker_link), RealtimeClock(), settings)
    return result


def verdicts(result: SuiteResult) -> dict[str, str]:
    return {c.name: c.verdict for c in result.checks}


def assert_caught(result: SuiteResult, failing: tuple[str, ...], passing: tuple[str, ...]) -> None:
    v = verdicts(result)
    detail = {c.name: c.detail for c in result.checks if c.name in failing}
    for name in failing:
        assert v[name] == FAIL, f"{result.device}: {name} is {v[name]}, expected fail: {detail}"
    for name in (*ALWAYS, *passing):
        assert v[name] == PASS, f"{result.device}: {name} is {v[name]}: " + next(
            c.detail for c in result.checks if c.name == name
        )
    assert not result.passed


@pytest.mark.slow
@pytest.mark.parametrize(
    ("device", "switches", "failing", "passing"),
    [
        ("venue_b-device", {"bad_crc": 50}, ("framing",),
         ("tick_duplicates", "tick_fields", "malformed_no_answer")),
        ("venue_a-device", {"bad_crc": 50}, ("framing",),
         ("tick_duplicates", "tick_fields", "malformed_no_answer")),
        ("venue_a-device", {"sequence_jumps": 100}, ("tick_sequence",),
         ("framing", "tick_duplicates", "sync_answers", "rate_arrival")),
        ("venue_b-device", {"no_sync_answers": True}, ("sync_answers", "malformed_survives"),
         ("framing", "tick_sequence", "malformed_no_answer")),
        # its answer to the garbage SYNC moves its last sync_seq far ahead: it then refuses
        # the rig's next SYNCs as out of order, so sync_answers fails too
        ("venue_a-device", {"answers_any_device": True}, ("malformed_no_answer",),
         ("framing", "tick_sequence", "rate_arrival")),
        # (the SYNCs after the crash go unanswered: sync_answers fails too)
        ("venue_a-device", {"crash_on_malformed": True}, ("malformed_survives",),
         ("framing", "tick_sequence", "heartbeat_interval", "rate_arrival")),
    ],
    ids=["feed-serial-bad_crc", "feed-udp-bad_crc", "sequence_jumps", "no_sync_answers",
         "answers_any_device", "crash_on_malformed"],
)  # fmt: skip
def test_feed_switch_fails_its_check(
    device: str, switches: dict[str, Any], failing: tuple[str, ...], passing: tuple[str, ...]
) -> None:
    result = run_one(device, switches)
    assert_caught(result, failing, passing)
    if "crash_on_malformed" in switches:
        assert result.info["emulator_exit_code"] == 3, result.info


@pytest.mark.slow
@pytest.mark.parametrize(
    ("link", "switches", "failing", "passing"),
    [
        ("udp", {"duplicate_acks": 10}, ("answered_once",),
         ("orders_answered", "fill_size", "sync_answers", "malformed_no_answer")),
        ("udp", {"overfill": 5}, ("fill_size",),
         ("orders_answered", "answered_once", "fill_price", "sync_answers")),
        ("serial", {"bad_crc": 7}, ("framing",),
         ("fill_size", "malformed_no_answer", "invalid_orders")),
        ("serial", {"crash_on_malformed": True}, ("malformed_survives",),
         ("orders_answered", "answered_once", "fill_size", "framing")),
    ],
    ids=["duplicate_acks", "overfill", "serial-bad_crc", "serial-crash_on_malformed"],
)  # fmt: skip
def test_broker_switch_fails_its_check(
    link: str, switches: dict[str, Any], failing: tuple[str, ...], passing: tuple[str, ...]
) -> None:
    assert_caught(run_one("broker-device", switches, broker_link=link), failing, passing)


def test_misbehave_table_is_validated_naming_file_and_key() -> None:
    from arbsphere.errors import ConfigError
    from arbsphere.firmware_interfaces.device_main import ConfigReader
    from arbsphere.firmware_interfaces.emulators.misbehave import (
        BROKER_SWITCHES,
        FEED_SWITCHES,
        read_misbehave,
    )

    def read(table: dict[str, Any], allowed: tuple[str, ...] = FEED_SWITCHES) -> Any:
        return read_misbehave(ConfigReader({"misbehave": table}, "dev.json"), allowed)

    assert read({}).on() == {}
    assert read({"bad_crc": 3, "no_sync_answers": True}).on() == {
        "bad_crc": 3, "no_sync_answers": True,
    }  # fmt: skip
    with pytest.raises(ConfigError, match=r"dev\.json: key 'misbehave\.overfill': unknown key"):
        read({"overfill": 2})  # a broker's switch on a feed
    with pytest.raises(ConfigError, match=r"misbehave\.no_sync_answers': must be true or false"):
        read({"no_sync_answers": 1})
    with pytest.raises(ConfigError, match=r"misbehave\.duplicate_acks': must be >= 1"):
        read({"duplicate_acks": 0}, BROKER_SWITCHES)

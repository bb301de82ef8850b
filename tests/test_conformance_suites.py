"""The conformance suites (arbsphere.conformance): the judges on recorded data, the start
handshake against a small in-test device speaking the declared protocol, the writers, and
``arbsphere conformance`` on the default campaign (exit code, JUnit XML, JSON)."""

from __future__ import annotations

import json
import socket
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arbsphere.adapters.backends import BACKENDS, FeedLinkSpec
from arbsphere.adapters.links import FeedLink, LinkParams
from arbsphere.clock import RealtimeClock
from arbsphere.conformance import FeedSuiteSettings, FeedTarget, SuiteResult, judges, run_feed_suite
from arbsphere.conformance.contract_suite import contract_checks
from arbsphere.conformance.garbage import RAW_WRITERS, garbage_units
from arbsphere.conformance.model import FAIL, MARGINAL, PASS, SKIPPED, Check, Limits, measured
from arbsphere.conformance.writers import JSON_SCHEMA, junit_xml, to_json
from arbsphere.contracts import default_registry
from arbsphere.errors import DatagramError, DecodeError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.udp_datagram import pack_datagram, session_id, unpack_datagram
from arbsphere.rig import cli

ROOT = Path(__file__).resolve().parents[1]


# --- model and judges ---------------------------------------------------------------------


def test_limits_judge_pass_marginal_fail() -> None:
    lim = Limits.within(0.95, 1.05, 0.8, 1.2)
    assert [lim.judge(v) for v in (1.0, 0.9, 1.1, 0.5, 1.3, None)] == [
        PASS, MARGINAL, MARGINAL, FAIL, FAIL, FAIL,
    ]  # fmt: skip
    assert Limits.at_most(0).judge(0) == PASS and Limits.at_most(0).judge(1) == FAIL
    assert Limits.at_least(0.99, 0.9).judge(float("nan")) == FAIL
    assert lim.text() == "[0.95, 1.05] (marginal [0.8, 1.2])"
    with pytest.raises(ValueError, match="lo"):
        Limits.within(2, 1)


def test_a_failed_required_check_fails_a_marginal_one_does_not() -> None:
    fail = measured("x", "feed", 3, "n", Limits.at_most(0))
    marginal = measured("y", "feed", 3, "n", Limits.at_most(0, 5))
    info = measured("z", "feed", 9, "n", Limits.at_most(0), required=False)
    assert (fail.ok, marginal.ok, info.ok) == (False, True, True)
    assert Check.from_json(fail.to_json()) == fail


def test_tick_sequence_counts_missing_and_duplicates() -> None:
    gaps, dups = judges.tick_sequence([1, 2, 3, 5, 6, 6, 9])
    assert (gaps.value, gaps.verdict) == (3, FAIL)  # 4, 7, 8 missing
    assert (dups.value, dups.verdict) == (1, FAIL)
    gaps, dups = judges.tick_sequence(np.arange(100, 200))
    assert (gaps.verdict, dups.verdict) == (PASS, PASS)


def test_sync_checks_catch_unanswered_stray_backwards_and_acausal_exchanges() -> None:
    good = [(k, 1000 * k, 1000 * k + 100, 1000 * k + 150, 1000 * k + 300) for k in range(1, 21)]
    record = judges.SyncRecord(range(1, 21), good)
    ok = {c.name: c.verdict for c in judges.sync_checks("feed", record)}
    assert set(ok.values()) == {PASS}, ok
    bad = [*good[:10], (11, 11_000, 9_000, 9_050, 11_300), (12, 12_000, 12_100, 20_000, 12_300)]
    got = {c.name: c for c in judges.sync_checks("feed", judges.SyncRecord(range(1, 21), bad))}
    assert got["sync_answers"].verdict == FAIL  # 12 of 20
    assert got["sync_monotonic"].value == 2  # t2 and t3 of 11 go back
    assert got["sync_causality"].value == 1  # 12: t3 - t2 > t4 - t1
    stray = judges.sync_checks("feed", judges.SyncRecord(range(1, 21), [*good, (99, 0, 1, 2, 3)]))
    assert stray[0].verdict == FAIL and "1 DELAY_REQs for SYNCs never sent" in stray[0].detail


def test_ack_checks_catch_each_broker_fault() -> None:
    orders = [judges.SentOrder(i, 1 if i % 2 else -1, 10, 100, 0) for i in range(1, 6)]
    acks = np.zeros(5, dm.ACK_DTYPE)
    acks["order_id"] = [1, 2, 3, 3, 7]
    acks["status"] = [dm.ACK_STATUS_FILL, dm.ACK_STATUS_PARTIAL, dm.ACK_STATUS_FILL,
                      dm.ACK_STATUS_FILL, dm.ACK_STATUS_REJECT]  # fmt: skip
    acks["filled_lots"] = [11, 4, 10, 10, 0]
    acks["fill_px"] = [101, 100, 100, 100, 0]  # 1: a buy above its limit
    acks["device_rx_ns"] = [1, 2, 1, 4, 5]
    acks["device_tx_ns"] = [2, 3, 2, 5, 6]  # goes back once
    got = {c.name: c for c in judges.ack_checks(orders, acks, np.zeros(5, np.int64))}
    assert got["orders_answered"].value == 2  # 4 and 5
    assert got["answered_once"].value == 2  # 3 twice, 7 unknown
    assert got["fill_size"].value == 1  # 11 of 10
    assert got["fill_price"].value == 1
    assert got["device_stamps"].value == 1
    assert got["final_status"].verdict == PASS


def test_rate_adherence_judges_lateness_early_sends_and_rate() -> None:
    n = 1000
    intended = np.arange(n) * 1_000_000  # 1000/s
    rx = intended + 50_000
    ok = {c.name: c.verdict for c in judges.rate_adherence(intended, intended + 100, rx, 1000)}
    assert set(ok.values()) == {PASS}
    slow = {c.name: c for c in judges.rate_adherence(intended, intended - 5, rx * 2, 1000)}
    assert slow["rate_early_sends"].value == n and slow["rate_arrival"].verdict == FAIL


def test_every_backend_has_garbage_and_a_raw_writer() -> None:
    """A registered link backend must be able to carry the malformed-input checks."""
    for name in BACKENDS:
        assert name in RAW_WRITERS, f"link backend {name!r} has no raw writer (garbage.py)"
        assert garbage_units(name, 10) and garbage_units(name, 200, orders=True)


def test_udp_garbage_is_rejected_by_the_rig_s_own_parsers() -> None:
    """Every UDP garbage unit is garbage: it fails to unpack, or a message in it fails to
    decode or is addressed to another device (a well-behaved device rejects it)."""
    for unit in garbage_units("udp", 10):
        try:
            dgram = unpack_datagram(unit)
        except DatagramError:
            continue
        for msg in dgram.messages:
            try:
                _, rec = dm.decode(msg)
            except DecodeError:
                continue
            assert int(rec["device_id"][0]) != 10, unit


# --- the start handshake, against an in-test device ------------------------------------------


class HandshakeDevice:
    """A UDP feed device in a thread speaking the declared start handshake: HEARTBEATs while
    idle, ARMED to ARM (``mode`` "ok"; "refuse": status REFUSED; "silent": never answers),
    TICKs from the armed start at the armed interval, DELAY_REQ to SYNC."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.002)
        self.target: tuple[str, int] | None = None
        self.seq = 1
        self.stop = threading.Event()
        self.armed: tuple[int, int, int] | None = None  # start_ns, interval, n_ticks
        self.thread = threading.Thread(target=self.run, daemon=True)

    def send(self, msgs: list[bytes]) -> None:
        assert self.target is not None
        self.sock.sendto(pack_datagram(session_id("HSK"), self.seq, msgs), self.target)
        self.seq += len(msgs)

    def run(self) -> None:
        clock = RealtimeClock()
        next_hb, tick = 0, 0
        while not self.stop.is_set():
            now = clock.now_ns()
            if now >= next_hb:
                hb = dm.new_record(dm.MSG_HEARTBEAT, 10)
                hb["device_seq"], hb["device_time_ns"] = tick, now
                self.send([dm.encode(hb)])
                next_hb = now + 100_000_000
            if self.armed is not None:
                start, interval, n = self.armed
                while tick < n and start + tick * interval <= clock.now_ns():
                    self.send([self.tick(tick, start + tick * interval, clock.now_ns())])
                    tick += 1
            self.serve(clock)

    def tick(self, k: int, intended: int, now: int) -> bytes:
        t = dm.new_record(dm.MSG_TICK, 10)
        t["device_seq"], t["intended_send_ns"], t["send_ns"] = k, intended, now
        t["bid_px"], t["ask_px"], t["bid_size"], t["ask_size"] = 99, 101, 1, 1
        return dm.encode(t)

    def serve(self, clock: RealtimeClock) -> None:
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return
        rx = clock.now_ns()
        try:
            msgs = unpack_datagram(data).messages
        except DatagramError:
            return
        for m in msgs:
            try:
                mtype, rec = dm.decode(bytes(m))
            except DecodeError:
                continue
            if int(rec["device_id"][0]) != 10:
                continue
            self.answer(mtype, rec, rx, clock)

    def answer(self, mtype: int, rec: np.ndarray, rx: int, clock: RealtimeClock) -> None:
        if mtype == dm.MSG_SYNC:
            req = dm.new_record(dm.MSG_DELAY_REQ, 10)
            req["sync_seq"], req["t2_ns"], req["t3_ns"] = rec["sync_seq"], rx, clock.now_ns()
            self.send([dm.encode(req)])
        elif mtype == dm.MSG_ARM and self.mode != "silent":
            armed = dm.new_record(dm.MSG_ARMED, 10)
            armed["arm_seq"] = rec["arm_seq"]
            ok = self.mode == "ok"
            armed["status"] = dm.ARM_STATUS_OK if ok else dm.ARM_STATUS_REFUSED
            armed["device_time_ns"] = clock.now_ns()
            if ok and self.armed is None:
                self.armed = (int(rec["start_ns"][0]), int(rec["tick_interval_ns"][0]),
                              int(rec["n_ticks"][0]))  # fmt: skip
            self.send([dm.encode(armed)])


def run_handshake(mode: str) -> SuiteResult:
    device = HandshakeDevice(mode)
    spec = FeedLinkSpec.of("udp", LinkParams(name="hsk"))

    def start(link: FeedLink) -> None:
        device.target = getattr(link, "address")  # noqa: B009
        device.thread.start()

    settings = FeedSuiteSettings(idle_s=0.4, traffic_s=0.8, malformed_s=0.3, arm_timeout_s=0.6,
                                 start_lead_s=0.3)  # fmt: skip
    try:
        target = FeedTarget("hsk-device", spec, 10, 0, rate_hz=200.0)
        return run_feed_suite(target, RealtimeClock(), settings, on_open=start)
    finally:
        device.stop.set()
        device.thread.join(2.0)
        device.sock.close()


@pytest.mark.slow
def test_handshake_arms_a_device_that_speaks_it() -> None:
    result = run_handshake("ok")
    v = {c.name: c for c in result.checks}
    for name in ("handshake_armed", "first_tick", "rate_arrival", "tick_sequence", "sync_answers",
                 "heartbeat_interval", "malformed_no_answer", "malformed_survives"):  # fmt: skip
        assert v[name].verdict in (PASS, MARGINAL), (name, v[name].detail)
    assert v["handshake_armed"].value is not None and v["handshake_armed"].value < 250


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["refuse", "silent"])
def test_handshake_fails_a_refusing_or_silent_device(mode: str) -> None:
    v = {c.name: c for c in run_handshake(mode).checks}
    assert v["handshake_armed"].verdict == FAIL, v["handshake_armed"].detail
    assert v["first_tick"].verdict == FAIL  # it never started
    assert v["sync_answers"].verdict == PASS  # the rest of the device is fine


# --- writers and the command ----------------------------------------------------------------


def sample_results() -> list[SuiteResult]:
    lim = Limits.at_most(0)
    checks = (
        measured("a", "feed", 0, "n", lim),
        measured("b", "feed", 2, "n", lim),
        measured("c", "feed", 2, "n", lim, required=False),
        Check("d", "feed", None, "ms", lim, SKIPPED, True, "no hardware"),
    )
    return [SuiteResult("dev", "feed", "udp", checks)]


def test_junit_counts_failures_and_skips() -> None:
    root = junit_xml(sample_results()).getroot()
    assert root is not None
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("4", "1", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["b"].find("failure") is not None
    assert cases["c"].find("failure") is None  # not required: reported, not failed
    skip = cases["d"].find("skipped")
    assert skip is not None and skip.get("message") == "no hardware"
    data = to_json(sample_results())
    assert data["schema"] == JSON_SCHEMA and data["passed"] is False


def test_cli_exit_code_follows_the_required_checks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from arbsphere.rig import conformance_run

    monkeypatch.setattr(conformance_run, "run_conformance", lambda *a, **k: sample_results())
    assert cli.main(["conformance", str(ROOT / "campaigns/loopback.toml")]) == 1
    ok = [SuiteResult("dev", "feed", "udp", sample_results()[0].checks[:1])]
    monkeypatch.setattr(conformance_run, "run_conformance", lambda *a, **k: ok)
    assert cli.main(["conformance", "--json", str(tmp_path / "c.json")]) == 0
    assert cli.main(["conformance", str(tmp_path / "missing.toml")]) == 2


@pytest.mark.slow
def test_cli_on_the_loopback_campaign_passes_and_writes_junit_and_json(tmp_path: Path) -> None:
    junit, js = tmp_path / "c.xml", tmp_path / "c.json"
    code = cli.main(["conformance", str(ROOT / "campaigns/loopback.toml"), "--junit", str(junit),
                     "--json", str(js)])  # fmt: skip
    data: dict[str, Any] = json.loads(js.read_text())
    failed = [(s["device"], c["name"], c["detail"]) for s in data["suites"] for c in s["checks"]
              if c["verdict"] == FAIL and c["required"]]  # fmt: skip
    assert code == 0, failed
    assert data["schema"] == JSON_SCHEMA and data["passed"] is True
    assert [(s["device"], s["interface"], s["backend"]) for s in data["suites"]] == [
        ("venue_a-device", "feed", "udp"),
        ("venue_b-device", "feed", "serial"),
        ("broker-device", "broker", "udp"),
        ("venue_a", "adapter", "udp"),
        ("venue_b", "adapter", "serial"),
        ("broker", "adapter", "udp"),
    ]
    tags = {s["device"]: c["verdict"] for s in data["suites"] for c in s["checks"]
            if c["name"] == "message_tags"}  # fmt: skip
    assert tags == dict.fromkeys(("venue_a", "venue_b", "broker"), PASS)  # judged, tags on
    n_checks = sum(len(s["checks"]) for s in data["suites"])
    root = ET.parse(junit).getroot()
    assert int(root.get("tests", -1)) == n_checks == len(list(root.iter("testcase")))
    assert root.get("failures") == "0"
    assert int(root.get("skipped", -1)) == data["counts"]["skipped"] > 0  # capability-gated
    for suite in data["suites"]:
        for c in suite["checks"]:
            assert set(c) >= {"name", "interface", "value", "unit", "limits", "verdict",
                              "required", "detail"}  # fmt: skip
        if suite["interface"] != "adapter":  # stopped by the command, not crashed
            assert suite["info"]["emulator_exit_code"] == 0


# --- the adapters' contract traffic ---------------------------------------------------------


def _msg(name: str, version: int, *, sender: int = 100, nonce: int, ts: int) -> bytes:
    reg = default_registry()
    schema = reg.schema(name, version)
    return reg.encode(schema, np.zeros(1, schema.header_dtype), sender_id=sender, nonce=nonce,
                      origin_ts_ns=ts)  # fmt: skip


def test_contract_checks_judge_versions_envelopes_and_garbage() -> None:
    reg = default_registry()
    ts = 5_000_000_000
    good = [[_msg("VenueQuote", 1, nonce=k, ts=ts)] for k in range(1, 6)]
    window = (ts - 10**9, ts + 10**9)

    def judge(msgs: list[list[bytes]]) -> dict[str, Check]:
        got = contract_checks(msgs, reg, "toyPair", "venue_a", ["venue_a", "venue_b"], 100,
                              window, tags_reason="plaintext session")  # fmt: skip
        return {c.name: c for c in got}

    ok = judge(good)
    assert all(c.ok for c in ok.values()) and ok["message_tags"].verdict == SKIPPED
    bad = judge([
        *good,
        [_msg("LocalArbProblem", 1, nonce=9, ts=ts)],  # toyPair venues do not speak it
        [_msg("VenueQuote", 1, sender=101, nonce=10, ts=ts)],  # another venue's sender id
        [_msg("VenueQuote", 1, nonce=3, ts=ts)],  # a nonce again
        [_msg("VenueQuote", 1, nonce=11, ts=ts + 60 * 10**9)],  # a minute after the session
        [b"\x00" * 40],  # no envelope
    ])  # fmt: skip
    assert {n: bad[n].value for n in ("contract_versions", "envelope_sender", "envelope_nonce",
                                      "envelope_origin_ts", "contract_decode")} == dict.fromkeys(
        ("contract_versions", "envelope_sender", "envelope_nonce", "envelope_origin_ts",
         "contract_decode"), 1)  # fmt: skip
    assert judge([])["contract_frames"].verdict == FAIL


def test_capability_checks_run_only_where_the_probe_found_the_capability(tmp_path: Path) -> None:
    from arbsphere.conformance import capabilities

    nic = {"interface": "eth1", "local_address": "10.0.0.1",
           "timestamping": {"hardware_rx": True, "so_timestamping": ["RX_HARDWARE"]}}  # fmt: skip
    assert capabilities.hw_rx_timestamps("feed", "udp", nic, "hardware").verdict == PASS
    assert capabilities.hw_rx_timestamps("feed", "udp", nic, "kernel-software").verdict == FAIL
    lo = {"interface": "lo", "timestamping": {"hardware_rx": False, "so_timestamping": []}}
    skip = capabilities.hw_rx_timestamps("feed", "udp", lo, "kernel-software")
    assert skip.verdict == SKIPPED and "lo offers no hardware receive stamps" in skip.detail
    assert capabilities.hw_rx_timestamps("feed", "udp", {}, "user-space").verdict == SKIPPED
    pty = capabilities.serial_low_latency("feed", "serial", "/dev/pts/99")
    assert pty.verdict == SKIPPED and "not a USB serial port" in pty.detail

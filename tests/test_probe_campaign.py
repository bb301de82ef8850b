"""``arbsphere probe CAMPAIGN``: every hardware device of a campaign is checked on this host —
a serial port on a real pty (present, or /dev/nonexistent), a UDP venue on 127.0.0.1 (present)
or on 192.0.2.123 (no interface has it) — and the command exits non-zero naming what is
missing. Timestamp modes are judged from recorded interface capabilities."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbsphere.adapters.nic_timestamping import SOF_TIMESTAMPING, TimestampingInfo
from arbsphere.adapters.pty import open_pty_pair
from arbsphere.rig.cli import main
from arbsphere.rig.config import load_campaign
from arbsphere.rig.probe_campaign import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    judge_timestamping,
    probe_campaign,
    source_check,
)

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = (ROOT / "campaigns" / "loopback.toml").read_text()
SERIAL_VENUE = 'device = "emulator"\nport = "pty"'
UDP_VENUE = 'device = "emulator"\nbind_host = "127.0.0.1"\nbind_port = 0'


@pytest.fixture
def pty_slave() -> Iterator[str]:
    master, slave = open_pty_pair()
    try:
        yield slave
    finally:
        os.close(master)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _campaign(tmp_path: Path, *, serial_port: str | None = None, extra: str = "",
              bind_host: str | None = None, bind_port: int = 0) -> Path:  # fmt: skip
    """loopback.toml with venue_b's feed on hardware serial ``serial_port`` (``extra``: more
    keys of its table) and/or venue_a's on hardware UDP at ``bind_host``."""
    assert SERIAL_VENUE in LOOPBACK and UDP_VENUE in LOOPBACK
    text = LOOPBACK
    if serial_port is not None:
        text = text.replace(SERIAL_VENUE, f'device = "hardware"\nport = "{serial_port}"{extra}')
    if bind_host is not None:
        text = text.replace(UDP_VENUE, f'device = "hardware"\nbind_host = "{bind_host}"\n'
                            f"bind_port = {bind_port}")  # fmt: skip
    path = tmp_path / "lab.toml"
    path.write_text(text)
    return path


def _rows(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    checks = probe_campaign(load_campaign(path))
    return {(c.device, c.check): (c.found, c.verdict) for c in checks}


def test_a_hardware_serial_feed_on_a_pty_that_exists_passes(
    tmp_path: Path, pty_slave: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _campaign(tmp_path, serial_port=pty_slave, extra='\nflow_control = "rtscts"')
    rows = _rows(path)
    assert rows[("venue_b", "port exists")] == (pty_slave, PASS)
    found, verdict = rows[("venue_b", "port opens")]
    assert verdict == PASS and "flow control rtscts" in found and "921600 baud" in found
    assert rows[("venue_b", "settings held")] == ("all", PASS)
    # a pty has no low-latency flag: the run goes on without it, the probe warns
    found, verdict = rows[("venue_b", "low latency")]
    assert verdict == WARN and "ENOTTY" in found
    assert rows[("venue_a", "device")] == ("emulated, nothing to probe", SKIP)
    assert rows[("broker", "device")] == ("emulated, nothing to probe", SKIP)
    assert main(["probe", str(path)]) == 0
    out = capsys.readouterr().out
    assert "venue_b" in out and "port opens" in out and "nothing missing" in out
    assert main(["probe", str(path), "--strict"]) == 1  # the warning fails when strict
    assert "venue_b: low latency:" in capsys.readouterr().err
    quiet = _campaign(tmp_path, serial_port=pty_slave, extra="\nlow_latency = false")
    assert ("venue_b", "low latency") not in _rows(quiet)
    assert main(["probe", str(quiet), "--strict"]) == 0


def test_a_setting_the_port_does_not_hold_fails_naming_it(tmp_path: Path, pty_slave: str) -> None:
    rows = _rows(_campaign(tmp_path, serial_port=pty_slave, extra='\nparity = "even"'))
    found, verdict = rows[("venue_b", "settings held")]
    assert verdict == FAIL and found.startswith("parity: asked even; termios holds none")


def test_a_serial_port_that_is_not_there_fails_naming_the_device_and_the_port(
    tmp_path: Path,
) -> None:
    path = _campaign(tmp_path, serial_port="/dev/nonexistent")
    run = subprocess.run(
        [sys.executable, "-m", "arbsphere.rig.cli", "probe", str(path), "--json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "venue_b: port exists: /dev/nonexistent: no such device node" in run.stderr
    report = json.loads(run.stdout)
    assert report["ok"] is False and report["campaign"] == str(path)
    assert report["missing"] == ["venue_b: port exists: /dev/nonexistent: no such device node"]
    assert {"device": "venue_b", "check": "port exists", "verdict": FAIL,
            "found": "/dev/nonexistent: no such device node"} in report["checks"]  # fmt: skip


def test_a_hardware_udp_feed_on_loopback_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_udp_port()
    path = _campaign(tmp_path, bind_host="127.0.0.1", bind_port=port)
    rows = _rows(path)
    assert rows[("venue_a", "interface has the address")] == ("lo has 127.0.0.1", PASS)
    assert rows[("venue_a", "port free")] == (f"UDP 127.0.0.1:{port}", PASS)
    # the campaign's default timestamping = "auto": loopback has no hardware stamps
    assert rows[("venue_a", "timestamping auto")] == (
        "software (RX_SOFTWARE) (auto: no hardware)", PASS)  # fmt: skip
    assert main(["probe", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))
        found, verdict = _rows(path)[("venue_a", "port free")]
    assert verdict == FAIL and "Address already in use" in found


def test_a_udp_address_no_interface_has_fails_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _campaign(tmp_path, bind_host="192.0.2.123", bind_port=4200)
    rows = _rows(path)
    assert rows[("venue_a", "interface has the address")] == (
        "no interface of this host has 192.0.2.123", FAIL)  # fmt: skip
    assert main(["probe", str(path)]) == 1
    err = capsys.readouterr().err
    assert "venue_a: interface has the address: no interface of this host has 192.0.2.123" in err


def test_a_hardware_udp_broker_is_checked_on_the_route_to_its_device(tmp_path: Path) -> None:
    text = LOOPBACK.replace(
        'device = "emulator"\ndevice_host = "127.0.0.1"\ndevice_port = 0',
        'device = "hardware"\ndevice_host = "127.0.0.1"\ndevice_port = 4100',
    )
    text = text[: text.index("[broker.fills]")].replace('fill_mode = "mixed"', "")
    path = tmp_path / "broker.toml"
    path.write_text(text)
    rows = _rows(path)
    assert rows[("broker", "route to device")] == ("127.0.0.1 via 127.0.0.1", PASS)
    assert rows[("broker", "interface has the address")] == ("lo has 127.0.0.1", PASS)
    assert rows[("broker", "timestamping auto")][1] == PASS


def _caps(*flags: str, phc: int | None = None, rx_filters: int = 0) -> TimestampingInfo:
    mask = sum(1 << SOF_TIMESTAMPING.index(f) for f in flags)
    return TimestampingInfo("eth1", mask, phc, 0, rx_filters)


def test_timestamp_modes_are_judged_against_the_interface_s_capabilities() -> None:
    nic = _caps("RX_SOFTWARE", "RX_HARDWARE", "RAW_HARDWARE", phc=0, rx_filters=0b11)
    assert judge_timestamping(nic, "hardware") == (
        True, "hardware (RX_HARDWARE + RAW_HARDWARE, /dev/ptp0)")  # fmt: skip
    assert judge_timestamping(nic, "auto")[1].startswith("hardware")
    assert judge_timestamping(nic, "software") == (True, "software (RX_SOFTWARE)")
    no_phc = _caps("RX_SOFTWARE", "RX_HARDWARE", "RAW_HARDWARE", rx_filters=0b11)
    assert judge_timestamping(no_phc, "hardware") == (
        False, "hardware asked; eth1 lacks a PTP hardware clock")  # fmt: skip
    ptp_only = _caps("RX_SOFTWARE", "RX_HARDWARE", "RAW_HARDWARE", phc=0, rx_filters=1 << 12)
    assert judge_timestamping(ptp_only, "hardware") == (False, "hardware asked; eth1 lacks a "
                                                        "receive filter that stamps every packet "
                                                        "(ALL or SOME)")  # fmt: skip
    soft = _caps("RX_SOFTWARE", "SOFTWARE")
    lacks = "hardware asked; eth1 lacks RX_HARDWARE, RAW_HARDWARE, a PTP hardware clock"
    assert judge_timestamping(soft, "hardware") == (False, lacks)
    assert judge_timestamping(soft, "auto") == (True, "software (RX_SOFTWARE) (auto: no hardware)")
    assert judge_timestamping(_caps(), "software") == (
        False, "software asked; eth1 has no RX_SOFTWARE either")  # fmt: skip


def test_a_broker_bound_to_loopback_cannot_reach_a_device_off_the_host() -> None:
    (bad,) = source_check("broker", "10.0.0.2", "10.0.0.1", "127.0.0.1")
    assert bad.verdict == FAIL and "the rig binds 127.0.0.1" in bad.found
    (other,) = source_check("broker", "10.0.0.2", "10.0.0.1", "10.0.1.1")
    assert other.verdict == WARN  # another local address: it sends, from another interface
    assert source_check("broker", "10.0.0.2", "10.0.0.1", "10.0.0.1") == []
    assert source_check("broker", "10.0.0.2", "10.0.0.1", None) == []
    assert source_check("broker", "10.0.0.2", "10.0.0.1", "0.0.0.0") == []


def test_where_a_driver_takes_low_latency_the_probe_passes_and_puts_the_flag_back(
    tmp_path: Path, pty_slave: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A driver with the serial ioctls (recorded answers: the flag was off, is on after the
    set): the check passes and the probe clears the flag it set."""
    from arbsphere.adapters import serial_settings
    from arbsphere.rig import probe_campaign as pc

    flags = iter([False, True])  # TIOCGSERIAL before and after the set
    monkeypatch.setattr(serial_settings, "low_latency_flag", lambda fd: next(flags))
    asked: list[bool] = []
    monkeypatch.setattr(serial_settings, "set_low_latency", lambda port, on: asked.append(on))
    restored: list[bool] = []
    monkeypatch.setattr(pc, "set_low_latency", lambda port, on: restored.append(on))
    venue = load_campaign(_campaign(tmp_path, serial_port=pty_slave)).venues[1]
    rows = {c.check: (c.found, c.verdict) for c in pc.serial_checks(venue)}
    assert rows["low latency"] == ("ASYNC_LOW_LATENCY set", PASS)
    assert asked == [True] and restored == [False]

"""``arbsphere probe``: this host's interfaces and serial ports, from the kernel and pyserial."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from arbsphere.adapters.serial_ports import latency_timer_ms
from arbsphere.rig.probe import interface_record, ipv4_address


def test_loopback_is_listed_with_its_address_and_software_stamps() -> None:
    assert ipv4_address("lo") == "127.0.0.1"
    assert ipv4_address("nosuchif0") is None
    record = interface_record("lo")
    assert record["timestamping"]["software_rx"] and not record["timestamping"]["hardware_rx"]
    assert record["hwtstamp_config"] is None
    gone = interface_record("nosuchif0")
    assert gone["timestamping"] is None and "nosuchif0" in gone["error"]


def test_the_usb_latency_timer_is_read_from_sysfs(tmp_path: Path) -> None:
    (tmp_path / "ttyUSB0").mkdir()
    (tmp_path / "ttyUSB0" / "latency_timer").write_text("16\n")
    assert latency_timer_ms("/dev/ttyUSB0", tmp_path) == 16
    assert latency_timer_ms("/dev/ttyS0", tmp_path) is None  # not usb-serial: no timer
    (tmp_path / "ttyUSB1").mkdir()
    (tmp_path / "ttyUSB1" / "latency_timer").write_text("garbage")
    assert latency_timer_ms("/dev/ttyUSB1", tmp_path) is None


def test_the_probe_command_prints_json_a_machine_reads() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "arbsphere.rig.cli", "probe", "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    found = json.loads(out.stdout)
    names = [r["interface"] for r in found["interfaces"]]
    assert "lo" in names
    assert isinstance(found["serial_ports"], list)


def test_a_loopback_campaign_s_devices_are_found_on_lo_and_a_pty() -> None:
    from arbsphere.rig.config import load_campaign
    from arbsphere.rig.probe import device_findings, route_source, serial_endpoint

    campaign = load_campaign(Path("campaigns/loopback.toml"))
    found = device_findings(campaign.venues, campaign.broker)
    assert set(found) == {v.name for v in campaign.venues} | {campaign.broker.name}
    links = {v.name: v.link for v in campaign.venues}
    for name, link in links.items():
        if link == "udp":
            assert found[name]["interface"] == "lo"
            assert found[name]["timestamping"]["software_rx"]
        else:
            assert found[name]["port"] == "pty"
    assert found[campaign.broker.name]["interface"] == "lo"
    assert route_source("127.0.0.1") == "127.0.0.1"
    missing = serial_endpoint("/dev/ttyNOSUCH9")
    assert missing["listed"] is False and missing["port"] == "/dev/ttyNOSUCH9"

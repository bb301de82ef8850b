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

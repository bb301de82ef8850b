"""The report's Devices section: each device's kind, id, rig side, stamp sources and
uncertainty, serial settings (with refusals) and start-handshake answer, from the manifest."""

from __future__ import annotations

import re

from arbsphere.kpi.devices_html import devices_html

MANIFEST = {
    "devices": {
        "venue_a": {"device": "hardware", "device_id": 31, "link": "udp", "interface": "eth1",
                    "local_address": "10.1.0.1",
                    "start_handshake": {"state": "started", "arms_sent": 2, "status": "ok"}},
        "venue_b": {"device": "emulator", "device_id": 11, "link": "serial",
                    "port": "/dev/pts/7",
                    "settings": {"in_effect": {"flow_control": "rtscts", "stopbits": 2},
                                 "refused": {"low_latency": "ENOTTY"}}},
        "broker": {"device": "hardware", "device_id": 200, "link": "udp", "interface": None,
                   "local_address": "10.9.9.9"},
    },
    "timestamps": {
        "venue_a": {"requested": "auto", "rx": "hardware", "tx": "kernel-software",
                    "sync_t1": "hardware", "rx_uncertainty_ns": 40, "tx_uncertainty_ns": 0},
        "broker": {"requested": "hardware", "rx": "hardware", "tx": "hardware",
                   "sync_t1": "hardware", "rx_uncertainty_ns": 35, "tx_uncertainty_ns": 35},
    },
}  # fmt: skip


def _rows(doc: str) -> dict[str, list[str]]:
    out = {}
    for row in re.findall(r"<tr><th>(.*?)</tr>", doc):
        name, _, rest = row.partition("</th>")
        out[name] = re.findall(r"<td>(.*?)</td>", rest)
    return out


def test_each_device_row_names_its_hardware_and_stamp_source() -> None:
    rows = _rows(devices_html(MANIFEST))
    assert rows["venue_a"] == [
        "hardware", "31", "udp", "eth1 10.1.0.1", "hardware (auto asked)", "kernel-software; "
        "sync t1 hardware", "rx 40 ns, tx 0 ns", "-", "started: ARMED ok after 2 ARM(s)",
    ]  # fmt: skip
    assert rows["venue_b"][3:] == [
        "/dev/pts/7", "user-space", "user-space", "-",
        "flow_control=rtscts, stopbits=2; refused: low_latency (ENOTTY)", "-",
    ]  # fmt: skip
    assert rows["broker"][3:7] == ["no interface 10.9.9.9", "hardware", "hardware",
                                   "rx 35 ns, tx 35 ns"]  # fmt: skip


def test_no_devices_no_section() -> None:
    assert devices_html({}) == ""
    assert devices_html({"devices": {}}) == ""

"""Capability-gated checks: run where the probe says the link's hardware can do it, reported
skipped with the reason where it cannot.

* ``hw_rx_timestamps`` (UDP): the interface holding the rig side's address offers hardware
  receive stamps (``ETHTOOL_GET_TS_INFO``: ``RX_HARDWARE | RAW_HARDWARE`` and a receive
  filter); the link must then be using them. Not required: a campaign may ask for software
  stamps on purpose.
* ``serial_low_latency`` (serial): the port is a USB serial adapter with a latency timer
  (``/sys/bus/usb-serial/devices/<tty>/latency_timer``); it must be at 1 ms (low-latency
  mode), not the 16 ms FTDI default that holds partial packets back.

``findings`` is what :func:`arbsphere.rig.probe.udp_endpoint` / ``serial_endpoint`` report for
the link (a lab's own harness may build the same dict); the serial timer is read again at
judging time, after the link opened the port (opening may set it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arbsphere.adapters.links import TIMESTAMP_HARDWARE
from arbsphere.adapters.serial_ports import latency_timer_ms
from arbsphere.conformance.model import Check, Limits, measured, skipped

#: serial latency timer, ms
LATENCY_TIMER_LIMITS = Limits.at_most(1.0, 4.0)
HW_STAMP_LIMITS = Limits.at_least(1.0)


def hw_rx_timestamps(
    interface: str, backend: str, findings: Mapping[str, Any], timestamp_source: str
) -> Check:
    name = "hw_rx_timestamps"
    if backend != "udp":
        return skipped(
            name,
            interface,
            "in use",
            HW_STAMP_LIMITS,
            f"a {backend} link has no NIC receive stamps",
            required=False,
        )
    ts = findings.get("timestamping")
    nic = findings.get("interface")
    if not ts:
        why = (
            "no probe findings for this link"
            if not findings
            else f"no interface holds the link's address {findings.get('local_address')}"
            if nic is None
            else f"interface {nic}: timestamping capabilities unreadable"
        )
        return skipped(name, interface, "in use", HW_STAMP_LIMITS, why, required=False)
    if not ts.get("hardware_rx"):
        return skipped(
            name,
            interface,
            "in use",
            HW_STAMP_LIMITS,
            f"interface {nic} offers no hardware receive stamps (ETHTOOL_GET_TS_INFO: "
            f"{' '.join(ts.get('so_timestamping', [])) or 'none'})",
            required=False,
        )
    used = 1.0 if timestamp_source == TIMESTAMP_HARDWARE else 0.0
    return measured(
        name,
        interface,
        used,
        "in use",
        HW_STAMP_LIMITS,
        required=False,
        detail=f"interface {nic} can; the link stamps with {timestamp_source}",
    )


def serial_low_latency(interface: str, backend: str, port: str) -> Check:
    name = "serial_low_latency"
    if backend != "serial":
        return skipped(
            name,
            interface,
            "ms",
            LATENCY_TIMER_LIMITS,
            f"a {backend} link has no serial latency timer",
        )
    timer = latency_timer_ms(port)
    if timer is None:
        return skipped(
            name,
            interface,
            "ms",
            LATENCY_TIMER_LIMITS,
            f"{port} is not a USB serial port with a latency timer (a pty or a native UART)",
        )
    return measured(
        name,
        interface,
        float(timer),
        "ms",
        LATENCY_TIMER_LIMITS,
        detail=f"{port} latency_timer {timer} ms",
    )

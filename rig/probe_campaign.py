"""``arbsphere probe CAMPAIGN``: can this host reach every hardware device of a campaign, with
the settings the campaign asks for? One row per check (device, check, found, verdict).

* serial: the port exists; it opens with the campaign's baud rate, parity, stop bits and flow
  control, and holds them (read back from termios); low latency (when asked) is taken — a
  port that refuses it still runs, so that is a warning (``--strict``: a failure); the probe
  puts the low-latency flag back as it found it.
* UDP: the rig-side address is on an interface of this host (a venue's ``bind_host``; the
  broker's ``bind_host`` when it has one, else the address the kernel would send to
  ``device_host`` from), the port is free, the device address is routable, and the interface
  can stamp the way the campaign's ``timestamping`` asks ("hardware": ``RX_HARDWARE`` +
  ``RAW_HARDWARE`` and a PTP hardware clock; "software": ``RX_SOFTWARE``; "auto": either).

Emulated devices are listed as such: the rig starts them, there is nothing to probe. The
verdicts are ``pass``, ``warn``, ``fail`` and ``skip``; the command exits non-zero when any
check fails and names what is missing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from arbsphere.adapters.nic_timestamping import TimestampingInfo, ts_info
from arbsphere.adapters.serial_settings import SerialSettings, open_port, set_low_latency
from arbsphere.adapters.timestamp_mode import hardware_gap
from arbsphere.errors import LinkError
from arbsphere.rig.config import BrokerConfig, Campaign, VenueConfig, serial_options
from arbsphere.rig.probe import interface_with_address, route_source

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
_STYLE = {PASS: "green", WARN: "yellow", FAIL: "red", SKIP: "dim"}


@dataclass(frozen=True)
class Check:
    """One thing the probe looked at for one device."""

    device: str
    check: str
    found: str
    verdict: str

    def to_json(self) -> dict[str, str]:
        return {"device": self.device, "check": self.check, "found": self.found,
                "verdict": self.verdict}  # fmt: skip


def probe_campaign(campaign: Campaign) -> list[Check]:
    """Every check of every device of ``campaign``, venues (in name order) then the broker."""
    out: list[Check] = []
    devices: list[VenueConfig | BrokerConfig] = [*campaign.venues, campaign.broker]
    for device in devices:
        if device.device != "hardware":
            out.append(Check(device.name, "device", "emulated, nothing to probe", SKIP))
        elif device.link == "serial":
            out.extend(serial_checks(device))
        elif device.link == "udp":
            out.extend(udp_checks(device, is_broker=device is campaign.broker))
        else:
            out.append(Check(device.name, "link", f"link {device.link!r}: no probe", SKIP))
    return out


def serial_checks(device: Any) -> list[Check]:
    """The port exists, opens with the campaign's settings and holds them; low latency."""
    name, path = device.name, device.port
    if not os.path.exists(path):
        return [Check(name, "port exists", f"{path}: no such device node", FAIL)]
    real = os.path.realpath(path)
    out = [Check(name, "port exists", path if real == path else f"{path} -> {real}", PASS)]
    asked = SerialSettings(**serial_options(device))
    try:
        port, report = open_port(path, device.baudrate, asked, name)
    except LinkError as exc:
        return [*out, Check(name, "port opens", str(exc), FAIL)]
    was, now = report.low_latency_was, report.in_effect["low_latency"]
    try:
        if was is not None and now is not None and now != was:
            set_low_latency(port, was)  # leave the port as the probe found it
    finally:
        port.close()
    held = report.in_effect
    out.append(Check(name, "port opens", f"{held['baudrate'] or device.baudrate} baud, parity "
                     f"{held['parity']}, {held['stopbits']} stop bit(s), flow control "
                     f"{held['flow_control']}", PASS))  # fmt: skip
    not_held = {k: v for k, v in report.refused.items() if k != "low_latency"}
    out.append(Check(name, "settings held", "; ".join(f"{k}: {v}" for k, v in not_held.items())
                     or "all", FAIL if not_held else PASS))  # fmt: skip
    timer = report.latency_timer_ms
    if asked.low_latency:
        refused = report.refused.get("low_latency")
        found = refused or "ASYNC_LOW_LATENCY set"
        if timer is not None:
            found += f"; USB latency timer {timer} ms"
        out.append(Check(name, "low latency", found, WARN if refused else PASS))
    elif timer is not None:
        out.append(Check(name, "USB latency timer", f"{timer} ms", PASS))
    return out


def udp_checks(device: Any, *, is_broker: bool) -> list[Check]:
    """Rig-side address on an interface, port free, device routable, timestamping possible."""
    name = device.name
    out: list[Check] = []
    device_host = getattr(device, "device_host", None)
    source = None
    if device_host is not None:
        source = route_source(device_host)
        out.append(Check(name, "route to device", f"{device_host} via {source}" if source
                         else f"no route to {device_host}", PASS if source else FAIL))  # fmt: skip
    bind_host = device.bind_host or None  # a broker's "": the route's source address
    if is_broker and device_host is not None:
        out.extend(source_check(name, device_host, source, bind_host))
    local = bind_host or (source if is_broker else None)
    if local is None:
        return out
    if local == "0.0.0.0":
        out.append(Check(name, "interface has the address", "0.0.0.0: every interface", PASS))
        out.append(Check(name, "timestamping", "bound to every interface: which one the device "
                         "uses is not known here", SKIP))  # fmt: skip
        return out
    interface = interface_with_address(local)
    if interface is None:
        out.append(Check(name, "interface has the address",
                         f"no interface of this host has {local}", FAIL))  # fmt: skip
        return out
    out.append(Check(name, "interface has the address", f"{interface} has {local}", PASS))
    bind_port = getattr(device, "bind_port", 0)
    if bind_port:
        out.append(_port_free(name, local, bind_port))
    mode = str(device.timestamping)
    out.append(timestamping_check(name, interface, mode))
    return out


def source_check(
    name: str, device_host: str, source: str | None, bind_host: str | None
) -> list[Check]:
    """A broker whose rig side binds ``bind_host`` while the kernel routes to ``device_host``
    from ``source``: a warning, a failure when the bound address is loopback and the device is
    not (such a socket cannot send off the host: ``sendto`` gives EINVAL)."""
    if not bind_host or bind_host == "0.0.0.0" or source is None or source == bind_host:
        return []
    off_host = str(bind_host).startswith("127.") and not source.startswith("127.")
    found = f"the kernel sends to {device_host} from {source}; the rig binds {bind_host}"
    return [Check(name, "source address", found, FAIL if off_host else WARN)]


def _port_free(name: str, host: str, port: int) -> Check:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return Check(name, "port free", f"UDP {host}:{port}: {exc.strerror}", FAIL)
    return Check(name, "port free", f"UDP {host}:{port}", PASS)


def judge_timestamping(ts: TimestampingInfo, mode: str) -> tuple[bool, str]:
    """Can ``ts``'s interface stamp the way ``mode`` asks; what it would use, or what it
    lacks."""
    # the link's own rule (a receive filter that stamps every packet, not PTP-only ones)
    hardware = hardware_gap(ts) is None
    if mode == "hardware" or (mode == "auto" and hardware):
        if hardware:
            return True, f"hardware (RX_HARDWARE + RAW_HARDWARE, /dev/ptp{ts.phc_index})"
        lacks = [f for f in ("RX_HARDWARE", "RAW_HARDWARE") if f not in ts.flags]
        if ts.phc_index is None:
            lacks.append("a PTP hardware clock")
        if not lacks:
            lacks.append("a receive filter that stamps every packet (ALL or SOME)")
        return False, f"hardware asked; {ts.interface} lacks {', '.join(lacks)}"
    if ts.software_rx:
        return True, "software (RX_SOFTWARE)" + (" (auto: no hardware)" if mode == "auto" else "")
    return False, f"{mode} asked; {ts.interface} has no RX_SOFTWARE either"


def timestamping_check(name: str, interface: str, mode: str) -> Check:
    try:
        ts = ts_info(interface)
    except LinkError as exc:
        return Check(name, f"timestamping {mode}", str(exc), FAIL)
    ok, found = judge_timestamping(ts, mode)
    return Check(name, f"timestamping {mode}", found, PASS if ok else FAIL)


def missing(checks: Iterable[Check], *, strict: bool = False) -> list[Check]:
    """The checks that make the probe fail (``strict``: warnings too)."""
    bad = (FAIL, WARN) if strict else (FAIL,)
    return [c for c in checks if c.verdict in bad]


def print_checks(checks: list[Check], console: Console, title: str) -> None:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("device", "check", "found", "verdict"):
        table.add_column(col, overflow="fold")
    for c in checks:
        style = _STYLE[c.verdict]
        table.add_row(escape(c.device), c.check, escape(c.found), f"[{style}]{c.verdict}[/]")
    console.print(table)


def missing_lines(failed: list[Check]) -> list[str]:
    """One line per failed check: device, check, what was found."""
    return [f"{c.device}: {c.check}: {c.found}" for c in failed]

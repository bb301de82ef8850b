"""``arbsphere probe``: what this host offers a latency campaign — its network interfaces with
their addresses and timestamping capabilities (from the kernel, read-only), and its serial
ports (pyserial's listing, with the USB latency timer). A terminal table, or ``--json``."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from arbsphere.adapters import local_address
from arbsphere.adapters.nic_timestamping import (
    hwtstamp_config,
    interface_with_address,
    ipv4_address,
    ts_info,
)
from arbsphere.adapters.serial_ports import latency_timer_ms, serial_ports
from arbsphere.errors import LinkError


def interface_record(interface: str) -> dict[str, Any]:
    """One interface: address, timestamping capabilities, current hardware-stamp setting."""
    record: dict[str, Any] = {"interface": interface, "ipv4": ipv4_address(interface)}
    try:
        record["timestamping"] = ts_info(interface).to_json()
        current = hwtstamp_config(interface)
        record["hwtstamp_config"] = None if current is None else current.to_json()
    except LinkError as exc:
        record["timestamping"] = None
        record["error"] = str(exc)
    return record


def probe_host() -> dict[str, Any]:
    """Every network interface and serial port of this host."""
    return {
        "interfaces": [interface_record(name) for _, name in socket.if_nameindex()],
        "serial_ports": [p.to_json() for p in serial_ports()],
    }


def _flags(ts: dict[str, Any] | None) -> str:
    if ts is None:
        return "-"
    return " ".join(f.lower() for f in ts["so_timestamping"]) or "none"


def print_probe(found: dict[str, Any], console: Console) -> None:
    nics = Table(title="network interfaces", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("interface", "ipv4", "hw rx stamps", "PHC", "SO_TIMESTAMPING", "hw config"):
        nics.add_column(col, overflow="fold")
    for r in found["interfaces"]:
        ts = r.get("timestamping")
        hw = r.get("hwtstamp_config")
        nics.add_row(
            r["interface"], r["ipv4"] or "-",
            "-" if ts is None else ("yes" if ts["hardware_rx"] else "no"),
            "-" if ts is None or ts["phc_index"] is None else f"/dev/ptp{ts['phc_index']}",
            _flags(ts), "-" if hw is None else f"tx {hw['tx_type']}, rx {hw['rx_filter']}",
        )  # fmt: skip
    console.print(nics)
    ports = Table(title="serial ports", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("device", "description", "USB VID:PID", "serial", "latency timer"):
        ports.add_column(col, overflow="fold")
    for p in found["serial_ports"]:
        timer = p["latency_timer_ms"]
        ports.add_row(
            p["device"], p["description"] or "-", p["usb_vid_pid"] or "-",
            p["serial_number"] or "-", "-" if timer is None else f"{timer} ms",
        )  # fmt: skip
    console.print(ports)


def route_source(host: str) -> str | None:
    """The local IPv4 address the kernel would send to ``host`` from, or None when it cannot
    be resolved or has no route (:func:`~arbsphere.adapters.local_address.route_source`)."""
    try:
        return local_address.route_source(host)
    except LinkError:
        return None


def udp_endpoint(local_ipv4: str | None) -> dict[str, Any]:
    """What the probe finds for a UDP link whose rig side uses ``local_ipv4``."""
    if local_ipv4 in (None, "0.0.0.0"):
        return {"link": "udp", "local_address": local_ipv4, "interface": None}
    name = interface_with_address(local_ipv4)
    found: dict[str, Any] = {"link": "udp", "local_address": local_ipv4, "interface": name}
    if name is not None:
        found.update(interface_record(name))
    return found


def serial_endpoint(port: str) -> dict[str, Any]:
    """What the probe finds for a serial link on ``port`` ("pty": an emulator's pty)."""
    if port == "pty":
        return {"link": "serial", "port": "pty", "note": "a pty the rig allocates for an emulator"}
    listed = {p.device: p for p in serial_ports()}
    entry = listed.get(port)
    if entry is not None:
        return {"link": "serial", "port": port, "listed": True, **entry.to_json()}
    return {"link": "serial", "port": port, "listed": False,
            "latency_timer_ms": latency_timer_ms(port)}  # fmt: skip


def device_findings(
    venues: Any, broker: Any, link_settings: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Per device of a campaign (``venues``: its VenueConfigs, ``broker``: its BrokerConfig),
    the rig side of its link as the probe finds it: the interface and its timestamping for UDP,
    the port for serial; with ``link_settings`` (adapter name -> what its link set and had
    refused, from the adapters' stats) those too, under ``settings``. Recorded in the manifest
    (``devices``)."""
    out: dict[str, dict[str, Any]] = {}
    for v in venues:
        out[v.name] = (
            udp_endpoint(v.bind_host) if v.link == "udp" else serial_endpoint(v.port)
        ) | {"device": v.device, "device_id": v.device_id}
    b = broker
    out[b.name] = (
        udp_endpoint(b.bind_host or route_source(b.device_host))
        if b.link == "udp"
        else serial_endpoint(b.port)
    ) | {"device": b.device, "device_id": b.device_id}
    for name, applied in (link_settings or {}).items():
        if name in out and applied is not None:
            out[name]["settings"] = applied
    return out

"""``arbsphere probe``: what this host offers a latency campaign — its network interfaces with
their addresses and timestamping capabilities (from the kernel, read-only), and its serial
ports (pyserial's listing, with the USB latency timer). A terminal table, or ``--json``."""

from __future__ import annotations

import fcntl
import socket
import struct
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from arbsphere.adapters.nic_timestamping import hwtstamp_config, ts_info
from arbsphere.adapters.serial_ports import serial_ports
from arbsphere.errors import LinkError

SIOCGIFADDR = 0x8915
_IFREQ_NAME = struct.Struct("256s")


def ipv4_address(interface: str) -> str | None:
    """The interface's IPv4 address (``SIOCGIFADDR``), or None when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            reply = fcntl.ioctl(sock.fileno(), SIOCGIFADDR,
                                _IFREQ_NAME.pack(interface.encode()[:15]))  # fmt: skip
        except OSError:
            return None
    return socket.inet_ntoa(reply[20:24])  # ifr_addr: sockaddr_in's sin_addr


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

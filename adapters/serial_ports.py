"""The serial ports this host has, as pyserial lists them, with what a latency engineer needs
to know of each: the USB identity (VID:PID, serial number) and, for USB serial adapters, the
driver's latency timer (``/sys/bus/usb-serial/devices/<tty>/latency_timer``, ms: how long the
adapter holds a partial packet before sending it up — 16 ms by default on FTDI parts)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from serial.tools import list_ports

#: where the kernel's usb-serial drivers expose per-port attributes
USB_SERIAL_SYSFS = Path("/sys/bus/usb-serial/devices")


@dataclass(frozen=True)
class SerialPortInfo:
    device: str
    description: str | None
    hwid: str | None
    vid: int | None
    pid: int | None
    serial_number: str | None
    subsystem: str | None
    #: USB serial only: the latency timer in ms (None where the driver has none)
    latency_timer_ms: int | None

    def to_json(self) -> dict[str, object]:
        return {
            "device": self.device, "description": self.description, "hwid": self.hwid,
            "usb_vid_pid": None if self.vid is None or self.pid is None
            else f"{self.vid:04x}:{self.pid:04x}",
            "serial_number": self.serial_number, "subsystem": self.subsystem,
            "latency_timer_ms": self.latency_timer_ms,
        }  # fmt: skip


def latency_timer_ms(device: str, sysfs: Path = USB_SERIAL_SYSFS) -> int | None:
    """The usb-serial latency timer of ``/dev/<tty>`` or a link to it such as
    ``/dev/serial/by-id/...`` (None: not a usb-serial port, or its driver has no timer, or the
    value is unreadable)."""
    path = sysfs / Path(os.path.realpath(device)).name / "latency_timer"
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _text(value: object) -> str | None:
    return None if value in (None, "", "n/a") else str(value)


def serial_ports(sysfs: Path = USB_SERIAL_SYSFS) -> list[SerialPortInfo]:
    """Every serial port pyserial finds, sorted by device path."""
    out = []
    for port in list_ports.comports(include_links=False):
        out.append(SerialPortInfo(
            device=port.device, description=_text(port.description), hwid=_text(port.hwid),
            vid=port.vid, pid=port.pid, serial_number=_text(port.serial_number),
            subsystem=_text(getattr(port, "subsystem", None)),
            latency_timer_ms=latency_timer_ms(port.device, sysfs),
        ))  # fmt: skip
    return sorted(out, key=lambda p: p.device)

"""What the rig asks of a serial port and what the port then holds.

A campaign sets, per serial link, the character framing (``parity``, ``stopbits``), the flow
control (``flow_control``) and the low-latency flag (``low_latency``: ``ASYNC_LOW_LATENCY``
through ``TIOCSSERIAL``, pyserial's ``set_low_latency_mode``: asks the driver to hand received
bytes up with the least delay; ftdi_sio, for one, runs its latency timer at 1 ms while it is on).

:func:`open_port` opens the port with pyserial with those settings, tries the low-latency flag
and reads the port's termios and serial flags back: a driver may keep a flag clear without an
error (a pty forces 8 data bits and no parity; Linux has no DSR/DTR flow control at all), and a
port without the serial ioctls refuses low latency (a pty: ``ENOTTY``). A refusal never fails
the open: the :class:`SettingsReport` says what was asked, what the port holds and why each
difference exists, and the link hands it on to the manifest.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import termios
from dataclasses import dataclass, field
from typing import Any

import serial

from arbsphere.adapters.serial_ports import latency_timer_ms
from arbsphere.errors import ConfigError, LinkError

FLOW_CONTROLS = ("none", "rtscts", "xonxoff", "dsrdtr")
PARITIES = ("none", "even", "odd")
STOPBITS = (1, 2)
#: the campaign keys (``[venues.<name>]``, ``[broker]``) a serial link takes besides port/baud
SERIAL_KEYS = ("flow_control", "parity", "stopbits", "low_latency")

_PYSERIAL_PARITY = {"none": serial.PARITY_NONE, "even": serial.PARITY_EVEN,
                    "odd": serial.PARITY_ODD}  # fmt: skip
#: ``struct serial_struct`` as ``int[]`` (pyserial's layout): ``flags`` is the fifth int
_SERIAL_STRUCT_INTS = 32
_FLAGS_INDEX = 4
ASYNC_LOW_LATENCY = 0x2000
#: Unix98 pty slaves (``/dev/pts/N``) have these character-device majors
_PTY_SLAVE_MAJORS = range(136, 144)
#: termios speed constant -> baud rate, for the rates termios names
_BAUD_OF_SPEED = {
    getattr(termios, f"B{rate}"): rate
    for rate in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000,
                 576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000,
                 4000000)
    if hasattr(termios, f"B{rate}")
}  # fmt: skip


@dataclass(frozen=True)
class SerialSettings:
    """The framing, flow control and low-latency flag a campaign asks of a serial port."""

    flow_control: str = "none"
    parity: str = "none"
    stopbits: int = 1
    low_latency: bool = True

    def __post_init__(self) -> None:
        for key, value, allowed in (("flow_control", self.flow_control, FLOW_CONTROLS),
                                    ("parity", self.parity, PARITIES),
                                    ("stopbits", self.stopbits, STOPBITS),
                                    ("low_latency", self.low_latency, (True, False))):  # fmt: skip
            if value not in allowed or type(value) is not type(allowed[0]):
                raise ConfigError(
                    f"{value!r}: must be one of {', '.join(map(str, allowed))}", key=key
                )

    def to_json(self) -> dict[str, Any]:
        return {"flow_control": self.flow_control, "parity": self.parity,
                "stopbits": self.stopbits, "low_latency": self.low_latency}  # fmt: skip


@dataclass(frozen=True)
class SettingsReport:
    """What was asked of a port, what it holds (read back after the open) and, per setting
    that differs, why."""

    port: str
    requested: SerialSettings
    baudrate: int
    in_effect: dict[str, Any]
    #: setting -> why the port does not hold what was asked
    refused: dict[str, str] = field(default_factory=dict)
    #: the low-latency flag before the open changed it (None: the port has no such flag)
    low_latency_was: bool | None = None
    is_pty: bool = False
    latency_timer_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "port": self.port, "is_pty": self.is_pty,
            "requested": {"baudrate": self.baudrate, **self.requested.to_json()},
            "in_effect": dict(self.in_effect), "refused": dict(self.refused),
            "low_latency_was": self.low_latency_was, "latency_timer_ms": self.latency_timer_ms,
        }  # fmt: skip


def decode_termios(attrs: list[Any]) -> dict[str, Any]:
    """Baud rate, parity, stop bits and flow control from ``termios.tcgetattr`` output
    (``[iflag, oflag, cflag, lflag, ispeed, ospeed, cc]``); baudrate None when termios has no
    name for the speed (a custom rate)."""
    iflag, cflag, ospeed = attrs[0], attrs[2], attrs[5]
    parity = "none"
    if cflag & termios.PARENB:
        parity = "odd" if cflag & termios.PARODD else "even"
    flows = []
    if cflag & termios.CRTSCTS:
        flows.append("rtscts")
    if iflag & (termios.IXON | termios.IXOFF):
        flows.append("xonxoff")
    return {
        "baudrate": _BAUD_OF_SPEED.get(ospeed), "parity": parity,
        "stopbits": 2 if cflag & termios.CSTOPB else 1,
        "flow_control": "+".join(flows) or "none",
    }  # fmt: skip


def low_latency_flag(fd: int) -> bool | None:
    """The port's ``ASYNC_LOW_LATENCY`` flag (``TIOCGSERIAL``), or None when the port has no
    serial ioctls (a pty, a USB CDC device whose driver lacks them)."""
    buf = array.array("i", [0] * _SERIAL_STRUCT_INTS)
    try:
        fcntl.ioctl(fd, termios.TIOCGSERIAL, buf)
    except OSError:
        return None
    return bool(buf[_FLAGS_INDEX] & ASYNC_LOW_LATENCY)


def is_pty_slave(fd: int) -> bool:
    return os.major(os.fstat(fd).st_rdev) in _PTY_SLAVE_MAJORS


def set_low_latency(port: serial.Serial, on: bool) -> str | None:
    """Set or clear the low-latency flag; None when done, else why the port refused it."""
    try:
        port.set_low_latency_mode(on)  # serialposix.Serial's (TIOCGSERIAL, then TIOCSSERIAL)
    except (ValueError, NotImplementedError, AttributeError) as exc:
        code = getattr(exc.__context__, "errno", None)
        name = (
            f" ({errno.errorcode[code]})"
            if isinstance(code, int) and code in errno.errorcode
            else ""
        )
        return f"TIOCSSERIAL ASYNC_LOW_LATENCY refused{name}: {exc}"
    return None


def _differences(
    asked: SerialSettings, baudrate: int, held: dict[str, Any], pty: bool
) -> dict[str, str]:
    """Per setting the port does not hold, why (read back from termios after the open)."""
    refused: dict[str, str] = {}
    if held["baudrate"] is not None and held["baudrate"] != baudrate:
        refused["baudrate"] = f"asked {baudrate}; termios holds {held['baudrate']}"
    if held["parity"] != asked.parity:
        why = ": a pty forces 8 data bits and no parity" if pty else ""
        refused["parity"] = f"asked {asked.parity}; termios holds {held['parity']}{why}"
    if held["stopbits"] != asked.stopbits:
        refused["stopbits"] = f"asked {asked.stopbits}; termios holds {held['stopbits']}"
    if asked.flow_control == "dsrdtr":
        refused["flow_control"] = ("asked dsrdtr; Linux termios has no DSR/DTR flow control "
                                   "(pyserial only leaves DTR as it is at open)")  # fmt: skip
    elif held["flow_control"] != asked.flow_control:
        refused["flow_control"] = (f"asked {asked.flow_control}; termios holds "
                                   f"{held['flow_control']}")  # fmt: skip
    return refused


def _open(path: str, baudrate: int, asked: SerialSettings, name: str) -> serial.Serial:
    try:
        return serial.Serial(
            path, baudrate, timeout=0, parity=_PYSERIAL_PARITY[asked.parity],
            stopbits=serial.STOPBITS_TWO if asked.stopbits == 2 else serial.STOPBITS_ONE,
            rtscts=asked.flow_control == "rtscts", xonxoff=asked.flow_control == "xonxoff",
            dsrdtr=asked.flow_control == "dsrdtr",
        )  # fmt: skip
    except (serial.SerialException, ValueError) as exc:
        raise LinkError(
            f"{name}: cannot open serial port {path!r} at {baudrate} baud: {exc}"
        ) from exc


def open_port(
    path: str, baudrate: int, asked: SerialSettings, name: str
) -> tuple[serial.Serial, SettingsReport]:
    """Open ``path`` non-blocking with ``asked``'s framing and flow control, set (or clear)
    the low-latency flag, read everything back. LinkError naming ``name`` and the port when
    the port does not open; a setting the port does not take is only reported."""
    port = _open(path, baudrate, asked, name)
    fd = port.fileno()
    try:
        pty = is_pty_slave(fd)
        was = low_latency_flag(fd)
        refused_ll = None
        if asked.low_latency or was:
            refused_ll = set_low_latency(port, asked.low_latency)
        held = decode_termios(termios.tcgetattr(fd))
        held["low_latency"] = low_latency_flag(fd)
    except (OSError, termios.error) as exc:
        port.close()
        raise LinkError(f"{name}: cannot read back serial port {path!r}: {exc}") from exc
    refused = _differences(asked, baudrate, held, pty)
    if refused_ll is not None:
        refused["low_latency"] = refused_ll
    report = SettingsReport(path, asked, baudrate, held, refused, was, pty,
                            latency_timer_ms(path))  # fmt: skip
    return port, report

"""What a network interface can timestamp, as its kernel driver reports it (read-only).

* :func:`ts_info` — ``ETHTOOL_GET_TS_INFO`` through ``SIOCETHTOOL``: the ``SO_TIMESTAMPING``
  flags the interface supports, its PTP hardware clock (``/dev/ptp<N>``, or none), the hardware
  transmit stamp types and receive filters it offers.
* :func:`hwtstamp_config` — ``SIOCGHWTSTAMP``: the hardware-stamp configuration currently set on
  the interface (by whichever process set it); an interface whose driver has no hardware
  stamping answers ``EOPNOTSUPP`` and gives None.
* :func:`set_hwtstamp` — ``SIOCSHWTSTAMP``: sets it, and returns what the driver actually set.
  Called only when a campaign says ``hw_config = "set"`` (:mod:`.timestamp_mode`).
* :func:`interface_with_address` — the interface holding a local IPv4 address (``SIOCGIFADDR``).

Every call takes the ioctl function (``fcntl.ioctl`` by default), so a test can answer with a
recorded reply and see exactly which requests were issued.

Both decode the kernel's reply bytes with :func:`parse_ts_info` / :func:`parse_hwtstamp_config`,
so a reply recorded on a lab's NIC decodes here as it does there. Layouts and constants are
those of ``linux/ethtool.h``, ``linux/net_tstamp.h`` and ``linux/sockios.h``.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arbsphere.errors import LinkError

SIOCETHTOOL = 0x8946
SIOCGHWTSTAMP = 0x89B1
SIOCSHWTSTAMP = 0x89B0
SIOCGIFADDR = 0x8915
ETHTOOL_GET_TS_INFO = 0x41
IFNAMSIZ = 16

#: struct ethtool_ts_info: cmd, so_timestamping, phc_index, tx_types, tx_reserved[3],
#: rx_filters, rx_reserved[3]
_TS_INFO = struct.Struct("=IIiI12xI12x")
#: struct hwtstamp_config: flags, tx_type, rx_filter
_HWTSTAMP_CONFIG = struct.Struct("=iii")
#: struct ifreq: the name, then ``ifr_data`` (a pointer to the request's buffer), padded to 40
_IFREQ = struct.Struct("16sP16x")
#: ``fcntl.ioctl``'s signature: (fd, request, argument) -> the argument as the kernel left it
IoctlFn = Callable[[int, int, Any], Any]

#: SOF_TIMESTAMPING_* bit -> name, in bit order
SOF_TIMESTAMPING = (
    "TX_HARDWARE", "TX_SOFTWARE", "RX_HARDWARE", "RX_SOFTWARE", "SOFTWARE", "SYS_HARDWARE",
    "RAW_HARDWARE", "OPT_ID", "TX_SCHED", "TX_ACK", "OPT_CMSG", "OPT_TSONLY", "OPT_STATS",
    "OPT_PKTINFO", "OPT_TX_SWHW", "BIND_PHC", "OPT_ID_TCP", "OPT_RX_FILTER",
)  # fmt: skip
#: enum hwtstamp_tx_types value -> name
HWTSTAMP_TX = ("OFF", "ON", "ONESTEP_SYNC", "ONESTEP_P2P")
#: enum hwtstamp_rx_filters value -> name
HWTSTAMP_FILTER = (
    "NONE", "ALL", "SOME", "PTP_V1_L4_EVENT", "PTP_V1_L4_SYNC", "PTP_V1_L4_DELAY_REQ",
    "PTP_V2_L4_EVENT", "PTP_V2_L4_SYNC", "PTP_V2_L4_DELAY_REQ", "PTP_V2_L2_EVENT",
    "PTP_V2_L2_SYNC", "PTP_V2_L2_DELAY_REQ", "PTP_V2_EVENT", "PTP_V2_SYNC", "PTP_V2_DELAY_REQ",
    "NTP_ALL",
)  # fmt: skip


def _bit_names(mask: int, names: tuple[str, ...]) -> tuple[str, ...]:
    """The names of the set bits of ``mask``; an unnamed bit as ``BIT<k>``."""
    out = []
    k = 0
    while mask >> k:
        if (mask >> k) & 1:
            out.append(names[k] if k < len(names) else f"BIT{k}")
        k += 1
    return tuple(out)


def _value_name(value: int, names: tuple[str, ...]) -> str:
    return names[value] if 0 <= value < len(names) else f"UNKNOWN({value})"


@dataclass(frozen=True)
class TimestampingInfo:
    """An interface's timestamping capabilities (``ETHTOOL_GET_TS_INFO``)."""

    interface: str
    so_timestamping: int
    #: the PTP hardware clock's index (``/dev/ptp<N>``), or None when it has none
    phc_index: int | None
    tx_types: int
    rx_filters: int

    @property
    def flags(self) -> tuple[str, ...]:
        return _bit_names(self.so_timestamping, SOF_TIMESTAMPING)

    @property
    def tx_type_names(self) -> tuple[str, ...]:
        return _bit_names(self.tx_types, HWTSTAMP_TX)

    @property
    def rx_filter_names(self) -> tuple[str, ...]:
        return _bit_names(self.rx_filters, HWTSTAMP_FILTER)

    @property
    def hardware_rx(self) -> bool:
        """Hardware receive stamps in the raw PHC time: what ``timestamping = "hardware"``
        needs (``RX_HARDWARE`` and ``RAW_HARDWARE``, and some receive filter beyond NONE)."""
        need = (1 << SOF_TIMESTAMPING.index("RX_HARDWARE")) | (
            1 << SOF_TIMESTAMPING.index("RAW_HARDWARE")
        )
        return self.so_timestamping & need == need and self.rx_filters & ~1 != 0

    @property
    def software_rx(self) -> bool:
        return bool(self.so_timestamping & (1 << SOF_TIMESTAMPING.index("RX_SOFTWARE")))

    def to_json(self) -> dict[str, object]:
        return {
            "interface": self.interface, "so_timestamping": list(self.flags),
            "phc_index": self.phc_index, "tx_types": list(self.tx_type_names),
            "rx_filters": list(self.rx_filter_names), "hardware_rx": self.hardware_rx,
            "software_rx": self.software_rx,
        }  # fmt: skip


@dataclass(frozen=True)
class HwTimestampConfig:
    """The hardware-stamp configuration currently set on an interface (``SIOCGHWTSTAMP``)."""

    interface: str
    flags: int
    tx_type: str
    rx_filter: str

    def to_json(self) -> dict[str, object]:
        return {"interface": self.interface, "flags": self.flags, "tx_type": self.tx_type,
                "rx_filter": self.rx_filter}  # fmt: skip


def parse_ts_info(interface: str, reply: bytes) -> TimestampingInfo:
    """Decode a ``struct ethtool_ts_info`` reply."""
    if len(reply) != _TS_INFO.size:
        raise LinkError(f"{interface}: ethtool_ts_info reply of {len(reply)} bytes, "
                        f"expected {_TS_INFO.size}")  # fmt: skip
    cmd, so_ts, phc, tx_types, rx_filters = _TS_INFO.unpack(reply)
    if cmd != ETHTOOL_GET_TS_INFO:
        raise LinkError(f"{interface}: ethtool reply for command {cmd:#x}, expected "
                        f"ETHTOOL_GET_TS_INFO ({ETHTOOL_GET_TS_INFO:#x})")  # fmt: skip
    return TimestampingInfo(interface, so_ts, None if phc < 0 else phc, tx_types, rx_filters)


def parse_hwtstamp_config(interface: str, reply: bytes) -> HwTimestampConfig:
    """Decode a ``struct hwtstamp_config`` reply."""
    if len(reply) != _HWTSTAMP_CONFIG.size:
        raise LinkError(f"{interface}: hwtstamp_config reply of {len(reply)} bytes, "
                        f"expected {_HWTSTAMP_CONFIG.size}")  # fmt: skip
    flags, tx_type, rx_filter = _HWTSTAMP_CONFIG.unpack(reply)
    return HwTimestampConfig(interface, flags, _value_name(tx_type, HWTSTAMP_TX),
                             _value_name(rx_filter, HWTSTAMP_FILTER))  # fmt: skip


def _ifreq_ioctl(
    interface: str, request: int, buf: ctypes.Array[ctypes.c_char], ioctl: IoctlFn
) -> None:
    """``ioctl(request)`` with an ifreq naming ``interface`` whose ``ifr_data`` is ``buf``."""
    name = interface.encode()
    if not name or len(name) >= IFNAMSIZ:
        raise LinkError(f"interface name {interface!r}: 1 to {IFNAMSIZ - 1} bytes")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ioctl(sock.fileno(), request, _IFREQ.pack(name, ctypes.addressof(buf)))


def ts_info(interface: str, ioctl: IoctlFn = fcntl.ioctl) -> TimestampingInfo:
    """The interface's timestamping capabilities; LinkError naming it when the kernel refuses
    (no such interface: ``ENODEV``)."""
    buf = ctypes.create_string_buffer(
        struct.pack("=I", ETHTOOL_GET_TS_INFO) + bytes(_TS_INFO.size - 4), _TS_INFO.size
    )
    try:
        _ifreq_ioctl(interface, SIOCETHTOOL, buf, ioctl)
    except OSError as exc:
        raise LinkError(f"{interface}: ETHTOOL_GET_TS_INFO failed: {exc}") from exc
    return parse_ts_info(interface, buf.raw)


def hwtstamp_config(interface: str, ioctl: IoctlFn = fcntl.ioctl) -> HwTimestampConfig | None:
    """The interface's current hardware-stamp configuration, or None when its driver has no
    hardware stamping (``EOPNOTSUPP``/``EINVAL``); LinkError for any other refusal."""
    buf = ctypes.create_string_buffer(_HWTSTAMP_CONFIG.size)
    try:
        _ifreq_ioctl(interface, SIOCGHWTSTAMP, buf, ioctl)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            return None
        raise LinkError(f"{interface}: SIOCGHWTSTAMP failed: {exc}") from exc
    return parse_hwtstamp_config(interface, buf.raw)


def set_hwtstamp(
    interface: str, tx_type: str, rx_filter: str, ioctl: IoctlFn = fcntl.ioctl
) -> HwTimestampConfig:
    """Set the interface's hardware stamping (``SIOCSHWTSTAMP``, needs CAP_NET_ADMIN) to
    ``tx_type`` / ``rx_filter`` (names of :data:`HWTSTAMP_TX` / :data:`HWTSTAMP_FILTER`);
    returns the configuration the driver reports it set (it may be more permissive)."""
    request = _HWTSTAMP_CONFIG.pack(0, HWTSTAMP_TX.index(tx_type), HWTSTAMP_FILTER.index(rx_filter))
    buf = ctypes.create_string_buffer(request, _HWTSTAMP_CONFIG.size)
    try:
        _ifreq_ioctl(interface, SIOCSHWTSTAMP, buf, ioctl)
    except OSError as exc:
        raise LinkError(
            f"{interface}: SIOCSHWTSTAMP (tx {tx_type}, rx {rx_filter}) failed: {exc}"
        ) from exc
    return parse_hwtstamp_config(interface, buf.raw)


def ipv4_address(interface: str, ioctl: IoctlFn = fcntl.ioctl) -> str | None:
    """The interface's IPv4 address (``SIOCGIFADDR``), or None when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            reply = ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", interface.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(bytes(reply)[20:24])  # ifr_addr: sockaddr_in's sin_addr


def interface_with_address(ipv4: str) -> str | None:
    """The interface holding local address ``ipv4`` (None: none has it, e.g. ``0.0.0.0``)."""
    for _, name in socket.if_nameindex():
        if ipv4_address(name) == ipv4:
            return name
    return None

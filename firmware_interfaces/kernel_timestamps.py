"""Kernel receive timestamps on UDP sockets (Linux ``SO_TIMESTAMPING``): the flags and the
``SCM_TIMESTAMPING`` control message.

The kernel stamps a datagram on ``CLOCK_REALTIME`` when it enters the network stack; a NIC with
hardware stamping stamps it on its PTP hardware clock (PHC) as it arrives. Both arrive as
``recvmsg`` ancillary data (``struct scm_timestamping``: three timespecs, the software stamp in
``ts[0]``, ``ts[1]`` unused, the raw hardware stamp in ``ts[2]``; a zero timespec is "none").
Used by the rig's UDP links and by the loopback broker device, whose receive stamp thereby means
"arrived at the device" as a NIC hardware stamp would, rather than "the emulator process got
scheduled".
"""

from __future__ import annotations

import socket
import struct

# linux/net_tstamp.h and asm-generic/socket.h (Python's socket module lacks them).
SO_TIMESTAMPING: int = getattr(socket, "SO_TIMESTAMPING", 37)
SCM_TIMESTAMPING: int = SO_TIMESTAMPING
SOF_TIMESTAMPING_TX_HARDWARE = 1 << 0
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_RX_HARDWARE = 1 << 2
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_RAW_HARDWARE = 1 << 6
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
#: receive stamps: software only, and software plus the NIC's raw hardware stamp
RX_SOFTWARE_FLAGS = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
RX_HARDWARE_FLAGS = RX_SOFTWARE_FLAGS | SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE
_TIMESPEC = struct.Struct("@ll")
_SCM_TIMESTAMPING = struct.Struct("@llllll")
SCM_TIMESTAMPING_SIZE = 3 * _TIMESPEC.size
#: ``ancbufsize`` for ``recvmsg`` / ``recvmsg_into`` to receive the stamp.
ANCBUFSIZE = socket.CMSG_SPACE(SCM_TIMESTAMPING_SIZE)


def enable_rx_software_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel for software RX stamps on ``sock``; False where it refuses."""
    return enable_timestamping(sock, RX_SOFTWARE_FLAGS)


def enable_timestamping(sock: socket.socket, flags: int) -> bool:
    """Set ``SO_TIMESTAMPING`` to ``flags`` (it replaces the previous set); False where the
    kernel refuses."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
    except OSError:
        return False
    return True


def parse_scm_timestamping(data: bytes) -> tuple[int, int]:
    """``struct scm_timestamping`` -> (software stamp, raw hardware stamp), ns, 0 for a zero
    timespec (not stamped that way). A short payload (a truncated control message) gives what
    it holds, the rest 0."""
    if len(data) >= _SCM_TIMESTAMPING.size:
        s0, n0, _s1, _n1, s2, n2 = _SCM_TIMESTAMPING.unpack_from(data, 0)
        return s0 * 1_000_000_000 + n0, s2 * 1_000_000_000 + n2
    if len(data) >= _TIMESPEC.size:
        s0, n0 = _TIMESPEC.unpack_from(data, 0)
        return s0 * 1_000_000_000 + n0, 0
    return 0, 0


def kernel_rx_stamps(ancdata: list[tuple[int, int, bytes]]) -> tuple[int, int]:
    """(software, raw hardware) receive stamps from ``recvmsg`` ancillary data, ns; 0 where
    the datagram has none of that kind."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING:
            return parse_scm_timestamping(data)
    return 0, 0


def kernel_rx_stamp(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The software receive stamp (ns, CLOCK_REALTIME) from ``recvmsg`` ancillary data."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING:
            if len(data) < _TIMESPEC.size:
                return None
            sec, nsec = _TIMESPEC.unpack_from(data, 0)
            if sec == 0 and nsec == 0:
                return None
            return int(sec) * 1_000_000_000 + int(nsec)
    return None

"""Kernel software receive timestamps on UDP sockets (Linux ``SO_TIMESTAMPING``).

The kernel stamps a datagram on ``CLOCK_REALTIME`` when it enters the network stack; the stamp
arrives as ``recvmsg`` ancillary data (``struct scm_timestamping``: three timespecs, the
software stamp first). Used by the rig's UDP links and by the loopback broker device, whose
receive stamp thereby means "arrived at the device" as a NIC hardware stamp would, rather than
"the emulator process got scheduled".
"""

from __future__ import annotations

import socket
import struct

# linux/net_tstamp.h and asm-generic/socket.h (Python's socket module lacks them).
SO_TIMESTAMPING: int = getattr(socket, "SO_TIMESTAMPING", 37)
SCM_TIMESTAMPING: int = SO_TIMESTAMPING
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
_TIMESPEC = struct.Struct("@ll")
SCM_TIMESTAMPING_SIZE = 3 * _TIMESPEC.size
#: ``ancbufsize`` for ``recvmsg`` / ``recvmsg_into`` to receive the stamp.
ANCBUFSIZE = socket.CMSG_SPACE(SCM_TIMESTAMPING_SIZE)


def enable_rx_software_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel for software RX stamps on ``sock``; False where it refuses."""
    try:
        sock.setsockopt(
            socket.SOL_SOCKET,
            SO_TIMESTAMPING,
            SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE,
        )
    except OSError:
        return False
    return True


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

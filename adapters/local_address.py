"""The local address the kernel would send from to reach a host (a rig socket's default bind).

A UDP socket ``connect()`` sends nothing: it only asks the kernel's routing table for the route
to the peer and fixes the socket's source address, which ``getsockname()`` then reports — the
same answer as ``ip route get HOST``'s ``src``. Binding the rig's socket there makes a device on
any interface reachable without configuration (a socket bound to 127.0.0.1 cannot reach a
non-loopback address: ``sendto`` fails with EINVAL).
"""

from __future__ import annotations

import socket

from arbsphere.errors import LinkError

#: the port of the route lookup (never sent to: a UDP connect() transmits nothing)
_PROBE_PORT = 9


def route_source(host: str) -> str:
    """The local IPv4 address the kernel routes to ``host`` from; LinkError naming the host
    when it cannot be resolved or has no route."""
    try:
        info = socket.getaddrinfo(host, _PROBE_PORT, socket.AF_INET, socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        raise LinkError(f"cannot resolve device host {host!r}: {exc}") from exc
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(info[0][4])
        except OSError as exc:
            raise LinkError(f"no route to device host {host!r}: {exc}") from exc
        return str(sock.getsockname()[0])

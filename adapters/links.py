"""Rig-side device link interfaces: what a venue or broker adapter needs from a device link.

This module owns the interfaces, the records and :class:`LinkParams` (what a campaign says
about one adapter's link) only; the backends live in
:mod:`.udp_link` (UDP datagrams with kernel receive stamps) and :mod:`.serial_link` (COBS +
CRC-32C frames over a serial port or a pty). Emulated and hardware devices sit behind the same
backends, so the pipeline never asks "is this an emulator".

A link delivers *device messages* (one :class:`Received` per message, transport framing already
removed) stamped on the rig timebase (``CLOCK_REALTIME`` ns). Transport problems never raise out
of ``receive()``: they are counted. Every backend's ``counters()`` has at least the keys in
:data:`COMMON_COUNTERS`; backends add their own (``gaps``, ``missing``, ``crc_errors`` ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

#: Kernel ``SO_TIMESTAMPING`` software stamps (receive: when the packet enters the stack;
#: transmit: when it is handed to the device).
TIMESTAMP_KERNEL = "kernel-software"
#: ``clock.now_ns()`` right after the read system call returned (receive) or right before the
#: send call (transmit).
TIMESTAMP_USER = "user-space"
#: The NIC's hardware stamps (its PTP hardware clock), converted to the rig timebase.
TIMESTAMP_HARDWARE = "hardware"

#: Keys every link's ``counters()`` has:
#: ``messages`` delivered, ``units`` transport units accepted (datagrams or frames), ``bytes``
#: read from the transport, ``malformed`` transport units rejected (each also counted under a
#: backend-specific problem key).
COMMON_COUNTERS = ("messages", "units", "bytes", "malformed")


@dataclass(frozen=True)
class LinkParams:
    """What the campaign says about one adapter's device link, whichever backend it is: each
    backend's settings dataclass takes the parameters it uses (``from_params``)."""

    #: the adapter's role name (the link's name in error messages)
    name: str
    #: UDP, rig side: where the rig listens (port 0: ephemeral)
    bind_host: str = "127.0.0.1"
    bind_port: int = 0
    #: UDP, broker: where the device listens
    device_host: str = "127.0.0.1"
    device_port: int = 0
    #: serial: the device node (or the pty slave the orchestrator allocated) and its speed
    port: str = ""
    baudrate: int = 921_600
    #: serial: framing, flow control and the low-latency flag (see :mod:`.serial_settings`)
    flow_control: str = "none"
    parity: str = "none"
    stopbits: int = 1
    low_latency: bool = True

    #: UDP: "software", "hardware" or "auto" stamps; "keep" or "set" the interface's
    #: hardware-stamp configuration (:mod:`.timestamp_mode`)
    timestamping: str = "auto"
    hw_config: str = "keep"


def link_settings(link: object) -> dict[str, Any] | None:
    """What a link set on its transport and what was refused (a serial link's
    ``settings_applied()``), or None for a link that reports none."""
    report = getattr(link, "settings_applied", None)
    return None if report is None else dict(report())


@dataclass(frozen=True)
class Received:
    """One device message as received: payload without transport framing, rig receive time."""

    payload: bytes
    rx_ns: int


class FeedLink(Protocol):
    """Rig side of a feed device link (device -> rig)."""

    name: str
    #: the receive stamps: :data:`TIMESTAMP_HARDWARE`, :data:`TIMESTAMP_KERNEL` or
    #: :data:`TIMESTAMP_USER`
    timestamp_source: str

    def fileno(self) -> int:
        """File descriptor to block on in ``select()`` / ``zmq.Poller`` (readable = data)."""
        ...

    def receive(self, timeout_ms: int) -> list[Received]:
        """Messages that arrived, blocking up to ``timeout_ms`` (0: poll, <0: forever) for the
        first; ``[]`` on timeout. May return many (everything already pending, up to a cap)."""
        ...

    def send_many(self, messages: Sequence[bytes]) -> int | None:
        """Send rig -> device messages (the clock-sync exchange) in one transport unit where
        the link allows it; returns tx_ns (rig clock, just before the send call), or None when
        the device cannot be reached yet (a UDP feed before its first datagram; counted)."""
        ...

    def counters(self) -> dict[str, int]:
        """Transport-level counters (see :data:`COMMON_COUNTERS`)."""
        ...

    def close(self) -> None:
        """Release the socket or port. Idempotent."""
        ...


class BrokerLink(FeedLink, Protocol):
    """Rig side of a broker device link: receives acks like a feed, and sends orders."""

    def send(self, message: bytes) -> int:
        """Send one device message; returns tx_ns (rig clock, just before the send call)."""
        ...

    def send_many(self, messages: Sequence[bytes]) -> int:
        """Send several device messages in one transport unit where the link allows it (one
        datagram on UDP); returns the tx_ns they share."""
        ...


@runtime_checkable
class TxStampedLink(Protocol):
    """A link that can have the kernel stamp chosen sends (UDP): the clock-sync master and the
    broker adapter use it, where a link offers it, for the send times they record."""

    #: :data:`TIMESTAMP_HARDWARE`, :data:`TIMESTAMP_KERNEL` or :data:`TIMESTAMP_USER` (the
    #: kernel gives no transmit stamps: :meth:`send_many_stamped` returns id -1)
    tx_timestamp_source: str

    def send_many_stamped(self, messages: Sequence[bytes]) -> tuple[int, int] | None:
        """:meth:`FeedLink.send_many`, asking the kernel to stamp the send: (user-space tx_ns,
        the send's stamp id, -1 without kernel transmit stamps), None when unsent."""
        ...

    def tx_stamp(self, tx_id: int, sent_ns: int, wait_ms: int = 0) -> int | None:
        """The kernel's transmit stamp of send ``tx_id`` (rig ns), waiting up to ``wait_ms``
        for it; None when it has not come (or is implausible: before ``sent_ns``, the
        user-space stamp taken before the send; counted)."""
        ...

    def timestamping_report(self) -> dict[str, Any]:
        """The link's stamps: ``rx`` and ``tx`` sources, ``rx_uncertainty_ns`` and
        ``tx_uncertainty_ns`` (of a conversion to the rig timebase: 0 on the rig's own clock),
        and what decided them."""
        ...


def timestamps_of(link: FeedLink, sync_t1: str | None = None) -> dict[str, Any]:
    """What a role's stats (and so the manifest's ``timestamps``) record of ``link``'s stamps;
    ``sync_t1``: where the clock-sync master's SYNC send times come from (None: no sync)."""
    if isinstance(link, TxStampedLink):
        found = link.timestamping_report()
    else:
        found = {"rx": link.timestamp_source, "tx": TIMESTAMP_USER, "rx_uncertainty_ns": 0,
                 "tx_uncertainty_ns": 0}  # fmt: skip
    return {**found, "sync_t1": sync_t1}

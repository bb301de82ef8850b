"""UDP backend of the device links: datagrams in, kernel receive stamps, kernel transmit stamps
of chosen sends, gap counting.

A feed device sends MoldUDP64-like datagrams (:mod:`arbsphere.firmware_interfaces.udp_datagram`)
to the rig's socket. The socket asks the kernel for receive timestamps (``SO_TIMESTAMPING``):
software stamps on ``CLOCK_REALTIME`` when the packet enters the network stack, or the NIC's
hardware stamps converted to rig time, as the campaign's ``timestamping`` and the interface
allow (:mod:`.link_timestamping`), and reads them from the ``recvmsg`` ancillary data. Where
that is unavailable it stamps in user space right after ``recvmsg`` and says so
(``timestamp_source``, ``rx_stamp_fallbacks``). A send whose time matters (a SYNC, an ORDER:
:meth:`_UdpReceiver.send_many_stamped`) gets the kernel's transmit stamp from the socket's error
queue (:meth:`_UdpReceiver.tx_stamp`; ``tx_timestamp_source``).

:class:`UdpFeedLink` receives, and sends the rig's clock-sync messages back to the address the
device sends from; :class:`UdpBrokerLink` sends orders to the configured broker device address
and receives its acks the same way.
"""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arbsphere.adapters.link_timestamping import LinkTimestamping, StampSettings
from arbsphere.adapters.links import TIMESTAMP_USER, LinkParams, Received
from arbsphere.adapters.nic_timestamping import interface_with_address
from arbsphere.clock import Clock
from arbsphere.errors import DatagramError, LinkError
from arbsphere.firmware_interfaces.kernel_timestamps import ANCBUFSIZE
from arbsphere.firmware_interfaces.udp_datagram import (
    GapDetector,
    pack_datagram,
    session_id,
    unpack_datagram,
)

MAX_DATAGRAM = 65536


@dataclass(frozen=True)
class UdpLinkConfig:
    """Rig side of a UDP feed link: where the rig listens (port 0 = ephemeral)."""

    bind_host: str = "127.0.0.1"
    bind_port: int = 0
    name: str = "udp-feed"
    #: ask the kernel for receive stamps (False: always user-space stamps from the clock)
    kernel_timestamps: bool = True
    #: datagrams read per receive() call at most (the rest stay queued in the socket)
    max_datagrams_per_call: int = 256
    #: SO_RCVBUF in bytes (0: leave the system default)
    rcvbuf_bytes: int = 4 * 1024 * 1024
    #: "software", "hardware" or "auto" stamps; "keep" or "set" the interface's hardware-stamp
    #: configuration (:mod:`.timestamp_mode`)
    timestamping: str = "auto"
    hw_config: str = "keep"

    @classmethod
    def from_params(cls, p: LinkParams) -> UdpLinkConfig:
        """A venue adapter's UDP link: the campaign's ``bind_host`` and ``bind_port`` (0:
        ephemeral; the bound address goes into the adapter's ready file)."""
        return cls(bind_host=p.bind_host, bind_port=p.bind_port, name=p.name,
                   timestamping=p.timestamping, hw_config=p.hw_config)  # fmt: skip

    def stamps(self) -> StampSettings:
        return StampSettings(self.timestamping, self.hw_config, self.kernel_timestamps)


@dataclass(frozen=True)
class UdpBrokerLinkConfig:
    """Rig side of a UDP broker link: the device's address and the rig's own socket."""

    device_host: str
    device_port: int
    bind_host: str = "127.0.0.1"
    bind_port: int = 0
    #: session field of the rig's outgoing order datagrams (ASCII, at most 10 characters)
    session: str = "RIG"
    name: str = "udp-broker"
    kernel_timestamps: bool = True
    max_datagrams_per_call: int = 256
    rcvbuf_bytes: int = 0
    timestamping: str = "auto"
    hw_config: str = "keep"

    @classmethod
    def from_params(cls, p: LinkParams) -> UdpBrokerLinkConfig:
        """The broker adapter's UDP link: the device's ``device_host`` and ``device_port``;
        the rig's socket is an ephemeral port on ``bind_host`` (an address the device can
        answer: the orchestrator resolves the campaign's ``[broker] bind_host``)."""
        return cls(device_host=p.device_host, device_port=p.device_port,
                   bind_host=p.bind_host, bind_port=0, session=BROKER_SESSION,
                   timestamping=p.timestamping, hw_config=p.hw_config)  # fmt: skip

    def stamps(self) -> StampSettings:
        return StampSettings(self.timestamping, self.hw_config, self.kernel_timestamps)


#: session field of the broker adapter's order datagrams
BROKER_SESSION = "BROKER"


class _UdpReceiver:
    """Shared receive path: stamped recvmsg, datagram unpacking, gap detection, counters."""

    def __init__(
        self,
        name: str,
        bind_host: str,
        bind_port: int,
        clock: Clock,
        *,
        stamps: StampSettings,
        max_datagrams_per_call: int,
        rcvbuf_bytes: int,
        route_to: str | None = None,
    ) -> None:
        if max_datagrams_per_call < 1:
            raise ValueError(f"max_datagrams_per_call must be >= 1, got {max_datagrams_per_call}")
        self.name = name
        self.clock = clock
        self.max_datagrams_per_call = max_datagrams_per_call
        self.gaps = GapDetector()
        self.last_error: DatagramError | None = None
        self._counts = {
            "units": 0,
            "messages": 0,
            "bytes": 0,
            "malformed": 0,
            "decode_errors": 0,
            "truncated": 0,
            "socket_errors": 0,
            "tx_stamps_implausible": 0,
            "tx_stamp_send_refused": 0,
        }
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if rcvbuf_bytes > 0:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
            sock.bind((bind_host, bind_port))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise LinkError(f"{name}: cannot bind UDP {bind_host}:{bind_port}: {exc}") from exc
        self._sock = sock
        self.address: tuple[str, int] = sock.getsockname()[:2]
        try:
            self._ts = LinkTimestamping.open(
                sock, name, _interface_of(self.address[0], route_to), clock, stamps
            )
        except LinkError:
            sock.close()
            raise
        self.timestamp_source = self._ts.rx_source
        self.tx_timestamp_source = self._ts.tx_source
        self._tx = self._ts.tx
        self._phc = self._ts.phc
        self._buf = bytearray(MAX_DATAGRAM)
        self._view = memoryview(self._buf)
        self._ancbufsize = ANCBUFSIZE
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        self._closed = False
        #: where rig -> device datagrams go; a feed link learns it from the device's datagrams
        self.peer: tuple[str, int] | None = None
        self._learn_peer = True
        self._session = session_id(b"RIG")
        self._next_seq = 1
        self._counts.update({"sent": 0, "bytes_sent": 0, "unsent_no_peer": 0})

    def fileno(self) -> int:
        return self._sock.fileno()

    def send_many(self, messages: Sequence[bytes]) -> int | None:
        """All ``messages`` in one datagram (MoldUDP64 style, the rig's own session and
        sequence) to the device; returns the tx stamp (rig clock just before ``sendto``), or
        None (counted ``unsent_no_peer``) while a feed device's address is not known yet."""
        sent = self._send(messages, None)
        return None if sent is None else sent[0]

    def send_many_stamped(self, messages: Sequence[bytes]) -> tuple[int, int] | None:
        """:meth:`send_many` with the kernel asked to stamp the send: (user-space tx_ns, the
        send's stamp id for :meth:`tx_stamp`; -1 without kernel transmit stamps)."""
        return self._send(messages, self._tx)

    def _send(self, messages: Sequence[bytes], tx: Any) -> tuple[int, int] | None:
        peer = self.peer
        if peer is None:
            self._counts["unsent_no_peer"] += len(messages)
            return None
        try:
            dgram = pack_datagram(self._session, self._next_seq, messages)
        except ValueError as exc:
            raise LinkError(f"{self.name}: cannot send message: {exc}") from exc
        tx_ns = self.clock.now_ns()
        try:
            if tx is None:
                self._sock.sendto(dgram, peer)
            else:
                self._sock.sendmsg((dgram,), tx.ancillary, 0, peer)
        except OSError as exc:
            if tx is not None and exc.errno == errno.EINVAL:
                return self._refuse_tx_stamps(messages)
            raise LinkError(
                f"{self.name}: send to device {peer[0]}:{peer[1]} failed: {exc}"
            ) from exc
        self._next_seq += len(messages)
        self._counts["sent"] += len(messages)
        self._counts["bytes_sent"] += len(dgram)
        return tx_ns, -1 if tx is None else tx.sent()

    def _refuse_tx_stamps(self, messages: Sequence[bytes]) -> tuple[int, int] | None:
        """The kernel refused the per-send stamp request: user-space transmit stamps from now
        on (counted), and the send made without it."""
        self._counts["tx_stamp_send_refused"] += 1
        self._tx = None
        self.tx_timestamp_source = TIMESTAMP_USER
        return self._send(messages, None)

    def tx_stamp(self, tx_id: int, sent_ns: int, wait_ms: int = 0) -> int | None:
        """The kernel transmit stamp (rig ns) of send ``tx_id``, waiting up to ``wait_ms``;
        None when it has not come, or lies before ``sent_ns`` (the user-space stamp taken
        before the send) by more than the stamp's uncertainty (``tx_stamps_implausible``)."""
        tx = self._tx
        if tx is None or tx_id < 0:
            return None
        found: int | None = tx.wait(tx_id, wait_ms) if wait_ms > 0 else tx.take(tx_id)
        if found is not None and found < sent_ns - self._ts.uncertainty_ns:
            self._counts["tx_stamps_implausible"] += 1
            return None
        return found

    def timestamping_report(self) -> dict[str, Any]:
        """The link's stamps for the role's stats and the manifest: sources (rx, tx), why,
        the PHC conversion and its uncertainty, any hardware-stamp configuration set."""
        return {**self._ts.report(), "rx": self.timestamp_source, "tx": self.tx_timestamp_source}

    def receive(self, timeout_ms: int) -> list[Received]:
        if self._closed:
            raise LinkError(f"{self.name}: receive() on a closed link")
        events = self._poll.poll(None if timeout_ms < 0 else timeout_ms)
        if not events:
            return []
        if self._tx is not None and events[0][1] & select.POLLERR:
            self._tx.drain()  # transmit stamps waiting: read them now, or poll never blocks
        if self._phc is not None:
            self._phc.refresh(self.clock.now_ns())
        stamp = self._ts.rx_stamp
        out: list[Received] = []
        for _ in range(self.max_datagrams_per_call):
            try:
                n, ancdata, flags, addr = self._sock.recvmsg_into([self._buf], self._ancbufsize)
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                # ICMP port unreachable from an earlier send; the socket stays usable.
                self._counts["socket_errors"] += 1
                continue
            rx_ns = stamp(ancdata, self.clock.now_ns())
            if self._learn_peer:
                self.peer = addr[:2]
            self._accept(n, flags, rx_ns, out)
        self.timestamp_source = self._ts.rx_source
        return out

    def _accept(self, n: int, flags: int, rx_ns: int, out: list[Received]) -> None:
        self._counts["bytes"] += n
        if flags & socket.MSG_TRUNC:
            self._counts["truncated"] += 1
            self._reject(
                DatagramError("truncated", MAX_DATAGRAM, f"datagram longer than {MAX_DATAGRAM}")
            )
            return
        try:
            dgram = unpack_datagram(self._view[:n])
        except DatagramError as exc:
            self._counts["decode_errors"] += 1
            self._reject(exc)
            return
        self._counts["units"] += 1
        self.gaps.observe(dgram.session, dgram.sequence, dgram.count)
        for msg in dgram.messages:
            out.append(Received(bytes(msg), rx_ns))
        self._counts["messages"] += dgram.count

    def _reject(self, exc: DatagramError) -> None:
        self._counts["malformed"] += 1
        self.last_error = exc

    def counters(self) -> dict[str, int]:
        return {**self._counts, **self._ts.counters(), **self.gaps.counters()}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._ts.close()
            self._sock.close()


def _interface_of(local: str, route_to: str | None) -> str | None:
    """The interface a socket bound to ``local`` uses: the one holding that address; for a
    wildcard bind, the one the kernel routes ``route_to`` through (None: unknown)."""
    if local in ("0.0.0.0", ""):
        if route_to is None:
            return None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((route_to, 9))  # a UDP connect sends nothing
            except OSError:
                return None
            local = str(probe.getsockname()[0])
    return interface_with_address(local)


class UdpFeedLink(_UdpReceiver):
    """Rig side of a UDP feed device: one :class:`Received` per device message.

    ``address`` is the bound ``(host, port)`` to give the device. All messages of one datagram
    share its receive stamp. ``timestamp_source`` starts as ``"hardware"`` (the campaign's
    ``timestamping`` and the interface allow it) or ``"kernel-software"`` when the kernel
    accepted ``SO_TIMESTAMPING``. If a datagram arrives without the stamp promised the link
    takes the next best for it and every later one (never a mix): a missing hardware stamp
    turns it ``"kernel-software"`` (``rx_hw_missing`` counts those datagrams), a missing kernel
    stamp ``"user-space"`` (``rx_stamp_fallbacks`` counts the datagrams stamped in user space
    although kernel stamps were requested).
    """

    def __init__(self, config: UdpLinkConfig, clock: Clock) -> None:
        super().__init__(
            config.name,
            config.bind_host,
            config.bind_port,
            clock,
            stamps=config.stamps(),
            max_datagrams_per_call=config.max_datagrams_per_call,
            rcvbuf_bytes=config.rcvbuf_bytes,
        )
        self.config = config


class UdpBrokerLink(_UdpReceiver):
    """Rig side of a UDP broker device: orders out (one per datagram), acks in.

    Outgoing datagrams carry the configured session and the link's own message sequence,
    starting at 1, so the device can count gaps too.
    """

    def __init__(self, config: UdpBrokerLinkConfig, clock: Clock) -> None:
        super().__init__(
            config.name,
            config.bind_host,
            config.bind_port,
            clock,
            stamps=config.stamps(),
            max_datagrams_per_call=config.max_datagrams_per_call,
            rcvbuf_bytes=config.rcvbuf_bytes,
            route_to=config.device_host,
        )
        self.config = config
        try:
            session_id(config.session)
        except ValueError as exc:
            self.close()
            raise LinkError(f"{config.name}: bad session {config.session!r}: {exc}") from exc
        try:
            info = socket.getaddrinfo(
                config.device_host, config.device_port, socket.AF_INET, socket.SOCK_DGRAM
            )
        except (OSError, UnicodeError) as exc:
            self.close()
            raise LinkError(
                f"{config.name}: cannot resolve device {config.device_host}:"
                f"{config.device_port}: {exc}"
            ) from exc
        host, port = info[0][4][:2]
        self.device_address: tuple[str, int] = (str(host), int(port))
        self.peer = self.device_address
        self._learn_peer = False
        self._session = session_id(config.session)

    def send(self, message: bytes) -> int:
        return self.send_many((message,))

    def send_many(self, messages: Sequence[bytes]) -> int:
        """All ``messages`` in one datagram (MoldUDP64 style); returns the tx stamp."""
        tx_ns = super().send_many(messages)
        assert tx_ns is not None  # the broker's address is configured, never learned
        return tx_ns

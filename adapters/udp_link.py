"""UDP backend of the device links: datagrams in, kernel software receive stamps, gap counting.

A feed device sends MoldUDP64-like datagrams (:mod:`arbsphere.firmware_interfaces.udp_datagram`)
to the rig's socket. The socket asks the kernel for software receive timestamps
(``SO_TIMESTAMPING`` with ``SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE``), stamped
on ``CLOCK_REALTIME`` when the packet enters the network stack, and reads them from the
``recvmsg`` ancillary data. Where that is unavailable it stamps in user space right after
``recvmsg`` and says so (``timestamp_source``, ``rx_stamp_fallbacks``).

:class:`UdpFeedLink` receives, and sends the rig's clock-sync messages back to the address the
device sends from; :class:`UdpBrokerLink` sends orders to the configured broker device address
and receives its acks the same way.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from arbsphere.adapters.links import TIMESTAMP_KERNEL, TIMESTAMP_USER, LinkParams, Received
from arbsphere.clock import Clock
from arbsphere.errors import DatagramError, LinkError
from arbsphere.firmware_interfaces.kernel_timestamps import (
    ANCBUFSIZE,
    enable_rx_software_timestamps,
    kernel_rx_stamp,
)
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

    @classmethod
    def from_params(cls, p: LinkParams) -> UdpLinkConfig:
        """A venue adapter's UDP link: the campaign's ``bind_host`` and ``bind_port`` (0:
        ephemeral; the bound address goes into the adapter's ready file)."""
        return cls(bind_host=p.bind_host, bind_port=p.bind_port, name=p.name)


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

    @classmethod
    def from_params(cls, p: LinkParams) -> UdpBrokerLinkConfig:
        """The broker adapter's UDP link: the device's ``device_host`` and ``device_port``;
        the rig's socket is an ephemeral port on ``bind_host`` (an address the device can
        answer: the orchestrator resolves the campaign's ``[broker] bind_host``)."""
        return cls(device_host=p.device_host, device_port=p.device_port,
                   bind_host=p.bind_host, bind_port=0, session=BROKER_SESSION)  # fmt: skip


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
        kernel_timestamps: bool,
        max_datagrams_per_call: int,
        rcvbuf_bytes: int,
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
            "rx_stamp_fallbacks": 0,
            "socket_errors": 0,
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
        self._kernel_requested = kernel_timestamps
        self._use_kernel = False
        if kernel_timestamps:
            self._use_kernel = enable_rx_software_timestamps(sock)
        self.timestamp_source = TIMESTAMP_KERNEL if self._use_kernel else TIMESTAMP_USER
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
            self._sock.sendto(dgram, peer)
        except OSError as exc:
            raise LinkError(
                f"{self.name}: send to device {peer[0]}:{peer[1]} failed: {exc}"
            ) from exc
        self._next_seq += len(messages)
        self._counts["sent"] += len(messages)
        self._counts["bytes_sent"] += len(dgram)
        return tx_ns

    def receive(self, timeout_ms: int) -> list[Received]:
        if self._closed:
            raise LinkError(f"{self.name}: receive() on a closed link")
        if not self._poll.poll(None if timeout_ms < 0 else timeout_ms):
            return []
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
            rx_ns = self.clock.now_ns()
            if self._kernel_requested:
                stamp = kernel_rx_stamp(ancdata) if self._use_kernel else None
                if stamp is None:
                    self._counts["rx_stamp_fallbacks"] += 1
                    self._use_kernel = False
                    self.timestamp_source = TIMESTAMP_USER
                else:
                    rx_ns = stamp
            if self._learn_peer:
                self.peer = addr[:2]
            self._accept(n, flags, rx_ns, out)
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
        return {**self._counts, **self.gaps.counters()}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close()


class UdpFeedLink(_UdpReceiver):
    """Rig side of a UDP feed device: one :class:`Received` per device message.

    ``address`` is the bound ``(host, port)`` to give the device. All messages of one datagram
    share its receive stamp. ``timestamp_source`` starts as ``"kernel-software"`` when the
    kernel accepted ``SO_TIMESTAMPING``. If a datagram arrives without a stamp the link stamps
    it, and every later one, in user space (never a mix), ``timestamp_source`` turns
    ``"user-space"`` and ``rx_stamp_fallbacks`` counts the datagrams stamped in user space
    although kernel stamps were requested.
    """

    def __init__(self, config: UdpLinkConfig, clock: Clock) -> None:
        super().__init__(
            config.name,
            config.bind_host,
            config.bind_port,
            clock,
            kernel_timestamps=config.kernel_timestamps,
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
            kernel_timestamps=config.kernel_timestamps,
            max_datagrams_per_call=config.max_datagrams_per_call,
            rcvbuf_bytes=config.rcvbuf_bytes,
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

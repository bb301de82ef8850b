"""The device side of a link: device messages out with the transport's framing, rig messages in
with their arrival stamps.

Two transports, one interface (:class:`DeviceLink`):

* :class:`UdpDeviceLink` — every send is one datagram (24-byte header: session, count, the
  sequence of its first message; MoldUDP64-like); each device message takes the next sequence
  number, starting at 1. Rig datagrams are stamped by the kernel on arrival (software
  ``SO_TIMESTAMPING``; a user-space stamp where there is none) and their header sequence is
  tracked (:class:`~arbsphere.firmware_interfaces.udp_datagram.GapDetector`).
* :class:`SerialDeviceLink` — every message is one COBS + CRC-32C frame with a 0x00 delimiter,
  on a serial port (pyserial) or an already open file descriptor (a pty master); received bytes
  are deframed as they come, stamped when read. Writes never block: bytes the port's buffer has
  no room for are dropped and counted (``bytes_dropped``), as on a line without flow control.

Received messages come as :class:`Received` (one device message, arrival on the host clock).
A unit the transport cannot take apart (bad datagram, bad frame) is not delivered; it is
counted in :meth:`DeviceLink.counters` and reported to ``on_error`` (the
:class:`~arbsphere.firmware_interfaces.sync_responder.SyncResponder`'s ``reject`` in a
:class:`~arbsphere.sdk.device_loop.DeviceLoop`).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import serial

from arbsphere.errors import DatagramError, LinkError
from arbsphere.firmware_interfaces.kernel_timestamps import (
    ANCBUFSIZE,
    enable_rx_software_timestamps,
    kernel_rx_stamp,
)
from arbsphere.firmware_interfaces.serial_framing import FrameDecoder, encode_frame
from arbsphere.firmware_interfaces.udp_datagram import (
    HEADER_SIZE,
    GapDetector,
    pack_datagram,
    session_id,
    unpack_datagram,
)

#: rig datagrams are small; a longer one is truncated and counted malformed
MAX_RIG_DATAGRAM = 2048
_I64 = struct.Struct("<q")
#: while a pty's rig end is closed (the master reads EIO), look again this often
HANGUP_RETRY_S = 0.02

#: ``on_error(reason, detail)``: a unit the transport could not take apart
ErrorSink = Callable[[str, str], None]


def _host_now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_REALTIME)


@dataclass(frozen=True)
class Received:
    """One device message from the rig and when it arrived (host ``CLOCK_REALTIME`` ns)."""

    data: bytes
    """The message's bytes (header and body)."""
    rx_ns: int
    """Arrival on the host clock: a kernel receive stamp where there is one."""
    user_stamp: bool
    """True when ``rx_ns`` is a user-space stamp taken where a kernel stamp was wanted."""


class DeviceLink(Protocol):
    """What a :class:`~arbsphere.sdk.device_loop.DeviceLoop` needs from a transport."""

    def fileno(self) -> int | None:
        """The descriptor to wait on for rig messages; None while there is nothing to wait
        on (a pty whose rig end is closed: look again after :data:`HANGUP_RETRY_S`)."""
        ...

    def receive(self, on_error: ErrorSink | None = None) -> list[Received]:
        """Every rig message readable now (never blocks)."""
        ...

    def send(self, messages: Sequence[bytes]) -> None:
        """Send encoded device messages (one datagram, or one frame each)."""
        ...

    def send_stamped(
        self, messages: Sequence[bytes], stamp_offset: int, stamp: Callable[[], int]
    ) -> None:
        """Send ``messages`` with the i64 at ``stamp_offset`` of each set to ``stamp()``, read
        as the last thing before the write (a DELAY_REQ's ``t3``, a TICK's ``send_ns``)."""
        ...

    def counters(self) -> dict[str, Any]:
        """The link's counts, for the device's stats."""
        ...

    def close(self) -> None:
        """Release the socket or port."""
        ...


class UdpDeviceLink(DeviceLink):
    """A device's UDP socket (see the module docstring).

    ``target`` is where device messages go (a feed: the rig's ``bind_host:bind_port``); None
    sends each reply to the address the latest rig datagram came from (a broker). ``bind`` is
    the local address (port 0: ephemeral).
    """

    def __init__(
        self,
        session: str | bytes,
        *,
        target: tuple[str, int] | None = None,
        bind: tuple[str, int] = ("0.0.0.0", 0),
    ) -> None:
        self.session = session_id(session)
        self.target = target
        self.reply_to: tuple[str, int] | None = None
        self.next_sequence = 1
        self.gaps = GapDetector()
        self.counts = {"datagrams_sent": 0, "messages_sent": 0, "bytes_sent": 0,
                       "rig_datagrams": 0, "malformed_datagrams": 0}  # fmt: skip
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind(bind)
        except OSError as exc:
            self._sock.close()
            raise LinkError(f"device link: cannot bind UDP {bind[0]}:{bind[1]}: {exc}") from exc
        self.kernel_stamps = enable_rx_software_timestamps(self._sock)
        self._buf = bytearray(MAX_RIG_DATAGRAM)

    @property
    def address(self) -> tuple[str, int]:
        """The bound local address."""
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self, on_error: ErrorSink | None = None) -> list[Received]:
        out: list[Received] = []
        while True:
            try:
                n, anc, flags, addr = self._sock.recvmsg_into(
                    [self._buf], ANCBUFSIZE, socket.MSG_DONTWAIT
                )
            except (BlockingIOError, InterruptedError):
                return out
            except ConnectionRefusedError:  # ICMP from an earlier send; the socket stays usable
                continue
            except OSError as exc:
                raise LinkError(f"device link: UDP receive failed: {exc}") from exc
            stamp = kernel_rx_stamp(anc) if self.kernel_stamps else None
            rx = _host_now_ns() if stamp is None else stamp
            self.counts["rig_datagrams"] += 1
            self.reply_to = (addr[0], addr[1])
            try:
                if flags & socket.MSG_TRUNC:
                    raise DatagramError("oversize", MAX_RIG_DATAGRAM, "truncated datagram")
                dgram = unpack_datagram(bytes(self._buf[:n]))
            except DatagramError as exc:
                self.counts["malformed_datagrams"] += 1
                if on_error is not None:
                    on_error("malformed_datagram", str(exc))
                continue
            self.gaps.observe(dgram.session, dgram.sequence, dgram.count)
            out.extend(Received(bytes(m), rx, stamp is None) for m in dgram.messages)

    def send(self, messages: Sequence[bytes]) -> None:
        self._write(pack_datagram(self.session, self.next_sequence, messages), len(messages))

    def send_stamped(
        self, messages: Sequence[bytes], stamp_offset: int, stamp: Callable[[], int]
    ) -> None:
        dgram = bytearray(pack_datagram(self.session, self.next_sequence, messages))
        value, pos = stamp(), HEADER_SIZE + stamp_offset
        for m in messages:
            _I64.pack_into(dgram, pos, value)
            pos += len(m)
        self._write(dgram, len(messages))

    def _write(self, dgram: bytes | bytearray, n_messages: int) -> None:
        to = self.target or self.reply_to
        if to is None:
            raise LinkError("device link: no target and no rig datagram to reply to yet")
        try:
            self._sock.sendto(dgram, to)
        except OSError as exc:
            raise LinkError(f"device link: send to {to[0]}:{to[1]} failed: {exc}") from exc
        self.next_sequence += n_messages
        self.counts["datagrams_sent"] += 1
        self.counts["messages_sent"] += n_messages
        self.counts["bytes_sent"] += len(dgram)

    def counters(self) -> dict[str, Any]:
        source = "kernel-software" if self.kernel_stamps else "user-space"
        return {**self.counts, "next_sequence": self.next_sequence, "rx_timestamps": source,
                "rig_sequence": self.gaps.counters()}  # fmt: skip

    def close(self) -> None:
        self._sock.close()


class SerialDeviceLink(DeviceLink):
    """A device's serial link (see the module docstring): ``port`` is a device path opened
    with pyserial at ``baudrate`` (raw, 8N1), or an open file descriptor (a pty master) the
    link takes over and closes. While nobody holds a pty's other end (before the rig opens it,
    after it closed it) reads fail with EIO: the link then offers no descriptor for
    :data:`HANGUP_RETRY_S` (counted in ``hangups``)."""

    def __init__(self, port: str | int, baudrate: int = 921_600) -> None:
        self._serial: Any = None
        if isinstance(port, int):
            self._fd = port
        else:
            try:
                self._serial = serial.Serial(port, baudrate, timeout=0)
            except (serial.SerialException, OSError) as exc:
                raise LinkError(f"device link: cannot open serial port {port}: {exc}") from exc
            self._fd = self._serial.fileno()
        os.set_blocking(self._fd, False)
        self._decoder = FrameDecoder()
        self._retry_ns: int | None = None  # hung up: no descriptor to wait on until then
        self.counts = {"frames_sent": 0, "bytes_sent": 0, "bytes_received": 0, "hangups": 0,
                       "writes_cut": 0, "bytes_dropped": 0}  # fmt: skip

    def fileno(self) -> int | None:
        if self._retry_ns is not None:
            if _host_now_ns() < self._retry_ns:
                return None
            self._retry_ns = None
        return self._fd

    def receive(self, on_error: ErrorSink | None = None) -> list[Received]:
        try:
            chunk = os.read(self._fd, 4096)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise LinkError(f"device link: serial read failed: {exc}") from exc
            chunk = b""
        rx = _host_now_ns()
        if not chunk:  # EIO or EOF: nobody at the rig end right now
            self.counts["hangups"] += self._retry_ns is None
            self._retry_ns = rx + round(HANGUP_RETRY_S * 1e9)
            return []
        self.counts["bytes_received"] += len(chunk)
        errors = self._errors()
        payloads = self._decoder.feed(chunk)
        if on_error is not None and self._errors() > errors:
            err = self._decoder.last_error
            crc = err is not None and err.problem == "crc"
            on_error("crc_error" if crc else "malformed_frame", str(err))
        return [Received(p, rx, True) for p in payloads]

    def _errors(self) -> int:
        d = self._decoder
        return d.crc_errors + d.cobs_errors + d.short_frames + d.oversize

    def send(self, messages: Sequence[bytes]) -> None:
        self._write(b"".join(encode_frame(m) for m in messages), len(messages))

    def send_stamped(
        self, messages: Sequence[bytes], stamp_offset: int, stamp: Callable[[], int]
    ) -> None:
        value = _I64.pack(stamp())
        stamped = [m[:stamp_offset] + value + m[stamp_offset + 8 :] for m in messages]
        self.send(stamped)

    def _write(self, data: bytes, n_frames: int) -> None:
        """One non-blocking write; what the port's buffer has no room for is dropped and
        counted, as a line without flow control loses it (a pty nobody reads fills up)."""
        try:
            n = os.write(self._fd, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            raise LinkError(f"device link: serial write failed: {exc}") from exc
        self.counts["frames_sent"] += n_frames
        self.counts["bytes_sent"] += n
        if n < len(data):
            self.counts["writes_cut"] += 1
            self.counts["bytes_dropped"] += len(data) - n

    def counters(self) -> dict[str, Any]:
        return {**self.counts, "framing": self._decoder.counters()}

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
        else:
            os.close(self._fd)

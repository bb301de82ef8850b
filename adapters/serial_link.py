"""Serial backend of the device links: COBS + CRC-32C frames over a serial port or a pty.

The port is opened with pyserial (a USB serial adapter in the lab, the slave side of a pty for
an emulated device). Bytes go through a :class:`~arbsphere.firmware_interfaces.serial_framing.
FrameDecoder`; each valid frame is one device message. Receive stamps are user-space:
``clock.now_ns()`` right after the read that completed the frame. ``receive()`` blocks in
``select()`` on the port's fd, never spins.

The port is opened with the campaign's parity, stop bits, flow control and low-latency flag
(:mod:`.serial_settings`); what the port took and what it refused is
:meth:`SerialFeedLink.settings_applied`, which the adapter writes to its stats for the manifest.
"""

from __future__ import annotations

import os
import select
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arbsphere.adapters.links import TIMESTAMP_USER, LinkParams, Received
from arbsphere.adapters.serial_settings import SerialSettings, open_port
from arbsphere.clock import Clock
from arbsphere.errors import FrameError, LinkError
from arbsphere.firmware_interfaces.serial_framing import FrameDecoder, encode_frame

READ_CHUNK = 65536
#: a write that makes no progress for this long fails the link
WRITE_STALL_S = 1.0


@dataclass(frozen=True)
class SerialLinkConfig:
    """Rig side of a serial link: the port path (device node or pty slave), its speed and the
    framing, flow control and low-latency flag asked of it (see :class:`SerialSettings`)."""

    port: str = "/dev/ttyUSB0"
    baudrate: int = 921600
    name: str = "serial-feed"
    #: reads per receive() call at most once data is flowing (the rest stays in the port)
    max_reads_per_call: int = 64
    #: "none" | "rtscts" | "xonxoff" | "dsrdtr"
    flow_control: str = "none"
    #: "none" | "even" | "odd"
    parity: str = "none"
    stopbits: int = 1
    #: ask for ASYNC_LOW_LATENCY (a port that refuses it is reported, not failed)
    low_latency: bool = True

    def __post_init__(self) -> None:
        self.settings()  # validates

    def settings(self) -> SerialSettings:
        return SerialSettings(self.flow_control, self.parity, self.stopbits, self.low_latency)

    @classmethod
    def from_params(cls, p: LinkParams) -> SerialLinkConfig:
        """A venue or broker adapter's serial link: the campaign's ``port`` (a device node, or
        the pty slave the orchestrator allocated), ``baudrate`` and serial settings."""
        return cls(port=p.port, baudrate=p.baudrate, name=p.name, flow_control=p.flow_control,
                   parity=p.parity, stopbits=p.stopbits, low_latency=p.low_latency)  # fmt: skip


class SerialFeedLink:
    """Rig side of a serial feed device: one :class:`Received` per valid frame."""

    timestamp_source = TIMESTAMP_USER
    #: how long a write may wait for the port to take more bytes; a feed link only sends
    #: clock-sync messages, which must never hold up the receive path: 0 = fail at once
    write_stall_s = 0.0

    def __init__(self, config: SerialLinkConfig, clock: Clock) -> None:
        if config.max_reads_per_call < 1:
            raise ValueError(f"max_reads_per_call must be >= 1, got {config.max_reads_per_call}")
        self.config = config
        self.name = config.name
        self.clock = clock
        self._port, self._settings = open_port(
            config.port, config.baudrate, config.settings(), config.name
        )
        self._fd: int = self._port.fileno()
        os.set_blocking(self._fd, False)
        self.decoder = FrameDecoder()
        self._sent = 0
        self._bytes_sent = 0
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self._messages = 0
        self._closed = False

    @property
    def last_error(self) -> FrameError | None:
        """The latest rejected frame (problem, absolute stream offset), or None."""
        return self.decoder.last_error

    def fileno(self) -> int:
        return self._fd

    def settings_applied(self) -> dict[str, Any]:
        """What was asked of the port, what it holds (read back at open) and why any setting
        is not held (a pty refuses low latency and parity), as JSON for the manifest."""
        return self._settings.to_json()

    def receive(self, timeout_ms: int) -> list[Received]:
        if self._closed:
            raise LinkError(f"{self.name}: receive() on a closed link")
        out: list[Received] = []
        deadline = None if timeout_ms < 0 else self.clock.now_ns() + timeout_ms * 1_000_000
        wait_ms: int | None = None if timeout_ms < 0 else timeout_ms
        while True:
            if not self._poll.poll(wait_ms):
                return out
            self._drain(out)
            if out:
                return out
            # Only part of a frame so far: wait for the rest within the same timeout.
            if deadline is not None:
                left_ns = deadline - self.clock.now_ns()
                if left_ns <= 0:
                    return out
                wait_ms = max(1, left_ns // 1_000_000)

    def _drain(self, out: list[Received]) -> None:
        for _ in range(self.config.max_reads_per_call):
            try:
                data = os.read(self._fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError as exc:
                raise LinkError(
                    f"{self.name}: read from serial port {self.config.port!r} failed "
                    f"(device side closed?): {exc}"
                ) from exc
            if not data:
                raise LinkError(f"{self.name}: serial port {self.config.port!r} reached EOF")
            rx_ns = self.clock.now_ns()
            for payload in self.decoder.feed(data):
                out.append(Received(payload, rx_ns))
                self._messages += 1
            if len(data) < READ_CHUNK:
                return

    def send_many(self, messages: Sequence[bytes]) -> int:
        """Frames back to back in one write (rig -> device: clock sync on a feed, orders on a
        broker); returns the tx stamp they share (rig clock just before the write)."""
        try:
            frame = b"".join(encode_frame(m) for m in messages)
        except ValueError as exc:
            raise LinkError(f"{self.name}: cannot frame message: {exc}") from exc
        tx_ns = self.clock.now_ns()
        view = memoryview(frame)
        try:
            while view:
                try:
                    n = os.write(self._fd, view)
                except BlockingIOError:
                    if not select.select([], [self._fd], [], self.write_stall_s)[1]:
                        raise LinkError(
                            f"{self.name}: serial port {self.config.port!r} accepted no bytes "
                            f"for {self.write_stall_s} s ({len(view)} of {len(frame)} unsent)"
                        ) from None
                    continue
                view = view[n:]
        except OSError as exc:
            raise LinkError(
                f"{self.name}: write to serial port {self.config.port!r} failed: {exc}"
            ) from exc
        self._sent += len(messages)
        self._bytes_sent += len(frame)
        return tx_ns

    def counters(self) -> dict[str, int]:
        c = self.decoder.counters()
        malformed = c["crc_errors"] + c["cobs_errors"] + c["short_frames"] + c["oversize"]
        return {
            "messages": self._messages,
            "units": c["frames_ok"],
            "bytes": c["bytes_in"],
            "malformed": malformed,
            **c,
            "sent": self._sent,
            "bytes_sent": self._bytes_sent,
        }

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._port.close()


class SerialBrokerLink(SerialFeedLink):
    """Rig side of a serial broker device: orders out as frames, acks in as frames."""

    write_stall_s = WRITE_STALL_S

    def send(self, message: bytes) -> int:
        return self.send_many((message,))

"""The rig -> device direction of an emulated feed link, served while the feed waits.

:class:`RigInbound` reads what arrived, optionally holds it in a ``to_device``
:class:`~.impairment.Impairer` and processes it at its release time (which is then its arrival
stamp), hands clock-sync messages to the
:class:`~arbsphere.firmware_interfaces.sync_responder.SyncResponder` and ARM / START to the
feed's :class:`~arbsphere.firmware_interfaces.start_handshake.StartHandshake`, answers through
the feed's transmitter, and releases ``to_rig`` impaired sends on time (see
:class:`~.schedule.ServicedSleep`). Transports subclass it (:mod:`.feed_udp`,
:mod:`.feed_serial`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from arbsphere.clock import Clock
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.device_main import ConfigReader
from arbsphere.firmware_interfaces.emulators.impairment import (
    ImpairedTransmitter,
    Impairer,
    ImpairmentSpec,
    LinkImpairment,
)
from arbsphere.firmware_interfaces.emulators.schedule import Transmitter
from arbsphere.firmware_interfaces.start_handshake import (
    DEVICE_TIME_OFFSET,
    StartHandshake,
)
from arbsphere.firmware_interfaces.sync_responder import (
    T3_OFFSET,
    PendingDelayReq,
    SyncResponder,
)

#: rig -> device messages of the start handshake (first byte: the message type)
_START_IN = frozenset((dm.MSG_ARM, dm.MSG_START))


#: one received transport unit: (datagram or frame payload, rig-clock arrival, user_stamp)
Unit = tuple[bytes, int, bool]


class RigInbound(ABC):
    """The rig -> device direction of a feed link, serviced while the feed waits.

    Implements :class:`~.schedule.LinkService`. Subclasses say how to read units
    (:meth:`read_units`) and split one into messages (:meth:`messages`). Answers go out
    through ``answer`` (the feed's transmitter, so they take the device's message sequence);
    ``to_rig`` is that transmitter's impairment stage, released here on time.
    """

    def __init__(
        self,
        responder: SyncResponder,
        answer: Transmitter,
        clock: Clock,
        *,
        to_device: ImpairmentSpec | None = None,
        to_rig: ImpairedTransmitter | None = None,
    ) -> None:
        self.responder = responder
        self.answer = answer
        self.clock = clock
        self.to_device: Impairer[tuple[bytes, bool]] | None = (
            None if to_device is None else Impairer(to_device)
        )
        self.to_rig = to_rig
        self.to_device_max_late_ns = 0
        #: a feed's start handshake (ARM / START go there); None: they are rejected as
        #: unexpected like any message the device does not take
        self.start: StartHandshake | None = None

    @abstractmethod
    def fileno(self) -> int | None:
        """The fd to wait on, or None while there is nothing to read (a hung-up peer)."""

    @abstractmethod
    def read_units(self) -> list[Unit]:
        """Everything readable now (non-blocking), each unit with its rig-clock arrival."""

    @abstractmethod
    def messages(self, unit: bytes) -> Iterable[bytes | memoryview]:
        """The messages of one unit; transport errors go to ``responder.reject``."""

    def on_readable(self) -> None:
        units = self.read_units()
        if self.to_device is None:
            for unit, rx, user in units:
                self.process(unit, rx, user)
            return
        for unit, rx, user in units:
            self.to_device.submit((unit, user), rx)
        self.on_due(self.clock.now_ns())  # a zero delay is due at once

    def drain(self) -> None:
        """Take in what had already arrived when the feed stopped, so every input the device
        received is handled and counted (answers still go out; impaired ones stay pending)."""
        if self.fileno() is not None:
            self.on_readable()

    def process(self, unit: bytes, rx_rig_ns: int, user_stamp: bool) -> None:
        """Hand the unit's messages to the responder (ARM and START to the feed's start
        handshake, when it has one) and send each answer at once."""
        start = self.start
        for msg in self.messages(unit):
            if start is not None and len(msg) and msg[0] in _START_IN:
                armed = start.on_message(msg, rx_rig_ns)
                if armed is not None:  # device_time_ns stamped last, as t3
                    self.answer.send_stamped([armed.template], DEVICE_TIME_OFFSET,
                                             self._device_now)  # fmt: skip
                continue
            req = self.responder.on_message(msg, rx_rig_ns, user_stamp=user_stamp)
            if req is not None:
                # t3 is read as the last thing before the wire (after the unit is built, as
                # the rig's t1), so the build cost is not counted as link delay one way only
                self.answer.send_stamped([req.template()], T3_OFFSET, self._stamper(req))

    def _device_now(self) -> int:
        """The device clock now (an ARMED's ``device_time_ns``, read just before the wire)."""
        return self.responder.dev_clock.device_time(self.clock.now_ns())

    def _stamper(self, req: PendingDelayReq) -> Callable[[], int]:
        """``req``'s t3 stamp, read when the transmitter calls it (just before the wire)."""
        return lambda: req.stamp(self.clock.now_ns())

    def next_due_ns(self) -> int | None:
        """Earliest impairment release (either direction), or None."""
        due = None if self.to_device is None else self.to_device.next_release_ns()
        if self.to_rig is not None:
            t = self.to_rig.next_release_ns()
            if t is not None and (due is None or t < due):
                due = t
        return due

    def on_due(self, now_ns: int) -> None:
        """Release what is due: held rig input is processed as arriving at its release time."""
        if self.to_device is not None:
            while (item := self.to_device.pop_due(now_ns)) is not None:
                release, (unit, user) = item
                late = self.clock.now_ns() - release
                self.to_device_max_late_ns = max(self.to_device_max_late_ns, late)
                self.process(unit, release, user)
        if self.to_rig is not None:
            self.to_rig.poll(now_ns)

    def prepare(self) -> bool:
        """Draw impairment random numbers ahead (when idle); True if that took time."""
        drew = self.to_device is not None and self.to_device.prepare()
        return (self.to_rig is not None and self.to_rig.impairer.prepare()) or drew

    def impairment_counters(self) -> dict[str, Any]:
        """Per impaired direction: the impairer's counters and release lateness."""
        out: dict[str, Any] = {}
        if self.to_rig is not None:
            out["to_rig"] = {**self.to_rig.impairer.counters(),
                             "max_late_us": self.to_rig.max_late_ns / 1000.0,
                             "mean_late_us": round(self.to_rig.mean_late_ns / 1000.0, 3),
                             "median_late_us": self.to_rig.median_late_ns / 1000.0,
                             "p5_late_us": self.to_rig.late_percentile_ns(5.0) / 1000.0,
                             "stalls": self.to_rig.stalls,
                             "lead_us": self.to_rig.lead_ns / 1000.0,
                             "discarded": self.to_rig.discarded}  # fmt: skip
        if self.to_device is not None:
            out["to_device"] = {**self.to_device.counters(),
                                "max_late_us": self.to_device_max_late_ns / 1000.0}  # fmt: skip
        return out

    def counters(self) -> dict[str, Any]:
        out = self.responder.counters()
        if self.start is not None:
            out.update(self.start.counters())
        return out


def read_impairment(cfg: ConfigReader) -> tuple[ImpairmentSpec | None, ImpairmentSpec | None]:
    """``(to_rig, to_device)`` of an optional ``impairment`` table (``{to_rig: {ImpairmentSpec
    fields}, to_device: {...}}``); None for a direction that is absent or changes nothing."""
    if not cfg.has("impairment"):
        return None, None
    link = LinkImpairment.from_reader(cfg.get_table("impairment"))
    return (
        None if link.to_rig.is_identity else link.to_rig,
        None if link.to_device.is_identity else link.to_device,
    )

"""A base for a device's main loop: wait on the link, answer the clock sync and the start
handshake, send heartbeats, hand everything else to the device, stop cleanly.

:class:`DeviceLoop` owns the parts every device shares; a device subclasses it and overrides
two hooks:

* :meth:`DeviceLoop.on_message` — a rig message that is not clock sync or start handshake (a
  broker's ORDER); the default counts it as unexpected.
* :meth:`DeviceLoop.poll` — called on every wake-up with the host time; does what is due (a
  feed's ticks) and returns when it next needs to run (None: only when a message arrives).

The loop blocks in ``select()`` on the link and the stop pipe until the earliest of the next
heartbeat, :meth:`~DeviceLoop.poll`'s due time and a message; it never spins. SIGTERM / SIGINT
(through :class:`~arbsphere.firmware_interfaces.device_main.DeviceContext`, which
:func:`~arbsphere.firmware_interfaces.device_main.run_device` provides) end :meth:`run`; the
counters of the loop, the clock-sync responder, the start handshake and the link go into
``ctx.stats``, which ``run_device`` writes as the stats JSON.

Times: the host clock (``CLOCK_REALTIME`` ns, the clock of kernel receive stamps) is what
waits and arrival stamps use; the device's own clock (:class:`~arbsphere.clock.DeviceClock`
over the host clock; with no offset or drift it is the host clock) is what goes into messages.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from typing import Any

import numpy as np

from arbsphere.clock import DeviceClock, RealtimeClock
from arbsphere.errors import DecodeError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.firmware_interfaces.device_main import DeviceContext
from arbsphere.firmware_interfaces.start_handshake import (
    DEVICE_TIME_OFFSET,
    Capabilities,
    StartHandshake,
    responder_offset,
)
from arbsphere.firmware_interfaces.sync_responder import T3_OFFSET, SyncResponder
from arbsphere.sdk.links import HANGUP_RETRY_S, DeviceLink, Received

#: the protocol's heartbeat interval (the conformance suite judges against it)
HEARTBEAT_INTERVAL_NS = 100_000_000
#: the longest single wait: the stop flag is looked at least this often
MAX_WAIT_S = 0.2
_SYNC_IN = frozenset((dm.MSG_SYNC, dm.MSG_FOLLOW_UP, dm.MSG_DELAY_RESP))
_START_IN = frozenset((dm.MSG_ARM, dm.MSG_START))


class DeviceLoop:
    """The main loop of one device on one link (see the module docstring).

    ``capabilities`` makes it a feed that takes the start handshake: ARM / START go to a
    :class:`~arbsphere.firmware_interfaces.start_handshake.StartHandshake` (:attr:`start`)
    whose schedule :meth:`poll` runs; without it they count as unexpected.
    ``heartbeat_interval_ns`` None sends no HEARTBEATs (a broker that only answers).
    """

    def __init__(
        self,
        link: DeviceLink,
        device_id: int,
        ctx: DeviceContext,
        *,
        clock: DeviceClock | None = None,
        capabilities: Capabilities | None = None,
        heartbeat_interval_ns: int | None = HEARTBEAT_INTERVAL_NS,
    ) -> None:
        if heartbeat_interval_ns is not None and heartbeat_interval_ns <= 0:
            raise ValueError(f"heartbeat_interval_ns must be > 0, got {heartbeat_interval_ns}")
        self.link = link
        self.device_id = device_id
        self.ctx = ctx
        self.host = RealtimeClock()
        """The host clock (``CLOCK_REALTIME``): waits and arrival stamps."""
        self.clock = clock if clock is not None else DeviceClock(base=self.host)
        """The device's own clock: what goes into its messages."""
        self.sync = SyncResponder(device_id, self.clock)
        """The device side of the clock-sync exchange."""
        self.start: StartHandshake | None = None
        """The device side of the start handshake (a feed, given ``capabilities``), else
        None."""
        if capabilities is not None:
            offset = responder_offset(self.sync)
            self.start = StartHandshake(device_id, self.clock, capabilities, offset)
        self.heartbeat_interval_ns = heartbeat_interval_ns
        self.counts = {"heartbeats_sent": 0, "messages_received": 0, "unexpected_messages": 0,
                       "undecodable_messages": 0}  # fmt: skip
        self._heartbeat = dm.new_record(dm.MSG_HEARTBEAT, device_id)

    # --- hooks ---------------------------------------------------------------------------
    def on_message(self, msg_type: int, record: np.ndarray, msg: Received) -> None:
        """A rig message the loop does not handle itself, decoded: ``record`` is a 1-element
        record array with the message's named fields (``record["order_id"][0]``). Override
        it; this default counts the message as unexpected."""
        self.counts["unexpected_messages"] += 1

    def poll(self, now_ns: int) -> int | None:
        """Do what is due at host time ``now_ns``; return the host time to be called again
        (None: only after the next message or heartbeat). Override it; the default does
        nothing."""
        return None

    def heartbeat_seq(self) -> int:
        """The ``device_seq`` a HEARTBEAT carries (a feed: its next tick's); default 0."""
        return 0

    def counters(self) -> dict[str, Any]:
        """Everything the stats JSON gets; extend it with the device's own counts."""
        out = {**self.counts, **self.sync.counters(), "link": self.link.counters()}
        if self.start is not None:
            out.update(self.start.counters())
        return out

    # --- sending -------------------------------------------------------------------------
    def device_now_ns(self) -> int:
        """The device clock now."""
        return self.clock.device_time(self.host.now_ns())

    def send(self, records: Sequence[np.ndarray | np.void]) -> None:
        """Encode device message records
        (:func:`~arbsphere.firmware_interfaces.messages.new_record`) and send them together."""
        self.link.send([dm.encode(r) for r in records])

    def send_stamped(self, records: Sequence[np.ndarray | np.void], field: str) -> None:
        """Like :meth:`send`, with the i64 ``field`` (e.g. a TICK's ``send_ns``) set to the
        device clock as the last thing before the write."""
        layout = dm.LAYOUTS[int(np.asarray(records[0]).reshape(-1)[0]["msg_type"])]
        offset = next(f.offset for f in layout.fields if f.name == field)
        self.link.send_stamped([dm.encode(r) for r in records], offset, self.device_now_ns)

    def send_heartbeat(self) -> None:
        """One HEARTBEAT now (:meth:`run` sends them every ``heartbeat_interval_ns``)."""
        self._heartbeat["device_seq"] = self.heartbeat_seq()
        self.send_stamped([self._heartbeat], "device_time_ns")
        self.counts["heartbeats_sent"] += 1

    # --- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        """Serve the link until SIGTERM / SIGINT; the counters go into ``ctx.stats``."""
        stop, waker = self.ctx.stop, self.ctx.waker
        every = self.heartbeat_interval_ns
        next_hb = self.host.now_ns() if every is not None else None
        try:
            while not stop.is_set:
                now = self.host.now_ns()
                if every is not None and next_hb is not None and now >= next_hb:
                    self.send_heartbeat()
                    next_hb = max(next_hb + every, now)
                due = self.poll(now)
                wake = min((t for t in (due, next_hb) if t is not None), default=None)
                wait = MAX_WAIT_S if wake is None else max(0, wake - self.host.now_ns()) * 1e-9
                fd = self.link.fileno()  # None: nothing to wait on now (a hung-up pty)
                wait = min(wait, MAX_WAIT_S if fd is not None else HANGUP_RETRY_S)
                fds = [waker.fileno()] if fd is None else [fd, waker.fileno()]
                ready = select.select(fds, [], [], wait)[0]
                if waker.fileno() in ready:
                    waker.drain()
                if fd is not None and fd in ready:
                    for msg in self.link.receive(self.sync.reject):
                        self.dispatch(msg)
        finally:
            self.ctx.stats.update(self.counters())

    def dispatch(self, msg: Received) -> None:
        """Route one rig message: clock sync to :attr:`sync`, ARM / START to :attr:`start`
        (answers sent at once), anything else decoded to :meth:`on_message`."""
        self.counts["messages_received"] += 1
        mtype = msg.data[0] if msg.data else -1
        if mtype in _SYNC_IN:
            req = self.sync.on_message(msg.data, msg.rx_ns, user_stamp=msg.user_stamp)
            if req is not None:  # t3 is read just before the write
                stamp = lambda: req.stamp(self.host.now_ns())  # noqa: E731
                self.link.send_stamped([req.template()], T3_OFFSET, stamp)
            return
        if mtype in _START_IN and self.start is not None:
            armed = self.start.on_message(msg.data, msg.rx_ns)
            if armed is not None:
                self.link.send_stamped([armed.template], DEVICE_TIME_OFFSET, self.device_now_ns)
            return
        try:
            decoded_type, record = dm.decode(msg.data)
        except DecodeError:
            self.counts["undecodable_messages"] += 1
            return
        if len(msg.data) != record.dtype.itemsize:  # a message must be exactly its layout
            self.counts["undecodable_messages"] += 1
            return
        self.on_message(decoded_type, record, msg)

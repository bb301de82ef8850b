"""Device side of the start handshake (ARM / ARMED / START): when a feed device runs its
open-loop schedule, and which one (the emulated feeds and :mod:`arbsphere.sdk` devices).

The protocol (``device_messages.toml``, above ARM): the rig arms the device with a schedule
(``start_ns`` on the rig timebase, ``tick_interval_ns``, ``n_ticks``, ``venue_id``,
``n_assets``), repeating ARM until it sees the ARMED with the same ``arm_seq``; the device answers
ARMED OK when it will run that schedule, REFUSED when it cannot (and stays idle); at
``start_ns`` the rig sends START.

:class:`StartHandshake` is transport-agnostic and reads no clock: rig -> device ARM and START
messages come in with their arrival on the RIG clock, and ARMED answers go out as
:class:`ArmedAnswer` (bytes with ``device_time_ns`` still 0 at :data:`DEVICE_TIME_OFFSET`, to be
stamped last, as the DELAY_REQ's ``t3``). When the schedule starts:

* with a clock offset learned from the sync exchange (``offset = ((t2-t1)-(t4-t3))/2``, device
  minus rig, from the ``offset`` source: :func:`responder_offset` takes the shortest round
  trip's), tick 0 is due at ``start_ns + offset`` on the device clock — re-read until the
  device starts, so a later, better exchange still counts;
* without one, on START's arrival;
* a device started with its own schedule (``preset``: the orchestrator's emulators get
  ``start_at_ns`` in their config) runs that one and answers an ARM of the same schedule OK.

Every input is counted: ``arms``, ``arms_repeated`` (answered again with the same ARMED),
``starts``; refusals by :data:`REFUSE_REASONS`; ignored input by :data:`IGNORE_REASONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arbsphere.clock import DeviceClock
from arbsphere.errors import DecodeError
from arbsphere.firmware_interfaces import messages as dm

#: why an ARM was answered REFUSED
REFUSE_REASONS = (
    "venue_mismatch",  # the ARM's venue_id is not the venue this device quotes
    "n_assets_mismatch",  # the ARM's n_assets is not the device market's
    "interval_unsupported",  # tick_interval_ns outside what the device can send
    "n_ticks_unsupported",  # n_ticks 0, or not the schedule a preset device runs
    "busy",  # a new schedule while the accepted one already runs
)
#: why a rig message of the handshake was not used (never answered)
IGNORE_REASONS = (
    "malformed_message",  # bad header, length or trailing bytes
    "wrong_device",  # header device_id is not this device's
    "stale_arm",  # arm_seq older than the last accepted
    "stale_start",  # START for an older arm_seq than the last accepted
    "unmatched_start",  # START without an accepted ARM of that arm_seq
    "start_while_running",  # START after the schedule already started
)

_ARMED = dm.packer(dm.MSG_ARMED)
_ARMED_SIZE = dm.LAYOUTS[dm.MSG_ARMED].size
#: byte offset of ``device_time_ns`` in an ARMED (stamped in place right before the write)
DEVICE_TIME_OFFSET = next(
    f.offset for f in dm.LAYOUTS[dm.MSG_ARMED].fields if f.name == "device_time_ns"
)
#: shortest tick interval an emulated feed sends (1 MHz; the schedule's own limit is its host)
MIN_INTERVAL_NS = 1_000
#: longest (one tick a minute)
MAX_INTERVAL_NS = 60_000_000_000


@dataclass(frozen=True)
class Schedule:
    """An open-loop schedule as ARM carries it (``start_ns`` on the rig timebase)."""

    arm_seq: int
    start_ns: int
    tick_interval_ns: int
    n_ticks: int
    venue_id: int
    n_assets: int


@dataclass(frozen=True)
class Capabilities:
    """What the device can run: its venue, its market's assets, the tick intervals it can send
    (a preset device: exactly its own schedule's interval and tick count)."""

    venue_id: int
    n_assets: int
    min_interval_ns: int = MIN_INTERVAL_NS
    max_interval_ns: int = MAX_INTERVAL_NS
    #: a preset device runs exactly this many ticks (None: any > 0)
    n_ticks: int | None = None


@dataclass(frozen=True)
class ArmedAnswer:
    """An ARMED to send: :meth:`stamp` fills ``device_time_ns`` (call it last)."""

    template: bytes
    status: int
    start_device_ns: int

    def stamp(self, device_time_ns: int) -> bytes:
        """The ARMED's wire bytes with ``device_time_ns`` filled in."""
        raw = bytearray(self.template)
        raw[DEVICE_TIME_OFFSET : DEVICE_TIME_OFFSET + 8] = device_time_ns.to_bytes(
            8, "little", signed=True
        )
        return bytes(raw)


def responder_offset(responder: Any) -> Callable[[], float | None]:
    """The offset source of a :class:`~.sync_responder.SyncResponder`: the device's offset
    (device minus rig, ns) of its shortest-round-trip complete exchange, None before one."""

    def offset() -> float | None:
        best = responder.best_exchange
        return None if best is None else float(best["offset_ns"])

    return offset


def rig_time_of(dev_clock: DeviceClock, device_ns: int) -> int:
    """The base (rig) time at which ``dev_clock`` reads ``device_ns``: the emulated oscillator
    inverted by fixed-point steps (drift is ppm: two steps leave well under a ns)."""
    base = device_ns - (dev_clock.device_time(device_ns) - device_ns)
    for _ in range(2):
        base += device_ns - dev_clock.device_time(base)
    return base


class StartHandshake:
    """A feed device's side of the start handshake (see the module docstring)."""

    def __init__(
        self,
        device_id: int,
        dev_clock: DeviceClock,
        capabilities: Capabilities,
        offset: Callable[[], float | None],
        *,
        preset: Schedule | None = None,
    ) -> None:
        self.device_id = device_id
        self.dev_clock = dev_clock
        self.capabilities = capabilities
        self.offset = offset
        #: the schedule accepted last (ARMED OK), or the preset one
        self.accepted: Schedule | None = preset
        self.preset = preset is not None
        self.last_seq: int | None = None  # arm_seq of the last ARM answered
        self._answer: ArmedAnswer | None = None  # ... and its answer
        #: rig time of the START that arrived before the schedule started (None: none)
        self.start_arrival_ns: int | None = None
        #: rig time the schedule started (None: not yet)
        self.started_ns: int | None = preset.start_ns if preset is not None else None
        #: the latest schedule's start and what started it (stats; kept once it finished)
        self.last_started_ns = self.started_ns
        self.started_on: str | None = "config" if preset is not None else None
        self.counts = {"arms": 0, "arms_repeated": 0, "armed_ok": 0, "armed_refused": 0,
                       "starts": 0, "schedules_run": 0}  # fmt: skip
        self.refused = dict.fromkeys(REFUSE_REASONS, 0)
        self.ignored = dict.fromkeys(IGNORE_REASONS, 0)
        self.last_error = ""

    # --- input ---------------------------------------------------------------------------
    def on_message(self, msg: bytes | bytearray | memoryview, rx_rig_ns: int) -> ArmedAnswer | None:
        """Handle one ARM or START (whole message bytes) that arrived at rig time
        ``rx_rig_ns``; the ARMED to send for an ARM, else None."""
        try:
            mtype, values = dm.decode_values(msg)
        except DecodeError as exc:
            self._ignore("malformed_message", str(exc))
            return None
        if len(msg) != dm.LAYOUTS[mtype].size or mtype not in (dm.MSG_ARM, dm.MSG_START):
            self._ignore("malformed_message", f"{dm.NAMES[mtype]} of {len(msg)} bytes is not "
                         "one ARM or START")  # fmt: skip
            return None
        if values[3] != self.device_id:
            self._ignore("wrong_device", f"{dm.NAMES[mtype]} for device {values[3]}, this is "
                         f"{self.device_id}")  # fmt: skip
            return None
        if mtype == dm.MSG_START:
            self._start(int(values[4]), rx_rig_ns)
            return None
        return self._arm(Schedule(*(int(v) for v in values[4:10])))

    def _arm(self, s: Schedule) -> ArmedAnswer | None:
        self.counts["arms"] += 1
        if self.last_seq is not None and s.arm_seq < self.last_seq:
            self._ignore("stale_arm", f"arm_seq {s.arm_seq}, last answered {self.last_seq}")
            return None
        if s.arm_seq == self.last_seq and self._answer is not None:
            self.counts["arms_repeated"] += 1
            return self._answer
        reason = self._refusal(s)
        if reason is None and not self.preset and self.started_ns is not None:
            reason = "busy"
        self.last_seq = s.arm_seq
        if reason is not None:
            self.counts["armed_refused"] += 1
            self.refused[reason] += 1
            self.last_error = f"ARM {s.arm_seq} refused: {reason}"
            answer = self._pack(s.arm_seq, dm.ARM_STATUS_REFUSED, 0)
        else:
            self.counts["armed_ok"] += 1
            if self.preset:
                assert self.accepted is not None
                s = Schedule(s.arm_seq, *_fields(self.accepted)[1:])
            self.accepted = s
            start = self.start_device_ns()
            answer = self._pack(s.arm_seq, dm.ARM_STATUS_OK, 0 if start is None else start)
        self._answer = answer
        return answer

    def _refusal(self, s: Schedule) -> str | None:
        cap = self.capabilities
        if s.venue_id != cap.venue_id:
            return "venue_mismatch"
        if s.n_assets != cap.n_assets:
            return "n_assets_mismatch"
        if not cap.min_interval_ns <= s.tick_interval_ns <= cap.max_interval_ns:
            return "interval_unsupported"
        if s.n_ticks < 1 or (cap.n_ticks is not None and s.n_ticks != cap.n_ticks):
            return "n_ticks_unsupported"
        return None

    def _start(self, arm_seq: int, rx_rig_ns: int) -> None:
        accepted = self.accepted
        if accepted is None or arm_seq > accepted.arm_seq:
            self._ignore("unmatched_start", f"START {arm_seq}: no accepted ARM of it")
        elif arm_seq < accepted.arm_seq:
            self._ignore("stale_start", f"START {arm_seq}, accepted {accepted.arm_seq}")
        elif self.started_ns is not None:
            self._ignore("start_while_running", f"START {arm_seq} after the schedule started")
        else:
            self.counts["starts"] += 1
            if self.start_arrival_ns is None:
                self.start_arrival_ns = rx_rig_ns

    def _ignore(self, reason: str, detail: str) -> None:
        self.ignored[reason] += 1
        self.last_error = f"{reason}: {detail}"

    def _pack(self, arm_seq: int, status: int, start_device_ns: int) -> ArmedAnswer:
        raw = _ARMED.pack(dm.MSG_ARMED, dm.DEVICE_MESSAGE_VERSION, _ARMED_SIZE, self.device_id,
                          arm_seq, status, start_device_ns, 0)  # fmt: skip
        return ArmedAnswer(raw, status, start_device_ns)

    # --- when to start -------------------------------------------------------------------
    def start_device_ns(self) -> int | None:
        """Tick 0's due time on the device clock: the accepted schedule's ``start_ns`` plus
        the learned offset (a preset schedule: its own start); None without either."""
        s = self.accepted
        if s is None:
            return None
        if self.preset:
            return self.dev_clock.device_time(s.start_ns)
        offset = self.offset()
        return None if offset is None else s.start_ns + round(offset)

    def start_rig_ns(self) -> int | None:
        """When (rig time) the schedule starts: START's arrival if it came first, else when
        the device clock reaches :meth:`start_device_ns`; None while neither is known."""
        if self.started_ns is not None:
            return self.started_ns
        if self.start_arrival_ns is not None:
            return self.start_arrival_ns
        device_ns = self.start_device_ns()
        return None if device_ns is None else rig_time_of(self.dev_clock, device_ns)

    def begin(self, rig_ns: int) -> Schedule:
        """The device starts the accepted schedule at rig time ``rig_ns``; returns it."""
        if self.accepted is None:
            raise RuntimeError("begin() without an accepted schedule")
        on_start = self.start_arrival_ns is not None and rig_ns == self.start_arrival_ns
        self.started_on = "start_message" if on_start else "offset"
        self.started_ns = self.last_started_ns = rig_ns
        return self.accepted

    def finish(self) -> None:
        """The started schedule ran to its end: idle again, ready for the next ARM (a higher
        ``arm_seq``; older ones stay ignored). A preset device has no next schedule."""
        if self.preset:
            raise RuntimeError("a preset schedule is the device's only one")
        self.counts["schedules_run"] += 1
        self.accepted = None
        self.started_ns = None
        self.start_arrival_ns = None

    def counters(self) -> dict[str, Any]:
        """Counts, refusals and ignored input by reason, and the latest schedule's start
        (``started_on``: "offset", "start_message" or "config")."""
        return {"start_handshake": {**self.counts, "refused": dict(self.refused),
                                    "ignored": dict(self.ignored), "last_error": self.last_error,
                                    "arm_seq": self.last_seq, "started_ns": self.last_started_ns,
                                    "started_on": self.started_on}}  # fmt: skip


def _fields(s: Schedule) -> tuple[int, ...]:
    return (s.arm_seq, s.start_ns, s.tick_interval_ns, s.n_ticks, s.venue_id, s.n_assets)

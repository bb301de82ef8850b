"""Device side of the clock-sync exchange (IEEE 1588 two-step, the rig is the time master).

The rig sends SYNC (``sync_seq``) and FOLLOW_UP (the precise rig send time ``t1``); the device
stamps ``t2`` (its clock) when SYNC arrived and answers at once with DELAY_REQ carrying ``t2``
and ``t3`` (its clock, read as the last thing before the write, once the unit is built); the
rig answers DELAY_RESP with its receive time ``t4``. Devices never step their clocks; they only
report ``offset = ((t2-t1)-(t4-t3))/2`` of the latest and of the shortest-round-trip complete
exchange in their stats.

:class:`SyncResponder` is transport-agnostic and clock-free: rig -> device messages in, each
with its arrival stamp on the RIG clock (converted to device time with
:meth:`~arbsphere.clock.DeviceClock.device_time`), :class:`PendingDelayReq` out; the transport
builds the DELAY_REQ from :meth:`PendingDelayReq.template` and fills ``t3`` (at
:data:`T3_OFFSET`) with :meth:`PendingDelayReq.stamp` right before the write, or calls
:meth:`PendingDelayReq.stamp_and_encode`. Bad input is never answered, each case counted under
one of :data:`REJECT_REASONS` (transports report their own framing errors with
:meth:`SyncResponder.reject`). The emulators serve it through
:class:`~arbsphere.firmware_interfaces.emulators.sync_responder.RigInbound`; device authors
through :mod:`arbsphere.sdk`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from arbsphere.clock import DeviceClock
from arbsphere.errors import DecodeError
from arbsphere.firmware_interfaces import messages as dm

#: Why a rig -> device input was not used. Transport reasons first, then message, then exchange.
REJECT_REASONS = (
    "malformed_datagram",  # UDP header / message boundaries wrong, or truncated
    "malformed_frame",  # serial: COBS error, short or oversize frame
    "crc_error",  # serial: CRC-32C mismatch
    "malformed_message",  # bad version, bad length, short, trailing bytes
    "unknown_type",  # unknown or reserved msg_type
    "unexpected_type",  # a valid type the rig never sends to this device (TICK, DELAY_REQ, ...)
    "wrong_device",  # header device_id is not this device's
    "duplicate_sync",  # sync_seq == the last answered one
    "out_of_order_sync",  # sync_seq < the last answered one
    "unmatched_follow_up",  # no answered SYNC with this sync_seq (or too old to remember)
    "duplicate_follow_up",
    "unmatched_delay_resp",
    "duplicate_delay_resp",
)
#: A SYNC with sync_seq 1 after this long without a SYNC starts a new rig session.
SESSION_GAP_NS = 1_000_000_000
#: Answered exchanges remembered for matching FOLLOW_UP / DELAY_RESP.
HISTORY = 64

_DELAY_REQ = dm.packer(dm.MSG_DELAY_REQ)
_DELAY_REQ_SIZE = dm.LAYOUTS[dm.MSG_DELAY_REQ].size
#: byte offset of ``t3_ns`` in a DELAY_REQ (stamped in place as the last thing before the write)
T3_OFFSET = next(f.offset for f in dm.LAYOUTS[dm.MSG_DELAY_REQ].fields if f.name == "t3_ns")


class PendingDelayReq:
    """The answer to one SYNC, waiting for its transmit stamp ``t3``.

    Either :meth:`stamp_and_encode` (stamp, then build the bytes) or — closer to the wire —
    :meth:`template` (the bytes with ``t3`` 0, at :data:`T3_OFFSET`) then :meth:`stamp` as the
    last thing before the write (``Transmitter.send_stamped``)."""

    __slots__ = ("_responder", "sync_seq", "t2_ns", "t3_ns")

    def __init__(self, responder: SyncResponder, sync_seq: int, t2_ns: int) -> None:
        self._responder = responder
        self.sync_seq = sync_seq
        self.t2_ns = t2_ns
        self.t3_ns: int | None = None

    def template(self) -> bytes:
        """The DELAY_REQ wire bytes with ``t3`` still 0 (at :data:`T3_OFFSET`)."""
        return self._responder._pack(self, 0)

    def stamp(self, now_rig_ns: int) -> int:
        """Fill ``t3`` = device time at rig time ``now_rig_ns`` (take it right before the write)
        and return it; counts the DELAY_REQ as sent. Only once per answer."""
        if self.t3_ns is not None:
            raise RuntimeError(f"DELAY_REQ for sync_seq {self.sync_seq} was already stamped")
        return self._responder._stamp(self, now_rig_ns)

    def stamp_and_encode(self, now_rig_ns: int) -> bytes:
        """:meth:`stamp` then the DELAY_REQ wire bytes."""
        t3 = self.stamp(now_rig_ns)
        return self._responder._pack(self, t3)


class SyncResponder:
    """Answers the rig's SYNCs; matches FOLLOW_UP / DELAY_RESP; counts everything.

    ``on_message`` takes one whole message (bytes of exactly one record) and its arrival time
    on the rig clock; ``user_stamp`` marks a user-space stamp taken where a kernel stamp was
    wanted (counted for SYNCs as ``sync_rx_stamp_fallbacks``). A SYNC is answered when its
    ``sync_seq`` is above the last answered one; any valid sequence starts the device, and
    ``sync_seq`` 1 after :data:`SESSION_GAP_NS` without a SYNC starts a new rig session (a new
    run; ``sync_restarts``): the earlier exchanges are forgotten.
    """

    def __init__(self, device_id: int, dev_clock: DeviceClock, *, history: int = HISTORY):
        if not 0 <= device_id < 2**32:
            raise ValueError(f"device_id {device_id} does not fit u32")
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.device_id = device_id
        self.dev_clock = dev_clock
        self.history = history
        self.last_answered: int | None = None
        self.last_sync_rx_ns: int | None = None  # arrival of the latest SYNC (rig clock)
        self.counts = {"syncs_received": 0, "delay_reqs_sent": 0, "follow_ups": 0,
                       "delay_resps": 0, "sync_exchanges": 0,
                       "sync_rx_stamp_fallbacks": 0, "sync_restarts": 0}  # fmt: skip
        self.rejects = dict.fromkeys(REJECT_REASONS, 0)
        self.last_error = ""
        #: sync_seq -> [t1, t2, t3, t4] (None until known), oldest first
        self._exchanges: OrderedDict[int, list[int | None]] = OrderedDict()
        self.last_exchange: dict[str, Any] | None = None
        self.best_exchange: dict[str, Any] | None = None

    def reject(self, reason: str, detail: str, n: int = 1) -> None:
        """Count ``n`` inputs not used for ``reason`` (one of :data:`REJECT_REASONS`)."""
        if reason not in self.rejects:
            raise ValueError(f"unknown reject reason {reason!r} (known: {REJECT_REASONS})")
        self.rejects[reason] += n
        self.last_error = f"{reason}: {detail}"

    def on_message(
        self, msg: bytes | bytearray | memoryview, rx_rig_ns: int, *, user_stamp: bool = False
    ) -> PendingDelayReq | None:
        """Handle one rig -> device message; the DELAY_REQ to send for an accepted SYNC."""
        try:
            mtype, values = dm.decode_values(msg)
        except DecodeError as exc:
            unknown = exc.problem in ("unknown_type", "reserved_type")
            self.reject("unknown_type" if unknown else "malformed_message", str(exc))
            return None
        if len(msg) != dm.LAYOUTS[mtype].size:
            self.reject("malformed_message", f"{dm.NAMES[mtype]} of {dm.LAYOUTS[mtype].size} "
                        f"bytes followed by {len(msg) - dm.LAYOUTS[mtype].size} more")  # fmt: skip
            return None
        if mtype not in (dm.MSG_SYNC, dm.MSG_FOLLOW_UP, dm.MSG_DELAY_RESP):
            self.reject("unexpected_type", f"{dm.NAMES[mtype]} ({mtype}) is not rig -> device")
            return None
        device, seq, value = values[3], values[4], values[5]
        if device != self.device_id:
            self.reject("wrong_device", f"{dm.NAMES[mtype]} sync_seq {seq} for device {device}, "
                        f"this is {self.device_id}")  # fmt: skip
            return None
        if mtype == dm.MSG_SYNC:
            return self._sync(seq, rx_rig_ns, user_stamp)
        if mtype == dm.MSG_FOLLOW_UP:
            self.counts["follow_ups"] += 1
            self._fill(seq, 0, value, "follow_up")
        else:
            self.counts["delay_resps"] += 1
            self._fill(seq, 3, value, "delay_resp")
        return None

    def _sync(self, seq: int, rx_rig_ns: int, user_stamp: bool) -> PendingDelayReq | None:
        self.counts["syncs_received"] += 1
        last = self.last_answered
        prev, self.last_sync_rx_ns = self.last_sync_rx_ns, rx_rig_ns
        quiet = prev is not None and rx_rig_ns - prev >= SESSION_GAP_NS
        if seq == 1 and last is not None and quiet:
            # the rig numbers each run's exchanges from 1: after a quiet spell that is a new
            # master session (an external device outlives a run), whose offsets owe nothing to
            # the earlier ones; a SYNC 1 within a session is a duplicate or out of order
            self.counts["sync_restarts"] += 1
            self._exchanges.clear()
            self.last_exchange = self.best_exchange = None
            last = None
        if last is not None and seq <= last:
            reason = "duplicate_sync" if seq == last else "out_of_order_sync"
            self.reject(reason, f"sync_seq {seq}, last answered {last}")
            return None
        self.last_answered = seq
        self.counts["sync_rx_stamp_fallbacks"] += user_stamp
        t2 = self.dev_clock.device_time(rx_rig_ns)
        self._exchanges[seq] = [None, t2, None, None]
        if len(self._exchanges) > self.history:
            self._exchanges.popitem(last=False)
        return PendingDelayReq(self, seq, t2)

    def _stamp(self, req: PendingDelayReq, now_rig_ns: int) -> int:
        t3 = self.dev_clock.device_time(now_rig_ns)
        req.t3_ns = t3
        self.counts["delay_reqs_sent"] += 1
        entry = self._exchanges.get(req.sync_seq)
        if entry is not None:
            entry[2] = t3
            self._complete(req.sync_seq, entry)
        return t3

    def _pack(self, req: PendingDelayReq, t3: int) -> bytes:
        return _DELAY_REQ.pack(dm.MSG_DELAY_REQ, dm.DEVICE_MESSAGE_VERSION, _DELAY_REQ_SIZE,
                               self.device_id, req.sync_seq, req.t2_ns, t3)  # fmt: skip

    def _fill(self, seq: int, index: int, value: int, what: str) -> None:
        entry = self._exchanges.get(seq)
        if entry is None:
            self.reject(f"unmatched_{what}", f"sync_seq {seq}: no answered SYNC remembered")
            return
        if entry[index] is not None:
            self.reject(f"duplicate_{what}", f"sync_seq {seq} already has one")
            return
        entry[index] = value
        self._complete(seq, entry)

    def _complete(self, seq: int, entry: list[int | None]) -> None:
        t1, t2, t3, t4 = entry
        if t1 is None or t2 is None or t3 is None or t4 is None:
            return
        self.counts["sync_exchanges"] += 1
        rtt = (t4 - t1) - (t3 - t2)
        ex = {"sync_seq": seq, "t1_ns": t1, "t2_ns": t2, "t3_ns": t3, "t4_ns": t4,
              "offset_ns": ((t2 - t1) - (t4 - t3)) / 2, "rtt_ns": rtt}  # fmt: skip
        self.last_exchange = ex
        if self.best_exchange is None or rtt < self.best_exchange["rtt_ns"]:
            self.best_exchange = ex

    def counters(self) -> dict[str, Any]:
        """Counts, rejects by reason and the device's own offset estimates (stats JSON)."""
        return {**self.counts, "sync_rejects": dict(self.rejects),
                "sync_last_error": self.last_error, "sync_last_seq": self.last_answered,
                "sync_offset": {"last": self.last_exchange,
                                "min_rtt": self.best_exchange}}  # fmt: skip

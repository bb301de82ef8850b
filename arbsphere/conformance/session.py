"""One conformance session on a device link: receive, sort, time-sync, record.

:class:`LinkSession` owns the rig-side link a suite opened (through the link backend registry,
:mod:`arbsphere.adapters.backends`) for the length of one suite run. :meth:`LinkSession.pump`
receives until a deadline and sorts every device message by type (TICKs, HEARTBEATs, ARMEDs,
ACKs with their rig receive stamps, DELAY_REQs into the clock-sync exchange, anything else
counted as undecodable or unexpected), running the clock-sync exchange at a fixed interval the
whole time with the rig's own :class:`~arbsphere.adapters.sync_master.SyncMaster`. Suites read
the records afterwards and hand them to the judges (:mod:`.judges`). It blocks in the link's
``receive`` with a timeout, never spins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from arbsphere.adapters.links import FeedLink
from arbsphere.adapters.sync_master import SyncMaster
from arbsphere.clock import Clock
from arbsphere.conformance.garbage import GARBAGE_SEQ_BASE
from arbsphere.conformance.judges import SyncRecord
from arbsphere.errors import DecodeError, LinkError
from arbsphere.firmware_interfaces import messages as dm

#: clock-sync exchanges during a session: one every 50 ms
SYNC_INTERVAL_NS = 50_000_000
#: longest single blocking receive (the session re-checks its deadline and the sync schedule)
MAX_WAIT_MS = 20


class Recorded:
    """Device messages of one type, each with its rig receive stamp, in arrival order."""

    def __init__(self, msg_type: int) -> None:
        self.msg_type = msg_type
        self._raw: list[bytes] = []
        self._rx: list[int] = []

    def add(self, payload: bytes, rx_ns: int) -> None:
        self._raw.append(payload)
        self._rx.append(rx_ns)

    def __len__(self) -> int:
        return len(self._raw)

    def records(self, since_ns: int | None = None, until_ns: int | None = None) -> np.ndarray:
        """The records (a structured array of the type's dtype) received in [since, until)."""
        dtype = dm.LAYOUTS[self.msg_type].dtype
        keep = [p for p, t in zip(self._raw, self._rx, strict=True) if _in(t, since_ns, until_ns)]
        return np.frombuffer(b"".join(keep), dtype=dtype) if keep else np.zeros(0, dtype)

    def rx_ns(self, since_ns: int | None = None, until_ns: int | None = None) -> np.ndarray:
        return np.array([t for t in self._rx if _in(t, since_ns, until_ns)], dtype=np.int64)


def _in(t: int, since: int | None, until: int | None) -> bool:
    return (since is None or t >= since) and (until is None or t < until)


#: what each kind of device may send the rig
FEED_SENDS = frozenset((dm.MSG_TICK, dm.MSG_HEARTBEAT, dm.MSG_ARMED, dm.MSG_DELAY_REQ))
BROKER_SENDS = frozenset((dm.MSG_ACK, dm.MSG_HEARTBEAT, dm.MSG_DELAY_REQ))


class LinkSession:
    """The rig side of one device during a suite run (see the module docstring)."""

    def __init__(
        self,
        link: FeedLink,
        clock: Clock,
        device_id: int,
        may_send: frozenset[int],
        *,
        sync_interval_ns: int = SYNC_INTERVAL_NS,
    ) -> None:
        self.link = link
        self.clock = clock
        self.device_id = device_id
        self.may_send = may_send
        self.sync = SyncMaster(link, clock, interval_ns=sync_interval_ns, device_id=device_id)
        self.by_type = {t: Recorded(t) for t in may_send}
        self.device_ids: Counter[int] = Counter()
        self.undecodable = 0
        self.unexpected: Counter[str] = Counter()
        self.first_rx_ns: int | None = None
        #: DELAY_REQs in arrival order: (sync_seq, t1, t2, t3, t4)
        self.answers: list[tuple[int, int, int, int, int]] = []
        self.link_errors: list[str] = []

    def pump(self, until_ns: int, *, stop: Callable[[], bool] | None = None) -> None:
        """Receive and sort until the rig clock reaches ``until_ns`` (or ``stop()`` is true),
        keeping the clock-sync exchange going."""
        clock, link, sync = self.clock, self.link, self.sync
        while True:
            now = clock.now_ns()
            if now >= until_ns or (stop is not None and stop()):
                return
            sync.poll(now)
            wait_ms = min(sync.timeout_ms(now, MAX_WAIT_MS), max(1, (until_ns - now) // 1_000_000))
            try:
                got = link.receive(timeout_ms=int(wait_ms))
            except LinkError as exc:  # e.g. the device end of a serial link went away
                self.link_errors.append(str(exc))
                return
            for rec in got:
                self._sort(rec.payload, rec.rx_ns)

    def _sort(self, payload: bytes, rx_ns: int) -> None:
        try:
            mtype, values = dm.decode_values(payload)
        except DecodeError:
            self.undecodable += 1
            return
        if len(payload) != dm.LAYOUTS[mtype].size:
            self.undecodable += 1
            return
        self.device_ids[int(values[3])] += 1
        if mtype not in self.may_send:
            self.unexpected[dm.NAMES[mtype]] += 1
            return
        if self.first_rx_ns is None:
            self.first_rx_ns = rx_ns
        if mtype == dm.MSG_DELAY_REQ:
            seq = int(values[4])
            t1 = self.sync.pending.get(seq, 0)
            self.sync.on_delay_req(values, rx_ns)
            self.answers.append((seq, t1, int(values[5]), int(values[6]), rx_ns))
        self.by_type[mtype].add(payload, rx_ns)

    def send(self, messages: list[bytes]) -> int | None:
        """Rig -> device messages in one transport unit; the tx stamp, or None when the link
        cannot reach the device (yet)."""
        try:
            return self.link.send_many(messages)
        except LinkError as exc:
            self.link_errors.append(str(exc))
            return None

    def sync_record(self, since_seq: int = 1) -> SyncRecord:
        """The exchanges of SYNCs with ``sync_seq >= since_seq`` (every one sent so far;
        answers to garbage SYNCs are judged by the malformed-input checks, not here)."""
        sent = range(since_seq, self.sync.next_seq)
        mine = [a for a in self.answers if since_seq <= a[0] < GARBAGE_SEQ_BASE]
        return SyncRecord(list(sent), mine)

    def info(self) -> dict[str, Any]:
        """The session's counters, for the suite result's ``info``."""
        return {
            "received": {dm.NAMES[t]: len(r) for t, r in self.by_type.items()},
            "undecodable": self.undecodable,
            "unexpected": dict(self.unexpected),
            "device_ids": {str(k): v for k, v in self.device_ids.items()},
            "sync": dict(self.sync.counts),
            "link": self.link.counters(),
            "timestamp_source": self.link.timestamp_source,
            "link_errors": self.link_errors[:5],
        }

"""Rig side of the clock-sync exchange: the rig is the time master of every device link.

At a configured interval the master writes SYNC to the device and FOLLOW_UP carrying that
SYNC's precise ``t1``: on a link with kernel transmit stamps (UDP, :class:`~.links.TxStampedLink`)
the kernel's stamp of the SYNC send, read from the error queue right after it (waiting at most
``tx_wait_ms``: on loopback it is there at once, a NIC's hardware stamp takes microseconds);
when it does not come, or on a link without them, the rig clock just before the write as the
link returns it (``sync_tx_fallbacks`` counts the SYNCs that asked and fell back); the device
answers DELAY_REQ with ``t2`` (its receive time of SYNC) and ``t3`` (its send time), both on
its own clock; the master stamps ``t4`` (the link's receive stamp of DELAY_REQ: the kernel's
on UDP), answers DELAY_RESP and records the exchange.

Every DELAY_REQ that arrives is recorded as received, with ``t1`` looked up by ``sync_seq``
(0 when this master never sent that sequence): judging it — unknown device, duplicate, out of
order, late, inconsistent — and estimating offset and drift happen afterwards, deterministically,
over the saved table (:mod:`arbsphere.clocksync`). The schedule is driven by the injected
clock only; interleaving with normal traffic is the adapter loop's job (it calls
:meth:`SyncMaster.poll` between receives and :meth:`SyncMaster.on_delay_req` for each DELAY_REQ).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arbsphere.adapters.links import TIMESTAMP_USER, FeedLink, TxStampedLink
from arbsphere.clock import Clock
from arbsphere.errors import ConfigError, LinkError
from arbsphere.firmware_interfaces import messages as dm
from arbsphere.tracebuf import TraceBuffer

#: One row per DELAY_REQ received (``t1`` 0: no SYNC with that sequence was sent).
SYNC_TRACE_DTYPE = np.dtype(
    [
        ("device_id", "<u4"),
        ("sync_seq", "<u8"),
        ("t1_ns", "<i8"),
        ("t2_ns", "<i8"),
        ("t3_ns", "<i8"),
        ("t4_ns", "<i8"),
    ]
)
#: DELAY_REQ positions in its ``messages.decode_values`` tuple
_REQ_DEVICE, _REQ_SEQ, _REQ_T2, _REQ_T3 = (
    dm.value_fields(dm.MSG_DELAY_REQ).index(f) for f in ("device_id", "sync_seq", "t2_ns", "t3_ns")
)


class SyncMaster:
    """Sends SYNC + FOLLOW_UP every ``interval_ns`` over ``link``; records DELAY_REQ answers."""

    def __init__(
        self,
        link: FeedLink,
        clock: Clock,
        *,
        interval_ns: int,
        device_id: int,
        max_pending: int = 1024,
        tx_wait_ms: int = 2,
    ) -> None:
        if interval_ns <= 0:
            raise ValueError(f"sync interval must be > 0 ns, got {interval_ns}")
        self.link = link
        self.clock = clock
        self.interval_ns = interval_ns
        self.max_pending = max_pending
        self.next_due_ns = clock.now_ns()
        self.next_seq = 1
        self.pending: dict[int, int] = {}  # sync_seq -> t1
        self.trace = TraceBuffer(SYNC_TRACE_DTYPE, 1024)
        # rig -> device messages carry the id of the device they are addressed to
        self._sync = dm.new_record(dm.MSG_SYNC, device_id)
        self._follow = dm.new_record(dm.MSG_FOLLOW_UP, device_id)
        self._resp = dm.new_record(dm.MSG_DELAY_RESP, device_id)
        self.counts = {
            "syncs_sent": 0, "syncs_unsent": 0, "delay_reqs": 0, "delay_reqs_unmatched": 0,
            "delay_resps_sent": 0, "pending_expired": 0, "send_errors": 0,
            "sync_tx_kernel": 0, "sync_tx_fallbacks": 0,
        }  # fmt: skip
        self.last_error = ""
        self.tx_wait_ms = tx_wait_ms
        stamped = isinstance(link, TxStampedLink) and link.tx_timestamp_source != TIMESTAMP_USER
        self._stamped: TxStampedLink | None = link if stamped else None  # type: ignore[assignment]
        #: where SYNC's t1 comes from: the link's transmit stamps, else user-space
        self.tx_source = link.tx_timestamp_source if stamped else TIMESTAMP_USER  # type: ignore[attr-defined]

    def timeout_ms(self, now_ns: int, cap_ms: int) -> int:
        """How long a receive may block before the next SYNC is due (at most ``cap_ms``)."""
        left = self.next_due_ns - now_ns
        return 0 if left <= 0 else min(cap_ms, -(-left // 1_000_000))

    def poll(self, now_ns: int) -> bool:
        """Send SYNC + FOLLOW_UP if one is due; True if sent. A missed interval is not made
        up (the schedule moves on from now), so a stalled loop never bursts syncs."""
        if now_ns < self.next_due_ns:
            return False
        self.next_due_ns += self.interval_ns
        if self.next_due_ns <= now_ns:  # fell behind: the next one a full interval from now
            self.next_due_ns = now_ns + self.interval_ns
        seq = self.next_seq
        self._sync["sync_seq"] = seq
        self._sync["origin_ns"] = now_ns
        t1 = self._send(self._sync) if self._stamped is None else self._send_sync(self._stamped)
        if t1 is None:
            self.counts["syncs_unsent"] += 1
            return False
        self.next_seq += 1
        self._follow["sync_seq"] = seq
        self._follow["t1_ns"] = t1
        self._send(self._follow)
        if len(self.pending) >= self.max_pending:
            oldest = min(self.pending)
            del self.pending[oldest]
            self.counts["pending_expired"] += 1
        self.pending[seq] = t1
        self.counts["syncs_sent"] += 1
        return True

    def on_delay_req(self, values: tuple[Any, ...], rx_ns: int) -> None:
        """Record a DELAY_REQ (``messages.decode_values`` values) received at ``rx_ns`` and
        answer it with DELAY_RESP."""
        self.counts["delay_reqs"] += 1
        seq = int(values[_REQ_SEQ])
        t1 = self.pending.pop(seq, 0)
        if t1 == 0:
            self.counts["delay_reqs_unmatched"] += 1
        self.trace.append((values[_REQ_DEVICE], seq, t1, values[_REQ_T2], values[_REQ_T3], rx_ns))
        self._resp["sync_seq"] = seq
        self._resp["t4_ns"] = rx_ns
        if self._send(self._resp) is not None:
            self.counts["delay_resps_sent"] += 1

    def _send(self, record: np.ndarray) -> int | None:
        """Send one sync message; a link failure is counted, never fatal (a device that went
        away — e.g. a feed device after its last tick — only stops answering)."""
        try:
            return self.link.send_many((dm.encode(record),))
        except LinkError as exc:
            self.counts["send_errors"] += 1
            self.last_error = str(exc)
            return None

    def _send_sync(self, link: TxStampedLink) -> int | None:
        """Send SYNC asking for its kernel transmit stamp; its t1: that stamp, else (counted)
        the user-space stamp the link took before the send."""
        try:
            sent = link.send_many_stamped((dm.encode(self._sync),))
        except LinkError as exc:
            self.counts["send_errors"] += 1
            self.last_error = str(exc)
            return None
        if sent is None:
            return None
        user_ns, tx_id = sent
        kernel_ns = link.tx_stamp(tx_id, user_ns, self.tx_wait_ms)
        if kernel_ns is None:
            self.counts["sync_tx_fallbacks"] += 1
            return user_ns
        self.counts["sync_tx_kernel"] += 1
        return kernel_ns

    def save(self, path: Path) -> None:
        self.trace.save(path)


@dataclass(frozen=True)
class SyncSettings:
    """An adapter's clock-sync exchange in its role config: a SYNC every ``interval_ns`` to
    the device ``device_id`` (the role config's ``sync`` None: no exchange)."""

    interval_ns: int
    device_id: int

    def __post_init__(self) -> None:
        if self.interval_ns <= 0:
            raise ConfigError(f"must be > 0, got {self.interval_ns}", key="interval_ns")
        if not 0 <= self.device_id < 2**32:
            raise ConfigError(
                f"must be a device id (0 .. 2^32-1), got {self.device_id}", key="device_id"
            )


def open_sync_master(
    settings: SyncSettings | None, link: FeedLink, clock: Clock
) -> SyncMaster | None:
    """The role config's sync master over ``link`` (None: none)."""
    if settings is None:
        return None
    return SyncMaster(link, clock, interval_ns=settings.interval_ns, device_id=settings.device_id)

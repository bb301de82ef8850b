"""Kernel transmit stamps of chosen UDP sends, read back from the socket's error queue.

A send that wants its stamp (a SYNC, an ORDER) carries a ``SO_TIMESTAMPING`` control message
asking for ``SOF_TIMESTAMPING_TX_SOFTWARE`` (plus ``TX_HARDWARE`` when the NIC stamps); other
sends (FOLLOW_UP, DELAY_RESP) ask for nothing. The socket reports with ``SOFTWARE |
RAW_HARDWARE | OPT_ID | OPT_TSONLY``: each stamped send comes back on the error queue
(``recvmsg(MSG_ERRQUEUE)``, never blocking; ``poll`` reports ``POLLERR`` while one waits) as an
empty packet with two control messages:

* ``SOL_IP/IP_RECVERR`` (``SOL_IPV6/IPV6_RECVERR``): ``struct sock_extended_err`` — ``ee_errno``
  ENOMSG, ``ee_origin`` ``SO_EE_ORIGIN_TIMESTAMPING``, ``ee_info`` the stamp type
  (``SCM_TSTAMP_SND``: handed to the device), ``ee_data`` the ``OPT_ID``: the socket's count of
  stamped sends before this one, from 0 (only stamped sends count);
* ``SOL_SOCKET/SCM_TIMESTAMPING``: the software stamp in ``ts[0]``, the raw hardware stamp (PHC
  time) in ``ts[2]``.

:class:`TxStamps` numbers the stamped sends as the kernel does, reads the queue in batches and
holds each stamp, already on the rig timebase, until its sender takes it by id.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from collections.abc import Callable

from arbsphere.firmware_interfaces.kernel_timestamps import (
    SCM_TIMESTAMPING,
    SO_TIMESTAMPING,
    SOF_TIMESTAMPING_OPT_ID,
    SOF_TIMESTAMPING_OPT_TSONLY,
    SOF_TIMESTAMPING_RAW_HARDWARE,
    SOF_TIMESTAMPING_SOFTWARE,
    SOF_TIMESTAMPING_TX_HARDWARE,
    SOF_TIMESTAMPING_TX_SOFTWARE,
    parse_scm_timestamping,
)

SOL_IP = 0
IP_RECVERR = 11
SOL_IPV6 = 41
IPV6_RECVERR = 25
SO_EE_ORIGIN_TIMESTAMPING = 4
SCM_TSTAMP_SND = 0
#: struct sock_extended_err: ee_errno, ee_origin, ee_type, ee_code, ee_pad, ee_info, ee_data
SOCK_EXTENDED_ERR = struct.Struct("=IBBBBII")
#: what the socket reports (its SO_TIMESTAMPING bits besides the receive ones)
TX_REPORT_FLAGS = (
    SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_RAW_HARDWARE | SOF_TIMESTAMPING_OPT_ID
    | SOF_TIMESTAMPING_OPT_TSONLY
)  # fmt: skip
#: room for both control messages (scm_timestamping; sock_extended_err + an IPv6 offender)
ERRQUEUE_ANCBUFSIZE = socket.CMSG_SPACE(48) + socket.CMSG_SPACE(SOCK_EXTENDED_ERR.size + 28)
_ERR_LEVELS = ((SOL_IP, IP_RECVERR), (SOL_IPV6, IPV6_RECVERR))
#: error-queue messages read per :meth:`TxStamps.drain` at most
DRAIN_BATCH = 256


def parse_tx_stamp(ancdata: list[tuple[int, int, bytes]]) -> tuple[int, int, int] | None:
    """(OPT_ID, software ns, raw hardware ns) of one error-queue message carrying a
    ``SCM_TSTAMP_SND`` stamp (0 for a kind not stamped); None for anything else (an ICMP error,
    another stamp type, a message without a stamp)."""
    tx_id = -1
    stamps: tuple[int, int] | None = None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING:
            stamps = parse_scm_timestamping(data)
        elif (level, kind) in _ERR_LEVELS and len(data) >= SOCK_EXTENDED_ERR.size:
            ee_errno, origin, _t, _c, _p, info, data_id = SOCK_EXTENDED_ERR.unpack_from(data)
            if ee_errno == errno.ENOMSG and origin == SO_EE_ORIGIN_TIMESTAMPING:
                tx_id = data_id if info == SCM_TSTAMP_SND else -1
    if tx_id < 0 or stamps is None or stamps == (0, 0):
        return None
    return tx_id, stamps[0], stamps[1]


class TxStamps:
    """The transmit stamps of one UDP socket's stamped sends.

    The socket's ``SO_TIMESTAMPING`` must include :data:`TX_REPORT_FLAGS` (the link sets it with
    its receive flags). A stamped send passes :attr:`ancillary` to ``sendmsg`` and then calls
    :meth:`sent` for its id. ``to_rig`` turns a raw hardware stamp into rig time (the PHC
    conversion); a hardware-asked send that comes back with only a software stamp keeps that
    (``tx_hw_missing``). Stamps nobody takes are dropped once ``keep`` newer sends were stamped
    (``tx_stamps_unclaimed``).
    """

    def __init__(
        self, sock: socket.socket, *, hardware: bool = False,
        to_rig: Callable[[int], int] | None = None, keep: int = 4096,
    ) -> None:  # fmt: skip
        self._sock = sock
        self.hardware = hardware
        ask = SOF_TIMESTAMPING_TX_SOFTWARE | (SOF_TIMESTAMPING_TX_HARDWARE if hardware else 0)
        #: the control message that asks the kernel to stamp one send
        self.ancillary = [(socket.SOL_SOCKET, SO_TIMESTAMPING, struct.pack("=I", ask))]
        self.to_rig = to_rig
        self.keep = keep
        self.next_id = 0
        self._ready: dict[int, int] = {}
        self._poll = select.poll()
        self._poll.register(sock.fileno(), 0)  # POLLERR is always reported; POLLIN is not asked
        self.counts = {
            "tx_stamps": 0, "tx_stamps_hardware": 0, "tx_hw_missing": 0,
            "tx_stamps_unclaimed": 0, "tx_errqueue_other": 0,
        }  # fmt: skip

    def sent(self) -> int:
        """The id of the stamped send just made (the kernel's OPT_ID for it)."""
        tx_id = self.next_id
        self.next_id = (tx_id + 1) & 0xFFFF_FFFF
        return tx_id

    def drain(self, until_id: int = -1) -> int:
        """Read what the error queue holds (up to :data:`DRAIN_BATCH` messages; stopping early
        once the stamp of send ``until_id`` is read); the number of stamps read."""
        got = 0
        recvmsg = self._sock.recvmsg
        counts = self.counts
        ready = self._ready
        for _ in range(DRAIN_BATCH):
            try:
                _data, anc, _flags, _addr = recvmsg(0, ERRQUEUE_ANCBUFSIZE, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                break
            found = parse_tx_stamp(anc)
            if found is None:
                counts["tx_errqueue_other"] += 1
                continue
            tx_id, sw, hw = found
            if hw and self.to_rig is not None:
                ready[tx_id] = self.to_rig(hw)
                counts["tx_stamps_hardware"] += 1
            else:
                if self.hardware:
                    counts["tx_hw_missing"] += 1
                ready[tx_id] = sw
            got += 1
            if tx_id == until_id:
                break
        counts["tx_stamps"] += got
        if len(ready) > self.keep:
            self._forget_old()
        return got

    def _forget_old(self) -> None:
        newest = (self.next_id - 1) & 0xFFFF_FFFF
        old = [i for i in self._ready if (newest - i) & 0xFFFF_FFFF >= self.keep]
        for i in old:
            del self._ready[i]
        self.counts["tx_stamps_unclaimed"] += len(old)

    def take(self, tx_id: int) -> int | None:
        """The stamp of send ``tx_id`` (rig ns), reading the queue once if it is not in yet;
        None when it has not come back."""
        found = self._ready.pop(tx_id, None)
        if found is None and self.drain(tx_id):
            found = self._ready.pop(tx_id, None)
        return found

    def wait(self, tx_id: int, timeout_ms: int) -> int | None:
        """:meth:`take`, waiting up to ``timeout_ms`` for the error queue (``poll``; other sends'
        stamps that come meanwhile are kept for their senders)."""
        found = self.take(tx_id)
        if found is not None or timeout_ms <= 0:
            return found
        deadline = time.monotonic_ns() + timeout_ms * 1_000_000
        while found is None:
            left_ms = -(-(deadline - time.monotonic_ns()) // 1_000_000)
            if left_ms <= 0 or not self._poll.poll(left_ms):
                break
            found = self.take(tx_id)
        return found

    def pending(self) -> int:
        """Stamps read and not taken yet."""
        return len(self._ready)

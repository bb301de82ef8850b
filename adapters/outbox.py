"""A venue adapter's messages to the coordinator that the socket could not take yet.

The venue adapter's PUSH socket has a small high-water mark, so when the coordinator falls
behind, ZeroMQ stops taking messages instead of queueing them without limit. What the
adapter produces meanwhile waits here, and of a waiting tick only the newest per asset is
kept: a newer tick of the same asset supersedes it — the coordinator would have superseded it
in the same wake-up, so no decision changes — and the superseded one is handed back to the
caller to flag in its trace and count. Messages leave in the order they were made (their
nonces strictly increase): consecutive ticks as one frame (one tag, one send), a signal share
on its own. So the queue in front of the coordinator is bounded by the sockets' high-water
marks and buffers, not by how long the overload lasts.

Writability is asked before every send (``ZMQ_EVENTS``): a message is sealed (tagged, which
advances the link's nonce) only when it can be sent at once.
"""

from __future__ import annotations

from collections.abc import Callable


class Outbox:
    """Pending messages in nonce order: ``(asset, message, trace_row)``, asset -1 for a
    message that is not a tick (a signal share), which is never superseded."""

    def __init__(self, send: Callable[[bytes], None], writable: Callable[[], bool]) -> None:
        self._send = send
        self._writable = writable
        self.items: list[tuple[int, bytes, int]] = []
        self.frames = 0  # sends made (a frame of ticks, or one share)

    @property
    def pending(self) -> bool:
        return bool(self.items)

    def add_tick(self, asset: int, message: bytes, row: int) -> int | None:
        """Queue one tick's messages (problem and signals); returns the trace row of the
        pending tick of ``asset`` it supersedes, if there was one."""
        gone = None
        for k, (a, _, r) in enumerate(self.items):
            if a == asset:
                gone = r
                del self.items[k]
                break
        self.items.append((asset, message, row))
        return gone

    def add_other(self, message: bytes) -> None:
        """Queue a message that is not a tick (it goes on its own, in order)."""
        self.items.append((-1, message, -1))

    def flush(self) -> int:
        """Send what the socket takes now, in order; returns the ticks sent."""
        sent = 0
        while self.items and self._writable():
            if self.items[0][0] < 0:
                self._send(self.items.pop(0)[1])
            else:
                k = 0
                while k < len(self.items) and self.items[k][0] >= 0:
                    k += 1
                self._send(b"".join(m for _, m, _ in self.items[:k]))
                del self.items[:k]
                sent += k
            self.frames += 1
        return sent

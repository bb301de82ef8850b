"""In-memory stand-ins for a role's ZeroMQ sockets and device links, for driving its loop from a
test one step at a time: what arrives is queued by the test, what leaves is kept."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import zmq

from arbsphere.adapters.links import TIMESTAMP_USER, Received
from arbsphere.clock import Clock

_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


class FakeSocket:
    """A ZeroMQ socket without a peer.

    Receiving: :meth:`deliver` queues a message (one or more frames); ``recv`` returns the
    oldest single-frame message, ``recv_multipart`` the oldest as a list of frames. A receive
    with ``zmq.NOBLOCK`` on an empty queue raises ``zmq.Again`` as ZeroMQ does; a blocking one
    fails the test (it would hang), and with ``noblock_only`` every blocking receive does.
    ``getsockopt(zmq.EVENTS)`` reports ``POLLIN`` while a message is queued, except for the next
    ``arrive_after_polls`` checks (a message still on its way).

    Sending: ``send`` keeps each message in ``sent``. ``room`` (None: no limit) is how many more
    it takes: :meth:`writable` is false at 0, and sending then fails the test.
    """

    def __init__(self, *, noblock_only: bool = False, room: int | None = None) -> None:
        self.queue: deque[list[bytes]] = deque()
        self.sent: list[bytes] = []
        self.noblock_only = noblock_only
        self.room = room
        self.arrive_after_polls = 0

    def deliver(self, *frames: bytes) -> None:
        """Queue one message of ``frames`` for the socket's owner to receive."""
        self.queue.append(list(frames))

    def _next(self, flags: int) -> list[bytes]:
        if self.noblock_only and not flags & _NOBLOCK:
            raise AssertionError("a blocking receive on a socket the loop must only poll")
        if not self.queue:
            if flags & _NOBLOCK:
                raise zmq.Again()
            raise AssertionError("a blocking receive on an empty socket would hang")
        return self.queue.popleft()

    def recv(self, flags: int = 0, copy: bool = True) -> bytes:
        frames = self._next(flags)
        if len(frames) != 1:
            raise AssertionError(f"recv() of a {len(frames)}-frame message")
        return frames[0]

    def recv_multipart(self, flags: int = 0, copy: bool = True) -> list[bytes]:
        return self._next(flags)

    def getsockopt(self, option: int) -> int:
        if option != _EVENTS:
            raise AssertionError(f"getsockopt({option}): only zmq.EVENTS is faked")
        if self.arrive_after_polls:
            self.arrive_after_polls -= 1
            return 0
        return _POLLIN if self.queue else 0

    def writable(self) -> bool:
        return self.room is None or self.room > 0

    def send(self, data: bytes, flags: int = 0, copy: bool = True) -> None:
        if not self.writable():
            raise AssertionError("sent to a socket that said it was full")
        if self.room is not None:
            self.room -= 1
        self.sent.append(bytes(data))


class FakeFeedLink:
    """A feed device link without a device (:class:`~arbsphere.adapters.links.FeedLink`).

    ``receive`` hands out everything in ``incoming`` (:class:`Received`: payload, rx_ns);
    ``send_many`` keeps each call's messages as one entry of ``sent`` and returns the clock's
    time plus ``tx_delay_ns`` — or None while ``reachable`` is false (no device address yet);
    ``on_send`` (if set) sees every batch first. ``fileno`` is -1: drive the loop's handlers
    directly instead of polling.
    """

    timestamp_source = TIMESTAMP_USER

    def __init__(self, clock: Clock, *, name: str = "fake-link", tx_delay_ns: int = 0) -> None:
        self.clock = clock
        self.name = name
        self.tx_delay_ns = tx_delay_ns
        self.incoming: list[Received] = []
        self.sent: list[list[bytes]] = []
        self.reachable = True
        self.on_send: Callable[[Sequence[bytes]], None] | None = None
        self.closed = False
        self._received = 0

    def fileno(self) -> int:
        return -1

    def receive(self, timeout_ms: int) -> list[Received]:
        out, self.incoming = self.incoming, []
        self._received += len(out)
        return out

    def send_many(self, messages: Sequence[bytes]) -> int | None:
        if not self.reachable:
            return None
        if self.on_send is not None:
            self.on_send(messages)
        self.sent.append([bytes(m) for m in messages])
        return self.clock.now_ns() + self.tx_delay_ns

    def counters(self) -> dict[str, int]:
        n = self._received
        return {"messages": n, "units": n, "bytes": 0, "malformed": 0, "sends": len(self.sent)}

    def close(self) -> None:
        self.closed = True


class FakeBrokerLink(FakeFeedLink):
    """A broker device link without a device (:class:`~arbsphere.adapters.links.BrokerLink`):
    as :class:`FakeFeedLink`, and its device is always reachable."""

    def send(self, message: bytes) -> int:
        return self.send_many((message,))

    def send_many(self, messages: Sequence[bytes]) -> int:
        tx = super().send_many(messages)
        if tx is None:
            raise AssertionError(f"{self.name}: a broker link always has its device's address")
        return tx

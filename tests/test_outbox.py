"""The venue adapter's outbox: under back-pressure the newest tick per asset waits, in order."""

from __future__ import annotations

from arbsphere.adapters.outbox import Outbox
from arbsphere.testing import FakeSocket


def test_a_free_socket_gets_every_tick_at_once_one_frame_per_flush() -> None:
    sock = FakeSocket(room=10)
    box = Outbox(sock.send, sock.writable)
    assert box.add_tick(0, b"a1", 0) is None and box.add_tick(1, b"b1", 1) is None
    assert box.flush() == 2 and sock.sent == [b"a1b1"] and not box.pending


def test_a_full_socket_keeps_the_newest_tick_per_asset_and_the_order() -> None:
    sock = FakeSocket(room=0)
    box = Outbox(sock.send, sock.writable)
    box.add_tick(0, b"a1", 10)
    box.add_tick(1, b"b1", 11)
    assert box.flush() == 0 and box.pending
    assert box.add_tick(0, b"a2", 12) == 10  # supersedes the waiting tick of asset 0
    box.add_other(b"S")  # a share: goes on its own, after the ticks made before it
    box.add_tick(1, b"b2", 13)  # supersedes b1, which was made before the share
    assert [r for _, _, r in box.items] == [12, -1, 13]
    sock.room = 1  # the socket takes one message: the ticks before the share, in one frame
    assert box.flush() == 1 and sock.sent == [b"a2"]
    sock.room = 5
    assert box.flush() == 1 and sock.sent == [b"a2", b"S", b"b2"] and not box.pending
    assert box.frames == 3


def test_nothing_is_sealed_or_sent_while_the_socket_is_full() -> None:
    sock = FakeSocket(room=0)
    box = Outbox(sock.send, sock.writable)
    box.add_other(b"S")
    for k in range(100):
        box.add_tick(k % 3, b"t%d" % k, k)
        box.flush()
    assert sock.sent == [] and len(box.items) == 4  # the share and one tick per asset

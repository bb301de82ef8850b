"""A ZeroMQ socket with the message checks of one channel applied on the way in and out.

:class:`SecureSocket` wraps a pipeline socket for the role's send / receive code: outgoing
messages are attested (optional, PlanDeltas) and sealed with the link's tag (one tag per
message, over all its frames); incoming ones go through a
:class:`~arbsphere.security.role_security.MessageGuard` (tag, replay, skew, sender's
credential now, attestation) and a refused one is dropped — counted by the guard, never
returned. On a ROUTER the first frame is the peer's routing id: outgoing data frames are
sealed with that peer's key, incoming ones are guarded. Pollers keep the raw socket
(:attr:`sock`); anything else is delegated to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import zmq

from arbsphere.security.role_security import MessageGuard
from arbsphere.security.tags import Sealer


class SecureSocket:
    """See the module docstring. ``sealer`` seals everything sent (one peer);
    ``sealers_by_peer`` seals per routing id (a ROUTER); ``attest`` signs a message before it
    is sealed; ``guard`` checks what is received; ``router`` says frame 0 is a routing id."""

    def __init__(
        self,
        sock: zmq.Socket[Any],
        *,
        sealer: Sealer | None = None,
        sealers_by_peer: Mapping[bytes, Sealer | None] | None = None,
        guard: MessageGuard | None = None,
        attest: Callable[[bytes], bytes] | None = None,
        router: bool = False,
    ) -> None:
        self.sock = sock
        self.sealer = sealer
        self.sealers_by_peer = dict(sealers_by_peer or {})
        self.guard = guard
        self.attest = attest
        self.router = router

    # --- sending -----------------------------------------------------------------------------
    def _out(self, msg: bytes, sealer: Sealer | None) -> bytes:
        if self.attest is not None:
            msg = self.attest(msg)
        return sealer.seal(msg) if sealer is not None else msg

    def send(self, msg: bytes, flags: int = 0, copy: bool = True) -> None:
        self.sock.send(self._out(msg, self.sealer), flags, copy=copy)

    def send_multipart(self, frames: Sequence[bytes], flags: int = 0, copy: bool = True) -> None:
        """Every data frame attested (if set), then one tag for the whole message
        (:meth:`~arbsphere.security.tags.Sealer.seal_parts`; a ROUTER's routing id frame is
        not part of it)."""
        if not self.router and self.attest is None:  # the pipeline's PUSH sockets
            sealer = self.sealer
            out = frames if sealer is None else sealer.seal_parts(frames)
            self.sock.send_multipart(out, flags, copy=copy)
            return
        head = [bytes(frames[0])] if self.router else []
        body = frames[1:] if self.router else frames
        sealer = self.sealers_by_peer.get(head[0]) if self.router else self.sealer
        data = [self.attest(bytes(f)) if self.attest is not None else bytes(f) for f in body]
        if sealer is not None:
            data = sealer.seal_parts(data)
        self.sock.send_multipart(head + data, flags, copy=copy)

    # --- receiving ---------------------------------------------------------------------------
    def recv(self, flags: int = 0, copy: bool = True) -> bytes:
        """The next message that passes the guard (refused ones are dropped, counted). After a
        refusal it does not block for more: ``zmq.Again`` when nothing else is queued (a caller
        that polled first must expect it)."""
        while True:
            raw: bytes = self.sock.recv(flags, copy=True)
            if self.guard is None:
                return raw
            msg = self.guard.open(raw)
            if msg is not None:
                return msg
            flags |= zmq.NOBLOCK

    def recv_multipart(self, flags: int = 0, copy: bool = True) -> list[bytes]:
        """The next multipart message whose data frames pass the guard together (one tag
        over all of them); a refused message is dropped whole (counted) and, as with
        :meth:`recv`, ``zmq.Again`` comes rather than blocking when nothing else is queued."""
        while True:
            frames: list[bytes] = self.sock.recv_multipart(flags, copy=True)
            if self.guard is None:
                return frames
            if not self.router:
                opened = self.guard.open_parts(frames)
                if opened is not None:
                    return opened
                flags |= zmq.NOBLOCK
                continue
            head = frames[:1] if self.router else []
            body = frames[1:] if self.router else frames
            opened = self.guard.open_parts(body)
            if opened is not None:
                return head + opened
            flags |= zmq.NOBLOCK

    def poll(self, timeout: int | None = None, flags: int = zmq.POLLIN) -> int:
        return int(self.sock.poll(timeout, flags))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

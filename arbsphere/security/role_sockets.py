"""A role's sockets with security on or off, decided once when the role starts.

:func:`role_sockets` reads the role config's ``security`` table (written by the campaign
registry) into :class:`Secured` — CurveZMQ on every socket, tags per link and channel, the
governance channel, the ledger's events — or, without one (a role run on its own, e.g. in a
test), :class:`Plaintext`: the sockets as they are, no governance, no ledger. Both have the same
methods, so a role wires its sockets once and never asks again whether security is on. The
receive and send paths get either the raw socket or a
:class:`~arbsphere.security.secure_socket.SecureSocket`: nothing is added per message when
security is off.

Peers are named by role: the pipeline has one coordinator and one broker; "the venues" are
every venue in the roster.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

import zmq

from arbsphere.clock import Clock
from arbsphere.privacy.secure_agg import FixedPoint, MaskingParty
from arbsphere.security.identity import Role
from arbsphere.security.ledger import EventKind
from arbsphere.security.role_security import RoleSecurity, SecuritySettings
from arbsphere.security.secure_socket import SecureSocket
from arbsphere.sender_ids import VENUE_SENDER_BASE

#: the ledger's event sink of a role: (kind, subject, details)
EventSink = Callable[[EventKind, int, Mapping[str, Any]], None]


class Plaintext:
    """No security: the sockets as they are, no governance channel, no ledger events."""

    event: EventSink | None = None
    #: the RoleSecurity behind the sockets (None: plaintext)
    role_security: RoleSecurity | None = None

    def server(self, sock: zmq.Socket[bytes], domain: str, roles: Collection[Role]) -> None:
        """Make ``sock`` a server of ``domain`` for clients of ``roles`` (before it binds)."""

    def client(self, sock: zmq.Socket[bytes], server: Role) -> None:
        """Make ``sock`` a client of the one role ``server`` (before it connects)."""

    def sender(
        self, sock: zmq.Socket[bytes], channel: bytes, to: Role, *, attest: bool = False
    ) -> Any:
        """What the role sends to the one ``to`` on: ``sock``, or it sealed (and attested)."""
        return sock

    def receiver(
        self, sock: zmq.Socket[bytes], channel: bytes, senders: Collection[Role],
        *, attested_by: Role | None = None,
    ) -> Any:  # fmt: skip
        """What the role receives from ``senders`` on: ``sock``, or it guarded."""
        return sock

    def exchange(self, sock: zmq.Socket[bytes], channel: bytes, peer: Role) -> Any:
        """Both ways with the one ``peer`` (a DEALER): ``sock``, or it sealed and guarded."""
        return sock

    def router(
        self, sock: zmq.Socket[bytes], channel: bytes, peers: Role,
        routing_id: Callable[[str], bytes],
    ) -> Any:  # fmt: skip
        """A ROUTER to every role ``peers`` (``routing_id``: a peer's name -> its routing id):
        ``sock``, or it sealed per peer and guarded."""
        return sock

    def masking(self, venue_id: int, fixed: FixedPoint, suffix: bytes) -> MaskingParty | None:
        """The venue's secure-aggregation party of one masked stream (None: no security)."""
        return None

    def connect_governance(self) -> zmq.Socket[bytes] | None:
        """The governance DEALER to the campaign registry, connected (None: no security)."""
        return None

    def service(self, events: Mapping[Any, int] | None = None) -> None:
        """Between wake-ups: governance frames, credential renewal, refusal summaries.
        ``events``: the poller's (it has the governance socket); None: look without blocking,
        at most every few milliseconds (a hot loop that does not poll it)."""

    def stats(self) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        pass


class Secured(Plaintext):
    """CurveZMQ on every socket, tags per link and channel, attested PlanDeltas when
    configured, the governance channel to the campaign registry and the ledger's events."""

    def __init__(self, sec: RoleSecurity) -> None:
        self.sec = sec
        self.role_security = sec
        self.event = sec.event
        self._governance: zmq.Socket[bytes] | None = None

    def name_of(self, role: Role) -> str:
        """The one peer of ``role`` (the coordinator, the broker)."""
        return self.sec.names_of(role)[0]

    def server(self, sock: zmq.Socket[bytes], domain: str, roles: Collection[Role]) -> None:
        self.sec.server(sock, domain, list(roles))

    def client(self, sock: zmq.Socket[bytes], server: Role) -> None:
        self.sec.client(sock, self.name_of(server))

    def sender(
        self, sock: zmq.Socket[bytes], channel: bytes, to: Role, *, attest: bool = False
    ) -> Any:
        sec = self.sec
        return SecureSocket(
            sock, sealer=sec.sealer(channel, self.name_of(to)),
            attest=sec.sign_plan if attest and sec.settings.attest_plan_deltas else None,
        )  # fmt: skip

    def receiver(
        self, sock: zmq.Socket[bytes], channel: bytes, senders: Collection[Role],
        *, attested_by: Role | None = None,
    ) -> Any:  # fmt: skip
        sec = self.sec
        names = [n for role in senders for n in sec.names_of(role)]
        attester = None
        if attested_by is not None and sec.settings.attest_plan_deltas:
            attester = self.name_of(attested_by)
        return SecureSocket(sock, guard=sec.guard(channel, names, attested_by=attester))

    def exchange(self, sock: zmq.Socket[bytes], channel: bytes, peer: Role) -> Any:
        sec = self.sec
        name = self.name_of(peer)
        return SecureSocket(
            sock, sealer=sec.sealer(channel, name), guard=sec.guard(channel, [name])
        )

    def router(
        self, sock: zmq.Socket[bytes], channel: bytes, peers: Role,
        routing_id: Callable[[str], bytes],
    ) -> Any:  # fmt: skip
        sec = self.sec
        names = sec.names_of(peers)
        return SecureSocket(
            sock, router=True, guard=sec.guard(channel, names),
            sealers_by_peer={routing_id(name): sec.sealer(channel, name) for name in names},
        )  # fmt: skip

    def masking(self, venue_id: int, fixed: FixedPoint, suffix: bytes) -> MaskingParty | None:
        """Its own X25519 tag key, every venue's tag public key from the roster (venue id =
        sender id − VENUE_SENDER_BASE), ``fixed``, and the run's session bytes with ``suffix``
        (each masked stream has its own HKDF salt)."""
        sec = self.sec
        peers = {
            e.sender_id - VENUE_SENDER_BASE: e.credential.tag_public
            for e in sec.roster.entries.values()
            if e.role == Role.VENUE
        }
        return MaskingParty(venue_id, sec.identity.tag_key, peers, fixed,
                            sec.roster.session + suffix)  # fmt: skip

    def connect_governance(self) -> zmq.Socket[bytes] | None:
        self._governance = self.sec.connect_registry()
        return self._governance

    def service(self, events: Mapping[Any, int] | None = None) -> None:
        if events is None:
            self.sec.service()
            return
        if self._governance is not None and self._governance in events:
            self.sec.handle_governance()
        self.sec.maybe_tick()

    def stats(self) -> dict[str, Any] | None:
        return self.sec.stats()

    def close(self) -> None:
        self.sec.close()


def role_sockets(
    settings: SecuritySettings | None, source: str, clock: Clock, ctx: zmq.Context[Any]
) -> Plaintext | Secured:
    """The role's security, decided once: its config's ``security`` settings, or
    :class:`Plaintext` when it has none (errors name ``source``)."""
    if settings is None:
        return Plaintext()
    return Secured(open_role_security(settings, source, clock, ctx))


def open_role_security(
    settings: SecuritySettings, source: str, clock: Clock, ctx: zmq.Context[Any]
) -> RoleSecurity:
    """The :class:`RoleSecurity` of a role config's ``security`` settings."""
    return RoleSecurity(settings, clock, ctx, source=source)

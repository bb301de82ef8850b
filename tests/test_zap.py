"""CurveZMQ + ZAP over real sockets (tcp://127.0.0.1, random ports, one process): a valid venue
credential gets its messages through; unknown, expired, revoked, not-yet-valid, wrong-role and
forged credentials, a plaintext client, and a NULL handshake in our ZAP domain are refused at
the handshake (no message arrives, the right counter goes up, the hook is called); rotation at
half-life keeps the connection and admits a fresh one. Expiry uses a fake clock.

Each handshake's outcome is read from the client's socket monitor (succeeded / failed auth /
failed protocol), so the tests wait on events, not on sleeps."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from zmq.utils.monitor import recv_monitor_message

from arbsphere.errors import CredentialError, PipelineError
from arbsphere.security.credentials import (
    CampaignAuthority,
    CredentialDirectory,
    CredentialVerifier,
    needs_rotation,
)
from arbsphere.security.identity import Role, RoleIdentity
from arbsphere.security.zap import (
    ZAP_DOMAIN,
    CredentialAuthenticator,
    curve_client,
    curve_server,
)
from arbsphere.testing import StepClock

T0 = 1_790_000_000 * 10**9
SKEW = 10**9
MIN = 60 * 10**9
TIMEOUT_MS = 1000
QUIET_MS = 150

SUCCEEDED = zmq.EVENT_HANDSHAKE_SUCCEEDED
FAILED_AUTH = zmq.EVENT_HANDSHAKE_FAILED_AUTH
FAILED_PROTOCOL = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
FAILED_NO_DETAIL = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL


class Rig:
    """A coordinator-style CURVE PULL server with ZAP, and helpers to connect clients."""

    def __init__(self) -> None:
        self.clock = StepClock(T0)
        self.authority = CampaignAuthority(Ed25519PrivateKey.generate(), self.clock)
        self.verifier = CredentialVerifier(self.authority.public_key, self.clock, skew_ns=SKEW)
        self.directory = CredentialDirectory(self.verifier)
        self.server_identity = RoleIdentity.generate("coordinator", Role.COORDINATOR)
        self.refusal_calls: list[tuple[str, bytes]] = []
        self.ctx = zmq.Context()
        self.sockets: list[zmq.Socket] = []
        self.auth = CredentialAuthenticator(
            self.ctx,
            self.directory,
            self.verifier,
            {Role.VENUE},
            lambda reason, key: self.refusal_calls.append((reason, key)),
        )
        self.auth.start()
        self.pull = self.socket(zmq.PULL)
        curve_server(self.pull, self.server_identity)
        self.port = self.pull.bind_to_random_port("tcp://127.0.0.1")

    def socket(self, kind: int) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 0
        self.sockets.append(sock)
        return sock

    def client(self, identity: RoleIdentity | None) -> tuple[zmq.Socket, int]:
        """Connect a PUSH client (CURVE unless ``identity`` is None); returns it and the
        outcome of its first handshake (a monitor event)."""
        push = self.socket(zmq.PUSH)
        push.sndtimeo = TIMEOUT_MS
        if identity is not None:
            curve_client(push, identity, self.server_identity.curve_public)
        monitor = push.get_monitor_socket()
        self.sockets.append(monitor)
        push.connect(f"tcp://127.0.0.1:{self.port}")
        return push, self._handshake_outcome(monitor)

    def _handshake_outcome(self, monitor: zmq.Socket) -> int:
        outcomes = {SUCCEEDED, FAILED_AUTH, FAILED_PROTOCOL, FAILED_NO_DETAIL}
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while (left := deadline - time.monotonic()) > 0:
            if monitor.poll(int(left * 1000) + 1):
                event = recv_monitor_message(monitor)["event"]
                if event in outcomes:
                    return int(event)
        raise AssertionError("no handshake outcome within the timeout")

    def receive(self, timeout_ms: int = TIMEOUT_MS) -> Any:
        if not self.pull.poll(timeout_ms):
            return None
        return self.pull.recv(copy=False)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close(linger=0)
        self.auth.stop()
        self.ctx.term()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    try:
        yield r
    finally:
        r.close()
        assert not r.auth.is_alive()


def _venue(rig: Rig, name: str = "venue-a", **issue: Any) -> RoleIdentity:
    identity = RoleIdentity.generate(name, Role.VENUE)
    rig.directory.add(rig.authority.issue(identity.public(), **issue))
    return identity


def _try_send(push: zmq.Socket, data: bytes) -> None:
    """Send without blocking; after a refused handshake libzmq may already have dropped the
    connection's pipe, and then there is nowhere to queue (``Again``): either way nothing
    reaches the server, which is what the callers assert."""
    with contextlib.suppress(zmq.Again):
        push.send(data, zmq.NOBLOCK)


def _assert_refused(rig: Rig, identity: RoleIdentity | None, reason: str) -> None:
    push, outcome = rig.client(identity)
    assert outcome == FAILED_AUTH
    _try_send(push, b"must not arrive")
    assert rig.receive(QUIET_MS) is None
    assert rig.auth.refusals[reason] >= 1
    assert rig.auth.accepted == 0
    key = b"" if identity is None else identity.curve_public
    assert (reason, key) in rig.refusal_calls


# --- acceptance ---------------------------------------------------------------------------------


def test_valid_venue_messages_arrive(rig: Rig) -> None:
    venue = _venue(rig)
    push, outcome = rig.client(venue)
    assert outcome == SUCCEEDED
    for i in range(5):
        push.send(b"tick %d" % i)
    got = [rig.receive() for _ in range(5)]
    assert [bytes(f.bytes) for f in got] == [b"tick %d" % i for i in range(5)]
    # per-message check the pipeline will do: the frame names the client's CURVE key
    user_id = got[0].get("User-Id")
    assert user_id == venue.curve_public.decode()
    assert rig.directory.authorize(user_id, {Role.VENUE}).did == venue.did
    assert rig.auth.accepted == 1 and rig.auth.refusals.total == 0
    assert rig.refusal_calls == []


# --- refusals at the handshake -----------------------------------------------------------------


def test_unknown_key_refused(rig: Rig) -> None:
    stranger = RoleIdentity.generate("stranger", Role.VENUE)
    _assert_refused(rig, stranger, "unknown")
    assert rig.verifier.counts["unknown"] >= 1


def test_expired_refused(rig: Rig) -> None:
    venue = _venue(rig, validity_ns=MIN)
    rig.clock.now = T0 + MIN + SKEW
    _assert_refused(rig, venue, "expired")


def test_revoked_refused(rig: Rig) -> None:
    venue = _venue(rig)
    cred = rig.directory.by_curve_key(venue.curve_public)
    assert cred is not None
    serial = cred.serial
    rig.authority.revoke(serial)
    assert rig.verifier.update_revocations(rig.authority.revocation_list())
    _assert_refused(rig, venue, "revoked")


def test_not_yet_valid_refused(rig: Rig) -> None:
    venue = _venue(rig, not_before_ns=T0 + 5 * MIN)
    _assert_refused(rig, venue, "not_yet_valid")


def test_wrong_role_refused(rig: Rig) -> None:
    broker = RoleIdentity.generate("broker-1", Role.BROKER)
    rig.directory.add(rig.authority.issue(broker.public()))
    _assert_refused(rig, broker, "wrong_role")


def test_forged_credential_refused(rig: Rig) -> None:
    venue = RoleIdentity.generate("venue-f", Role.VENUE)
    rogue = CampaignAuthority(Ed25519PrivateKey.generate(), rig.clock)
    with pytest.raises(CredentialError) as info:
        rig.directory.add(rogue.issue(venue.public()))
    assert info.value.reason == "bad_signature"
    assert rig.verifier.counts["bad_signature"] == 1
    # the directory never held it, so the key is unknown at the handshake
    _assert_refused(rig, venue, "unknown")


def test_refused_after_accepted_on_expiry(rig: Rig) -> None:
    venue = _venue(rig, validity_ns=MIN)
    first, outcome = rig.client(venue)
    assert outcome == SUCCEEDED
    rig.clock.now = T0 + MIN + SKEW
    _, outcome = rig.client(venue)
    assert outcome == FAILED_AUTH
    assert rig.auth.accepted == 1 and rig.auth.refusals["expired"] == 1
    # ZAP judged the first connection once, at its handshake; refusing its messages after
    # expiry is the message-time check's job (authorize at receive), shown here:
    first.send(b"late")
    frame = rig.receive()
    with pytest.raises(CredentialError) as info:
        rig.directory.authorize(frame.get("User-Id"), {Role.VENUE})
    assert info.value.reason == "expired"


def test_plaintext_client_refused(rig: Rig) -> None:
    push, outcome = rig.client(None)
    assert outcome in (FAILED_PROTOCOL, FAILED_NO_DETAIL)
    _try_send(push, b"plaintext")
    assert rig.receive(QUIET_MS) is None
    assert rig.auth.accepted == 0


def test_null_handshake_in_our_domain_refused(rig: Rig) -> None:
    plain = rig.socket(zmq.PULL)
    plain.zap_domain = ZAP_DOMAIN.encode()  # a plaintext server wrongly put in our domain
    port = plain.bind_to_random_port("tcp://127.0.0.1")
    push = rig.socket(zmq.PUSH)
    monitor = push.get_monitor_socket()
    rig.sockets.append(monitor)
    push.connect(f"tcp://127.0.0.1:{port}")
    assert rig._handshake_outcome(monitor) == FAILED_AUTH
    _try_send(push, b"x")
    assert not plain.poll(QUIET_MS)
    assert rig.auth.refusals["not_curve"] == 1
    assert ("not_curve", b"") in rig.refusal_calls


def test_hook_failure_does_not_stop_authentication(rig: Rig) -> None:
    def broken(reason: str, key: bytes) -> None:
        raise RuntimeError("hook bug")

    rig.auth.on_refusal = broken
    _, outcome = rig.client(RoleIdentity.generate("stranger", Role.VENUE))
    assert outcome == FAILED_AUTH
    venue = _venue(rig)
    push, outcome = rig.client(venue)
    assert outcome == SUCCEEDED
    push.send(b"still works")
    assert bytes(rig.receive().bytes) == b"still works"
    assert rig.auth.is_alive()


# --- rotation -----------------------------------------------------------------------------------


def test_rotation_at_half_life_keeps_pipeline(rig: Rig) -> None:
    venue = _venue(rig)
    old = rig.directory.by_curve_key(venue.curve_public)
    assert old is not None
    push, outcome = rig.client(venue)
    assert outcome == SUCCEEDED
    push.send(b"before")
    assert bytes(rig.receive().bytes) == b"before"

    rig.clock.now = old.rotate_at_ns
    assert needs_rotation(old, rig.clock.now_ns())
    new = rig.authority.rotate(old)
    rig.directory.replace(new)
    push.send(b"during")
    assert bytes(rig.receive().bytes) == b"during"

    rig.clock.now = old.not_after_ns + SKEW  # the old credential alone would be expired now
    push.send(b"after")  # the connection made under the old serial keeps working
    assert bytes(rig.receive().bytes) == b"after"
    fresh, outcome = rig.client(venue)  # a new connection is judged by the rotated serial
    assert outcome == SUCCEEDED
    fresh.send(b"fresh")
    assert bytes(rig.receive().bytes) == b"fresh"
    assert rig.auth.accepted == 2 and rig.auth.refusals.total == 0
    assert rig.directory.authorize(venue.curve_public, {Role.VENUE}).serial == new.serial


# --- API guards ---------------------------------------------------------------------------------


def test_curve_options_must_precede_bind_and_connect(rig: Rig) -> None:
    with pytest.raises(PipelineError, match="before the socket binds"):
        curve_server(rig.pull, rig.server_identity)
    push = rig.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{rig.port}")
    with pytest.raises(PipelineError, match="before the socket binds"):
        curve_client(push, rig.server_identity, rig.server_identity.curve_public)


def test_curve_client_refuses_bad_server_key(rig: Rig) -> None:
    push = rig.socket(zmq.PUSH)
    with pytest.raises(CredentialError, match="40 Z85"):
        curve_client(push, rig.server_identity, b"short")


def test_one_authenticator_per_context(rig: Rig) -> None:
    second = CredentialAuthenticator(rig.ctx, rig.directory, rig.verifier, {Role.VENUE})
    with pytest.raises(PipelineError, match="ZAP handler"):
        second.start()
    assert not second.is_alive()


def test_authenticator_argument_checks(rig: Rig) -> None:
    other = CredentialVerifier(rig.authority.public_key, rig.clock, skew_ns=0)
    with pytest.raises(ValueError, match="same verifier"):
        CredentialAuthenticator(rig.ctx, rig.directory, other, {Role.VENUE})
    with pytest.raises(ValueError, match="empty"):
        CredentialAuthenticator(rig.ctx, rig.directory, rig.verifier, set())


def test_context_manager_stops_thread() -> None:
    ctx = zmq.Context()
    clock = StepClock(T0)
    authority = CampaignAuthority(Ed25519PrivateKey.generate(), clock)
    verifier = CredentialVerifier(authority.public_key, clock, skew_ns=0)
    auth = CredentialAuthenticator(ctx, CredentialDirectory(verifier), verifier, {Role.VENUE})
    try:
        with auth:
            assert auth.is_alive()
        assert not auth.is_alive()
        auth.stop()  # idempotent
    finally:
        auth.stop()
        ctx.term()

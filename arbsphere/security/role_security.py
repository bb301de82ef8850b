"""A role process's security: identity, peers, CURVE sockets, message guards, governance channel.

One :class:`RoleSecurity` per role process (coordinator, venue adapter, broker adapter), built
from the ``security`` table of the role's configuration (written by the campaign registry):

- **Identity and peers.** The role loads its private keys from the run's private key directory
  and learns every peer's credential from the roster; credentials are verified against the
  campaign authority before use.
- **Transport.** :meth:`server` / :meth:`client` put CurveZMQ on a socket (nothing with
  ``transport = "plaintext"``); servers authenticate clients through ZAP, per socket domain,
  against the credential directory (unknown, expired, revoked, wrong-role: refused, counted,
  ledgered).
- **Messages.** :meth:`sealer` gives the tagger of one directed link and channel;
  :meth:`guard` the receiving side: tag, replay window and skew (``tags = true``), then the
  sender's credential *now* (expired or revoked since the handshake: refused). Every refusal is
  counted per channel and reason and reported to the ledger as a summary once a second.
- **Governance.** A DEALER to the registry (CurveZMQ and tags like any link): governance events
  for the ledger, credential renewal at half-life (the registry pushes rotated credentials of
  peers too), revocation lists, and ledger checkpoints to sign — signed only after the
  consistency proof from the last checkpoint this role signed verifies.
"""

from __future__ import annotations

import collections
import contextlib
import struct
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from arbsphere.clock import Clock
from arbsphere.errors import (
    ArbSphereError,
    ConfigError,
    CredentialError,
    DecodeError,
    MessageRefused,
    PipelineError,
    ProofError,
)
from arbsphere.security.attest import AttestationVerifier, attest
from arbsphere.security.credentials import (
    Credential,
    CredentialDirectory,
    CredentialVerifier,
    SignedRevocationList,
    needs_rotation,
)
from arbsphere.security.governance_frames import (
    FrameCodec,
    FrameKind,
    GovernanceFrame,
    canonical_json,
)
from arbsphere.security.identity import Role, RoleIdentity
from arbsphere.security.ledger import EventKind, checkpoint_message
from arbsphere.security.merkle import EMPTY_ROOT, verify_consistency
from arbsphere.security.roster import Roster, RosterEntry
from arbsphere.security.tags import Opener, Sealer, derive_link_key
from arbsphere.security.zap import CredentialAuthenticator, curve_client, curve_server

#: tag-key channels: one key per (channel, direction), so a message of one channel cannot be
#: replayed on another (each channel has its own nonce sequence per sender)
PIPELINE = b"pipeline"
ROUNDS = b"rounds"
GOVERNANCE = b"governance"
#: how often refusal counts are summarised into the ledger (ns)
REPORT_INTERVAL_NS = 1_000_000_000
#: hot loops look at the governance channel and the credential's age this often (ns)
SERVICE_INTERVAL_NS = 10_000_000
_SENDER = struct.Struct("<I")
_SENDER_OFFSET = 8  # envelope: magic u32, schema_id u16, schema_version u16, sender_id u32


@dataclass(frozen=True)
class SecuritySettings:
    """The ``security`` table of a role's configuration: built by the campaign registry
    (:meth:`~arbsphere.security.campaign_registry.CampaignRegistry.role_settings`), carried in
    the role config the orchestrator writes and read back as this dataclass by the role."""

    name: str
    keys_dir: Path
    roster: dict[str, Any]
    registry_name: str
    registry_endpoint: str
    transport: str
    tags: bool
    attest_plan_deltas: bool
    replay_window: int
    max_past_ns: int
    max_future_ns: int
    credential_skew_ns: int

    def __post_init__(self) -> None:
        if self.transport not in ("curve", "plaintext"):
            raise ConfigError(
                f"must be 'curve' or 'plaintext' (value {self.transport!r})", key="transport"
            )


def refusal_kind(reason: str, *, handshake: bool = False) -> EventKind:
    """The ledger event of a refusal: an expired credential (at the handshake, ``expired``; at
    message time, ``credential_expired``) is CREDENTIAL_EXPIRED; any other handshake refusal
    and any other ``credential_*`` reason CREDENTIAL_REFUSED; the rest (tag, replay, skew,
    attestation) MESSAGE_REFUSED."""
    if reason in ("expired", "credential_expired"):
        return EventKind.CREDENTIAL_EXPIRED
    if handshake or reason.startswith("credential_"):
        return EventKind.CREDENTIAL_REFUSED
    return EventKind.MESSAGE_REFUSED


class MessageGuard:
    """The receiving end of one channel: opens (tag, replay, skew) and checks the sender's
    credential now. :meth:`open` returns the message without its tag, or None when refused
    (counted in :attr:`refusals` by reason; never processed)."""

    def __init__(
        self,
        owner: RoleSecurity,
        channel: bytes,
        opener: Opener | None,
        senders: Collection[int],
        attestation: AttestationVerifier | None = None,
    ) -> None:
        self.owner = owner
        self.attestation = attestation
        self.channel = channel.decode()
        self.opener = opener
        self.senders = frozenset(senders)
        self.refusals: collections.Counter[str] = collections.Counter()
        self.accepted = 0
        self.last_refusal = ""

    def open(self, raw: bytes) -> bytes | None:
        opened = self.open_parts((raw,))
        return None if opened is None else opened[0]

    def open_parts(self, frames: Sequence[bytes]) -> list[bytes] | None:
        """A message's frames (a multipart one under one tag, :meth:`Sealer.seal_parts`)
        without the tag, or None when refused (the whole message; counted)."""
        try:
            if not frames:
                raise MessageRefused("a message without data frames", reason="short")
            opener = self.opener
            if opener is not None and self.attestation is None:
                # Tags on: the opener checked that every frame carries an envelope naming
                # frame 0's sender and read the clock for the skew check; reuse both.
                parts = [bytes(p) for p in opener.open_parts(frames)]
                sender = opener.last_sender
                if sender not in self.senders:
                    raise MessageRefused(
                        f"sender {sender} may not send on {self.channel}", reason="unknown_sender"
                    )
                self.owner.check_sender_now(sender, opener.last_now_ns)
                self.accepted += 1
                return parts
            if opener is None:
                parts = list(frames)
            else:
                parts = [bytes(p) for p in opener.open_parts(frames)]
            for part in parts:
                if len(part) < _SENDER_OFFSET + 4:
                    raise MessageRefused("a frame shorter than an envelope", reason="short")
                (sender,) = _SENDER.unpack_from(part, _SENDER_OFFSET)
                if sender not in self.senders:
                    raise MessageRefused(
                        f"sender {sender} may not send on {self.channel}", reason="unknown_sender"
                    )
            self.owner.check_sender_now(_SENDER.unpack_from(parts[0], _SENDER_OFFSET)[0])
            if self.attestation is not None:
                parts = [bytes(self.attestation.verify(p)) for p in parts]
        except MessageRefused as exc:
            self.refusals[exc.reason] += 1
            self.last_refusal = str(exc)
            return None
        self.accepted += 1
        return parts


class RoleSecurity:
    """See the module docstring. Call :meth:`connect_registry` once the role's sockets exist,
    put :attr:`gov` in the role's poller and call :meth:`handle_governance` when it is
    readable, :meth:`tick` from the role's loop (a few times a second is enough) and
    :meth:`close` on the way out."""

    def __init__(
        self, settings: SecuritySettings, clock: Clock, ctx: zmq.Context[Any], *, source: str
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.ctx = ctx
        self.source = source
        try:
            self.identity = RoleIdentity.load(settings.keys_dir, settings.name)
            self.roster = Roster.from_json(settings.roster, source=f"{source}: security.roster")
        except CredentialError as exc:
            raise ConfigError(f"security: {exc}", file=source, key="security") from exc
        if settings.name not in self.roster.entries:
            raise ConfigError(
                f"role {settings.name!r} is not in the roster", file=source, key="security.name"
            )
        self.me: RosterEntry = self.roster.entries[settings.name]
        self.verifier = CredentialVerifier(
            self.roster.authority_public, clock, skew_ns=settings.credential_skew_ns
        )
        self.directory = CredentialDirectory(self.verifier)
        for entry in self.roster.entries.values():
            for credential in entry.credentials:
                self.directory.add(credential)  # verifies the authority's signature
        if self.me.credential.subject_public != self.identity.signing_public:
            raise ConfigError(
                "the roster's credential is not for this role's keys",
                file=source,
                key="security.roster",
            )
        self.auth: CredentialAuthenticator | None = None
        #: ZAP refusals, queued by the authenticator thread for the role's thread to ledger
        self._zap_refusals: collections.deque[tuple[str, str]] = collections.deque()
        self._zap_lock = threading.Lock()
        self.guards: list[MessageGuard] = []
        self._reported: dict[tuple[str, str], int] = {}
        self._next_report_ns = 0
        self._next_service_ns = 0
        self._sender_state: dict[int, tuple[int, str]] = {}
        self._refresh_sender_state()
        self.codec = FrameCodec(self.me.sender_id)
        self.gov: zmq.Socket[bytes] | None = None
        self._gov_sealer: Sealer | None = None
        self._gov_guard: MessageGuard | None = None
        self._renewing = False
        self._last_signed: tuple[int, bytes] = (0, EMPTY_ROOT)
        self.counts: collections.Counter[str] = collections.Counter()
        #: where :meth:`event` goes when set, instead of the governance socket (the registry's
        #: own instance: it ledgers its refusals directly)
        self.sink: Callable[[EventKind, int, Mapping[str, Any]], None] | None = None

    # --- identity ----------------------------------------------------------------------------
    @property
    def sender_id(self) -> int:
        return self.me.sender_id

    @property
    def curve(self) -> bool:
        return self.settings.transport == "curve"

    def sign_plan(self, message: bytes) -> bytes:
        """An Ed25519 attestation of a PlanDelta (message + 64-byte signature)."""
        return attest(self.identity.signing_key, message)

    def public_key_of(self, name: str) -> bytes:
        """The Ed25519 subject key bound in ``name``'s credential."""
        return self.roster.entries[name].credential.subject_public

    # --- transport ---------------------------------------------------------------------------
    def server(self, sock: zmq.Socket[Any], domain: str, roles: Collection[Role]) -> None:
        """Make ``sock`` (before bind) a CURVE server admitting ``roles`` through ZAP."""
        if not self.curve:
            return
        if self.auth is None:
            self.auth = CredentialAuthenticator(
                self.ctx, self.directory, self.verifier, roles, self._on_zap_refusal, domain=domain
            )
            self.auth.start()
        else:
            self.auth.allow(domain, roles)
        curve_server(sock, self.identity, domain=domain)

    def client(self, sock: zmq.Socket[Any], server: str) -> None:
        """Make ``sock`` (before connect) a CURVE client of role ``server``."""
        if self.curve:
            curve_client(
                sock, self.identity, self.roster.entries[server].credential.curve_public_z85
            )

    def _on_zap_refusal(self, reason: str, key: bytes) -> None:
        with self._zap_lock:
            self._zap_refusals.append((reason, key.decode("ascii", "replace")))

    # --- message tags ------------------------------------------------------------------------
    def _link_key(self, channel: bytes, sender: RosterEntry, receiver: RosterEntry) -> bytes:
        mine = sender if sender is self.me else receiver
        peer = receiver if mine is sender else sender
        assert mine is self.me
        return derive_link_key(
            self.identity.tag_key,
            peer.credential.tag_public,
            session=self.roster.session + b"/" + channel,
            sender_id=sender.sender_id,
            receiver_id=receiver.sender_id,
        )

    def sealer(self, channel: bytes, receiver: str) -> Sealer | None:
        """The tagger of this role's messages to ``receiver`` on ``channel`` (None: tags off)."""
        if not self.settings.tags:
            return None
        key = self._link_key(channel, self.me, self.roster.entries[receiver])
        return Sealer(key, sender_id=self.me.sender_id)

    def names_of(self, role: Role) -> list[str]:
        """Names of the roster's roles of kind ``role``, by sender id."""
        return [
            e.name
            for e in sorted(self.roster.entries.values(), key=lambda e: e.sender_id)
            if e.role == role
        ]

    def guard(
        self, channel: bytes, senders: Collection[str], *, attested_by: str | None = None
    ) -> MessageGuard:
        """The receiving checks of ``channel`` for messages from ``senders``; with
        ``attested_by`` every message must also carry that role's Ed25519 attestation."""
        entries = [self.roster.entries[s] for s in senders]
        opener = None
        if self.settings.tags:
            opener = Opener(
                {e.sender_id: self._link_key(channel, e, self.me) for e in entries},
                self.clock,
                window=self.settings.replay_window,
                max_past_ns=self.settings.max_past_ns,
                max_future_ns=self.settings.max_future_ns,
            )
        attestation = None
        if attested_by is not None:
            attestation = AttestationVerifier(self.public_key_of(attested_by))
        g = MessageGuard(self, channel, opener, [e.sender_id for e in entries], attestation)
        self.guards.append(g)
        return g

    def check_sender_now(self, sender_id: int, now_ns: int | None = None) -> None:
        """Refuse (MessageRefused) a sender whose credential is expired or revoked now
        (``now_ns``: a reading of this role's clock taken for the same message)."""
        state = self._sender_state.get(sender_id)
        if state is None:
            raise MessageRefused(
                f"sender {sender_id} has no credential", reason="credential_unknown"
            )
        not_after, why = state
        if why:
            raise MessageRefused(
                f"sender {sender_id}: credential {why}", reason=f"credential_{why}"
            )
        if now_ns is None:
            now_ns = self.clock.now_ns()
        if now_ns - self.settings.credential_skew_ns >= not_after:
            raise MessageRefused(
                f"sender {sender_id}: credential expired at {not_after} ns",
                reason="credential_expired",
            )

    def _refresh_sender_state(self) -> None:
        revoked = self.verifier.revoked
        for entry in self.roster.entries.values():
            live = [c for c in entry.credentials if c.serial not in revoked]
            if live:
                self._sender_state[entry.sender_id] = (max(c.not_after_ns for c in live), "")
            else:
                self._sender_state[entry.sender_id] = (0, "revoked")

    def learn_credential(self, credential: Credential) -> bool:
        """Adopt a new credential of a roster member (this role's renewal or a peer's
        rotation): verified into the directory (ZAP) and the sender state (message-time
        checks). True if it is this role's own."""
        entry = self.roster.entries.get(credential.name)
        if entry is None:
            raise CredentialError(f"{credential.describe()}: not in roster", reason="unknown")
        self.directory.replace(credential)
        self.roster.add(credential.name, entry.sender_id, credential)
        self._refresh_sender_state()
        if credential.name != self.settings.name:
            return False
        self._renewing = False
        return True

    def learn_revocations(self, signed_list: SignedRevocationList) -> bool:
        """Adopt a newer revocation list (verified); True if it changed anything."""
        if not self.verifier.update_revocations(signed_list):
            return False
        self._refresh_sender_state()
        return True

    # --- governance channel ------------------------------------------------------------------
    def connect_registry(self) -> zmq.Socket[bytes]:
        """Connect the governance DEALER, say HELLO; returns the socket (for the poller)."""
        sock: zmq.Socket[bytes] = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, self.settings.name.encode())
        sock.setsockopt(zmq.LINGER, 1000)
        self.client(sock, self.settings.registry_name)
        try:
            sock.connect(self.settings.registry_endpoint)
        except zmq.ZMQError as exc:
            raise PipelineError(
                f"{self.settings.name}: cannot connect to the registry: {exc}"
            ) from exc
        self.gov = sock
        self._gov_sealer = self.sealer(GOVERNANCE, self.settings.registry_name)
        self._gov_guard = self.guard(GOVERNANCE, [self.settings.registry_name])
        self._send(
            FrameKind.HELLO,
            canonical_json({"name": self.settings.name, "serial": self.me.credential.serial}),
        )
        return sock

    def _send(self, kind: FrameKind, body: bytes, **header: int) -> None:
        if self.gov is None:
            return
        raw = self.codec.encode(kind, body, self.clock.now_ns(), **header)
        if self._gov_sealer is not None:
            raw = self._gov_sealer.seal(raw)
        try:
            self.gov.send(raw, zmq.NOBLOCK)
        except zmq.Again:
            self.counts["governance_send_blocked"] += 1

    def event(self, kind: EventKind, subject: int, details: Mapping[str, Any]) -> None:
        """Send one governance event to the registry's ledger."""
        self.counts["events_sent"] += 1
        if self.sink is not None:
            self.sink(kind, subject, details)
            return
        self._send(
            FrameKind.EVENT, canonical_json(dict(details)), event_kind=int(kind), subject=subject
        )

    def handle_governance(self) -> None:
        """Process every frame waiting on the governance socket."""
        assert self.gov is not None and self._gov_guard is not None
        while True:
            try:
                raw = self.gov.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            msg = self._gov_guard.open(raw)
            if msg is None:
                continue
            try:
                self._on_frame(self.codec.decode(msg))
            except (DecodeError, CredentialError) as exc:
                self.counts["governance_rejected"] += 1
                self.event(
                    EventKind.MESSAGE_REFUSED,
                    0,
                    {"channel": "governance", "reason": "rejected", "detail": str(exc)},
                )

    def _on_frame(self, frame: GovernanceFrame) -> None:
        if frame.kind == FrameKind.CREDENTIAL:
            if self.learn_credential(Credential.from_bytes(frame.body)):
                self.counts["credential_renewed"] += 1
            else:
                self.counts["peer_credentials"] += 1
        elif frame.kind == FrameKind.REVOCATIONS:
            if self.learn_revocations(SignedRevocationList.from_bytes(frame.body)):
                self.counts["revocation_lists"] += 1
        elif frame.kind == FrameKind.SIGN_CHECKPOINT:
            self._sign_checkpoint(frame)
        else:
            raise DecodeError("unexpected_kind", 0, f"a role got {frame.kind.name}")

    def _sign_checkpoint(self, frame: GovernanceFrame) -> None:
        # flush the refusal summaries first: the run's final checkpoint comes before the roles
        # stop (their close() is too late for the ledger), and the registry signs again while
        # events keep arriving
        self.report_refusals()
        req = frame.json()
        try:
            size, root = int(req["size"]), bytes.fromhex(req["root"])
            old_size, old_root = self._last_signed
            if int(req["old_size"]) != old_size:
                raise ProofError(
                    f"proof from size {req['old_size']}, this role last signed {old_size}",
                    reason="old_size",
                )
            proof = [bytes.fromhex(h) for h in req["proof"]]
            verify_consistency(old_size, size, old_root, root, proof)
        except (ProofError, KeyError, ValueError, TypeError) as exc:
            self.counts["checkpoints_refused"] += 1
            self._send(
                FrameKind.CHECKPOINT_SIGNATURE,
                canonical_json({"refused": str(exc)}),
                request_id=frame.request_id,
            )
            return
        signature = self.identity.sign(checkpoint_message(size, root))
        self._last_signed = (size, root)
        self.counts["checkpoints_signed"] += 1
        self._send(FrameKind.CHECKPOINT_SIGNATURE, signature, request_id=frame.request_id)

    # --- periodic ----------------------------------------------------------------------------
    def service(self) -> None:
        """For loops without the governance socket in their poller (a venue adapter's tick
        loop): at most every :data:`SERVICE_INTERVAL_NS`, handle what is queued (without
        blocking), then :meth:`tick`. Cheap to call on every iteration of a hot loop."""
        now = self.clock.now_ns()
        if now < self._next_service_ns:
            return
        self._next_service_ns = now + SERVICE_INTERVAL_NS
        if self.gov is not None and int(self.gov.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            self.handle_governance()
        self.tick()

    def maybe_tick(self) -> None:
        """:meth:`tick` at most every :data:`SERVICE_INTERVAL_NS` (for hot loops)."""
        now = self.clock.now_ns()
        if now >= self._next_service_ns:
            self._next_service_ns = now + SERVICE_INTERVAL_NS
            self.tick()

    def tick(self) -> None:
        """Renew the credential at half-life; ledger ZAP refusals; summarise message refusals."""
        now = self.clock.now_ns()
        if not self._renewing and needs_rotation(self.me.credential, now):
            self._renewing = True
            self._send(FrameKind.RENEW, self.me.credential.to_bytes())
        with self._zap_lock:
            zap = list(self._zap_refusals)
            self._zap_refusals.clear()
        for reason, key in zap:
            self.event(
                refusal_kind(reason, handshake=True),
                0,
                {
                    "at": self.settings.name,
                    "reason": reason,
                    "curve_key": key,
                    "where": "handshake",
                },
            )
        if now >= self._next_report_ns:
            self._next_report_ns = now + REPORT_INTERVAL_NS
            self.report_refusals()

    def report_refusals(self) -> None:
        """Ledger the message refusals since the last report (one event per channel and
        reason that changed)."""
        for g in self.guards:
            for reason, total in sorted(g.refusals.items()):
                key = (g.channel, reason)
                new = total - self._reported.get(key, 0)
                if new > 0:
                    self._reported[key] = total
                    self.event(
                        refusal_kind(reason),
                        0,
                        {
                            "at": self.settings.name,
                            "channel": g.channel,
                            "reason": reason,
                            "count": new,
                            "total": total,
                            "where": "message",
                            "example": g.last_refusal,
                        },
                    )

    def stats(self) -> dict[str, Any]:
        """Refusal and governance counters for the role's stats file."""
        return {
            "transport": self.settings.transport,
            "tags": self.settings.tags,
            "zap": {
                "accepted": self.auth.accepted if self.auth is not None else 0,
                "refusals": self.auth.refusals.as_dict() if self.auth is not None else {},
            },
            "credential_refusals": self.verifier.counts.as_dict(),
            "messages": {
                g.channel: {"accepted": g.accepted, "refused": dict(sorted(g.refusals.items()))}
                for g in self.guards
            },
            "governance": dict(sorted(self.counts.items())),
            "credential_serial": self.me.credential.serial,
        }

    def close(self) -> None:
        """Report the last refusals, stop ZAP, close the governance socket."""
        with contextlib.suppress(ArbSphereError):
            self.report_refusals()
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
        if self.gov is not None:
            self.gov.close(linger=500)
            self.gov = None

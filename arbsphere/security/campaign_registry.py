"""The campaign registry: the run's credential authority and the keeper of its governance ledger.

Runs in the rig's process (a thread) for the length of one campaign run:

- **Authority.** Generates the run's authority key and session id, an identity for every role
  (private keys into a private directory outside the result set, mode 0700/0600), issues each a
  short-lived credential, and writes the public roster (``identities.json``).
- **Registry channel.** A ROUTER (CurveZMQ server; ZAP admits every role of the roster) where
  roles say HELLO, send governance events, renew their credential at half-life (the rotated
  credential goes to the role and to every peer) and answer checkpoint signing requests.
- **Ledger.** Every governance event goes to ``ledger/`` (hash chain + RFC 6962 Merkle tree).
  Every ``checkpoint_interval_s`` (and at the end) the registry asks the coordinator to sign
  the current size and root and the venues to co-sign, each with the consistency proof from
  the checkpoint they signed last; the checkpoint is written with the signatures that verify.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from arbsphere.clock import Clock
from arbsphere.errors import CredentialError, DecodeError, LedgerError, MessageRefused
from arbsphere.runtime import write_json_atomic
from arbsphere.security.credentials import CampaignAuthority, Credential, needs_rotation
from arbsphere.security.governance_frames import FrameCodec, FrameKind, canonical_json
from arbsphere.security.identity import Role, RoleIdentity
from arbsphere.security.ledger import EventKind, LedgerWriter
from arbsphere.security.role_security import GOVERNANCE, RoleSecurity, SecuritySettings
from arbsphere.security.roster import Roster
from arbsphere.security.settings import SecurityConfig
from arbsphere.sender_ids import REGISTRY_SENDER_ID

REGISTRY_NAME = "registry"
IDENTITIES_FILE = "identities.json"
LEDGER_DIR = "ledger"
#: how long a checkpoint round waits for signatures
SIGN_TIMEOUT_NS = 2_000_000_000
#: credential validity is judged with this much clock skew allowed (ns)
CREDENTIAL_SKEW_NS = 2_000_000_000


@dataclass(frozen=True)
class Member:
    """A role the registry issues a credential to."""

    name: str
    role: Role
    sender_id: int


@dataclass
class _Round:
    request_id: int
    size: int
    root: bytes
    deadline_ns: int
    waiting: set[str]
    signatures: dict[str, bytes] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


class CampaignRegistry:
    """See the module docstring. ``start`` before the roles, ``finish`` before they stop."""

    def __init__(
        self,
        run_dir: Path,
        settings: SecurityConfig,
        members: list[Member],
        clock: Clock,
        *,
        signer: str,
        cosigners: list[str],
        run_details: Mapping[str, Any],
    ) -> None:
        self.run_dir = run_dir
        self.settings = settings
        self.clock = clock
        self.signer = signer
        self.cosigners = list(cosigners)
        self.keys_dir = Path(tempfile.mkdtemp(prefix="arbsphere-keys-"))
        os.chmod(self.keys_dir, 0o700)
        self.authority = CampaignAuthority(Ed25519PrivateKey.generate(), clock)
        self.session = os.urandom(16)
        self.members = {m.name: m for m in members}
        me = Member(REGISTRY_NAME, Role.AUTHORITY, REGISTRY_SENDER_ID)
        self.members[REGISTRY_NAME] = me
        self.ledger = LedgerWriter(run_dir / LEDGER_DIR, clock)
        self.ledger.append(
            EventKind.RUN_START,
            REGISTRY_SENDER_ID,
            0,
            {
                **run_details,
                "session": self.session.hex(),
                "authority": self.authority.did,
                "transport": settings.transport,
                "tags": settings.tags,
                "attest_plan_deltas": settings.attest_plan_deltas,
            },
        )
        self.roster = Roster(self.session, self.authority.public_key_raw)
        validity = round(settings.credential_validity_s * 1e9)
        for m in self.members.values():
            identity = RoleIdentity.generate(m.name, m.role)
            identity.save(self.keys_dir)
            credential = self.authority.issue(identity.public(), m.role, validity)
            self._add_credential(m, credential, EventKind.CREDENTIAL_ISSUED)
        self.write_roster()
        self._security: RoleSecurity | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._final: dict[str, Any] = {}
        self.joined: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self._round: _Round | None = None
        self._request_id = 0
        self._last_cp_size = -1
        self._next_cp_ns = 0
        self._last_signed_by: dict[str, int] = {}
        self._revocations_due = False
        #: after the final checkpoint: events are counted (``events_after_close``), not ledgered
        self._closed = False
        self.endpoint = ""
        self.error: BaseException | None = None

    # --- credentials -------------------------------------------------------------------------
    def _add_credential(self, m: Member, credential: Credential, kind: EventKind) -> None:
        self.roster.add(m.name, m.sender_id, credential)
        self.ledger.append(
            kind,
            REGISTRY_SENDER_ID,
            m.sender_id,
            {
                "name": m.name,
                "role": str(m.role),
                "did": credential.did,
                "serial": credential.serial,
                "not_before_ns": credential.not_before_ns,
                "not_after_ns": credential.not_after_ns,
            },
        )

    def write_roster(self) -> None:
        write_json_atomic(self.run_dir / IDENTITIES_FILE, self.roster.to_json())

    def role_settings(self, name: str) -> SecuritySettings:
        """The ``security`` table of role ``name``'s configuration."""
        s = self.settings
        return SecuritySettings(
            name=name,
            keys_dir=self.keys_dir,
            roster=self.roster.to_json(),
            registry_name=REGISTRY_NAME,
            registry_endpoint=self.endpoint,
            transport=s.transport,
            tags=s.tags,
            attest_plan_deltas=s.attest_plan_deltas,
            replay_window=s.replay_window,
            max_past_ns=round(s.max_past_ms * 1e6),
            max_future_ns=round(s.max_future_ms * 1e6),
            credential_skew_ns=CREDENTIAL_SKEW_NS,
        )

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {
            name: Ed25519PublicKey.from_public_bytes(e.credential.subject_public)
            for name, e in self.roster.entries.items()
        }

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Bind the registry socket and start the thread (``endpoint`` is then known)."""
        ctx: zmq.Context[Any] = zmq.Context()
        settings = dataclasses.replace(
            self.role_settings(REGISTRY_NAME), registry_endpoint="inproc://unused"
        )
        sec = RoleSecurity(settings, self.clock, ctx, source="registry")
        sec.sink = self._own_event  # the registry's own refusals (ZAP, governance tags)
        sock: zmq.Socket[bytes] = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.LINGER, 500)
        sec.server(sock, "governance", [Role.COORDINATOR, Role.VENUE, Role.BROKER])
        sock.bind("tcp://127.0.0.1:*")
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        names = [n for n in self.members if n != REGISTRY_NAME]
        self._guard = sec.guard(GOVERNANCE, names)
        self._sealers = {n: sec.sealer(GOVERNANCE, n) for n in names}
        self._codec = FrameCodec(REGISTRY_SENDER_ID)
        self._security, self._sock, self._ctx = sec, sock, ctx
        self._next_cp_ns = self.clock.now_ns() + round(self.settings.checkpoint_interval_s * 1e9)
        self._thread = threading.Thread(target=self._run, name="campaign-registry", daemon=True)
        self._thread.start()

    def note(self, kind: EventKind, subject: int, details: Mapping[str, Any]) -> None:
        """Ledger an event the rig itself observed (e.g. a role that died)."""
        with contextlib.suppress(LedgerError):
            self.ledger.append(kind, REGISTRY_SENDER_ID, subject, details)

    def _own_event(self, kind: EventKind, subject: int, details: Mapping[str, Any]) -> None:
        if self._closed:
            self._count("events_after_close")
        else:
            self.note(kind, subject, details)

    def finish(self, complete: bool, reason: str, timeout_s: float = 5.0) -> dict[str, Any]:
        """End of run (roles still up): RUN_STOP, a final signed checkpoint covering every
        entry, close the ledger. Returns the ledger summary for the manifest."""
        self._final = {"complete": complete, "reason": reason}
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s + 5.0)
        else:
            self._finish_ledger()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        cps = self.ledger.checkpoints
        last = cps[-1] if cps else None
        return {
            "authority_did": self.authority.did,
            "session": self.session.hex(),
            "dir": LEDGER_DIR,
            "size": self.ledger.size,
            "root": self.ledger.root_at(self.ledger.size).hex(),
            "checkpoints": len(cps),
            "final_checkpoint_size": last.size if last else None,
            "signer": self.signer,
            "cosigners": self.cosigners,
            "final_cosigners": [c.signer for c in last.cosignatures] if last else [],
            "joined": sorted(self.joined),
            "registry": dict(sorted(self.counts.items())),
        }

    def cleanup(self) -> None:
        """Delete the private key directory (call after every role has stopped)."""
        shutil.rmtree(self.keys_dir, ignore_errors=True)

    # --- the thread --------------------------------------------------------------------------
    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if poller.poll(50):
                    self._drain()
                self._periodic()
            self._final_checkpoint()
        except BaseException as exc:
            self.error = exc
        finally:
            self._finish_ledger()
            assert self._security is not None
            self._security.close()
            self._sock.close(linger=200)
            self._ctx.term()

    def _finish_ledger(self) -> None:
        with contextlib.suppress(LedgerError):
            self.ledger.close()
        self.write_roster()

    def _drain(self) -> None:
        while True:
            try:
                ident, raw = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                self._count("malformed_multipart")
                continue
            msg = self._guard.open(raw)
            if msg is None:
                continue
            try:
                frame = self._codec.decode(msg)
                self._on_frame(ident.decode("ascii", "replace"), frame)
            except (DecodeError, CredentialError, LedgerError) as exc:
                self._count("rejected")
                self.note(
                    EventKind.MESSAGE_REFUSED,
                    0,
                    {
                        "at": REGISTRY_NAME,
                        "channel": "governance",
                        "reason": "rejected",
                        "detail": str(exc),
                    },
                )

    def _member_of(self, ident: str, sender_id: int) -> Member:
        m = self.members.get(ident)
        if m is None or m.sender_id != sender_id:
            raise CredentialError(
                f"routing id {ident!r} does not belong to sender {sender_id}", reason="conflict"
            )
        return m

    def _send(self, name: str, kind: FrameKind, body: bytes, **header: int) -> None:
        raw = self._codec.encode(kind, body, self.clock.now_ns(), **header)
        sealer = self._sealers.get(name)
        if sealer is not None:
            raw = sealer.seal(raw)
        try:
            self._sock.send_multipart([name.encode(), raw], zmq.NOBLOCK)
        except zmq.ZMQError:
            self._count(f"unroutable_{kind.name.lower()}")

    def _on_frame(self, ident: str, frame: Any) -> None:
        m = self._member_of(ident, frame.sender_id)
        if frame.kind == FrameKind.HELLO and self._closed:
            self._count("hello_after_close")
        elif frame.kind == FrameKind.HELLO:
            self.joined[m.name] = frame.origin_ts_ns
            self.ledger.append(
                EventKind.ROLE_JOINED,
                m.sender_id,
                m.sender_id,
                {"name": m.name, "role": str(m.role), **frame.json()},
            )
        elif frame.kind == FrameKind.EVENT and self._closed:
            self._count("events_after_close")
        elif frame.kind == FrameKind.EVENT:
            try:
                kind = EventKind(frame.event_kind)
            except ValueError:
                raise DecodeError("bad_event_kind", 0, f"event kind {frame.event_kind}") from None
            details = frame.json()
            if not isinstance(details, dict):
                raise DecodeError("bad_event", 0, "event details must be a JSON object")
            self.ledger.append(kind, m.sender_id, frame.subject, details)
            self._count("events")
        elif frame.kind == FrameKind.RENEW:
            self._renew(m, Credential.from_bytes(frame.body))
        elif frame.kind == FrameKind.CHECKPOINT_SIGNATURE:
            self._on_signature(m, frame.request_id, frame.body)
        else:
            raise DecodeError("unexpected_kind", 0, f"registry got {frame.kind.name}")

    def _renew(self, m: Member, current: Credential) -> None:
        held = self.roster.entries[m.name].credential
        if current != held:
            raise CredentialError(
                f"{m.name}: renewal of a credential it does not hold", reason="conflict"
            )
        self._rotate(m, held)

    def _rotate(self, m: Member, held: Credential) -> None:
        """Rotate ``held``, ledger it, adopt it in the registry's own checks (its guard and
        ZAP judge roles by it) and push it to every role that joined."""
        rotated = self.authority.rotate(held)
        self._add_credential(m, rotated, EventKind.CREDENTIAL_ROTATED)
        self.write_roster()
        assert self._security is not None
        self._security.learn_credential(rotated)
        body = rotated.to_bytes()
        for name in self._sealers:
            if name in self.joined:
                self._send(name, FrameKind.CREDENTIAL, body)

    def revoke(self, name: str) -> None:
        """Revoke every credential of ``name`` and push the new revocation list (thread-safe
        enough for tests and operators: the authority locks; the send happens in the thread's
        next periodic pass)."""
        for c in self.roster.entries[name].credentials:
            self.authority.revoke(c.serial)
            self.ledger.append(
                EventKind.CREDENTIAL_REVOKED,
                REGISTRY_SENDER_ID,
                self.members[name].sender_id,
                {"name": name, "serial": c.serial},
            )
        self._revocations_due = True

    def _periodic(self) -> None:
        now = self.clock.now_ns()
        assert self._security is not None
        own = self.roster.entries[REGISTRY_NAME].credential
        if needs_rotation(own, now):  # the registry's credential too: roles judge its frames
            self._rotate(self.members[REGISTRY_NAME], own)
        if self._revocations_due:
            self._revocations_due = False
            signed = self.authority.revocation_list()
            self._security.learn_revocations(signed)
            body = signed.to_bytes()
            for name in self._sealers:
                self._send(name, FrameKind.REVOCATIONS, body)
        self._security.tick()  # ledgers the registry's own ZAP and message refusals
        r = self._round
        if r is not None and (not r.waiting or now >= r.deadline_ns):
            self._close_round()
        if self._round is None and now >= self._next_cp_ns:
            self._next_cp_ns = now + round(self.settings.checkpoint_interval_s * 1e9)
            if self.ledger.size != self._last_cp_size:
                self._open_round(now)

    def _signers(self) -> list[str]:
        """Joined signers whose credential is good now (a revoked or expired one's answer
        would be refused: no use waiting for it)."""
        return [n for n in [self.signer, *self.cosigners] if n in self.joined and self._may_sign(n)]

    def _may_sign(self, name: str) -> bool:
        assert self._security is not None
        try:
            self._security.check_sender_now(self.members[name].sender_id)
        except MessageRefused:
            return False
        return True

    def _open_round(self, now: int) -> None:
        size = self.ledger.size
        root = self.ledger.root_at(size)
        self._request_id += 1
        r = _Round(self._request_id, size, root, now + SIGN_TIMEOUT_NS, set(self._signers()))
        for name in r.waiting:
            old = self._last_signed_by.get(name, 0)
            proof = self.ledger.consistency_proof(old, size) if old else []
            self._send(
                name,
                FrameKind.SIGN_CHECKPOINT,
                canonical_json(
                    {
                        "size": size,
                        "root": root.hex(),
                        "old_size": old,
                        "proof": [p.hex() for p in proof],
                    }
                ),
                request_id=r.request_id,
            )
        self._round = r

    def _on_signature(self, m: Member, request_id: int, body: bytes) -> None:
        r = self._round
        if r is None or request_id != r.request_id or m.name not in r.waiting:
            self._count("late_signatures")
            return
        r.waiting.discard(m.name)
        if len(body) == 64:
            r.signatures[m.name] = body
        else:
            r.refused[m.name] = body.decode("utf-8", "replace")

    def _close_round(self) -> None:
        r = self._round
        assert r is not None
        self._round = None
        if r.refused:
            self.note(
                EventKind.CREDENTIAL_REFUSED,
                0,
                {
                    "at": REGISTRY_NAME,
                    "reason": "checkpoint_refused",
                    "size": r.size,
                    "by": dict(sorted(r.refused.items())),
                },
            )
        if self.signer not in r.signatures:
            self._count("checkpoints_unsigned")
            return
        cos = {n: s for n, s in r.signatures.items() if n != self.signer}
        self.ledger.add_checkpoint(
            r.size, self.signer, r.signatures[self.signer], cos, self.public_keys()
        )
        for name in r.signatures:
            self._last_signed_by[name] = r.size
        self._last_cp_size = r.size
        self._count("checkpoints")

    def _wait_round(self, poller: zmq.Poller) -> None:
        while self._round is not None:
            if poller.poll(20):
                self._drain()
            r = self._round
            if r is not None and (not r.waiting or self.clock.now_ns() >= r.deadline_ns):
                self._close_round()

    def _final_checkpoint(self) -> None:
        """RUN_STOP and a checkpoint covering every entry (events that keep arriving while
        it is signed get another round, up to a few), then the ledger takes no more."""
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        self._wait_round(poller)
        for name, m in self.members.items():
            if name in self.joined:
                self.ledger.append(
                    EventKind.ROLE_LEFT,
                    REGISTRY_SENDER_ID,
                    m.sender_id,
                    {"name": name, "at": "run end"},
                )
        assert self._security is not None
        self._security.report_refusals()
        self.ledger.append(EventKind.RUN_STOP, REGISTRY_SENDER_ID, 0, dict(self._final))
        for _ in range(5):
            unsigned = self.counts.get("checkpoints_unsigned", 0)
            self._open_round(self.clock.now_ns())
            self._wait_round(poller)
            if self._last_cp_size == self.ledger.size:
                break
            if self.counts.get("checkpoints_unsigned", 0) > unsigned:
                break  # the coordinator does not sign (gone): verification will say so
        self._closed = True


def make_members(
    coordinator: str, coordinator_id: int, venues: Mapping[str, int], broker: str, broker_id: int
) -> list[Member]:
    out = [Member(coordinator, Role.COORDINATOR, coordinator_id)]
    out += [Member(n, Role.VENUE, sid) for n, sid in venues.items()]
    out.append(Member(broker, Role.BROKER, broker_id))
    return out

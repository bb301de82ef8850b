"""The run's public roster: who took part, under which credentials, issued by which authority.

Written by the campaign registry as ``identities.json`` in the result set (public parts only:
no private key ever goes there) and handed to every role in its configuration, so a role knows
its peers' CURVE and tag keys before it connects. Each entry lists every credential the role
held, in issue order (rotations append). Format ``arbsphere-identities-v1``::

    {"format": "arbsphere-identities-v1", "session": hex,
     "authority": {"did": "did:key:z...", "public_key": hex32},
     "roles": {name: {"role": str, "sender_id": int, "did": str, "credentials": [hex, ...]}}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arbsphere.errors import CredentialError
from arbsphere.security.credentials import Credential
from arbsphere.security.identity import Role, did_key_from_public, public_from_did_key

ROSTER_FORMAT = "arbsphere-identities-v1"


@dataclass
class RosterEntry:
    """One role of the run: its name, role, envelope sender id and credentials (newest last)."""

    name: str
    role: Role
    sender_id: int
    credentials: list[Credential] = field(default_factory=list)

    @property
    def credential(self) -> Credential:
        """The newest credential."""
        return self.credentials[-1]

    @property
    def did(self) -> str:
        return self.credential.did


@dataclass
class Roster:
    """Every role of one run (see module docstring)."""

    session: bytes
    authority_public: bytes
    entries: dict[str, RosterEntry] = field(default_factory=dict)

    @property
    def authority_did(self) -> str:
        return did_key_from_public(self.authority_public)

    def add(self, name: str, sender_id: int, credential: Credential) -> None:
        """Add a credential of ``name`` (a new role, or a rotation of a known one)."""
        if credential.name != name:
            raise CredentialError(
                f"credential names {credential.name!r}, roster entry is {name!r}",
                reason="malformed",
            )
        entry = self.entries.get(name)
        if entry is None:
            self.entries[name] = RosterEntry(name, credential.role, sender_id, [credential])
            return
        if entry.sender_id != sender_id or entry.role != credential.role:
            raise CredentialError(
                f"{name}: credential for role {credential.role} / sender {sender_id} does not "
                f"match the roster's {entry.role} / {entry.sender_id}",
                reason="conflict",
            )
        entry.credentials.append(credential)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": ROSTER_FORMAT,
            "session": self.session.hex(),
            "authority": {"did": self.authority_did, "public_key": self.authority_public.hex()},
            "roles": {
                e.name: {
                    "role": str(e.role),
                    "sender_id": e.sender_id,
                    "did": e.did,
                    "credentials": [c.to_bytes().hex() for c in e.credentials],
                }
                for e in sorted(self.entries.values(), key=lambda e: e.sender_id)
            },
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str = "roster") -> Roster:
        """Parse (structure only: signatures are the verifier's business); errors name the
        source and the entry."""
        try:
            if data.get("format") != ROSTER_FORMAT:
                raise ValueError(f"format {data.get('format')!r} is not {ROSTER_FORMAT!r}")
            authority = bytes.fromhex(data["authority"]["public_key"])
            if public_from_did_key(data["authority"]["did"]) != authority:
                raise ValueError("authority did and public_key disagree")
            roster = cls(bytes.fromhex(data["session"]), authority)
            for name, e in data["roles"].items():
                creds = [Credential.from_bytes(bytes.fromhex(h)) for h in e["credentials"]]
                if not creds:
                    raise ValueError(f"role {name!r} has no credential")
                for c in creds:
                    roster.add(name, int(e["sender_id"]), c)
                if roster.entries[name].did != e["did"] or str(creds[0].role) != e["role"]:
                    raise ValueError(f"role {name!r}: did or role disagree with its credential")
            return roster
        except CredentialError as exc:
            raise CredentialError(f"{source}: {exc}", reason=exc.reason) from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CredentialError(
                f"{source}: malformed roster: {exc!r}", reason="malformed"
            ) from exc

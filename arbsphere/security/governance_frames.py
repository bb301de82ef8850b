"""The governance channel's messages: what a role and the campaign registry say to each other.

Every frame is a registry message of schema ``GovernanceFrame`` (envelope + header + body
bytes, see ``arbsphere/contracts.toml``); on a secured run it is tagged like any other pipeline
message. Kinds:

- ``HELLO`` role → registry: "I am up" (body: JSON {"name", "serial"}); ledgered as ROLE_JOINED.
- ``EVENT`` role → registry: one governance event for the ledger (``event_kind``, ``subject``,
  body: canonical JSON details).
- ``RENEW`` role → registry: renew my credential at half-life (body: current credential bytes).
- ``CREDENTIAL`` registry → role: a credential, the role's own renewed one or a peer's rotated
  one (body: credential bytes).
- ``REVOCATIONS`` registry → role: the authority's signed revocation list (body: its bytes).
- ``SIGN_CHECKPOINT`` registry → signer: a ledger checkpoint to sign, with the consistency proof
  from the last checkpoint this signer signed (body: JSON {"size", "root", "old_size", "proof"}).
- ``CHECKPOINT_SIGNATURE`` signer → registry: the Ed25519 signature (body: 64 bytes), or a
  refusal (body: JSON {"refused": reason}) when the proof did not verify.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from arbsphere.contracts import SchemaRegistry, default_registry
from arbsphere.errors import DecodeError


class FrameKind(IntEnum):
    """``GovernanceFrame.kind`` (a wire value: never renumber)."""

    EVENT = 1
    RENEW = 2
    CREDENTIAL = 3
    REVOCATIONS = 4
    SIGN_CHECKPOINT = 5
    CHECKPOINT_SIGNATURE = 6
    HELLO = 7


default_registry().check_enum(FrameKind, "GovernanceFrameKind")  # written out for typing


@dataclass(frozen=True)
class GovernanceFrame:
    """One decoded governance frame."""

    kind: FrameKind
    sender_id: int
    nonce: int
    origin_ts_ns: int
    event_kind: int
    subject: int
    request_id: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON; a body that is not JSON is a :class:`DecodeError`."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DecodeError(
                "bad_json", 0, f"governance frame {self.kind.name}: body is not JSON: {exc}"
            ) from exc


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same details always give the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class FrameCodec:
    """Encodes and decodes ``GovernanceFrame`` messages of one sender (its nonce counter)."""

    def __init__(self, sender_id: int, registry: SchemaRegistry | None = None) -> None:
        self.reg = registry if registry is not None else default_registry()
        self.schema = self.reg.schema("GovernanceFrame")
        self.sender_id = sender_id
        self.nonce = 0

    def encode(
        self,
        kind: FrameKind,
        body: bytes,
        now_ns: int,
        *,
        event_kind: int = 0,
        subject: int = 0,
        request_id: int = 0,
    ) -> bytes:
        hdr = np.zeros(1, self.schema.header.dtype)
        hdr["kind"] = int(kind)
        hdr["event_kind"] = event_kind
        hdr["subject"] = subject
        hdr["request_id"] = request_id
        hdr["body_len"] = len(body)
        assert self.schema.item is not None
        items = np.frombuffer(body, self.schema.item.dtype)
        self.nonce += 1
        return self.reg.encode(
            self.schema, hdr, items, sender_id=self.sender_id, nonce=self.nonce,
            origin_ts_ns=now_ns,
        )  # fmt: skip

    def decode(self, raw: bytes | memoryview) -> GovernanceFrame:
        """Decode one frame; anything else (another schema, an unknown kind) is a
        :class:`DecodeError` naming it."""
        msg = self.reg.decode(raw)
        if msg.schema.name != "GovernanceFrame":
            raise DecodeError(
                "unexpected_schema", 4, f"governance channel got a {msg.schema.name} message"
            )
        h = msg.header[0]
        try:
            kind = FrameKind(int(h["kind"]))
        except ValueError:
            raise DecodeError(
                "unknown_kind", self.reg.envelope.size, f"governance frame kind {int(h['kind'])}"
            ) from None
        return GovernanceFrame(
            kind=kind,
            sender_id=msg.sender_id,
            nonce=msg.nonce,
            origin_ts_ns=msg.origin_ts_ns,
            event_kind=int(h["event_kind"]),
            subject=int(h["subject"]),
            request_id=int(h["request_id"]),
            body=msg.items.tobytes(),
        )

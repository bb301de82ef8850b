"""Short-lived role credentials: the campaign authority that issues, rotates and revokes them,
the verifier that checks them, and the directory of credentials a server knows.

Credential (224 bytes, little-endian, signed by the authority's Ed25519 key, RFC 8032)::

    offset size field
         0    4 magic            b"ASCR"
         4    1 version          u8, 1
         5    1 role             u8, Role.code (1 authority, 2 coordinator, 3 venue, 4 broker,
                                 5 device, 6 recorder)
         6    2 reserved         zero
         8    8 serial           u64, unique per authority, > 0
        16    8 not_before_ns    i64, rig timebase (CLOCK_REALTIME ns), inclusive
        24    8 not_after_ns     i64, exclusive; > not_before_ns
        32   32 subject          Ed25519 public key (the did:key)
        64   32 curve            CurveZMQ public key, raw (Z85 on sockets)
        96   32 tag              X25519 public key for per-link tag agreement
       128   32 name             UTF-8, zero-padded, no NUL inside
       160   64 signature        Ed25519 over bytes 0..159

Revocation list (signed by the same key; the magics keep the two formats apart)::

         0    4 magic            b"ASRL"
         4    1 version          u8, 1
         5    3 reserved         zero
         8    8 sequence         u64, +1 per revocation
        16    8 issued_at_ns     i64
        24    4 count            u32
        28    4 reserved         zero
        32  8*n serials          u64 each, strictly increasing
    32+8*n   64 signature        Ed25519 over everything before it

Time never comes from the wall clock here: the authority and the verifier read an injected
:class:`~arbsphere.clock.Clock`; :func:`needs_rotation` takes ``now_ns``.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from zmq.utils import z85

from arbsphere.clock import Clock
from arbsphere.errors import CredentialError
from arbsphere.security.identity import (
    KEY_BYTES,
    PublicIdentity,
    Role,
    check_name,
    did_key_from_public,
    ed25519_public_raw,
)

DEFAULT_VALIDITY_NS = 15 * 60 * 10**9
CREDENTIAL_MAGIC = b"ASCR"
CREDENTIAL_VERSION = 1
REVOCATION_MAGIC = b"ASRL"
REVOCATION_VERSION = 1
SIGNATURE_BYTES = 64
ALL_ROLES: frozenset[Role] = frozenset(Role)

#: Refusal reasons of :meth:`CredentialVerifier.check`, in the order they are checked.
CHECK_ORDER = ("bad_signature", "revoked", "not_yet_valid", "expired", "wrong_role")
#: Every reason the verifier counts (the ZAP authenticator adds ``not_curve`` and ``error``).
REFUSAL_REASONS = (
    *CHECK_ORDER,
    "unknown",
    "conflict",
    "forged_revocation_list",
    "stale_revocation_list",
)

_BODY = struct.Struct("<4sBBHQqq32s32s32s32s")
CREDENTIAL_BYTES = _BODY.size + SIGNATURE_BYTES
_RL_HEAD = struct.Struct("<4sB3sQqI4s")
_U64_MAX = 2**64 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_VERIFIED_CACHE_MAX = 4096


def _malformed(what: str, offset: int, detail: str) -> CredentialError:
    return CredentialError(f"malformed {what} at offset {offset}: {detail}", reason="malformed")


@dataclass(frozen=True)
class Credential:
    """A signed binding of subject keys, name and role to a validity window (layout above).

    ``curve_public`` is raw 32 bytes; :attr:`curve_public_z85` is the socket/ZAP form."""

    role: Role
    serial: int
    not_before_ns: int
    not_after_ns: int
    subject_public: bytes
    curve_public: bytes
    tag_public: bytes
    name: str
    signature: bytes = bytes(SIGNATURE_BYTES)
    version: int = CREDENTIAL_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))
        if self.version != CREDENTIAL_VERSION:
            raise ValueError(f"credential version {self.version} is not {CREDENTIAL_VERSION}")
        if not 0 < self.serial <= _U64_MAX:
            raise ValueError(f"serial {self.serial} outside 1..2^64-1")
        for t in (self.not_before_ns, self.not_after_ns):
            if not _I64_MIN <= t <= _I64_MAX:
                raise ValueError(f"time {t} ns does not fit an i64")
        if self.not_after_ns <= self.not_before_ns:
            raise ValueError(
                f"not_after_ns {self.not_after_ns} must exceed not_before_ns {self.not_before_ns}"
            )
        for field_name in ("subject_public", "curve_public", "tag_public"):
            if len(getattr(self, field_name)) != KEY_BYTES:
                raise ValueError(f"{field_name} must be {KEY_BYTES} raw bytes")
        check_name(self.name)
        if len(self.signature) != SIGNATURE_BYTES:
            raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")

    @property
    def did(self) -> str:
        """The subject's did:key."""
        return did_key_from_public(self.subject_public)

    @property
    def curve_public_z85(self) -> str:
        """The CURVE public key as pyzmq and ZAP present it (40 Z85 characters)."""
        return z85.encode(self.curve_public).decode("ascii")

    @property
    def validity_ns(self) -> int:
        """Length of the validity window."""
        return self.not_after_ns - self.not_before_ns

    @property
    def rotate_at_ns(self) -> int:
        """Half-life: the time from which :func:`needs_rotation` is true."""
        return self.not_before_ns + self.validity_ns // 2

    def describe(self) -> str:
        """Short text naming the credential in error messages."""
        return f"credential serial {self.serial} ({self.name}, {self.role}, {self.did})"

    def body(self) -> bytes:
        """The signed bytes (0..159)."""
        return _BODY.pack(
            CREDENTIAL_MAGIC,
            self.version,
            self.role.code,
            0,
            self.serial,
            self.not_before_ns,
            self.not_after_ns,
            self.subject_public,
            self.curve_public,
            self.tag_public,
            self.name.encode("utf-8"),
        )

    def to_bytes(self) -> bytes:
        """The 224-byte wire form."""
        return self.body() + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> Credential:
        """Parse the wire form; ``CredentialError(reason="malformed")`` names the offset.

        Does not verify the signature (that is :meth:`CredentialVerifier.check`)."""
        data = bytes(data)
        if len(data) != CREDENTIAL_BYTES:
            raise _malformed(
                "credential",
                min(len(data), CREDENTIAL_BYTES),
                f"length {len(data)}, expected {CREDENTIAL_BYTES}",
            )
        (magic, version, role_code, reserved, serial, nb, na, subject, curve, tag, raw_name) = (
            _BODY.unpack_from(data)
        )
        if magic != CREDENTIAL_MAGIC:
            raise _malformed("credential", 0, f"magic {magic!r}, expected {CREDENTIAL_MAGIC!r}")
        if version != CREDENTIAL_VERSION:
            raise _malformed("credential", 4, f"version {version}, expected {CREDENTIAL_VERSION}")
        try:
            role = Role.from_code(role_code)
        except KeyError:
            raise _malformed("credential", 5, f"unknown role code {role_code}") from None
        if reserved != 0:
            raise _malformed("credential", 6, f"reserved bytes are {reserved:#06x}, expected 0")
        if serial == 0:
            raise _malformed("credential", 8, "serial 0 is never issued")
        if na <= nb:
            raise _malformed("credential", 24, f"not_after_ns {na} <= not_before_ns {nb}")
        name = _decode_name(raw_name)
        return cls(
            role=role,
            serial=serial,
            not_before_ns=nb,
            not_after_ns=na,
            subject_public=subject,
            curve_public=curve,
            tag_public=tag,
            name=name,
            signature=data[_BODY.size :],
        )


def _decode_name(raw: bytes) -> str:
    name_offset = 128
    stripped = raw.rstrip(b"\0")
    nul = stripped.find(b"\0")
    if nul >= 0:
        raise _malformed("credential", name_offset + nul, "NUL inside the name")
    try:
        name = stripped.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed("credential", name_offset + exc.start, f"name not UTF-8: {exc}") from exc
    try:
        return check_name(name)
    except ValueError as exc:
        raise _malformed("credential", name_offset, str(exc)) from exc


def needs_rotation(credential: Credential, now_ns: int) -> bool:
    """True from the credential's half-life on (``not_before + (not_after - not_before)//2``)."""
    return now_ns >= credential.rotate_at_ns


@dataclass(frozen=True)
class SignedRevocationList:
    """The authority's revoked serials, sequence-numbered and signed (layout above)."""

    sequence: int
    issued_at_ns: int
    serials: tuple[int, ...]
    signature: bytes = bytes(SIGNATURE_BYTES)

    def __post_init__(self) -> None:
        if not 0 <= self.sequence <= _U64_MAX:
            raise ValueError(f"sequence {self.sequence} outside u64")
        if any(b <= a for a, b in zip(self.serials, self.serials[1:], strict=False)):
            raise ValueError("serials must be strictly increasing")
        if self.serials and not (self.serials[0] > 0 and self.serials[-1] <= _U64_MAX):
            raise ValueError("serials must be in 1..2^64-1")
        if len(self.signature) != SIGNATURE_BYTES:
            raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")

    @property
    def revoked(self) -> frozenset[int]:
        """The revoked serials as a set."""
        return frozenset(self.serials)

    def body(self) -> bytes:
        """The signed bytes."""
        head = _RL_HEAD.pack(
            REVOCATION_MAGIC,
            REVOCATION_VERSION,
            bytes(3),
            self.sequence,
            self.issued_at_ns,
            len(self.serials),
            bytes(4),
        )
        return head + struct.pack(f"<{len(self.serials)}Q", *self.serials)

    def to_bytes(self) -> bytes:
        """Wire form."""
        return self.body() + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedRevocationList:
        """Parse the wire form; ``CredentialError(reason="malformed")`` names the offset."""
        data = bytes(data)
        what = "revocation list"
        if len(data) < _RL_HEAD.size + SIGNATURE_BYTES:
            raise _malformed(what, len(data), f"{len(data)} bytes is shorter than the minimum")
        magic, version, res1, sequence, issued_at, count, res2 = _RL_HEAD.unpack_from(data)
        if magic != REVOCATION_MAGIC:
            raise _malformed(what, 0, f"magic {magic!r}, expected {REVOCATION_MAGIC!r}")
        if version != REVOCATION_VERSION:
            raise _malformed(what, 4, f"version {version}, expected {REVOCATION_VERSION}")
        if res1 != bytes(3):
            raise _malformed(what, 5, "reserved bytes not zero")
        if res2 != bytes(4):
            raise _malformed(what, 28, "reserved bytes not zero")
        expected = _RL_HEAD.size + 8 * count + SIGNATURE_BYTES
        if len(data) != expected:
            raise _malformed(what, 24, f"count {count} needs {expected} bytes, got {len(data)}")
        serials = struct.unpack_from(f"<{count}Q", data, _RL_HEAD.size)
        for i, serial in enumerate(serials):
            if serial == 0 or (i > 0 and serial <= serials[i - 1]):
                raise _malformed(
                    what, _RL_HEAD.size + 8 * i, f"serial {serial} not increasing or zero"
                )
        return cls(sequence, issued_at, tuple(serials), data[len(data) - SIGNATURE_BYTES :])


class CampaignAuthority:
    """The registry's signing key: issues, rotates and revokes credentials.

    ``next_serial`` lets a restarted authority continue its serial numbering (serials must
    never repeat under one key)."""

    def __init__(
        self, signing_key: Ed25519PrivateKey, clock: Clock, *, next_serial: int = 1
    ) -> None:
        if next_serial < 1:
            raise ValueError(f"next_serial must be >= 1, got {next_serial}")
        self._key = signing_key
        self._clock = clock
        self._next_serial = next_serial
        self._revoked: set[int] = set()
        self._sequence = 0
        self._lock = threading.Lock()

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The key verifiers check signatures with."""
        return self._key.public_key()

    @property
    def public_key_raw(self) -> bytes:
        """The same, raw 32 bytes."""
        return ed25519_public_raw(self._key)

    @property
    def did(self) -> str:
        """The authority's did:key."""
        return did_key_from_public(self.public_key_raw)

    def sign_document(self, document: bytes) -> bytes:
        """Sign a JSON document the run publishes (the result set's ``manifest.json``).

        Refused for bytes that start like a credential or a revocation list, so a signed
        document can never pass for either (JSON starts with ``{``)."""
        if not document.lstrip().startswith(b"{"):
            raise CredentialError("the authority signs JSON documents only", reason="malformed")
        return self._key.sign(document)

    def issue(
        self,
        identity: PublicIdentity,
        role: Role | None = None,
        validity_ns: int = DEFAULT_VALIDITY_NS,
        *,
        not_before_ns: int | None = None,
    ) -> Credential:
        """A credential for ``identity`` valid ``[not_before_ns, +validity_ns)``; the window
        starts now unless ``not_before_ns`` is given. ``role`` defaults to the identity's own
        and must equal it (``CredentialError(reason="wrong_role")`` otherwise)."""
        role = identity.role if role is None else Role(role)
        if role != identity.role:
            raise CredentialError(
                f"identity {identity.name!r} declares role {identity.role}, asked for {role}",
                reason="wrong_role",
            )
        if validity_ns <= 0:
            raise ValueError(f"validity_ns must be > 0, got {validity_ns}")
        start = self._clock.now_ns() if not_before_ns is None else not_before_ns
        unsigned = Credential(
            role=role,
            serial=self._take_serial(),
            not_before_ns=start,
            not_after_ns=start + validity_ns,
            subject_public=identity.signing_public,
            curve_public=identity.curve_public_raw,
            tag_public=identity.tag_public,
            name=identity.name,
        )
        return replace(unsigned, signature=self._key.sign(unsigned.body()))

    def rotate(self, credential: Credential) -> Credential:
        """A new credential for the same subject keys, name and role: new serial, the same
        validity length, starting now. Refuses a credential this authority did not sign
        (``bad_signature``), a revoked one (``revoked``) and an expired one (``expired``:
        the subject needs a fresh :meth:`issue`)."""
        try:
            self.public_key.verify(credential.signature, credential.body())
        except InvalidSignature:
            raise CredentialError(
                f"{credential.describe()}: not signed by this authority", reason="bad_signature"
            ) from None
        if credential.serial in self._revoked:
            raise CredentialError(f"{credential.describe()} is revoked", reason="revoked")
        now = self._clock.now_ns()
        if now >= credential.not_after_ns:
            raise CredentialError(
                f"{credential.describe()} expired at {credential.not_after_ns} ns (now {now} ns)",
                reason="expired",
            )
        unsigned = replace(
            credential,
            serial=self._take_serial(),
            not_before_ns=now,
            not_after_ns=now + credential.validity_ns,
        )
        return replace(unsigned, signature=self._key.sign(unsigned.body()))

    def revoke(self, serial: int) -> None:
        """Revoke ``serial`` (one this authority issued); each new revocation bumps the list's
        sequence. Revoking an already revoked serial changes nothing."""
        with self._lock:
            if not 1 <= serial < self._next_serial:
                raise ValueError(f"serial {serial} was never issued (next is {self._next_serial})")
            if serial not in self._revoked:
                self._revoked.add(serial)
                self._sequence += 1

    @property
    def revoked(self) -> frozenset[int]:
        """Serials revoked so far."""
        return frozenset(self._revoked)

    def revocation_list(self) -> SignedRevocationList:
        """The current revocation list, signed, stamped now."""
        with self._lock:
            unsigned = SignedRevocationList(
                sequence=self._sequence,
                issued_at_ns=self._clock.now_ns(),
                serials=tuple(sorted(self._revoked)),
            )
        return replace(unsigned, signature=self._key.sign(unsigned.body()))

    def _take_serial(self) -> int:
        with self._lock:
            serial = self._next_serial
            self._next_serial += 1
        return serial


class RefusalCounts:
    """Refusals per reason (thread-safe: the ZAP thread and the pipeline both count)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, reason: str) -> None:
        """Count one refusal for ``reason``."""
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + 1

    def __getitem__(self, reason: str) -> int:
        with self._lock:
            return self._counts.get(reason, 0)

    @property
    def total(self) -> int:
        """All refusals."""
        with self._lock:
            return sum(self._counts.values())

    def as_dict(self) -> dict[str, int]:
        """A snapshot ``{reason: count}`` (reasons never refused are absent)."""
        with self._lock:
            return dict(self._counts)


class CredentialVerifier:
    """Checks credentials against the authority key, the clock (± ``skew_ns``), the latest
    revocation list and the roles a caller allows. Every refusal is counted in
    :attr:`counts` before it is raised. Checks run in :data:`CHECK_ORDER` (bad_signature,
    revoked, not_yet_valid, expired, wrong_role); the first failing one is reported. The
    window is ``[not_before - skew, not_after + skew)`` on the injected clock."""

    def __init__(
        self,
        authority_public_key: Ed25519PublicKey | bytes,
        clock: Clock,
        *,
        skew_ns: int,
    ) -> None:
        if isinstance(authority_public_key, bytes):
            authority_public_key = Ed25519PublicKey.from_public_bytes(authority_public_key)
        if skew_ns < 0:
            raise ValueError(f"skew_ns must be >= 0, got {skew_ns}")
        self._authority = authority_public_key
        self.clock = clock
        self.skew_ns = skew_ns
        self.counts = RefusalCounts()
        self._revocations: tuple[int, frozenset[int]] = (0, frozenset())
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def revocation_sequence(self) -> int:
        """Sequence of the newest revocation list accepted (0 before any)."""
        return self._revocations[0]

    @property
    def revoked(self) -> frozenset[int]:
        """Every serial seen revoked (revocation is monotonic: never un-revoked)."""
        return self._revocations[1]

    def refusal(
        self, credential: Credential, allowed_roles: Collection[Role] | None = ALL_ROLES
    ) -> tuple[str, str] | None:
        """``(reason, message)`` the credential would be refused for now, or None. Does not
        count. Check order: bad_signature, revoked, not_yet_valid, expired, wrong_role (a
        forged credential is never reported as anything else; a revoked one is revoked
        whatever its window; ``allowed_roles=None`` skips the role check)."""
        if not self._signature_ok(credential):
            return "bad_signature", f"{credential.describe()}: authority signature does not verify"
        if credential.serial in self._revocations[1]:
            return "revoked", f"{credential.describe()} is revoked"
        now = self.clock.now_ns()
        if now + self.skew_ns < credential.not_before_ns:
            return "not_yet_valid", (
                f"{credential.describe()} is valid from {credential.not_before_ns} ns;"
                f" now {now} ns (skew {self.skew_ns} ns)"
            )
        if now - self.skew_ns >= credential.not_after_ns:
            return "expired", (
                f"{credential.describe()} expired at {credential.not_after_ns} ns;"
                f" now {now} ns (skew {self.skew_ns} ns)"
            )
        if allowed_roles is not None and credential.role not in allowed_roles:
            allowed = ", ".join(sorted(str(r) for r in allowed_roles))
            return "wrong_role", f"{credential.describe()}: role not in {{{allowed}}}"
        return None

    def check(self, credential: Credential, allowed_roles: Collection[Role]) -> None:
        """Return if ``credential`` is acceptable now for one of ``allowed_roles``; otherwise
        count and raise ``CredentialError`` with the first failing reason of
        :meth:`refusal`'s order."""
        found = self.refusal(credential, allowed_roles)
        if found is not None:
            raise self.refuse(*found)

    def refuse(self, reason: str, message: str) -> CredentialError:
        """Count a refusal and return the error to raise (for callers that refuse on their
        own, e.g. an unknown key)."""
        self.counts.add(reason)
        return CredentialError(message, reason=reason)

    def update_revocations(self, signed_list: SignedRevocationList) -> bool:
        """Adopt a newer revocation list; True if it changed anything.

        Refuses (counted) a list whose signature does not verify (``forged_revocation_list``)
        and one older than the current, or of the same sequence with other serials
        (``stale_revocation_list``). The same list again is accepted and changes nothing."""
        try:
            self._authority.verify(signed_list.signature, signed_list.body())
        except InvalidSignature:
            raise self.refuse(
                "forged_revocation_list",
                f"revocation list sequence {signed_list.sequence}: signature does not verify",
            ) from None
        with self._lock:
            sequence, revoked = self._revocations
            if signed_list.sequence < sequence or (
                signed_list.sequence == sequence and signed_list.revoked != revoked
            ):
                raise self.refuse(
                    "stale_revocation_list",
                    f"revocation list sequence {signed_list.sequence} is not newer than the"
                    f" current {sequence}",
                )
            if signed_list.sequence == sequence:
                return False
            self._revocations = (signed_list.sequence, revoked | signed_list.revoked)
            return True

    def _signature_ok(self, credential: Credential) -> bool:
        wire = credential.to_bytes()
        if wire in self._verified:
            return True
        try:
            self._authority.verify(credential.signature, credential.body())
        except InvalidSignature:
            return False
        with self._lock:
            if len(self._verified) >= _VERIFIED_CACHE_MAX:
                self._verified.clear()
            self._verified.add(wire)
        return True


class CredentialDirectory:
    """The credentials a server knows, indexed by CURVE public key (Z85) and by subject DID.

    Several serials of one subject may be held at once (rotation): lookups return the newest
    serial that is valid now, else the newest one (so a refusal names why). An older serial
    stays until it expires or is revoked, so connections made under it keep working. One
    CURVE key belongs to one subject. Thread-safe (the ZAP thread looks up)."""

    def __init__(self, verifier: CredentialVerifier) -> None:
        self.verifier = verifier
        self._by_did: dict[str, list[Credential]] = {}
        self._by_curve: dict[str, list[Credential]] = {}
        self._owner: dict[str, str] = {}  # Z85 CURVE key -> DID
        self._lock = threading.RLock()

    def add(self, credential: Credential) -> None:
        """Accept a credential after verifying it: refuses (counted) a forged, revoked or
        expired one and one whose CURVE key is bound to another subject (``conflict``).
        A not-yet-valid credential is held (it is refused at use until its window opens)."""
        found = self.verifier.refusal(credential, allowed_roles=None)
        if found is not None and found[0] != "not_yet_valid":
            raise self.verifier.refuse(*found)
        did = credential.did
        curve = credential.curve_public_z85
        with self._lock:
            owner = self._owner.get(curve)
            if owner is not None and owner != did:
                raise self.verifier.refuse(
                    "conflict",
                    f"{credential.describe()}: CURVE key {curve} already belongs to {owner}",
                )
            held = self._by_did.setdefault(did, [])
            for other in held:
                if other.serial == credential.serial:
                    if other == credential:
                        return
                    raise self.verifier.refuse(
                        "conflict", f"{credential.describe()}: serial already held, different"
                    )
            _insert_by_serial(held, credential)
            _insert_by_serial(self._by_curve.setdefault(curve, []), credential)
            self._owner[curve] = did
            self._prune_locked(did)

    def replace(self, credential: Credential) -> None:
        """Add a rotated credential for a subject already held (``unknown`` otherwise); the
        older serials stay until their own expiry unless revoked."""
        with self._lock:
            if credential.did not in self._by_did:
                raise self.verifier.refuse(
                    "unknown", f"{credential.describe()}: no credential held for this subject"
                )
            self.add(credential)

    def remove(self, did: str) -> int:
        """Forget every credential of ``did`` (role left); returns how many."""
        with self._lock:
            held = self._by_did.pop(did, [])
            for credential in held:
                curve = credential.curve_public_z85
                self._by_curve.pop(curve, None)
                self._owner.pop(curve, None)
            return len(held)

    def by_did(self, did: str) -> Credential | None:
        """The credential to judge ``did`` by now (see class docstring), or None."""
        with self._lock:
            return self._current(self._by_did.get(did, ()))

    def by_curve_key(self, curve_z85: str | bytes) -> Credential | None:
        """The credential to judge a CURVE client (Z85 key, as ZAP and ``User-Id`` give it)
        by now, or None if the key is unknown."""
        key = curve_z85 if isinstance(curve_z85, str) else curve_z85.decode("ascii", "replace")
        with self._lock:
            return self._current(self._by_curve.get(key, ()))

    def authorize(self, curve_z85: str | bytes, allowed_roles: Collection[Role]) -> Credential:
        """The credential of a CURVE client if it may act now in one of ``allowed_roles``;
        else raise (counted) ``CredentialError``: ``unknown`` or a reason of
        :meth:`CredentialVerifier.check`."""
        credential = self.by_curve_key(curve_z85)
        if credential is None:
            shown = (
                curve_z85 if isinstance(curve_z85, str) else curve_z85.decode("ascii", "replace")
            )
            raise self.verifier.refuse("unknown", f"no credential for CURVE key {shown!r}")
        self.verifier.check(credential, allowed_roles)
        return credential

    def credentials(self, did: str) -> list[Credential]:
        """Every credential held for ``did``, oldest serial first."""
        with self._lock:
            return list(self._by_did.get(did, ()))

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._by_did.values())

    def prune(self) -> int:
        """Drop every held serial that is older than its subject's newest and is expired or
        revoked now; returns how many were dropped."""
        with self._lock:
            return sum(self._prune_locked(did) for did in list(self._by_did))

    def _current(self, held: Sequence[Credential]) -> Credential | None:
        """Newest serial valid now (roles aside), else the newest; ``held`` is serial-sorted."""
        for credential in reversed(held):
            if self.verifier.refusal(credential, allowed_roles=None) is None:
                return credential
        return held[-1] if held else None

    def _prune_locked(self, did: str) -> int:
        held = self._by_did[did]
        newest = held[-1]
        dropped = []
        for credential in held:
            found = self.verifier.refusal(credential, allowed_roles=None)
            if credential is not newest and found is not None and found[0] != "not_yet_valid":
                dropped.append(credential)
        for credential in dropped:
            held.remove(credential)
            curve = credential.curve_public_z85
            same_key = self._by_curve[curve]
            same_key.remove(credential)
            if not same_key:
                del self._by_curve[curve]
                del self._owner[curve]
        return len(dropped)


def _insert_by_serial(held: list[Credential], credential: Credential) -> None:
    held.append(credential)
    held.sort(key=lambda c: c.serial)

"""Role identities: did:key identifiers, per-role key sets, and their storage on disk.

A :class:`RoleIdentity` holds three independent key pairs, one per protocol, never reused
across protocols:

* an Ed25519 signing key (RFC 8032) — the identity itself, named by its did:key;
* a CurveZMQ key pair (X25519, Z85-encoded as pyzmq's ``curve_*`` socket options want it);
* an X25519 key for per-link message-tag key agreement.

did:key (W3C CCG did:key method, Ed25519 variant): ``"did:key:z"`` + base58btc(multicodec
``ed25519-pub`` varint ``0xed 0x01`` + the 32-byte raw public key).

On disk (:meth:`RoleIdentity.save`) an identity named ``N`` is four files in one directory::

    N.identity.json   public parts (PublicIdentity.to_dict), mode 0644
    N.ed25519.pem     Ed25519 signing key, PKCS8 PEM, unencrypted, mode 0600
    N.curve.pem       CurveZMQ secret key (X25519), PKCS8 PEM, unencrypted, mode 0600
    N.tag.pem         tag-agreement X25519 key, PKCS8 PEM, unencrypted, mode 0600

:meth:`RoleIdentity.load` refuses a private-key file that group or others may read or write.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import base58
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from zmq.utils import z85

from arbsphere.errors import CredentialError

DID_KEY_PREFIX = "did:key:z"
ED25519_MULTICODEC = b"\xed\x01"
KEY_BYTES = 32
Z85_KEY_BYTES = 40
MAX_NAME_BYTES = 32
_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,31}")


class Role(StrEnum):
    """The roles a campaign authority issues credentials for. ``code`` is the wire byte."""

    AUTHORITY = "authority"
    COORDINATOR = "coordinator"
    VENUE = "venue"
    BROKER = "broker"
    DEVICE = "device"
    RECORDER = "recorder"

    @property
    def code(self) -> int:
        """The role's one-byte code in a credential (1..6; 0 is never used)."""
        return _ROLE_CODES[self]

    @classmethod
    def from_code(cls, code: int) -> Role:
        """The role with wire code ``code``; ``KeyError`` if there is none."""
        return _ROLES_BY_CODE[code]


_ROLE_CODES: dict[Role, int] = {role: i + 1 for i, role in enumerate(Role)}
_ROLES_BY_CODE: dict[int, Role] = {code: role for role, code in _ROLE_CODES.items()}


def did_key_from_public(raw32: bytes) -> str:
    """The did:key of a raw 32-byte Ed25519 public key."""
    if len(raw32) != KEY_BYTES:
        raise CredentialError(
            f"an Ed25519 public key is {KEY_BYTES} bytes, got {len(raw32)}", reason="bad_did"
        )
    return DID_KEY_PREFIX + base58.b58encode(ED25519_MULTICODEC + bytes(raw32)).decode("ascii")


def public_from_did_key(did: str) -> bytes:
    """The raw 32-byte Ed25519 public key a did:key names.

    Strict: refuses (``CredentialError(reason="bad_did")``) another DID method or multibase,
    a base58btc string that is not canonical, a multicodec other than ``ed25519-pub``, a key of
    the wrong length, and bytes that are not an Ed25519 public key encoding.
    """
    if not isinstance(did, str) or not did.startswith(DID_KEY_PREFIX):
        raise CredentialError(f"{did!r} does not start with {DID_KEY_PREFIX!r}", reason="bad_did")
    encoded = did[len(DID_KEY_PREFIX) :]
    try:
        decoded = base58.b58decode(encoded.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise CredentialError(f"{did!r}: not base58btc: {exc}", reason="bad_did") from exc
    if base58.b58encode(decoded).decode("ascii") != encoded:
        raise CredentialError(f"{did!r}: base58btc encoding is not canonical", reason="bad_did")
    if decoded[:2] != ED25519_MULTICODEC:
        raise CredentialError(
            f"{did!r}: multicodec prefix {decoded[:2].hex()} is not ed25519-pub (ed01)",
            reason="bad_did",
        )
    key = decoded[2:]
    if len(key) != KEY_BYTES:
        raise CredentialError(
            f"{did!r}: Ed25519 key is {len(key)} bytes, expected {KEY_BYTES}", reason="bad_did"
        )
    return key


def ed25519_public_raw(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of an Ed25519 private key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_public_raw(key: X25519PrivateKey) -> bytes:
    """The raw 32-byte public key of an X25519 private key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def curve_key_from_z85(text: str | bytes, what: str = "CURVE key") -> bytes:
    """The raw 32 bytes of a Z85-encoded CurveZMQ key (40 characters); refuses anything else."""
    data = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    if len(data) != Z85_KEY_BYTES:
        raise CredentialError(
            f"{what} must be {Z85_KEY_BYTES} Z85 characters, got {len(data)}", reason="malformed"
        )
    try:
        return z85.decode(data)
    except (KeyError, ValueError) as exc:
        raise CredentialError(f"{what} {data!r} is not Z85", reason="malformed") from exc


def check_name(name: str) -> str:
    """``name`` if it is a valid identity name: 1..32 of ``[A-Za-z0-9._-]``, not starting with
    a dot (it names files and fills a credential's 32-byte name field)."""
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise ValueError(
            f"identity name {name!r} must be 1..{MAX_NAME_BYTES} characters of [A-Za-z0-9._-],"
            " not starting with '.'"
        )
    return name


@dataclass(frozen=True)
class PublicIdentity:
    """The public parts of a role identity (what the authority needs to issue a credential).

    ``signing_public`` and ``tag_public`` are raw 32-byte keys, ``curve_public`` is Z85 (40
    bytes) as pyzmq wants it. :meth:`to_dict` / :meth:`from_dict` give a JSON form.
    """

    name: str
    role: Role
    signing_public: bytes
    curve_public: bytes
    tag_public: bytes

    def __post_init__(self) -> None:
        check_name(self.name)
        object.__setattr__(self, "role", Role(self.role))
        for field_name in ("signing_public", "tag_public"):
            if len(getattr(self, field_name)) != KEY_BYTES:
                raise ValueError(f"{field_name} must be {KEY_BYTES} raw bytes")
        curve_key_from_z85(self.curve_public, "curve_public")

    @property
    def did(self) -> str:
        """The did:key of the signing key."""
        return did_key_from_public(self.signing_public)

    @property
    def curve_public_raw(self) -> bytes:
        """The CurveZMQ public key as raw 32 bytes."""
        return curve_key_from_z85(self.curve_public)

    def to_dict(self) -> dict[str, str]:
        """JSON-serialisable form: did:key, Z85 CURVE key, hex tag key."""
        return {
            "name": self.name,
            "role": str(self.role),
            "did": self.did,
            "curve_public": self.curve_public.decode("ascii"),
            "tag_public": self.tag_public.hex(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PublicIdentity:
        """Inverse of :meth:`to_dict`; refuses missing keys or malformed values."""
        try:
            return cls(
                name=str(data["name"]),
                role=Role(data["role"]),
                signing_public=public_from_did_key(data["did"]),
                curve_public=str(data["curve_public"]).encode("ascii"),
                tag_public=bytes.fromhex(data["tag_public"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise CredentialError(f"public identity {data!r}: {exc}", reason="malformed") from exc


@dataclass(frozen=True)
class RoleIdentity:
    """A role's private key set: Ed25519 signing key, CurveZMQ key pair (Z85 bytes), and a
    separate X25519 key for per-link tag agreement."""

    name: str
    role: Role
    signing_key: Ed25519PrivateKey = field(repr=False)
    curve_public: bytes
    curve_secret: bytes = field(repr=False)
    tag_key: X25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        check_name(self.name)
        object.__setattr__(self, "role", Role(self.role))
        secret = X25519PrivateKey.from_private_bytes(curve_key_from_z85(self.curve_secret))
        if z85.encode(x25519_public_raw(secret)) != self.curve_public:
            raise CredentialError(
                f"identity {self.name!r}: curve_public does not belong to curve_secret",
                reason="bad_identity",
            )

    @classmethod
    def generate(cls, name: str, role: Role) -> RoleIdentity:
        """Fresh keys (OS randomness) for ``name`` in ``role``."""
        curve = X25519PrivateKey.generate()
        return cls(
            name=name,
            role=Role(role),
            signing_key=Ed25519PrivateKey.generate(),
            curve_public=z85.encode(x25519_public_raw(curve)),
            curve_secret=z85.encode(curve.private_bytes_raw()),
            tag_key=X25519PrivateKey.generate(),
        )

    @property
    def signing_public(self) -> bytes:
        """Raw 32-byte Ed25519 public key."""
        return ed25519_public_raw(self.signing_key)

    @property
    def tag_public(self) -> bytes:
        """Raw 32-byte X25519 public key for tag agreement."""
        return x25519_public_raw(self.tag_key)

    @property
    def did(self) -> str:
        """The did:key naming this identity."""
        return did_key_from_public(self.signing_public)

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature (64 bytes) of ``message``."""
        return self.signing_key.sign(message)

    def public(self) -> PublicIdentity:
        """The public parts only."""
        return PublicIdentity(
            name=self.name,
            role=self.role,
            signing_public=self.signing_public,
            curve_public=self.curve_public,
            tag_public=self.tag_public,
        )

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the four files (see module docstring); private keys get mode 0600.

        Each file is written to a temporary name and renamed into place, so a crash leaves
        either the old or the new file."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        curve = X25519PrivateKey.from_private_bytes(z85.decode(self.curve_secret))
        for suffix, key in (
            (_ED25519_SUFFIX, self.signing_key),
            (_CURVE_SUFFIX, curve),
            (_TAG_SUFFIX, self.tag_key),
        ):
            pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            _write_file(d / f"{self.name}{suffix}", pem, 0o600)
        text = json.dumps(self.public().to_dict(), indent=2, sort_keys=True) + "\n"
        _write_file(d / f"{self.name}{_PUBLIC_SUFFIX}", text.encode("utf-8"), 0o644)

    @classmethod
    def load(cls, directory: str | os.PathLike[str], name: str) -> RoleIdentity:
        """Read an identity written by :meth:`save`.

        Refuses (``CredentialError(reason="key_permissions")``) a private-key file with any
        group or other permission bit set, and (``reason="bad_identity"``) a public file whose
        keys do not match the private keys."""
        d = Path(directory)
        check_name(name)
        signing = _load_ed25519(d / f"{name}{_ED25519_SUFFIX}")
        curve = _load_x25519(d / f"{name}{_CURVE_SUFFIX}")
        tag = _load_x25519(d / f"{name}{_TAG_SUFFIX}")
        public_path = d / f"{name}{_PUBLIC_SUFFIX}"
        try:
            recorded = PublicIdentity.from_dict(json.loads(public_path.read_text("utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise CredentialError(f"{public_path}: {exc}", reason="bad_identity") from exc
        identity = cls(
            name=name,
            role=recorded.role,
            signing_key=signing,
            curve_public=z85.encode(x25519_public_raw(curve)),
            curve_secret=z85.encode(curve.private_bytes_raw()),
            tag_key=tag,
        )
        if identity.public() != recorded:
            raise CredentialError(
                f"{public_path}: public keys or name do not match the private key files",
                reason="bad_identity",
            )
        return identity


_PUBLIC_SUFFIX = ".identity.json"
_ED25519_SUFFIX = ".ed25519.pem"
_CURVE_SUFFIX = ".curve.pem"
_TAG_SUFFIX = ".tag.pem"


def _write_file(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _load_private(path: Path) -> PrivateKeyTypes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise CredentialError(
            f"{path}: cannot open private key: {exc}", reason="bad_identity"
        ) from exc
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            raise CredentialError(
                f"{path}: private key file has mode {mode:04o}; group/other may access it"
                " (chmod 600)",
                reason="key_permissions",
            )
        with os.fdopen(os.dup(fd), "rb") as f:
            pem = f.read()
    finally:
        os.close(fd)
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CredentialError(
            f"{path}: not a PKCS8 PEM private key: {exc}", reason="bad_identity"
        ) from exc
    return key


def _load_ed25519(path: Path) -> Ed25519PrivateKey:
    key = _load_private(path)
    if not isinstance(key, Ed25519PrivateKey):
        raise _wrong_kind(path, key, "Ed25519PrivateKey")
    return key


def _load_x25519(path: Path) -> X25519PrivateKey:
    key = _load_private(path)
    if not isinstance(key, X25519PrivateKey):
        raise _wrong_kind(path, key, "X25519PrivateKey")
    return key


def _wrong_kind(path: Path, key: object, expected: str) -> CredentialError:
    return CredentialError(
        f"{path}: holds a {type(key).__name__}, expected {expected}", reason="bad_identity"
    )

"""Ed25519 attestations on PlanDeltas: the coordinator signs, broker adapters verify before any
order leaves.

This module owns the attested form of a message and its verification::

    attested  = message || signature (64 B)
    signature = Ed25519(signing_key, domain || message)          RFC 8032 §5.1 (pure Ed25519)
    domain    = b"arbsphere-plandelta-attestation-v1\\n"

The domain prefix separates these signatures from every other Ed25519 signature the same key
makes (credentials, ledger checkpoints): a signature over a checkpoint can never pass as a
PlanDelta attestation and vice versa. ``domain`` is a keyword argument only so that other
message kinds get their own prefix and so that the RFC 8032 vectors (empty domain) can be run
through this exact code path in the tests; callers on the pipeline use the default.

Signing and verification are the ``cryptography`` package's (OpenSSL), which refuses
non-canonical S (S >= L) as RFC 8032 §5.1.7 requires.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from arbsphere.errors import MessageRefused

#: Domain-separation prefix of PlanDelta attestations.
PLANDELTA_DOMAIN = b"arbsphere-plandelta-attestation-v1\n"
#: Bytes of an Ed25519 signature.
SIGNATURE_BYTES = 64
_ED25519_PUBLIC_BYTES = 32

Buffer = bytes | bytearray | memoryview


def attest(
    signing_key: Ed25519PrivateKey, message: Buffer, *, domain: bytes = PLANDELTA_DOMAIN
) -> bytes:
    """``message`` followed by the Ed25519 signature of ``domain || message``."""
    data = bytes(message)
    return data + signing_key.sign(domain + data)


def verify_attestation(
    public_key: Ed25519PublicKey | bytes, attested: Buffer, *, domain: bytes = PLANDELTA_DOMAIN
) -> memoryview:
    """The message (``attested`` without its signature) as a view, or
    :class:`MessageRefused` with reason ``bad_attestation`` if ``attested`` is shorter than a
    signature or the signature does not verify under ``public_key``."""
    key = _public_key(public_key)
    n = len(attested)
    if n < SIGNATURE_BYTES:
        raise MessageRefused(
            f"attested message is {n} bytes, shorter than a {SIGNATURE_BYTES}-byte signature",
            reason="bad_attestation",
        )
    view = memoryview(attested)
    message = view[: n - SIGNATURE_BYTES]
    try:
        key.verify(bytes(view[n - SIGNATURE_BYTES :]), domain + message)
    except InvalidSignature:
        raise MessageRefused(
            f"attestation signature at offset {n - SIGNATURE_BYTES} does not verify "
            f"(message {n - SIGNATURE_BYTES} bytes, key {_key_hex(key)})",
            reason="bad_attestation",
        ) from None
    return message


class AttestationVerifier:
    """:func:`verify_attestation` under one coordinator key, counting outcomes (for the
    broker adapters' refusal counters)."""

    def __init__(
        self, public_key: Ed25519PublicKey | bytes, *, domain: bytes = PLANDELTA_DOMAIN
    ) -> None:
        self._key = _public_key(public_key)
        self._domain = domain
        self.verified = 0
        self.refused = 0

    def verify(self, attested: Buffer) -> memoryview:
        """As :func:`verify_attestation`; counts ``verified`` / ``refused``."""
        try:
            message = verify_attestation(self._key, attested, domain=self._domain)
        except MessageRefused:
            self.refused += 1
            raise
        self.verified += 1
        return message


def _public_key(public_key: Ed25519PublicKey | bytes) -> Ed25519PublicKey:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key
    if len(public_key) != _ED25519_PUBLIC_BYTES:
        raise ValueError(
            f"Ed25519 public key must be {_ED25519_PUBLIC_BYTES} bytes, got {len(public_key)}"
        )
    return Ed25519PublicKey.from_public_bytes(bytes(public_key))


def _key_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes_raw().hex()

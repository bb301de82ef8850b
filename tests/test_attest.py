"""PlanDelta attestations: RFC 8032 §7.1 vectors through the same code path, domain separation,
and every bit flip of an attested message refused."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from arbsphere.errors import MessageRefused
from arbsphere.security.attest import (
    PLANDELTA_DOMAIN,
    SIGNATURE_BYTES,
    AttestationVerifier,
    attest,
    verify_attestation,
)

# RFC 8032 §7.1, TEST 1..3: secret key, public key, message, signature
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
     "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]  # fmt: skip

COORDINATOR = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032[1][0]))
COORDINATOR_PUB = COORDINATOR.public_key()
DELTA = b"PlanDelta tick=42 venue=3 qty=-17 px=101.25"


@pytest.mark.parametrize("test", [1, 2, 3])
def test_rfc8032_vectors_through_attest_path(test: int) -> None:
    secret, public, message, signature = (bytes.fromhex(h) for h in RFC8032[test - 1])
    key = Ed25519PrivateKey.from_private_bytes(secret)
    assert key.public_key().public_bytes_raw() == public
    attested = attest(key, message, domain=b"")
    assert attested == message + signature
    assert bytes(verify_attestation(public, attested, domain=b"")) == message
    # the RFC signature is over the bare message: as a PlanDelta attestation it must fail
    with pytest.raises(MessageRefused) as info:
        verify_attestation(public, attested)
    assert info.value.reason == "bad_attestation"


def test_attestation_is_signature_over_domain_and_message() -> None:
    attested = attest(COORDINATOR, DELTA)
    assert len(attested) == len(DELTA) + SIGNATURE_BYTES
    assert attested[: len(DELTA)] == DELTA
    sig = attested[len(DELTA) :]
    assert PLANDELTA_DOMAIN == b"arbsphere-plandelta-attestation-v1\n"
    COORDINATOR_PUB.verify(sig, PLANDELTA_DOMAIN + DELTA)  # independent check, raises if not
    assert sig == COORDINATOR.sign(PLANDELTA_DOMAIN + DELTA)  # Ed25519 is deterministic
    out = verify_attestation(COORDINATOR_PUB, attested)
    assert isinstance(out, memoryview)
    assert bytes(out) == DELTA
    assert bytes(verify_attestation(COORDINATOR_PUB.public_bytes_raw(), attested)) == DELTA


def test_signature_under_other_domain_refused() -> None:
    other = attest(COORDINATOR, DELTA, domain=b"arbsphere-checkpoint-v1\n")
    with pytest.raises(MessageRefused, match="does not verify"):
        verify_attestation(COORDINATOR_PUB, other)
    bare = DELTA + COORDINATOR.sign(DELTA)
    with pytest.raises(MessageRefused):
        verify_attestation(COORDINATOR_PUB, bare)


def test_every_bit_flip_refused() -> None:
    attested = attest(COORDINATOR, DELTA)
    flips = 0
    for pos in range(len(attested)):
        for bit in range(8):
            bad = bytearray(attested)
            bad[pos] ^= 1 << bit
            with pytest.raises(MessageRefused) as info:
                verify_attestation(COORDINATOR_PUB, bytes(bad))
            assert info.value.reason == "bad_attestation"
            flips += 1
    assert flips == 8 * (len(DELTA) + SIGNATURE_BYTES)


def test_wrong_key_truncated_and_short_refused() -> None:
    attested = attest(COORDINATOR, DELTA)
    other = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032[0][0])).public_key()
    for bad, what in [
        (attested, other),
        (attested[:-1], COORDINATOR_PUB),
        (attested[1:], COORDINATOR_PUB),
        (attested + b"\x00", COORDINATOR_PUB),
        (DELTA + bytes(SIGNATURE_BYTES), COORDINATOR_PUB),
    ]:
        with pytest.raises(MessageRefused) as info:
            verify_attestation(what, bad)
        assert info.value.reason == "bad_attestation"
    for n in (0, 1, SIGNATURE_BYTES - 1):
        with pytest.raises(MessageRefused, match=f"{n} bytes, shorter") as info:
            verify_attestation(COORDINATOR_PUB, attested[:n])
        assert info.value.reason == "bad_attestation"
    with pytest.raises(ValueError, match="32 bytes, got 31"):
        verify_attestation(bytes(31), attested)


def test_empty_message_attestable() -> None:
    attested = attest(COORDINATOR, b"")
    assert len(attested) == SIGNATURE_BYTES
    assert bytes(verify_attestation(COORDINATOR_PUB, attested)) == b""


def test_verifier_counts() -> None:
    v = AttestationVerifier(COORDINATOR_PUB.public_bytes_raw())
    good = attest(COORDINATOR, DELTA)
    assert bytes(v.verify(good)) == DELTA
    assert bytes(v.verify(memoryview(bytearray(good)))) == DELTA
    bad = bytearray(good)
    bad[0] ^= 1
    with pytest.raises(MessageRefused):
        v.verify(bytes(bad))
    with pytest.raises(MessageRefused):
        v.verify(b"")
    assert (v.verified, v.refused) == (2, 2)

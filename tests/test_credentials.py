"""Credentials: the documented byte layouts (read back with ``struct`` at the documented
offsets, signatures checked with ``cryptography`` directly), every refusal of the verifier with
its counter, the order of checks, revocation lists (forged, stale, tampered), rotation at
half-life and the directory's choice among serials."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from zmq.utils import z85

from arbsphere.errors import CredentialError
from arbsphere.security.credentials import (
    ALL_ROLES,
    CHECK_ORDER,
    CREDENTIAL_BYTES,
    DEFAULT_VALIDITY_NS,
    CampaignAuthority,
    Credential,
    CredentialDirectory,
    CredentialVerifier,
    RefusalCounts,
    SignedRevocationList,
    needs_rotation,
)
from arbsphere.security.identity import PublicIdentity, Role, RoleIdentity
from arbsphere.testing import StepClock

T0 = 1_790_000_000 * 10**9  # a CLOCK_REALTIME-like origin
SKEW = 2 * 10**9
MIN = 60 * 10**9


@pytest.fixture
def clock() -> StepClock:
    return StepClock(T0)


@pytest.fixture
def authority(clock: StepClock) -> CampaignAuthority:
    return CampaignAuthority(Ed25519PrivateKey.generate(), clock)


@pytest.fixture
def verifier(authority: CampaignAuthority, clock: StepClock) -> CredentialVerifier:
    return CredentialVerifier(authority.public_key, clock, skew_ns=SKEW)


@pytest.fixture(scope="module")
def venue() -> RoleIdentity:
    return RoleIdentity.generate("venue-a", Role.VENUE)


def _refused(reason: str, fn: object, *args: object) -> CredentialError:
    with pytest.raises(CredentialError) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.reason == reason, str(info.value)
    return info.value


# --- layout ---------------------------------------------------------------------------------


def test_credential_layout_by_hand(authority: CampaignAuthority, venue: RoleIdentity) -> None:
    cred = authority.issue(venue.public(), Role.VENUE)
    wire = cred.to_bytes()
    assert len(wire) == CREDENTIAL_BYTES == 224
    assert wire[0:4] == b"ASCR"
    assert wire[4] == 1 and wire[5] == 3 and wire[6:8] == b"\0\0"
    assert struct.unpack_from("<Q", wire, 8)[0] == 1
    assert struct.unpack_from("<q", wire, 16)[0] == T0
    assert struct.unpack_from("<q", wire, 24)[0] == T0 + DEFAULT_VALIDITY_NS == T0 + 15 * MIN
    assert wire[32:64] == venue.signing_public
    assert wire[64:96] == z85.decode(venue.curve_public)
    assert wire[96:128] == venue.tag_public
    assert wire[128:160] == b"venue-a" + bytes(25)
    authority.public_key.verify(wire[160:224], wire[:160])  # signature over bytes 0..159
    assert Credential.from_bytes(wire) == cred
    assert cred.did == venue.did and cred.curve_public_z85 == venue.curve_public.decode()


def test_negative_times_round_trip(authority: CampaignAuthority, venue: RoleIdentity) -> None:
    cred = authority.issue(venue.public(), validity_ns=5, not_before_ns=-10)
    wire = cred.to_bytes()
    assert struct.unpack_from("<qq", wire, 16) == (-10, -5)
    assert Credential.from_bytes(wire) == cred


def _resigned(wire: bytearray, key: Ed25519PrivateKey) -> bytes:
    return bytes(wire[:160]) + key.sign(bytes(wire[:160]))


@pytest.mark.parametrize(
    ("offset", "value", "needle"),
    [
        (0, b"XSCR", "magic"),
        (4, b"\x02", "version 2"),
        (5, b"\x00", "unknown role code 0"),
        (5, b"\x07", "unknown role code 7"),
        (6, b"\x01\x00", "reserved"),
        (8, bytes(8), "serial 0"),
        (24, struct.pack("<q", T0), "not_after_ns"),
        (128, b"ab\0cd", "NUL inside"),
        (129, b"\xff", "not UTF-8"),
        (128, b"/etc", "identity name"),
    ],
)
def test_from_bytes_refuses_malformed(
    authority: CampaignAuthority, venue: RoleIdentity, offset: int, value: bytes, needle: str
) -> None:
    wire = bytearray(authority.issue(venue.public()).to_bytes())
    wire[offset : offset + len(value)] = value
    err = _refused("malformed", Credential.from_bytes, bytes(wire))
    assert needle in str(err)
    reported = int(str(err).split("at offset ")[1].split(":")[0])
    assert offset <= reported < offset + max(len(value), 1) + 1


@pytest.mark.parametrize("length", [0, 160, 223, 225])
def test_from_bytes_refuses_wrong_length(
    authority: CampaignAuthority, venue: RoleIdentity, length: int
) -> None:
    wire = authority.issue(venue.public()).to_bytes()
    data = (wire + b"\0")[:length]
    err = _refused("malformed", Credential.from_bytes, data)
    assert f"length {length}" in str(err)


def test_every_flipped_bit_is_refused(
    authority: CampaignAuthority, verifier: CredentialVerifier, venue: RoleIdentity
) -> None:
    good = authority.issue(venue.public()).to_bytes()
    for i in range(len(good)):
        for bit in (0x01, 0x80):
            wire = bytearray(good)
            wire[i] ^= bit
            try:
                cred = Credential.from_bytes(bytes(wire))
            except CredentialError as exc:
                assert exc.reason == "malformed"
                continue
            _refused("bad_signature", verifier.check, cred, ALL_ROLES)
    assert verifier.counts["bad_signature"] > 300


# --- verifier ---------------------------------------------------------------------------------


def test_valid_credential_passes(
    authority: CampaignAuthority, verifier: CredentialVerifier, venue: RoleIdentity
) -> None:
    cred = authority.issue(venue.public())
    verifier.check(cred, {Role.VENUE})
    verifier.check(Credential.from_bytes(cred.to_bytes()), [Role.VENUE, Role.BROKER])
    assert verifier.counts.total == 0


def test_rogue_authority_is_bad_signature(
    clock: StepClock, verifier: CredentialVerifier, venue: RoleIdentity
) -> None:
    rogue = CampaignAuthority(Ed25519PrivateKey.generate(), clock)
    cred = rogue.issue(venue.public())
    _refused("bad_signature", verifier.check, cred, ALL_ROLES)
    assert verifier.counts.as_dict() == {"bad_signature": 1}


def test_cached_signature_does_not_cover_altered_credential(
    authority: CampaignAuthority, verifier: CredentialVerifier, venue: RoleIdentity
) -> None:
    cred = authority.issue(venue.public())
    verifier.check(cred, ALL_ROLES)  # now cached
    stretched = replace(cred, not_after_ns=cred.not_after_ns + 10**15)
    _refused("bad_signature", verifier.check, stretched, ALL_ROLES)
    other_sig = replace(cred, signature=bytes(64))
    _refused("bad_signature", verifier.check, other_sig, ALL_ROLES)


def test_window_boundaries_with_skew(
    authority: CampaignAuthority,
    verifier: CredentialVerifier,
    clock: StepClock,
    venue: RoleIdentity,
) -> None:
    cred = authority.issue(venue.public(), validity_ns=10 * MIN, not_before_ns=T0 + MIN)
    clock.now = cred.not_before_ns - SKEW - 1
    err = _refused("not_yet_valid", verifier.check, cred, ALL_ROLES)
    assert str(cred.not_before_ns) in str(err) and str(clock.now) in str(err)
    clock.now = cred.not_before_ns - SKEW
    verifier.check(cred, ALL_ROLES)
    clock.now = cred.not_after_ns + SKEW - 1
    verifier.check(cred, ALL_ROLES)
    clock.now = cred.not_after_ns + SKEW
    err = _refused("expired", verifier.check, cred, ALL_ROLES)
    assert str(cred.not_after_ns) in str(err)
    assert verifier.counts.as_dict() == {"not_yet_valid": 1, "expired": 1}


def test_wrong_role(
    authority: CampaignAuthority, verifier: CredentialVerifier, venue: RoleIdentity
) -> None:
    cred = authority.issue(venue.public())
    err = _refused("wrong_role", verifier.check, cred, {Role.BROKER, Role.COORDINATOR})
    assert "broker, coordinator" in str(err) and "venue" in str(err)
    _refused("wrong_role", verifier.check, cred, frozenset())


def test_revoked_after_update(
    authority: CampaignAuthority, verifier: CredentialVerifier, venue: RoleIdentity
) -> None:
    cred = authority.issue(venue.public())
    other = authority.issue(venue.public())
    authority.revoke(cred.serial)
    assert verifier.update_revocations(authority.revocation_list()) is True
    _refused("revoked", verifier.check, cred, ALL_ROLES)
    verifier.check(other, ALL_ROLES)
    assert verifier.revoked == {cred.serial}


def test_check_order(
    authority: CampaignAuthority,
    verifier: CredentialVerifier,
    clock: StepClock,
    venue: RoleIdentity,
) -> None:
    assert CHECK_ORDER == ("bad_signature", "revoked", "not_yet_valid", "expired", "wrong_role")
    cred = authority.issue(venue.public(), validity_ns=MIN)
    authority.revoke(cred.serial)
    verifier.update_revocations(authority.revocation_list())
    clock.now = cred.not_after_ns + SKEW  # also expired, and the role is wrong
    forged = replace(cred, signature=bytes(64))
    _refused("bad_signature", verifier.check, forged, {Role.BROKER})
    _refused("revoked", verifier.check, cred, {Role.BROKER})
    fresh = authority.issue(venue.public(), validity_ns=MIN, not_before_ns=T0)
    _refused("expired", verifier.check, fresh, {Role.BROKER})
    future = authority.issue(venue.public(), validity_ns=MIN, not_before_ns=clock.now + 10 * MIN)
    _refused("not_yet_valid", verifier.check, future, {Role.BROKER})


def test_every_refusal_is_counted(
    authority: CampaignAuthority, verifier: CredentialVerifier, venue: RoleIdentity
) -> None:
    cred = authority.issue(venue.public())
    for _ in range(3):
        _refused("wrong_role", verifier.check, cred, {Role.DEVICE})
    err = verifier.refuse("unknown", "no credential for key X")
    assert err.reason == "unknown" and str(err) == "no credential for key X"
    assert verifier.counts.as_dict() == {"wrong_role": 3, "unknown": 1}
    assert verifier.counts.total == 4 and verifier.counts["expired"] == 0


def test_refusal_counts_standalone() -> None:
    counts = RefusalCounts()
    counts.add("a")
    counts.add("a")
    counts.add("b")
    assert counts["a"] == 2 and counts["zzz"] == 0 and counts.total == 3


def test_verifier_accepts_raw_authority_key(
    authority: CampaignAuthority, clock: StepClock, venue: RoleIdentity
) -> None:
    v = CredentialVerifier(authority.public_key_raw, clock, skew_ns=0)
    v.check(authority.issue(venue.public()), ALL_ROLES)
    with pytest.raises(ValueError):
        CredentialVerifier(authority.public_key_raw, clock, skew_ns=-1)


# --- authority ---------------------------------------------------------------------------------


def test_issue_serials_and_role_binding(authority: CampaignAuthority, venue: RoleIdentity) -> None:
    serials = [authority.issue(venue.public()).serial for _ in range(5)]
    assert serials == [1, 2, 3, 4, 5]
    err = _refused("wrong_role", authority.issue, venue.public(), Role.COORDINATOR)
    assert "declares role venue" in str(err)
    with pytest.raises(ValueError, match="validity_ns"):
        authority.issue(venue.public(), validity_ns=0)
    restarted = CampaignAuthority(Ed25519PrivateKey.generate(), StepClock(T0), next_serial=77)
    assert restarted.issue(venue.public()).serial == 77


def test_rotate_keeps_keys_new_serial_and_window(
    authority: CampaignAuthority,
    verifier: CredentialVerifier,
    clock: StepClock,
    venue: RoleIdentity,
) -> None:
    cred = authority.issue(venue.public())
    clock.now = cred.rotate_at_ns
    new = authority.rotate(cred)
    assert new.serial == cred.serial + 1
    assert (new.subject_public, new.curve_public, new.tag_public, new.name, new.role) == (
        cred.subject_public,
        cred.curve_public,
        cred.tag_public,
        cred.name,
        cred.role,
    )
    assert new.not_before_ns == clock.now and new.validity_ns == cred.validity_ns
    authority.public_key.verify(new.signature, new.to_bytes()[:160])
    verifier.check(new, {Role.VENUE})


def test_rotate_refusals(
    authority: CampaignAuthority, clock: StepClock, venue: RoleIdentity
) -> None:
    rogue = CampaignAuthority(Ed25519PrivateKey.generate(), clock).issue(venue.public())
    _refused("bad_signature", authority.rotate, rogue)
    revoked = authority.issue(venue.public())
    authority.revoke(revoked.serial)
    _refused("revoked", authority.rotate, revoked)
    old = authority.issue(venue.public(), validity_ns=MIN)
    clock.now = old.not_after_ns
    _refused("expired", authority.rotate, old)


def test_needs_rotation_at_half_life(authority: CampaignAuthority, venue: RoleIdentity) -> None:
    cred = authority.issue(venue.public(), validity_ns=15 * MIN)
    assert cred.rotate_at_ns == T0 + 7 * MIN + 30 * 10**9
    assert not needs_rotation(cred, cred.rotate_at_ns - 1)
    assert needs_rotation(cred, cred.rotate_at_ns)
    assert not needs_rotation(cred, T0)


def test_revoke_unknown_serial(authority: CampaignAuthority) -> None:
    with pytest.raises(ValueError, match="never issued"):
        authority.revoke(1)


# --- revocation lists ---------------------------------------------------------------------------


def test_revocation_list_layout_by_hand(
    authority: CampaignAuthority, clock: StepClock, venue: RoleIdentity
) -> None:
    for _ in range(4):
        authority.issue(venue.public())
    authority.revoke(3)
    authority.revoke(1)
    authority.revoke(3)  # no change
    clock.now = T0 + 5
    rl = authority.revocation_list()
    wire = rl.to_bytes()
    assert wire[:4] == b"ASRL" and wire[4] == 1 and wire[5:8] == bytes(3)
    assert struct.unpack_from("<Qq I", wire, 8)[:3] == (2, T0 + 5, 2)
    assert wire[28:32] == bytes(4)
    assert struct.unpack_from("<2Q", wire, 32) == (1, 3)
    assert len(wire) == 32 + 16 + 64
    authority.public_key.verify(wire[-64:], wire[:-64])
    assert SignedRevocationList.from_bytes(wire) == rl


def test_revocation_list_tampering_refused(
    authority: CampaignAuthority, verifier: CredentialVerifier, venue: RoleIdentity
) -> None:
    authority.issue(venue.public())
    authority.issue(venue.public())
    authority.revoke(2)
    good = authority.revocation_list().to_bytes()
    for i in range(len(good)):
        wire = bytearray(good)
        wire[i] ^= 0x04
        try:
            rl = SignedRevocationList.from_bytes(bytes(wire))
        except CredentialError as exc:
            assert exc.reason == "malformed"
            continue
        _refused("forged_revocation_list", verifier.update_revocations, rl)
    assert verifier.revocation_sequence == 0 and verifier.revoked == frozenset()
    for cut in (0, 31, len(good) - 1):
        _refused("malformed", SignedRevocationList.from_bytes, good[:cut])


def test_forged_revocation_list_refused(
    authority: CampaignAuthority, verifier: CredentialVerifier, clock: StepClock
) -> None:
    rogue = CampaignAuthority(Ed25519PrivateKey.generate(), clock)
    forged = rogue.revocation_list()
    _refused("forged_revocation_list", verifier.update_revocations, forged)
    # a real list with its serials replaced keeps the authority's signature: refused too
    real = authority.revocation_list()
    edited = replace(real, sequence=real.sequence + 1)
    _refused("forged_revocation_list", verifier.update_revocations, edited)
    assert verifier.counts["forged_revocation_list"] == 2


def test_stale_revocation_list_refused(
    authority: CampaignAuthority, verifier: CredentialVerifier, venue: RoleIdentity
) -> None:
    creds = [authority.issue(venue.public()) for _ in range(3)]
    authority.revoke(creds[0].serial)
    first = authority.revocation_list()
    authority.revoke(creds[1].serial)
    second = authority.revocation_list()
    assert verifier.update_revocations(second) is True
    err = _refused("stale_revocation_list", verifier.update_revocations, first)
    assert "sequence 1" in str(err) and "current 2" in str(err)
    assert verifier.update_revocations(second) is False  # the same again: no change
    assert verifier.revoked == {creds[0].serial, creds[1].serial}
    _refused("revoked", verifier.check, creds[0], ALL_ROLES)


def test_same_sequence_other_serials_refused(clock: StepClock, venue: RoleIdentity) -> None:
    key = Ed25519PrivateKey.generate()
    a = CampaignAuthority(key, clock)
    b = CampaignAuthority(key, clock)  # a restarted authority that forgot its state
    for auth in (a, b):
        auth.issue(venue.public())
        auth.issue(venue.public())
    a.revoke(1)
    b.revoke(2)
    verifier = CredentialVerifier(key.public_key(), clock, skew_ns=0)
    verifier.update_revocations(a.revocation_list())
    _refused("stale_revocation_list", verifier.update_revocations, b.revocation_list())


def test_revocations_are_monotonic(clock: StepClock, venue: RoleIdentity) -> None:
    key = Ed25519PrivateKey.generate()
    a = CampaignAuthority(key, clock)
    for _ in range(3):
        a.issue(venue.public())
    a.revoke(1)
    verifier = CredentialVerifier(key.public_key(), clock, skew_ns=0)
    verifier.update_revocations(a.revocation_list())
    # a newer list signed by the key that omits serial 1 cannot un-revoke it
    unsigned = SignedRevocationList(sequence=5, issued_at_ns=clock.now, serials=(2,))
    newer = replace(unsigned, signature=key.sign(unsigned.body()))
    assert verifier.update_revocations(newer) is True
    assert verifier.revoked == {1, 2} and verifier.revocation_sequence == 5


# --- directory ---------------------------------------------------------------------------------


@pytest.fixture
def directory(verifier: CredentialVerifier) -> CredentialDirectory:
    return CredentialDirectory(verifier)


def test_directory_indexes(
    authority: CampaignAuthority, directory: CredentialDirectory, venue: RoleIdentity
) -> None:
    cred = authority.issue(venue.public())
    directory.add(cred)
    directory.add(cred)  # idempotent
    assert len(directory) == 1
    assert directory.by_curve_key(venue.curve_public) == cred
    assert directory.by_curve_key(venue.curve_public.decode()) == cred
    assert directory.by_did(venue.did) == cred
    assert directory.by_curve_key(RoleIdentity.generate("x", Role.VENUE).curve_public) is None
    assert directory.by_curve_key("not z85") is None
    assert directory.authorize(venue.curve_public, {Role.VENUE}) == cred


def test_directory_add_refusals(
    authority: CampaignAuthority,
    directory: CredentialDirectory,
    verifier: CredentialVerifier,
    clock: StepClock,
    venue: RoleIdentity,
) -> None:
    rogue = CampaignAuthority(Ed25519PrivateKey.generate(), clock)
    _refused("bad_signature", directory.add, rogue.issue(venue.public()))
    expired = authority.issue(venue.public(), validity_ns=MIN, not_before_ns=T0 - 10 * MIN)
    _refused("expired", directory.add, expired)
    revoked = authority.issue(venue.public())
    authority.revoke(revoked.serial)
    verifier.update_revocations(authority.revocation_list())
    _refused("revoked", directory.add, revoked)
    assert len(directory) == 0
    future = authority.issue(venue.public(), not_before_ns=T0 + 10 * MIN)
    directory.add(future)  # held, refused at use until its window opens
    _refused("not_yet_valid", directory.authorize, venue.curve_public, ALL_ROLES)
    assert verifier.counts.as_dict() == {
        "bad_signature": 1,
        "expired": 1,
        "revoked": 1,
        "not_yet_valid": 1,
    }


def test_directory_authorize_refusals(
    authority: CampaignAuthority,
    directory: CredentialDirectory,
    verifier: CredentialVerifier,
    venue: RoleIdentity,
) -> None:
    stranger = RoleIdentity.generate("stranger", Role.VENUE)
    err = _refused("unknown", directory.authorize, stranger.curve_public, ALL_ROLES)
    assert stranger.curve_public.decode() in str(err)
    directory.add(authority.issue(venue.public()))
    _refused("wrong_role", directory.authorize, venue.curve_public, {Role.COORDINATOR})
    assert verifier.counts.as_dict() == {"unknown": 1, "wrong_role": 1}


def test_directory_conflicting_curve_key(
    authority: CampaignAuthority, directory: CredentialDirectory, venue: RoleIdentity
) -> None:
    directory.add(authority.issue(venue.public()))
    impostor = PublicIdentity(
        name="venue-z",
        role=Role.VENUE,
        signing_public=RoleIdentity.generate("z", Role.VENUE).signing_public,
        curve_public=venue.curve_public,
        tag_public=venue.tag_public,
    )
    err = _refused("conflict", directory.add, authority.issue(impostor))
    assert venue.did in str(err)


def test_directory_rotation(
    authority: CampaignAuthority,
    directory: CredentialDirectory,
    verifier: CredentialVerifier,
    clock: StepClock,
    venue: RoleIdentity,
) -> None:
    old = authority.issue(venue.public())
    directory.add(old)
    stranger = authority.issue(RoleIdentity.generate("v2", Role.VENUE).public())
    _refused("unknown", directory.replace, stranger)
    clock.now = old.rotate_at_ns
    assert needs_rotation(old, clock.now_ns())
    new = authority.rotate(old)
    directory.replace(new)
    assert directory.credentials(venue.did) == [old, new]  # old kept until its expiry
    assert directory.by_curve_key(venue.curve_public) == new  # newest valid wins
    # the newest revoked: the older serial is still valid and is the one judged by
    authority.revoke(new.serial)
    verifier.update_revocations(authority.revocation_list())
    assert directory.by_curve_key(venue.curve_public) == old
    # past the old one's expiry nothing is valid: the newest is reported (revoked)
    clock.now = old.not_after_ns + SKEW
    assert directory.by_curve_key(venue.curve_public) == new
    _refused("revoked", directory.authorize, venue.curve_public, ALL_ROLES)


def test_directory_prunes_expired_older_serials(
    authority: CampaignAuthority,
    directory: CredentialDirectory,
    clock: StepClock,
    venue: RoleIdentity,
) -> None:
    old = authority.issue(venue.public())
    directory.add(old)
    clock.now = old.rotate_at_ns
    new = authority.rotate(old)
    directory.add(new)
    assert directory.prune() == 0
    clock.now = old.not_after_ns + SKEW
    assert directory.by_curve_key(venue.curve_public) == new
    assert directory.prune() == 1
    assert directory.credentials(venue.did) == [new]
    clock.now = new.not_after_ns + SKEW
    assert directory.prune() == 0  # the newest stays, so a refusal says "expired"
    _refused("expired", directory.authorize, venue.curve_public, ALL_ROLES)
    assert directory.remove(venue.did) == 1
    assert directory.by_curve_key(venue.curve_public) is None

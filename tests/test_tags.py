"""Per-message tags: known answers (RFC 4231, RFC 7748 + RFC 5869 recomputed), a fixed sealed
vector, and every refusal of the receiver actually refusing and being counted."""

from __future__ import annotations

import hashlib
import hmac
import random
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from arbsphere.contracts import default_registry
from arbsphere.errors import CredentialError, MessageRefused
from arbsphere.security.tags import (
    ENVELOPE_BYTES,
    REFUSAL_REASONS,
    TAG_BYTES,
    Opener,
    Sealer,
    derive_link_key,
    tag,
)
from arbsphere.testing import StepClock

MAGIC = default_registry().magic
ENV = struct.Struct("<IHHIIQq")  # the registry's envelope, written out independently
SEC = 1_000_000_000
NOW = 1_700_000_000 * SEC


def msg(sender: int, nonce: int, ts: int = NOW, payload: bytes = b"\x11" * 24) -> bytes:
    return ENV.pack(MAGIC, 3, 1, sender, len(payload), nonce, ts) + payload


KEY_A = bytes(range(32))  # link A(7) -> receiver
KEY_B = bytes(range(32, 64))  # link B(8) -> receiver


def opener(clock: StepClock | None = None, window: int = 1024) -> Opener:
    return Opener(
        {7: KEY_A, 8: KEY_B},
        clock or StepClock(NOW),
        window=window,
        max_past_ns=SEC,
        max_future_ns=SEC // 10,
    )


def refused(op: Opener, sealed: bytes, reason: str) -> MessageRefused:
    before = dict(op.refusals)
    accepted = op.accepted
    with pytest.raises(MessageRefused) as info:
        op.open(sealed)
    assert info.value.reason == reason, str(info.value)
    assert op.refusals[reason] == before[reason] + 1
    assert {k: v for k, v in op.refusals.items() if k != reason} == {
        k: v for k, v in before.items() if k != reason
    }
    assert op.accepted == accepted
    return info.value


def test_envelope_matches_registry() -> None:
    env = default_registry().envelope
    assert ENVELOPE_BYTES == env.size == ENV.size
    assert ENV.format == "<" + env.struct_format


# --- known answers -----------------------------------------------------------------------------
# RFC 4231 §4.2-4.8, HMAC-SHA-256 (key, data, full MAC; test case 5 gives only 128 bits)
RFC4231 = [
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\x0c" * 20, b"Test With Truncation", "a3b6167473100ee06e0c796c2955552b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131,
     b"This is a test using a larger than block-size key and a larger than block-size data. "
     b"The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]  # fmt: skip


@pytest.mark.parametrize("case", range(1, 8))
def test_rfc4231_hmac_sha256_truncated_to_128_bits(case: int) -> None:
    key, data, mac_hex = RFC4231[case - 1]
    assert tag(key, data).hex() == mac_hex[: 2 * TAG_BYTES]
    assert len(tag(key, data)) == 16


def test_rfc4231_through_sealer_and_opener_path() -> None:
    # the keyed-object copy path of Sealer/Opener computes the same HMAC as hmac.digest
    key = b"\x0c" * 32
    for n in (0, 1, 55, 56, 63, 64, 65, 1000):
        data = msg(7, n, payload=bytes(range(256)) * 4)[: ENVELOPE_BYTES + n]
        assert Sealer(key).seal(data)[-TAG_BYTES:] == tag(key, data)


def _hmac_sha256_rfc2104(key: bytes, data: bytes) -> bytes:
    """RFC 2104 written out on hashlib.sha256: an independent recomputation for the tests."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + data).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()


def test_independent_hmac_recomputation_agrees_with_rfc4231() -> None:
    for key, data, mac_hex in RFC4231:
        assert _hmac_sha256_rfc2104(key, data).hex().startswith(mac_hex)


SEALED_VECTOR_HEX = (
    "41524253030001000700000018000000"  # magic "ARBS", schema 3 v1, sender 7, payload_len 24
    "2a00000000000000"  # nonce 42
    "00002a36fe9c9717"  # origin_ts_ns 1_700_000_000 * 10^9
    "111111111111111111111111111111111111111111111111"  # payload
    "d04cefb2074ce32bfcb45193495b171e"  # tag (also: openssl dgst -sha256 -mac HMAC)
)


def test_fixed_sealed_message_vector() -> None:
    message = msg(7, 42)
    sealed = Sealer(KEY_A, sender_id=7).seal(message)
    assert sealed.hex() == SEALED_VECTOR_HEX
    assert sealed[-TAG_BYTES:] == _hmac_sha256_rfc2104(KEY_A, message)[:TAG_BYTES]
    assert bytes(opener().open(sealed)) == message


# --- link keys ---------------------------------------------------------------------------------
# RFC 7748 §6.1
ALICE_PRIV = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
ALICE_PUB = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
BOB_PRIV = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
BOB_PUB = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


def _hkdf_sha256_rfc5869(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.digest(salt, ikm, "sha256")
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([i]), "sha256")
        out += block
        i += 1
    return out[:length]


def test_hkdf_recomputation_matches_rfc5869_case_1() -> None:
    okm = _hkdf_sha256_rfc5869(
        b"\x0b" * 22, bytes(range(13)), bytes(range(0xF0, 0xFA)), 42
    )  # RFC 5869 A.1
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def _priv(hex_: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes.fromhex(hex_))


def test_link_key_known_answer_from_rfc7748_and_rfc5869() -> None:
    alice, bob = _priv(ALICE_PRIV), _priv(BOB_PRIV)
    assert alice.public_key().public_bytes_raw().hex() == ALICE_PUB
    assert bob.public_key().public_bytes_raw().hex() == BOB_PUB
    session = b"run-2024-01-01T00:00:00Z"
    info = b"arbsphere-tag-v1" + (1).to_bytes(4, "little") + (2).to_bytes(4, "little")
    expected = _hkdf_sha256_rfc5869(bytes.fromhex(SHARED), session, info, 32)
    a_to_b_at_a = derive_link_key(
        alice, bytes.fromhex(BOB_PUB), session=session, sender_id=1, receiver_id=2
    )
    a_to_b_at_b = derive_link_key(
        bob, bytes.fromhex(ALICE_PUB), session=session, sender_id=1, receiver_id=2
    )
    assert a_to_b_at_a == a_to_b_at_b == expected
    assert len(expected) == 32


def test_link_keys_are_direction_and_session_specific() -> None:
    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    a_pub, b_pub = a.public_key().public_bytes_raw(), b.public_key().public_bytes_raw()
    s = b"session-1"
    ab_a = derive_link_key(a, b_pub, session=s, sender_id=1, receiver_id=2)
    ab_b = derive_link_key(b, a_pub, session=s, sender_id=1, receiver_id=2)
    ba_a = derive_link_key(a, b_pub, session=s, sender_id=2, receiver_id=1)
    ba_b = derive_link_key(b, a_pub, session=s, sender_id=2, receiver_id=1)
    assert ab_a == ab_b
    assert ba_a == ba_b
    assert ab_a != ba_a
    assert derive_link_key(a, b_pub, session=b"session-2", sender_id=1, receiver_id=2) != ab_a
    c_pub = X25519PrivateKey.generate().public_key().public_bytes_raw()
    assert derive_link_key(a, c_pub, session=s, sender_id=1, receiver_id=2) != ab_a


def test_link_key_refuses_bad_inputs() -> None:
    a = X25519PrivateKey.generate()
    with pytest.raises(CredentialError) as info:
        derive_link_key(a, bytes(32), session=b"s", sender_id=1, receiver_id=2)
    assert info.value.reason == "forged"
    with pytest.raises(ValueError, match="32 bytes, got 31"):
        derive_link_key(a, bytes(31), session=b"s", sender_id=1, receiver_id=2)
    pub = X25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(ValueError, match="session"):
        derive_link_key(a, pub, session=b"", sender_id=1, receiver_id=2)
    with pytest.raises(ValueError, match="receiver_id 4294967296"):
        derive_link_key(a, pub, session=b"s", sender_id=1, receiver_id=2**32)


def test_wrong_direction_key_refused() -> None:
    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    a_pub, b_pub = a.public_key().public_bytes_raw(), b.public_key().public_bytes_raw()
    s = b"sess"
    a_to_b = derive_link_key(a, b_pub, session=s, sender_id=1, receiver_id=2)
    b_to_a = derive_link_key(a, b_pub, session=s, sender_id=2, receiver_id=1)
    at_b = Opener(
        {1: derive_link_key(b, a_pub, session=s, sender_id=1, receiver_id=2)},
        StepClock(NOW),
        max_past_ns=SEC,
        max_future_ns=SEC,
    )
    assert bytes(at_b.open(Sealer(a_to_b).seal(msg(1, 1)))) == msg(1, 1)
    refused(at_b, Sealer(b_to_a).seal(msg(1, 2)), "bad_tag")


# --- sealing ----------------------------------------------------------------------------------
def test_sealer_checks_sender_and_nonce_when_bound() -> None:
    s = Sealer(KEY_A, sender_id=7)
    s.seal(msg(7, 5))
    with pytest.raises(ValueError, match="nonce 5 does not exceed the last sealed nonce 5"):
        s.seal(msg(7, 5))
    with pytest.raises(ValueError, match="sender_id 8 but this sealer is for sender 7"):
        s.seal(msg(8, 6))
    with pytest.raises(ValueError, match="31 bytes"):
        s.seal(bytes(31))
    with pytest.raises(ValueError, match="link key must be 32 bytes, got 16"):
        Sealer(bytes(16))
    unbound = Sealer(KEY_A)
    assert unbound.seal(msg(7, 5)) == unbound.seal(msg(7, 5))  # no nonce tracking unbound


def test_sealer_accepts_buffers_and_rekeys() -> None:
    m = msg(7, 1)
    s = Sealer(KEY_A)
    assert s.seal(bytearray(m)) == s.seal(memoryview(m)) == m + tag(KEY_A, m)
    s.rekey(KEY_B)
    assert s.seal(m) == m + tag(KEY_B, m)


# --- opening: acceptance and every refusal -----------------------------------------------------
def test_open_returns_message_without_tag_and_counts() -> None:
    op = opener()
    sealed = Sealer(KEY_A).seal(msg(7, 1))
    out = op.open(sealed)
    assert isinstance(out, bytes)  # bytes in, bytes out (the fast path)
    assert out == msg(7, 1)
    assert (op.last_sender, op.last_now_ns) == (7, op._clock.now_ns())
    view = op.open(bytearray(Sealer(KEY_A).seal(msg(7, 2))))  # other buffers: a view
    assert isinstance(view, memoryview) and bytes(view) == msg(7, 2)
    op.open(Sealer(KEY_A).seal(msg(7, 0)))  # below the highest, inside the window
    assert op.accepted == 3
    op = opener()
    out = op.open(sealed)
    assert op.accepted == 1
    assert op.refusals == dict.fromkeys(REFUSAL_REASONS, 0)
    assert op.highest_nonce(7) == 1
    assert op.highest_nonce(8) is None


@pytest.mark.parametrize("n", [0, 1, ENVELOPE_BYTES, ENVELOPE_BYTES + TAG_BYTES - 1])
def test_short_refused(n: int) -> None:
    op = opener()
    e = refused(op, Sealer(KEY_A).seal(msg(7, 1))[:n], "short")
    assert f"{n} bytes" in str(e)


def test_unknown_sender_refused() -> None:
    op = opener()
    key_9 = bytes(32)
    e = refused(op, Sealer(key_9).seal(msg(9, 1)), "unknown_sender")
    assert "sender_id 9" in str(e)
    op.remove_sender(7)
    refused(op, Sealer(KEY_A).seal(msg(7, 1)), "unknown_sender")


def test_every_tampered_byte_refused_as_bad_tag() -> None:
    sealed = Sealer(KEY_A).seal(msg(7, 100))
    masks = (0x01, 0x80, 0xFF)
    # register every sender id a tamper of the sender_id field can produce, each with its own
    # key, so that those tampers reach the tag check instead of stopping at unknown_sender
    keys = {7: KEY_A}
    for pos in range(8, 12):
        for mask in masks:
            forged_id = 7 ^ (mask << (8 * (pos - 8)))
            keys[forged_id] = hashlib.sha256(forged_id.to_bytes(4, "little")).digest()
    op = Opener(keys, StepClock(NOW), max_past_ns=SEC, max_future_ns=SEC)
    count = 0
    for pos in range(len(sealed)):
        for mask in masks:
            bad = bytearray(sealed)
            bad[pos] ^= mask
            e = refused(op, bytes(bad), "bad_tag")
            assert f"offset {len(sealed) - TAG_BYTES}" in str(e)
            count += 1
    refused(op, sealed[:-1], "bad_tag")  # truncated tag
    refused(op, sealed + b"\x00", "bad_tag")  # extended
    refused(op, sealed[:-TAG_BYTES] + bytes(TAG_BYTES), "bad_tag")  # zeroed tag
    assert op.refusals["bad_tag"] == count + 3
    assert op.accepted == 0
    assert op.highest_nonce(7) is None  # nothing moved the window
    assert bytes(op.open(sealed)) == msg(7, 100)


def test_replay_of_accepted_message_refused() -> None:
    op = opener()
    sealed = Sealer(KEY_A).seal(msg(7, 5))
    op.open(sealed)
    e = refused(op, sealed, "replayed")
    assert "nonce 5" in str(e)
    # same nonce from another sender is independent
    op.open(Sealer(KEY_B).seal(msg(8, 5)))
    refused(op, Sealer(KEY_B).seal(msg(8, 5)), "replayed")


def test_reordering_within_window_accepted_once() -> None:
    op = opener(window=8)
    s = Sealer(KEY_A)
    sealed = {n: s.seal(msg(7, n)) for n in range(1, 20)}
    for n in (10, 3, 9, 4, 5, 8, 6, 7):  # 3 == 10 - 7, the oldest nonce inside a window of 8
        op.open(sealed[n])
    assert op.accepted == 8
    for n in (10, 3, 9, 4, 5, 8, 6, 7):
        refused(op, sealed[n], "replayed")
    op.open(sealed[12])  # window now covers 5..12; 11 is still open
    op.open(sealed[11])
    refused(op, sealed[11], "replayed")


def test_nonce_below_window_refused_too_old() -> None:
    op = opener(window=8)
    s = Sealer(KEY_A)
    op.open(s.seal(msg(7, 100)))
    e = refused(op, s.seal(msg(7, 92)), "too_old")  # 100 - 92 == window
    assert "nonce 92 is 8 below the highest accepted 100" in str(e)
    op.open(s.seal(msg(7, 93)))  # 100 - 93 == window - 1: inside
    op.open(s.seal(msg(7, 1000)))  # jump far ahead: everything older than 993 is too old
    refused(op, s.seal(msg(7, 99)), "too_old")
    refused(op, s.seal(msg(7, 992)), "too_old")
    op.open(s.seal(msg(7, 993)))
    refused(op, s.seal(msg(7, 1000)), "replayed")


def test_skew_past_and_future_refused_with_fake_clock() -> None:
    clock = StepClock(NOW)
    op = opener(clock)  # max_past 1 s, max_future 0.1 s
    s = Sealer(KEY_A)
    op.open(s.seal(msg(7, 1, ts=NOW - SEC)))  # exactly at the bounds: accepted
    op.open(s.seal(msg(7, 2, ts=NOW + SEC // 10)))
    e = refused(op, s.seal(msg(7, 3, ts=NOW - SEC - 1)), "skew_past")
    assert f"origin_ts_ns {NOW - SEC - 1} is {SEC + 1} ns before now {NOW}" in str(e)
    e = refused(op, s.seal(msg(7, 4, ts=NOW + SEC // 10 + 1)), "skew_future")
    assert f"is {SEC // 10 + 1} ns after now" in str(e)
    late = s.seal(msg(7, 5, ts=NOW))
    clock.now = NOW + 2 * SEC  # the same message, delivered 2 s late
    refused(op, late, "skew_past")
    clock.now = NOW
    op.open(late)  # the refusal did not mark nonce 5 as seen


def test_refused_message_does_not_advance_window() -> None:
    op = opener(window=8)
    s = Sealer(KEY_A)
    op.open(s.seal(msg(7, 10)))
    forged = Sealer(bytes(32)).seal(msg(7, 10_000))  # unauthenticated, far-ahead nonce
    refused(op, forged, "bad_tag")
    assert op.highest_nonce(7) == 10
    op.open(s.seal(msg(7, 11)))  # would be too_old had the forgery moved the window
    skewed = s.seal(msg(7, 5_000, ts=NOW + 10 * SEC))  # authentic but skewed
    refused(op, skewed, "skew_future")
    assert op.highest_nonce(7) == 11
    op.open(s.seal(msg(7, 12)))
    op.open(s.seal(msg(7, 9)))  # out of order, still inside the window
    assert op.accepted == 4


def test_rekey_keeps_replay_state() -> None:
    op = opener()
    old = Sealer(KEY_A).seal(msg(7, 1))
    op.open(old)
    new_key = hashlib.sha256(b"rotated").digest()
    op.rekey(7, new_key)
    refused(op, Sealer(KEY_A).seal(msg(7, 2)), "bad_tag")  # old key no longer accepted
    refused(op, Sealer(new_key).seal(msg(7, 1)), "replayed")  # window survived the rekey
    op.open(Sealer(new_key).seal(msg(7, 2)))
    with pytest.raises(KeyError, match="sender 99"):
        op.rekey(99, new_key)


def test_key_management_errors() -> None:
    op = opener()
    with pytest.raises(ValueError, match="already known"):
        op.add_sender(7, KEY_A)
    with pytest.raises(ValueError, match="link key must be 32 bytes"):
        op.add_sender(9, b"short")
    op.add_sender(9, KEY_B)
    assert op.senders() == (7, 8, 9)
    with pytest.raises(KeyError):
        op.remove_sender(10)
    with pytest.raises(ValueError, match="window"):
        Opener({}, StepClock(NOW), window=0, max_past_ns=1, max_future_ns=1)
    with pytest.raises(ValueError, match="max_past_ns=-1"):
        Opener({}, StepClock(NOW), max_past_ns=-1, max_future_ns=1)


def test_replay_window_matches_reference_model() -> None:
    """Random nonce streams against a set-based model of the RFC 4303 window."""
    rng = random.Random(6)
    for window in (1, 2, 7, 64, 65, 1024):
        op = Opener({7: KEY_A}, StepClock(NOW), window=window, max_past_ns=SEC, max_future_ns=SEC)
        s = Sealer(KEY_A)
        seen: set[int] = set()
        top = -1
        for _ in range(1500):
            if top < 0 or rng.random() < 0.3:
                nonce = max(0, top) + rng.randrange(0, 3 * window + 2)
            else:
                nonce = max(0, top - rng.randrange(0, window + 3))
            if nonce > top:
                expect = "ok"
            elif top - nonce >= window:
                expect = "too_old"
            elif nonce in seen:
                expect = "replayed"
            else:
                expect = "ok"
            try:
                op.open(s.seal(msg(7, nonce)))
                got = "ok"
            except MessageRefused as e:
                got = e.reason
            assert got == expect, (window, nonce, top)
            if got == "ok":
                seen.add(nonce)
                top = max(top, nonce)
        assert op.accepted == len(seen)


def test_window_state_stays_bounded_and_buffers_accepted() -> None:
    op = opener(window=64)
    s = Sealer(KEY_A)
    for nonce in range(1, 2000):
        sealed = s.seal(msg(7, nonce))
        view = op.open(bytearray(sealed) if nonce % 2 else memoryview(sealed))
        assert bytes(view) == msg(7, nonce)
    # the bitmap never holds more than the window (white-box: the memory bound)
    assert op._peers[7].bits.bit_length() <= 64
    assert op._peers[7].bits == (1 << 64) - 1


def test_one_tag_over_a_multipart_message() -> None:
    """seal_parts: one tag over every frame and their lengths (on the last frame); a single
    frame is exactly seal(); the first frame's envelope is judged by the windows."""
    f1 = msg(7, 5, payload=b"first" * 5)
    f2 = msg(7, 6, payload=b"second frame")
    assert Sealer(KEY_A, sender_id=7).seal_parts([f1]) == [Sealer(KEY_A).seal(f1)]
    sealed = Sealer(KEY_A, sender_id=7).seal_parts([f1, f2])
    assert sealed[0] == f1 and sealed[1][: len(f2)] == f2 and len(sealed[1]) == len(f2) + 16
    op = opener()
    assert [bytes(p) for p in op.open_parts(sealed)] == [f1, f2]
    with pytest.raises(MessageRefused) as exc:
        op.open_parts(sealed)
    assert exc.value.reason == "replayed"
    flipped_first = [f1[:-1] + bytes([f1[-1] ^ 1]), sealed[1]]
    flipped_tag = [f1, sealed[1][:-1] + bytes([sealed[1][-1] ^ 1])]
    moved_boundary = [f1 + sealed[1][:1], sealed[1][1:]]
    dropped_frame = [sealed[1]]
    other_sender = [msg(8, 5), sealed[1]]
    for bad in (flipped_first, flipped_tag, moved_boundary, dropped_frame, other_sender):
        fresh = opener()
        with pytest.raises(MessageRefused):
            fresh.open_parts(bad)
        assert sum(fresh.refusals.values()) == 1 and fresh.accepted == 0


def test_fast_path_agrees_with_the_general_path_on_every_message() -> None:
    """bytes frames take the one-pass fast path, bytearrays the general one: over accepted,
    replayed, reordered, forged, skewed and mis-sized one- and two-frame messages both
    openers return the same frames, refuse with the same reasons and end in the same
    state (a refusal on the fast path must leave nothing behind for the general one to
    count twice)."""
    rng = random.Random(5)
    clock = StepClock(NOW)
    fast, general = opener(clock, window=64), opener(clock, window=64)
    history: list[list[bytes]] = []
    for k in range(3000):
        sender = rng.choice((7, 8))
        nonce = max(1, k + 1 - rng.choice((0, 0, 0, 3, 70)))  # mostly new; reordered; old
        ts = NOW + rng.choice((0, 0, 0, -2 * SEC, SEC))
        frames = [msg(sender, nonce, ts, bytes([k % 251]) * rng.choice((24, 40)))]
        if rng.random() < 0.5:
            frames.append(msg(sender if rng.random() < 0.95 else 15 - sender, nonce, ts))
        sealed = [bytes(f) for f in Sealer(KEY_A if sender == 7 else KEY_B).seal_parts(frames)]
        roll = rng.random()
        if roll < 0.05:  # forged: one bit of the last frame
            last = bytearray(sealed[-1])
            last[rng.randrange(len(last))] ^= 1 << rng.randrange(8)
            sealed[-1] = bytes(last)
        elif roll < 0.08 and history:  # a replay of an earlier message
            sealed = history[rng.randrange(len(history))]
        elif roll < 0.09:  # too short
            sealed[-1] = sealed[-1][: rng.randrange(ENVELOPE_BYTES + TAG_BYTES)]
        history.append(sealed)
        outcomes: list[tuple[str, object, int | None]] = []
        for op, as_type in ((fast, bytes), (general, bytearray)):
            try:
                got = op.open_parts([as_type(f) for f in sealed])
                outcomes.append(("ok", [bytes(f) for f in got], op.last_sender))
            except MessageRefused as exc:
                outcomes.append(("refused", exc.reason, None))
        assert outcomes[0] == outcomes[1], k
        assert fast.refusals == general.refusals and fast.accepted == general.accepted, k
        for s_id in (7, 8):
            assert fast.highest_nonce(s_id) == general.highest_nonce(s_id), k
            assert fast._peers[s_id].bits == general._peers[s_id].bits, k
    assert fast.accepted > 1000 and all(
        fast.refusals[r] > 0 for r in ("short", "bad_tag", "too_old", "replayed", "skew_past",
                                       "skew_future")
    ), fast.refusals  # fmt: skip

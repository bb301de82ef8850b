"""Pairwise-mask secure aggregation: seeds, mask words, fixed point, masking, dropouts."""

from __future__ import annotations

import hashlib
import hmac
import itertools
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from arbsphere.errors import AggregationError, ConfigError
from arbsphere.privacy.secure_agg import (
    MASK_INFO,
    FixedPoint,
    MaskedSum,
    MaskingParty,
    _shake_words,
    mask_info,
    mask_words,
    pair_seed,
    public_raw,
    reveals_individual_inputs,
    survivors_epoch,
)

# RFC 7748 section 6.1
ALICE_PRIV = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUB = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIV = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUB = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
RFC7748_SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

SESSION = b"run-0001/sum-x"


def hkdf_sha256_reference(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with stdlib hmac: an independent recomputation for the tests only."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def keys(n: int, seed: int = 7) -> dict[int, X25519PrivateKey]:
    """Deterministic X25519 keys for party ids 1..n (ids deliberately not 0-based)."""
    rng = np.random.default_rng(seed)
    return {pid: X25519PrivateKey.from_private_bytes(rng.bytes(32)) for pid in range(1, n + 1)}


def parties(n: int, fixed: FixedPoint, session: bytes = SESSION) -> dict[int, MaskingParty]:
    privs = keys(n)
    directory = {pid: public_raw(k) for pid, k in privs.items()}
    return {pid: MaskingParty(pid, k, directory, fixed, session) for pid, k in privs.items()}


def plain_sum(fixed: FixedPoint, inputs: dict[int, np.ndarray]) -> list[int]:
    """The fixed-point sum in Python integers (no modular arithmetic at all)."""
    m = len(next(iter(inputs.values())))
    return [sum(round(float(v[k]) * 2**fixed.frac_bits) for v in inputs.values()) for k in range(m)]


# --- seeds ---------------------------------------------------------------------------------


def test_hkdf_reference_matches_rfc5869_case_1() -> None:
    okm = hkdf_sha256_reference(bytes([0x0B] * 22), bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_pair_seed_known_answer_from_rfc7748_keys() -> None:
    alice = X25519PrivateKey.from_private_bytes(ALICE_PRIV)
    bob = X25519PrivateKey.from_private_bytes(BOB_PRIV)
    assert public_raw(alice) == ALICE_PUB and public_raw(bob) == BOB_PUB
    info = mask_info(round_id=5, iteration=3, epoch=1, a=9, b=4)
    assert info == (
        b"arbsphere-mask-v1\x00"
        + bytes.fromhex("000000000000000400000000000000090000000000000005")
        + bytes.fromhex("00000000000000030000000000000001")
    )
    expected = hkdf_sha256_reference(RFC7748_SHARED, SESSION, info, 32)
    args: dict[str, Any] = {"session": SESSION, "round_id": 5, "iteration": 3, "epoch": 1}
    assert pair_seed(alice, BOB_PUB, **args, a=4, b=9) == expected
    assert pair_seed(bob, ALICE_PUB, **args, a=9, b=4) == expected


def test_both_parties_derive_the_same_seed_and_strangers_do_not() -> None:
    k = keys(3)
    pub = {pid: public_raw(p) for pid, p in k.items()}
    args: dict[str, Any] = {
        "session": SESSION,
        "round_id": 1,
        "iteration": 0,
        "epoch": 0,
        "a": 1,
        "b": 2,
    }
    s12 = pair_seed(k[1], pub[2], **args)
    assert s12 == pair_seed(k[2], pub[1], **args)
    assert len(s12) == 32
    assert pair_seed(k[3], pub[1], **args) != s12  # party 3 cannot derive the 1-2 seed


@pytest.mark.parametrize(
    "change",
    [
        {"session": b"run-0002/sum-x"},
        {"round_id": 2},
        {"iteration": 1},
        {"epoch": 1},
        {"a": 1, "b": 3},
    ],
)
def test_seeds_differ_across_session_round_iteration_epoch_and_pair(change: dict[str, Any]) -> None:
    k = keys(2)
    base: dict[str, Any] = {"session": SESSION, "round_id": 1, "iteration": 0, "epoch": 0,
                            "a": 1, "b": 2}  # fmt: skip
    s0 = pair_seed(k[1], public_raw(k[2]), **base)
    assert pair_seed(k[1], public_raw(k[2]), **{**base, **change}) != s0


def test_pair_seed_refusals() -> None:
    k = keys(2)
    args: dict[str, Any] = {"session": SESSION, "round_id": 1, "iteration": 0, "epoch": 0}
    with pytest.raises(AggregationError, match="two distinct party ids") as e:
        pair_seed(k[1], public_raw(k[2]), **args, a=3, b=3)
    assert e.value.reason == "pair"
    with pytest.raises(AggregationError, match="32 raw bytes, got 31") as e:
        pair_seed(k[1], public_raw(k[2])[:31], **args, a=1, b=2)
    assert e.value.reason == "key"
    with pytest.raises(AggregationError, match="agreement") as e:  # low-order point: all zero
        pair_seed(k[1], bytes(32), **args, a=1, b=2)
    assert e.value.reason == "key"
    with pytest.raises(AggregationError, match="session"):
        pair_seed(k[1], public_raw(k[2]), **{**args, "session": b""}, a=1, b=2)
    with pytest.raises(AggregationError, match="round_id -1"):
        pair_seed(k[1], public_raw(k[2]), **{**args, "round_id": -1}, a=1, b=2)
    with pytest.raises(AggregationError, match="epoch 18446744073709551616"):
        pair_seed(k[1], public_raw(k[2]), **{**args, "epoch": 2**64}, a=1, b=2)


# --- mask words ----------------------------------------------------------------------------


def test_mask_words_fixed_vector() -> None:
    seed = bytes(range(32))
    words = mask_words(seed, 4)
    assert words.dtype == np.uint64
    assert [f"{int(w):016x}" for w in words] == [
        "0280ce40887cf069",
        "5b3d2c883909b34d",
        "13451ee3b3989cbc",
        "d3cd03459bcad2eb",
    ]
    # independent recomputation: SHAKE-256 squeezed, read as little-endian u64
    digest = hashlib.shake_256(seed).digest(32)
    assert [int.from_bytes(digest[8 * i : 8 * i + 8], "little") for i in range(4)] == [
        int(w) for w in words
    ]
    # an XOF: the first words do not depend on how many are asked for
    assert np.array_equal(mask_words(seed, 1000)[:4], words)
    assert mask_words(seed, 0).shape == (0,)


def test_word_expansion_known_answer_fips202_shake256_empty() -> None:
    """FIPS 202 SHAKE256("") = 46b9dd2b0ba88d13233b3feb...: the byte order of the words."""
    words = _shake_words(b"", 4)
    assert [f"{int(w):016x}" for w in words] == [
        "138da80b2bddb946",  # bytes 46 b9 dd 2b 0b a8 8d 13, little-endian
        "24eb3e74eb3f3b23",
        "821bb862ea52cd3f",
        "2f76d56e64270cb5",
    ]


def test_mask_words_refuses_bad_seed() -> None:
    with pytest.raises(AggregationError, match="32 bytes"):
        mask_words(b"short", 4)
    with pytest.raises(AggregationError, match="mask length -1"):
        mask_words(bytes(32), -1)


# --- fixed point ---------------------------------------------------------------------------


def test_fixed_point_encode_decode_and_twos_complement() -> None:
    fx = FixedPoint(16, 100.0, 4)
    words = fx.encode(np.array([1.5, -1.5, 0.0, 100.0, -100.0, 2**-17 * 3]))
    assert words.dtype == np.uint64
    assert int(words[0]) == 3 << 15
    assert int(words[1]) == 2**64 - (3 << 15)  # two's complement of -1.5·2^16
    assert int(words[3]) == 100 << 16 and int(words[4]) == 2**64 - (100 << 16)
    assert int(words[5]) == 2  # rint(1.5) = 2 (round half to even)
    assert np.array_equal(fx.decode(words)[:5], [1.5, -1.5, 0.0, 100.0, -100.0])


def test_fixed_point_headroom_refusal_names_the_numbers() -> None:
    # 2 · rint((2^52 - 0.5)·2^10) = 2^63 - 2^10: fits
    FixedPoint(10, 2.0**52 - 0.5, 2)
    with pytest.raises(AggregationError, match=r"n_parties 2 × max_abs 4503599627370496.0 × 2\^10"):
        FixedPoint(10, 2.0**52, 2)  # 2 · 2^62 = 2^63: does not fit
    with pytest.raises(AggregationError) as e:
        FixedPoint(44, 1e6, 8)
    assert e.value.reason == "headroom" and "2^63" in str(e.value)
    with pytest.raises(AggregationError, match="headroom"):
        FixedPoint(1000, 1.0, 2)  # 2^1000 overflows float64 entirely


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((-1, 1.0, 2), "frac_bits -1"),
        ((16, 0.0, 2), "max_abs 0.0"),
        ((16, float("nan"), 2), "max_abs nan"),
        ((16, 1.0, 0), "n_parties 0"),
    ],
)
def test_fixed_point_bad_parameters(args: tuple, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FixedPoint(*args)


def test_encode_refuses_out_of_range_and_non_finite_naming_index_and_value() -> None:
    fx = FixedPoint(20, 1000.0, 4)
    with pytest.raises(AggregationError, match=r"index 2 is 1000.5, outside .*±1000.0") as e:
        fx.encode(np.array([0.0, -1000.0, 1000.5, 5e6]))
    assert e.value.reason == "range" and "2 value(s)" in str(e.value)
    with pytest.raises(AggregationError, match="index 1 is nan"):
        fx.encode(np.array([1.0, np.nan]))
    with pytest.raises(AggregationError, match="index 0 is -inf"):
        fx.encode(np.array([-np.inf]))
    with pytest.raises(AggregationError, match="1-D"):
        fx.encode(np.zeros((2, 2)))


# --- masking and summing -------------------------------------------------------------------


def run_round(
    ps: dict[int, MaskingParty],
    inputs: dict[int, np.ndarray],
    fixed: FixedPoint,
    *,
    participants: frozenset[int],
    round_id: int = 1,
    iteration: int = 0,
    epoch: int = 0,
) -> tuple[MaskedSum, dict[int, np.ndarray]]:
    agg = MaskedSum(fixed, participants, epoch=epoch)
    shares = {}
    for pid in sorted(participants):
        shares[pid] = ps[pid].mask(
            inputs[pid],
            round_id=round_id,
            iteration=iteration,
            participants=participants,
            epoch=epoch,
        )
        agg.add(pid, shares[pid])
    return agg, shares


@pytest.mark.parametrize("n", range(2, 9))
def test_sum_is_bit_exact_and_shares_hide_inputs(n: int) -> None:
    fixed = FixedPoint(24, 1e4, 8)
    rng = np.random.default_rng(100 + n)
    m = 16
    inputs = {pid: rng.uniform(-1e4, 1e4, m) for pid in range(1, n + 1)}
    inputs[1][0] = 1e4  # the range's edges are accepted
    inputs[2][0] = -1e4
    ps = parties(n, fixed)
    everyone = frozenset(inputs)
    agg, shares = run_round(ps, inputs, fixed, participants=everyone)
    assert agg.complete()
    expected = plain_sum(fixed, inputs)
    assert [int(v) for v in agg.result_fixed()] == expected
    assert np.array_equal(agg.result(), np.array(expected, dtype=np.float64) / 2**24)

    for pid, share in shares.items():  # every word of every share is masked
        assert np.all(share != fixed.encode(inputs[pid]))
    for k in range(1, n):  # no strict subset's masks cancel
        for subset in itertools.combinations(sorted(everyone), k):
            total = np.zeros(m, np.uint64)
            for pid in subset:
                total += shares[pid]
            sub = np.array(plain_sum(fixed, {p: inputs[p] for p in subset}), dtype=np.int64)
            assert np.all(total.view(np.int64) != sub), subset


def test_dropout_refuses_then_survivors_rerun_exactly_with_fresh_masks() -> None:
    fixed = FixedPoint(20, 1e3, 5)
    rng = np.random.default_rng(5)
    inputs = {pid: rng.uniform(-1e3, 1e3, 8) for pid in range(1, 6)}
    ps = parties(5, fixed)
    everyone = frozenset(inputs)
    agg = MaskedSum(fixed, everyone)
    first = {}
    for pid in (1, 2, 4, 5):  # party 3 drops out
        first[pid] = ps[pid].mask(
            inputs[pid], round_id=7, iteration=2, participants=everyone, epoch=0
        )
        agg.add(pid, first[pid])
    assert not agg.complete() and agg.missing == {3}
    with pytest.raises(AggregationError, match=r"no share from party\(ies\) \[3\]") as e:
        agg.result()
    assert e.value.reason == "dropout"
    with pytest.raises(AggregationError, match="dropout"):
        agg.result_fixed()

    survivors, epoch = agg.next_epoch()
    assert survivors == {1, 2, 4, 5} and epoch == 1
    late = ps[3].mask(inputs[3], round_id=7, iteration=2, participants=everyone, epoch=0)
    with pytest.raises(AggregationError, match="after epoch 0 was aborted") as e:
        agg.add(3, late)  # a late share of the dropped party is never combined
    assert e.value.reason == "closed"

    rerun, second = run_round(
        ps, inputs, fixed, participants=survivors, round_id=7, iteration=2, epoch=epoch
    )
    assert [int(v) for v in rerun.result_fixed()] == plain_sum(
        fixed, {p: inputs[p] for p in survivors}
    )
    for pid in survivors:  # same inputs, new epoch: entirely different masks
        assert np.all(second[pid] != first[pid])


def test_survivors_epoch_refusals() -> None:
    assert survivors_epoch([1, 2, 3], [1, 3], 4) == (frozenset({1, 3}), 5)
    with pytest.raises(AggregationError, match=r"only \[2\] of \[1, 2, 3\]") as e:
        survivors_epoch([1, 2, 3], [2], 0)
    assert e.value.reason == "too_few"
    with pytest.raises(AggregationError, match=r"present parties \[9\]"):
        survivors_epoch([1, 2, 3], [1, 9], 0)


def test_masked_sum_refusals() -> None:
    fixed = FixedPoint(16, 10.0, 3)
    agg = MaskedSum(fixed, [1, 2, 3], epoch=2)
    agg.add(1, np.zeros(4, np.uint64))
    cases = [
        (9, np.zeros(4, np.uint64), "not_participant", "party 9 is not a participant"),
        (1, np.zeros(4, np.uint64), "duplicate", "party 1 already sent"),
        (2, np.zeros(5, np.uint64), "length", "has 5 words, expected 4"),
        (2, np.zeros(4, np.int64), "shape", "1-D uint64"),
        (2, np.zeros((2, 2), np.uint64), "shape", "1-D uint64"),
    ]
    for pid, share, reason, match in cases:
        with pytest.raises(AggregationError, match=match) as e:
            agg.add(pid, share)
        assert e.value.reason == reason
    assert agg.received == {1}  # nothing refused was absorbed
    with pytest.raises(AggregationError, match="at least 2") as e:
        MaskedSum(fixed, [1])
    assert e.value.reason == "too_few"
    with pytest.raises(AggregationError, match="headroom for 3 parties") as e:
        MaskedSum(fixed, [1, 2, 3, 4])
    assert e.value.reason == "headroom"
    with pytest.raises(AggregationError, match="twice"):
        MaskedSum(fixed, [1, 2, 2])
    fixed_len = MaskedSum(fixed, [1, 2], length=3)
    with pytest.raises(AggregationError, match="expected 3"):
        fixed_len.add(1, np.zeros(4, np.uint64))


def test_masking_party_refusals() -> None:
    fixed = FixedPoint(16, 10.0, 3)
    ps = parties(3, fixed)
    p1 = ps[1]
    args: dict[str, Any] = {"round_id": 3, "iteration": 1, "epoch": 0}
    with pytest.raises(AggregationError, match=r"party 1 is not among .*\[2, 3\]") as e:
        p1.mask(np.ones(2), participants=[2, 3], **args)
    assert e.value.reason == "not_participant"
    with pytest.raises(AggregationError, match=r"no public key for participant\(s\) \[7\]") as e:
        p1.mask(np.ones(2), participants=[1, 7], **args)
    assert e.value.reason == "unknown_peer"
    with pytest.raises(AggregationError, match="headroom"):
        MaskingParty(1, keys(1)[1], {}, FixedPoint(16, 10.0, 2), SESSION).mask(
            np.ones(2), participants=[1, 2, 3], **args
        )
    with pytest.raises(AggregationError, match=r"index 1 is 11\.0") as e:
        p1.mask(np.array([1.0, 11.0]), participants=[1, 2, 3], **args)
    assert e.value.reason == "range"
    # refusals consumed nothing: the same (round, iteration, epoch) still masks
    p1.mask(np.ones(2), participants=[1, 2, 3], **args)
    for again in (args, {"round_id": 3, "iteration": 0, "epoch": 5}, {**args, "round_id": 2}):
        with pytest.raises(AggregationError, match="must never be reused") as e:
            p1.mask(np.ones(2), participants=[1, 2, 3], **again)
        assert e.value.reason == "mask_reuse"
    p1.mask(np.ones(2), participants=[1, 2], **{**args, "epoch": 1})


def test_masking_party_configuration_refusals() -> None:
    fixed = FixedPoint(16, 10.0, 3)
    k = keys(2)
    with pytest.raises(ConfigError, match="another key"):
        MaskingParty(1, k[1], {1: public_raw(k[2])}, fixed, SESSION)
    with pytest.raises(ConfigError, match="peer 2 must be 32 raw bytes"):
        MaskingParty(1, k[1], {2: b"\x01" * 16}, fixed, SESSION)
    with pytest.raises(ConfigError, match="session"):
        MaskingParty(1, k[1], {2: public_raw(k[2])}, fixed, b"")


def test_masking_party_seed_matches_pair_seed() -> None:
    fixed = FixedPoint(16, 10.0, 3)
    ps = parties(3, fixed)
    k = keys(3)
    args: dict[str, Any] = {"round_id": 11, "iteration": 4, "epoch": 2}
    s = ps[3].seed(1, **args)
    assert s == pair_seed(k[1], public_raw(k[3]), session=SESSION, a=1, b=3, **args)
    assert s == ps[1].seed(3, **args)
    assert MASK_INFO.startswith(b"arbsphere-mask-v1")


def test_different_sessions_give_different_shares() -> None:
    fixed = FixedPoint(16, 10.0, 2)
    x = np.array([1.0, 2.0])
    a = parties(2, fixed, b"stream-x")[1].mask(
        x, round_id=1, iteration=0, participants=[1, 2], epoch=0
    )
    b = parties(2, fixed, b"stream-signals")[1].mask(
        x, round_id=1, iteration=0, participants=[1, 2], epoch=0
    )
    assert np.all(a != b)


def test_two_parties_sum_reveals_the_other_input() -> None:
    fixed = FixedPoint(20, 100.0, 2)
    inputs = {1: np.array([3.25, -7.5]), 2: np.array([10.0, 0.125])}
    agg, _ = run_round(parties(2, fixed), inputs, fixed, participants=frozenset({1, 2}))
    assert np.array_equal(agg.result() - inputs[1], inputs[2])  # what the docstring warns of
    assert reveals_individual_inputs(2) and reveals_individual_inputs(1)
    assert not reveals_individual_inputs(3) and not reveals_individual_inputs(8)
    with pytest.raises(ConfigError, match="n_parties 0"):
        reveals_individual_inputs(0)

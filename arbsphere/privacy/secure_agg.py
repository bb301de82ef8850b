"""Secure aggregation with pairwise masks: the coordinator learns Σ_i x_i, never an x_i.

This module owns the masking of one party's vector, the coordinator's masked sum, the
fixed-point encoding both share, and the per-pair mask seeds. It follows the pairwise-mask
protocol of Bonawitz et al. (CCS 2017) *without* the secret-sharing recovery: a party that
drops out aborts the round, which is re-run among the survivors under a new ``epoch`` (fresh
seeds, fresh masks).

Seeds (:func:`pair_seed`)
    ``s_ab = HKDF-SHA256(IKM = X25519(my_private, peer_public), salt = session,
    info = MASK_INFO || u64be(min(a,b)) || u64be(max(a,b)) || u64be(round_id) ||
    u64be(iteration) || u64be(epoch), L = 32)`` with ``MASK_INFO = b"arbsphere-mask-v1\\0"``.
    Both parties of a pair derive the same 32 bytes; anything else gets unrelated bytes.

Mask expansion (:func:`mask_words`)
    ``SHAKE-256(seed)`` (FIPS 202, :func:`hashlib.shake_256`) squeezed to ``8·m`` bytes, read
    as ``m`` little-endian uint64 words. SHAKE-256 is an extendable-output function, so the
    words are a deterministic, cryptographically strong stream, and the first
    ``k`` words do not depend on ``m``. (NumPy's Philox was not used: it is not a
    cryptographic PRG, and masks must be indistinguishable from random.)

Fixed point (:class:`FixedPoint`)
    ``q = rint(v · 2^F)`` as int64, carried as its uint64 two's complement; sums are taken
    modulo 2^64 and read back as int64. Headroom (``n_parties · rint(max_abs · 2^F) < 2^63``)
    is asserted at construction, and inputs outside ``±max_abs`` are refused, so the true sum
    always fits and nothing wraps silently.

Masking (:class:`MaskingParty`)
    ``y_i = q(x_i) + Σ_{j∈P, j>i} PRG(s_ij) − Σ_{j∈P, j<i} PRG(s_ij)  (mod 2^64)`` over the
    round's participants ``P``. Each pair's mask enters once with + and once with −, so
    ``Σ_{i∈P} y_i = Σ_{i∈P} q(x_i)`` exactly, while any strict subset of shares still carries
    uncancelled masks.

Security notes. Honest-but-curious coordinator, authenticated public keys (the credentials'
job). A dropped party's late share must be discarded (:meth:`MaskedSum.abort` refuses it):
combined with the survivors' re-run it would reveal that party's input. With two parties the
sum itself reveals the other's input (:func:`reveals_individual_inputs`).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Collection, Mapping

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from arbsphere.errors import AggregationError, ConfigError

#: HKDF info prefix of every pair seed (versioned; the NUL ends the label)
MASK_INFO = b"arbsphere-mask-v1\x00"
#: bytes of a pair seed
SEED_BYTES = 32
#: bytes of a raw X25519 public key
X25519_PUBLIC_BYTES = 32

_U64_MAX = (1 << 64) - 1
_I63 = 1 << 63
_INFO_TAIL = struct.Struct(">QQQQQ")


# --- seeds and mask words -------------------------------------------------------------------


def _check_u64(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise AggregationError(f"{name} {value!r}: must be an integer", reason="config")
    if not 0 <= int(value) <= _U64_MAX:
        raise AggregationError(f"{name} {value}: must be in 0..2^64-1", reason="config")
    return int(value)


def mask_info(*, round_id: int, iteration: int, epoch: int, a: int, b: int) -> bytes:
    """The HKDF ``info`` of the pair ``{a, b}``: :data:`MASK_INFO` then five big-endian u64
    (min id, max id, round, iteration, epoch)."""
    a = _check_u64("party id a", a)
    b = _check_u64("party id b", b)
    if a == b:
        raise AggregationError(f"a pair needs two distinct party ids, got {a} twice", reason="pair")
    return MASK_INFO + _INFO_TAIL.pack(
        min(a, b),
        max(a, b),
        _check_u64("round_id", round_id),
        _check_u64("iteration", iteration),
        _check_u64("epoch", epoch),
    )


def shared_secret(my_private: X25519PrivateKey, peer_public_raw: bytes) -> bytes:
    """The raw X25519 agreement with a peer's 32-byte public key (refuses malformed keys and
    low-order points, whose agreement would be all zero)."""
    if not isinstance(peer_public_raw, bytes | bytearray) or len(peer_public_raw) != 32:
        size = len(peer_public_raw) if isinstance(peer_public_raw, bytes | bytearray) else "?"
        raise AggregationError(
            f"peer X25519 public key must be {X25519_PUBLIC_BYTES} raw bytes, got {size}",
            reason="key",
        )
    try:
        return my_private.exchange(X25519PublicKey.from_public_bytes(bytes(peer_public_raw)))
    except ValueError as exc:
        raise AggregationError(
            f"X25519 agreement with public key {bytes(peer_public_raw).hex()} failed: {exc}",
            reason="key",
        ) from exc


def seed_from_secret(
    secret: bytes, *, session: bytes, round_id: int, iteration: int, epoch: int, a: int, b: int
) -> bytes:
    """HKDF-SHA256 of an X25519 agreement into the pair seed (see the module docstring)."""
    if not isinstance(session, bytes | bytearray) or not session:
        raise AggregationError("session must be non-empty bytes", reason="config")
    info = mask_info(round_id=round_id, iteration=iteration, epoch=epoch, a=a, b=b)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=SEED_BYTES, salt=bytes(session), info=info)
    return hkdf.derive(secret)


def pair_seed(
    my_private: X25519PrivateKey,
    peer_public_raw: bytes,
    *,
    session: bytes,
    round_id: int,
    iteration: int,
    epoch: int,
    a: int,
    b: int,
) -> bytes:
    """The 32-byte mask seed of parties ``a`` and ``b`` for one (session, round, iteration,
    epoch); ``a``/``b`` may be given in either order and both parties derive the same seed."""
    secret = shared_secret(my_private, peer_public_raw)
    return seed_from_secret(
        secret, session=session, round_id=round_id, iteration=iteration, epoch=epoch, a=a, b=b
    )


def mask_words(seed: bytes, m: int) -> np.ndarray:
    """``m`` uint64 mask words from a 32-byte seed: SHAKE-256(seed) read as little-endian u64."""
    if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_BYTES:
        raise AggregationError(f"mask seed must be {SEED_BYTES} bytes", reason="config")
    if m < 0:
        raise AggregationError(f"mask length {m}: must be >= 0", reason="config")
    return _shake_words(bytes(seed), m)


def _shake_words(data: bytes, m: int) -> np.ndarray:
    return np.frombuffer(hashlib.shake_256(data).digest(8 * m), dtype="<u8").astype(np.uint64)


def public_raw(private: X25519PrivateKey) -> bytes:
    """The 32-byte raw public key of an X25519 private key (what peers put in their maps)."""
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def reveals_individual_inputs(n_parties: int) -> bool:
    """Whether the aggregate itself exposes an individual input to a participant.

    True for two parties (or one): whoever learns the sum and knows its own input learns the
    other party's input exactly, ``x_j = Σ − x_i`` — masking cannot help, the *output* leaks.
    From three parties on a single participant learns only the sum of the others (still, any
    ``n − 1`` colluding parties learn the remaining one; the masks protect inputs in transit
    and from the coordinator, not from what the sum implies). The manifest and report state
    this for two-venue runs."""
    if isinstance(n_parties, bool) or not isinstance(n_parties, int) or n_parties < 1:
        raise ConfigError(f"n_parties {n_parties!r}: must be an integer >= 1")
    return n_parties <= 2


# --- fixed point ----------------------------------------------------------------------------


class FixedPoint:
    """Signed fixed point with ``frac_bits`` fractional bits, carried modulo 2^64.

    Construction asserts headroom: the sum of ``n_parties`` inputs of magnitude up to
    ``max_abs`` must stay strictly inside int64 (``n_parties · rint(max_abs·2^F) < 2^63``)."""

    def __init__(self, frac_bits: int, max_abs: float, n_parties: int) -> None:
        if isinstance(frac_bits, bool) or not isinstance(frac_bits, int) or frac_bits < 0:
            raise ConfigError(f"frac_bits {frac_bits!r}: must be an integer >= 0")
        if isinstance(n_parties, bool) or not isinstance(n_parties, int) or n_parties < 1:
            raise ConfigError(f"n_parties {n_parties!r}: must be an integer >= 1")
        max_abs = float(max_abs)
        if not (np.isfinite(max_abs) and max_abs > 0):
            raise ConfigError(f"max_abs {max_abs!r}: must be finite and > 0")
        self.frac_bits = frac_bits
        self.max_abs = max_abs
        self.n_parties = n_parties
        self.scale = float(2.0**frac_bits)
        scaled = max_abs * self.scale
        max_q = int(np.rint(scaled)) if np.isfinite(scaled) else None
        if max_q is None or n_parties * max_q >= _I63:
            raise AggregationError(
                f"no headroom: n_parties {n_parties} × max_abs {max_abs!r} × 2^{frac_bits} = "
                f"{n_parties * max_abs * self.scale:.6g} must stay below 2^63 = {_I63}",
                reason="headroom",
            )
        self.max_q = max_q

    def __repr__(self) -> str:
        return (
            f"FixedPoint(frac_bits={self.frac_bits}, max_abs={self.max_abs!r}, "
            f"n_parties={self.n_parties})"
        )

    def encode(self, values: np.ndarray | list[float]) -> np.ndarray:
        """uint64 two's complement of ``rint(values · 2^F)``; refuses non-finite values and
        ``|value| > max_abs`` naming the first offending index."""
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1:
            raise AggregationError(
                f"values must be a 1-D vector, got shape {arr.shape}", reason="shape"
            )
        bad = np.flatnonzero(~(np.abs(arr) <= self.max_abs))
        if bad.size:
            i = int(bad[0])
            raise AggregationError(
                f"value at index {i} is {float(arr[i])!r}, outside the fixed-point range "
                f"±{self.max_abs!r} ({bad.size} value(s) out of range)",
                reason="range",
            )
        return np.rint(arr * self.scale).astype(np.int64).view(np.uint64)

    def decode(self, words: np.ndarray) -> np.ndarray:
        """float64 of uint64 words read as int64 two's complement, times 2^-F."""
        q = np.asarray(words, dtype=np.uint64).view(np.int64)
        return q.astype(np.float64) / self.scale


# --- parties and the coordinator's sum ------------------------------------------------------


def _check_participants(participants: Collection[int]) -> frozenset[int]:
    ids = frozenset(_check_u64("participant id", p) for p in participants)
    if len(ids) != len(list(participants)):
        raise AggregationError(
            f"participants {sorted(participants)} list a party twice", reason="config"
        )
    if len(ids) < 2:
        raise AggregationError(
            f"pairwise masking needs at least 2 participants, got {sorted(ids)}",
            reason="too_few",
        )
    return ids


class MaskingParty:
    """One party's side: masks its vector for a round among the given participants.

    ``peer_publics`` maps every other party's id to its raw X25519 public key (an entry for
    this party itself is allowed if it matches its own key). X25519 agreements are computed
    once per peer and cached; seeds are derived per (round, iteration, epoch).

    A party never masks twice under the same seeds: the (round_id, iteration, epoch) of each
    call must be strictly greater (lexicographically) than the previous one, otherwise the
    call is refused (``reason="mask_reuse"``) — two shares under one mask reveal the
    difference of their inputs. Use one ``MaskingParty`` (one ``session``) per aggregated
    stream (e.g. Σx and SharedSignals), and keep a share if it must be re-sent."""

    def __init__(
        self,
        party_id: int,
        x25519_private: X25519PrivateKey,
        peer_publics: Mapping[int, bytes],
        fixed: FixedPoint,
        session: bytes,
    ) -> None:
        self.party_id = _check_u64("party_id", party_id)
        if not isinstance(x25519_private, X25519PrivateKey):
            raise ConfigError(f"party {party_id}: x25519_private must be an X25519PrivateKey")
        if not isinstance(session, bytes | bytearray) or not session:
            raise ConfigError(f"party {party_id}: session must be non-empty bytes")
        self._private = x25519_private
        self.public_raw = public_raw(x25519_private)
        self.fixed = fixed
        self.session = bytes(session)
        self._peers: dict[int, bytes] = {}
        for pid, raw in peer_publics.items():
            pid = _check_u64("peer id", pid)
            if not isinstance(raw, bytes | bytearray) or len(raw) != X25519_PUBLIC_BYTES:
                raise ConfigError(
                    f"party {party_id}: public key of peer {pid} must be "
                    f"{X25519_PUBLIC_BYTES} raw bytes"
                )
            if pid == self.party_id:
                if bytes(raw) != self.public_raw:
                    raise ConfigError(
                        f"party {party_id}: peer_publics lists this party with another key"
                    )
                continue
            self._peers[pid] = bytes(raw)
        self._secrets: dict[int, bytes] = {}
        self._last: tuple[int, int, int] | None = None

    def _secret(self, peer: int) -> bytes:
        secret = self._secrets.get(peer)
        if secret is None:
            secret = shared_secret(self._private, self._peers[peer])
            self._secrets[peer] = secret
        return secret

    def seed(self, peer: int, *, round_id: int, iteration: int, epoch: int) -> bytes:
        """The pair seed with ``peer`` (what :func:`pair_seed` gives, from the cached
        agreement)."""
        if peer not in self._peers:
            raise AggregationError(
                f"party {self.party_id}: no public key for peer {peer}", reason="unknown_peer"
            )
        return seed_from_secret(
            self._secret(peer),
            session=self.session,
            round_id=round_id,
            iteration=iteration,
            epoch=epoch,
            a=self.party_id,
            b=peer,
        )

    def mask(
        self,
        values: np.ndarray,
        *,
        round_id: int,
        iteration: int,
        participants: Collection[int],
        epoch: int,
    ) -> np.ndarray:
        """The masked share (uint64, one word per value) of ``values`` for this round."""
        return self.mask_encoded(
            self.fixed.encode(values), round_id=round_id, iteration=iteration,
            participants=participants, epoch=epoch,
        )  # fmt: skip

    def mask_encoded(
        self,
        words: np.ndarray,
        *,
        round_id: int,
        iteration: int,
        participants: Collection[int],
        epoch: int,
    ) -> np.ndarray:
        """The masked share of words the caller already encoded (uint64, e.g. several
        fixed-point scales in one vector, each with its own headroom): :meth:`mask` without
        the encoding, with the same participant, headroom and mask-reuse checks. ``words`` is
        not modified."""
        arr = np.asarray(words)
        if arr.dtype != np.uint64 or arr.ndim != 1:
            raise AggregationError(
                f"words must be a 1-D uint64 vector, got {arr.dtype} shape {arr.shape}",
                reason="shape",
            )
        ids = _check_participants(participants)
        if self.party_id not in ids:
            raise AggregationError(
                f"party {self.party_id} is not among the participants {sorted(ids)}",
                reason="not_participant",
            )
        if len(ids) > self.fixed.n_parties:
            raise AggregationError(
                f"{len(ids)} participants exceed the fixed point's headroom for "
                f"{self.fixed.n_parties} parties",
                reason="headroom",
            )
        unknown = sorted(p for p in ids if p != self.party_id and p not in self._peers)
        if unknown:
            raise AggregationError(
                f"party {self.party_id}: no public key for participant(s) {unknown}",
                reason="unknown_peer",
            )
        key = (
            _check_u64("round_id", round_id),
            _check_u64("iteration", iteration),
            _check_u64("epoch", epoch),
        )
        if self._last is not None and key <= self._last:
            raise AggregationError(
                f"party {self.party_id}: (round, iteration, epoch) {key} does not follow "
                f"{self._last}; masks must never be reused",
                reason="mask_reuse",
            )
        share = arr.copy()
        for peer in sorted(ids - {self.party_id}):
            seed = self.seed(peer, round_id=round_id, iteration=iteration, epoch=epoch)
            words = _shake_words(seed, share.shape[0])
            if peer > self.party_id:
                share += words
            else:
                share -= words
        self._last = key
        return share


def survivors_epoch(
    participants: Collection[int], present: Collection[int], epoch: int
) -> tuple[frozenset[int], int]:
    """The participants and epoch of the re-run after a dropout: the ``present`` parties
    (which must be participants) and ``epoch + 1``. Refuses fewer than 2 survivors."""
    ids = frozenset(participants)
    alive = frozenset(present)
    strangers = sorted(alive - ids)
    if strangers:
        raise AggregationError(
            f"present parties {strangers} were not participants {sorted(ids)}",
            reason="not_participant",
        )
    if len(alive) < 2:
        raise AggregationError(
            f"only {sorted(alive)} of {sorted(ids)} survived: at least 2 are needed to re-mask",
            reason="too_few",
        )
    return alive, _check_u64("epoch", epoch) + 1


class MaskedSum:
    """The coordinator's side: collects one masked share per participant and reveals only
    their sum. Incomplete rounds refuse to produce a result (``reason="dropout"``, naming the
    missing parties); re-run with :meth:`next_epoch`'s survivors and epoch."""

    def __init__(
        self,
        fixed: FixedPoint,
        participants: Collection[int],
        *,
        epoch: int = 0,
        length: int | None = None,
    ) -> None:
        self.fixed = fixed
        self.participants = _check_participants(participants)
        if len(self.participants) > fixed.n_parties:
            raise AggregationError(
                f"{len(self.participants)} participants exceed the fixed point's headroom for "
                f"{fixed.n_parties} parties",
                reason="headroom",
            )
        self.epoch = _check_u64("epoch", epoch)
        if length is not None and length < 0:
            raise AggregationError(f"length {length}: must be >= 0", reason="config")
        self.length = length
        self._acc: np.ndarray | None = None
        self._received: set[int] = set()
        self.closed = False

    @property
    def received(self) -> frozenset[int]:
        """The parties whose share has been added."""
        return frozenset(self._received)

    @property
    def missing(self) -> frozenset[int]:
        """The participants whose share has not arrived."""
        return self.participants - self._received

    def add(self, party_id: int, share: np.ndarray) -> None:
        """Absorb one party's masked share (refuses closed rounds, non-participants,
        duplicates, non-uint64 or wrongly shaped shares)."""
        if self.closed:
            raise AggregationError(
                f"share of party {party_id} arrived after epoch {self.epoch} was aborted",
                reason="closed",
            )
        if party_id not in self.participants:
            raise AggregationError(
                f"party {party_id} is not a participant of epoch {self.epoch} "
                f"{sorted(self.participants)}",
                reason="not_participant",
            )
        if party_id in self._received:
            raise AggregationError(
                f"party {party_id} already sent its share for epoch {self.epoch}",
                reason="duplicate",
            )
        arr = np.asarray(share)
        if arr.dtype != np.uint64 or arr.ndim != 1:
            raise AggregationError(
                f"share of party {party_id} must be a 1-D uint64 vector, got {arr.dtype} "
                f"shape {arr.shape}",
                reason="shape",
            )
        if self.length is not None and arr.shape[0] != self.length:
            raise AggregationError(
                f"share of party {party_id} has {arr.shape[0]} words, expected {self.length}",
                reason="length",
            )
        if self._acc is None:
            self.length = arr.shape[0]
            self._acc = arr.copy()
        else:
            self._acc += arr
        self._received.add(party_id)

    def complete(self) -> bool:
        """Whether every participant's share has arrived."""
        return not self.missing

    def result_fixed(self) -> np.ndarray:
        """The exact fixed-point sum (int64 per value); refuses incomplete rounds."""
        if self.closed:
            raise AggregationError(f"epoch {self.epoch} was aborted", reason="closed")
        missing = self.missing
        if missing:
            raise AggregationError(
                f"epoch {self.epoch}: dropout, no share from party(ies) {sorted(missing)} "
                f"({len(self._received)} of {len(self.participants)} received); re-run among "
                "the survivors with a new epoch",
                reason="dropout",
            )
        assert self._acc is not None
        return self._acc.view(np.int64).copy()

    def result(self) -> np.ndarray:
        """The decoded sum (float64 per value); refuses incomplete rounds naming who is
        missing."""
        return self.result_fixed().astype(np.float64) / self.fixed.scale

    def abort(self) -> None:
        """Close this epoch: its partial sum is discarded and later shares are refused (a late
        share of a dropped party must never be combined with the survivors' re-run)."""
        self.closed = True
        self._acc = None

    def next_epoch(self) -> tuple[frozenset[int], int]:
        """Abort this epoch and return (survivors, epoch + 1) for the re-run."""
        survivors = survivors_epoch(self.participants, self._received, self.epoch)
        self.abort()
        return survivors

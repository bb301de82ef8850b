"""The RFC 6962 / RFC 9162 Merkle tree: hashing, an incremental tree, proofs and verifiers.

This module owns the Merkle Tree Hash of RFC 9162 §2.1.1 (identical to RFC 6962 §2.1) with
SHA-256::

    MTH({})       = SHA-256()
    MTH({d0})     = SHA-256(0x00 || d0)                       (leaf hash)
    MTH(D[0:n])   = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  k = largest power of 2 < n

:class:`MerkleTree` appends leaf hashes in O(1) amortised time (it keeps every complete
subtree hash, level by level, so the frontier is read off the bits of the size) and produces
inclusion proofs (RFC 9162 §2.1.3.1) and consistency proofs (§2.1.4.1) for any earlier size.
:func:`verify_inclusion` and :func:`verify_consistency` are the verification algorithms of
§2.1.3.2 and §2.1.4.2; they never return a verdict, they raise
:class:`~arbsphere.errors.ProofError` whose ``reason`` is one of ``hash_length``, ``bad_size``,
``index_out_of_range``, ``size_order``, ``proof_length``, ``root_mismatch``.

Stricter than RFC 9162 in one place: a consistency proof from size 0 is only accepted with an
empty proof and ``old_root`` equal to the empty-tree hash (the RFC leaves it undefined).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from arbsphere.errors import ProofError

HASH_LEN = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes, by the recursive definition (a reference, O(n))."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return bytes(leaf_hashes[0])
    k = _split(n)
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


class MerkleTree:
    """An append-only RFC 6962 tree of leaf hashes that can prove any earlier state.

    ``_levels[k][i]`` is the hash of the complete subtree of ``2**k`` leaves starting at leaf
    ``i * 2**k``; appending a leaf adds at most one node per level (O(1) amortised, O(log n)
    worst case). Roots and proofs for any size up to :attr:`size` come from those nodes.
    """

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        self._root: bytes | None = EMPTY_ROOT  # head of the whole tree, None = stale
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def append(self, leaf: bytes) -> int:
        """Append one leaf hash (32 bytes); returns its index."""
        if len(leaf) != HASH_LEN:
            raise ValueError(f"leaf hash must be {HASH_LEN} bytes, got {len(leaf)}")
        index = self.size
        node = bytes(leaf)
        level = 0
        self._levels[0].append(node)
        while len(self._levels[level]) % 2 == 0:
            pair = self._levels[level]
            node = node_hash(pair[-2], pair[-1])
            level += 1
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(node)
        self._root = None
        return index

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        self._check_index(index, self.size)
        return self._levels[0][index]

    def root(self, size: int | None = None) -> bytes:
        """The tree head of the first ``size`` leaves (default: all)."""
        if size is None or size == self.size:
            if self._root is None:
                self._root = self._root_at(self.size)
            return self._root
        self._check_size(size)
        return self._root_at(size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path (RFC 9162 §2.1.3.1) of leaf ``index`` in the tree of ``size`` leaves,
        ordered from the leaf level up."""
        n = self.size if size is None else size
        self._check_size(n)
        self._check_index(index, n)
        inner = (index ^ (n - 1)).bit_length()
        # Below level `inner` the paths to `index` and to `n - 1` differ: every level has a
        # sibling, a complete subtree except possibly the topmost one, which may be the
        # (ephemeral) right-border subtree of the leaves up to n. From level `inner` up the
        # path runs along the right border, where only left siblings exist (all complete).
        proof = []
        for k in range(inner):
            sibling = (index >> k) ^ 1
            proof.append(self._range_hash(sibling << k, min((sibling + 1) << k, n)))
        for k in range(inner, n.bit_length()):
            if (index >> k) & 1:
                proof.append(self._levels[k][(index >> k) - 1])
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof (RFC 9162 §2.1.4.1) between the trees of ``old_size`` and
        ``new_size`` leaves (default: all). Empty when ``old_size`` is 0 or equals
        ``new_size``."""
        n = self.size if new_size is None else new_size
        self._check_size(n)
        if not 0 <= old_size <= n:
            raise ValueError(f"old_size {old_size} outside 0..{n}")
        if old_size in (0, n):
            return []
        return self._subproof(old_size, 0, n, True)

    # --- internals -----------------------------------------------------------------------
    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        """SUBPROOF(m, D[lo:hi], b) of RFC 9162 §2.1.4.1."""
        n = hi - lo
        if m == n:
            return [] if complete else [self._range_hash(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, complete), self._range_hash(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self._range_hash(lo, lo + k)]

    def _range_hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a range produced by the RFC recursion (``lo`` is a multiple of a
        power of two >= ``hi - lo``), built from the stored complete subtrees."""
        n = hi - lo
        if n & (n - 1) == 0:
            k = n.bit_length() - 1
            return self._levels[k][lo >> k]
        k = _split(n)
        return node_hash(self._range_hash(lo, lo + k), self._range_hash(lo + k, hi))

    def _root_at(self, size: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        return self._range_hash(0, size)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"size {size} outside 0..{self.size}")

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise ValueError(f"index {index} outside 0..{size - 1} (tree size {size})")


# --- verification (RFC 9162 §2.1.3.2, §2.1.4.2) -----------------------------------------


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_LEN:
        got = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise ProofError(f"{what} must be {HASH_LEN} bytes, got {got}", reason="hash_length")


def _check_proof(proof: Sequence[bytes], expected: int) -> None:
    if len(proof) != expected:
        raise ProofError(
            f"proof has {len(proof)} elements, expected {expected}", reason="proof_length"
        )
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProofError(f"{name} must be a non-negative int, got {value!r}", reason="bad_size")


def inclusion_proof_length(index: int, size: int) -> int:
    """Number of hashes in the audit path of leaf ``index`` in a tree of ``size`` leaves."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + bin(index >> inner).count("1")


def consistency_proof_length(old_size: int, new_size: int) -> int:
    """Number of hashes in the consistency proof between two sizes ``0 < old < new``."""
    shift = (old_size & -old_size).bit_length() - 1  # trailing zero bits of old_size
    seed = 0 if old_size == 1 << shift else 1
    return seed + inclusion_proof_length(old_size - 1, new_size) - shift


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is leaf ``index`` of the tree of ``size`` leaves whose
    head is ``root`` (RFC 9162 §2.1.3.2). Raises :class:`ProofError` if it is not."""
    _check_sizes(index=index, size=size)
    _check_hash(leaf, "leaf hash")
    _check_hash(root, "root")
    if index >= size:
        raise ProofError(
            f"leaf index {index} out of range for tree size {size}", reason="index_out_of_range"
        )
    _check_proof(proof, inclusion_proof_length(index, size))
    fn, sn = index, size - 1
    r = bytes(leaf)
    for p in proof:
        if sn == 0:  # unreachable after the length check; kept as the RFC states it
            raise ProofError("proof longer than the path to the root", reason="proof_length")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof shorter than the path to the root", reason="proof_length")
    if r != root:
        raise ProofError(
            f"inclusion proof of leaf {index} in size {size} gives root {r.hex()}, "
            f"expected {bytes(root).hex()}",
            reason="root_mismatch",
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` leaves with head ``new_root`` extends the tree of
    ``old_size`` leaves with head ``old_root`` (RFC 9162 §2.1.4.2). Raises
    :class:`ProofError` if it does not."""
    _check_sizes(old_size=old_size, new_size=new_size)
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    if old_size > new_size:
        raise ProofError(
            f"old size {old_size} is larger than new size {new_size}", reason="size_order"
        )
    if old_size == 0 or old_size == new_size:
        _check_proof(proof, 0)
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ProofError(
                "old root of size 0 is not the empty-tree hash", reason="root_mismatch"
            )
        if old_size == new_size and old_root != new_root:
            raise ProofError(
                f"equal sizes {old_size} but roots differ: {bytes(old_root).hex()} vs "
                f"{bytes(new_root).hex()}",
                reason="root_mismatch",
            )
        return
    _check_proof(proof, consistency_proof_length(old_size, new_size))
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: old tree is a complete subtree
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # unreachable after the length check; kept as the RFC states it
            raise ProofError("proof longer than the path to the root", reason="proof_length")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof shorter than the path to the root", reason="proof_length")
    if fr != old_root:
        raise ProofError(
            f"consistency proof {old_size}->{new_size} gives old root {fr.hex()}, expected "
            f"{bytes(old_root).hex()}",
            reason="root_mismatch",
        )
    if sr != new_root:
        raise ProofError(
            f"consistency proof {old_size}->{new_size} gives new root {sr.hex()}, expected "
            f"{bytes(new_root).hex()}",
            reason="root_mismatch",
        )

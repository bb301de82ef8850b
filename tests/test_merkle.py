"""RFC 6962 / RFC 9162 Merkle tree: known answers, proofs, verifiers and corruption probes.

Known-answer vectors are copied from transparency-dev/merkle (the Go reference used by
Certificate Transparency and its successors), which carries the vectors of
google/certificate-transparency cpp/merkletree/merkle_tree_test.cc:

* leaves, roots of sizes 0..8, complete-subtree hashes: ``testonly/constants.go``
* inclusion and consistency proofs: ``proof/verify_test.go`` (leaf numbers there are 1-based)
  and ``testonly/reference_test.go`` (0-based).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from arbsphere.errors import LedgerError, ProofError
from arbsphere.security.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    consistency_proof_length,
    inclusion_proof_length,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# transparency-dev/merkle testonly/constants.go LeafInputs()
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]

# transparency-dev/merkle testonly/constants.go RootHashes(), indexed by tree size 0..8
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]

# transparency-dev/merkle testonly/constants.go NodeHashes()[0]: the leaf hashes
LEAF_HASHES = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    )
]


def _h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


# (index (0-based), size, proof): proof/verify_test.go inclusionProofs (leaf converted to
# 0-based) followed by testonly/reference_test.go TestRefInclusionProof.
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _h(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _h(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (0, 2, _h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7")),
    (1, 2, _h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")),
]

# (old size, new size, proof): proof/verify_test.go consistencyProofs (also
# testonly/reference_test.go TestRefConsistencyProof).
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _h(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]

# proof/verify_test.go sha256SomeHash: a well-formed hash that is in no tree
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


# --- an independent reference: the recursive definitions of RFC 9162 §2.1.3.1, §2.1.4.1 ---


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_path(index: int, hashes: list[bytes]) -> list[bytes]:
    n = len(hashes)
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*ref_path(index, hashes[:k]), root_of(hashes[k:])]
    return [*ref_path(index - k, hashes[k:]), root_of(hashes[:k])]


def ref_subproof(m: int, hashes: list[bytes], complete: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if complete else [root_of(hashes)]
    k = _split(n)
    if m <= k:
        return [*ref_subproof(m, hashes[:k], complete), root_of(hashes[k:])]
    return [*ref_subproof(m - k, hashes[k:], False), root_of(hashes[:k])]


def ref_consistency(m: int, hashes: list[bytes]) -> list[bytes]:
    if m in (0, len(hashes)):
        return []
    return ref_subproof(m, hashes, True)


def _tree(n: int) -> MerkleTree:
    return MerkleTree([leaf_hash(b"leaf-%d" % i) for i in range(n)])


# --- hashing --------------------------------------------------------------------------------


def test_leaf_and_node_hash_are_the_rfc_domain_separated_sha256() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    a, b = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert node_hash(a, b) != node_hash(b, a)


def test_leaf_hashes_match_known_answers() -> None:
    assert [leaf_hash(d) for d in LEAVES] == LEAF_HASHES


def test_empty_root_is_sha256_of_nothing() -> None:
    assert ROOTS[0] == EMPTY_ROOT
    assert root_of([]) == EMPTY_ROOT
    assert MerkleTree().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_roots_match_known_answers(size: int) -> None:
    hashes = LEAF_HASHES[:size]
    assert root_of(hashes) == ROOTS[size]
    assert MerkleTree(hashes).root() == ROOTS[size]
    assert MerkleTree(LEAF_HASHES).root(size) == ROOTS[size]


def test_incremental_root_after_every_append() -> None:
    tree = MerkleTree()
    for size, h in enumerate(LEAF_HASHES, start=1):
        assert tree.append(h) == size - 1
        assert tree.size == size
        assert tree.root() == ROOTS[size]
        assert tree.leaf(size - 1) == h


def test_tree_refuses_bad_leaf_and_out_of_range_requests() -> None:
    tree = MerkleTree(LEAF_HASHES[:5])
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"short")
    with pytest.raises(ValueError, match="size 6"):
        tree.root(6)
    with pytest.raises(ValueError, match="index 5"):
        tree.inclusion_proof(5)
    with pytest.raises(ValueError, match="index 3"):
        tree.inclusion_proof(3, 3)
    with pytest.raises(ValueError, match="old_size 4"):
        tree.consistency_proof(4, 3)
    with pytest.raises(ValueError, match="size 9"):
        tree.consistency_proof(1, 9)


# --- known-answer proofs -----------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_inclusion_proof_known_answers(index: int, size: int, proof: list[bytes]) -> None:
    tree = MerkleTree(LEAF_HASHES)
    assert tree.inclusion_proof(index, size) == proof
    assert ref_path(index, LEAF_HASHES[:size]) == proof
    verify_inclusion(LEAF_HASHES[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_consistency_proof_known_answers(old: int, new: int, proof: list[bytes]) -> None:
    tree = MerkleTree(LEAF_HASHES)
    assert tree.consistency_proof(old, new) == proof
    assert ref_consistency(old, LEAF_HASHES[:new]) == proof
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


# --- corruption probes (after proof/verify_test.go corruptInclusionProof / ...Consistency) --


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    e = bytearray(out[i])
    e[bit // 8] ^= 1 << (bit % 8)
    out[i] = bytes(e)
    return out


# A wrong tree size is only detectable when it changes the shape of the path: the left/right
# position of every proof element on the way to the root. An RFC 6962 root does not commit to
# the tree size (index 0 of sizes 7 and 8 has the same audit path, and the 7-leaf root is also
# "the root of an 8-leaf tree whose right subtree hash is h6"); the signed checkpoint binds
# (size, root). So a wrong-size probe must fail exactly when its shape differs, and verifies
# (as it must for any RFC 9162 verifier) when the shape is identical.


def path_shape(index: int, n: int) -> tuple[str, ...]:
    """Side of each audit-path element (bottom up) per the recursive PATH definition."""
    if n <= 1:
        return ()
    k = _split(n)
    if index < k:
        return (*path_shape(index, k), "R")
    return (*path_shape(index - k, n - k), "L")


def consistency_shape(m: int, n: int, complete: bool = True) -> tuple[str, ...]:
    """Structure of SUBPROOF(m, n, b) per the recursive definition."""
    if complete and (m == 0 or m >= n):
        return ("trivial", str(m == 0), str(m == n))
    if m == n:
        return ("seed",)
    k = _split(n)
    if m <= k:
        return (*consistency_shape(m, k, complete), "R")
    return (*consistency_shape(m - k, n - k, False), "L")


Probe = tuple[str, tuple[object, ...], bool]  # description, arguments, verifies?


def inclusion_probes(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[Probe]:
    probes: list[Probe] = []
    for wrong in {index - 1, index + 1, index ^ 1, index ^ 2, size, size + 1} - {index}:
        if wrong >= 0:
            probes.append((f"index {wrong}", (leaf, wrong, size, proof, root), False))
    for wrong in {size - 1, size + 1, size * 2, size // 2, size + 2, size + 5, 0} - {size}:
        same = index < wrong and path_shape(index, wrong) == path_shape(index, size)
        probes.append((f"size {wrong}", (leaf, index, wrong, proof, root), same))
    for desc, args in [
        ("wrong leaf", (SOME_HASH, index, size, proof, root)),
        ("short leaf", (b"WrongLeaf", index, size, proof, root)),
        ("empty root", (leaf, index, size, proof, EMPTY_ROOT)),
        ("random root", (leaf, index, size, proof, SOME_HASH)),
        ("trailing empty", (leaf, index, size, [*proof, b""], root)),
        ("trailing root", (leaf, index, size, [*proof, root], root)),
        ("preceding empty", (leaf, index, size, [b"", *proof], root)),
        ("preceding root", (leaf, index, size, [root, *proof], root)),
    ]:
        probes.append((desc, args, False))
    for i in range(len(proof)):
        for bit in (0, 3, 100, 255):
            flipped = _flip(proof, i, bit)
            probes.append((f"proof[{i}] bit {bit}", (leaf, index, size, flipped, root), False))
        removed = proof[:i] + proof[i + 1 :]
        probes.append((f"removed proof[{i}]", (leaf, index, size, removed, root), False))
        if i + 1 < len(proof) and proof[i] != proof[i + 1]:
            swapped = list(proof)
            swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
            probes.append((f"swapped proof[{i}]", (leaf, index, size, swapped, root), False))
    for i in range(len(proof) + 1):
        inserted = [*proof[:i], SOME_HASH, *proof[i:]]
        probes.append((f"inserted at {i}", (leaf, index, size, inserted, root), False))
    if proof:
        probes.append(("truncated", (leaf, index, size, proof[:-1], root), False))
        probes.append(("empty proof", (leaf, index, size, [], root), False))
    return probes


def consistency_probes(
    old: int, new: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> list[Probe]:
    probes: list[Probe] = []
    shape = consistency_shape(old, new)
    for wrong in {old - 1, old + 1, old ^ 2, old + 2, new, 0} - {old}:
        if wrong >= 0:
            same = consistency_shape(wrong, new) == shape
            probes.append((f"old size {wrong}", (wrong, new, root1, root2, proof), same))
    for wrong in {new - 1, new + 1, new * 2, new // 2, new + 2, new + 5, old} - {new}:
        same = consistency_shape(old, wrong) == shape
        probes.append((f"new size {wrong}", (old, wrong, root1, root2, proof), same))
    for desc, args in [
        ("wrong root1", (old, new, SOME_HASH, root2, proof)),
        ("wrong root2", (old, new, root1, SOME_HASH, proof)),
        ("short root1", (old, new, b"WrongRoot", root2, proof)),
        ("swapped roots", (old, new, root2, root1, proof)),
        ("empty proof", (old, new, root1, root2, [])),
        ("trailing empty", (old, new, root1, root2, [*proof, b""])),
        ("trailing root1", (old, new, root1, root2, [*proof, root1])),
        ("trailing root2", (old, new, root1, root2, [*proof, root2])),
        ("preceding empty", (old, new, root1, root2, [b"", *proof])),
        ("preceding root1", (old, new, root1, root2, [root1, *proof])),
        ("preceding root2", (old, new, root1, root2, [root2, *proof])),
        ("preceding proof[0]", (old, new, root1, root2, [proof[0], *proof])),
        ("truncated", (old, new, root1, root2, proof[:-1])),
    ]:
        probes.append((desc, args, False))
    for i in range(len(proof)):
        for bit in (0, 4, 100, 255):
            flipped = _flip(proof, i, bit)
            probes.append((f"proof[{i}] bit {bit}", (old, new, root1, root2, flipped), False))
        removed = proof[:i] + proof[i + 1 :]
        probes.append((f"removed proof[{i}]", (old, new, root1, root2, removed), False))
    for i in range(len(proof) + 1):
        inserted = [*proof[:i], SOME_HASH, *proof[i:]]
        probes.append((f"inserted at {i}", (old, new, root1, root2, inserted), False))
    return probes


def _run_probes(verify: Callable[..., None], probes: list[Probe], reasons: set[str]) -> list[str]:
    """Descriptions of probes whose outcome is not the expected one."""
    wrong = []
    for desc, args, verifies in probes:
        try:
            verify(*args)
        except ProofError as exc:
            assert exc.reason in reasons, (desc, exc.reason)
            if verifies:
                wrong.append(f"{desc} (same shape) refused")
        else:
            if not verifies:
                wrong.append(f"{desc} verified")
    return wrong


INCLUSION_REASONS = {"hash_length", "index_out_of_range", "proof_length", "root_mismatch"}
CONSISTENCY_REASONS = {"hash_length", "size_order", "proof_length", "root_mismatch"}


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_every_inclusion_probe_fails(index: int, size: int, proof: list[bytes]) -> None:
    probes = inclusion_probes(index, size, proof, ROOTS[size], LEAF_HASHES[index])
    assert sum(not p[2] for p in probes) >= 14
    assert _run_probes(verify_inclusion, probes, INCLUSION_REASONS) == []


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY_VECTORS if v[2]])
def test_every_consistency_probe_fails(old: int, new: int, proof: list[bytes]) -> None:
    probes = consistency_probes(old, new, ROOTS[old], ROOTS[new], proof)
    assert _run_probes(verify_consistency, probes, CONSISTENCY_REASONS) == []


def test_wrong_size_with_the_same_path_shape_is_the_documented_rfc_limit() -> None:
    # index 0 of 8 leaves and of 7 leaves: same audit path, so the 8-leaf proof "verifies"
    # against size 7 -- the size is bound by the signed checkpoint, not by the proof.
    proof = INCLUSION_VECTORS[1][2]
    assert path_shape(0, 7) == path_shape(0, 8)
    verify_inclusion(LEAF_HASHES[0], 0, 7, proof, ROOTS[8])
    # ... and so does 5 (0 | 1 2 3 | 4: the right subtree of the root is leaf 4's hash); sizes
    # 2, 3, 9, 16 change the shape and are refused
    assert path_shape(0, 5) == path_shape(0, 8)
    verify_inclusion(LEAF_HASHES[0], 0, 5, proof, ROOTS[8])
    for wrong in (2, 3, 9, 16):
        assert path_shape(0, wrong) != path_shape(0, 8)
        with pytest.raises(ProofError):
            verify_inclusion(LEAF_HASHES[0], 0, wrong, proof, ROOTS[8])


def test_probes_on_generated_trees_all_fail() -> None:
    """The same probes on every proof of a 13-leaf tree (odd sizes, deep right borders)."""
    tree = _tree(13)
    refused = 0
    for size in range(1, 14):
        root = tree.root(size)
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            probes = inclusion_probes(index, size, proof, root, tree.leaf(index))
            wrong = _run_probes(verify_inclusion, probes, INCLUSION_REASONS)
            assert wrong == [], (index, size)
            refused += sum(not p[2] for p in probes)
        for old in range(1, size):
            proof = tree.consistency_proof(old, size)
            probes = consistency_probes(old, size, tree.root(old), root, proof)
            wrong = _run_probes(verify_consistency, probes, CONSISTENCY_REASONS)
            assert wrong == [], (old, size)
            refused += sum(not p[2] for p in probes)
    assert refused > 5000


# --- specific refusals and their reasons --------------------------------------------------


def _reason(fn: Callable[..., None], *args: object) -> str:
    with pytest.raises(ProofError) as info:
        fn(*args)
    return info.value.reason


def test_inclusion_refusal_reasons() -> None:
    proof = INCLUSION_VECTORS[1][2]
    leaf, root = LEAF_HASHES[0], ROOTS[8]
    assert _reason(verify_inclusion, leaf, 8, 8, proof, root) == "index_out_of_range"
    assert _reason(verify_inclusion, leaf, 0, 0, [], EMPTY_ROOT) == "index_out_of_range"
    assert _reason(verify_inclusion, leaf, 0, 8, proof[:2], root) == "proof_length"
    assert _reason(verify_inclusion, leaf, 0, 8, [*proof, SOME_HASH], root) == "proof_length"
    assert _reason(verify_inclusion, leaf, 0, 8, proof, SOME_HASH) == "root_mismatch"
    assert _reason(verify_inclusion, leaf[:31], 0, 8, proof, root) == "hash_length"
    assert _reason(verify_inclusion, leaf, 0, 8, [proof[0][:31], *proof[1:]], root) == (
        "hash_length"
    )
    assert _reason(verify_inclusion, leaf, -1, 8, proof, root) == "bad_size"
    # ProofError is a LedgerError (and so a SecurityError)
    with pytest.raises(LedgerError, match="gives root"):
        verify_inclusion(leaf, 0, 8, proof, SOME_HASH)


def test_consistency_edge_cases() -> None:
    # equal sizes: empty proof, roots must be equal
    verify_consistency(5, 5, ROOTS[5], ROOTS[5], [])
    assert _reason(verify_consistency, 5, 5, ROOTS[5], ROOTS[4], []) == "root_mismatch"
    assert _reason(verify_consistency, 5, 5, ROOTS[5], ROOTS[5], [SOME_HASH]) == "proof_length"
    # from the empty tree: empty proof and the empty-tree root
    verify_consistency(0, 7, EMPTY_ROOT, ROOTS[7], [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert _reason(verify_consistency, 0, 7, SOME_HASH, ROOTS[7], []) == "root_mismatch"
    assert _reason(verify_consistency, 0, 7, EMPTY_ROOT, ROOTS[7], [EMPTY_ROOT]) == ("proof_length")
    # time travel
    assert _reason(verify_consistency, 2, 1, ROOTS[2], ROOTS[1], []) == "size_order"
    assert _reason(verify_consistency, 1, 2, ROOTS[1], ROOTS[2], []) == "proof_length"


# --- properties over all small trees -----------------------------------------------------


def test_all_proofs_of_trees_up_to_64_verify_and_match_the_reference() -> None:
    hashes = [leaf_hash(i.to_bytes(2, "little")) for i in range(64)]
    tree = MerkleTree()
    for size in range(1, 65):
        tree.append(hashes[size - 1])
        prefix = hashes[:size]
        root = tree.root()
        assert root == root_of(prefix), size
        for index in range(size):
            proof = tree.inclusion_proof(index)
            assert proof == ref_path(index, prefix), (index, size)
            assert len(proof) == inclusion_proof_length(index, size)
            verify_inclusion(hashes[index], index, size, proof, root)
        for old in range(size + 1):
            proof = tree.consistency_proof(old)
            assert proof == ref_consistency(old, prefix), (old, size)
            if 0 < old < size:
                assert len(proof) == consistency_proof_length(old, size)
            verify_consistency(old, size, root_of(hashes[:old]), root, proof)
    # a full tree still proves every earlier state
    for size in range(1, 65):
        assert tree.root(size) == root_of(hashes[:size])
        assert tree.inclusion_proof(size // 3, size) == ref_path(size // 3, hashes[:size])
        assert tree.consistency_proof(size // 2, size) == ref_consistency(size // 2, hashes[:size])


def test_proof_from_one_tree_does_not_verify_leaf_of_another() -> None:
    a, b = _tree(10), MerkleTree([leaf_hash(b"other-%d" % i) for i in range(10)])
    with pytest.raises(ProofError, match="gives root"):
        verify_inclusion(a.leaf(3), 3, 10, b.inclusion_proof(3), b.root())
    with pytest.raises(ProofError):
        verify_consistency(4, 10, a.root(4), b.root(), a.consistency_proof(4))

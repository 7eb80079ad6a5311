"""The RFC 6962 Merkle tree of the transparency log (:mod:`registry.merkle`).

Three kinds of evidence:

* the shared vectors (transparency-dev/merkle ``testdata``): every happy path verifies,
  every corrupted proof is refused, and our builders reproduce the happy-path proofs
  byte for byte from the tree the vectors were made from;
* cross-checks for every tree of 1..70 leaves against a reference written here from the
  recursive definitions of RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1, reading nodes only
  from the table the append functions fill;
* read counts: proofs in a tree of 2^20 + 12345 leaves read O(log n) stored nodes.

The ``subtreeinclusion/`` and ``subtreeconsistency/`` vector folders are not run: they
test proofs for an arbitrary subtree ``[start, end)`` (the Merkle Tree Certificates
subtree API), which we do not offer. Their ``start = 0`` cases duplicate ``inclusion/``
and ``consistency/`` except five: three out-of-range inclusions (covered by
``test_verify_inclusion_refuses``) and two that call an empty subtree consistent with
any tree, which RFC 6962 consistency (and ``consistency/additional``) refuses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from registry.merkle import (
    EMPTY_ROOT,
    Node,
    NodeReader,
    consistency_proof,
    consistency_proof_from_leaves,
    inclusion_proof,
    inclusion_proof_from_leaves,
    leaf_hash,
    node_hash,
    nodes_completed_by_append,
    nodes_completed_by_batch,
    root,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "merkle"
MAX_SIZE = 70

# The tree the vectors were built from: RFC 6962's reference test leaves.
VECTOR_LEAVES = [
    leaf_hash(bytes.fromhex(data))
    for data in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
LEAVES = [leaf_hash(str(i).encode()) for i in range(MAX_SIZE)]


# ---------------------------------------------------------------- reference (RFC 9162 §2.1)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) (§2.1.1), over leaf hashes."""
    if not leaves:
        return _sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = _largest_power_of_two_below(len(leaves))
    return _sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:]))


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (§2.1.3.1)."""
    if len(leaves) == 1:
        return []
    k = _largest_power_of_two_below(len(leaves))
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) (§2.1.4.1)."""
    if m == len(leaves):
        return [] if whole else [ref_mth(leaves)]
    k = _largest_power_of_two_below(len(leaves))
    if m <= k:
        return [*ref_subproof(m, leaves[:k], whole), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


# ---------------------------------------------------------------- node tables


def _table(leaves: Sequence[bytes]) -> dict[tuple[int, int], bytes]:
    """The node table of a log that appended ``leaves`` one at a time."""
    table: dict[tuple[int, int], bytes] = {}
    for index, hashed in enumerate(leaves):
        for node in nodes_completed_by_append(index, hashed, lambda level, i: table[level, i]):
            assert (node.level, node.index) not in table, f"node {node} written twice"
            table[node.level, node.index] = node.hash
    return table


FULL_TABLE = _table(LEAVES)


def _reader_within(size: int, table: dict[tuple[int, int], bytes] = FULL_TABLE) -> NodeReader:
    """A reader of ``table`` that fails on any node not wholly inside the first ``size`` leaves."""

    def node(level: int, index: int) -> bytes:
        assert (index + 1) << level <= size, f"read node ({level}, {index}) outside a tree of size {size}"
        return table[level, index]

    return node


def _perfect_subtrees(size: int) -> set[tuple[int, int]]:
    return {
        (level, index) for level in range(size.bit_length()) for index in range(size) if (index + 1) << level <= size
    }


# ---------------------------------------------------------------- shared vectors


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _vector_cases(folder: str) -> list[Any]:
    paths = sorted((VECTORS / folder).rglob("*.json"))
    if not paths:
        return [pytest.param(None, id=f"{folder}-vectors-missing")]  # fail, not skip
    return [pytest.param(path, id=str(path.relative_to(VECTORS))) for path in paths]


def _load(path: Path | None) -> dict[str, Any]:
    if path is None:
        pytest.fail(f"Merkle vectors not found under {VECTORS}")
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    vector["proof"] = [_b64(p) for p in vector["proof"] or []]
    return vector


def test_vector_folders_are_complete() -> None:
    """All 98 inclusion and 98 consistency files of the shared copy are there to run."""
    assert len(_vector_cases("inclusion")) == 98
    assert len(_vector_cases("consistency")) == 98


@pytest.mark.parametrize("path", _vector_cases("inclusion"))
def test_inclusion_vector(path: Path | None) -> None:
    """Happy paths verify; every corrupted proof, index, size, leaf or root is refused."""
    v = _load(path)
    accepted = verify_inclusion(_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], v["proof"], _b64(v["root"]))
    assert accepted is not v["wantErr"], v["desc"]


@pytest.mark.parametrize("path", _vector_cases("consistency"))
def test_consistency_vector(path: Path | None) -> None:
    """Happy paths verify; every corrupted proof, size or root is refused."""
    v = _load(path)
    accepted = verify_consistency(v["size1"], v["size2"], _b64(v["root1"]), _b64(v["root2"]), v["proof"])
    assert accepted is not v["wantErr"], v["desc"]


def _happy_paths(folder: str) -> list[Any]:
    return [case for case in _vector_cases(folder) if case.values[0] and case.values[0].name == "happy-path.json"]


@pytest.mark.parametrize("path", _happy_paths("inclusion"))
def test_builders_reproduce_inclusion_vector(path: Path) -> None:
    """From the vectors' own leaves, our root and inclusion proof are the vector's bytes."""
    v = _load(path)
    leaves = VECTOR_LEAVES[: v["treeSize"]]
    node = _reader_within(v["treeSize"], _table(VECTOR_LEAVES))
    assert leaves[v["leafIdx"]] == _b64(v["leafHash"])
    assert root(v["treeSize"], node) == _b64(v["root"])
    assert inclusion_proof(v["leafIdx"], v["treeSize"], node) == v["proof"]


@pytest.mark.parametrize("path", _happy_paths("consistency"))
def test_builders_reproduce_consistency_vector(path: Path) -> None:
    """From the vectors' own leaves, our roots and consistency proof are the vector's bytes."""
    v = _load(path)
    node = _reader_within(v["size2"], _table(VECTOR_LEAVES))
    assert (root(v["size1"], node), root(v["size2"], node)) == (_b64(v["root1"]), _b64(v["root2"]))
    assert consistency_proof(v["size1"], v["size2"], node) == v["proof"]


def test_hashes_are_domain_separated() -> None:
    """Leaves and nodes are hashed with the 0x00 / 0x01 prefixes; the empty tree is SHA-256("")."""
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert node_hash(b"L", b"R") == _sha256(b"\x01LR") != leaf_hash(b"LR")


# ---------------------------------------------------------------- appending


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_appends_store_exactly_the_perfect_subtrees(size: int) -> None:
    """After ``size`` appends the table holds every perfect subtree, each with its MTH."""
    table = _table(LEAVES[:size])
    assert set(table) == _perfect_subtrees(size)
    for (level, index), hashed in table.items():
        assert hashed == ref_mth(LEAVES[index << level : (index + 1) << level]), (level, index)


def _reader_before(start: int, table: dict[tuple[int, int], bytes], reads: list[tuple[int, int]]) -> NodeReader:
    """A reader of ``table`` that records its reads and fails on any node not ending by ``start``."""

    def node(level: int, index: int) -> bytes:
        reads.append((level, index))
        assert (index + 1) << level <= start, f"a batch from {start} read node ({level}, {index})"
        return table[level, index]

    return node


@pytest.mark.parametrize("seed", range(20))
def test_batches_store_what_single_appends_store(seed: int) -> None:
    """Appending in random batches gives the same table, reading at most one stored node per
    level, each lying before the batch."""
    rng = random.Random(seed)
    table: dict[tuple[int, int], bytes] = {}
    start = 0
    while start < MAX_SIZE:
        batch = LEAVES[start : start + rng.randint(1, 17)]
        reads: list[tuple[int, int]] = []
        for completed in nodes_completed_by_batch(start, batch, _reader_before(start, table, reads)):
            assert (completed.level, completed.index) not in table
            table[completed.level, completed.index] = completed.hash
        assert len(reads) <= (start + len(batch)).bit_length()
        assert len({level for level, _ in reads}) == len(reads)
        start += len(batch)
    assert table == FULL_TABLE


# ---------------------------------------------------------------- proofs against the reference


@pytest.mark.parametrize("size", range(MAX_SIZE + 1))
def test_root_matches_reference(size: int) -> None:
    """root() from the node table and root_from_leaves() both equal MTH(D[size])."""
    expected = ref_mth(LEAVES[:size])
    assert root(size, _reader_within(size)) == expected
    assert root_from_leaves(iter(LEAVES[:size])) == expected


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_inclusion_proofs_match_reference(size: int) -> None:
    """For every leaf: PATH(m, D[size]) exactly, read from the table, and it verifies."""
    tree_root = ref_mth(LEAVES[:size])
    for index in range(size):
        proof = inclusion_proof(index, size, _reader_within(size))
        assert proof == ref_path(index, LEAVES[:size]), index
        assert proof == inclusion_proof_from_leaves(index, LEAVES[:size])
        assert verify_inclusion(LEAVES[index], index, size, proof, tree_root), index


@pytest.mark.parametrize("size2", range(1, MAX_SIZE + 1))
def test_consistency_proofs_match_reference(size2: int) -> None:
    """For every size1 ≤ size2: PROOF(size1, D[size2]) exactly, and it verifies."""
    root2 = ref_mth(LEAVES[:size2])
    for size1 in range(1, size2 + 1):
        proof = consistency_proof(size1, size2, _reader_within(size2))
        assert proof == ref_subproof(size1, LEAVES[:size2], True), size1
        assert proof == consistency_proof_from_leaves(size1, LEAVES[:size2])
        assert verify_consistency(size1, size2, ref_mth(LEAVES[:size1]), root2, proof), size1


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda node: inclusion_proof(5, 5, node), id="inclusion-index-equals-size"),
        pytest.param(lambda node: inclusion_proof(-1, 5, node), id="inclusion-negative-index"),
        pytest.param(lambda node: inclusion_proof(0, 0, node), id="inclusion-empty-tree"),
        pytest.param(lambda node: consistency_proof(0, 5, node), id="consistency-from-empty-tree"),
        pytest.param(lambda node: consistency_proof(6, 5, node), id="consistency-size1-above-size2"),
        pytest.param(lambda node: root(-1, node), id="root-negative-size"),
    ],
)
def test_builders_refuse_impossible_requests(build: Callable[[NodeReader], list[bytes]]) -> None:
    """A proof that cannot exist is a caller error, raised before any read."""
    with pytest.raises(ValueError, match="size"):
        build(_reader_within(0))


# ---------------------------------------------------------------- verifiers refuse


SIZE = 13
PROOF_7 = inclusion_proof(7, SIZE, _reader_within(SIZE))
ROOT = ref_mth(LEAVES[:SIZE])
ROOT_6 = ref_mth(LEAVES[:6])
CONSISTENCY_6 = consistency_proof(6, SIZE, _reader_within(SIZE))


@pytest.mark.parametrize(
    ("hashed_leaf", "index", "size", "proof", "root_hash"),
    [
        pytest.param(LEAVES[7], 7, SIZE, PROOF_7[:-1], ROOT, id="missing-element"),
        pytest.param(LEAVES[7], 7, SIZE, [*PROOF_7, ROOT], ROOT, id="extra-element"),
        pytest.param(LEAVES[7], 7, SIZE, [PROOF_7[0] + b"\x00", *PROOF_7[1:]], ROOT, id="element-too-long"),
        pytest.param(LEAVES[7], 7, SIZE, [PROOF_7[0][:-1], *PROOF_7[1:]], ROOT, id="element-too-short"),
        pytest.param(LEAVES[7], 7, SIZE, PROOF_7[::-1], ROOT, id="elements-reversed"),
        pytest.param(LEAVES[8], 7, SIZE, PROOF_7, ROOT, id="wrong-leaf"),
        pytest.param(LEAVES[7], 7, SIZE, PROOF_7, ROOT_6, id="wrong-root"),
        pytest.param(LEAVES[7], 7, SIZE, PROOF_7, ROOT[:16], id="truncated-root"),
        pytest.param(LEAVES[7], SIZE, SIZE, PROOF_7, ROOT, id="index-equals-size"),
        pytest.param(LEAVES[7], -1, SIZE, PROOF_7, ROOT, id="negative-index"),
        pytest.param(LEAVES[7], 7, 0, [], EMPTY_ROOT, id="empty-tree"),
        pytest.param(LEAVES[7], 7, 2**64 + 7, PROOF_7, ROOT, id="huge-size"),
        pytest.param(b"short", 0, 2, [LEAVES[1]], node_hash(b"short", LEAVES[1]), id="leaf-not-a-digest"),
    ],
)
def test_verify_inclusion_refuses(
    hashed_leaf: bytes, index: int, size: int, proof: list[bytes], root_hash: bytes
) -> None:
    """Each corruption of a valid inclusion proof answers False, without raising."""
    assert verify_inclusion(LEAVES[7], 7, SIZE, PROOF_7, ROOT), "the uncorrupted proof must verify"
    assert verify_inclusion(hashed_leaf, index, size, proof, root_hash) is False


@pytest.mark.parametrize(
    ("size1", "size2", "root1", "root2", "proof"),
    [
        pytest.param(6, SIZE, ROOT_6, ROOT, CONSISTENCY_6[:-1], id="missing-element"),
        pytest.param(6, SIZE, ROOT_6, ROOT, [*CONSISTENCY_6, ROOT], id="extra-element"),
        pytest.param(6, SIZE, ROOT_6, ROOT, [ROOT_6, *CONSISTENCY_6], id="old-root-prepended"),
        pytest.param(6, SIZE, ROOT_6, ROOT, [b"", *CONSISTENCY_6[1:]], id="empty-element"),
        pytest.param(6, SIZE, ROOT, ROOT_6, CONSISTENCY_6, id="roots-swapped"),
        pytest.param(7, SIZE, ROOT_6, ROOT, CONSISTENCY_6, id="size1-plus-one"),
        pytest.param(6, 2 * SIZE, ROOT_6, ROOT, CONSISTENCY_6, id="size2-doubled"),
        pytest.param(SIZE, 6, ROOT, ROOT_6, CONSISTENCY_6, id="size1-above-size2"),
        pytest.param(6, SIZE, ROOT_6, ROOT, [], id="empty-proof"),
        pytest.param(0, SIZE, EMPTY_ROOT, ROOT, CONSISTENCY_6, id="from-empty-tree-with-proof"),
        pytest.param(0, SIZE, EMPTY_ROOT, ROOT, [], id="from-empty-tree"),
        pytest.param(SIZE, SIZE, ROOT, ROOT, [ROOT], id="equal-sizes-with-proof"),
        pytest.param(SIZE, SIZE, ROOT, ROOT_6, [], id="equal-sizes-different-roots"),
        pytest.param(1, 2, b"short", node_hash(b"short", LEAVES[1]), [LEAVES[1]], id="root1-not-a-digest"),
    ],
)
def test_verify_consistency_refuses(size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]) -> None:
    """Each corruption of a valid consistency proof answers False, without raising."""
    assert verify_consistency(6, SIZE, ROOT_6, ROOT, CONSISTENCY_6), "the uncorrupted proof must verify"
    assert verify_consistency(size1, size2, root1, root2, proof) is False


@pytest.mark.parametrize("size", range(1, 33))
def test_inclusion_proof_binds_every_bit_and_the_index(size: int) -> None:
    """No valid proof survives a flipped bit in any element, nor a different leaf index."""
    tree_root = ref_mth(LEAVES[:size])
    for index in range(size):
        proof = inclusion_proof(index, size, _reader_within(size))
        for other in set(range(size)) - {index}:
            assert not verify_inclusion(LEAVES[index], other, size, proof, tree_root), (index, other)
        for position, element in enumerate(proof):
            flipped = bytes([element[0] ^ 0x80]) + element[1:]
            corrupted = [*proof[:position], flipped, *proof[position + 1 :]]
            assert not verify_inclusion(LEAVES[index], index, size, corrupted, tree_root), (index, position)


# ---------------------------------------------------------------- reads are O(log n)


BIG = 2**20 + 12345
PERIOD_LEVEL = 12


class PeriodicTree:
    """A genuine RFC 6962 tree of ``BIG`` leaves, hashed on demand: leaf ``i`` is
    ``leaf_hash(str(i mod 4096))``, so every perfect subtree above level 12 at a given
    level has the same hash and the memo stays at a few thousand entries instead of a
    million leaves. Reading a node outside the tree fails, as the log's table would.
    """

    def __init__(self) -> None:
        self.memo: dict[tuple[int, int], bytes] = {}
        self.reads = 0

    def _hash(self, level: int, index: int) -> bytes:
        key = (level, index % (1 << max(PERIOD_LEVEL - level, 0)))
        if key not in self.memo:
            if level == 0:
                self.memo[key] = leaf_hash(str(key[1]).encode())
            else:
                self.memo[key] = node_hash(self._hash(level - 1, 2 * index), self._hash(level - 1, 2 * index + 1))
        return self.memo[key]

    def node(self, level: int, index: int) -> bytes:
        if (index + 1) << level > BIG:
            raise LookupError(f"node ({level}, {index}) is not in a tree of {BIG} leaves")
        return self._hash(level, index)

    def counted(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.node(level, index)


@pytest.fixture(scope="module")
def big_tree() -> PeriodicTree:
    return PeriodicTree()


MAX_READS = 2 * math.ceil(math.log2(BIG)) + 1  # the bound registry.merkle documents: 43


@pytest.mark.parametrize("index", [0, 1, 4095, 2**19 + 3, 2**20 - 1, 2**20, 2**20 + 4097, BIG - 2, BIG - 1])
def test_inclusion_proof_reads_log_n_nodes(big_tree: PeriodicTree, index: int) -> None:
    """An inclusion proof in a tree of 2^20 + 12345 leaves reads at most 2⌈log2 n⌉ nodes."""
    big_tree.reads = 0
    proof = inclusion_proof(index, BIG, big_tree.counted)
    assert big_tree.reads <= MAX_READS
    assert verify_inclusion(big_tree.node(0, index), index, BIG, proof, root(BIG, big_tree.node))


@pytest.mark.parametrize("size1", [1, 2, 3, 12345, 2**19 + 1, 2**20 - 1, 2**20, 2**20 + 1, BIG - 1, BIG])
def test_consistency_proof_reads_log_n_nodes(big_tree: PeriodicTree, size1: int) -> None:
    """A consistency proof up to 2^20 + 12345 leaves reads at most 2⌈log2 n⌉ + 1 nodes."""
    big_tree.reads = 0
    proof = consistency_proof(size1, BIG, big_tree.counted)
    assert big_tree.reads <= MAX_READS
    assert verify_consistency(size1, BIG, root(size1, big_tree.node), root(BIG, big_tree.node), proof)


def test_root_and_append_read_log_n_nodes(big_tree: PeriodicTree) -> None:
    """The root reads one node per 1-bit of the size; an append one per trailing 1-bit."""
    big_tree.reads = 0
    root(BIG, big_tree.counted)
    assert big_tree.reads == BIG.bit_count()
    big_tree.reads = 0
    completed = nodes_completed_by_append(2**20 - 1, big_tree.node(0, 2**20 - 1), big_tree.counted)
    assert big_tree.reads == 20
    assert completed[-1] == Node(20, 0, big_tree.node(20, 0))

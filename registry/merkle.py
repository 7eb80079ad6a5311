"""RFC 6962 Merkle trees for the transparency log: hashes, proofs and their verification.

The tree hash, inclusion proofs and consistency proofs are those of RFC 6962 §2.1, as
restated in RFC 9162 §2.1 (§2.1.1 hashing, §2.1.3 inclusion, §2.1.4 consistency), so
that anyone with an independent RFC 6962 implementation can check our proofs. Pure
functions over bytes (SHA-256 from :mod:`hashlib`); no database and no I/O.

Storage model. The log stores the hash of every *perfect* subtree: node ``(level,
index)`` covers leaves ``[index·2^level, (index+1)·2^level)``; level 0 holds the leaf
hashes. A node is written once, when its last leaf is appended
(:func:`nodes_completed_by_append`, :func:`nodes_completed_by_batch`), and never changes.
Everything else reads nodes through a :data:`NodeReader` the caller backs with its
table; a reader is only ever asked for nodes inside the tree it is asked about.

Read bounds, for a tree of ``n`` leaves and ``d = ⌈log2 n⌉``:

* :func:`root`: ``popcount(n) ≤ d + 1`` reads.
* :func:`inclusion_proof`: at most ``2d`` reads. Every sibling on the path is a perfect
  node (one read) except at most one: the first time the path turns left, its right
  sibling is the tree's ragged right edge, composed from at most ``d`` perfect nodes;
  below that turn every subtree is perfect.
* :func:`consistency_proof`: at most ``2d + 1`` reads, by the same argument.

So a proof costs O(log n) reads and hashes however long the log grows.

A proof binds a root, not a size: the RFC 9162 verifiers can accept the same proof for a
neighbouring size whose path has the same shape (e.g. 6 → 13 and 6 → 14). Only verify
against a (size, root) pair taken together from a signed checkpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

HASH_SIZE: Final = 32
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()  # MTH({}) = SHA-256() (RFC 9162 §2.1.1)

NodeReader = Callable[[int, int], bytes]
"""``node(level, index)`` → the stored hash of that perfect subtree."""


@dataclass(frozen=True, slots=True)
class Node:
    """A perfect subtree's hash as stored: leaves ``[index·2^level, (index+1)·2^level)``."""

    level: int
    index: int
    hash: bytes


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d): the hash of one entry's leaf data."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


# ---------------------------------------------------------------- appending


def nodes_completed_by_append(index: int, hashed_leaf: bytes, node: NodeReader) -> list[Node]:
    """Every node completed by appending leaf ``index`` (its level-0 node included).

    Reads the stored left siblings: one per trailing 1-bit of ``index`` (amortised one
    read per append, at most ``⌈log2(index + 1)⌉``).
    """
    return nodes_completed_by_batch(index, [hashed_leaf], node)


def nodes_completed_by_batch(start: int, hashed_leaves: Sequence[bytes], node: NodeReader) -> list[Node]:
    """Every node completed by appending ``hashed_leaves`` as leaves ``start, start+1, …``.

    The only nodes read are stored left siblings of the batch's leftmost new node: at most
    one per level (``⌈log2(start + len)⌉`` reads), each lying entirely before ``start``.
    Returns about ``2·len(hashed_leaves)`` nodes, lowest level first.

    Raises:
        ValueError: ``start`` is negative.
    """
    if start < 0:
        raise ValueError(f"leaf index {start} is negative")
    completed = [Node(0, start + offset, hashed) for offset, hashed in enumerate(hashed_leaves)]
    level, first, row = 0, start, list(hashed_leaves)
    while row:
        if first % 2:
            # The pair's left half is complete already; as first = ⌊start / 2^level⌋,
            # node (level, first - 1) ends at or before leaf start.
            row.insert(0, node(level, first - 1))
            first -= 1
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        level, first = level + 1, first // 2
        completed.extend(Node(level, first + offset, hashed) for offset, hashed in enumerate(row))
    return completed


# ---------------------------------------------------------------- tree hashes and proofs


def _split(size: int) -> int:
    """k, the largest power of two smaller than ``size`` (RFC 9162 §2.1.1), for size ≥ 2."""
    return 1 << ((size - 1).bit_length() - 1)


def _subtree_hash(start: int, end: int, node: NodeReader) -> bytes:
    """MTH(D[start:end]) for a subtree that RFC 6962's recursion produces.

    Such a range starts at a multiple of a power of two at least its size, so the
    perfect nodes tiling it, largest first, are its size's binary digits, each aligned
    on its own size, and MTH is their right fold: one read per 1-bit of ``end - start``.
    """
    parts: list[bytes] = []
    while start < end:
        level = (end - start).bit_length() - 1
        parts.append(node(level, start >> level))
        start += 1 << level
    hashed = parts.pop()
    while parts:
        hashed = node_hash(parts.pop(), hashed)
    return hashed


def root(size: int, node: NodeReader) -> bytes:
    """MTH(D[0:size]), the root of the first ``size`` leaves (``EMPTY_ROOT`` for 0).

    Raises:
        ValueError: ``size`` is negative.
    """
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    return _subtree_hash(0, size, node) if size else EMPTY_ROOT


def inclusion_proof(index: int, size: int, node: NodeReader) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, the sibling nearest the leaf first.

    Raises:
        ValueError: not ``0 ≤ index < size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(_subtree_hash(start + k, end, node))
            end = start + k
        else:
            path.append(_subtree_hash(start, start + k, node))
            start += k
    path.reverse()
    return path


def consistency_proof(size1: int, size2: int, node: NodeReader) -> list[bytes]:
    """PROOF(size1, D[0:size2]) of RFC 9162 §2.1.4.1, the deepest node first.

    Empty when the sizes are equal.

    Raises:
        ValueError: not ``0 < size1 ≤ size2``; a proof from the empty tree is
            meaningless (every tree extends it).
    """
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    proof: list[bytes] = []
    start, end = 0, size2
    whole = True  # SUBPROOF's b: D[0:size1] is still the whole subtree in hand
    while size1 != end:
        k = _split(end - start)
        if size1 <= start + k:
            proof.append(_subtree_hash(start + k, end, node))
            end = start + k
        else:
            proof.append(_subtree_hash(start, start + k, node))
            start += k
            whole = False
    if not whole:
        proof.append(_subtree_hash(start, end, node))
    proof.reverse()
    return proof


# ---------------------------------------------------------------- verification


def _well_formed(*hashes: bytes) -> bool:
    return all(isinstance(hashed, bytes) and len(hashed) == HASH_SIZE for hashed in hashes)


def verify_inclusion(hashed_leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """Whether ``proof`` shows leaf ``index`` of the tree ``root_hash`` of ``size`` leaves
    is ``hashed_leaf`` (RFC 9162 §2.1.3.2). False, never an exception, for any bad input.
    """
    # 1. The index must lie in the tree; every hash must be a SHA-256 digest.
    if not 0 <= index < size or not _well_formed(hashed_leaf, root_hash, *proof):
        return False
    # 2-3. fn is the leaf's position, sn the last position, on the current level.
    fn, sn, r = index, size - 1, hashed_leaf
    # 4. Climb one level per proof element.
    for p in proof:
        if sn == 0:  # 4a. more elements than levels
            return False
        if fn & 1 or fn == sn:  # 4b. p is a left sibling
            r = node_hash(p, r)
            while not fn & 1 and fn:  # a right-edge node rises without a sibling
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1  # 4c.
    # 5. All levels used, and the root reached.
    return sn == 0 and r == root_hash


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows the tree ``root1`` of ``size1`` leaves is a prefix of the
    tree ``root2`` of ``size2`` leaves (RFC 9162 §2.1.4.2). False, never an exception.

    Equal sizes need an empty proof and equal roots. ``size1 == 0`` is refused, as in the
    shared vectors: the empty tree is a prefix of every tree, so the check proves nothing.
    """
    if not 0 < size1 <= size2:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    # 1. A proof between different sizes is never empty; hashes are SHA-256 digests.
    if not proof or not _well_formed(root1, root2, *proof):
        return False
    # 2. When size1 is a power of two, the old root is itself a node of the new tree.
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)
    # 3-4. fn: the old tree's last position; skip the levels where it is a right child.
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    # 5. fr rebuilds the old root, sr the new one.
    fr = sr = path[0]
    # 6. Climb one level per remaining element.
    for c in path[1:]:
        if sn == 0:  # 6a.
            return False
        if fn & 1 or fn == sn:  # 6b. c is a left sibling in both trees
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:  # c exists only in the new tree
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1  # 6c.
    # 7. Both roots rebuilt and every level used.
    return sn == 0 and fr == root1 and sr == root2


# ---------------------------------------------------------------- from a list of leaves


def root_from_leaves(hashed_leaves: Iterable[bytes]) -> bytes:
    """MTH of all ``hashed_leaves``, streaming (O(n) hashing, O(log n) memory): the audit's
    recomputation of a root from the entries themselves, independent of the node table.
    """
    # The perfect subtrees so far, largest first: the binary digits of the count.
    stack: list[bytes] = []
    for count, hashed in enumerate(hashed_leaves, 1):
        stack.append(hashed)
        merges = count
        while merges % 2 == 0:
            right = stack.pop()
            stack.append(node_hash(stack.pop(), right))
            merges //= 2
    if not stack:
        return EMPTY_ROOT
    hashed = stack.pop()
    while stack:
        hashed = node_hash(stack.pop(), hashed)
    return hashed


def _node_table(hashed_leaves: Sequence[bytes]) -> NodeReader:
    table = {(n.level, n.index): n.hash for n in nodes_completed_by_batch(0, hashed_leaves, _no_stored_nodes)}
    return lambda level, index: table[level, index]


def _no_stored_nodes(level: int, index: int) -> bytes:
    raise LookupError(f"an empty log has no node ({level}, {index})")


def inclusion_proof_from_leaves(index: int, hashed_leaves: Sequence[bytes]) -> list[bytes]:
    """:func:`inclusion_proof` in the tree of exactly ``hashed_leaves`` (for tests and audit).

    Raises:
        ValueError: ``index`` is not a position in ``hashed_leaves``.
    """
    return inclusion_proof(index, len(hashed_leaves), _node_table(hashed_leaves))


def consistency_proof_from_leaves(size1: int, hashed_leaves: Sequence[bytes]) -> list[bytes]:
    """:func:`consistency_proof` from the first ``size1`` leaves to all of ``hashed_leaves``.

    Raises:
        ValueError: not ``0 < size1 ≤ len(hashed_leaves)``.
    """
    return consistency_proof(size1, len(hashed_leaves), _node_table(hashed_leaves))

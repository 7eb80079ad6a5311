"""This region's transparency log: an append-only RFC 6962 Merkle log of every issuance
and every status change, with signed checkpoints (issue 5, modelled on Certificate
Transparency and the C2SP tlog-checkpoint / signed-note formats).

* An issuance's leaf data is the token's ASCII bytes, so anyone holding a token can
  compute its leaf hash. A status change's is a canonical JSON statement
  (:func:`status_leaf`).
* :func:`append` runs in the caller's transaction, beside the change it records. Its
  position comes from ``UPDATE region SET log_size = log_size + 1 RETURNING``: the row
  lock queues concurrent appenders until commit, and a rolled-back transaction takes its
  increment with it, so positions are contiguous with no gaps; ``log_entry.position`` is
  the primary key, so the database refuses a fork. Both tables are append-only
  (:mod:`registry.append_only`).
* Every perfect subtree's hash is stored once, when complete (:mod:`registry.merkle`), so
  roots and proofs read O(log n) rows whatever the log's size.
* A checkpoint is signed on demand, when someone needs one covering the current size,
  and kept (``log_checkpoint``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Final, TypeVar
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Select, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.bulk import insert_new
from registry.errors import RegistryError
from registry.merkle import (
    NodeReader,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    nodes_completed_by_batch,
    root,
)
from registry.models import LogCheckpoint, LogEntry, LogNode, Region
from registry.node_cache import NodeCache
from registry.regions import current_region
from registry.times import iso_utc
from signing.keystore import KeyRing
from signing.notes import Checkpoint, sign_note, verifier_key

T = TypeVar("T")

ISSUANCE: Final = "issue"
STATUS_CHANGE: Final = "status"
STATUS_STATEMENT: Final = "ecert-status-change/v1"
MAX_ENTRIES_PER_PAGE: Final = 1000
# Well under SQLite's (32766) and PostgreSQL's (65535) limits on a statement's parameters.
MAX_NODES_PER_QUERY: Final = 20_000


class LogCorrupted(RegistryError):
    """A node the log must hold is missing: the log tables were edited."""

    code = "LOG_CORRUPTED"


class LogRangeError(RegistryError):
    """A size, index or range outside the log."""

    code = "BAD_REQUEST"


def append(session: Session, *, kind: str, certificate_id: str, data: bytes, now: datetime) -> LogEntry:
    """Append one entry (and the nodes it completes) in the caller's transaction."""
    return append_many(session, [(kind, certificate_id, data)], now=now)[0]


def append_many(session: Session, items: list[tuple[str, str, bytes]], *, now: datetime) -> list[LogEntry]:
    """Append entries in order, with one position update for all (batch issuance)."""
    if not items:
        return []
    region = current_region(session)
    end = session.execute(
        update(Region)
        .where(Region.id == region.id)
        .values(log_size=Region.log_size + len(items))
        .returning(Region.log_size)
    ).scalar_one()
    start = int(end) - len(items)
    hashed = [leaf_hash(data) for _, _, data in items]
    entries = [
        LogEntry(
            position=start + offset,
            kind=kind,
            certificate_id=certificate_id,
            data=data,
            leaf_hash=hashed[offset],
            recorded_at=now,
        )
        for offset, (kind, certificate_id, data) in enumerate(items)
    ]
    nodes = nodes_completed_by_batch(start, hashed, node_reader(session))
    insert_new(session, entries)
    # About two nodes per entry: a bulk INSERT, not ORM objects (a 1000-entry batch's
    # nodes would otherwise cost more than its signatures).
    session.execute(insert(LogNode), [{"level": n.level, "position": n.index, "hash": n.hash} for n in nodes])
    return entries


def status_leaf(
    certificate_id: str, *, to_status: str, from_status: str, reason: str, changed_at: datetime, actor: str
) -> bytes:
    """A status change's leaf data: canonical JSON (sorted keys, no spaces, UTF-8)."""
    statement = {
        "type": STATUS_STATEMENT,
        "id": certificate_id,
        "from": from_status,
        "status": to_status,
        "reason": reason,
        "time": iso_utc(changed_at),
        "actor": actor,
    }
    return json.dumps(statement, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def node_reader(session: Session) -> NodeReader:
    """Read stored perfect-subtree hashes (including ones added in this transaction)."""

    def read(level: int, position: int) -> bytes:
        found = session.get(LogNode, (level, position))
        if found is None:
            raise LogCorrupted(f"the log has no node ({level}, {position}): its tables were edited")
        return found.hash

    return read


def with_nodes(session: Session, compute: Callable[[NodeReader], T]) -> T:
    """``compute(reader)`` with every node it reads fetched in one query."""
    return compute(nodes_for(session, [compute]))


def nodes_for(
    session: Session, computations: Iterable[Callable[[NodeReader], object]], cache: NodeCache | None = None
) -> NodeReader:
    """A reader holding every node the ``computations`` read, fetched together: one query
    for up to :data:`MAX_NODES_PER_QUERY` distinct nodes (a batch's proofs share most of
    theirs near the root). With a ``cache``, only the nodes it lacks are fetched (none:
    no query), and those are kept in it; pass one only with a session that sees committed
    rows alone (:mod:`registry.node_cache`).

    Which nodes a root or proof reads depends only on the sizes and indices, never on
    the hashes, so each computation runs once here with a recording reader (placeholder
    hashes) to learn them; the caller then runs it again over the returned reader. The
    reader raises :class:`LogCorrupted` for a node the log lacks.
    """
    wanted: set[tuple[int, int]] = set()

    def record(level: int, position: int) -> bytes:
        wanted.add((level, position))
        return bytes(32)

    for compute in computations:
        compute(record)
    found = {} if cache is None else cache.known(wanted)
    by_level: dict[int, set[int]] = {}
    for level, position in wanted.difference(found):
        by_level.setdefault(level, set()).add(position)
    fetched: dict[tuple[int, int], bytes] = {}
    for part in _node_queries(by_level):
        parameters: dict[str, object] = {}
        for term, (level, positions) in enumerate(part):
            parameters[f"level{term}"], parameters[f"positions{term}"] = level, positions
        rows = session.execute(_nodes_query(len(part)), parameters)
        fetched.update({(level, position): bytes(hashed) for level, position, hashed in rows})
    if cache is not None:
        cache.keep(fetched)
    found.update(fetched)

    def read(level: int, position: int) -> bytes:
        hashed = found.get((level, position))
        if hashed is None:
            raise LogCorrupted(f"the log has no node ({level}, {position}): its tables were edited")
        return hashed

    return read


@functools.cache
def _nodes_query(terms: int) -> Select[tuple[int, int, bytes]]:
    """The nodes of ``terms`` levels, each with its list of positions (bound parameters
    ``level<i>`` and ``positions<i>``): built once per number of levels, so the statement
    is not rebuilt for every proof."""
    # One OR term per level: SQLite searches the primary key for each (a row-value IN
    # would scan the whole table).
    condition = or_(
        *(
            and_(
                LogNode.level == bindparam(f"level{term}"),
                LogNode.position.in_(bindparam(f"positions{term}", expanding=True)),
            )
            for term in range(terms)
        )
    )
    return select(LogNode.level, LogNode.position, LogNode.hash).where(condition)


def _node_queries(by_level: dict[int, set[int]]) -> Iterator[list[tuple[int, list[int]]]]:
    """(level, positions) terms, grouped so that no query binds more than
    :data:`MAX_NODES_PER_QUERY` positions (both databases cap a statement's parameters)."""
    part: list[tuple[int, list[int]]] = []
    room = MAX_NODES_PER_QUERY
    for level, positions in sorted(by_level.items()):
        ordered = sorted(positions)
        while ordered:
            taken, ordered = ordered[:room], ordered[room:]
            part.append((level, taken))
            room -= len(taken)
            if room == 0:
                yield part
                part, room = [], MAX_NODES_PER_QUERY
    if part:
        yield part


def tree_size(session: Session) -> int:
    return current_region(session).log_size


def root_hash(session: Session, size: int) -> bytes:
    _check_size(session, size)
    return with_nodes(session, lambda read: root(size, read))


def inclusion(session: Session, position: int, size: int) -> list[bytes]:
    _check_size(session, size)
    if not 0 <= position < size:
        raise LogRangeError(f"entry {position} is not in a tree of size {size}")
    return with_nodes(session, lambda read: inclusion_proof(position, size, read))


def consistency(session: Session, size1: int, size2: int) -> list[bytes]:
    _check_size(session, size2)
    if not 0 < size1 <= size2:
        raise LogRangeError(f"no consistency proof from size {size1} to size {size2}")
    return with_nodes(session, lambda read: consistency_proof(size1, size2, read))


def entries(session: Session, start: int, end: int) -> list[bytes]:
    """Leaf data of entries ``start`` (inclusive) to ``end`` (exclusive), at most a page."""
    size = tree_size(session)
    if not 0 <= start < end <= size or end - start > MAX_ENTRIES_PER_PAGE:
        raise LogRangeError(f"entries need 0 ≤ start < end ≤ {size} and at most {MAX_ENTRIES_PER_PAGE} at once")
    rows = session.scalars(
        select(LogEntry.data).where(LogEntry.position >= start, LogEntry.position < end).order_by(LogEntry.position)
    ).all()
    if len(rows) != end - start:
        raise LogCorrupted(f"entries {start}..{end - 1} are not all in the log: its tables were edited")
    return [bytes(row) for row in rows]


def entry_for_issuance(session: Session, certificate_id: str) -> LogEntry | None:
    return session.scalars(
        select(LogEntry).where(LogEntry.certificate_id == certificate_id, LogEntry.kind == ISSUANCE)
    ).first()


# ---------------------------------------------------------------- the log's key and checkpoints


def origin_of(region: Region) -> str:
    """The log's origin line (and key name): ``<host>[/<path>]/ecert-log/<region code>``."""
    url = urlsplit(region.public_url)
    return f"{url.netloc}{url.path.rstrip('/')}/ecert-log/{region.code}"


def ensure_log_key(session: Session, keyring: KeyRing, region: Region) -> ed25519.Ed25519PrivateKey:
    """The region's log key, created on first use (regions made before the log existed)."""
    if region.log_private_key is None or region.log_public_key is None or region.log_origin is None:
        key = ed25519.Ed25519PrivateKey.generate()
        region.log_origin = origin_of(region)
        region.log_public_key = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        region.log_private_key = keyring.encrypt(key, _log_kid(region))
        session.flush()
        return key
    stored = region.log_private_key
    loaded = keyring.private_key(_log_kid(region), lambda: stored)
    assert isinstance(loaded, ed25519.Ed25519PrivateKey)
    return loaded


def log_verifier_key(region: Region) -> str | None:
    """``name+hash+base64(0x01 || key)``, or None before the log has a key."""
    if region.log_public_key is None or region.log_origin is None:
        return None
    public_key = ed25519.Ed25519PublicKey.from_public_bytes(region.log_public_key)
    return verifier_key(region.log_origin, public_key)


def newest_checkpoint(session: Session) -> LogCheckpoint | None:
    return session.scalars(select(LogCheckpoint).order_by(LogCheckpoint.size.desc()).limit(1)).first()


def current_checkpoint(session: Session, keyring: KeyRing, *, now: datetime) -> LogCheckpoint:
    """A signed checkpoint of the log as it is now, signing (and keeping) one if needed.

    Writes only when the log grew since the newest kept checkpoint; the caller commits.
    """
    region = current_region(session)
    newest = newest_checkpoint(session)
    if newest is not None and newest.size == region.log_size:
        return newest
    key = ensure_log_key(session, keyring, region)
    assert region.log_origin is not None
    size = region.log_size
    root_of_size = with_nodes(session, lambda read: root(size, read))
    note = sign_note(Checkpoint(region.log_origin, size, root_of_size).text(), region.log_origin, key)
    checkpoint = LogCheckpoint(size=size, root_hash=root_of_size, note=note, signed_at=now)
    try:
        with session.begin_nested():
            session.add(checkpoint)
    except IntegrityError:  # another request kept a checkpoint of this size meanwhile
        kept = session.get(LogCheckpoint, size)
        assert kept is not None
        return kept
    return checkpoint


def _log_kid(region: Region) -> str:
    return f"log-{region.code}"


def _check_size(session: Session, size: int) -> None:
    current = tree_size(session)
    if not 0 <= size <= current:
        raise LogRangeError(f"the log has {current} entries, not {size}")


def count_entries(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(LogEntry)) or 0)

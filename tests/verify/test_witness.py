"""Witnessing a peer's transparency log (verify.witness through ``peer sync``), cosigning
what we witnessed, and ``log audit`` re-checking it, against real HTTP servers.

The peer (330000) is a real deployment with its own database, served on loopback. Its
history is rewritten the way the issue describes: its database restored from an older
copy and then written again (SQLite: the file itself, copied with SQLite's backup API
and copied back; PostgreSQL: every table's rows dumped and reloaded with triggers off,
as ``pg_restore --disable-triggers`` would). Our region is the ``app`` of
``tests/conftest.py``. Every case runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import make_url, text, update

from deployment import Deployment
from registry.merkle import leaf_hash, root_from_leaves
from registry.models import Base, Peer
from signing.notes import Checkpoint, open_note, parse_checkpoint, parse_verifier_key, sign_note
from tests.verify.peer_server import ACTOR, PEER_CODE, CannedServer, Home, PeerRegion
from verify.peers import SyncOutcome, get_peer, sync_peer

pytest_plugins = ["tests.verify.conftest_peers"]

LOG = "/api/v1/log"


# ---------------------------------------------------------------- reading logs as an outsider


@dataclass(frozen=True)
class LogKey:
    name: str
    key: ed25519.Ed25519PublicKey


def log_key(client: FlaskClient) -> LogKey:
    """A region's published log verifier key (``GET /api/v1/log``)."""
    name, key = parse_verifier_key(client.get(LOG).json["verifier_key"])
    return LogKey(name, key)


def signed_checkpoint(client: FlaskClient) -> Checkpoint:
    """The region's checkpoint, verified under its published key."""
    key = log_key(client)
    note = client.get(f"{LOG}/checkpoint").get_data(as_text=True)
    return parse_checkpoint(open_note(note, {key.name: key.key})[0])


def root_of_entries(client: FlaskClient, size: int) -> bytes:
    """The RFC 6962 root recomputed from the region's served entries alone."""
    entries = client.get(f"{LOG}/entries?start=0&end={size}").json["entries"]
    return root_from_leaves(leaf_hash(base64.b64decode(e)) for e in entries)


# ---------------------------------------------------------------- our side


def sync(deployment: Deployment, code: str = PEER_CODE) -> SyncOutcome:
    """``peer sync`` for one peer, countersigning with our log key, committed."""
    with deployment.session() as session:
        outcome = sync_peer(
            session,
            deployment.fetcher,
            get_peer(session, code),
            now=deployment.now(),
            actor=ACTOR,
            keyring=deployment.keyring,
        )
        session.commit()
        return outcome


def invoke_json(runner: FlaskCliRunner, *args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(args=[*args, "--json"])
    return result.exit_code, json.loads(result.output.strip().splitlines()[-1])


# ---------------------------------------------------------------- the peer's backups


def backup(deployment: Deployment, directory: Path) -> Callable[[], None]:
    """Copy the region's database now; returns the restore (which overwrites it)."""
    url = make_url(deployment.settings.database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        return _sqlite_file_backup(deployment, Path(url.database), directory / "peer-backup.db")
    return _row_backup(deployment)


def _sqlite_file_backup(deployment: Deployment, live: Path, copy: Path) -> Callable[[], None]:
    with sqlite3.connect(live) as source, sqlite3.connect(copy) as target:
        source.backup(target)

    def restore() -> None:
        deployment.engine.dispose()  # no pooled connection outlives the file it opened
        deployment.read_engine.dispose()
        with sqlite3.connect(copy) as source, sqlite3.connect(live) as target:
            source.backup(target)

    return restore


def _row_backup(deployment: Deployment) -> Callable[[], None]:
    tables = Base.metadata.sorted_tables
    with deployment.engine.connect() as connection:
        rows = {t.name: [dict(r._mapping) for r in connection.execute(t.select())] for t in tables}

    def restore() -> None:
        with deployment.engine.begin() as connection:
            connection.execute(text("SET LOCAL session_replication_role = replica"))  # triggers off
            for table in reversed(tables):
                connection.execute(table.delete())
            for table in tables:
                if rows[table.name]:
                    connection.execute(table.insert(), rows[table.name])

    return restore


# ---------------------------------------------------------------- consistent growth


def test_a_peers_consistent_growth_is_accepted_and_cosigned(
    deployment: Deployment, home: Home, recognised_peer: PeerRegion, client: FlaskClient
) -> None:
    """Each sync checks the peer's new checkpoint extends the one held, keeps it, and
    countersigns it: ``/api/v1/log/cosignatures`` on our side serves the peer's
    checkpoint carrying the peer's signature (under its key) and ours (under ours)."""
    peer = recognised_peer
    for _ in range(3):
        peer.issue()
    assert sync(deployment).ok
    assert [(c["region"], c["size"]) for c in client.get(f"{LOG}/cosignatures").json["cosignatures"]] == [
        (PEER_CODE, 3)
    ]
    suspended = peer.issue("PQ")
    peer.issue()
    peer.change_status(suspended["id"], "SUSPENDED")

    outcome = sync(deployment)

    assert outcome.ok, outcome
    theirs = signed_checkpoint(peer.client)
    assert theirs.size == 6
    assert theirs.root_hash == root_of_entries(peer.client, 6)
    row = home.peer_row()
    assert row is not None
    assert (row.log_size, row.log_root) == (6, theirs.root_hash)
    (cosigned,) = client.get(f"{LOG}/cosignatures").json["cosignatures"]
    assert (cosigned["region"], cosigned["size"]) == (PEER_CODE, 6)
    ours, peers = log_key(client), log_key(peer.client)
    text_, signers = open_note(cosigned["checkpoint"], {ours.name: ours.key, peers.name: peers.key})
    assert sorted(signers) == sorted([ours.name, peers.name])
    assert parse_checkpoint(text_) == theirs
    assert open_note(cosigned["checkpoint"], {ours.name: ours.key})[1] == [ours.name]
    assert open_note(cosigned["checkpoint"], {peers.name: peers.key})[1] == [peers.name]


def test_log_audit_is_clean_after_consistent_growth(
    deployment: Deployment, recognised_peer: PeerRegion, runner: FlaskCliRunner
) -> None:
    """Our log consistent, the peer's held checkpoint verified and still extended."""
    recognised_peer.issue()
    assert sync(deployment).ok
    recognised_peer.issue("PQ")

    code, report = invoke_json(runner, "log", "audit")

    assert code == 0, report
    assert (report["consistent"], report["own"], report["peers"], report["warnings"]) == (True, [], [], [])


# ---------------------------------------------------------------- a rewritten history


REWRITES = [
    pytest.param(1, "LOG_ROLLBACK", "region 330000's log shrank from 4 to 3 entries", id="restored-then-shorter"),
    pytest.param(2, "LOG_FORK", "region 330000's log has two different roots at size 4", id="restored-then-same-size"),
    pytest.param(
        4,
        "LOG_FORK",
        "region 330000's log at 6 entries does not extend the 4 seen: its history was rewritten",
        id="restored-then-longer",
    ),
]


@pytest.fixture
def witnessed_then_restored(
    deployment: Deployment, recognised_peer: PeerRegion, tmp_path: Path
) -> Callable[[int], PeerRegion]:
    """The peer at 2 entries is backed up, grows to 4 (which we witness and cosign), is
    restored from the backup and issues ``n`` other certificates."""
    peer = recognised_peer

    def rewrite(n: int) -> PeerRegion:
        peer.issue()
        peer.issue()
        restore = backup(peer.deployment, tmp_path)
        peer.issue()
        peer.issue()
        outcome = sync(deployment)
        assert outcome.ok, outcome
        restore()
        assert signed_checkpoint(peer.client).size == 2
        for _ in range(n):
            peer.issue("PQ")
        return peer

    return rewrite


@pytest.mark.parametrize(("issued_after", "code", "detail"), REWRITES)
def test_a_rewritten_history_is_caught_by_the_next_sync(
    deployment: Deployment,
    home: Home,
    witnessed_then_restored: Callable[[int], PeerRegion],
    issued_after: int,
    code: str,
    detail: str,
) -> None:
    """Restored from an older copy and written again, the peer's log is refused whether
    it is now shorter, as long or longer than what we saw; the last good checkpoint (and
    our cosignature of it) is kept, and the refusal is recorded."""
    witnessed_then_restored(issued_after)
    held = home.peer_row()
    assert held is not None and held.log_size == 4

    outcome = sync(deployment)

    assert (outcome.error_code, outcome.error) == (code, detail)
    after = home.peer_row()
    assert after is not None
    assert (after.log_size, after.log_root, after.log_checkpoint, after.log_cosigned) == (
        held.log_size,
        held.log_root,
        held.log_checkpoint,
        held.log_cosigned,
    )
    assert (after.last_error_code, after.last_error) == (code, detail)
    assert home.audit("peer.sync_refused")[-1].details["code"] == code


@pytest.mark.parametrize(("issued_after", "code", "detail"), REWRITES)
def test_a_rewritten_history_fails_peer_sync_and_log_audit(
    runner: FlaskCliRunner,
    witnessed_then_restored: Callable[[int], PeerRegion],
    issued_after: int,
    code: str,
    detail: str,
) -> None:
    """Through the commands: ``peer sync`` exits 1 naming the code; ``log audit`` exits 1
    naming the region and the sizes, and our own log stays consistent."""
    witnessed_then_restored(issued_after)

    sync_code, synced = invoke_json(runner, "peer", "sync")
    audit_code, audited = invoke_json(runner, "log", "audit")

    assert sync_code == 1
    assert [(p["region"], p["error"], p["detail"]) for p in synced["peers"]] == [(PEER_CODE, code, detail)]
    assert audit_code == 1
    assert audited["consistent"] is False
    assert audited["own"] == []
    assert audited["peers"] == [{"region": PEER_CODE, "code": code, "detail": detail}]


# ---------------------------------------------------------------- what log audit re-checks


def test_log_audit_finds_our_held_copy_of_a_peers_checkpoint_edited(
    deployment: Deployment, recognised_peer: PeerRegion, runner: FlaskCliRunner
) -> None:
    """The size we hold edited in our own database (the note left alone): the held
    checkpoint no longer matches its signed note."""
    recognised_peer.issue()
    assert sync(deployment).ok
    with deployment.session() as session:
        session.execute(update(Peer).where(Peer.region_code == PEER_CODE).values(log_size=0))
        session.commit()

    code, report = invoke_json(runner, "log", "audit")

    assert code == 1
    assert report["peers"] == [
        {"region": PEER_CODE, "code": "LOG_FORK", "detail": "the checkpoint held for region 330000 was edited"}
    ]


def test_an_unreachable_peer_is_only_a_warning_in_log_audit(
    deployment: Deployment, recognised_peer: PeerRegion, runner: FlaskCliRunner
) -> None:
    """A peer that cannot be reached proves nothing either way: exit 0, with a warning."""
    recognised_peer.issue()
    assert sync(deployment).ok
    recognised_peer.stop()

    code, report = invoke_json(runner, "log", "audit")

    assert code == 0, report
    assert report["consistent"] is True
    assert [(w["region"], w["code"]) for w in report["warnings"]] == [(PEER_CODE, "PEER_UNREACHABLE")]
    assert report["peers"] == []


def test_a_checkpoint_not_signed_by_the_listed_log_key_is_refused(
    deployment: Deployment, home: Home, relocated_peer: PeerRegion, canned: CannedServer
) -> None:
    """The peer's address serving a checkpoint signed by another key under the log's name:
    ``LOG_REFUSED``, and nothing of it is kept."""
    peer = relocated_peer
    peer.issue()
    canned.serve(f"{LOG}/checkpoint", peer.client.get(f"{LOG}/checkpoint").get_data())
    assert home.add(canned.url, peer.fingerprint).ok
    held = home.peer_row()
    assert held is not None and held.log_size == 1
    impostor = ed25519.Ed25519PrivateKey.generate()
    origin = log_key(peer.client).name
    canned.serve(f"{LOG}/checkpoint", sign_note(Checkpoint(origin, 9, bytes(32)).text(), origin, impostor))

    outcome = sync(deployment)

    assert outcome.error_code == "LOG_REFUSED"
    after = home.peer_row()
    assert after is not None
    assert (after.log_size, after.log_root, after.log_checkpoint) == (1, held.log_root, held.log_checkpoint)


def test_a_rewritten_peer_withholding_the_proof_fails_log_audit(
    deployment: Deployment,
    home: Home,
    relocated_peer: PeerRegion,
    canned: CannedServer,
    runner: FlaskCliRunner,
    tmp_path: Path,
) -> None:
    """The peer's address serves the rewritten tree's checkpoint (it answered, it is
    reachable) but answers the consistency proof with HTTP 500."""
    peer = relocated_peer

    def serve_checkpoint_and_proof(held_size: int | None) -> None:
        canned.serve(f"{LOG}/checkpoint", peer.client.get(f"{LOG}/checkpoint").get_data())
        if held_size is not None:
            size = signed_checkpoint(peer.client).size
            proof = peer.client.get(f"{LOG}/proof/consistency?from={held_size}&to={size}").get_data()
            canned.serve(f"{LOG}/proof/consistency", proof)

    peer.issue()
    peer.issue()
    serve_checkpoint_and_proof(None)
    assert home.add(canned.url, peer.fingerprint).ok
    restore = backup(peer.deployment, tmp_path)
    peer.issue()
    peer.issue()
    serve_checkpoint_and_proof(2)
    assert sync(deployment).ok
    restore()
    for _ in range(3):
        peer.issue("PQ")
    canned.serve(f"{LOG}/checkpoint", peer.client.get(f"{LOG}/checkpoint").get_data())
    canned.serve(f"{LOG}/proof/consistency", "withheld", status=500)

    code, report = invoke_json(runner, "log", "audit")

    assert code == 1, report

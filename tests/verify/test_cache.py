"""The verification hot path (issue 7): what a running deployment caches (our region, keys,
catalog, peers; our log's proof nodes and newest checkpoint), how every change reaches it
at once, the queries one verification and a batch cost, and that a batch answers exactly
as one verification per token does.

Every test runs on SQLite and PostgreSQL. Verifications go through the running app's own
cache (``deployment.registry_views``), each on a fresh reading session, as requests do;
changes are made on other sessions through the domain functions, or by the CLI in another
process, never through the cache.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, event, update

from deployment import Deployment
from registry.demo import sample_request
from registry.issuance import issue_certificate
from registry.log import current_checkpoint, log_verifier_key
from registry.merkle import leaf_hash, verify_inclusion
from registry.models import CertificateType, Office, Peer, Region
from registry.offices import get_office, mark_key_compromised, rotate_key
from registry.regions import current_region
from registry.requests import parse_issuance_request
from signing.notes import open_note, parse_checkpoint, parse_verifier_key
from tests.conftest import PUBLIC_URL, START, TEST_PASSPHRASE, FixedClock, OfficeFixture
from tests.verify.conftest import LEEWAY, Genuine, b64url, decode_parts, forge, with_signature
from tests.verify.peer_server import PeerRegion
from verify.log_cache import CHECKPOINT_REUSE
from verify.report import VerificationReport, answer
from verify.verifier import Verifier

pytest_plugins = ["tests.verify.conftest_peers"]

ROOT = Path(__file__).resolve().parents[2]
Live = Callable[[list[str]], list[VerificationReport]]


@pytest.fixture
def live(deployment: Deployment, clock: FixedClock) -> Live:
    """``verify_many`` as one request of the running deployment: its process cache, a
    fresh reading session that sees every commit so far."""

    def run(tokens: list[str]) -> list[VerificationReport]:
        with deployment.read_session() as session:
            verifier = deployment.verifier(session, now=clock(), actor="test")
            return verifier.verify_many(tokens)

    return run


def codes(reports: list[VerificationReport]) -> list[str]:
    return [report.code for report in reports]


@contextmanager
def counted(deployment: Deployment) -> Iterator[list[str]]:
    """Every SQL statement the deployment's engines execute inside the block."""
    statements: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engines: set[Engine] = {deployment.engine, deployment.read_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def issue_many(deployment: Deployment, office: OfficeFixture, clock: FixedClock, count: int) -> list[str]:
    """``count`` DL certificates issued through the issuance service, in one transaction."""
    request = parse_issuance_request(sample_request("DL"))
    with deployment.session() as session:
        issuer = get_office(session, office.code)
        tokens = [
            issue_certificate(session, deployment.keyring, issuer, request, now=clock(), actor="test").certificate.token
            for _ in range(count)
        ]
        session.commit()
    return tokens


# ---------------------------------------------------------------- invalidation


def test_a_key_compromised_in_another_session_counts_at_the_next_verification(
    live: Live, deployment: Deployment, genuine: Genuine, clock: FixedClock
) -> None:
    assert codes(live([genuine.token])) == ["OK"]

    with deployment.session() as other:
        mark_key_compromised(other, deployment.keyring, genuine.kid, START, now=clock(), actor="test")
        other.commit()

    assert codes(live([genuine.token])) == ["KEY_COMPROMISED"]


def test_a_key_compromised_by_the_cli_in_another_process_counts_at_the_next_verification(
    live: Live, database_url: str, genuine: Genuine
) -> None:
    assert codes(live([genuine.token])) == ["OK"]

    environment = {
        **os.environ,
        "ECERT_DATABASE_URL": database_url,
        "ECERT_KEY_PASSPHRASE": TEST_PASSPHRASE,
        "ECERT_PUBLIC_URL": PUBLIC_URL,
    }
    command = [sys.executable, "-m", "flask", "--app", "app", "office", "key-compromised"]
    since = ["--kid", genuine.kid, "--since", START.isoformat()]
    done = subprocess.run(
        [*command, *since], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr

    assert codes(live([genuine.token])) == ["KEY_COMPROMISED"]


def test_a_key_retired_in_another_session_counts_at_the_next_verification(
    live: Live, deployment: Deployment, genuine: Genuine, office: OfficeFixture, clock: FixedClock
) -> None:
    # Signed by the real key, dated after the moment it will be retired: never registered.
    issued_at = genuine.payload["iat"]
    after_retirement = forge(genuine.header, {**genuine.payload, "iat": issued_at + 600}, genuine.office_key)
    clock.advance(seconds=700)
    assert codes(live([genuine.token, after_retirement])) == ["OK", "NOT_IN_REGISTRY"]

    retired_at = datetime.fromtimestamp(issued_at + 300, UTC)
    with deployment.session() as other:
        rotate_key(other, deployment.keyring, get_office(other, office.code), algorithm=None, now=retired_at, actor="t")
        other.commit()

    assert codes(live([genuine.token, after_retirement])) == ["OK", "KEY_NOT_VALID_AT_IAT"]


def test_a_catalog_change_counts_at_the_next_verification(live: Live, deployment: Deployment, genuine: Genuine) -> None:
    before = answer(live([genuine.token])[0])["certificate"]["type"]["name_en"]

    with deployment.session() as other:
        other.execute(update(CertificateType).where(CertificateType.code == "DL").values(name_en="Driving permit"))
        other.commit()

    assert before != "Driving permit"
    assert answer(live([genuine.token])[0])["certificate"]["type"]["name_en"] == "Driving permit"


def test_a_renamed_office_and_region_count_at_the_next_verification(
    live: Live, deployment: Deployment, genuine: Genuine, office: OfficeFixture
) -> None:
    assert answer(live([genuine.token])[0])["issuer"]["region_name"] == "上海市"

    with deployment.session() as other:
        other.execute(update(Office).where(Office.credit_code == office.code).values(name="上海市新发证中心"))
        other.execute(update(Region).values(name="上海"))
        other.commit()

    issuer = answer(live([genuine.token])[0])["issuer"]
    assert (issuer["office_name"], issuer["region_name"]) == ("上海市新发证中心", "上海")


def test_a_removed_peer_is_not_recognised_at_the_next_verification(
    live: Live, deployment: Deployment, recognised_peer: PeerRegion
) -> None:
    token = recognised_peer.issue("DL")["token"]
    assert codes(live([token])) == ["OK"]

    with deployment.session() as other:
        other.execute(delete(Peer).where(Peer.region_code == recognised_peer.code))
        other.commit()

    assert codes(live([token])) == ["REGION_NOT_RECOGNISED"]


def test_issuing_and_changing_status_keep_the_cached_view(
    live: Live, deployment: Deployment, genuine: Genuine, office: OfficeFixture, clock: FixedClock
) -> None:
    # Issuance updates the region row (status index, log size): not what the view holds.
    live([genuine.token])
    view = deployment.registry_views.current
    with deployment.read_session() as session:
        held = view(session)

    issue_many(deployment, office, clock, 3)

    with deployment.read_session() as session:
        assert view(session) is held


# ---------------------------------------------------------------- queries


def read_from(statements: list[str]) -> list[str]:
    """The table each statement reads (SQLite's explicit BEGIN left out)."""
    return [match.group(1) for s in statements if (match := re.search(r"\bFROM (\w+)", s))]


def test_a_repeated_verification_costs_two_queries_with_10_or_500_certificates(
    live: Live, deployment: Deployment, office: OfficeFixture, clock: FixedClock
) -> None:
    small = issue_many(deployment, office, clock, 10)
    live([small[0]])  # reads the view and signs a checkpoint of the log
    with counted(deployment) as first_10:
        assert codes(live([small[5]])) == ["OK"]
    with counted(deployment) as again_10:
        assert codes(live([small[5]])) == ["OK"]

    large = issue_many(deployment, office, clock, 490)
    live([large[0]])  # a checkpoint of the grown log
    with counted(deployment) as first_500:
        assert codes(live([large[250]])) == ["OK"]
    with counted(deployment) as again_500:
        assert codes(live([large[250]])) == ["OK"]

    # The generation and the certificate: nothing of the region, keys, catalog or peers,
    # nor of the log (the proof's nodes are cached, the checkpoint held).
    assert len(again_10) == len(again_500)
    assert read_from(again_500) == ["cache_generation", "certificate"]
    # A token not verified before: the nodes of its proof not yet read, in one query.
    assert read_from(first_10) == read_from(first_500) == ["cache_generation", "certificate", "log_node"]


def test_a_held_checkpoint_is_reused_for_a_bounded_time_then_the_newest_is_read(
    live: Live, deployment: Deployment, office: OfficeFixture, clock: FixedClock
) -> None:
    (first,) = issue_many(deployment, office, clock, 1)
    assert [r.log.tree_size for r in live([first]) if r.log] == [1]
    issue_many(deployment, office, clock, 2)
    with deployment.session() as other:  # as GET /api/v1/log/checkpoint does
        assert current_checkpoint(other, deployment.keyring, now=clock()).size == 3
        other.commit()

    clock.advance(seconds=CHECKPOINT_REUSE.total_seconds() - 1)
    with counted(deployment) as held:
        assert [r.log.tree_size for r in live([first]) if r.log] == [1]
    clock.advance(seconds=1)
    with counted(deployment) as newest:
        assert [r.log.tree_size for r in live([first]) if r.log] == [3]

    assert "log_checkpoint" not in read_from(held)
    assert "log_checkpoint" in read_from(newest)


def test_a_token_issued_after_the_held_checkpoint_gets_a_proof_under_a_fresh_one(
    live: Live, deployment: Deployment, office: OfficeFixture, clock: FixedClock
) -> None:
    earlier = issue_many(deployment, office, clock, 3)
    live(earlier)  # holds a checkpoint of 3 entries, and the nodes of their proofs
    (later,) = issue_many(deployment, office, clock, 1)

    (report,) = live([later])

    assert report.code == "OK"
    assert report.log is not None
    assert (report.log.index, report.log.tree_size) == (3, 4)
    with deployment.read_session() as session:
        verifier_key = log_verifier_key(current_region(session))
    assert verifier_key is not None
    name, key = parse_verifier_key(verifier_key)
    signed = parse_checkpoint(open_note(report.log.checkpoint, {name: key})[0])
    assert signed.size == 4
    proof = list(report.log.inclusion_proof)
    assert verify_inclusion(leaf_hash(later.encode("ascii")), 3, signed.size, proof, signed.root_hash)


def test_answers_with_cached_nodes_are_the_answers_read_afresh(
    live: Live, deployment: Deployment, office: OfficeFixture, clock: FixedClock
) -> None:
    tokens = issue_many(deployment, office, clock, 37)
    live(tokens[:1])  # a checkpoint of all 37, and the nodes of one proof
    afresh = [answer(report) for report in live(tokens)]  # the other nodes read now
    cached = [answer(report) for report in live(tokens)]  # every node from the cache
    with deployment.read_session() as session:  # a verifier of its own: nothing held
        uncached = [answer(report) for report in Verifier(session, now=clock(), leeway=LEEWAY).verify_many(tokens)]

    assert len(deployment.log_cache.nodes) > 0
    assert cached == afresh == uncached
    assert {a["log"]["tree_size"] for a in cached} == {37}


def test_a_batch_of_1000_costs_a_bounded_number_of_queries(
    live: Live, deployment: Deployment, office: OfficeFixture, clock: FixedClock
) -> None:
    tokens = issue_many(deployment, office, clock, 1000)
    live([tokens[0]])

    with counted(deployment) as statements:
        reports = live(tokens)

    assert codes(reports) == ["OK"] * 1000
    assert len(statements) <= 6, statements
    assert {report.log.tree_size for report in reports if report.log} == {1000}


def test_a_change_costs_one_rereading_of_the_view(live: Live, deployment: Deployment, genuine: Genuine) -> None:
    live([genuine.token])
    with deployment.session() as other:
        other.execute(update(CertificateType).where(CertificateType.code == "PQ").values(name_en="Qualification"))
        other.commit()

    with counted(deployment) as after_change:
        live([genuine.token])
    with counted(deployment) as unchanged:
        live([genuine.token])

    # Region, keys (with their offices), catalog, peers: four queries, once.
    assert len(after_change) == len(unchanged) + 4


# ---------------------------------------------------------------- one answer per token


def test_a_batch_answers_as_one_verification_per_token(
    live: Live,
    genuine: Genuine,
    issue: Callable[..., dict[str, Any]],
    change_status: Callable[..., dict[str, Any]],
    office: OfficeFixture,
    recognised_peer: PeerRegion,
) -> None:
    revoked = issue("DL", office)
    change_status(office, revoked["id"], "07")
    suspended = issue("PQ", office)
    change_status(office, suspended["id"], "02")
    header, payload, signature = decode_parts(genuine.token)
    unknown_region = forge(header, {**payload, "iss": "440000"}, genuine.office_key)
    tokens = [
        genuine.token,
        revoked["token"],
        suspended["token"],
        with_signature(header, payload, bytes(len(signature))),  # forged: SIG_INVALID
        forge(header, {**payload, "h": {**payload["h"], "n": "张伟"}}, genuine.office_key),  # real key, unregistered
        "not.a.token",
        b64url(b"{}"),
        recognised_peer.issue("DL")["token"],
        unknown_region,
        genuine.other_token,
        genuine.token,  # twice: two answers
    ]
    # Settle the one write a verification may make (a checkpoint of our grown log).
    live(tokens)

    one_by_one = [answer(live([token])[0]) for token in tokens]
    batch = [answer(report) for report in live(tokens)]

    assert batch == one_by_one
    assert [a["code"] for a in batch] == [
        "OK",
        "REVOKED",
        "SUSPENDED",
        "SIG_INVALID",
        "NOT_IN_REGISTRY",
        "MALFORMED",
        "MALFORMED",
        "OK",
        "REGION_NOT_RECOGNISED",
        "OK",
        "OK",
    ]
    assert batch[7]["status_source"] == "issuer"

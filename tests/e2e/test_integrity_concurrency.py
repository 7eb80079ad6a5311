"""Integrity under concurrent issuance (issue 7), through a real server on each database.

Sixteen clients, holding six API tokens of four offices, issue at once through gunicorn
with four workers (four writers on one database). Whatever the interleaving, every
``201`` names a distinct certificate, the registry holds exactly those certificates with
exactly those tokens, the transparency log holds one issuance entry each at positions
0..N-1, the audit trail one ``certificate.issue`` record each, every token verifies, and
``log audit`` finds nothing. On SQLite the writers queue on ``BEGIN IMMEDIATE`` and the
busy timeout: contention must never reach a client as an error.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from registry import log
from tests.e2e.integrity import (
    KINDS,
    TYPES,
    Issuer,
    RegistryRows,
    database_kind,
    half_written,
    issue,
    live_deployment,
    log_audit,
    provision,
    read_registry,
    verdict,
    verify_all,
)
from tests.e2e.live import HttpAnswer, LiveDeployment, Server
from tests.test_concurrency import run_together

pytestmark = pytest.mark.e2e

CLIENTS = 16
PER_CLIENT = 25
WORKERS = 4


@dataclass(frozen=True)
class Issuance:
    """What the concurrent clients were told, and what the registry holds afterwards."""

    answers: list[tuple[Issuer, HttpAnswer]]
    rows: RegistryRows

    @property
    def issued(self) -> list[tuple[Issuer, str, str]]:
        """(issuer, id, token) of every 201."""
        return [(issuer, a.body["id"], a.body["token"]) for issuer, a in self.answers if a.status == 201]


@pytest.fixture(scope="module", params=KINDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDeployment]:
    yield from live_deployment(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def issuers(live: LiveDeployment) -> list[Issuer]:
    return provision(live, offices=4, extra_tokens=2)


@pytest.fixture(scope="module")
def server(live: LiveDeployment, issuers: list[Issuer]) -> Server:
    return live.start_server(workers=WORKERS)


@pytest.fixture(scope="module")
def issuance(live: LiveDeployment, issuers: list[Issuer], server: Server) -> Issuance:
    def client(number: int) -> list[tuple[Issuer, HttpAnswer]]:
        issuer = issuers[number % len(issuers)]
        return [(issuer, issue(server.url, issuer, TYPES[(number + n) % 2])) for n in range(PER_CLIENT)]

    started = time.monotonic()
    answers = [answer for batch in run_together(CLIENTS, client) for answer in batch]
    elapsed = time.monotonic() - started
    print(
        f"\n[{database_kind(live)}] {len(answers)} issuances by {CLIENTS} clients "
        f"through {WORKERS} workers in {elapsed:.1f}s ({len(answers) / elapsed:.0f}/s); "
        f"answers {dict(Counter(a.status for _, a in answers))}"
    )
    return Issuance(answers, read_registry(live.database_url))


def test_every_request_is_answered_201(issuance: Issuance) -> None:
    refused = [(a.status, a.body) for _, a in issuance.answers if a.status != 201]

    assert refused == []
    assert len(issuance.answers) == CLIENTS * PER_CLIENT


def test_no_identifier_twice_and_no_certificate_lost(issuance: Issuance) -> None:
    identifiers = [certificate_id for _, certificate_id, _ in issuance.issued]

    assert len(set(identifiers)) == len(identifiers) == CLIENTS * PER_CLIENT
    assert issuance.rows.tokens == {certificate_id: token for _, certificate_id, token in issuance.issued}


def test_log_is_contiguous_with_one_issuance_entry_each(issuance: Issuance) -> None:
    entries = issuance.rows.entries

    assert [e.position for e in entries] == list(range(CLIENTS * PER_CLIENT))
    assert all(e.kind == log.ISSUANCE for e in entries)
    assert sorted(e.certificate_id for e in entries) == sorted(issuance.rows.tokens)
    assert half_written(issuance.rows) == []


def test_one_audit_record_each(issuance: Issuance) -> None:
    records = issuance.rows.audited

    assert {
        certificate_id: records["certificate.issue", certificate_id] for certificate_id in issuance.rows.tokens
    } == {certificate_id: 1 for certificate_id in issuance.rows.tokens}
    assert sum(records.values()) == CLIENTS * PER_CLIENT


def test_every_token_verifies_as_its_office(issuance: Issuance, server: Server) -> None:
    answers = verify_all(server.url, [token for _, _, token in issuance.issued])

    verdicts = Counter(verdict(answer) for answer in answers.values())
    offices = {(answers[token].body["issuer"]["office"], issuer.office) for issuer, _, token in issuance.issued}
    assert verdicts == Counter({("VALID", "OK"): CLIENTS * PER_CLIENT})
    assert all(answered == issuing for answered, issuing in offices)
    assert all(
        answers[token].body["certificate"]["id"] == certificate_id for _, certificate_id, token in issuance.issued
    )


def test_log_audit_finds_nothing(issuance: Issuance, live: LiveDeployment) -> None:
    exit_code, output = log_audit(live)

    assert exit_code == 0, output
    assert f"own log: {CLIENTS * PER_CLIENT} entries, consistent" in output

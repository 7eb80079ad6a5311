"""Shared parts of the integrity tests (issue 7): a deployment provisioned with several
offices and API tokens, the calls its clients make, and the registry read back.

The tests hold the registry to what its clients were told: a ``201`` and a token, a
``200`` for a status change. What the deployment holds afterwards is read two ways: its
database, read directly with SQLAlchemy (reading only, and only while no client writes),
and its own ``log audit`` command.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from registry import log
from registry.database import make_engine
from registry.demo import sample_request
from registry.identifiers import make_credit_code
from registry.models import AuditRecord, Certificate, LogEntry, StatusChange
from registry.status import Status
from tests.e2e.live import HTTP_TIMEOUT, HttpAnswer, LiveDeployment, Server, free_port, fresh_database, http

KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
REGION_CODE = "310000"
TYPES = ("BL", "DL")
MIB = 1024 * 1024


def live_deployment(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDeployment]:
    """A deployment on a fresh database of ``kind``; every server it starts is stopped afterwards."""
    for database_url in fresh_database(kind, tmp_path_factory):
        folder = tmp_path_factory.mktemp("instance")
        deployment = LiveDeployment(folder=folder, database_url=database_url, port=free_port())
        try:
            yield deployment
        finally:
            deployment.stop_all()


# ---------------------------------------------------------------- provisioning


@dataclass(frozen=True)
class Issuer:
    """One API token of one office: what a client issues with."""

    office: str
    api_token: str


def provision(live: LiveDeployment, *, offices: int, extra_tokens: int = 0) -> list[Issuer]:
    """Migrate, create the region and ``offices`` offices (BL, DL) through the CLI, and give
    the first ``extra_tokens`` offices a second API token. One issuer per token."""
    upgrade = live.flask("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    live.flask_json("region", "init", "--code", REGION_CODE, "--name", "上海市")
    issuers = []
    for number in range(offices):
        code = make_credit_code(f"1131000000241896{number}")
        added = live.flask_json("office", "add", "--code", code, "--name", f"发证中心{number}", "--types", "BL,DL")
        issuers.append(Issuer(added["code"], added["api_token"]))
    for issuer in issuers[:extra_tokens]:
        issuers.append(
            Issuer(issuer.office, live.flask_json("office", "new-token", "--code", issuer.office)["api_token"])
        )
    return issuers


# ---------------------------------------------------------------- what clients call
# Each takes the server's base URL: it stays the same across restarts on one port.


def issue(url: str, issuer: Issuer, type_code: str) -> HttpAnswer:
    return http("POST", f"{url}/api/v1/certificates", sample_request(type_code), issuer.api_token)


def issue_batch(url: str, issuer: Issuer, type_codes: list[str]) -> HttpAnswer:
    body = {"items": [sample_request(type_code) for type_code in type_codes]}
    return http("POST", f"{url}/api/v1/certificates/batch", body, issuer.api_token)


def change_status(url: str, issuer: Issuer, certificate_id: str, status: Status) -> HttpAnswer:
    body = {"status": status.name, "reason": "integrity test"}
    return http("POST", f"{url}/api/v1/certificates/{certificate_id}/status", body, issuer.api_token)


def verify(url: str, token: str) -> HttpAnswer:
    return http("POST", f"{url}/api/v1/verify", {"token": token})


def verify_batch(url: str, tokens: list[str]) -> HttpAnswer:
    return http("POST", f"{url}/api/v1/verify/batch", {"tokens": tokens})


def fetch_pdf(url: str, issuer: Issuer, certificate_id: str) -> tuple[int, str, bytes]:
    """Status, content type and body of ``GET /api/v1/certificates/<id>/pdf``."""
    assert url.startswith("http://127.0.0.1:"), url
    request = urllib.request.Request(  # noqa: S310
        f"{url}/api/v1/certificates/{certificate_id}/pdf", headers={"Authorization": f"Bearer {issuer.api_token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            return response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get_content_type(), error.read()


def expected_verdict(status: Status) -> tuple[str, str]:
    """What verification answers for a genuine certificate in ``status`` (verification.md)."""
    return ("VALID", "OK") if status is Status.VALID else ("INVALID", status.name)


def verdict(answer: HttpAnswer) -> tuple[str, str]:
    assert answer.status == 200, answer.body
    return answer.body["verdict"], answer.body["code"]


def verify_all(url: str, tokens: Iterable[str], *, clients: int = 4) -> dict[str, HttpAnswer]:
    """``POST /api/v1/verify`` for every token, from ``clients`` threads at once."""
    tokens = list(tokens)
    with ThreadPoolExecutor(max_workers=clients) as pool:
        return dict(zip(tokens, pool.map(lambda token: verify(url, token), tokens), strict=True))


# ---------------------------------------------------------------- the registry, read back


@dataclass(frozen=True)
class Entry:
    position: int
    kind: str
    certificate_id: str
    data: bytes


@dataclass(frozen=True)
class RegistryRows:
    """The rows a certificate's issuance and status changes write, read in one transaction."""

    tokens: dict[str, str]  # certificate id -> token
    statuses: dict[str, Status]
    entries: list[Entry]  # by position
    audited: Counter[tuple[str, str]]  # (action, certificate id) -> records
    history: dict[str, list[Status]]  # certificate id -> the statuses it was moved to, in order


def read_registry(database_url: str) -> RegistryRows:
    """The registry's certificates, log entries, audit records and status changes. Read
    it while no client writes: the tests compare these rows with each other."""
    engine = make_engine(database_url, for_writing=False)
    try:
        with engine.connect() as connection:
            certificates = connection.execute(select(Certificate.id, Certificate.token, Certificate.status)).all()
            entries = connection.execute(
                select(LogEntry.position, LogEntry.kind, LogEntry.certificate_id, LogEntry.data).order_by(
                    LogEntry.position
                )
            ).all()
            audited = connection.execute(
                select(AuditRecord.action, AuditRecord.subject_id).where(AuditRecord.subject_type == "certificate")
            ).all()
            changes = connection.execute(
                select(StatusChange.certificate_id, StatusChange.to_status).order_by(StatusChange.id)
            ).all()
    finally:
        engine.dispose()
    history: dict[str, list[Status]] = {}
    for certificate_id, to_status in changes:
        history.setdefault(certificate_id, []).append(Status(to_status))
    return RegistryRows(
        tokens={c.id: c.token for c in certificates},
        statuses={c.id: Status(c.status) for c in certificates},
        entries=[Entry(e.position, e.kind, e.certificate_id, bytes(e.data)) for e in entries],
        audited=Counter((a.action, a.subject_id) for a in audited),
        history=history,
    )


def half_written(rows: RegistryRows) -> list[str]:
    """Every way the rows fail to be whole: log positions not exactly 0..N-1; a certificate
    without exactly one issuance entry holding its token, or one ``certificate.issue``
    record; an entry whose certificate is missing; status changes, their log entries and
    their ``certificate.status`` records not equal in number, or a status that is not the
    last change. Empty when every issuance and change was written whole or not at all."""
    findings = []
    if [e.position for e in rows.entries] != list(range(len(rows.entries))):
        findings.append("log: positions are not exactly 0..N-1")
    issuances: dict[str, list[Entry]] = {}
    status_entries: Counter[str] = Counter()
    for entry in rows.entries:
        if entry.kind == log.ISSUANCE:
            issuances.setdefault(entry.certificate_id, []).append(entry)
        else:
            status_entries[entry.certificate_id] += 1
    for certificate_id, token in rows.tokens.items():
        entries = issuances.get(certificate_id, [])
        if [e.data for e in entries] != [token.encode("ascii")]:
            findings.append(f"{certificate_id}: {len(entries)} issuance entries, or not holding its token")
        if rows.audited["certificate.issue", certificate_id] != 1:
            findings.append(f"{certificate_id}: {rows.audited['certificate.issue', certificate_id]} issue records")
        changes = rows.history.get(certificate_id, [])
        recorded = (len(changes), status_entries[certificate_id], rows.audited["certificate.status", certificate_id])
        if len(set(recorded)) != 1:
            findings.append(f"{certificate_id}: status changes, log entries, audit records: {recorded}")
        if rows.statuses[certificate_id] != (changes[-1] if changes else Status.VALID):
            findings.append(f"{certificate_id}: status {rows.statuses[certificate_id].name} is not its last change")
    for certificate_id in (issuances.keys() | status_entries.keys()) - rows.tokens.keys():
        findings.append(f"{certificate_id}: in the log, but no certificate row")
    return findings


def database_kind(live: LiveDeployment) -> str:
    return "sqlite" if live.database_url.startswith("sqlite") else "postgresql"


def log_audit(live: LiveDeployment) -> tuple[int, str]:
    """``flask log audit``: its exit code and its output."""
    completed = live.flask("log", "audit")
    return completed.returncode, completed.stdout + completed.stderr


# ---------------------------------------------------------------- worker processes


def worker_pids(server: Server) -> list[int]:
    """gunicorn's workers: the master's child processes, found in /proc (Linux)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == server.process.pid:
            children.append(int(stat.parent.name))
    return sorted(children)


def worker_sizes(server: Server) -> dict[int, int]:
    """Each worker's resident set size in bytes (``VmRSS`` in /proc/<pid>/status); a
    worker that ended while it was read is left out."""
    sizes = {}
    for pid in worker_pids(server):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        sizes[pid] = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
    return sizes

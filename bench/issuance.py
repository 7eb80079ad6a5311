"""Issuance on PostgreSQL, single and in batches, beside plain INSERTs plus signing.

    ./scripts/bench issuance [--single 100] [--batch 1000] [--rounds 3] [--database-url URL]

On a fresh database on ``--database-url`` (default ECERT_BENCH_POSTGRES_URL or the local
test server; dropped afterwards), a region with the demo office. Certificates per
second for:

* single: ``registry.issuance.issue_certificate`` and a commit per certificate (the
  sample request of each reference type in turn, parsed as the API parses it);
* batch: ``registry.batch.issue_batch`` of ``--batch`` items and one commit;
* baseline: the same number of rows of the same size (a real certificate row copied,
  with a fresh identifier and token) into a plain table with the certificate table's
  columns and only a primary key, each token signed with Ed25519 by ``jwt.encode``:
  a commit per row beside single, one ``executemany`` transaction beside batch. No status
  positions, log, audit chain or idempotency: what those cost is the difference.

Rounds interleave ours and the baseline; figures are medians, ratios ours/baseline.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Column, MetaData, Table, insert

from bench.fixtures import POSTGRES_URL, TYPES, bench_database, init_bench_region, open_deployment
from deployment import Deployment
from registry.batch import issue_batch
from registry.demo import sample_request
from registry.issuance import issue_certificate
from registry.models import Certificate, Office
from registry.requests import parse_issuance_request


def issue_single(deployment: Deployment, office: Office, count: int) -> None:
    with deployment.session() as session:
        for i in range(count):
            request = parse_issuance_request(sample_request(TYPES[i % len(TYPES)]))
            issue_certificate(session, deployment.keyring, office, request, now=datetime.now(UTC), actor="bench")
            session.commit()


def issue_one_batch(deployment: Deployment, office: Office, count: int) -> list[str]:
    """One batch of ``count`` items, committed; the tokens issued."""
    items = [sample_request(TYPES[i % len(TYPES)]) for i in range(count)]
    with deployment.session() as session:
        results = issue_batch(session, deployment.keyring, office, items, now=datetime.now(UTC), actor="bench")
        session.commit()
    tokens = [r.certificate.token for r in results if r.certificate is not None]
    if len(tokens) != count:
        raise RuntimeError(f"batch refused {count - len(tokens)} items: {next(r.error for r in results if r.error)}")
    return tokens


class PlainInserts:
    """The baseline: rows shaped like ``template``, signed and INSERTed into a plain table."""

    def __init__(self, deployment: Deployment, template: Certificate) -> None:
        self.deployment = deployment
        columns = Certificate.__table__.columns
        self.table = Table(
            f"plain_certificate_{uuid.uuid4().hex[:8]}",
            MetaData(),
            *(Column(c.name, c.type, primary_key=c.primary_key) for c in columns),
        )
        self.table.create(deployment.engine)
        self.row = {c.name: getattr(template, c.key) for c in columns}
        self.claims: dict[str, Any] = jwt.decode(template.token, options={"verify_signature": False})
        self.kid = str(jwt.get_unverified_header(template.token)["kid"])
        self.key = Ed25519PrivateKey.generate()
        self.serial = 0

    def rows(self, count: int) -> list[dict[str, Any]]:
        rows = []
        for _ in range(count):
            self.serial += 1
            identifier = f"{self.row['id'][:-10]}{self.serial:010d}"
            claims = {**self.claims, "jti": identifier, "s": self.serial}
            token = jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid, "typ": "JWT"})
            rows.append({**self.row, "id": identifier, "token": token, "status_index": self.serial})
        return rows

    def single(self, count: int) -> None:
        for _ in range(count):
            with self.deployment.engine.begin() as connection:
                connection.execute(insert(self.table), self.rows(1))

    def batch(self, count: int) -> None:
        with self.deployment.engine.begin() as connection:
            connection.execute(insert(self.table), self.rows(count))


def per_second(count: int, run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--single", type=int, default=100, help="certificates per single-issuance run")
    parser.add_argument("--batch", type=int, default=1000, help="items per batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=POSTGRES_URL)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder, bench_database(options.database_url, folder) as url:
        deployment = open_deployment(url, folder)
        try:
            with deployment.session() as session:
                office = init_bench_region(session, deployment, datetime.now(UTC))
                template = issue_certificate(
                    session,
                    deployment.keyring,
                    office,
                    parse_issuance_request(sample_request("DL")),
                    now=datetime.now(UTC),
                    actor="bench",
                ).certificate
                session.commit()
            plain = PlainInserts(deployment, template)
            issue_one_batch(deployment, office, 50)  # warm-up: keys decrypted, statements cached
            runs: dict[str, list[float]] = {"single": [], "plain single": [], "batch": [], "plain batch": []}
            for _ in range(options.rounds):
                runs["single"].append(
                    per_second(options.single, lambda: issue_single(deployment, office, options.single))
                )
                runs["plain single"].append(per_second(options.single, lambda: plain.single(options.single)))
                runs["batch"].append(
                    per_second(options.batch, lambda: issue_one_batch(deployment, office, options.batch))
                )
                runs["plain batch"].append(per_second(options.batch, lambda: plain.batch(options.batch)))
            with deployment.engine.connect() as connection:
                version = connection.exec_driver_sql("SHOW server_version").scalar()
        finally:
            deployment.dispose()

    rate = {name: statistics.median(values) for name, values in runs.items()}
    print(
        f"issuance on PostgreSQL {version}: single runs of {options.single}, batches of {options.batch}, "
        f"{options.rounds} interleaved rounds (medians, certificates/s)"
    )
    print(f"{'':<8}{'ours/s':>9}{'plain INSERT + sign/s':>23}{'ratio':>8}")
    for name in ("single", "batch"):
        print(f"{name:<8}{rate[name]:>9.0f}{rate['plain ' + name]:>23.0f}{rate[name] / rate['plain ' + name]:>7.2f}x")
    print(f"batch issuance {rate['batch']:.0f}/s (goal >= 1000/s); batch/single {rate['batch'] / rate['single']:.1f}x")


if __name__ == "__main__":
    main()

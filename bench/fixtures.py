"""Set-up shared by the benchmarks: throwaway databases (SQLite, or a fresh PostgreSQL
database dropped afterwards), a region with one office, and real certificates issued
through the same services the API uses."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.orm import Session

from deployment import Deployment, Settings
from documents.model import CertificateDocument, document_for
from registry.demo import DEMO_OFFICE_CODE, DEMO_OFFICE_NAME, sample_request
from registry.issuance import issue_certificate
from registry.models import Base, Certificate, Office
from registry.offices import add_office
from registry.regions import current_region, init_region
from registry.requests import parse_issuance_request

TYPES = ("BL", "DL", "PQ")
PUBLIC_URL = "https://ecert.shanghai.gov.cn"  # a realistic length for a region's URL
# The server the PostgreSQL benchmarks make their fresh databases on.
POSTGRES_URL = os.environ.get("ECERT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def bench_database(server_url: str | None, folder: str) -> Iterator[str]:
    """A SQLite file in ``folder``, or a fresh database on a PostgreSQL server (dropped after)."""
    if server_url is None or server_url.startswith("sqlite"):
        yield server_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    url = make_url(server_url)
    name = f"ecert_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def open_deployment(database_url: str, folder: str) -> Deployment:
    """A deployment on ``database_url`` with every table created; the caller disposes it."""
    settings = Settings.load(
        {},
        {"ECERT_DATABASE_URL": database_url, "ECERT_KEY_PASSPHRASE": "bench", "ECERT_PUBLIC_URL": PUBLIC_URL},
        instance_path=folder,
        insecure_ok=False,
    )
    deployment = Deployment(settings)
    Base.metadata.create_all(deployment.engine)
    return deployment


def init_bench_region(session: Session, deployment: Deployment, now: datetime) -> Office:
    """Initialise region 310000 with the demo office (Ed25519, every reference type); commits."""
    init_region(
        session, deployment.keyring, code="310000", name="上海市", public_url=PUBLIC_URL, now=now, actor="bench"
    )
    office, _key, _token = add_office(
        session,
        deployment.keyring,
        credit_code=DEMO_OFFICE_CODE,
        name=DEMO_OFFICE_NAME,
        types=list(TYPES),
        algorithm="EdDSA",
        now=now,
        actor="bench",
    )
    session.commit()
    return office


@contextmanager
def throwaway_deployment() -> Iterator[Deployment]:
    """A deployment on a SQLite file in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory() as folder:
        deployment = open_deployment(f"sqlite:///{Path(folder) / 'bench.db'}", folder)
        try:
            yield deployment
        finally:
            deployment.dispose()


def certificate_documents(per_type: int) -> dict[str, list[CertificateDocument]]:
    """``per_type`` distinct issued certificates of each reference type, as documents."""
    now = datetime.now(UTC)
    with throwaway_deployment() as deployment, deployment.session() as session:
        office = init_bench_region(session, deployment, now)
        for type_code in TYPES:
            for _ in range(per_type):
                request = parse_issuance_request(sample_request(type_code))
                issue_certificate(session, deployment.keyring, office, request, now=now, actor="bench")
        session.commit()
        region = current_region(session)
        documents: dict[str, list[CertificateDocument]] = {t: [] for t in TYPES}
        for certificate in session.scalars(select(Certificate).order_by(Certificate.id)):
            documents[certificate.type_code].append(document_for(certificate, region))
        return documents

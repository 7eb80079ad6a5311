"""Real certificates for benchmarks: a throwaway region on SQLite, issued through the
same services the API uses."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from deployment import Deployment, Settings
from documents.model import CertificateDocument, document_for
from registry.demo import DEMO_OFFICE_CODE, DEMO_OFFICE_NAME, sample_request
from registry.issuance import issue_certificate
from registry.models import Base, Certificate
from registry.offices import add_office
from registry.regions import current_region, init_region
from registry.requests import parse_issuance_request

TYPES = ("BL", "DL", "PQ")
PUBLIC_URL = "https://ecert.shanghai.gov.cn"  # a realistic length for a region's URL


@contextmanager
def throwaway_deployment() -> Iterator[Deployment]:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings.load(
            {},
            {
                "ECERT_DATABASE_URL": f"sqlite:///{Path(folder) / 'bench.db'}",
                "ECERT_KEY_PASSPHRASE": "bench",
                "ECERT_PUBLIC_URL": PUBLIC_URL,
            },
            instance_path=folder,
            insecure_ok=False,
        )
        deployment = Deployment(settings)
        Base.metadata.create_all(deployment.engine)
        try:
            yield deployment
        finally:
            deployment.dispose()


def certificate_documents(per_type: int) -> dict[str, list[CertificateDocument]]:
    """``per_type`` distinct issued certificates of each reference type, as documents."""
    now = datetime.now(UTC)
    with throwaway_deployment() as deployment, deployment.session() as session:
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




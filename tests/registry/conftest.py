"""Fixtures for the registry's domain services: issuing through the service layer, no HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from registry.demo import sample_request
from registry.issuance import Issued, issue_certificate
from registry.models import Certificate
from registry.requests import parse_issuance_request, request_digest
from signing.keystore import KeyRing
from tests.registry.builders import OFFICE_ACTOR

Issue = Callable[..., Issued]


@pytest.fixture
def issue(session: Session, keyring: KeyRing, clock: Any, office: Any) -> Issue:
    """Issue ``body`` through the service layer and commit, as the API does.

    ``by`` picks the issuing office fixture (default: ``office``); ``idempotency_key``
    is passed with the body's digest, as the API computes it.
    """

    def issue_(body: dict[str, Any], *, by: Any = None, idempotency_key: str | None = None) -> Issued:
        issued = issue_certificate(
            session,
            keyring,
            (by or office).office,
            parse_issuance_request(body),
            now=clock(),
            actor=OFFICE_ACTOR,
            idempotency_key=idempotency_key,
            digest=request_digest(body) if idempotency_key is not None else None,
        )
        session.commit()
        return issued

    return issue_


@pytest.fixture
def certificate(issue: Issue) -> Certificate:
    """A freshly issued, VALID driving licence."""
    return issue(sample_request("DL")).certificate

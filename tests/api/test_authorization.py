"""Who may call the office API: every office endpoint against every kind of bad credential.

Missing, malformed, unknown and revoked credentials get 401. An authenticated office that
touches another office's certificate gets 404, exactly as for a certificate that does not
exist, so the API never reveals what other offices hold.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.demo import sample_request
from registry.models import Certificate
from registry.offices import revoke_api_tokens
from tests.conftest import OfficeFixture

CERTIFICATES = "/api/v1/certificates"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {id} stands for the certificate's identifier
    body: dict[str, Any] | None

    def call(self, client: Any, certificate_id: str, headers: dict[str, str]) -> Any:
        return client.open(self.path.format(id=certificate_id), method=self.method, json=self.body, headers=headers)


ENDPOINTS = {
    "issue": Endpoint("POST", CERTIFICATES, sample_request("DL")),
    "get": Endpoint("GET", CERTIFICATES + "/{id}", None),
    "status": Endpoint("POST", CERTIFICATES + "/{id}/status", {"status": "SUSPENDED", "reason": "暂扣"}),
    "pdf": Endpoint("GET", CERTIFICATES + "/{id}/pdf", None),
}
CERTIFICATE_ENDPOINTS = ["get", "status", "pdf"]


def _revoked(office: OfficeFixture, session: Session, now: Any) -> dict[str, str]:
    revoke_api_tokens(session, office.office, now=now, actor="test")
    session.commit()
    return office.auth


# Kind of credential → headers, given the office that owns the certificate.
UNAUTHENTICATED: dict[str, Callable[[OfficeFixture, Session, Any], dict[str, str]]] = {
    "no-header": lambda office, session, now: {},
    "bearer-without-token": lambda office, session, now: {"Authorization": "Bearer"},
    "bearer-blank-token": lambda office, session, now: {"Authorization": "Bearer    "},
    "basic": lambda office, session, now: {"Authorization": "Basic xyz"},
    "token-without-scheme": lambda office, session, now: {"Authorization": office.token},
    "unknown-token": lambda office, session, now: {"Authorization": f"Bearer ecert_{secrets.token_urlsafe(32)}"},
    "not-a-token": lambda office, session, now: {"Authorization": "Bearer nonsense"},
    "truncated-token": lambda office, session, now: {"Authorization": f"Bearer {office.token[:-1]}"},
    "overlong-token": lambda office, session, now: {"Authorization": f"Bearer {office.token}{'A' * 200}"},
    "revoked-token": _revoked,
}


@pytest.fixture
def certificate_id(client, office) -> str:
    response = client.post(CERTIFICATES, json=sample_request("DL"), headers=office.auth)
    assert response.status_code == 201, response.json
    return response.json["id"]  # type: ignore[no-any-return]


def count_certificates(session: Session) -> int:
    count = session.scalar(select(func.count()).select_from(Certificate))
    # End the read: on SQLite every transaction holds the write lock until it ends.
    session.rollback()
    return count or 0


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == code
    return response.json  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", list(UNAUTHENTICATED))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_bad_credentials_are_refused_with_401(client, session, clock, office, certificate_id, endpoint, kind):
    headers = UNAUTHENTICATED[kind](office, session, clock())

    response = ENDPOINTS[endpoint].call(client, certificate_id, headers)

    problem = assert_problem(response, 401, "UNAUTHENTICATED")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert office.token not in response.get_data(as_text=True)
    assert set(problem) >= {"type", "title", "status", "detail"}
    assert count_certificates(session) == 1
    assert session.get(Certificate, certificate_id).status == "01"
    session.rollback()


def test_401_names_the_bearer_scheme(client, office, certificate_id):
    response = client.get(f"{CERTIFICATES}/{certificate_id}")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("endpoint", CERTIFICATE_ENDPOINTS)
def test_unauthenticated_callers_cannot_tell_whether_a_certificate_exists(client, certificate_id, endpoint):
    unknown = certificate_id[:-1] + ("0" if certificate_id[-1] != "0" else "1")

    existing = ENDPOINTS[endpoint].call(client, certificate_id, {})
    missing = ENDPOINTS[endpoint].call(client, unknown, {})

    assert existing.status_code == missing.status_code == 401
    assert existing.json == missing.json


@pytest.mark.parametrize("endpoint", CERTIFICATE_ENDPOINTS)
def test_another_office_gets_404_as_if_the_certificate_did_not_exist(
    client, session, office, other_office, certificate_id, endpoint
):
    unknown = certificate_id[:-1] + ("0" if certificate_id[-1] != "0" else "1")

    foreign = ENDPOINTS[endpoint].call(client, certificate_id, other_office.auth)
    missing = ENDPOINTS[endpoint].call(client, unknown, other_office.auth)

    assert_problem(foreign, 404, "NOT_FOUND")
    assert foreign.json == missing.json
    owner_view = client.get(f"{CERTIFICATES}/{certificate_id}", headers=office.auth).json
    assert (owner_view["status"], owner_view["history"]) == ("VALID", [])


def test_issuing_with_another_offices_token_issues_for_that_office(client, office, other_office):
    response = client.post(CERTIFICATES, json=sample_request("DL"), headers=other_office.auth)

    assert response.status_code == 201, response.json
    assert response.json["id"].startswith(f"DL.{other_office.code}.")
    assert response.json["kid"] == other_office.kid
    assert client.get(response.json["links"]["self"], headers=other_office.auth).status_code == 200
    assert client.get(response.json["links"]["self"], headers=office.auth).status_code == 404


@pytest.mark.parametrize("type_code", ["BL", "PQ"])
def test_issuing_a_type_the_calling_office_does_not_hold_is_forbidden(client, session, office, other_office, type_code):
    response = client.post(CERTIFICATES, json=sample_request(type_code), headers=other_office.auth)

    assert_problem(response, 403, "FORBIDDEN")
    assert count_certificates(session) == 0


def test_a_revoked_token_stops_working_immediately(client, session, clock, office, certificate_id):
    path = f"{CERTIFICATES}/{certificate_id}"
    assert client.get(path, headers=office.auth).status_code == 200

    revoke_api_tokens(session, office.office, now=clock(), actor="test")
    session.commit()

    assert_problem(client.get(path, headers=office.auth), 401, "UNAUTHENTICATED")
    assert_problem(client.post(CERTIFICATES, json=sample_request("DL"), headers=office.auth), 401, "UNAUTHENTICATED")


def test_revoking_one_offices_tokens_leaves_the_others_working(client, session, clock, office, other_office):
    revoke_api_tokens(session, office.office, now=clock(), actor="test")
    session.commit()

    response = client.post(CERTIFICATES, json=sample_request("DL"), headers=other_office.auth)

    assert response.status_code == 201


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(client, office, certificate_id, scheme):
    response = client.get(f"{CERTIFICATES}/{certificate_id}", headers={"Authorization": f"{scheme} {office.token}"})

    assert response.status_code == 200

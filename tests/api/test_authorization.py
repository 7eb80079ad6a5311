"""Who may call the office API: every office endpoint against every kind of credential.

One table holds the expected answer of every office endpoint for every credential.
Missing, malformed, unknown and revoked credentials get 401. An authenticated office that
touches another office's certificate gets 404, byte for byte the 404 of a certificate
that does not exist, so the API never reveals what other offices hold.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from deployment import Deployment
from registry.demo import sample_request
from registry.models import Certificate
from registry.offices import issue_api_token, revoke_api_tokens
from tests.conftest import (
    OFFICE_CODE,
    OTHER_OFFICE_CODE,
    FixedClock,
    OfficeFixture,
    init_test_region,
    make_app,
    make_office,
)
from tests.databases import postgres_with_schema, sqlite_with_schema

CERTIFICATES = "/api/v1/certificates"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {id} stands for the certificate's identifier
    body: dict[str, Any] | None

    def call(self, client: Any, certificate_id: str, headers: dict[str, str]) -> Any:
        return client.open(self.path.format(id=certificate_id), method=self.method, json=self.body, headers=headers)

    @property
    def names_a_certificate(self) -> bool:
        return "{id}" in self.path


ENDPOINTS = {
    "issue": Endpoint("POST", CERTIFICATES, sample_request("DL")),
    # The other office holds DL but not BL: issuing BL with its token is forbidden.
    "issue-type-not-held": Endpoint("POST", CERTIFICATES, sample_request("BL")),
    # A batch answers 200 with one result per item; its one item is issued as above.
    "issue-batch": Endpoint("POST", CERTIFICATES + "/batch", {"items": [sample_request("DL")]}),
    "get": Endpoint("GET", CERTIFICATES + "/{id}", None),
    "status": Endpoint("POST", CERTIFICATES + "/{id}/status", {"status": "SUSPENDED", "reason": "暂扣"}),
    "pdf": Endpoint("GET", CERTIFICATES + "/{id}/pdf", None),
}
CERTIFICATE_ENDPOINTS = [name for name, endpoint in ENDPOINTS.items() if endpoint.names_a_certificate]


@dataclass
class Registry:
    """One region with two offices and one certificate of the first, shared by the matrix.

    Each row leaves it as it found it: the certificate VALID and the owner's token live.
    """

    client: FlaskClient
    deployment: Deployment
    clock: FixedClock
    owner: OfficeFixture
    other: OfficeFixture
    certificate_id: str

    def certificates(self) -> int:
        with self.deployment.session() as session:
            return session.scalar(select(func.count()).select_from(Certificate)) or 0

    def status_of_certificate(self) -> str:
        with self.deployment.session() as session:
            found = session.get(Certificate, self.certificate_id)
            assert found is not None
            return found.status

    def revoke_owner_tokens(self) -> None:
        with self.deployment.session() as session:
            revoke_api_tokens(session, session.merge(self.owner.office), now=self.clock(), actor="test")
            session.commit()

    def give_owner_a_new_token(self) -> None:
        with self.deployment.session() as session:
            token = issue_api_token(session, session.merge(self.owner.office), now=self.clock(), actor="test")
            session.commit()
        self.owner = replace(self.owner, token=token)


def _mangled(token: str) -> str:
    """The token with one character of its secret changed: well-formed, but unknown."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def _revoked(registry: Registry) -> dict[str, str]:
    revoked = registry.owner.auth
    registry.revoke_owner_tokens()
    return revoked


# Kind of credential → the headers it sends.
CREDENTIALS: dict[str, Callable[[Registry], dict[str, str]]] = {
    "no-header": lambda r: {},
    "empty-header": lambda r: {"Authorization": ""},
    "bearer-without-token": lambda r: {"Authorization": "Bearer"},
    "bearer-blank-token": lambda r: {"Authorization": "Bearer    "},
    "basic": lambda r: {"Authorization": "Basic xyz"},
    "basic-with-the-token": lambda r: {"Authorization": f"Basic {r.owner.token}"},
    "token-without-scheme": lambda r: {"Authorization": r.owner.token},
    "not-a-token": lambda r: {"Authorization": "Bearer nonsense"},
    "prefix-only": lambda r: {"Authorization": "Bearer ecert_"},
    "unknown-token": lambda r: {"Authorization": f"Bearer ecert_{secrets.token_urlsafe(32)}"},
    "mangled-token": lambda r: {"Authorization": f"Bearer {_mangled(r.owner.token)}"},
    "truncated-token": lambda r: {"Authorization": f"Bearer {r.owner.token[:-1]}"},
    "overlong-token": lambda r: {"Authorization": f"Bearer {r.owner.token}{'A' * 200}"},
    "token-twice": lambda r: {"Authorization": f"Bearer {r.owner.token} {r.owner.token}"},
    "revoked-token": _revoked,
    "other-office": lambda r: r.other.auth,
    "owner": lambda r: r.owner.auth,
}
BAD_CREDENTIALS = [kind for kind in CREDENTIALS if kind not in {"other-office", "owner"}]

# (endpoint, credential) → (status, code): the whole matrix, one row per pair.
EXPECTED: dict[tuple[str, str], tuple[int, str | None]] = {
    **{(endpoint, kind): (401, "UNAUTHENTICATED") for endpoint in ENDPOINTS for kind in BAD_CREDENTIALS},
    # Issuing with another office's token issues for that office (checked below), never for ours.
    ("issue", "other-office"): (201, None),
    ("issue-type-not-held", "other-office"): (403, "FORBIDDEN"),
    ("issue-batch", "other-office"): (200, None),
    **{(endpoint, "other-office"): (404, "NOT_FOUND") for endpoint in CERTIFICATE_ENDPOINTS},
    # The owner's own token works everywhere: the refusals above are not a broken endpoint.
    ("issue", "owner"): (201, None),
    ("issue-type-not-held", "owner"): (201, None),
    ("issue-batch", "owner"): (200, None),
    **{(endpoint, "owner"): (200, None) for endpoint in CERTIFICATE_ENDPOINTS},
}


def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield sqlite_with_schema(str(folder / "ecert.db"))
    else:
        yield from postgres_with_schema("ecert_authz")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    clock = FixedClock()
    for url in _database(request.param, tmp_path_factory.mktemp("authz")):
        application = make_app(url, clock)
        running: Deployment = application.extensions["ecert"]
        with running.session() as session:
            init_test_region(session, running.keyring, clock)
            owner = make_office(session, running.keyring, clock, OFFICE_CODE, ["BL", "DL", "PQ"])
            other = make_office(
                session, running.keyring, clock, OTHER_OFFICE_CODE, ["DL"], name="上海市公安局交通警察总队"
            )
        client = application.test_client()
        issued = client.post(CERTIFICATES, json=sample_request("DL"), headers=owner.auth)
        assert issued.status_code == 201, issued.json
        yield Registry(client, running, clock, owner, other, issued.json["id"])
        running.dispose()


def _created(response: Any) -> dict[str, Any] | None:
    """The certificate a call issued: a 201's body, or the one item of a batch, issued."""
    if response.status_code == 201:
        return response.json  # type: ignore[no-any-return]
    if response.status_code == 200 and response.is_json and "results" in response.json:
        result = response.json["results"][0]
        return result["certificate"] if result["status"] == 201 else None  # type: ignore[no-any-return]
    return None


def unknown_id(certificate_id: str) -> str:
    """An identifier of the same shape that no certificate has."""
    return certificate_id[:-1] + ("0" if certificate_id[-1] != "0" else "1")


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


@pytest.fixture
def certificate_id(client, office) -> str:
    response = client.post(CERTIFICATES, json=sample_request("DL"), headers=office.auth)
    assert response.status_code == 201, response.json
    return response.json["id"]  # type: ignore[no-any-return]


def test_the_matrix_covers_every_office_endpoint_and_credential(app: Flask) -> None:
    office_routes = {
        (method, rule.rule.replace("<path:certificate_id>", "{id}"))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(CERTIFICATES)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }

    assert office_routes == {(e.method, e.path) for e in ENDPOINTS.values()}
    assert set(EXPECTED) == {(endpoint, kind) for endpoint in ENDPOINTS for kind in CREDENTIALS}


@pytest.mark.parametrize(("endpoint", "kind"), list(EXPECTED), ids=[f"{e}-{k}" for e, k in EXPECTED])
def test_every_office_endpoint_answers_every_credential_as_the_matrix_says(
    registry: Registry, endpoint: str, kind: str
) -> None:
    status, code = EXPECTED[(endpoint, kind)]
    target, owner_token = ENDPOINTS[endpoint], registry.owner.token
    before = registry.certificates()
    headers = CREDENTIALS[kind](registry)
    try:
        response = target.call(registry.client, registry.certificate_id, headers)
        missing = target.call(registry.client, unknown_id(registry.certificate_id), headers)
    finally:
        if kind == "revoked-token":
            registry.give_owner_a_new_token()

    assert owner_token.encode() not in response.get_data()
    assert response.status_code == status, response.get_data()[:500]
    created = _created(response)
    assert registry.certificates() == before + (2 if created else 0)  # both calls issue
    if created:
        issuer = registry.other if kind == "other-office" else registry.owner
        assert created["id"].startswith(f"{created['type']}.{issuer.code}.")
        assert created["type"] in {item["type"] for item in target.body.get("items", [target.body])}  # type: ignore[union-attr]
    if (endpoint, kind) == ("status", "owner"):
        assert registry.status_of_certificate() == "02"
        back = {"status": "VALID", "reason": "恢复"}
        restored = registry.client.post(
            f"{CERTIFICATES}/{registry.certificate_id}/status", json=back, headers=registry.owner.auth
        )
        assert restored.status_code == 200, restored.json
    assert registry.status_of_certificate() == "01"
    if code is None:
        return
    problem = assert_problem(response, status, code)
    assert set(problem) == {"type", "title", "status", "detail", "code"}
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="ecert"'
    if target.names_a_certificate:
        # Whether the certificate exists elsewhere or nowhere, the answer is the same bytes.
        assert (missing.status_code, missing.get_data()) == (response.status_code, response.get_data())
        assert sorted(missing.headers.items()) == sorted(response.headers.items())


def test_401_names_the_bearer_scheme(client, office, certificate_id):
    response = client.get(f"{CERTIFICATES}/{certificate_id}")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


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

"""GET /api/v1/status/<id> and GET /.well-known/ecert/status-list: public, signed with the
region's status key, following every status change made through the office API."""

from __future__ import annotations

from typing import Any

import pytest

from registry.demo import sample_request
from registry.models import Certificate
from registry.status import Status
from verify.status_sources import StatusDataRefused, read_status_answer, read_status_list

REGION_CODE = "310000"
STATUS_LIST = "/.well-known/ecert/status-list"


@pytest.fixture
def issued(client, office) -> dict[str, Any]:
    response = client.post("/api/v1/certificates", json=sample_request("DL"), headers=office.auth)
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[no-any-return]


@pytest.fixture
def status_jwk(region, session) -> dict[str, Any]:
    """The region's status public key, read once (the read ends, so the API can write)."""
    jwk = dict(region.status_public_jwk)
    session.rollback()
    return jwk


@pytest.fixture
def set_status(client, office) -> Any:
    def set_(certificate_id: str, status: str) -> None:
        response = client.post(
            f"/api/v1/certificates/{certificate_id}/status",
            json={"status": status, "reason": "依法处理"},
            headers=office.auth,
        )
        assert response.status_code == 200, response.json

    return set_


@pytest.fixture
def status_of(client, status_jwk, clock) -> Any:
    """Ask the API for a certificate's status and read the answer with the region's status key."""

    def status_(certificate_id: str) -> Any:
        response = client.get(f"/api/v1/status/{certificate_id}")
        assert response.status_code == 200
        assert response.mimetype == "application/jwt"
        assert response.headers["Cache-Control"] == "no-store"
        return read_status_answer(
            response.get_data(as_text=True),
            status_jwk,
            issuer=REGION_CODE,
            certificate_id=certificate_id,
            now=clock(),
        )

    return status_


@pytest.fixture
def listed(client, status_jwk, clock) -> Any:
    def listed_() -> Any:
        response = client.get(STATUS_LIST)
        assert response.status_code == 200
        assert response.mimetype == "application/jwt"
        assert response.headers["Cache-Control"] == "public, max-age=60"
        return read_status_list(response.get_data(as_text=True), status_jwk, issuer=REGION_CODE, now=clock())

    return listed_


def test_status_answer_needs_no_office_token_and_binds_the_token(status_of, issued):
    answer = status_of(issued["id"])
    assert (answer.known, answer.status) == (True, Status.VALID)
    assert answer.is_about(issued["token"])


@pytest.mark.parametrize(
    "path",
    [["SUSPENDED"], ["SUSPENDED", "VALID"], ["REVOKED"], ["SUSPENDED", "CANCELLED"]],
    ids="-".join,
)
def test_answer_and_list_follow_status_changes_at_once(status_of, listed, set_status, issued, session, path):
    index = session.get_one(Certificate, issued["id"]).status_index
    session.rollback()  # end the read: SQLite's writing session would block the API
    assert listed().status_at(index) is Status.VALID
    for status in path:
        set_status(issued["id"], status)
        assert status_of(issued["id"]).status is Status[status]
        assert listed().status_at(index) is Status[status]


def test_an_unknown_identifier_is_answered_signed_as_unknown(status_of, region):
    answer = status_of("310000-DL-2026-00000000")
    assert (answer.known, answer.status, answer.token_digest) == (False, None, None)


def test_an_identifier_longer_than_any_is_a_bad_request(client, region):
    response = client.get("/api/v1/status/" + "A" * 65)
    assert response.status_code == 400
    assert response.json["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("path", ["/api/v1/status/x", STATUS_LIST])
def test_answers_verify_with_the_status_key_only(client, region, clock, path):
    jws = client.get(path).get_data(as_text=True)
    with pytest.raises(StatusDataRefused, match="SIG_INVALID"):
        if path == STATUS_LIST:
            read_status_list(jws, region.root_public_jwk, issuer=REGION_CODE, now=clock())
        else:
            read_status_answer(jws, region.root_public_jwk, issuer=REGION_CODE, certificate_id="x", now=clock())


def test_list_is_reused_while_nothing_changes_and_resigned_after_a_minute(client, clock, issued, listed):
    first = client.get(STATUS_LIST).get_data(as_text=True)
    clock.advance(seconds=30)
    assert client.get(STATUS_LIST).get_data(as_text=True) == first
    clock.advance(seconds=31)
    assert listed().issued_at == clock().replace(microsecond=0)


def test_list_counts_new_certificates_at_once(client, office, listed, issued):
    assert listed().size == 1
    client.post("/api/v1/certificates", json=sample_request("BL"), headers=office.auth)
    assert [listed().status_at(i) for i in range(2)] == [Status.VALID, Status.VALID]


@pytest.mark.parametrize("path", ["/api/v1/status/x", STATUS_LIST])
def test_a_region_not_initialised_answers_503(client, path):
    response = client.get(path)
    assert response.status_code == 503
    assert response.json["code"] == "REGION_NOT_INITIALISED"


@pytest.mark.parametrize("path", ["/api/v1/status/x", STATUS_LIST])
def test_only_get_is_allowed(client, region, path):
    assert client.post(path, json={}).status_code == 405

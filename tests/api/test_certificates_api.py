"""The office API: issue (with Idempotency-Key), read, change status, PDF.

Every test talks HTTP to a real app on a real database, with offices holding real keys.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.demo import sample_request
from registry.models import Certificate

CERTIFICATES = "/api/v1/certificates"
DL_ID_NUMBER = "310115198506123526"  # the DL sample holder's resident ID number
BL_CREDIT_CODE = "91310115MA1K3YJ2X5"  # the BL sample holder's credit code
FINAL_STATES = ["WITHDRAWN", "CANCELLED", "EXPIRED", "TRANSFERRED", "REVOKED"]


@pytest.fixture
def public_url(deployment: Any) -> str:
    return deployment.settings.public_url  # type: ignore[no-any-return]


@pytest.fixture
def issued(client, office) -> dict[str, Any]:
    """A driving licence the ``office`` has just issued, as the API answered."""
    response = client.post(CERTIFICATES, json=sample_request("DL"), headers=office.auth)
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[no-any-return]


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.json
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["title"]
    assert problem["type"]
    return problem  # type: ignore[no-any-return]


def error_fields(problem: dict[str, Any]) -> set[str]:
    assert all(set(e) == {"field", "message"} and e["message"] for e in problem["errors"]), problem
    return {e["field"] for e in problem["errors"]}


def token_part(token: str, index: int) -> dict[str, Any]:
    segment = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


def count_certificates(session: Session) -> int:
    count = session.scalar(select(func.count()).select_from(Certificate))
    # End the read: on SQLite every transaction holds the write lock until it ends.
    session.rollback()
    return count or 0


def change_status(client: Any, office: Any, certificate_id: str, status: str, reason: str = "依法处理") -> Any:
    return client.post(
        f"{CERTIFICATES}/{certificate_id}/status", json={"status": status, "reason": reason}, headers=office.auth
    )


# ---------------------------------------------------------------- issue


@pytest.mark.parametrize("type_code", ["BL", "DL", "PQ"])
def test_issue_answers_201_with_the_certificate_and_its_links(client, office, public_url, type_code):
    response = client.post(CERTIFICATES, json=sample_request(type_code), headers=office.auth)

    assert response.status_code == 201, response.json
    body = response.json
    assert body["id"].startswith(f"{type_code}.{office.code}.")
    assert body["status"] == "VALID"
    assert body["type"] == type_code
    assert body["token"].count(".") == 2
    assert body["qr_text"] == f"{public_url}/v#{body['token']}"
    assert body["links"] == {"self": f"{CERTIFICATES}/{body['id']}", "pdf": f"{CERTIFICATES}/{body['id']}/pdf"}
    assert response.headers["Location"] == body["links"]["self"]
    assert response.headers["Cache-Control"] == "no-store"
    assert "Idempotent-Replayed" not in response.headers
    assert token_part(body["token"], 0) == {"alg": "EdDSA", "kid": office.kid, "typ": "ecert"}


def test_issue_masks_the_holders_personal_id_number(client, office):
    response = client.post(CERTIFICATES, json=sample_request("DL"), headers=office.auth)

    assert response.status_code == 201
    assert response.json["holder"] == {"name": "王小红", "id_type": "RIC", "id_number": "3101**********3526"}
    assert DL_ID_NUMBER not in response.get_data(as_text=True)
    assert DL_ID_NUMBER not in json.dumps(token_part(response.json["token"], 1), ensure_ascii=False)


def test_issue_shows_an_organisations_credit_code_whole(client, office):
    response = client.post(CERTIFICATES, json=sample_request("BL"), headers=office.auth)

    assert response.json["holder"]["id_number"] == BL_CREDIT_CODE


def test_issued_certificate_can_be_read_back(client, office, issued):
    response = client.get(issued["links"]["self"], headers=office.auth)

    assert response.status_code == 200
    assert response.json == issued
    assert response.json["history"] == []


def test_issue_reports_every_malformed_member_at_once(client, office, session):
    body = {
        "type": 7,
        "holder": {"name": "", "id_type": "RIC", "id_number": DL_ID_NUMBER, "age": 40},
        "fields": [],
        "valid_from": "2026-13-01",
        "valid_until": "2026-03-01T00:00:00",
        "colour": "red",
    }

    response = client.post(CERTIFICATES, json=body, headers=office.auth)

    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert error_fields(problem) == {
        "type",
        "holder/name",
        "holder/age",
        "fields",
        "valid_from",
        "valid_until",
        "colour",
    }
    assert count_certificates(session) == 0


def test_issue_reports_every_content_error_at_once(client, office, session):
    fields = {**sample_request("DL")["fields"], "sex": "unknown", "file_number": "12"}
    del fields["address"]
    body = sample_request(
        "DL",
        holder={"name": "王小红", "id_type": "RIC", "id_number": "310115198506123527"},
        fields=fields,
        valid_from="2026-03-01",
        valid_until="2026-02-01",
    )

    response = client.post(CERTIFICATES, json=body, headers=office.auth)

    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert error_fields(problem) == {
        "holder/id_number",
        "fields/sex",
        "fields/file_number",
        "fields/address",
        "valid_until",
    }
    assert count_certificates(session) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(sample_request("DL", type="XX"), "type", id="unknown-type"),
        pytest.param(
            sample_request("DL", holder={"name": "王小红", "id_type": "USCC", "id_number": BL_CREDIT_CODE}),
            "holder/id_type",
            id="wrong-id-type-for-the-type",
        ),
        pytest.param(sample_request("DL", holder="王小红"), "holder", id="holder-not-an-object"),
        pytest.param(sample_request("DL", valid_from="1969-12-31"), "valid_from", id="before-1970"),
        pytest.param(
            sample_request("DL", holder={"name": "王\u202e小红", "id_type": "RIC", "id_number": DL_ID_NUMBER}),
            "holder/name",
            id="bidi-override-in-name",
        ),
    ],
)
def test_issue_refuses_an_invalid_request_naming_the_field(client, office, body, field):
    problem = assert_problem(client.post(CERTIFICATES, json=body, headers=office.auth), 422, "VALIDATION_FAILED")

    assert field in error_fields(problem)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_issue_refuses_json_that_is_not_json(client, office, session, number):
    """NaN and Infinity are Python's extensions, not JSON (RFC 8259 §6)."""
    body = json.dumps(sample_request("PQ")).replace('"score": 88', f'"score": {number}')
    assert number in body

    response = client.post(CERTIFICATES, data=body, content_type="application/json", headers=office.auth)

    assert_problem(response, 400, "MALFORMED_JSON")
    assert count_certificates(session) == 0


def test_issue_refuses_numbers_out_of_range(client, office, session):
    body = json.dumps(sample_request("PQ")).replace('"score": 88', '"score": 1e400')

    response = client.post(CERTIFICATES, data=body, content_type="application/json", headers=office.auth)

    assert "out of range" in assert_problem(response, 400, "MALFORMED_JSON")["detail"]
    assert count_certificates(session) == 0


@pytest.mark.parametrize(
    "body",
    ['{"type": "PQ", "type": "DL"}', '{"holder": {"name": "a", "name": "b"}}'],
    ids=["top-level", "nested"],
)
def test_issue_refuses_duplicate_members(client, office, session, body):
    """A duplicate would let the caller's parser and ours disagree about what was signed."""
    response = client.post(CERTIFICATES, data=body, content_type="application/json", headers=office.auth)

    assert "appears more than once" in assert_problem(response, 400, "MALFORMED_JSON")["detail"]
    assert count_certificates(session) == 0


def test_a_null_body_is_json_but_not_a_request(client, office):
    response = client.post(CERTIFICATES, data="null", content_type="application/json", headers=office.auth)

    assert_problem(response, 422, "VALIDATION_FAILED")


@pytest.mark.parametrize("body", [[], "DL", 42], ids=["array", "string", "number"])
def test_issue_refuses_a_body_that_is_not_an_object(client, office, body):
    assert_problem(client.post(CERTIFICATES, json=body, headers=office.auth), 422, "VALIDATION_FAILED")


def test_issue_refuses_a_type_the_office_may_not_issue(client, other_office, session):
    response = client.post(CERTIFICATES, json=sample_request("BL"), headers=other_office.auth)

    problem = assert_problem(response, 403, "FORBIDDEN")
    assert "BL" in problem["detail"]
    assert count_certificates(session) == 0


# ---------------------------------------------------------------- Idempotency-Key


def test_same_idempotency_key_and_body_replays_the_first_certificate(client, office, session):
    headers = {**office.auth, "Idempotency-Key": "order-2026-0001"}
    first = client.post(CERTIFICATES, json=sample_request("DL"), headers=headers)

    again = client.post(CERTIFICATES, json=sample_request("DL"), headers=headers)

    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == first.json["id"]
    assert again.json["token"] == first.json["token"]
    assert count_certificates(session) == 1


def test_idempotency_ignores_the_order_of_members(client, office, session):
    headers = {**office.auth, "Idempotency-Key": "order-2026-0002", "Content-Type": "application/json"}
    body = sample_request("DL")
    first = client.post(CERTIFICATES, data=json.dumps(body), headers=headers)

    again = client.post(CERTIFICATES, data=json.dumps(dict(reversed(body.items()))), headers=headers)

    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json["id"] == first.json["id"]
    assert count_certificates(session) == 1


def test_same_idempotency_key_with_another_body_is_a_conflict(client, office, session):
    headers = {**office.auth, "Idempotency-Key": "order-2026-0003"}
    first = client.post(CERTIFICATES, json=sample_request("DL"), headers=headers)
    assert first.status_code == 201

    other_body = sample_request("DL", valid_until="2030-01-01")
    response = client.post(CERTIFICATES, json=other_body, headers=headers)

    assert_problem(response, 409, "IDEMPOTENCY_CONFLICT")
    assert count_certificates(session) == 1


def test_idempotency_keys_belong_to_one_office(client, office, other_office):
    key = {"Idempotency-Key": "shared-key-1"}

    mine = client.post(CERTIFICATES, json=sample_request("DL"), headers={**office.auth, **key})
    theirs = client.post(CERTIFICATES, json=sample_request("DL"), headers={**other_office.auth, **key})

    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json["id"].startswith(f"DL.{office.code}.")
    assert theirs.json["id"].startswith(f"DL.{other_office.code}.")


def test_without_idempotency_key_the_same_body_issues_twice(client, office, session):
    first = client.post(CERTIFICATES, json=sample_request("DL"), headers=office.auth)
    second = client.post(CERTIFICATES, json=sample_request("DL"), headers=office.auth)

    assert first.status_code == second.status_code == 201
    assert first.json["id"] != second.json["id"]
    assert "Idempotent-Replayed" not in second.headers
    assert count_certificates(session) == 2


@pytest.mark.parametrize(
    "key", ["", "k" * 256, "nul\x00byte", "tab\tkey", "键"], ids=["empty", "too-long", "nul", "control", "non-ascii"]
)
def test_a_bad_idempotency_key_is_refused(client, office, session, key):
    response = client.post(CERTIFICATES, json=sample_request("DL"), headers={**office.auth, "Idempotency-Key": key})

    assert error_fields(assert_problem(response, 422, "VALIDATION_FAILED")) == {"Idempotency-Key"}
    assert count_certificates(session) == 0


# ---------------------------------------------------------------- read


def test_reading_an_unknown_certificate_is_not_found(client, office, issued):
    unknown = issued["id"][:-6] + ("AAAAAA" if not issued["id"].endswith("AAAAAA") else "BBBBBB")

    assert_problem(client.get(f"{CERTIFICATES}/{unknown}", headers=office.auth), 404, "NOT_FOUND")
    assert_problem(client.get(f"{CERTIFICATES}/nonsense", headers=office.auth), 404, "NOT_FOUND")


# ---------------------------------------------------------------- status


@pytest.mark.parametrize("requested", ["SUSPENDED", "02"], ids=["name", "national-code"])
def test_status_change_accepts_names_and_national_codes(client, office, clock, issued, requested):
    clock.advance(days=3)

    response = change_status(client, office, issued["id"], requested, reason="交通违法记分满12分")

    assert response.status_code == 200, response.json
    assert (response.json["status"], response.json["status_code"]) == ("SUSPENDED", "02")
    (entry,) = response.json["history"]
    assert {k: entry[k] for k in ("from", "to", "reason")} == {
        "from": "VALID",
        "to": "SUSPENDED",
        "reason": "交通违法记分满12分",
    }
    assert datetime.fromisoformat(entry["at"]) == clock()
    assert client.get(issued["links"]["self"], headers=office.auth).json["status"] == "SUSPENDED"


def test_history_grows_with_every_change(client, office, issued):
    steps = [("SUSPENDED", "暂扣"), ("01", "恢复"), ("07", "吊销")]
    for status, reason in steps:
        assert change_status(client, office, issued["id"], status, reason).status_code == 200

    history = client.get(issued["links"]["self"], headers=office.auth).json["history"]

    assert [(h["from"], h["to"], h["reason"]) for h in history] == [
        ("VALID", "SUSPENDED", "暂扣"),
        ("SUSPENDED", "VALID", "恢复"),
        ("VALID", "REVOKED", "吊销"),
    ]


@pytest.mark.parametrize("target", ["VALID", *FINAL_STATES])
def test_a_suspended_certificate_may_return_to_valid_or_end(client, office, issued, target):
    change_status(client, office, issued["id"], "SUSPENDED")

    response = change_status(client, office, issued["id"], target)

    assert response.status_code == 200, response.json
    assert response.json["status"] == target


REFUSED = [
    pytest.param([], "VALID", id="VALID-to-VALID"),
    pytest.param(["SUSPENDED"], "SUSPENDED", id="SUSPENDED-to-SUSPENDED"),
    *(pytest.param([final], "VALID", id=f"{final}-to-VALID") for final in FINAL_STATES),
    *(pytest.param([final], "SUSPENDED", id=f"{final}-to-SUSPENDED") for final in FINAL_STATES),
    pytest.param(["REVOKED"], "WITHDRAWN", id="REVOKED-to-WITHDRAWN"),
    pytest.param(["WITHDRAWN"], "REVOKED", id="WITHDRAWN-to-REVOKED"),
    pytest.param(["SUSPENDED", "CANCELLED"], "01", id="SUSPENDED-CANCELLED-to-01"),
]


@pytest.mark.parametrize(("path", "target"), REFUSED)
def test_refused_status_transitions_change_nothing(client, office, issued, path, target):
    for status in path:
        assert change_status(client, office, issued["id"], status).status_code == 200
    before = client.get(issued["links"]["self"], headers=office.auth).json

    response = change_status(client, office, issued["id"], target)

    assert_problem(response, 409, "STATUS_TRANSITION_REFUSED")
    assert client.get(issued["links"]["self"], headers=office.auth).json == before


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param({"status": "ACTIVE", "reason": "x"}, {"status"}, id="unknown-name"),
        pytest.param({"status": "08", "reason": "x"}, {"status"}, id="unknown-code"),
        pytest.param({"status": 2, "reason": "x"}, {"status"}, id="status-not-a-string"),
        pytest.param({"reason": "x"}, {"status"}, id="no-status"),
        pytest.param({"status": "SUSPENDED"}, {"reason"}, id="no-reason"),
        pytest.param({"status": "SUSPENDED", "reason": None}, {"reason"}, id="null-reason"),
        pytest.param({"status": "SUSPENDED", "reason": ""}, {"reason"}, id="empty-reason"),
        pytest.param({"status": "SUSPENDED", "reason": "   "}, {"reason"}, id="blank-reason"),
        pytest.param({"status": "SUSPENDED", "reason": "长" * 501}, {"reason"}, id="reason-too-long"),
        pytest.param({"status": "SUSPENDED", "reason": "a\u0000b"}, {"reason"}, id="control-character"),
        pytest.param({"status": "ACTIVE"}, {"status", "reason"}, id="both-bad"),
        pytest.param({"status": "SUSPENDED", "reason": "x", "until": "2027-01-01"}, {"until"}, id="unknown-member"),
    ],
)
def test_invalid_status_requests_are_refused_and_change_nothing(client, office, issued, body, fields):
    response = client.post(f"{CERTIFICATES}/{issued['id']}/status", json=body, headers=office.auth)

    assert error_fields(assert_problem(response, 422, "VALIDATION_FAILED")) == fields
    assert client.get(issued["links"]["self"], headers=office.auth).json == issued


def test_status_change_body_must_be_an_object(client, office, issued):
    response = client.post(f"{CERTIFICATES}/{issued['id']}/status", json=["SUSPENDED"], headers=office.auth)

    assert_problem(response, 422, "VALIDATION_FAILED")


def test_status_change_of_an_unknown_certificate_is_not_found(client, office):
    assert_problem(change_status(client, office, "DL.nothing", "SUSPENDED"), 404, "NOT_FOUND")


# ---------------------------------------------------------------- PDF


def test_pdf_is_served_to_the_owner(client, office, issued):
    response = client.get(issued["links"]["pdf"], headers=office.auth)

    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    assert response.headers["Cache-Control"] == "no-store"


def test_pdf_of_another_offices_certificate_is_not_found(client, other_office, issued):
    assert_problem(client.get(issued["links"]["pdf"], headers=other_office.auth), 404, "NOT_FOUND")


def test_pdf_of_an_unknown_certificate_is_not_found(client, office):
    assert_problem(client.get(f"{CERTIFICATES}/DL.nothing/pdf", headers=office.auth), 404, "NOT_FOUND")

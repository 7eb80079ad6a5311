"""``POST /api/v1/certificates/batch`` through the Flask test client, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.batch import MAX_BATCH_ITEMS
from registry.demo import sample_request
from registry.models import AuditRecord, Certificate

CERTIFICATES = "/api/v1/certificates"
BATCH = f"{CERTIFICATES}/batch"
ONE_MIB = 1024 * 1024


def post_batch(client: FlaskClient, items: list[Any], auth: dict[str, str]) -> Any:
    return client.post(BATCH, json={"items": items}, headers=auth)


def certificates_and_records(session: Session) -> tuple[int, int]:
    counted = (
        session.scalar(select(func.count()).select_from(Certificate)),
        session.scalar(select(func.count()).select_from(AuditRecord)),
    )
    session.rollback()  # end the read: on SQLite it would hold the write lock
    return counted  # type: ignore[return-value]


def test_each_item_gets_the_answer_the_single_endpoint_would_give(client, office):
    bad = {**sample_request("DL"), "fields": {"sex": "?"}}
    items = [sample_request("DL"), bad, 42, {**sample_request("PQ"), "idempotency_key": "k1"}]

    response = post_batch(client, items, office.auth)

    assert response.status_code == 200, response.json
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3]
    assert [r["status"] for r in body["results"]] == [201, 422, 422, 201]
    assert (body["issued"], body["replayed"], body["failed"]) == (2, 0, 2)
    alone = client.post(CERTIFICATES, json=bad, headers=office.auth)
    assert body["results"][1]["problem"] == alone.json
    assert body["results"][2]["problem"]["detail"] == "each item must be a JSON object"
    issued = body["results"][0]
    assert issued["replayed"] is False
    fetched = client.get(issued["certificate"]["links"]["self"], headers=office.auth).json
    assert issued["certificate"] == fetched


def test_personal_id_numbers_are_masked_in_the_answer(client, office):
    response = post_batch(client, [sample_request("DL"), sample_request("PQ")], office.auth)

    text = response.get_data(as_text=True)
    assert "310115198506123526" not in text and "310101199003074415" not in text
    holders = [r["certificate"]["holder"]["id_number"] for r in response.json["results"]]
    assert holders == ["3101**********3526", "3101**********4415"]


def test_items_replay_keys_of_the_single_endpoint_and_of_earlier_batches(client, office):
    single = client.post(CERTIFICATES, json=sample_request("DL"), headers={**office.auth, "Idempotency-Key": "a"})
    items = [{**sample_request("DL"), "idempotency_key": "a"}, {**sample_request("BL"), "idempotency_key": "b"}]

    first = post_batch(client, items, office.auth).json
    again = post_batch(client, items, office.auth).json

    assert [r["status"] for r in first["results"]] == [200, 201]
    assert first["results"][0]["certificate"]["id"] == single.json["id"]
    assert [r["status"] for r in again["results"]] == [200, 200]
    assert [r["replayed"] for r in again["results"]] == [True, True]
    assert (again["issued"], again["replayed"], again["failed"]) == (0, 2, 0)
    conflict = post_batch(client, [{**sample_request("PQ"), "idempotency_key": "b"}], office.auth).json
    assert conflict["results"][0]["problem"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert conflict["results"][0]["status"] == 409


def test_another_offices_token_issues_for_that_office_and_only_its_types(client, office, other_office):
    response = post_batch(client, [sample_request("DL"), sample_request("BL")], other_office.auth)

    issued, refused = response.json["results"]
    assert issued["certificate"]["id"].startswith(f"DL.{other_office.code}.")
    assert issued["certificate"]["kid"] == other_office.kid
    assert client.get(issued["certificate"]["links"]["self"], headers=office.auth).status_code == 404
    assert (refused["status"], refused["problem"]["code"]) == (403, "FORBIDDEN")


def test_without_a_token_nothing_is_read_or_written(client, session, office):
    before = certificates_and_records(session)

    response = client.post(BATCH, json={"items": [sample_request("DL")]})

    assert response.status_code == 401 and response.json["code"] == "UNAUTHENTICATED"
    assert certificates_and_records(session) == before


def test_a_thousand_items_are_accepted_and_a_thousand_and_one_refused(client, session, office):
    items = [sample_request(("BL", "DL", "PQ")[n % 3]) for n in range(MAX_BATCH_ITEMS)]

    accepted = post_batch(client, items, office.auth)
    before = certificates_and_records(session)
    refused = post_batch(client, [*items, sample_request("DL")], office.auth)

    assert accepted.status_code == 200 and accepted.json["issued"] == MAX_BATCH_ITEMS
    assert len({r["certificate"]["id"] for r in accepted.json["results"]}) == MAX_BATCH_ITEMS
    assert (refused.status_code, refused.json["code"]) == (413, "REQUEST_TOO_LARGE")
    assert before[0] == MAX_BATCH_ITEMS
    assert certificates_and_records(session) == before


def test_a_body_over_the_usual_one_mib_is_read(client, office):
    padded = {**sample_request("DL"), "padding": "x" * ONE_MIB}

    response = post_batch(client, [padded, sample_request("DL")], office.auth)

    assert [r["status"] for r in response.json["results"]] == [422, 201]
    assert response.json["results"][0]["problem"]["errors"] == [{"field": "padding", "message": "unknown member"}]


@pytest.mark.parametrize(
    "body",
    [[sample_request("DL")], {"items": []}, {"items": sample_request("DL")}, {"item": [sample_request("DL")]}],
    ids=["array", "no-items", "items-object", "misspelt"],
)
def test_a_body_that_is_not_a_batch_is_a_422(client, office, body):
    response = client.post(BATCH, json=body, headers=office.auth)

    assert (response.status_code, response.json["code"]) == (422, "VALIDATION_FAILED")

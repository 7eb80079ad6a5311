"""``GET /.well-known/ecert/trust-list``, and key compromise as verifiers see it through the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from registry.demo import sample_request
from registry.offices import mark_key_compromised
from registry.regions import root_fingerprint
from verify.trust_lists import read_trust_list


def get_list(client: FlaskClient, fingerprint: str) -> Any:
    response = client.get("/.well-known/ecert/trust-list")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/jwt"
    assert response.headers["Cache-Control"] == "public, max-age=300"
    return read_trust_list(response.get_data(as_text=True), fingerprint=fingerprint)


def test_serves_the_newest_list_signed_by_the_pinned_root(client, region, office, session):
    fingerprint = root_fingerprint(region)
    session.rollback()

    served = get_list(client, fingerprint)

    assert served.sequence == 1
    assert served.key(office.kid) is not None


def test_publishes_the_first_list_once_and_then_serves_it(client, region, clock):
    fingerprint = root_fingerprint(region)

    first = get_list(client, fingerprint)
    clock.advance(hours=1)
    again = get_list(client, fingerprint)

    assert (first.sequence, again.sequence) == (1, 1)
    assert first.offices == ()


def test_an_expired_list_is_republished_on_get(client, region, office, clock):
    fingerprint = root_fingerprint(region)
    clock.advance(hours=25)

    served = get_list(client, fingerprint)

    assert served.sequence == 2
    assert served.issued_at == clock()
    assert not served.expired(clock())


def test_without_a_region_the_list_is_unavailable(client):
    response = client.get("/.well-known/ecert/trust-list")

    assert response.status_code == 503
    assert response.json["code"] == "REGION_NOT_INITIALISED"


def issue(client: FlaskClient, office: Any) -> dict[str, Any]:
    response = client.post("/api/v1/certificates", json=sample_request("DL"), headers=office.auth)
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[no-any-return]


def verdict(client: FlaskClient, token: str) -> tuple[str, str]:
    answer = client.post("/api/v1/verify", json={"token": token}).json
    return answer["verdict"], answer["code"]


@pytest.mark.parametrize(
    ("seconds_from_since", "expected"),
    [
        pytest.param(-3600, ("VALID", "OK"), id="an-hour-before"),
        pytest.param(-1, ("VALID", "OK"), id="a-second-before"),
        pytest.param(0, ("INVALID", "KEY_COMPROMISED"), id="at-the-moment"),
        pytest.param(1, ("INVALID", "KEY_COMPROMISED"), id="a-second-after"),
    ],
)
def test_certificates_signed_from_the_compromise_on_are_key_compromised(
    client, session, keyring, clock, region, office, seconds_from_since, expected
):
    since = clock() + timedelta(hours=2)
    clock.moment = since + timedelta(seconds=seconds_from_since)
    certificate = issue(client, office)
    assert certificate["kid"] == office.kid
    assert verdict(client, certificate["token"]) == ("VALID", "OK")
    clock.moment = since + timedelta(minutes=30)

    mark_key_compromised(session, keyring, office.kid, since, now=clock(), actor="cli:admin")
    session.commit()

    assert verdict(client, certificate["token"]) == expected


def test_after_a_compromise_the_office_issues_with_its_new_key_and_the_list_says_so(
    client, session, keyring, clock, region, office
):
    fingerprint = root_fingerprint(region)
    since = clock()
    clock.advance(minutes=10)
    compromise = mark_key_compromised(session, keyring, office.kid, since, now=clock(), actor="cli:admin")
    replacement = compromise.replacement.kid
    session.commit()

    certificate = issue(client, office)
    served = get_list(client, fingerprint)

    assert certificate["kid"] == replacement
    assert verdict(client, certificate["token"]) == ("VALID", "OK")
    assert served.sequence == 2
    _office, old = served.key(office.kid)
    _office, new = served.key(replacement)
    assert (old.state, old.compromised_since) == ("compromised", since)
    assert (new.state, new.compromised_since) == ("active", None)
    assert office.kid not in {k["kid"] for k in client.get("/.well-known/jwks.json").json["keys"]}

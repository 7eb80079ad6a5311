"""Abuse throttling: verification per address or per partner, public reads, failed
authentications; 429 problems with Retry-After; proxies; Redis shared between workers.

Limits here are per hour, so no test can straddle a window (counters start at the first
hit). HTTP-level behaviour runs on SQLite; partner tokens on both databases are covered
in tests/registry/test_partners.py.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from deployment import ConfigurationError, Settings
from registry.partners import add_partner, get_partner, revoke_partner
from tests.conftest import FixedClock, OfficeFixture, make_app
from tests.databases import require_postgres_or_skip, sqlite_with_schema
from tests.e2e.live import LiveDeployment, free_port, http

VERIFY = "/api/v1/verify"
REDIS_URL = os.environ.get("ECERT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NOT_A_TOKEN = {"token": "not a token"}

# Every limit on, small, per hour; a test's limit_settings overrides these.
LIMITED = {
    "ECERT_VERIFY_RATE_LIMIT": "3/hour",
    "ECERT_PARTNER_RATE_LIMIT": "5/hour",
    "ECERT_PUBLIC_RATE_LIMIT": "4/hour",
    "ECERT_AUTH_FAILURE_LIMIT": "2/hour",
}


@pytest.fixture
def database_url(tmp_path: Any) -> str:
    return sqlite_with_schema(str(tmp_path / "ecert.db"))


@pytest.fixture
def limit_settings() -> dict[str, str]:
    return {}


def build_app(database_url: str, clock: FixedClock, **settings: str) -> Flask:
    return make_app(database_url, clock, **{**LIMITED, **settings})


@pytest.fixture
def app(database_url: str, clock: FixedClock, limit_settings: dict[str, str]) -> Iterator[Flask]:
    application = build_app(database_url, clock, **limit_settings)
    yield application
    application.extensions["ecert"].dispose()


def from_address(client: FlaskClient, address: str) -> Callable[..., Any]:
    """``client.open`` as seen from ``address``."""

    def send(method: str, path: str, **kwargs: Any) -> Any:
        return client.open(path, method=method, environ_base={"REMOTE_ADDR": address}, **kwargs)

    return send


def verify(client: FlaskClient, address: str = "192.0.2.1", **kwargs: Any) -> Any:
    return from_address(client, address)("POST", VERIFY, json=NOT_A_TOKEN, **kwargs)


def assert_rate_limited(response: Any) -> dict[str, Any]:
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.headers["Cache-Control"] == "no-store"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 3600
    problem = response.json
    assert (problem["status"], problem["code"]) == (429, "RATE_LIMITED")
    assert problem["retry_after"] == retry_after
    return problem  # type: ignore[no-any-return]


def statuses(responses: list[Any]) -> list[int]:
    return [r.status_code for r in responses]


# ---------------------------------------------------------------- anonymous verification


def test_verification_is_limited_per_address_with_a_429_problem(client: FlaskClient) -> None:
    answers = [verify(client) for _ in range(4)]

    assert statuses(answers[:3]) == [200, 200, 200]
    problem = assert_rate_limited(answers[3])
    assert "address" in problem["detail"]


def test_the_verification_endpoints_share_one_budget(client: FlaskClient, office: OfficeFixture) -> None:
    send = from_address(client, "192.0.2.1")
    first = send("POST", VERIFY, json=NOT_A_TOKEN)
    pdf = send("POST", f"{VERIFY}/pdf", data={"file": (io.BytesIO(b"%PDF-1.4 not really"), "x.pdf")})
    status = send("GET", "/api/v1/status/DL.unknown")

    assert (first.status_code, status.status_code) == (200, 200)
    assert pdf.status_code == 422  # refused by the verifier, but it counted
    assert_rate_limited(send("GET", "/api/v1/status/DL.unknown"))


def test_a_batch_counts_one_verification_per_token(client: FlaskClient) -> None:
    send = from_address(client, "192.0.2.1")
    batch = {"tokens": ["not a token", "nor this"]}

    first = send("POST", f"{VERIFY}/batch", json=batch)
    too_many = send("POST", f"{VERIFY}/batch", json=batch)  # 2 tokens, 1 left: refused whole
    last = verify(client)

    assert first.status_code == 200 and len(first.json["answers"]) == 2
    problem = assert_rate_limited(too_many)
    assert "batch counts 2" in problem["detail"]
    assert last.status_code == 200  # the refused batch cost nothing
    assert_rate_limited(verify(client))


def test_a_partner_batch_counts_per_token_under_the_partner_limit(
    client: FlaskClient, partners: dict[str, str]
) -> None:
    guangdong = bearer(partners["440000"])
    batch = from_address(client, "192.0.2.1")("POST", f"{VERIFY}/batch", json={"tokens": ["x"] * 4}, headers=guangdong)

    assert batch.status_code == 200
    assert verify(client, headers=guangdong).status_code == 200
    assert_rate_limited(verify(client, headers=guangdong))
    assert verify(client).status_code == 200  # the address's own budget is untouched


def test_a_refused_batch_body_counts_once(client: FlaskClient) -> None:
    send = from_address(client, "192.0.2.1")

    assert send("POST", f"{VERIFY}/batch", json={"tokens": []}).status_code == 400
    assert send("POST", f"{VERIFY}/batch", json={"tokens": ["x"] * 1001}).status_code == 413
    assert verify(client).status_code == 200
    assert_rate_limited(verify(client))


@pytest.mark.parametrize("limit_settings", [{"ECERT_VERIFY_RATE_LIMIT": "off"}])
def test_off_disables_the_verification_limit(client: FlaskClient) -> None:
    assert statuses([verify(client) for _ in range(6)]) == [200] * 6


EVERY_LIMIT_OFF = {name: "off" for name in LIMITED}


@pytest.mark.parametrize("limit_settings", [EVERY_LIMIT_OFF])
def test_every_limit_off_counts_nothing_and_still_refuses_a_dead_partner_token(client: FlaskClient) -> None:
    assert statuses([verify(client) for _ in range(6)]) == [200] * 6
    assert statuses([client.get("/api/v1/catalog") for _ in range(6)]) == [200] * 6
    assert verify(client, headers=bearer("ecertp_" + "A" * 43)).status_code == 401


def test_addresses_are_counted_apart(client: FlaskClient) -> None:
    for _ in range(3):
        verify(client, "192.0.2.1")

    assert verify(client, "192.0.2.1").status_code == 429
    assert verify(client, "198.51.100.7").status_code == 200


def test_forwarded_for_is_ignored_without_trusted_proxies(client: FlaskClient) -> None:
    answers = [verify(client, headers={"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(4)]

    assert statuses(answers) == [200, 200, 200, 429]


@pytest.mark.parametrize("limit_settings", [{"ECERT_TRUSTED_PROXIES": "1"}])
def test_forwarded_for_names_the_client_behind_one_trusted_proxy(client: FlaskClient) -> None:
    for _ in range(3):
        verify(client, headers={"X-Forwarded-For": "203.0.113.1"})

    assert verify(client, headers={"X-Forwarded-For": "203.0.113.1"}).status_code == 429
    # Same proxy (peer), another client behind it: its own budget.
    assert verify(client, headers={"X-Forwarded-For": "203.0.113.2"}).status_code == 200
    # A client cannot prepend an address of its choosing: only the proxy's entry counts.
    spoofed = verify(client, headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.1"})
    assert spoofed.status_code == 429


# ---------------------------------------------------------------- partner regions


@pytest.fixture
def partners(app: Flask, session: Session, clock: FixedClock) -> dict[str, str]:
    """Two partner regions' tokens."""
    tokens = {}
    for code, name in (("440000", "广东省"), ("320000", "江苏省")):
        _partner, tokens[code] = add_partner(session, region_code=code, name=name, now=clock(), actor="test")
    session.commit()
    return tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_partner_is_counted_under_its_own_limit(client: FlaskClient, partners: dict[str, str]) -> None:
    guangdong = [verify(client, headers=bearer(partners["440000"])) for _ in range(6)]

    assert statuses(guangdong) == [200] * 5 + [429]
    assert "partner" in guangdong[-1].json["detail"]
    # The partner's calls left the address's own budget, and the other partner's, untouched.
    assert statuses([verify(client) for _ in range(3)]) == [200] * 3
    assert verify(client, headers=bearer(partners["320000"])).status_code == 200


def test_a_partner_is_counted_across_addresses(client: FlaskClient, partners: dict[str, str]) -> None:
    answers = [verify(client, f"192.0.2.{n}", headers=bearer(partners["440000"])) for n in range(6)]

    assert statuses(answers) == [200] * 5 + [429]


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("ecertp_" + "A" * 43, id="unknown"),
        pytest.param("ecertp_", id="prefix-only"),
        pytest.param("ecertp_" + "A" * 200, id="oversized"),
    ],
)
def test_a_partner_token_that_is_not_live_is_refused(client: FlaskClient, token: str) -> None:
    response = verify(client, headers=bearer(token))

    assert response.status_code == 401
    assert response.json["code"] == "UNAUTHENTICATED"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_truncated_partner_token_is_refused(client: FlaskClient, partners: dict[str, str]) -> None:
    assert verify(client, headers=bearer(partners["440000"][:-1])).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda office: office.auth, id="office-token"),
        pytest.param(lambda office: {"Authorization": "Basic dXNlcjpwYXNz"}, id="basic"),
        pytest.param(lambda office: {"Authorization": "Bearer"}, id="empty-bearer"),
    ],
)
def test_other_credentials_leave_a_verifier_anonymous(
    client: FlaskClient, office: OfficeFixture, headers: Callable[[OfficeFixture], dict[str, str]]
) -> None:
    # Verification needs no credentials; an office's token buys no partner limit.
    answers = [verify(client, headers=headers(office)) for _ in range(4)]

    assert statuses(answers) == [200, 200, 200, 429]


def test_a_revoked_partner_token_is_refused(
    client: FlaskClient, partners: dict[str, str], session: Session, clock: FixedClock
) -> None:
    assert verify(client, headers=bearer(partners["440000"])).status_code == 200
    revoke_partner(session, get_partner(session, "440000"), now=clock(), actor="test")
    session.commit()

    assert verify(client, headers=bearer(partners["440000"])).status_code == 401


def test_a_partner_token_opens_no_office_endpoint(
    client: FlaskClient, office: OfficeFixture, partners: dict[str, str]
) -> None:
    response = client.get("/api/v1/certificates/DL.anything", headers=bearer(partners["440000"]))

    assert response.status_code == 401


# ---------------------------------------------------------------- failed authentications


def test_failed_authentications_block_the_address_even_for_a_correct_token(
    client: FlaskClient, office: OfficeFixture
) -> None:
    attacker = from_address(client, "192.0.2.66")
    lookup = "/api/v1/certificates/DL.nothing"
    assert attacker("GET", lookup, headers=office.auth).status_code == 404  # authenticated: not found
    guesses = [attacker("GET", lookup, headers=bearer("ecert_" + "B" * 43)) for _ in range(2)]

    assert statuses(guesses) == [401, 401]
    problem = assert_rate_limited(attacker("GET", lookup, headers=office.auth))
    assert "failed authentications" in problem["detail"]
    assert attacker("POST", VERIFY, json=NOT_A_TOKEN, headers=bearer("ecertp_x")).status_code == 429
    # Without credentials the address may still verify; another address is unaffected.
    assert attacker("POST", VERIFY, json=NOT_A_TOKEN).status_code == 200
    assert from_address(client, "192.0.2.67")("GET", lookup, headers=office.auth).status_code == 404


def test_bad_partner_tokens_count_as_failed_authentications(client: FlaskClient, partners: dict[str, str]) -> None:
    guesses = [verify(client, headers=bearer("ecertp_" + "C" * 43)) for _ in range(3)]

    assert statuses(guesses[:2]) == [401, 401]
    assert_rate_limited(guesses[2])
    assert verify(client, headers=bearer(partners["440000"])).status_code == 429


@pytest.mark.parametrize("limit_settings", [{"ECERT_AUTH_FAILURE_LIMIT": "off"}])
def test_off_disables_the_failed_authentication_limit(client: FlaskClient, office: OfficeFixture) -> None:
    lookup = "/api/v1/certificates/DL.nothing"
    guesses = [client.get(lookup, headers=bearer("ecert_" + "B" * 43)) for _ in range(4)]

    assert statuses(guesses) == [401] * 4
    assert client.get(lookup, headers=office.auth).status_code == 404


# ---------------------------------------------------------------- public reads


def test_public_reads_are_limited_per_address(client: FlaskClient, office: OfficeFixture) -> None:
    send = from_address(client, "192.0.2.1")
    paths = ["/api/v1/catalog", "/api/v1/log", "/.well-known/jwks.json", "/v"]
    answers = [send("GET", path) for path in paths]

    assert statuses(answers) == [200, 200, 200, 200]
    assert_rate_limited(send("GET", "/.well-known/ecert/trust-list"))
    assert from_address(client, "192.0.2.2")("GET", "/api/v1/catalog").status_code == 200


def test_office_endpoints_are_not_limited_as_public_reads(client: FlaskClient, office: OfficeFixture) -> None:
    answers = [client.get("/api/v1/certificates/DL.nothing", headers=office.auth) for _ in range(6)]

    assert statuses(answers) == [404] * 6


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        pytest.param("ECERT_VERIFY_RATE_LIMIT", "sixty a minute", "ECERT_VERIFY_RATE_LIMIT", id="verify-words"),
        pytest.param("ECERT_PARTNER_RATE_LIMIT", "100/fortnight", "ECERT_PARTNER_RATE_LIMIT", id="partner-unit"),
        pytest.param("ECERT_PUBLIC_RATE_LIMIT", "0/minute", "ECERT_PUBLIC_RATE_LIMIT", id="public-zero"),
        pytest.param("ECERT_AUTH_FAILURE_LIMIT", "10", "ECERT_AUTH_FAILURE_LIMIT", id="auth-no-unit"),
        pytest.param("ECERT_RATE_LIMIT_STORAGE", "mysql://db/x", "ECERT_RATE_LIMIT_STORAGE", id="storage-scheme"),
        pytest.param("ECERT_RATE_LIMIT_STORAGE", "127.0.0.1:6379", "ECERT_RATE_LIMIT_STORAGE", id="storage-no-url"),
        pytest.param("ECERT_TRUSTED_PROXIES", "yes", "ECERT_TRUSTED_PROXIES", id="proxies-word"),
        pytest.param("ECERT_TRUSTED_PROXIES", "-1", "ECERT_TRUSTED_PROXIES", id="proxies-negative"),
    ],
)
def test_bad_settings_stop_the_start(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.load({name: value}, {}, instance_path="/nonexistent", insecure_ok=True)


def test_defaults_and_off() -> None:
    defaults = Settings.load({}, {}, instance_path="/nonexistent", insecure_ok=True)
    off = Settings.load(
        {"ECERT_VERIFY_RATE_LIMIT": "OFF", "ECERT_PARTNER_RATE_LIMIT": "off"},
        {},
        instance_path="/nonexistent",
        insecure_ok=True,
    )

    assert (defaults.limits.verify, defaults.limits.partner) == ("60/minute", "6000/minute")
    assert (defaults.limits.public, defaults.limits.auth_failures) == ("600/minute", "10/minute")
    assert (defaults.limits.storage, defaults.trusted_proxies) == ("memory://", 0)
    assert (off.limits.verify, off.limits.partner) == (None, None)


# ---------------------------------------------------------------- storage


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        require_postgres_or_skip(f"Redis at {REDIS_URL} is not reachable: {error}")
    return REDIS_URL


def unique_public_url() -> str:
    # Counter keys carry the public URL: a fresh one keeps this run apart from any other.
    return f"https://ecert-{uuid.uuid4().hex}.example"


@pytest.mark.parametrize(("shared", "expected"), [(True, 429), (False, 200)], ids=["redis", "memory"])
def test_two_workers_share_counters_only_through_redis(
    database_url: str, clock: FixedClock, redis_url: str, shared: bool, expected: int
) -> None:
    storage = redis_url if shared else "memory://"
    public_url = unique_public_url()
    workers = [
        build_app(database_url, clock, ECERT_RATE_LIMIT_STORAGE=storage, ECERT_PUBLIC_URL=public_url) for _ in range(2)
    ]
    try:
        first, second = (worker.test_client() for worker in workers)
        assert statuses([verify(first) for _ in range(3)]) == [200] * 3

        assert verify(second).status_code == expected
    finally:
        for worker in workers:
            worker.extensions["ecert"].dispose()


@pytest.mark.parametrize("limit_settings", [{"ECERT_RATE_LIMIT_STORAGE": "redis://127.0.0.1:1/0"}])
def test_an_unreachable_storage_falls_back_to_counting_in_memory(client: FlaskClient) -> None:
    answers = [verify(client) for _ in range(4)]

    assert statuses(answers) == [200, 200, 200, 429]


@pytest.mark.e2e
def test_live_workers_share_redis_counters(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("limited")
    live = LiveDeployment(folder=folder, database_url=f"sqlite:///{folder / 'ecert.db'}", port=free_port())
    try:
        assert live.flask("db", "upgrade").returncode == 0
        server = live.start_server(
            ECERT_VERIFY_RATE_LIMIT="3/hour", ECERT_RATE_LIMIT_STORAGE=redis_url, ECERT_PUBLIC_RATE_LIMIT="off"
        )
        answers = [http("POST", f"{server.url}{VERIFY}", NOT_A_TOKEN) for _ in range(8)]
    finally:
        live.stop_all()

    assert [a.status for a in answers] == [200] * 3 + [429] * 5
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert answers[-1].body["code"] == "RATE_LIMITED"

"""End to end: a deployment set up with its CLI, served by gunicorn, used over HTTP.

Covers what in-process tests cannot: the environment as the only configuration, keys
decrypted from the database after a restart, several worker processes on one database,
and the CLI and HTTP giving one answer. Each deployment lives in its own temporary folder
with its own database (a SQLite file, or a fresh PostgreSQL database when
ECERT_TEST_POSTGRES_URL is set) and talks to the test only through its environment, its
command line and HTTP. Servers listen on loopback only; every wait is bounded.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from registry.demo import sample_request
from tests.e2e.live import (
    STARTUP_TIMEOUT,
    LiveDeployment,
    Server,
    free_port,
    fresh_database,
    http,
    last_json_line,
)

pytestmark = pytest.mark.e2e

# ---------------------------------------------------------------- databases


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def e2e_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database: nothing but ``db upgrade`` will create its tables."""
    yield from fresh_database(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def live(e2e_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDeployment]:
    """A deployment set up through its CLI only; every server it starts is stopped afterwards."""
    deployment = LiveDeployment(folder=tmp_path_factory.mktemp("instance"), database_url=e2e_database, port=free_port())
    try:
        yield deployment
    finally:
        deployment.stop_all()


# ---------------------------------------------------------------- the tests

REGION_CODE = "310000"
OFFICE_CODE = "11310000002418960M"


@dataclass(frozen=True)
class Provisioned:
    root_fingerprint: str
    office_code: str
    kid: str
    api_token: str


@pytest.fixture(scope="module")
def provisioned(live: LiveDeployment) -> Provisioned:
    """Migrate the empty database and create region and office, as an administrator would."""
    upgrade = live.flask("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    region = live.flask_json("region", "init", "--code", REGION_CODE, "--name", "上海市")
    office = live.flask_json("office", "add", "--code", OFFICE_CODE, "--name", "上海市示范发证中心", "--types", "BL,DL")
    return Provisioned(region["root_fingerprint"], office["code"], office["kid"], office["api_token"])


@pytest.fixture(scope="module")
def server(live: LiveDeployment, provisioned: Provisioned) -> Server:
    return live.start_server()


def issue(server: Server, provisioned: Provisioned, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = http("POST", f"{server.url}/api/v1/certificates", body or sample_request("DL"), provisioned.api_token)
    assert answer.status == 201, answer.body
    return answer.body  # type: ignore[no-any-return]


def verify(server: Server, **body: str) -> dict[str, Any]:
    answer = http("POST", f"{server.url}/api/v1/verify", body)
    assert answer.status == 200, answer.body
    return answer.body  # type: ignore[no-any-return]


def change_status(server: Server, provisioned: Provisioned, certificate_id: str, status: str) -> dict[str, Any]:
    url = f"{server.url}/api/v1/certificates/{certificate_id}/status"
    answer = http("POST", url, {"status": status, "reason": "e2e"}, provisioned.api_token)
    assert answer.status == 200, answer.body
    return answer.body  # type: ignore[no-any-return]


def verdict(answer: dict[str, Any]) -> tuple[str, str]:
    return answer["verdict"], answer["code"]


# ---------------------------------------------------------------- set up through the CLI


def test_cli_setup_is_what_the_region_reports(live: LiveDeployment, provisioned: Provisioned) -> None:
    shown = live.flask_json("region", "show")

    assert shown["code"] == REGION_CODE
    assert shown["public_url"] == live.public_url
    assert shown["root_fingerprint"] == provisioned.root_fingerprint


def test_cli_upgrade_again_and_duplicate_office_are_handled(live: LiveDeployment, provisioned: Provisioned) -> None:
    again = live.flask("db", "upgrade")
    duplicate = live.flask("office", "add", "--code", OFFICE_CODE, "--name", "重复", "--types", "DL", "--json")

    assert again.returncode == 0, again.stderr
    assert duplicate.returncode != 0
    assert last_json_line(duplicate)["error"] == "ALREADY_EXISTS"


# ---------------------------------------------------------------- over HTTP


def test_jwks_publishes_the_office_key(server: Server, provisioned: Provisioned) -> None:
    keys = http("GET", f"{server.url}/.well-known/jwks.json").body["keys"]

    assert [key["kid"] for key in keys] == [provisioned.kid]
    assert not any("d" in key for key in keys)


def test_issued_certificate_verifies_by_token_and_by_qr_text(server: Server, provisioned: Provisioned) -> None:
    certificate = issue(server, provisioned)

    assert certificate["qr_text"] == f"{server.url}/v#{certificate['token']}"
    by_token = verify(server, token=certificate["token"])
    by_qr = verify(server, qr_text=certificate["qr_text"])
    assert verdict(by_token) == verdict(by_qr) == ("VALID", "OK")
    assert by_token["certificate"]["id"] == certificate["id"]
    assert by_token["issuer"]["office"] == provisioned.office_code


def test_suspension_and_reinstatement_change_the_verdict(server: Server, provisioned: Provisioned) -> None:
    certificate = issue(server, provisioned)

    assert change_status(server, provisioned, certificate["id"], "SUSPENDED")["status"] == "SUSPENDED"
    assert verdict(verify(server, token=certificate["token"])) == ("INVALID", "SUSPENDED")
    assert change_status(server, provisioned, certificate["id"], "VALID")["status"] == "VALID"
    assert verdict(verify(server, token=certificate["token"])) == ("VALID", "OK")


def test_office_token_is_required_to_issue(server: Server) -> None:
    answer = http("POST", f"{server.url}/api/v1/certificates", sample_request("DL"), token="not-a-real-token")

    assert answer.status == 401
    assert answer.body["code"] == "UNAUTHENTICATED"


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01
    return ".".join([header, payload, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode("ascii")])


@pytest.mark.parametrize(
    ("status", "tamper", "expected"),
    [
        pytest.param(None, False, ("VALID", "OK"), id="valid"),
        pytest.param("SUSPENDED", False, ("INVALID", "SUSPENDED"), id="suspended"),
        pytest.param("REVOKED", False, ("INVALID", "REVOKED"), id="revoked"),
        pytest.param(None, True, ("INVALID", "SIG_INVALID"), id="signature-altered"),
    ],
)
def test_cli_verify_gives_the_http_answer(
    live: LiveDeployment,
    server: Server,
    provisioned: Provisioned,
    status: str | None,
    tamper: bool,
    expected: tuple[str, str],
) -> None:
    certificate = issue(server, provisioned)
    if status is not None:
        change_status(server, provisioned, certificate["id"], status)
    token = _tampered(certificate["token"]) if tamper else certificate["token"]

    over_http = verify(server, token=token)
    completed = live.flask("verify", token, "--json")
    on_cli = last_json_line(completed)

    assert verdict(over_http) == verdict(on_cli) == expected
    assert completed.returncode == (0 if expected[0] == "VALID" else 1)
    assert {k: v for k, v in on_cli.items() if k != "checked_at"} == {
        k: v for k, v in over_http.items() if k != "checked_at"
    }


# ---------------------------------------------------------------- restarts and keys


def test_restarted_server_decrypts_keys_from_the_database(live: LiveDeployment, provisioned: Provisioned) -> None:
    port = free_port()
    first = live.start_server(port)
    before = issue(first, provisioned)
    first.stop()
    assert first.process.returncode is not None

    second = live.start_server(port)

    assert verdict(verify(second, token=before["token"])) == ("VALID", "OK")
    # Signing needs the private key: decrypted afresh, from the database, with the passphrase.
    after = issue(second, provisioned)
    assert after["kid"] == before["kid"] == provisioned.kid
    assert verdict(verify(second, token=after["token"])) == ("VALID", "OK")


def test_wrong_passphrase_cannot_sign_but_verification_goes_on(
    live: LiveDeployment, server: Server, provisioned: Provisioned
) -> None:
    existing = issue(server, provisioned)
    misconfigured = live.start_server(free_port(), ECERT_KEY_PASSPHRASE="not-the-passphrase")

    refused = http("POST", f"{misconfigured.url}/api/v1/certificates", sample_request("DL"), provisioned.api_token)

    assert refused.status >= 500
    assert "token" not in (refused.body or {})
    assert "ECERT_KEY_PASSPHRASE" in misconfigured.log_tail()
    assert verdict(verify(misconfigured, token=existing["token"])) == ("VALID", "OK")


# ---------------------------------------------------------------- refusing to start


@pytest.fixture
def unconfigured(tmp_path: Path) -> Iterator[LiveDeployment]:
    deployment = LiveDeployment(folder=tmp_path, database_url=f"sqlite:///{tmp_path / 'none.db'}", port=free_port())
    try:
        yield deployment
    finally:
        deployment.stop_all()


PASSPHRASE_ABSENT = [pytest.param(None, id="unset"), pytest.param("", id="empty")]


@pytest.mark.parametrize("passphrase", PASSPHRASE_ABSENT)
def test_cli_refuses_to_start_without_a_key_passphrase(unconfigured: LiveDeployment, passphrase: str | None) -> None:
    completed = unconfigured.flask("region", "show", ECERT_KEY_PASSPHRASE=passphrase)

    assert completed.returncode != 0
    assert "ECERT_KEY_PASSPHRASE" in completed.stderr


@pytest.mark.parametrize("passphrase", PASSPHRASE_ABSENT)
def test_gunicorn_refuses_to_start_without_a_key_passphrase(
    unconfigured: LiveDeployment, passphrase: str | None
) -> None:
    server = unconfigured.spawn_server(ECERT_KEY_PASSPHRASE=passphrase)

    returncode = server.process.wait(timeout=STARTUP_TIMEOUT)

    assert returncode != 0
    assert "ECERT_KEY_PASSPHRASE" in server.log_tail()


def test_cli_before_region_init_reports_it_in_one_line(unconfigured: LiveDeployment) -> None:
    assert unconfigured.flask("db", "upgrade").returncode == 0

    completed = unconfigured.flask("region", "show", "--json")

    assert completed.returncode == 1
    assert last_json_line(completed)["error"] == "REGION_NOT_INITIALISED"
    assert "Traceback" not in completed.stderr


def test_cli_before_db_upgrade_reports_it_in_one_line(unconfigured: LiveDeployment) -> None:
    completed = unconfigured.flask("region", "show", "--json")

    assert completed.returncode == 1
    assert "error" in last_json_line(completed)
    assert "Traceback" not in completed.stderr

"""Our partner token on the online status requests to a peer (``peer token``).

The peer (330000) is a real deployment on loopback that limits anonymous verification,
its ``GET /api/v1/status/<id>`` included, to :data:`ANONYMOUS_LIMIT` per address, and
has admitted us (310000) as its partner with ``partner add``. Our side is the verifier
``POST /api/v1/verify`` builds, on our real database; the token is stored through the
real CLI, read from standard input. With our token held, every verification of the
peer's certificate is answered online (``status_source`` ``issuer``); without it, the
peer's limit sends us to its held status list after :data:`ANONYMOUS_LIMIT`. Every
case runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from app import create_app
from registry.models import Peer
from registry.partners import add_partner, get_partner, revoke_partner
from signing.errors import KeyStorageError
from signing.keystore import KeyRing
from tests.conftest import RATE_LIMITS_OFF, TEST_PASSPHRASE, FixedClock
from tests.verify.peer_server import (
    JOIN_TIMEOUT,
    PEER_CODE,
    PEER_NAME,
    PEER_OFFICE_CODE,
    PEER_OFFICE_NAME,
    POLL_INTERVAL,
    Home,
    PeerRegion,
    start_region,
)
from verify.peer_tokens import open_partner_token
from verify.peers import get_peer

pytest_plugins = ["tests.verify.conftest_peers"]

ANONYMOUS_LIMIT = 2
VERIFICATIONS = 5
OUR_CODE = "310000"
ISSUER = "issuer"
STATUS_LIST = "status-list"
THROTTLED = [ISSUER] * ANONYMOUS_LIMIT + [STATUS_LIST] * (VERIFICATIONS - ANONYMOUS_LIMIT)


# ---------------------------------------------------------------- the peer, and its partner


@pytest.fixture
def limited_peer(peer_database_url: str, clock: FixedClock) -> Iterator[PeerRegion]:
    """Region 330000 on loopback, answering each address's anonymous verifications (status
    answers included) :data:`ANONYMOUS_LIMIT` times an hour; partners 6000 a minute."""
    app = create_app(
        {
            "TESTING": True,
            "ECERT_DATABASE_URL": peer_database_url,
            "ECERT_KEY_PASSPHRASE": TEST_PASSPHRASE,
            "ECERT_PUBLIC_URL": "http://127.0.0.1",
            "ECERT_CLOCK": clock,
            # An hour's window: the test never straddles two of them.
            "ECERT_VERIFY_RATE_LIMIT": f"{ANONYMOUS_LIMIT}/hour",
            "ECERT_RATE_LIMIT_STORAGE": "memory://",
        }
    )
    try:
        running = start_region(
            app,
            code=PEER_CODE,
            name=PEER_NAME,
            office_code=PEER_OFFICE_CODE,
            office_name=PEER_OFFICE_NAME,
            types=["DL"],
            now=clock(),
        )
        try:
            yield running
        finally:
            running.stop()
    finally:
        app.extensions["ecert"].dispose()


@dataclass(frozen=True)
class Admitted:
    """The peer, a certificate it issued, and the partner token its admin gave us."""

    peer: PeerRegion
    token: str
    certificate: dict[str, Any]


@pytest.fixture
def admitted(limited_peer: PeerRegion) -> Admitted:
    """The peer has issued a certificate and admitted us as its partner (``partner add``)."""
    certificate = limited_peer.issue("DL")
    with limited_peer.session() as session:
        _partner, token = add_partner(
            session, region_code=OUR_CODE, name="上海市", now=limited_peer.now(), actor="test:peer-admin"
        )
        session.commit()
    return Admitted(limited_peer, token, certificate)


@pytest.fixture
def partnered(home: Home, admitted: Admitted) -> Admitted:
    """... and we have pinned it (after the issuance: our held status list covers it)."""
    outcome = home.add(admitted.peer.url, admitted.peer.fingerprint)
    assert outcome.ok, outcome
    return admitted


# ---------------------------------------------------------------- our side


def peer_token(runner: FlaskCliRunner, *options: str, stdin: str | None = None) -> Result:
    return runner.invoke(args=["peer", "token", "--region", PEER_CODE, *options], input=stdin)


def store_token(runner: FlaskCliRunner, token: str) -> None:
    result = peer_token(runner, stdin=token + "\n")
    assert result.exit_code == 0, result.output


def status_sources(client: FlaskClient, token: str, times: int = VERIFICATIONS) -> list[str]:
    """Verify ``token`` ``times`` times through our API; which source settled each (all VALID)."""
    sources = []
    for _ in range(times):
        answer = client.post("/api/v1/verify", json={"token": token}).json
        assert answer is not None
        assert (answer["verdict"], answer["code"]) == ("VALID", "OK"), answer
        sources.append(answer["status_source"])
    return sources


def listed(runner: FlaskCliRunner) -> tuple[dict[str, Any], Result]:
    result = runner.invoke(args=["peer", "list", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout.strip().splitlines()[-1])["peers"]
    return row, result


def stored_column(home: Home) -> bytes | None:
    with home.deployment.read_session() as session:
        return session.scalars(select(Peer.partner_token).where(Peer.region_code == PEER_CODE)).one()


# ---------------------------------------------------------------- online, as a partner


def test_with_our_token_every_verification_is_answered_online(
    runner: FlaskCliRunner, client: FlaskClient, partnered: Admitted, caplog: pytest.LogCaptureFixture
) -> None:
    """The peer counts us as its partner (6000/minute), not as one more address (2/hour)."""
    store_token(runner, partnered.token)
    caplog.set_level(logging.DEBUG)

    assert status_sources(client, partnered.certificate["token"]) == [ISSUER] * VERIFICATIONS
    assert partnered.token not in caplog.text  # nor in any log line of ours, httpx's or the peer's


def test_without_a_token_the_peer_throttles_us_to_the_held_status_list(
    client: FlaskClient, partnered: Admitted
) -> None:
    """The same verifications, anonymous: after the peer's limit its ``429`` is a failure
    like any other, and our held status list answers (still VALID)."""
    assert status_sources(client, partnered.certificate["token"]) == THROTTLED


def test_a_cleared_token_is_no_longer_presented(
    runner: FlaskCliRunner, client: FlaskClient, partnered: Admitted
) -> None:
    store_token(runner, partnered.token)
    assert peer_token(runner, "--clear").exit_code == 0

    assert status_sources(client, partnered.certificate["token"]) == THROTTLED


def test_a_revoked_token_falls_back_to_the_held_status_list(
    runner: FlaskCliRunner, client: FlaskClient, partnered: Admitted
) -> None:
    """The peer's admin revoked our token: its ``401`` (then its ``429`` for failed
    authentications) is a failure like any other; the held status list answers."""
    store_token(runner, partnered.token)
    peer = partnered.peer
    with peer.session() as session:
        assert revoke_partner(session, get_partner(session, OUR_CODE), now=peer.now(), actor="test:peer-admin") == 1
        session.commit()

    assert status_sources(client, partnered.certificate["token"]) == [STATUS_LIST] * VERIFICATIONS


# ---------------------------------------------------------------- where the token goes


class _RecordingProxy:
    """Relays every ``GET`` to ``upstream`` (Authorization included) and records each path
    with the Authorization header it carried (None: none)."""

    def __init__(self, upstream: str) -> None:
        seen: list[tuple[str, str | None]] = []

        class Relay(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                authorization = self.headers.get("Authorization")
                seen.append((self.path.split("?", 1)[0], authorization))
                request = urllib.request.Request(upstream + self.path)  # noqa: S310 (loopback http)
                if authorization is not None:
                    request.add_header("Authorization", authorization)
                try:
                    with urllib.request.urlopen(request, timeout=JOIN_TIMEOUT) as answer:  # noqa: S310
                        status, body = answer.status, answer.read()
                except urllib.error.HTTPError as error:
                    status, body = error.code, error.read()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.seen = seen
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_INTERVAL,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(JOIN_TIMEOUT)


@pytest.fixture
def proxy(limited_peer: PeerRegion) -> Iterator[_RecordingProxy]:
    relay = _RecordingProxy(limited_peer.url)
    yield relay
    relay.stop()


@pytest.mark.parametrize("pinned_at", ["the-proxy", "the-peer-itself"])
def test_the_token_goes_only_to_the_pinned_url(
    runner: FlaskCliRunner,
    client: FlaskClient,
    home: Home,
    admitted: Admitted,
    proxy: _RecordingProxy,
    pinned_at: str,
) -> None:
    """The peer's signed list names its endpoints at the proxy. Pinned at the proxy's URL,
    the status request (and only it) carries our token there; pinned at the peer's own
    URL, the endpoints are another host, so nothing there ever sees the token."""
    peer = admitted.peer
    peer.move_to(proxy.url)
    assert home.add(proxy.url if pinned_at == "the-proxy" else peer.url, peer.fingerprint).ok
    store_token(runner, admitted.token)

    sources = status_sources(client, admitted.certificate["token"])

    status_path = f"/api/v1/status/{admitted.certificate['id']}"
    carried = {authorization for path, authorization in proxy.seen if path == status_path}
    others = {authorization for path, authorization in proxy.seen if path != status_path}
    assert others == {None}  # trust list, status list, log, inclusion proofs: never
    if pinned_at == "the-proxy":
        assert carried == {f"Bearer {admitted.token}"}
        assert sources == [ISSUER] * VERIFICATIONS
    else:
        assert carried == {None}
        assert sources == THROTTLED


# ---------------------------------------------------------------- at rest


def test_the_stored_column_is_sealed_never_the_token(runner: FlaskCliRunner, home: Home, partnered: Admitted) -> None:
    store_token(runner, partnered.token)

    stored = stored_column(home)
    random_part = partnered.token.removeprefix("ecertp_")
    assert stored is not None
    assert partnered.token.encode() not in stored and random_part[:12].encode() not in stored
    with home.deployment.read_session() as session:
        assert open_partner_token(home.deployment.keyring, get_peer(session, PEER_CODE)) == partnered.token


def test_a_wrong_passphrase_cannot_open_it_and_we_ask_anonymously(
    runner: FlaskCliRunner,
    home: Home,
    partnered: Admitted,
    database_url: str,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Opened with another passphrase, the token is ``KEY_STORAGE``; a deployment started
    with one still verifies (the token only spares us the peer's anonymous limit), and
    says why in its log, without the token."""
    store_token(runner, partnered.token)
    with home.deployment.read_session() as session, pytest.raises(KeyStorageError) as raised:
        open_partner_token(KeyRing("not the passphrase"), get_peer(session, PEER_CODE))
    assert raised.value.code == "KEY_STORAGE"

    wrong: Flask = create_app(
        {
            "TESTING": True,
            "ECERT_DATABASE_URL": database_url,
            "ECERT_KEY_PASSPHRASE": "not the passphrase",
            "ECERT_CLOCK": clock,
            **RATE_LIMITS_OFF,
        }
    )
    try:
        with caplog.at_level(logging.WARNING, logger="verify.peers"):
            assert status_sources(wrong.test_client(), partnered.certificate["token"]) == THROTTLED
    finally:
        wrong.extensions["ecert"].dispose()
    assert f"partner token held for region {PEER_CODE} cannot be opened" in caplog.text
    assert partnered.token not in caplog.text


# ---------------------------------------------------------------- the command


def test_peer_token_reads_stdin_and_list_shows_only_that_one_is_held(
    runner: FlaskCliRunner, home: Home, partnered: Admitted
) -> None:
    before, _ = listed(runner)
    assert before["partner_token_held"] is False

    result = peer_token(runner, "--json", stdin=partnered.token + "\n")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"region": PEER_CODE, "partner_token_held": True}
    after, as_json = listed(runner)
    text = runner.invoke(args=["peer", "list"])
    assert after["partner_token_held"] is True
    assert "partner token: yes" in text.stdout
    for output in (result.output, as_json.output, text.output):
        assert partnered.token not in output
    [record] = home.audit("peer.partner_token")
    assert record.subject_id == PEER_CODE
    assert record.details == {"prefix": partnered.token[:13], "replaced": False}


def test_peer_token_clear_removes_it(runner: FlaskCliRunner, home: Home, partnered: Admitted) -> None:
    store_token(runner, partnered.token)

    cleared = peer_token(runner, "--clear", "--json")
    again = peer_token(runner, "--clear", "--json")

    assert cleared.exit_code == 0 and again.exit_code == 0, (cleared.output, again.output)
    assert json.loads(cleared.stdout.strip().splitlines()[-1])["removed"] is True
    assert json.loads(again.stdout.strip().splitlines()[-1])["removed"] is False
    assert stored_column(home) is None
    assert listed(runner)[0]["partner_token_held"] is False
    assert len(home.audit("peer.partner_token_clear")) == 1
    assert "partner token: no" in runner.invoke(args=["peer", "list"]).stdout


NOT_PARTNER_TOKENS = {
    "empty": "",
    "an office's token": "ecert_" + "A" * 43,
    "with the scheme": "Bearer ecertp_" + "A" * 43,
    "too short": "ecertp_" + "A" * 20,
    "too long": "ecertp_" + "A" * 200,
    "two words": "ecertp_" + "A" * 21 + " " + "A" * 21,
    "not base64url": "ecertp_" + "A" * 42 + "=",
}


def test_peer_token_refuses_what_is_not_a_partner_token(
    runner: FlaskCliRunner, home: Home, partnered: Admitted
) -> None:
    """One peer for all the lines (starting one per line would cost seconds each)."""
    for case, line in NOT_PARTNER_TOKENS.items():
        result = peer_token(runner, "--json", stdin=line + "\n")

        assert result.exit_code == 1, case
        assert json.loads(result.stdout.strip().splitlines()[-1])["error"] == "VALIDATION_FAILED", case
        assert not line or line not in result.output, case  # a mistyped secret is not echoed either
    assert stored_column(home) is None
    assert home.audit("peer.partner_token") == []


def test_peer_token_takes_no_argument_and_needs_a_known_peer(runner: FlaskCliRunner, partnered: Admitted) -> None:
    """A token given as an argument would land in shell history and the process list."""
    as_argument = runner.invoke(args=["peer", "token", "--region", PEER_CODE, partnered.token])
    unknown = runner.invoke(args=["peer", "token", "--region", "320000", "--json"], input=partnered.token + "\n")

    assert as_argument.exit_code == 2  # click's usage error
    assert unknown.exit_code == 1
    assert json.loads(unknown.stdout.strip().splitlines()[-1])["error"] == "NOT_FOUND"

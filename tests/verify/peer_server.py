"""Support for the cross-region tests: real HTTP servers on loopback, another region
served behind one, and our region's side of recognising it.

* :class:`ServedApp`: a Flask app served by werkzeug in a thread. One request per
  connection (HTTP/1.0), so once stopped the region is really unreachable: no pooled
  keep-alive connection of the verifier's HTTP client can still reach it.
* :class:`CannedServer`: a stdlib ``http.server`` answering fixed bytes per path (and
  relaying other paths to the real peer, if asked). It plays "the peer's address" when
  a test needs it to serve something the real peer would not (an older list, another
  region's list, junk, an oversize answer).
* :class:`PeerRegion`: another region's deployment (its own app, database and keys, the
  test's clock) served by a :class:`ServedApp`, with the few actions tests take on it.
* :class:`Home`: our region's side (``verify.peers`` and the live verifier), each
  action on its own short session, as a command or a request would run it.

The fixtures built on these are in ``tests/verify/conftest_peers.py``.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from deployment import Deployment
from registry.demo import sample_request
from registry.identifiers import make_credit_code
from registry.models import AuditRecord, Peer, Region, SigningKey
from registry.offices import add_office
from registry.regions import current_region, init_region, root_fingerprint
from registry.trust_list import STATUS_LIST_PATH, TRUST_LIST_PATH, TRUST_LIST_TYPE, publish_trust_list
from signing.algorithms import PrivateKey, generate_private_key
from signing.jwk import thumbprint
from signing.keystore import KeyRing
from signing.tokens import encode_token
from tests.conftest import FixedClock
from tests.verify.conftest import LEEWAY, decode_parts
from verify.fetch import Fetcher
from verify.live import live_trust_store
from verify.peers import SyncOutcome, add_peer, get_peer, refresh_keys, sync_peer
from verify.report import VerificationReport
from verify.trust import RegionCopy
from verify.verifier import Verifier

JOIN_TIMEOUT = 10.0
POLL_INTERVAL = 0.05  # how soon a stopped server's loop notices

PEER_CODE = "330000"
PEER_NAME = "浙江省"
PEER_OFFICE_CODE = make_credit_code("11330000002418961")
PEER_OFFICE_NAME = "浙江省示范发证中心"
ACTOR = "test:admin"


class _OneRequestPerConnection(WSGIRequestHandler):
    protocol_version = "HTTP/1.0"  # closes every connection after its answer

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class ServedApp:
    """``app`` served on ``127.0.0.1`` at a free port, in a daemon thread, until :meth:`stop`."""

    def __init__(self, app: Any) -> None:
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_OneRequestPerConnection
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_INTERVAL,), name=f"served {self.url}", daemon=True
        )
        self._thread.start()
        self._stopped = False

    def stop(self) -> None:
        """Stop answering; connections to the port are refused from now on (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(JOIN_TIMEOUT)


class _CannedHandler(BaseHTTPRequestHandler):
    server: _CannedHTTPServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.requests.append(path)
        routed = self.server.routes.get(path)
        status, body, headers = routed if routed is not None else self._forwarded()
        self.send_response(status)
        self.send_header("Content-Type", "application/jwt")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _forwarded(self) -> tuple[int, bytes, dict[str, str]]:
        """The upstream's answer to this request (404 without an upstream, 502 if it is down)."""
        if self.server.upstream is None:
            return 404, b"not found", {}
        try:
            with urllib.request.urlopen(self.server.upstream + self.path, timeout=JOIN_TIMEOUT) as answer:  # noqa: S310
                return answer.status, answer.read(), {}
        except urllib.error.HTTPError as error:
            return error.code, error.read(), {}
        except OSError:
            return 502, b"upstream unreachable", {}

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _CannedHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, tuple[int, bytes, dict[str, str]]]
    requests: list[str]
    upstream: str | None


class CannedServer:
    """Answers ``GET path`` with the status and bytes last set for it; any other path is
    forwarded to the upstream set by :meth:`forward_to` (else 404). Remembers the paths
    asked for."""

    def __init__(self) -> None:
        self._server = _CannedHTTPServer(("127.0.0.1", 0), _CannedHandler)
        self._server.routes = {}
        self._server.requests = []
        self._server.upstream = None
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_INTERVAL,), name=f"canned {self.url}", daemon=True
        )
        self._thread.start()
        self._stopped = False

    def serve(self, path: str, body: str | bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        raw = body.encode("utf-8") if isinstance(body, str) else body
        self._server.routes[path] = (status, raw, headers or {})

    def forward_to(self, upstream: str) -> None:
        """Relay requests for paths not set with :meth:`serve` to ``upstream`` (a base URL)."""
        self._server.upstream = upstream

    def serve_trust_list(self, body: str | bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.serve(TRUST_LIST_PATH, body, status, headers)

    def serve_status_list(self, body: str | bytes) -> None:
        self.serve(STATUS_LIST_PATH, body)

    def requests_for(self, path: str) -> int:
        """How many times ``path`` was asked for so far."""
        return self._server.requests.count(path)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(JOIN_TIMEOUT)


# ---------------------------------------------------------------- another region


@dataclass
class PeerOffice:
    code: str
    kid: str
    api_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_token}"}


@dataclass
class PeerRegion:
    """Another region's running deployment: its own database and keys, our clock."""

    app: Flask
    server: ServedApp
    code: str
    name: str
    office: PeerOffice
    client: FlaskClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = self.app.test_client()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def deployment(self) -> Deployment:
        return self.app.extensions["ecert"]  # type: ignore[no-any-return]

    @property
    def keyring(self) -> KeyRing:
        return self.deployment.keyring

    def now(self) -> datetime:
        return self.deployment.now()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.deployment.session() as session:
            yield session

    def region(self) -> Region:
        with self.session() as session:
            found = current_region(session)
            session.expunge(found)
            return found

    @property
    def fingerprint(self) -> str:
        """The RFC 7638 thumbprint of the region's current root, as its peers pin it."""
        return root_fingerprint(self.region())

    def trust_list(self) -> str:
        """The list the region serves now (publishing one if its newest is nearly stale)."""
        response = self.client.get(TRUST_LIST_PATH)
        assert response.status_code == 200, response.data
        return response.get_data(as_text=True)

    def status_list(self) -> str:
        """The status list the region serves now."""
        response = self.client.get(STATUS_LIST_PATH)
        assert response.status_code == 200, response.data
        return response.get_data(as_text=True)

    def status_answer(self, certificate_id: str) -> str:
        """The region's signed status answer about one identifier, as it serves it now."""
        response = self.client.get(f"/api/v1/status/{certificate_id}")
        assert response.status_code == 200, response.data
        return response.get_data(as_text=True)

    def move_to(self, public_url: str) -> str:
        """Change the region's public URL (its signed list's endpoints) and publish the list."""
        with self.session() as session:
            current_region(session).public_url = public_url
            session.commit()
        return self.publish()

    def publish(self) -> str:
        """Publish a new trust list (the next sequence number) and return it."""
        with self.session() as session:
            published = publish_trust_list(session, self.keyring, now=self.now(), actor="test:peer")
            session.commit()
            return published.jws

    def issue(self, type_code: str = "DL", **changes: Any) -> dict[str, Any]:
        """Issue a sample certificate through the region's own API; the 201 body."""
        response = self.client.post(
            "/api/v1/certificates", json=sample_request(type_code, **changes), headers=self.office.auth
        )
        assert response.status_code == 201, response.json
        return response.json  # type: ignore[no-any-return]

    def change_status(self, certificate_id: str, status: str, reason: str = "检查发现问题") -> None:
        response = self.client.post(
            f"/api/v1/certificates/{certificate_id}/status",
            json={"status": status, "reason": reason},
            headers=self.office.auth,
        )
        assert response.status_code == 200, response.json

    def root_key(self) -> PrivateKey:
        region = self.region()
        return self.keyring.private_key(region.root_kid, lambda: region.root_private_key)

    def status_key(self) -> tuple[str, PrivateKey]:
        region = self.region()
        assert region.status_kid is not None and region.status_private_key is not None
        stored = region.status_private_key
        return region.status_kid, self.keyring.private_key(region.status_kid, lambda: stored)

    def office_key(self) -> PrivateKey:
        """The private key of the office's first signing key (to sign hostile tokens)."""
        with self.session() as session:
            row = session.get(SigningKey, self.office.kid)
            assert row is not None
            stored = row.private_key
            return self.keyring.private_key(row.kid, lambda: stored)

    def stop(self) -> None:
        self.server.stop()


def start_region(
    app: Flask, *, code: str, name: str, office_code: str, office_name: str, types: list[str], now: datetime
) -> PeerRegion:
    """Serve ``app`` on loopback, and create its region (public URL: where it is served)
    with one office for ``types``."""
    served = ServedApp(app)
    deployment: Deployment = app.extensions["ecert"]
    try:
        with deployment.session() as session:
            init_region(session, deployment.keyring, code=code, name=name, public_url=served.url, now=now, actor="test")
            _office, key, api_token = add_office(
                session,
                deployment.keyring,
                credit_code=office_code,
                name=office_name,
                types=types,
                algorithm="EdDSA",
                now=now,
                actor="test",
            )
            session.commit()
            office = PeerOffice(code=office_code, kid=key.kid, api_token=api_token)
    except BaseException:
        served.stop()
        raise
    return PeerRegion(app=app, server=served, code=code, name=name, office=office)


# ---------------------------------------------------------------- signed documents


def payload_of(jws: str) -> dict[str, Any]:
    """The JSON payload of a compact JWS (not verified: for building hostile copies)."""
    return decode_parts(jws)[1]


def random_fingerprint() -> str:
    """The thumbprint of a fresh key: a root no region has."""
    return thumbprint(generate_private_key("EdDSA").public_key())


def signed_trust_list(payload: dict[str, Any], root: PrivateKey) -> str:
    """``payload`` signed as a trust list by ``root`` (header kid: its thumbprint)."""
    return encode_token(payload, root, thumbprint(root.public_key()), typ=TRUST_LIST_TYPE)


# ---------------------------------------------------------------- our side


class Home:
    """Our region's side: pinning and syncing peers, reading their rows, verifying live.

    Every action runs on its own short session and commits, as a CLI command or a
    request would; nothing stays open between actions.
    """

    def __init__(self, deployment: Deployment, clock: FixedClock) -> None:
        self.deployment = deployment
        self.clock = clock

    @property
    def fetcher(self) -> Fetcher:
        return self.deployment.fetcher

    def add(self, url: str, fingerprint: str) -> SyncOutcome:
        with self.deployment.session() as session:
            _peer, outcome = add_peer(
                session, self.fetcher, url=url, fingerprint=fingerprint, now=self.clock(), actor=ACTOR
            )
            session.commit()
            return outcome

    def sync(self, code: str = PEER_CODE) -> SyncOutcome:
        with self.deployment.session() as session:
            outcome = sync_peer(session, self.fetcher, get_peer(session, code), now=self.clock(), actor=ACTOR)
            session.commit()
            return outcome

    def refresh_keys(self, code: str = PEER_CODE) -> RegionCopy | None:
        with self.deployment.session() as session:
            copy = refresh_keys(session, self.fetcher, code, now=self.clock(), actor=ACTOR)
            session.commit()
            return copy

    def peer_row(self, code: str = PEER_CODE) -> Peer | None:
        """A detached snapshot of the stored peer row (None if there is none)."""
        with self.deployment.read_session() as session:
            row = session.scalars(select(Peer).where(Peer.region_code == code)).first()
            if row is not None:
                session.expunge(row)
            return row

    def peers(self) -> list[str]:
        with self.deployment.read_session() as session:
            return list(session.scalars(select(Peer.region_code).order_by(Peer.region_code)))

    def audit(self, action: str) -> list[AuditRecord]:
        with self.deployment.read_session() as session:
            records = list(
                session.scalars(select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id))
            )
            session.expunge_all()
            return records

    def verify(self, token: str) -> VerificationReport:
        """Verify as ``POST /api/v1/verify`` does: our registry, held peer lists, online status."""
        (report,) = self.verify_many([token])
        return report

    def verify_many(self, tokens: list[str]) -> list[VerificationReport]:
        """Verify as ``POST /api/v1/verify/batch`` does (one verifier for all the tokens)."""
        with self.deployment.read_session() as session:
            trust = live_trust_store(
                session, writer=self.deployment.sessions, fetcher=self.fetcher, now=self.clock(), actor=ACTOR
            )
            return Verifier(session, now=self.clock(), leeway=LEEWAY, trust=trust).verify_many(tokens)

"""Several regions on one machine, for the cross-region end-to-end tests (issue 4).

Each :class:`Region` is a :class:`~tests.e2e.live.LiveDeployment`: its own folder,
database and gunicorn server on loopback, set up only through its CLI and used only over
HTTP. A region may stand behind a :class:`FrontDoor`: a small real HTTP server at the
region's public address that forwards to the region's gunicorn, unless a test tells it
to answer a path with something else (an older trust list, a spliced one, another
region's status list, an outage). Its trust list then names the front door in every
endpoint, so whatever a peer fetches from that region passes through it.

Every wait here is bounded; every server and database is cleaned up by its owner.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text

from registry.demo import sample_request
from tests.e2e.live import HTTP_TIMEOUT, LiveDeployment, Server, free_port, http, last_json_line

TRUST_LIST_PATH = "/.well-known/ecert/trust-list"
STATUS_LIST_PATH = "/.well-known/ecert/status-list"
STATUS_ANSWER_PREFIX = "/api/v1/status/"
LONGEST_WAIT = 40.0  # seconds: no scenario waits longer than this for a moment to pass


# ---------------------------------------------------------------- small readers


def fetch_text(url: str) -> str:
    """The body of ``GET url`` (a signed document), which must answer 200."""
    assert url.startswith("http://127.0.0.1:"), url
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
        assert response.status == 200, url
        return str(response.read().decode("ascii"))


def jws_payload(jws: str) -> dict[str, Any]:
    """The payload of a compact JWS (a token, a trust list, a status list), unverified."""
    segment = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


def splice(signed_part_of: str, signature_of: str) -> str:
    """``header.payload`` of one JWS with the signature of another (mix and match)."""
    return signed_part_of.rsplit(".", 1)[0] + "." + signature_of.rsplit(".", 1)[1]


def wait_until(moment: datetime, *, margin: float = 0.5) -> None:
    """Sleep until ``moment`` (plus ``margin`` seconds) has passed; never longer than
    :data:`LONGEST_WAIT`, so a wrong expiry fails the test instead of hanging it."""
    seconds = (moment - datetime.now(UTC)).total_seconds() + margin
    assert seconds <= LONGEST_WAIT, f"refusing to wait {seconds:.0f}s for {moment.isoformat()}"
    if seconds > 0:
        time.sleep(seconds)


def next_second() -> datetime:
    """Wait for the next whole second (documents and tokens carry whole-second times)."""
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    wait_until(moment, margin=0.05)
    return moment


# ---------------------------------------------------------------- the front door


_HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length"})


@dataclass
class _Rule:
    status: int
    body: bytes


class FrontDoor:
    """A real HTTP server at a region's public address (stdlib, in a thread).

    It forwards each request to ``backend`` unless a rule says otherwise: :meth:`serve`
    answers a path prefix with a document of the test's choosing, :meth:`refuse` with an
    error status, :meth:`balance` sends it to several servers in turn (a load balancer).
    :meth:`forward_all` clears the rules.
    """

    def __init__(self) -> None:
        self.backend = ""
        self._rules: dict[str, _Rule] = {}
        self._balanced: dict[str, Iterator[str]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="front-door", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def serve(self, path_prefix: str, document: str) -> None:
        """Answer requests under ``path_prefix`` with ``document`` (200), whatever the region has."""
        with self._lock:
            self._rules[path_prefix] = _Rule(200, document.encode("ascii"))

    def refuse(self, path_prefix: str, status: int = 503) -> None:
        """Answer requests under ``path_prefix`` with an error, as an unreachable region would."""
        with self._lock:
            self._rules[path_prefix] = _Rule(status, b'{"title": "front door closed"}')

    def balance(self, path_prefix: str, backends: list[str]) -> None:
        """Forward requests under ``path_prefix`` to ``backends`` in turn, round robin."""
        with self._lock:
            self._balanced[path_prefix] = itertools.cycle(backends)

    def forward_all(self) -> None:
        with self._lock:
            self._rules.clear()
            self._balanced.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _rule(self, path: str) -> _Rule | None:
        with self._lock:
            return next((rule for prefix, rule in self._rules.items() if path.startswith(prefix)), None)

    def _backend(self, path: str) -> str:
        with self._lock:
            turns = next((turns for prefix, turns in self._balanced.items() if path.startswith(prefix)), None)
            return self.backend if turns is None else next(turns)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        door = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                rule = door._rule(self.path)
                if rule is not None:
                    self._send(rule.status, "application/jwt", rule.body)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                forwarded = urllib.request.Request(  # noqa: S310
                    door._backend(self.path) + self.path,
                    data=self.rfile.read(length) if length else None,
                    headers={k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP},
                    method=self.command,
                )
                try:
                    with urllib.request.urlopen(forwarded, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
                        self._send(response.status, response.headers.get("Content-Type", ""), response.read())
                except urllib.error.HTTPError as error:
                    self._send(error.code, error.headers.get("Content-Type", ""), error.read())
                except OSError:
                    self._send(502, "text/plain", b"the region behind this front door is down")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test's output is about verdicts

        return Handler


# ---------------------------------------------------------------- a region


@dataclass(frozen=True)
class IssuingOffice:
    code: str
    kid: str
    api_token: str


@dataclass(frozen=True)
class SyncReport:
    exit_code: int
    peers: dict[str, dict[str, Any]]

    def error(self, region: Region) -> str | None:
        """The refusal code of ``region``'s sync (None: it synced)."""
        return self.peers[region.code]["error"]  # type: ignore[no-any-return]


@dataclass
class Region:
    """One region's deployment, and what its administrator knows about it."""

    code: str
    name: str
    deployment: LiveDeployment
    backend_port: int
    front: FrontDoor | None = None
    root_fingerprint: str = ""
    offices: dict[str, IssuingOffice] = field(default_factory=dict)
    server: Server | None = None

    @property
    def url(self) -> str:
        """The public address peers are given (the front door's, if it has one)."""
        return self.deployment.public_url

    @property
    def label(self) -> str:
        return f"{self.code} {self.name}"

    # -- the server

    def start(self) -> None:
        """Serve on the backend port (again, after :meth:`stop`), answering before it returns."""
        if self.server is None or self.server.process.poll() is not None:
            self.server = self.deployment.start_server(self.backend_port)

    def stop(self) -> None:
        """Stop every server of this deployment: the region is down."""
        for server in self.deployment.servers:
            server.stop()

    @property
    def backend_url(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}"

    # -- the administrator's command line

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A CLI command with ``--json``, whatever its exit code."""
        return self.deployment.flask(*args, "--json")

    def cli_json(self, *args: str) -> dict[str, Any]:
        """A CLI command with ``--json`` that must succeed: its JSON answer."""
        completed = self.cli(*args)
        assert completed.returncode == 0, f"{self.label} {' '.join(args)}: {completed.stdout}{completed.stderr}"
        return last_json_line(completed)

    def add_office(self, label: str, credit_code: str, name: str, types: str = "BL,DL") -> IssuingOffice:
        added = self.cli_json("office", "add", "--code", credit_code, "--name", name, "--types", types)
        self.offices[label] = IssuingOffice(added["code"], added["kid"], added["api_token"])
        return self.offices[label]

    def peer_add(self, other: Region, *, fingerprint: str | None = None) -> subprocess.CompletedProcess[str]:
        """``peer add`` with ``other``'s public URL and (by default) its true root fingerprint."""
        return self.cli("peer", "add", "--url", other.url, "--fingerprint", fingerprint or other.root_fingerprint)

    def pin(self, other: Region) -> dict[str, Any]:
        completed = self.peer_add(other)
        assert completed.returncode == 0, f"{self.label} pinning {other.label}: {completed.stdout}{completed.stderr}"
        return last_json_line(completed)

    def sync(self) -> SyncReport:
        """``peer sync``: every peer's outcome (a scenario judges its own peer's: the exit
        code is non-zero if any peer failed, and other scenarios' peers may)."""
        completed = self.cli("peer", "sync")
        outcome = last_json_line(completed)
        assert "peers" in outcome, completed.stderr
        return SyncReport(completed.returncode, {row["region"]: row for row in outcome["peers"]})

    def peers(self) -> dict[str, dict[str, Any]]:
        """``peer list`` by region code."""
        return {row["region"]: row for row in self.cli_json("peer", "list")["peers"]}

    def verify_cli(self, token: str, *options: str) -> tuple[int, dict[str, Any]]:
        """``verify TOKEN [options]``: its exit code and JSON answer."""
        completed = self.cli("verify", token, *options)
        return completed.returncode, last_json_line(completed)

    # -- an office's API and the public verifier

    def issue(self, office: str = "main", type_code: str = "DL") -> dict[str, Any]:
        answer = http(
            "POST", f"{self.url}/api/v1/certificates", sample_request(type_code), self.offices[office].api_token
        )
        assert answer.status == 201, answer.body
        return answer.body  # type: ignore[no-any-return]

    def set_status(self, certificate: dict[str, Any], status: str, office: str = "main") -> None:
        url = f"{self.url}/api/v1/certificates/{certificate['id']}/status"
        answer = http("POST", url, {"status": status, "reason": "e2e scenario"}, self.offices[office].api_token)
        assert answer.status == 200, answer.body
        assert answer.body["status"] == status

    def verify(self, token: str) -> dict[str, Any]:
        """``POST /api/v1/verify``: the answer."""
        answer = http("POST", f"{self.url}/api/v1/verify", {"token": token})
        assert answer.status == 200, answer.body
        return answer.body  # type: ignore[no-any-return]

    def trust_list(self) -> str:
        """The trust list the region serves now (straight from its server)."""
        return fetch_text(self.backend_url + TRUST_LIST_PATH)

    def status_list(self) -> str:
        return fetch_text(self.backend_url + STATUS_LIST_PATH)


def provision_region(
    code: str,
    name: str,
    database_url: str,
    folder: Path,
    *,
    fronted: bool = False,
    init_options: tuple[str, ...] = (),
    offices: tuple[tuple[str, str, str], ...] = (),
) -> Region:
    """Migrate an empty database, create the region and its offices with the CLI, and
    serve it. ``offices`` holds (label, credit code, name); ``fronted`` puts a
    :class:`FrontDoor` at the public address."""
    front = FrontDoor() if fronted else None
    backend_port = free_port()
    deployment = LiveDeployment(folder=folder, database_url=database_url, port=front.port if front else backend_port)
    region = Region(code=code, name=name, deployment=deployment, backend_port=backend_port, front=front)
    if front is not None:
        front.backend = region.backend_url
    upgrade = deployment.flask("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    created = region.cli_json("region", "init", "--code", code, "--name", name, *init_options)
    region.root_fingerprint = created["root_fingerprint"]
    for label, credit_code, office_name in offices:
        region.add_office(label, credit_code, office_name)
    region.start()
    return region


def shut_down(region: Region) -> None:
    try:
        region.deployment.stop_all()
    finally:
        if region.front is not None:
            region.front.close()


# ---------------------------------------------------------------- database snapshots


@contextmanager
def database_snapshot(database_url: str, folder: Path) -> Iterator[Callable[[], None]]:
    """Copy a region's database now; the yielded ``restore()`` puts that copy back.

    The region's servers must be stopped for both (PostgreSQL copies a database only
    while nobody is connected to it). SQLite: the online backup API (consistent with WAL).
    PostgreSQL: ``CREATE DATABASE ... TEMPLATE``; the copy is dropped afterwards.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        live_path = Path(str(url.database))
        copy_path = folder / f"{live_path.stem}-snapshot.db"
        _sqlite_copy(live_path, copy_path)

        def restore_sqlite() -> None:
            for suffix in ("-wal", "-shm"):
                Path(str(live_path) + suffix).unlink(missing_ok=True)
            live_path.unlink()
            shutil.copyfile(copy_path, live_path)

        yield restore_sqlite
        return
    live_name = str(url.database)
    copy_name = f"{live_name}_snap"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{copy_name}" TEMPLATE "{live_name}"'))

        def restore_postgres() -> None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE "{live_name}" WITH (FORCE)'))
                connection.execute(text(f'CREATE DATABASE "{live_name}" TEMPLATE "{copy_name}"'))

        yield restore_postgres
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{copy_name}" WITH (FORCE)'))
        admin.dispose()


def _sqlite_copy(source: Path, target: Path) -> None:
    reading, writing = sqlite3.connect(source), sqlite3.connect(target)
    try:
        reading.backup(writing)
    finally:
        reading.close()
        writing.close()

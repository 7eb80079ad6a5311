"""Logs never hold a certificate token, an office API token or a full ID number.

A real deployment is served by gunicorn as ``scripts/run`` serves it (``-c
gunicorn.conf.py``, access log on), with every log at DEBUG. A broad mix of traffic then
carries canary values everywhere a client can put them: the office's real API token
(and a mangled copy, a Basic-auth user name, a query parameter, a path segment), holder
ID numbers, and the issued tokens themselves, in bodies, query strings, URL paths,
Referer and User-Agent, plus hostile requests (404, 405, 413, 415, a broken request
line). Then every line the server wrote (access and error log, application logging) and
every line the CLI wrote to stderr is searched for each canary.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from registry.demo import sample_request
from tests.e2e.live import HTTP_TIMEOUT, LiveDeployment, Server, free_port, fresh_database
from tests.privacy.conftest import canary_resident_id

pytestmark = pytest.mark.e2e

OFFICE_CODE = "11310000002418960M"
OTHER_OFFICE_CODE = "11310000MB03195470"
DL_HOLDER = canary_resident_id("310113", "19830415", "729")
PQ_HOLDER = canary_resident_id("310114", "19720611", "186")
QUOTED = canary_resident_id("310107", "19940102", "553")
BOUNDARY = "ecert-canary-boundary"


@dataclass
class Exchange:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    server: Server, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Exchange:
    """One raw HTTP exchange; error statuses are answers too."""
    url = f"{server.url}{path}"
    prepared = urllib.request.Request(url, data=body, headers=headers or {}, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(prepared, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            return Exchange(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Exchange(error.code, error.read())
    except (ConnectionError, urllib.error.URLError):
        # A server may close the connection on an oversized body before reading it.
        return Exchange(0, b"")


def json_request(server: Server, method: str, path: str, value: Any, headers: dict[str, str] | None = None) -> Exchange:
    data = json.dumps(value, ensure_ascii=False).encode("utf-8")
    return request(server, method, path, data, {"Content-Type": "application/json", **(headers or {})})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def multipart(pdf: bytes) -> tuple[bytes, dict[str, str]]:
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="c.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + pdf
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def send_raw(server: Server, data: bytes) -> None:
    """Bytes straight onto a connection (a request gunicorn cannot even parse)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as connection:
        connection.sendall(data)
        with contextlib.suppress(OSError):
            connection.recv(4096)


@dataclass
class Traffic:
    """What the traffic carried, and every log line it caused."""

    secrets: dict[str, str] = field(default_factory=dict)
    server_log: list[str] = field(default_factory=list)
    cli_stderr: list[str] = field(default_factory=list)
    cli_stdout: list[str] = field(default_factory=list)

    def add_token(self, name: str, token: str) -> None:
        self.secrets[f"{name} (full)"] = token
        self.secrets[f"{name} (signature)"] = token.rsplit(".", 1)[1]


def drive(live: LiveDeployment, server: Server, traffic: Traffic, api_token: str, out: Path) -> None:
    auth = bearer(api_token)
    mangled = api_token[:-2] + ("AA" if not api_token.endswith("AA") else "BB")
    traffic.secrets["mangled API token"] = mangled

    request(server, "GET", "/api/v1/catalog")
    dl_body = sample_request("DL")
    dl_body["holder"] = {**dl_body["holder"], "id_number": DL_HOLDER}
    dl = json_request(server, "POST", "/api/v1/certificates", dl_body, {**auth, "Idempotency-Key": "k-1"})
    assert dl.status == 201, dl.body
    pq_body = sample_request("PQ")
    pq_body["holder"] = {**pq_body["holder"], "id_number": PQ_HOLDER}
    pq = json_request(server, "POST", "/api/v1/certificates", pq_body, auth)
    assert pq.status == 201, pq.body
    dl_token, pq_token = dl.json()["token"], pq.json()["token"]
    traffic.add_token("DL token", dl_token)
    traffic.add_token("PQ token", pq_token)
    dl_id, pq_id = dl.json()["id"], pq.json()["id"]

    # Issuance that fails validation, echoing a canary ID number in a bad field.
    bad = {**dl_body, "holder": {**dl_body["holder"], "id_number": DL_HOLDER[:-1] + "0"}}
    json_request(server, "POST", "/api/v1/certificates", bad, auth)
    # The office's own reads and a status change quoting an ID number.
    request(server, "GET", f"/api/v1/certificates/{dl_id}", headers=auth)
    pdf = request(server, "GET", f"/api/v1/certificates/{dl_id}/pdf", headers=auth)
    assert pdf.status == 200
    json_request(
        server,
        "POST",
        f"/api/v1/certificates/{pq_id}/status",
        {"status": "SUSPENDED", "reason": f"号码 {QUOTED}"},
        auth,
    )

    # Failed authentication, with the token in every wrong place.
    request(server, "GET", f"/api/v1/certificates/{dl_id}", headers=bearer(mangled))
    basic = base64.b64encode(f"{api_token}:".encode()).decode()
    request(server, "GET", f"/api/v1/certificates/{dl_id}", headers={"Authorization": f"Basic {basic}"})
    request(server, "GET", f"/api/v1/certificates/{dl_id}?access_token={api_token}")
    request(server, "GET", f"/api/v1/certificates/{api_token}", headers=auth)
    json_request(server, "POST", "/api/v1/certificates", dl_body, {"Authorization": api_token})

    # Verification: genuine, tampered and hostile tokens, in bodies, queries and paths.
    json_request(server, "POST", "/api/v1/verify", {"token": dl_token})
    json_request(server, "POST", "/api/v1/verify", {"qr_text": pq.json()["qr_text"]})
    head, payload, signature = dl_token.split(".")
    json_request(server, "POST", "/api/v1/verify", {"token": f"{head}.{payload}.{signature[::-1]}"})
    json_request(server, "POST", "/api/v1/verify", {"token": f"garbage.{DL_HOLDER}.{api_token}"})
    request(server, "GET", f"/v?t={dl_token}", headers={"User-Agent": f"scanner {pq_token}"})
    request(server, "GET", "/v", headers={"Referer": f"{server.url}/v?t={dl_token}#{pq_token}"})
    request(server, "GET", f"/api/v1/status/{dl_token}")
    request(server, "GET", f"/api/v1/status/{dl_id}")
    request(server, "GET", f"/api/v1/verify?token={dl_token}")  # 405
    request(server, "GET", f"/{pq_token}")  # 404
    request(server, "GET", f"/holders/{DL_HOLDER}")  # 404
    request(server, "POST", "/api/v1/verify", f'{{"token": "{dl_token}"}}'.encode(), {"Content-Type": "text/plain"})
    oversized = json.dumps({"token": dl_token, "padding": "x" * (1024 * 1024)}).encode()
    request(server, "POST", "/api/v1/verify", oversized, {"Content-Type": "application/json"})  # 413
    request(server, "POST", "/api/v1/verify", b'{"token": "a", "token": "b"}', {"Content-Type": "application/json"})
    body, headers = multipart(pdf.body)
    assert request(server, "POST", "/api/v1/verify/pdf", body, headers).status == 200
    request(server, "GET", "/api/v1/log/entries?start=0&end=2")
    send_raw(server, f"GET /v?t={dl_token} HTTP/1.1 {api_token}\r\nHost: x\r\n\r\n".encode())
    send_raw(server, f"NOT-HTTP {dl_token} {DL_HOLDER}\r\n\r\n".encode())

    # The CLI: a second office, verification, a PDF export.
    other = live.flask(
        "office", "add", "--code", OTHER_OFFICE_CODE, "--name", "上海市公安局交通警察总队", "--types", "DL"
    )
    assert other.returncode == 0, other.stderr
    traffic.secrets["second office's API token"] = other.stdout.split()[-1] if other.stdout.split() else "-"
    traffic.cli_stderr += other.stderr.splitlines()
    for args in (
        ("verify", dl_token),
        ("verify", pq.json()["qr_text"], "--json"),
        ("verify", f"{head}.{payload}.{signature[::-1]}"),
        ("export-pdfs", "--office", OFFICE_CODE, "--out", str(out)),
        ("export-pdfs", "--office", OFFICE_CODE, "--out", str(out), "--json"),
    ):
        completed = live.flask(*args)
        traffic.cli_stderr += completed.stderr.splitlines()
        traffic.cli_stdout += completed.stdout.splitlines()


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    for database in fresh_database("sqlite", tmp_path_factory):
        live = LiveDeployment(folder=tmp_path_factory.mktemp("instance"), database_url=database, port=free_port())
        try:
            observed = Traffic(secrets={"holder ID (DL)": DL_HOLDER, "holder ID (PQ)": PQ_HOLDER, "quoted ID": QUOTED})
            for args in (("db", "upgrade"), ("region", "init", "--code", "310000", "--name", "上海市")):
                completed = live.flask(*args)
                assert completed.returncode == 0, completed.stderr
                observed.cli_stderr += completed.stderr.splitlines()
            added = live.flask_json(
                "office", "add", "--code", OFFICE_CODE, "--name", "上海市示范发证中心", "--types", "BL,DL,PQ"
            )
            api_token = added["api_token"]
            observed.secrets["API token"] = api_token
            # As scripts/run serves it, plus every logger at DEBUG.
            server = live.start_server(GUNICORN_CMD_ARGS="--access-logfile - --log-level debug")
            drive(live, server, observed, api_token, tmp_path_factory.mktemp("pdfs"))
            live.stop_all()
            observed.server_log = server.log.read_text(encoding="utf-8", errors="replace").splitlines()
            yield observed
        finally:
            live.stop_all()


def test_the_logs_saw_the_traffic(traffic: Traffic) -> None:
    """The search below is over real logs: the access log and DEBUG records were written,
    and token-shaped path segments were logged as markers, not dropped requests."""
    log = "\n".join(traffic.server_log)

    assert '"POST /api/v1/verify HTTP/1.1" 200' in log
    assert '"POST /api/v1/verify HTTP/1.1" 413' in log
    assert '"GET /api/v1/status/[token] HTTP/1.1" 400' in log  # longer than any identifier
    assert '"GET /api/v1/certificates/[api-token] HTTP/1.1" 404' in log
    assert '"GET /holders/[id-number] HTTP/1.1" 404' in log
    assert '"GET /v HTTP/1.1" 200' in log
    assert "Invalid HTTP request line: 'NOT-HTTP [token] [id-number]'" in log
    assert "[DEBUG]" in log
    assert len(traffic.secrets) >= 9


@pytest.mark.parametrize("stream", ["server log", "CLI stderr", "CLI stdout"])
def test_no_log_line_holds_a_secret(traffic: Traffic, stream: str) -> None:
    lines = {
        "server log": traffic.server_log,
        "CLI stderr": traffic.cli_stderr,
        "CLI stdout": traffic.cli_stdout,
    }[stream]

    leaks = [f"{name}: {line[:200]}" for line in lines for name, secret in traffic.secrets.items() if secret in line]

    assert leaks == []

"""A real deployment for end-to-end tests: its own folder, environment and database,
set up through its CLI and served by gunicorn on loopback.

A deployment talks to the test only through its environment, its command line and
HTTP. Every wait is bounded; servers a deployment starts are stopped by ``stop_all``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.databases import empty_postgres_database

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
# How production runs it (scripts/run): the settings that keep secrets out of the logs.
GUNICORN_CONFIG = ("-c", str(REPO / "gunicorn.conf.py"))
COMMAND_TIMEOUT = 60
STARTUP_TIMEOUT = 30
HTTP_TIMEOUT = 10
GRACEFUL_TIMEOUT = ("--graceful-timeout", "5")


def clean_environment() -> dict[str, str]:
    """The test's environment without any ECERT_* or FLASK_* setting leaking in."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("ECERT_", "FLASK_"))}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m flask --app app ARGS`` in the repository, with ``env`` only."""
    return subprocess.run(
        [PYTHON, "-m", "flask", "--app", "app", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def last_json_line(completed: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = completed.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {completed.stderr}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]


@dataclass
class HttpAnswer:
    status: int
    body: Any
    headers: dict[str, str]


def http(method: str, url: str, body: Any = None, token: str | None = None) -> HttpAnswer:
    """One HTTP exchange; error statuses are answers too, not exceptions."""
    assert url.startswith("http://127.0.0.1:"), url
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            return HttpAnswer(response.status, json.loads(response.read() or b"null"), dict(response.headers))
    except urllib.error.HTTPError as error:
        raw = error.read()
        return HttpAnswer(error.code, json.loads(raw) if raw else None, dict(error.headers))


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            # gunicorn runs in its own session: take its workers down with it.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)


@dataclass
class LiveDeployment:
    """One region's deployment: a folder, an environment, a port, and the servers started."""

    folder: Path
    database_url: str
    port: int
    passphrase: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    servers: list[Server] = field(default_factory=list)

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self, **changes: str | None) -> dict[str, str]:
        env = clean_environment()
        env.update(
            ECERT_DATABASE_URL=self.database_url,
            ECERT_KEY_PASSPHRASE=self.passphrase,
            ECERT_PUBLIC_URL=self.public_url,
            ECERT_INSTANCE_PATH=str(self.folder),
            # Servers here live for a whole module; tests that want rate limits set them.
            ECERT_VERIFY_RATE_LIMIT="off",
            ECERT_PUBLIC_RATE_LIMIT="off",
            ECERT_AUTH_FAILURE_LIMIT="off",
        )
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def flask(self, *args: str, **env_changes: str | None) -> subprocess.CompletedProcess[str]:
        return run_flask(self.environment(**env_changes), *args)

    def flask_json(self, *args: str) -> dict[str, Any]:
        completed = self.flask(*args, "--json")
        assert completed.returncode == 0, completed.stderr
        return last_json_line(completed)

    def spawn_server(self, port: int | None = None, *, workers: int = 2, **env_changes: str | None) -> Server:
        """gunicorn with ``workers`` workers on ``port`` (default: the public URL's), not yet
        answering. One worker is one process, so one set of in-process caches."""
        port = port or self.port
        log = self.folder / f"gunicorn-{len(self.servers)}.log"
        options = ("--workers", str(workers), *GRACEFUL_TIMEOUT, "--bind", f"127.0.0.1:{port}")
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [GUNICORN, *GUNICORN_CONFIG, *options, "app:create_app()"],
                cwd=REPO,
                env=self.environment(**env_changes),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(process, port, log)
        self.servers.append(server)
        return server

    def start_server(self, port: int | None = None, *, workers: int = 2, **env_changes: str | None) -> Server:
        """A server that answers HTTP, or the test fails (bounded wait)."""
        server = self.spawn_server(port, workers=workers, **env_changes)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(f"gunicorn exited with {server.process.returncode}:\n{server.log_tail()}")
            try:
                if http("GET", f"{server.url}/api/v1/catalog").status == 200:
                    return server
            except OSError:
                pass
            time.sleep(0.1)
        server.kill()
        pytest.fail(f"gunicorn did not answer within {STARTUP_TIMEOUT}s:\n{server.log_tail()}")

    def stop_all(self) -> None:
        for server in self.servers:
            try:
                server.stop()
            finally:
                server.kill()


def fresh_database(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database of ``kind`` (``sqlite`` or ``postgresql``): nothing but
    ``db upgrade`` will create its tables. A PostgreSQL database is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'e2e.db'}"
    else:
        yield from empty_postgres_database("ecert_e2e")

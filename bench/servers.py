"""Servers on loopback for the HTTP benchmarks: gunicorn started as production starts it,
its workers' memory read from /proc, and load driven by ``wrk``.

Only loopback addresses are ever a target; every wait and every load run is bounded.
(tests/e2e/live.py starts deployments for tests; it leans on pytest, which the
benchmarks' environment does not install, hence this small launcher.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
STARTUP_TIMEOUT = 60
COMMAND_TIMEOUT = 120
# Rotates over the request bodies in a file, one JSON body a line (each wrk thread starts
# at its own offset, so two threads do not send the same sequence).
WRK_SCRIPT = """
local bodies = {}
local next_body = 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  next_body = math.random(#bodies)
end
function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[next_body])
end
"""


def post_json(url: str, body: Any, token: str | None = None) -> tuple[int, Any]:
    """One POST on loopback; an error status is an answer, not an exception."""
    assert url.startswith("http://127.0.0.1:"), url
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def get_json(url: str) -> Any:
    assert url.startswith("http://127.0.0.1:"), url
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Gunicorn:
    """A gunicorn master and its workers, and how long it took to answer its first request."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    cold_start: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        """The worker processes' ids (the master's children, read from /proc)."""
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    children.append(int(entry.name))
        return sorted(children)

    def worker_rss_mib(self) -> list[float]:
        return [rss_mib(pid) for pid in self.workers()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: workers too
                self.process.wait(timeout=15)


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")


def start_gunicorn(
    app: str, env: dict[str, str], log: Path, probe_path: str, probe_body: Any, workers: int = 2
) -> Gunicorn:
    """gunicorn ``app`` with production's config and ``workers`` sync workers on a free
    loopback port; returns once ``probe_body`` POSTed to ``probe_path`` is answered 200.

    ``cold_start`` is the time from spawning the master to that first 200.
    """
    port = free_port()
    command = [GUNICORN, "-c", str(REPO / "gunicorn.conf.py"), "--workers", str(workers)]
    command += ["--graceful-timeout", "5", "--bind", f"127.0.0.1:{port}", app]
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Gunicorn(process, port, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if post_json(server.url + probe_path, probe_body)[0] == 200:
                server.cold_start = time.perf_counter() - started
                return server
        except OSError:
            time.sleep(0.02)
    server.stop()
    raise RuntimeError(f"gunicorn did not answer within {STARTUP_TIMEOUT}s:\n{log.read_text()[-3000:]}")


def ensure_wrk() -> str:
    """The ``wrk`` binary (scripts/bench installs Debian's package when it is missing)."""
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: run ./scripts/bench, or apt-get install -y wrk")
    return found


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx answers and socket errors


def run_wrk(url: str, bodies: list[Any], *, connections: int, threads: int, seconds: int) -> Load:
    """POST ``bodies`` in rotation to ``url`` for ``seconds`` with ``wrk``."""
    assert url.startswith("http://127.0.0.1:"), url
    with tempfile.TemporaryDirectory() as folder:
        script, lines = Path(folder) / "post.lua", Path(folder) / "bodies.jsonl"
        script.write_text(WRK_SCRIPT)
        lines.write_text("".join(json.dumps(body, separators=(",", ":")) + "\n" for body in bodies))
        command = [ensure_wrk(), "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
        command += ["--timeout", "10s", "-s", str(script), url, "--", str(lines)]
        output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> Load:
    def number(pattern: str) -> str:
        found = re.search(pattern, output)
        if found is None:
            raise ValueError(f"wrk output lacks {pattern!r}:\n{output}")
        return found.group(1)

    def milliseconds(text: str) -> float:
        value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses: ([0-9]+)", output)
    socket_errors = re.search(
        r"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Load(
        requests_per_second=float(number(r"Requests/sec:\s+([0-9.]+)")),
        p50_ms=milliseconds(number(r"\n\s+50%\s+(\S+)")),
        p99_ms=milliseconds(number(r"\n\s+99%\s+(\S+)")),
        requests=int(number(r"([0-9]+) requests in")),
        errors=errors,
    )

"""The supply chain: every dependency pinned, no python-jose, and the audit CI runs.

``.ci/run`` runs ``scripts/audit`` (pip-audit over the lock files) before the tests. The
audit's verdict depends on a vulnerability feed; here a local OSV-compatible feed serving
one real advisory (PYSEC-2023-62, Flask < 2.2.5) proves that the command CI runs fails on a
known vulnerability and passes on our pinned versions.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK_FILES = ("requirements.txt", "requirements-dev.txt")
ADVISORY = json.loads((Path(__file__).parent / "PYSEC-2023-62.json").read_text(encoding="utf-8"))
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*$")
# Tools that create the virtualenv itself, not dependencies of the project.
INSTALLER = frozenset({"pip", "setuptools", "wheel"})


def pins(lock_file: str) -> dict[str, str]:
    """``name → version`` of a lock file; every requirement line must be ``name==version``."""
    pinned: dict[str, str] = {}
    for line in (ROOT / lock_file).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{lock_file}: not pinned to one version: {line!r}"
        pinned[canonicalize_name(match[1])] = match[2]
    return pinned


def direct_requirements(in_file: str) -> list[Requirement]:
    lines = (ROOT / in_file).read_text(encoding="utf-8").splitlines()
    return [Requirement(line) for line in map(str.strip, lines) if line and not line.startswith(("#", "-"))]


@pytest.mark.parametrize("lock_file", LOCK_FILES)
def test_every_dependency_is_pinned_to_one_version(lock_file: str) -> None:
    assert pins(lock_file)


@pytest.mark.parametrize(
    ("in_file", "lock_file"), [("requirements.in", LOCK_FILES[0]), ("requirements-dev.in", LOCK_FILES[1])]
)
def test_lock_files_hold_every_direct_dependency_at_its_stated_version(in_file: str, lock_file: str) -> None:
    locked = pins(lock_file)
    for requirement in direct_requirements(in_file):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is missing from {lock_file}: run scripts/lock"
        assert requirement.specifier.contains(Version(locked[name])), f"{lock_file} pins {name}=={locked[name]}"


def test_the_runtime_lock_is_the_dev_lock_restricted_to_runtime_packages() -> None:
    runtime, dev = pins(LOCK_FILES[0]), pins(LOCK_FILES[1])
    assert {name: dev.get(name) for name in runtime} == runtime


def test_the_virtualenv_holds_exactly_the_locked_versions() -> None:
    locked = pins("requirements-dev.txt")
    installed = {canonicalize_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}
    unlocked = {name: version for name, version in installed.items() if name not in locked and name not in INSTALLER}
    assert not unlocked, f"installed but not in the lock file: {unlocked}"
    wrong = {name: (installed.get(name), version) for name, version in locked.items() if installed.get(name) != version}
    assert not wrong, f"(installed, locked) differ: {wrong}"


def test_python_jose_is_neither_locked_nor_installed() -> None:
    # python-jose has had algorithm-confusion bugs and is unmaintained; PyJWT is ours.
    for lock_file in LOCK_FILES:
        assert not {"python-jose", "jose"} & pins(lock_file).keys()
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("python-jose")


@pytest.fixture(scope="module")
def osv_feed() -> Iterator[str]:
    """An OSV ``/v1/query`` endpoint that knows one advisory."""

    class Feed(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            package, version = query["package"]["name"], Version(query["version"])
            affected = package == "flask" and (
                version < Version("2.2.5") or Version("2.3.0") <= version < Version("2.3.2")
            )
            body = json.dumps({"vulns": [ADVISORY]} if affected else {}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    server.shutdown()
    server.server_close()


def audit(requirements: Path, osv_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "audit"), str(requirements)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(requirements.parent), "ECERT_AUDIT_OSV_URL": osv_url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_audit_fails_on_a_known_vulnerability(osv_feed: str, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("flask==2.2.4\nwerkzeug==3.1.9\n", encoding="utf-8")
    completed = audit(requirements, osv_feed)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "PYSEC-2023-62" in completed.stdout
    assert "2.2.5" in completed.stdout  # the fix version is named


def test_the_audit_passes_our_pinned_runtime(osv_feed: str, tmp_path: Path) -> None:
    completed = audit(ROOT / "requirements.txt", osv_feed)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "No known vulnerabilities found" in completed.stdout + completed.stderr

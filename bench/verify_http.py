"""Verification over HTTP under gunicorn, ours beside a bare Flask + PyJWT app.

    ./scripts/bench verify_http [--certificates 60] [--rounds 3] [--seconds 5]
                                [--connections 8] [--threads 1] [--database-url URL]

Our deployment is set up as an administrator would (``flask db upgrade``, ``region
init``, ``office add``), served by gunicorn with production's config and 2 sync workers,
rate limits off; certificates are issued over its API. The baseline (bench/bare_app.py)
runs under the same gunicorn settings and checks the same tokens' Ed25519 signatures
with the office's public key. ``wrk`` POSTs ``{"token": ...}`` to each in turn, rotating
over the tokens, with the same connections, threads and duration, rounds interleaved
(the order swapped each round); figures are medians over rounds. Also the memory of each
worker (VmRSS) after warm-up and after the load. SQLite by default; ``--database-url``
names a PostgreSQL server to run on a fresh database there (dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fixtures import PUBLIC_URL, TYPES, bench_database
from bench.servers import COMMAND_TIMEOUT, REPO, Gunicorn, Load, get_json, post_json, run_wrk, start_gunicorn
from registry.demo import DEMO_OFFICE_CODE, DEMO_OFFICE_NAME, sample_request

OURS = ("app:create_app()", "/api/v1/verify")
BARE = ("bench.bare_app:create_app()", "/verify")
WARM_UP_SECONDS = 2


@dataclass
class Region:
    """A deployment's folder and environment, its office's API token and public key."""

    folder: Path
    env: dict[str, str]
    api_token: str = ""

    def flask(self, *args: str) -> dict[str, Any]:
        """Run ``flask --app app ARGS``; ``--json`` among them makes its last line the answer."""
        command = [sys.executable, "-m", "flask", "--app", "app", *args]
        completed = subprocess.run(
            command, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
        if completed.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed: {completed.stderr}")
        lines = completed.stdout.strip().splitlines()
        return json.loads(lines[-1]) if "--json" in args else {}

    def start(self, log_name: str, probe: str = "x") -> Gunicorn:
        """Our app under gunicorn, answering ``{"token": probe}`` (a malformed one by default)."""
        return start_gunicorn(OURS[0], self.env, self.folder / log_name, OURS[1], {"token": probe})

    def start_bare(self, public_jwk: dict[str, Any], log_name: str, probe: str = "x") -> Gunicorn:
        env = {**self.env, "BENCH_PUBLIC_JWK": json.dumps(public_jwk)}
        return start_gunicorn(BARE[0], env, self.folder / log_name, BARE[1], {"token": probe})


@contextmanager
def prepared_region(database_url: str | None) -> Iterator[Region]:
    """A region with one office (every reference type), set up through the CLI."""
    with tempfile.TemporaryDirectory() as folder, bench_database(database_url, folder) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ECERT_", "FLASK_"))}
        env.update(
            ECERT_DATABASE_URL=url,
            ECERT_KEY_PASSPHRASE=secrets.token_urlsafe(24),
            ECERT_PUBLIC_URL=PUBLIC_URL,
            ECERT_INSTANCE_PATH=folder,
            ECERT_VERIFY_RATE_LIMIT="off",
            ECERT_PARTNER_RATE_LIMIT="off",
            ECERT_PUBLIC_RATE_LIMIT="off",
            ECERT_AUTH_FAILURE_LIMIT="off",
        )
        region = Region(Path(folder), env)
        region.flask("db", "upgrade")
        region.flask("region", "init", "--code", "310000", "--name", "上海市", "--json")
        types = ",".join(TYPES)
        office = region.flask(
            "office", "add", "--code", DEMO_OFFICE_CODE, "--name", DEMO_OFFICE_NAME, "--types", types, "--json"
        )
        region.api_token = office["api_token"]
        yield region


def issue_over_http(server: Gunicorn, api_token: str, count: int) -> list[str]:
    """``count`` certificates issued through ``POST /api/v1/certificates``, types in turn."""
    tokens = []
    for i in range(count):
        status, body = post_json(f"{server.url}/api/v1/certificates", sample_request(TYPES[i % len(TYPES)]), api_token)
        if status != 201:
            raise RuntimeError(f"issuance answered {status}: {body}")
        tokens.append(body["token"])
    return tokens


def office_public_jwk(server: Gunicorn, tokens: list[str]) -> dict[str, Any]:
    """The one office key that signed ``tokens``, from the region's JWKS."""
    kids = {json.loads(_b64(token.split(".")[0]))["kid"] for token in tokens}
    keys = [k for k in get_json(f"{server.url}/.well-known/jwks.json")["keys"] if k["kid"] in kids]
    if len(keys) != 1:
        raise RuntimeError(f"expected one signing key, found {len(keys)}")
    return dict(keys[0])


def _b64(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def check_verdicts(url: str, tokens: list[str]) -> None:
    """Every token is answered VALID: the load measures real verifications."""
    for token in tokens:
        status, body = post_json(url, {"token": token})
        if status != 200 or body.get("verdict") != "VALID":
            raise RuntimeError(f"{url} answered {status} {body}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certificates", type=int, default=60, help="distinct tokens to rotate over")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="duration of each wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server (default: SQLite)")
    options = parser.parse_args()

    with prepared_region(options.database_url) as region:
        ours = region.start("ours.log")
        bare: Gunicorn | None = None
        try:
            tokens = issue_over_http(ours, region.api_token, options.certificates)
            bare = region.start_bare(office_public_jwk(ours, tokens), "bare.log")
            servers = {"ours": (ours, ours.url + OURS[1]), "bare": (bare, bare.url + BARE[1])}
            bodies = [{"token": token} for token in tokens]
            for _server, url in servers.values():
                check_verdicts(url, tokens)
                run_wrk(url, bodies, connections=options.connections, threads=1, seconds=WARM_UP_SECONDS)
            warm_rss = {name: server.worker_rss_mib() for name, (server, _url) in servers.items()}
            loads: dict[str, list[Load]] = {"ours": [], "bare": []}
            for round_number in range(options.rounds):
                order = ["ours", "bare"] if round_number % 2 == 0 else ["bare", "ours"]
                for name in order:
                    loads[name].append(
                        run_wrk(
                            servers[name][1],
                            bodies,
                            connections=options.connections,
                            threads=options.threads,
                            seconds=options.seconds,
                        )
                    )
            loaded_rss = {name: server.worker_rss_mib() for name, (server, _url) in servers.items()}
            report(options, loads, warm_rss, loaded_rss, {name: s.cold_start for name, (s, _u) in servers.items()})
        finally:
            ours.stop()
            if bare is not None:
                bare.stop()


def report(
    options: argparse.Namespace,
    loads: dict[str, list[Load]],
    warm_rss: dict[str, list[float]],
    loaded_rss: dict[str, list[float]],
    cold_start: dict[str, float],
) -> None:
    database = "PostgreSQL" if options.database_url else "SQLite"
    print(
        f"verification over HTTP: gunicorn, 2 sync workers, {database}; wrk -t{options.threads} "
        f"-c{options.connections} -d{options.seconds}s, {options.certificates} tokens in rotation, "
        f"{options.rounds} interleaved rounds (medians)"
    )
    print(f"{'':<6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}{'errors':>8}   worker RSS MiB: warm → loaded")
    for name, runs in loads.items():
        rss = ", ".join(f"{a:.0f} → {b:.0f}" for a, b in zip(warm_rss[name], loaded_rss[name], strict=False))
        print(
            f"{name:<6}{statistics.median(r.requests_per_second for r in runs):>9.0f}"
            f"{statistics.median(r.p50_ms for r in runs):>9.1f}{statistics.median(r.p99_ms for r in runs):>9.1f}"
            f"{sum(r.requests for r in runs):>10}{sum(r.errors for r in runs):>8}   {rss}"
        )
    ratios = [o.requests_per_second / b.requests_per_second for o, b in zip(loads["ours"], loads["bare"], strict=True)]
    print(
        f"ours/bare requests/s: {statistics.median(ratios):.2f}x (per round {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"goal >= 0.7x)"
    )
    print(
        f"memory per worker after load: ours {statistics.median(loaded_rss['ours']):.0f} MiB, "
        f"bare {statistics.median(loaded_rss['bare']):.0f} MiB; first 200 after spawn: ours "
        f"{cold_start['ours']:.2f} s, bare {cold_start['bare']:.2f} s (bench/startup.py takes medians)"
    )


if __name__ == "__main__":
    main()

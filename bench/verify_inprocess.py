"""In-process verification of our own tokens, beside raw PyJWT and raw Ed25519.

    ./scripts/bench verify_inprocess [--certificates 300] [--rounds 5] [--database-url URL]

A real registry (a region, the demo office, ``--certificates`` issued certificates) on
SQLite and on a fresh PostgreSQL database (``--database-url``, default
ECERT_BENCH_POSTGRES_URL or the local test server; ``--database-url sqlite`` for SQLite
only). Single: each token verified as ``POST /api/v1/verify`` does (a read session and
``verify.live.live_verifier`` with the process's registry-view cache), against ``jwt.decode(token, key, algorithms=["EdDSA"])`` of the
same token. Batch: ``Verifier.verify_many`` over all tokens (one read session, as
``POST /api/v1/verify/batch``) per token,
against the raw ``Ed25519PublicKey.verify(signature, signing_input)`` per token (inputs
parsed beforehand). One process, one core; rounds interleaved; medians and ratios.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.fixtures import POSTGRES_URL, TYPES, bench_database, init_bench_region, open_deployment
from deployment import Deployment
from registry.demo import sample_request
from registry.issuance import issue_certificate
from registry.models import SigningKey
from registry.requests import parse_issuance_request
from verify.report import VerificationReport
from verify.verifier import Verifier


def issue_tokens(deployment: Deployment, count: int) -> tuple[list[str], Ed25519PublicKey]:
    """``count`` certificates issued in a fresh region; their tokens and the office key."""
    now = datetime.now(UTC)
    with deployment.session() as session:
        office = init_bench_region(session, deployment, now)
        tokens = [
            issue_certificate(
                session,
                deployment.keyring,
                office,
                parse_issuance_request(sample_request(TYPES[i % len(TYPES)])),
                now=now,
                actor="bench",
            ).certificate.token
            for i in range(count)
        ]
        session.commit()
        (jwk,) = session.scalars(select(SigningKey.public_jwk)).all()
    key = jwt.PyJWK(jwk, algorithm="EdDSA").key
    assert isinstance(key, Ed25519PublicKey)
    return tokens, key


def request_verifier(deployment: Deployment, session: Session) -> Verifier:
    """The verifier ``POST /api/v1/verify`` builds: the process's registry-view cache."""
    return deployment.verifier(session, now=datetime.now(UTC), actor="bench")


def verify_one(deployment: Deployment, token: str) -> VerificationReport:
    """As a verification request does: its own read session and verifier."""
    with deployment.read_session() as session:
        return request_verifier(deployment, session).verify(token)


def verify_all(deployment: Deployment, tokens: list[str]) -> list[VerificationReport]:
    """As ``POST /api/v1/verify/batch`` does: one read session, ``verify_many``."""
    with deployment.read_session() as session:
        return request_verifier(deployment, session).verify_many(tokens)


def per_second(count: int, run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def measure(deployment: Deployment, count: int, rounds: int) -> dict[str, float]:
    tokens, key = issue_tokens(deployment, count)
    assert all(verify_one(deployment, t).code == "OK" for t in tokens), "every token must verify VALID"
    assert all(r.code == "OK" for r in verify_all(deployment, tokens))
    raw = [(_unb64(t.rsplit(".", 1)[1]), t.rsplit(".", 1)[0].encode("ascii")) for t in tokens]

    def decode_all() -> None:
        for token in tokens:
            jwt.decode(token, key, algorithms=["EdDSA"])

    def raw_all() -> None:
        for signature, signing_input in raw:
            key.verify(signature, signing_input)

    runs: dict[str, list[float]] = {"ours": [], "pyjwt": [], "ours batch": [], "raw Ed25519": []}
    for _ in range(rounds):
        runs["ours"].append(per_second(count, lambda: [verify_one(deployment, t) for t in tokens]))
        runs["pyjwt"].append(per_second(count, decode_all))
        runs["ours batch"].append(per_second(count, lambda: verify_all(deployment, tokens)))
        runs["raw Ed25519"].append(per_second(count, raw_all))
    return {name: statistics.median(values) for name, values in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certificates", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=POSTGRES_URL, help="PostgreSQL server, or 'sqlite' for SQLite only")
    options = parser.parse_args()

    servers = [None] if options.database_url.startswith("sqlite") else [None, options.database_url]
    print(
        f"in-process verification: {options.certificates} real tokens, {options.rounds} interleaved rounds "
        "(medians, one core); single = a read session and the request's verifier per token, "
        "batch = verify_many over all"
    )
    print(
        f"{'database':<11}{'ours/s':>9}{'jwt.decode/s':>14}{'ratio':>8}"
        f"{'ours batch/s':>14}{'raw Ed25519/s':>15}{'ratio':>8}"
    )
    for server in servers:
        with tempfile.TemporaryDirectory() as folder, bench_database(server, folder) as url:
            deployment = open_deployment(url, folder)
            try:
                rates = measure(deployment, options.certificates, options.rounds)
            finally:
                deployment.dispose()
        print(
            f"{'PostgreSQL' if server else 'SQLite':<11}{rates['ours']:>9.0f}{rates['pyjwt']:>14.0f}"
            f"{rates['ours'] / rates['pyjwt']:>7.2f}x{rates['ours batch']:>14.0f}{rates['raw Ed25519']:>15.0f}"
            f"{rates['ours batch'] / rates['raw Ed25519']:>7.2f}x"
        )
    print("goals: ours/jwt.decode >= 0.7x; ours batch/raw Ed25519 >= 0.5x")


if __name__ == "__main__":
    main()

"""Verification test helpers: genuine certificates issued through the API, a verifier on
the fixed clock, and hostile tokens built by hand and signed with real keys."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from deployment import Deployment
from registry.demo import sample_request
from registry.models import Region, SigningKey
from registry.offices import add_office
from signing.algorithms import PrivateKey, algorithm_of, sign
from signing.keystore import KeyRing
from verify.report import VerificationReport
from verify.verifier import Verifier

LEEWAY = timedelta(seconds=60)


# ---------------------------------------------------------------- token surgery


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def compact_json(value: Any) -> bytes:
    """JSON as issuance writes it: no spaces, UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _as_bytes(part: dict[str, Any] | bytes | str) -> bytes:
    if isinstance(part, dict):
        return compact_json(part)
    if isinstance(part, str):
        return part.encode("utf-8")
    return part


def decode_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Header, payload and signature of a well-formed token."""
    header, payload, signature = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload)), unb64url(signature)


def with_signature(
    header: dict[str, Any] | bytes | str, payload: dict[str, Any] | bytes | str, signature: bytes
) -> str:
    """A token from the given parts and signature bytes (dicts are serialised compactly)."""
    return f"{b64url(_as_bytes(header))}.{b64url(_as_bytes(payload))}.{b64url(signature)}"


def forge(header: dict[str, Any] | bytes | str, payload: dict[str, Any] | bytes | str, key: PrivateKey) -> str:
    """A token over exactly these header and payload bytes, really signed by ``key``.

    The signature uses the key's own algorithm, whatever the header claims.
    """
    signing_input = f"{b64url(_as_bytes(header))}.{b64url(_as_bytes(payload))}"
    signature = sign(algorithm_of(key), key, signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def issue(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    """Issue a sample certificate through the real API; returns the 201 body."""

    def issue_sample(type_code: str, issuer: Any, **changes: Any) -> dict[str, Any]:
        response = client.post("/api/v1/certificates", json=sample_request(type_code, **changes), headers=issuer.auth)
        assert response.status_code == 201, response.json
        return response.json  # type: ignore[no-any-return]

    return issue_sample


@pytest.fixture
def change_status(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    """Change a certificate's status through the real API; returns the 200 body."""

    def change(issuer: Any, certificate_id: str, status: str, reason: str = "检查发现问题") -> dict[str, Any]:
        response = client.post(
            f"/api/v1/certificates/{certificate_id}/status",
            json={"status": status, "reason": reason},
            headers=issuer.auth,
        )
        assert response.status_code == 200, response.json
        return response.json  # type: ignore[no-any-return]

    return change


@pytest.fixture
def verify(deployment: Deployment, clock: Any) -> Callable[[str], VerificationReport]:
    """Verify at the clock's moment, on a fresh reading session that sees every commit so far."""

    def run(token: str) -> VerificationReport:
        with deployment.read_session() as fresh:
            return Verifier(fresh, now=clock(), leeway=LEEWAY).verify(token)

    return run


@pytest.fixture
def private_key(deployment: Deployment, keyring: KeyRing) -> Callable[[str], PrivateKey]:
    """The real private key of one of our offices' signing keys, by kid.

    Read on a short-lived reading session, so no transaction stays open across the test.
    """

    def load(kid: str) -> PrivateKey:
        with deployment.read_session() as fresh:
            row = fresh.get(SigningKey, kid)
            assert row is not None, kid
            return keyring.private_key(kid, lambda: row.private_key)

    return load


@dataclass(frozen=True)
class Genuine:
    """A genuine DL certificate of ``office``, a genuine PQ one, and the keys an attacker might hold."""

    token: str
    header: dict[str, Any]
    payload: dict[str, Any]
    signature: bytes
    other_token: str
    office_key: PrivateKey
    kid: str
    root_key: PrivateKey
    root_kid: str


@pytest.fixture
def genuine(
    issue: Callable[..., dict[str, Any]],
    office: Any,
    region: Region,
    keyring: KeyRing,
    private_key: Callable[[str], PrivateKey],
) -> Genuine:
    token = issue("DL", office)["token"]
    header, payload, signature = decode_parts(token)
    return Genuine(
        token=token,
        header=header,
        payload=payload,
        signature=signature,
        other_token=issue("PQ", office)["token"],
        office_key=private_key(office.kid),
        kid=office.kid,
        root_key=keyring.private_key(region.root_kid, lambda: region.root_private_key),
        root_kid=region.root_kid,
    )


ES256_OFFICE_CODE = "12310000425009360R"


@pytest.fixture
def es256_office(office: Any, session: Session, keyring: KeyRing, clock: Any) -> Any:
    """A further office, for DL, whose key is ES256 (P-256) rather than the default EdDSA."""
    created, key, api_token = add_office(
        session,
        keyring,
        credit_code=ES256_OFFICE_CODE,
        name="上海市浦东新区示范发证中心",
        types=["DL"],
        algorithm="ES256",
        now=clock(),
        actor="test",
    )
    session.commit()
    # The shared OfficeFixture shape (tests/conftest.py), taken from the office fixture.
    return type(office)(office=created, kid=key.kid, token=api_token, code=created.credit_code)

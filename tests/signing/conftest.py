"""Keys for the signing tests: real keys, generated once per test session."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signing.algorithms import PrivateKey, generate_private_key


@pytest.fixture(scope="session")
def ed25519_key() -> ed25519.Ed25519PrivateKey:
    key = generate_private_key("EdDSA")
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key


@pytest.fixture(scope="session")
def p256_key() -> ec.EllipticCurvePrivateKey:
    key = generate_private_key("ES256")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@pytest.fixture(scope="session", params=["EdDSA", "ES256"])
def signing_key(
    request: pytest.FixtureRequest, ed25519_key: ed25519.Ed25519PrivateKey, p256_key: ec.EllipticCurvePrivateKey
) -> PrivateKey:
    """Each test that takes it runs once per algorithm ecert signs with."""
    return ed25519_key if request.param == "EdDSA" else p256_key

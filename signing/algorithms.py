"""The signature algorithms ecert uses, and signature checks through PyJWT.

Only EdDSA (Ed25519) and ES256 (P-256, SHA-256, r||s signatures) exist here. The
algorithm used to check a token always comes from the key's registration, never from
the token itself (RFC 8725 §3.1).
"""

from __future__ import annotations

from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import get_default_algorithms

from signing.errors import UnsupportedAlgorithm

Algorithm = Literal["EdDSA", "ES256"]
ALGORITHMS: Final[tuple[Algorithm, ...]] = ("EdDSA", "ES256")
DEFAULT_ALGORITHM: Final[Algorithm] = "EdDSA"

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey

_PYJWT = get_default_algorithms()


def require_algorithm(name: str) -> Algorithm:
    """Return ``name`` as an :data:`Algorithm`.

    Raises:
        UnsupportedAlgorithm: ``name`` is not one of :data:`ALGORITHMS`.
    """
    for algorithm in ALGORITHMS:
        if name == algorithm:
            return algorithm
    raise UnsupportedAlgorithm(f"algorithm {name!r} is not allowed; use one of {', '.join(ALGORITHMS)}")


def generate_private_key(algorithm: Algorithm) -> PrivateKey:
    """Make a fresh private key for ``algorithm`` from the operating system's CSPRNG."""
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def algorithm_of(key: PrivateKey | PublicKey) -> Algorithm:
    """The algorithm a key is registered for, from its type.

    Raises:
        UnsupportedAlgorithm: the key is neither Ed25519 nor P-256.
    """
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "EdDSA"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise UnsupportedAlgorithm(f"unsupported key type {type(key).__name__}")


def sign(algorithm: Algorithm, private_key: PrivateKey, message: bytes) -> bytes:
    """Sign ``message`` with PyJWT's implementation of ``algorithm``.

    Raises:
        UnsupportedAlgorithm: the key does not belong to ``algorithm``.
    """
    if algorithm_of(private_key) != algorithm:
        raise UnsupportedAlgorithm(f"key is not an {algorithm} key")
    return bytes(_PYJWT[algorithm].sign(message, private_key))


def verify_signature(algorithm: Algorithm, public_key: PublicKey, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``message`` verifies under ``public_key`` with ``algorithm``.

    Never raises for a bad signature: any malformed signature (wrong length, values out
    of range, S >= L for Ed25519) is simply not valid.

    Raises:
        UnsupportedAlgorithm: ``public_key`` does not belong to ``algorithm``.
    """
    if algorithm_of(public_key) != algorithm:
        raise UnsupportedAlgorithm(f"key is not an {algorithm} key")
    if algorithm == "ES256" and len(signature) != 64:
        # RFC 7518 §3.4: exactly 32-byte R followed by 32-byte S.
        return False
    try:
        return bool(_PYJWT[algorithm].verify(message, public_key, signature))
    except ValueError:
        return False

"""Public keys as JWKs (RFC 7517/8037), their RFC 7638 thumbprints, and key ids."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signing.algorithms import PublicKey, algorithm_of
from signing.errors import KeyStorageError

# A kid is this many characters of the key's RFC 7638 thumbprint: 48 bits. Keys are
# looked up per region, where a collision needs some 16 million keys to become likely
# (and the kid is the primary key, so one would fail loudly, never silently). Every
# byte counts: the token travels in a QR code. The full thumbprint stays available as
# the key's fingerprint.
KID_LENGTH = 8


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url written by :func:`b64url` (lenient; for trusted data)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk(key: PublicKey) -> dict[str, str]:
    """The key's public JWK with only its required members (RFC 7638 §3.2)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    algorithm_of(key)  # refuses anything but P-256
    assert isinstance(key, ec.EllipticCurvePublicKey)
    numbers = key.public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }


def thumbprint(key: PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the key's fingerprint."""
    canonical = json.dumps(public_jwk(key), separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def key_id(key: PublicKey) -> str:
    """The ``kid`` ecert gives a key: the first :data:`KID_LENGTH` characters of its thumbprint."""
    return thumbprint(key)[:KID_LENGTH]


def load_public_jwk(jwk: dict[str, Any]) -> PublicKey:
    """Rebuild a public key from a JWK written by :func:`public_jwk`.

    Raises:
        KeyStorageError: the JWK is not an Ed25519 or P-256 public key.
    """
    if not isinstance(jwk, dict):
        raise KeyStorageError("a public JWK is a JSON object")
    key: PublicKey
    try:
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            key = ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
        elif jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            x = int.from_bytes(b64url_decode(jwk["x"]), "big")
            y = int.from_bytes(b64url_decode(jwk["y"]), "big")
            key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        else:
            raise KeyStorageError("public JWK is neither Ed25519 nor P-256")
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise KeyStorageError(f"unreadable public JWK: {error}") from error
    # One spelling per key: padding, '+/', short or over-long coordinates and values
    # beyond the field size all decode to some key, but only the canonical form is accepted.
    canonical = public_jwk(key)
    if any(jwk.get(member) != value for member, value in canonical.items()):
        raise KeyStorageError("public JWK is not in canonical form")
    return key

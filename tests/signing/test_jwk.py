"""Public JWKs (RFC 7517/8037), RFC 7638 thumbprints and key ids."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signing.errors import KeyStorageError, UnsupportedAlgorithm
from signing.jwk import KID_LENGTH, b64url, b64url_decode, key_id, load_public_jwk, public_jwk, thumbprint

# RFC 8037 Appendix A.2 (public key) and A.3 (its RFC 7638 thumbprint).
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

# Scalars whose P-256 public point has a leading zero byte in x (379) or y (43): the
# JWK must still carry full 32-byte coordinates (RFC 7518 §6.2.1.2).
SCALAR_WITH_SHORT_X = 379
SCALAR_WITH_SHORT_Y = 43


@pytest.fixture(scope="module")
def rfc8037_key() -> ed25519.Ed25519PublicKey:
    return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(RFC8037_X))


def test_rfc8037_thumbprint(rfc8037_key: ed25519.Ed25519PublicKey) -> None:
    assert public_jwk(rfc8037_key) == {"crv": "Ed25519", "kty": "OKP", "x": RFC8037_X}
    assert thumbprint(rfc8037_key) == RFC8037_THUMBPRINT


def test_key_id_is_the_thumbprint_prefix(rfc8037_key: ed25519.Ed25519PublicKey) -> None:
    assert KID_LENGTH >= 8  # at least 48 bits: kids are unique per region
    assert key_id(rfc8037_key) == RFC8037_THUMBPRINT[:KID_LENGTH]
    assert len(key_id(rfc8037_key)) == KID_LENGTH


def test_ed25519_round_trip(ed25519_key: ed25519.Ed25519PrivateKey) -> None:
    public = ed25519_key.public_key()

    loaded = load_public_jwk(public_jwk(public))

    assert isinstance(loaded, ed25519.Ed25519PublicKey)
    assert loaded.public_bytes_raw() == public.public_bytes_raw()
    assert thumbprint(loaded) == thumbprint(public)


def test_p256_round_trip(p256_key: ec.EllipticCurvePrivateKey) -> None:
    public = p256_key.public_key()
    jwk = public_jwk(public)

    loaded = load_public_jwk(jwk)

    assert set(jwk) == {"crv", "kty", "x", "y"}
    assert (jwk["kty"], jwk["crv"]) == ("EC", "P-256")
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
    assert loaded.public_numbers() == public.public_numbers()
    assert thumbprint(loaded) == thumbprint(public)
    assert key_id(loaded) == thumbprint(public)[:KID_LENGTH]


@pytest.mark.parametrize("scalar", [SCALAR_WITH_SHORT_X, SCALAR_WITH_SHORT_Y], ids=["short-x", "short-y"])
def test_p256_coordinates_keep_leading_zeros(scalar: int) -> None:
    public = ec.derive_private_key(scalar, ec.SECP256R1()).public_key()
    numbers = public.public_numbers()
    assert min(numbers.x, numbers.y) < 2**248  # the case under test

    jwk = public_jwk(public)

    assert len(b64url_decode(jwk["x"])) == len(b64url_decode(jwk["y"])) == 32
    assert load_public_jwk(jwk).public_numbers() == numbers  # type: ignore[union-attr]


def test_thumbprints_differ_between_keys(ed25519_key: ed25519.Ed25519PrivateKey, p256_key: Any) -> None:
    assert thumbprint(ed25519_key.public_key()) != thumbprint(p256_key.public_key())


def _p256_jwk(**members: Any) -> dict[str, Any]:
    public = ec.derive_private_key(SCALAR_WITH_SHORT_Y, ec.SECP256R1()).public_key()
    return {**public_jwk(public), **members}


def _coordinate(value: int) -> str:
    return b64url(value.to_bytes(32, "big"))


P256_PRIME = 2**256 - 2**224 + 2**192 + 2**96 - 1
_GOOD_P256 = ec.derive_private_key(SCALAR_WITH_SHORT_Y, ec.SECP256R1()).public_key().public_numbers()


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param({"kty": "RSA", "n": b64url(b"\xc1" * 256), "e": "AQAB"}, id="rsa"),
        pytest.param({"kty": "oct", "k": b64url(b"secret" * 6)}, id="oct"),
        pytest.param(_p256_jwk(crv="P-384"), id="ec-p384"),
        pytest.param(_p256_jwk(crv="P-521"), id="ec-p521"),
        pytest.param(_p256_jwk(crv="secp256k1"), id="ec-secp256k1"),
        pytest.param(_p256_jwk(crv="p-256"), id="ec-lowercase-curve"),
        pytest.param(_p256_jwk(kty="OKP"), id="okp-with-p256-curve"),
        pytest.param({"kty": "OKP", "crv": "X25519", "x": RFC8037_X}, id="okp-x25519"),
        pytest.param({"kty": "OKP", "crv": "Ed448", "x": b64url(bytes(57))}, id="okp-ed448"),
        pytest.param({"kty": "EC", "x": RFC8037_X, "y": RFC8037_X}, id="ec-no-curve"),
        pytest.param({"crv": "Ed25519", "x": RFC8037_X}, id="no-kty"),
        pytest.param({}, id="empty"),
        pytest.param({"kty": "OKP", "crv": "Ed25519"}, id="ed25519-no-x"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "x": b64url(bytes(31))}, id="ed25519-x-31-bytes"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "x": b64url(bytes(33))}, id="ed25519-x-33-bytes"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "x": 7}, id="ed25519-x-number"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "x": None}, id="ed25519-x-null"),
        pytest.param({k: v for k, v in _p256_jwk().items() if k != "y"}, id="p256-no-y"),
        pytest.param(_p256_jwk(y=_coordinate(_GOOD_P256.y + 1)), id="p256-point-not-on-curve"),
        pytest.param(_p256_jwk(x=_coordinate(0), y=_coordinate(0)), id="p256-zero-point"),
        pytest.param(_p256_jwk(x=42), id="p256-x-number"),
    ],
)
def test_load_public_jwk_refuses(jwk: dict[str, Any]) -> None:
    with pytest.raises(KeyStorageError, match="JWK"):
        load_public_jwk(jwk)


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X + "="}, id="ed25519-x-padded"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X.replace("_", "/")}, id="ed25519-x-slash"),
        pytest.param(_p256_jwk(y=b64url(_GOOD_P256.y.to_bytes(31, "big"))), id="p256-y-31-bytes"),
        pytest.param(_p256_jwk(x=b64url(_GOOD_P256.x.to_bytes(33, "big"))), id="p256-x-33-bytes"),
        pytest.param(_p256_jwk(x=b64url((_GOOD_P256.x + P256_PRIME).to_bytes(33, "big"))), id="p256-x-not-below-p"),
    ],
)
def test_load_public_jwk_refuses_second_spellings_of_a_key(jwk: dict[str, Any]) -> None:
    """RFC 7518 §6.2.1.2 and RFC 8037 §2: coordinates are exactly the curve's size, base64url."""
    with pytest.raises(KeyStorageError, match="JWK"):
        load_public_jwk(jwk)


def test_public_jwk_refuses_other_curves() -> None:
    with pytest.raises(UnsupportedAlgorithm):
        public_jwk(ec.generate_private_key(ec.SECP384R1()).public_key())

"""Private keys at rest (encrypted PKCS#8), the KeyRing, and the signature layer's key checks."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.hashes import SHA256

from signing.algorithms import (
    PrivateKey,
    algorithm_of,
    require_algorithm,
    sign,
    verify_signature,
)
from signing.errors import KeyStorageError, UnsupportedAlgorithm
from signing.keystore import KeyRing, decrypt_private_key, encrypt_private_key, pkcs8_password

PASSPHRASE = "correct horse battery staple 马电池"
KID = "kid-one1"
MESSAGE = "电子证照 signing input".encode()


def private_value(key: PrivateKey) -> bytes:
    """The secret itself: Ed25519 seed or the P-256 scalar, 32 bytes either way."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.private_bytes_raw()
    return key.private_numbers().private_value.to_bytes(32, "big")


def public_raw(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def stored(signing_key: PrivateKey) -> bytes:
    """``signing_key`` encrypted once per algorithm (scrypt is slow on purpose)."""
    return encrypt_private_key(signing_key, KID, PASSPHRASE)


def test_round_trip(signing_key: PrivateKey, stored: bytes) -> None:
    loaded = decrypt_private_key(stored, KID, PASSPHRASE)

    assert algorithm_of(loaded) == algorithm_of(signing_key)
    assert private_value(loaded) == private_value(signing_key)
    assert public_raw(loaded) == public_raw(signing_key)
    signature = sign(algorithm_of(loaded), loaded, MESSAGE)
    assert verify_signature(algorithm_of(signing_key), signing_key.public_key(), MESSAGE, signature)


def test_pem_is_encrypted_pkcs8_without_the_secret(signing_key: PrivateKey, stored: bytes) -> None:
    text = stored.decode("ascii")
    lines = text.strip().splitlines()
    der = base64.b64decode("".join(lines[1:-1]))
    secret = private_value(signing_key)
    plain_pkcs8 = signing_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    assert lines[0] == "-----BEGIN ENCRYPTED PRIVATE KEY-----"
    assert lines[-1] == "-----END ENCRYPTED PRIVATE KEY-----"
    assert secret not in der
    assert plain_pkcs8 not in der
    assert secret.hex() not in text
    assert base64.b64encode(secret).decode() not in text
    assert PASSPHRASE not in text


def test_passphrase_itself_does_not_open_the_pem(stored: bytes) -> None:
    """The PKCS#8 password is scrypt(passphrase, kid), not the passphrase (module docstring)."""
    with pytest.raises(ValueError, match=r"[Bb]ad decrypt|[Ii]ncorrect password"):
        serialization.load_pem_private_key(stored, PASSPHRASE.encode())
    assert serialization.load_pem_private_key(stored, pkcs8_password(PASSPHRASE, KID))


@pytest.mark.parametrize(
    ("kid", "passphrase"),
    [
        pytest.param(KID, "wrong passphrase", id="wrong-passphrase"),
        pytest.param(KID, PASSPHRASE + " ", id="passphrase-trailing-space"),
        pytest.param(KID, PASSPHRASE.upper(), id="passphrase-other-case"),
        pytest.param("kid-two2", PASSPHRASE, id="wrong-kid"),
        pytest.param(KID.upper(), PASSPHRASE, id="kid-other-case"),
    ],
)
def test_wrong_secret_is_refused_without_echoing_it(stored: bytes, kid: str, passphrase: str) -> None:
    with pytest.raises(KeyStorageError, match="could not be decrypted") as refused:
        decrypt_private_key(stored, kid, passphrase)
    message = str(refused.value)
    assert passphrase not in message
    assert PASSPHRASE not in message
    assert refused.value.code == "KEY_STORAGE"


def _unencrypted_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda pem, key: b"", id="empty"),
        pytest.param(lambda pem, key: b"not a pem", id="not-pem"),
        pytest.param(lambda pem, key: pem[: len(pem) // 2], id="truncated"),
        pytest.param(
            lambda pem, key: pem[:100] + (b"B" if pem[100:101] == b"A" else b"A") + pem[101:], id="one-char-changed"
        ),
        pytest.param(lambda pem, key: _unencrypted_pem(key), id="unencrypted-pkcs8"),
    ],
)
def test_corrupt_or_substituted_pem_is_refused(
    signing_key: PrivateKey, stored: bytes, corrupt: Callable[[bytes, PrivateKey], bytes]
) -> None:
    with pytest.raises(KeyStorageError):
        decrypt_private_key(corrupt(stored, signing_key), KID, PASSPHRASE)


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP256K1()], ids=["P-384", "secp256k1"])
def test_stored_key_of_a_type_ecert_does_not_use_is_a_storage_error(curve: ec.EllipticCurve) -> None:
    """Its docstring: ``KeyStorageError`` for "a key type ecert does not use"."""
    pem = encrypt_private_key(ec.generate_private_key(curve), KID, PASSPHRASE)

    with pytest.raises(KeyStorageError):
        decrypt_private_key(pem, KID, PASSPHRASE)


@pytest.mark.parametrize("action", ["encrypt", "decrypt", "keyring"])
def test_empty_passphrase_is_refused(ed25519_key: ed25519.Ed25519PrivateKey, action: str) -> None:
    with pytest.raises(KeyStorageError, match="non-empty ECERT_KEY_PASSPHRASE"):
        if action == "encrypt":
            encrypt_private_key(ed25519_key, KID, "")
        elif action == "decrypt":
            decrypt_private_key(_unencrypted_pem(ed25519_key), KID, "")
        else:
            KeyRing("").encrypt(ed25519_key, KID)


# ---------------------------------------------------------------- KeyRing


class CountingLoader:
    """The ``load`` callback of :meth:`KeyRing.private_key`, counting its calls."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return self.pem


def test_keyring_decrypts_once(signing_key: PrivateKey, stored: bytes) -> None:
    ring = KeyRing(PASSPHRASE)
    load = CountingLoader(stored)

    first = ring.private_key(KID, load)
    second = ring.private_key(KID, load)

    assert load.calls == 1
    assert first is second
    assert private_value(first) == private_value(signing_key)


def test_keyring_forget_drops_the_key(stored: bytes) -> None:
    ring = KeyRing(PASSPHRASE)
    load = CountingLoader(stored)
    ring.private_key(KID, load)

    ring.forget(KID)
    ring.private_key(KID, load)

    assert load.calls == 2
    ring.forget("never-loaded")  # forgetting an unknown kid is harmless


def test_keyring_keeps_what_it_encrypted(signing_key: PrivateKey) -> None:
    ring = KeyRing(PASSPHRASE)
    pem = ring.encrypt(signing_key, KID)
    load = CountingLoader(pem)

    assert ring.private_key(KID, load) is signing_key
    assert load.calls == 0
    assert private_value(decrypt_private_key(pem, KID, PASSPHRASE)) == private_value(signing_key)


def test_keyring_with_wrong_passphrase_refuses_and_caches_nothing(stored: bytes) -> None:
    ring = KeyRing("another deployment's passphrase")
    load = CountingLoader(stored)

    for _ in range(2):
        with pytest.raises(KeyStorageError):
            ring.private_key(KID, load)
    assert load.calls == 2


# ---------------------------------------------------------------- signature layer


def test_sign_refuses_a_key_of_the_other_algorithm(
    ed25519_key: ed25519.Ed25519PrivateKey, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(UnsupportedAlgorithm, match="not an ES256 key"):
        sign("ES256", ed25519_key, MESSAGE)
    with pytest.raises(UnsupportedAlgorithm, match="not an EdDSA key"):
        sign("EdDSA", p256_key, MESSAGE)


def test_verify_refuses_a_key_of_the_other_algorithm(
    ed25519_key: ed25519.Ed25519PrivateKey, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    ed_signature = sign("EdDSA", ed25519_key, MESSAGE)
    es_signature = sign("ES256", p256_key, MESSAGE)

    with pytest.raises(UnsupportedAlgorithm, match="not an ES256 key"):
        verify_signature("ES256", ed25519_key.public_key(), MESSAGE, es_signature)
    with pytest.raises(UnsupportedAlgorithm, match="not an EdDSA key"):
        verify_signature("EdDSA", p256_key.public_key(), MESSAGE, ed_signature)


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP256K1()], ids=["P-384", "secp256k1"])
def test_other_curves_are_unsupported(curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve)
    with pytest.raises(UnsupportedAlgorithm):
        sign("ES256", key, MESSAGE)
    with pytest.raises(UnsupportedAlgorithm):
        verify_signature("ES256", key.public_key(), MESSAGE, bytes(64))


@pytest.mark.parametrize("name", ["none", "HS256", "RS256", "ES512", "eddsa", "es256", ""])
def test_require_algorithm_refuses(name: str) -> None:
    with pytest.raises(UnsupportedAlgorithm, match="not allowed"):
        require_algorithm(name)


def test_require_algorithm_accepts_ours() -> None:
    assert [require_algorithm("EdDSA"), require_algorithm("ES256")] == ["EdDSA", "ES256"]


def test_signatures_round_trip(signing_key: PrivateKey) -> None:
    algorithm = algorithm_of(signing_key)
    signature = sign(algorithm, signing_key, MESSAGE)

    assert len(signature) == 64
    assert verify_signature(algorithm, signing_key.public_key(), MESSAGE, signature) is True
    assert verify_signature(algorithm, signing_key.public_key(), MESSAGE + b".", signature) is False


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda sig, der: b"", id="empty"),
        pytest.param(lambda sig, der: sig[:-1], id="63-bytes"),
        pytest.param(lambda sig, der: sig + b"\x00", id="65-bytes"),
        pytest.param(lambda sig, der: b"\x00" + sig, id="leading-zero-65-bytes"),
        pytest.param(lambda sig, der: sig + sig, id="128-bytes"),
        pytest.param(lambda sig, der: der, id="der-encoding-of-a-valid-signature"),
    ],
)
def test_es256_signature_of_wrong_length_is_false(
    p256_key: ec.EllipticCurvePrivateKey, mangle: Callable[[bytes, bytes], bytes]
) -> None:
    signature = sign("ES256", p256_key, MESSAGE)
    der = p256_key.sign(MESSAGE, ec.ECDSA(SHA256()))  # valid, in the wrong (X9.62 DER) form

    assert verify_signature("ES256", p256_key.public_key(), MESSAGE, mangle(signature, der)) is False


@pytest.mark.parametrize("length", [0, 63, 65, 128])
def test_eddsa_signature_of_wrong_length_is_false(ed25519_key: ed25519.Ed25519PrivateKey, length: int) -> None:
    signature = (sign("EdDSA", ed25519_key, MESSAGE) * 2)[:length]

    assert verify_signature("EdDSA", ed25519_key.public_key(), MESSAGE, signature) is False

"""Small secrets at rest (a peer's API token, say), sealed with the deployment's passphrase.

A sealed secret is ``version || salt || nonce || AES-256-GCM(secret)`` (1, 16, 12 bytes,
then the ciphertext and its 16-byte tag). The key is scrypt(passphrase, "ecert-sealed:" +
salt) at the cost of :mod:`signing.keystore`'s PKCS#8 passwords (RFC 7914, N=2^15, r=8,
p=1), so every guess at the passphrase from a stolen dump costs a scrypt. The version
byte and a *context* (what the secret is for, e.g. ``peer-token:330000``) are the
associated data: a sealed secret copied into another row, or altered, does not open.

Opening is slow on purpose; callers go through :class:`signing.keystore.KeyRing`, which
keeps what it opened for the life of the process.
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from signing.errors import KeyStorageError

VERSION: Final = 1
SALT_BYTES: Final = 16
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
# The cost of signing.keystore's PKCS#8 passwords (about 60 ms); keystore imports this
# module, so the figures are repeated here (a test holds them equal).
SCRYPT_N: Final = 2**15
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_HEADER = 1 + SALT_BYTES + NONCE_BYTES


def seal(secret: bytes, context: str, passphrase: str) -> bytes:
    """``secret`` sealed for storage, bound to ``context``; a fresh salt and nonce each time.

    Raises:
        KeyStorageError: the passphrase is empty.
    """
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    sealed = AESGCM(_key(passphrase, salt)).encrypt(nonce, secret, _associated_data(VERSION, context))
    return bytes([VERSION]) + salt + nonce + sealed


def open_sealed(sealed: bytes, context: str, passphrase: str) -> bytes:
    """The secret :func:`seal` sealed for ``context`` with ``passphrase``.

    Raises:
        KeyStorageError: a wrong passphrase, another context, altered or malformed data,
            or an unknown format version.
    """
    if len(sealed) < _HEADER + TAG_BYTES:
        raise KeyStorageError("the sealed secret is malformed (too short)")
    if sealed[0] != VERSION:
        raise KeyStorageError(f"the sealed secret has an unknown format version {sealed[0]}")
    salt, nonce = sealed[1 : 1 + SALT_BYTES], sealed[1 + SALT_BYTES : _HEADER]
    try:
        return AESGCM(_key(passphrase, salt)).decrypt(nonce, sealed[_HEADER:], _associated_data(sealed[0], context))
    except InvalidTag as error:
        raise KeyStorageError(
            f"the sealed secret for {context} could not be opened (wrong ECERT_KEY_PASSPHRASE, or altered)"
        ) from error


def _key(passphrase: str, salt: bytes) -> bytes:
    if not passphrase:
        raise KeyStorageError("a non-empty ECERT_KEY_PASSPHRASE is required to seal or open secrets")
    kdf = Scrypt(salt=b"ecert-sealed:" + salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return kdf.derive(passphrase.encode("utf-8"))


def _associated_data(version: int, context: str) -> bytes:
    return bytes([version]) + context.encode("utf-8")

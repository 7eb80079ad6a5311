"""Private keys at rest: PKCS#8, encrypted with the deployment's passphrase.

Each key is standard encrypted PKCS#8 (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC; RFC
5958/8018), as the cryptography library writes it. That library fixes PBKDF2 at 2048
rounds, far too cheap against a stolen database dump, so the PKCS#8 password is not the
deployment's passphrase itself but scrypt(passphrase, "ecert-pkcs8:" + kid) (RFC 7914,
N=2^15, r=8, p=1): every guess at the passphrase costs an attacker a scrypt per key.
Decryption is slow on purpose, so callers keep decrypted keys in a :class:`KeyRing` for
the life of the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from signing.algorithms import PrivateKey, algorithm_of
from signing.errors import KeyStorageError, UnsupportedAlgorithm
from signing.sealed import open_sealed, seal

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1


def pkcs8_password(passphrase: str, kid: str) -> bytes:
    """The PKCS#8 password of key ``kid``: the passphrase stretched by scrypt, salted by kid.

    Raises:
        KeyStorageError: the passphrase is empty.
    """
    if not passphrase:
        raise KeyStorageError("a non-empty ECERT_KEY_PASSPHRASE is required to store or load private keys")
    kdf = Scrypt(salt=b"ecert-pkcs8:" + kid.encode("ascii"), length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return kdf.derive(passphrase.encode("utf-8")).hex().encode("ascii")


def encrypt_private_key(key: PrivateKey, kid: str, passphrase: str) -> bytes:
    """Serialise ``key`` as encrypted PKCS#8 PEM.

    Raises:
        KeyStorageError: the passphrase is empty.
    """
    encryption = serialization.BestAvailableEncryption(pkcs8_password(passphrase, kid))
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def decrypt_private_key(pem: bytes, kid: str, passphrase: str) -> PrivateKey:
    """Load a key written by :func:`encrypt_private_key`.

    Raises:
        KeyStorageError: wrong passphrase, corrupt data, or a key type ecert does not use.
    """
    try:
        key = serialization.load_pem_private_key(pem, pkcs8_password(passphrase, kid))
    except (ValueError, TypeError) as error:
        # The library's message may echo structure of the key; keep ours generic.
        raise KeyStorageError("private key could not be decrypted (wrong ECERT_KEY_PASSPHRASE?)") from error
    try:
        algorithm_of(key)  # type: ignore[arg-type]
    except UnsupportedAlgorithm as error:
        raise KeyStorageError(f"stored key is of a type ecert does not use: {error}") from error
    return key  # type: ignore[return-value]


class KeyRing:
    """Decrypted private keys by kid, loaded on first use and kept for the process; and
    small secrets sealed at rest (:mod:`signing.sealed`), kept once opened.

    Thread-safe; shared by every request of a worker. ``load`` fetches the encrypted
    PEM for a kid (from the database, in practice).
    """

    def __init__(self, passphrase: str) -> None:
        self._passphrase = passphrase
        self._keys: dict[str, PrivateKey] = {}
        # By (context, sealed bytes): a secret sealed anew (replaced) is another entry,
        # so no worker keeps using one that was replaced or removed.
        self._secrets: dict[tuple[str, bytes], bytes] = {}
        self._lock = threading.Lock()

    def private_key(self, kid: str, load: Callable[[], bytes]) -> PrivateKey:
        """The decrypted key for ``kid``.

        Raises:
            KeyStorageError: the stored key cannot be decrypted with this ring's passphrase.
        """
        key = self._keys.get(kid)
        if key is None:
            key = decrypt_private_key(load(), kid, self._passphrase)
            with self._lock:
                self._keys[kid] = key
        return key

    def encrypt(self, key: PrivateKey, kid: str) -> bytes:
        """Encrypt a new key for storage with this ring's passphrase, and keep it in memory."""
        pem = encrypt_private_key(key, kid, self._passphrase)
        with self._lock:
            self._keys[kid] = key
        return pem

    def forget(self, kid: str) -> None:
        """Drop a key from memory (it was retired or compromised)."""
        with self._lock:
            self._keys.pop(kid, None)

    def seal(self, secret: bytes, context: str) -> bytes:
        """Seal ``secret`` for storage, bound to ``context`` (what it is for), and keep it in memory.

        Raises:
            KeyStorageError: this ring's passphrase is empty.
        """
        sealed = seal(secret, context, self._passphrase)
        with self._lock:
            self._secrets[(context, sealed)] = secret
        return sealed

    def secret(self, context: str, sealed: bytes) -> bytes:
        """The secret ``sealed`` holds for ``context``, opened once per process.

        Raises:
            KeyStorageError: it cannot be opened with this ring's passphrase and context
                (wrong passphrase, altered, or sealed for something else).
        """
        entry = (context, bytes(sealed))
        secret = self._secrets.get(entry)
        if secret is None:
            secret = open_sealed(entry[1], context, self._passphrase)
            with self._lock:
                self._secrets[entry] = secret
        return secret

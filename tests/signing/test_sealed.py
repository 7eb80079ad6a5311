"""Small secrets sealed at rest (signing.sealed) and the KeyRing's way to them.

Every open runs a real scrypt (about 60 ms), so the sealed samples are made once per module.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from signing import keystore, sealed
from signing.errors import KeyStorageError
from signing.keystore import KeyRing
from signing.sealed import NONCE_BYTES, SALT_BYTES, TAG_BYTES, VERSION, open_sealed, seal

PASSPHRASE = "correct horse battery staple 马电池"
CONTEXT = "peer-token:330000"
SECRET = b"ecertp_Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"
HEADER = 1 + SALT_BYTES + NONCE_BYTES


@pytest.fixture(scope="module")
def stored() -> bytes:
    return seal(SECRET, CONTEXT, PASSPHRASE)


def test_round_trip(stored: bytes) -> None:
    assert open_sealed(stored, CONTEXT, PASSPHRASE) == SECRET


def test_the_format_is_versioned_and_holds_no_plaintext(stored: bytes) -> None:
    assert stored[0] == VERSION
    assert len(stored) == HEADER + len(SECRET) + TAG_BYTES
    assert SECRET not in stored
    assert SECRET[len("ecertp_") :][:8] not in stored


def test_each_seal_takes_a_fresh_salt_and_nonce(stored: bytes) -> None:
    again = seal(SECRET, CONTEXT, PASSPHRASE)

    assert again[1:HEADER] != stored[1:HEADER]
    assert again[HEADER:] != stored[HEADER:]


def test_a_wrong_passphrase_does_not_open_it(stored: bytes) -> None:
    with pytest.raises(KeyStorageError, match="wrong ECERT_KEY_PASSPHRASE") as raised:
        open_sealed(stored, CONTEXT, PASSPHRASE + " ")
    assert raised.value.code == "KEY_STORAGE"


def test_a_secret_sealed_for_another_context_does_not_open(stored: bytes) -> None:
    """A sealed token copied into another peer's row is refused, not presented there."""
    with pytest.raises(KeyStorageError, match="peer-token:320000"):
        open_sealed(stored, "peer-token:320000", PASSPHRASE)


@pytest.mark.parametrize(
    ("where", "offset"),
    [("salt", 1), ("nonce", 1 + SALT_BYTES), ("ciphertext", HEADER), ("tag", -1)],
)
def test_an_altered_byte_is_refused(stored: bytes, where: str, offset: int) -> None:
    altered = bytearray(stored)
    altered[offset] ^= 0x01

    with pytest.raises(KeyStorageError, match="could not be opened"):
        open_sealed(bytes(altered), CONTEXT, PASSPHRASE)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: bytes([2]) + data[1:], "unknown format version 2"),
        (lambda data: data[: HEADER + TAG_BYTES - 1], "malformed"),
        (lambda data: b"", "malformed"),
    ],
    ids=["version", "truncated", "empty"],
)
def test_a_malformed_secret_is_refused_before_any_work(
    stored: bytes, change: Callable[[bytes], bytes], message: str
) -> None:
    with pytest.raises(KeyStorageError, match=message):
        open_sealed(change(stored), CONTEXT, PASSPHRASE)


def test_an_empty_passphrase_seals_nothing() -> None:
    with pytest.raises(KeyStorageError, match="non-empty ECERT_KEY_PASSPHRASE"):
        seal(SECRET, CONTEXT, "")


def test_the_cost_is_the_keystores() -> None:
    """A stolen dump must not make the passphrase cheaper to guess through sealed secrets."""
    assert (sealed.SCRYPT_N, sealed.SCRYPT_R, sealed.SCRYPT_P) == (
        keystore.SCRYPT_N,
        keystore.SCRYPT_R,
        keystore.SCRYPT_P,
    )


# ---------------------------------------------------------------- through the KeyRing


def test_a_ring_opens_what_another_ring_with_the_passphrase_sealed() -> None:
    sealing, opening = KeyRing(PASSPHRASE), KeyRing(PASSPHRASE)
    stored = sealing.seal(SECRET, CONTEXT)

    assert sealing.secret(CONTEXT, stored) == SECRET
    assert opening.secret(CONTEXT, stored) == SECRET
    assert opening.secret(CONTEXT, stored) == SECRET  # from memory the second time


def test_a_ring_with_another_passphrase_refuses(stored: bytes) -> None:
    with pytest.raises(KeyStorageError, match="could not be opened"):
        KeyRing("another passphrase").secret(CONTEXT, stored)


def test_a_ring_never_serves_a_replaced_secret_from_memory(stored: bytes) -> None:
    """A worker that opened the old token must use the new one once it is sealed anew."""
    ring = KeyRing(PASSPHRASE)
    assert ring.secret(CONTEXT, stored) == SECRET
    replacement = seal(b"ecertp_another-token", CONTEXT, PASSPHRASE)

    assert ring.secret(CONTEXT, replacement) == b"ecertp_another-token"
    with pytest.raises(KeyStorageError):
        ring.secret("peer-token:320000", stored)  # memory is per context too

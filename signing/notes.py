"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys, and the
tlog-checkpoint text they carry (https://c2sp.org/tlog-checkpoint).

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <key name> <base64(key hash || signature)>``. The key hash is the first four bytes
of SHA-256(key name || 0x0A || 0x01 || public key), 0x01 being Ed25519's signature type;
a verifier key is written ``<name>+<key hash, 8 hex digits>+<base64(0x01 || public key)>``.
Signatures are over the note text (without the blank line). Signatures by keys the
reader does not know are ignored, as the spec requires; a note with no valid signature
by a known key is refused.

A checkpoint's text is three lines: the log's origin, the tree size in decimal, and the
root hash in standard base64 (extension lines are not produced, and refused on reading,
since nothing here defines any).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signing.errors import SigningError

ED25519_TYPE: Final = b"\x01"
SIGNATURE_PREFIX: Final = "\u2014 "
MAX_NOTE_LENGTH: Final = 64 * 1024
_KEY_NAME = re.compile(r"[^\s+\u2014]{1,255}")  # no whitespace, no '+', no em dash
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


class NoteError(SigningError):
    """A note or checkpoint that is malformed or carries no valid signature by a known key."""

    code = "NOTE_INVALID"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root_hash).decode('ascii')}\n"


def key_hash(name: str, public_key: ed25519.Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_TYPE + raw).digest()[:4]


def verifier_key(name: str, public_key: ed25519.Ed25519PublicKey) -> str:
    """``name+hash+base64(0x01 || key)``: how a log's key is published (DESIGN: ``verifier_key``)."""
    _check_name(name)
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    encoded = base64.b64encode(ED25519_TYPE + raw).decode("ascii")
    return f"{name}+{key_hash(name, public_key).hex()}+{encoded}"


def parse_verifier_key(text: str) -> tuple[str, ed25519.Ed25519PublicKey]:
    """The name and Ed25519 key of a verifier key string.

    Raises:
        NoteError: not ``name+hash+base64(0x01 || 32-byte key)`` with a matching hash.
    """
    name, _, rest = text.partition("+")
    hash_hex, _, encoded = rest.partition("+")
    try:
        _check_name(name)
        raw = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as error:
        raise NoteError(f"not a verifier key: {error}") from error
    if len(raw) != 33 or raw[:1] != ED25519_TYPE or not re.fullmatch(r"[0-9a-f]{8}", hash_hex):
        raise NoteError("not an Ed25519 verifier key")
    public_key = ed25519.Ed25519PublicKey.from_public_bytes(raw[1:])
    if key_hash(name, public_key).hex() != hash_hex:
        raise NoteError("the verifier key's hash does not match its name and key")
    return name, public_key


def sign_note(text: str, name: str, private_key: ed25519.Ed25519PrivateKey) -> str:
    """``text`` (ending in a newline) signed by one key, as a note."""
    _check_text(text)
    _check_name(name)
    signature = private_key.sign(text.encode("utf-8"))
    line = base64.b64encode(key_hash(name, private_key.public_key()) + signature).decode("ascii")
    return f"{text}\n{SIGNATURE_PREFIX}{name} {line}\n"


def add_signature(note: str, name: str, private_key: ed25519.Ed25519PrivateKey) -> str:
    """``note`` with one more signature line (a cosigner's) over the same text."""
    text, _signatures = split_note(note)
    signature = private_key.sign(text.encode("utf-8"))
    line = base64.b64encode(key_hash(name, private_key.public_key()) + signature).decode("ascii")
    return f"{note}{SIGNATURE_PREFIX}{name} {line}\n"


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """The note's text and its signature lines as (key name, key hash || signature).

    Raises:
        NoteError: not a well-formed note.
    """
    if len(note) > MAX_NOTE_LENGTH:
        raise NoteError("the note is too large")
    if any(ord(c) < 0x20 and c != "\n" for c in note) or not note.endswith("\n"):
        raise NoteError("a note ends in a newline and holds no control characters but newlines")
    text, separator, signature_block = note.rpartition("\n\n")
    if not separator or not text:
        raise NoteError("a note is text, a blank line, and signature lines")
    text += "\n"
    signatures = []
    for line in signature_block.removesuffix("\n").split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("a signature line starts with an em dash and a space")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            _check_name(name)
            raw = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error) as error:
            raise NoteError(f"a malformed signature line: {error}") from error
        if len(raw) < 5:
            raise NoteError("a signature line too short to hold a key hash and a signature")
        signatures.append((name, raw))
    return text, signatures


def open_note(note: str, known: dict[str, ed25519.Ed25519PublicKey]) -> tuple[str, list[str]]:
    """The text of ``note`` and the names of the known keys whose signatures verify.

    ``known`` maps key names to keys. Signatures by unknown keys are ignored.

    Raises:
        NoteError: malformed, or no known key's signature verifies.
    """
    text, signatures = split_note(note)
    verified = []
    for name, raw in signatures:
        key = known.get(name)
        if key is None or raw[:4] != key_hash(name, key) or len(raw) != 4 + 64:
            continue
        try:
            key.verify(raw[4:], text.encode("utf-8"))
        except InvalidSignature:
            continue
        verified.append(name)
    if not verified:
        raise NoteError("the note carries no valid signature by a known key")
    return text, verified


def parse_checkpoint(text: str) -> Checkpoint:
    """The origin, size and root hash of a checkpoint's (verified) text.

    Raises:
        NoteError: not exactly origin, decimal size, base64 32-byte root.
    """
    lines = text.removesuffix("\n").split("\n")
    if len(lines) != 3 or not lines[0] or not _DECIMAL.fullmatch(lines[1]):
        raise NoteError("a checkpoint is an origin line, a decimal size and a base64 root hash")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error) as error:
        raise NoteError("the checkpoint's root hash is not base64") from error
    if len(root) != 32 or base64.b64encode(root).decode("ascii") != lines[2]:
        raise NoteError("the checkpoint's root hash is not 32 bytes in canonical base64")
    return Checkpoint(origin=lines[0], size=int(lines[1]), root_hash=root)


def _check_name(name: str) -> None:
    if not _KEY_NAME.fullmatch(name):
        raise ValueError("a key name is 1 to 255 characters without spaces, '+' or em dash")


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text or any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note's text ends in a newline and holds no blank line or control characters")

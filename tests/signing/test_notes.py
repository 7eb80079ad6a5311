"""C2SP signed notes and checkpoints, checked against the Go reference implementation's
published example (golang.org/x/mod/sumdb/note: the PeterNeumann key and note)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from signing.notes import (
    Checkpoint,
    NoteError,
    add_signature,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
    sign_note,
    verifier_key,
)

GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_PRIVATE_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def go_private_key() -> ed25519.Ed25519PrivateKey:
    seed = base64.b64decode(GO_PRIVATE_KEY.split("+", 4)[4])[1:]
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def test_signing_reproduces_the_go_reference_note_byte_for_byte() -> None:
    assert sign_note(GO_TEXT, "PeterNeumann", go_private_key()) == GO_NOTE


def test_verifier_key_matches_the_go_reference() -> None:
    assert verifier_key("PeterNeumann", go_private_key().public_key()) == GO_VERIFIER_KEY


def test_the_go_reference_note_opens_with_its_verifier_key() -> None:
    name, key = parse_verifier_key(GO_VERIFIER_KEY)
    assert open_note(GO_NOTE, {name: key}) == (GO_TEXT, ["PeterNeumann"])


@pytest.mark.parametrize(
    "mangled",
    [
        GO_NOTE.replace("problem,", "problem;"),  # text changed
        GO_NOTE.replace("x08go", "x08gp"),  # signature changed
        GO_NOTE.replace("— PeterNeumann", "— PeterNeuman"),  # another key name
        GO_NOTE.replace("— ", "- "),  # ASCII hyphen, not an em dash
        GO_NOTE.removesuffix("\n"),  # no final newline
        GO_NOTE.replace("\n\n", "\n"),  # no blank line
        GO_NOTE.replace("problem,", "problem,\x07"),  # a control character
    ],
    ids=["text", "signature", "key-name", "hyphen", "final-newline", "blank-line", "control-char"],
)
def test_a_mangled_note_is_refused(mangled: str) -> None:
    name, key = parse_verifier_key(GO_VERIFIER_KEY)
    with pytest.raises(NoteError):
        open_note(mangled, {name: key})


def test_unknown_signers_are_ignored_and_a_cosignature_verifies() -> None:
    witness = ed25519.Ed25519PrivateKey.generate()
    cosigned = add_signature(GO_NOTE, "witness.example", witness)
    name, key = parse_verifier_key(GO_VERIFIER_KEY)
    assert open_note(cosigned, {name: key}) == (GO_TEXT, ["PeterNeumann"])
    assert open_note(cosigned, {"witness.example": witness.public_key()}) == (GO_TEXT, ["witness.example"])
    with pytest.raises(NoteError):
        open_note(cosigned, {"someone.else": witness.public_key()})


@pytest.mark.parametrize(
    "key",
    [
        GO_VERIFIER_KEY.replace("c74f20a3", "c74f20a4"),  # hash does not match
        GO_VERIFIER_KEY.replace("+ARpc", "+AhpC"),  # another type byte
        "PeterNeumann+c74f20a3",  # no key
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # a space in the name
    ],
    ids=["hash", "type", "missing-key", "space-in-name"],
)
def test_a_mangled_verifier_key_is_refused(key: str) -> None:
    with pytest.raises(NoteError):
        parse_verifier_key(key)


def test_checkpoint_text_round_trips() -> None:
    checkpoint = Checkpoint(origin="ecert.sh.example/log", size=42, root_hash=bytes(range(32)))
    assert checkpoint.text() == "ecert.sh.example/log\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    assert parse_checkpoint(checkpoint.text()) == checkpoint


@pytest.mark.parametrize(
    "text",
    [
        "origin\n042\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",  # leading zero
        "origin\n-1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "origin\n1\nAAEC\n",  # short root
        "origin\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nextension\n",
        "\n1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",  # no origin
    ],
    ids=["leading-zero", "negative", "short-root", "extension", "no-origin"],
)
def test_a_malformed_checkpoint_is_refused(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)

"""Errors raised by the signing package."""

from __future__ import annotations


class SigningError(Exception):
    """Base class of every error this package raises."""

    code = "SIGNING_ERROR"


class KeyStorageError(SigningError):
    """A stored private key could not be decrypted or decoded (wrong passphrase, corrupt data)."""

    code = "KEY_STORAGE"


class UnsupportedAlgorithm(SigningError):
    """An algorithm other than the ones ecert signs with was requested."""

    code = "ALG_NOT_ALLOWED"


class TokenFormatError(SigningError):
    """A token is not a well-formed ecert token. ``code`` names the failed rule.

    This is "malformed input", kept apart from "signature did not verify", which is
    not an exception but a ``False`` from :func:`signing.algorithms.verify_signature`.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail

"""Errors raised by the registry. Each has a stable ``code``; app.py maps codes to HTTP."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One bad input field: a JSON pointer-like path and what is wrong with it."""

    field: str
    message: str


class RegistryError(Exception):
    """Base class of every error this package raises."""

    code = "REGISTRY_ERROR"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(RegistryError):
    code = "NOT_FOUND"


class RegionNotInitialised(RegistryError):
    code = "REGION_NOT_INITIALISED"


class AlreadyExists(RegistryError):
    code = "ALREADY_EXISTS"


class InvalidInput(RegistryError):
    """Input failed validation; ``errors`` lists every bad field."""

    code = "VALIDATION_FAILED"

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []


class NotAuthenticated(RegistryError):
    code = "UNAUTHENTICATED"


class NotAllowed(RegistryError):
    """The office is authenticated but may not do this (e.g. issue a type it does not hold)."""

    code = "FORBIDDEN"


class IdempotencyConflict(RegistryError):
    """An Idempotency-Key was reused with a different request body."""

    code = "IDEMPOTENCY_CONFLICT"


class StatusTransitionRefused(RegistryError):
    """The lifecycle does not allow this status change (e.g. out of a final state)."""

    code = "STATUS_TRANSITION_REFUSED"


class KeyUnavailable(RegistryError):
    """The office has no active signing key able to sign this certificate type."""

    code = "NO_SIGNING_KEY"


class BatchTooLarge(RegistryError):
    """A batch holds more items than one request may (``registry.batch.MAX_BATCH_ITEMS``)."""

    code = "REQUEST_TOO_LARGE"

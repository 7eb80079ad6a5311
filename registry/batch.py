"""Batch issuance (issue 7): up to 1000 issuance requests in one call, each answered on its own.

Each item is an issuance body (as ``POST /api/v1/certificates`` takes) plus an optional
member ``idempotency_key``, and is checked and signed exactly as a single issuance
(:mod:`registry.issuance`): a bad item gets its own error and sinks none of the others.
The good ones are then recorded together in the caller's transaction: one update takes
their status-list positions, one log append adds their entries in item order, one lock
of the audit head chains their records, and one bulk INSERT per table writes them
(:mod:`registry.bulk`).

Idempotency is per item and per office, shared with the single endpoint's
``Idempotency-Key`` (the same column); an item's digest is that of the item without its
``idempotency_key``, so the same body sent either way is the same request:

* a key issued before, with the same body: that certificate, replayed;
  with another body: ``IdempotencyConflict``;
* a key used twice in one batch: the first item that passes validation claims it; a
  later item with the same body replays the first one's outcome, another body conflicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from registry.errors import (
    BatchTooLarge,
    FieldError,
    IdempotencyConflict,
    InvalidInput,
    KeyUnavailable,
    NotAllowed,
    RegistryError,
)
from registry.issuance import Approved, approve, record_issued, sign_certificate
from registry.models import Certificate, Office, SigningKey
from registry.offices import signing_key_for
from registry.regions import current_region, give_back_status_indexes, take_status_index
from registry.requests import IssuanceRequest, is_idempotency_key, parse_issuance_request, request_digest
from signing.keystore import KeyRing

MAX_BATCH_ITEMS: Final = 1000
IDEMPOTENCY_KEY: Final = "idempotency_key"


@dataclass(frozen=True)
class ItemResult:
    """One item's outcome: its certificate (new, or ``replayed`` for its idempotency
    key), or the error that refused it, exactly one of the two."""

    index: int
    certificate: Certificate | None = None
    replayed: bool = False
    error: RegistryError | None = None


@dataclass(frozen=True)
class _Item:
    index: int
    request: IssuanceRequest
    idempotency_key: str | None
    digest: str


def batch_items(body: Any) -> list[Any]:
    """The items of a batch request body ``{"items": [...]}``, not yet checked one by one.

    Raises:
        InvalidInput: the body is not such an object, or holds no items.
        BatchTooLarge: more than ``MAX_BATCH_ITEMS`` items.
    """
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    errors = [FieldError(name, "unknown member") for name in sorted(set(body) - {"items"})]
    items = body.get("items")
    if not isinstance(items, list) or not items:
        errors.append(FieldError("items", f"an array of 1 to {MAX_BATCH_ITEMS} issuance requests is required"))
    if errors:
        raise InvalidInput("the batch is not valid", errors)
    assert isinstance(items, list)
    if len(items) > MAX_BATCH_ITEMS:
        raise BatchTooLarge(f"a batch holds at most {MAX_BATCH_ITEMS} items, not {len(items)}: split it")
    return items


def issue_batch(
    session: Session, keyring: KeyRing, office: Office, items: list[Any], *, now: datetime, actor: str
) -> list[ItemResult]:
    """Issue each of ``items`` for ``office``: one result per item, in item order.

    Per-item refusals (``InvalidInput``, ``NotAllowed``, ``IdempotencyConflict``,
    ``KeyUnavailable``) are results, not exceptions. The caller commits; if that fails,
    nothing of the batch is kept.

    Raises:
        BatchTooLarge: more than ``MAX_BATCH_ITEMS`` items.
        KeyStorageError: a signing key cannot be decrypted (no item can be signed).
    """
    if len(items) > MAX_BATCH_ITEMS:
        raise BatchTooLarge(f"a batch holds at most {MAX_BATCH_ITEMS} items, not {len(items)}: split it")
    results: dict[int, ItemResult] = {}
    parsed: list[_Item] = []
    for index, raw in enumerate(items):
        try:
            parsed.append(_parse_item(index, raw))
        except InvalidInput as error:
            results[index] = ItemResult(index, error=error)
    earlier = _issued_with_keys(session, office, {i.idempotency_key for i in parsed if i.idempotency_key})
    claimed: dict[str, _Item] = {}
    repeats: list[tuple[_Item, _Item]] = []  # (item, the earlier item in this batch with its key)
    approved: list[tuple[_Item, Approved]] = []
    key_for = _cached_key_lookup(session, office)
    for item in parsed:
        key = item.idempotency_key
        if key is not None and key in earlier:
            found = earlier[key]
            if found.request_digest == item.digest:
                results[item.index] = ItemResult(item.index, certificate=found, replayed=True)
            else:
                results[item.index] = ItemResult(item.index, error=_conflict())
            continue
        if key is not None and key in claimed:
            if claimed[key].digest == item.digest:
                repeats.append((item, claimed[key]))
            else:
                results[item.index] = ItemResult(item.index, error=_conflict())
            continue
        try:
            approved.append((item, approve(session, office, item.request, now=now, key_for=key_for)))
        except (InvalidInput, NotAllowed, KeyUnavailable) as error:
            results[item.index] = ItemResult(item.index, error=error)
            continue
        if key is not None:
            claimed[key] = item
    issued = _sign_all(session, keyring, office, approved, results, now=now)
    for item, first in repeats:
        outcome = results[first.index]
        results[item.index] = ItemResult(
            item.index, certificate=outcome.certificate, replayed=outcome.certificate is not None, error=outcome.error
        )
    record_issued(session, issued, now=now, actor=actor)
    return [results[index] for index in range(len(items))]


def _parse_item(index: int, raw: Any) -> _Item:
    if not isinstance(raw, dict):
        raise InvalidInput("each item must be a JSON object")
    body = {name: value for name, value in raw.items() if name != IDEMPOTENCY_KEY}
    key = raw.get(IDEMPOTENCY_KEY)
    key_errors = (
        []
        if key is None or is_idempotency_key(key)
        else [FieldError(IDEMPOTENCY_KEY, "1 to 255 visible ASCII characters")]
    )
    try:
        request = parse_issuance_request(body)
    except InvalidInput as error:
        raise InvalidInput(error.detail, [*error.errors, *key_errors]) from error
    if key_errors:
        raise InvalidInput("the request is not valid", key_errors)
    return _Item(index, request, key, request_digest(body))


def _issued_with_keys(session: Session, office: Office, keys: set[str]) -> dict[str, Certificate]:
    """The office's certificates issued earlier under any of ``keys``, in one query."""
    if not keys:
        return {}
    found = session.scalars(
        select(Certificate)
        .where(Certificate.office_id == office.id, Certificate.idempotency_key.in_(sorted(keys)))
        .options(selectinload(Certificate.history))
    )
    return {certificate.idempotency_key: certificate for certificate in found if certificate.idempotency_key}


def _cached_key_lookup(session: Session, office: Office) -> Callable[[str], SigningKey]:
    """``signing_key_for`` asked once per certificate type, not once per item."""
    answers: dict[str, SigningKey | KeyUnavailable] = {}

    def key_for(type_code: str) -> SigningKey:
        if type_code not in answers:
            try:
                answers[type_code] = signing_key_for(session, office, type_code)
            except KeyUnavailable as error:
                answers[type_code] = error
        answer = answers[type_code]
        if isinstance(answer, KeyUnavailable):
            raise KeyUnavailable(answer.detail)
        return answer

    return key_for


def _sign_all(
    session: Session,
    keyring: KeyRing,
    office: Office,
    approved: list[tuple[_Item, Approved]],
    results: dict[int, ItemResult],
    *,
    now: datetime,
) -> list[Certificate]:
    """Sign every approved item, in order, on consecutive status-list positions; the
    certificates signed (their results filled in), positions left unused given back."""
    if not approved:
        return []
    region = current_region(session)
    first = take_status_index(session, region, len(approved))
    signed: list[Certificate] = []
    for item, approval in approved:
        try:
            certificate = sign_certificate(
                keyring,
                region,
                office,
                approval,
                status_index=first + len(signed),
                now=now,
                idempotency_key=item.idempotency_key,
                digest=item.digest,
            )
        except InvalidInput as error:  # too large for a QR code
            results[item.index] = ItemResult(item.index, error=error)
            continue
        signed.append(certificate)
        results[item.index] = ItemResult(item.index, certificate=certificate)
    give_back_status_indexes(session, region, len(approved) - len(signed))
    return signed


def _conflict() -> IdempotencyConflict:
    return IdempotencyConflict("this idempotency_key was already used with a different request body")

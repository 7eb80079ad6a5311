"""Reading another region's signed status: one-certificate answers and status lists.

The formats are written by :mod:`registry.status_list` and fixed in ``docs/status.md``.
Both readers check, in order:

1. syntax: three canonical base64url segments, JSON objects without duplicate members,
   a header of exactly ``alg``, ``kid``, ``typ`` with the expected ``typ``;
2. the signature, with the status key the caller holds for that region (from its
   trust list), with that key's algorithm: never a key or algorithm named by the header;
3. the payload's members, exactly, and their types;
4. the issuer is the region the caller asked, and the data is current at ``now``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from registry.status import Status
from registry.status_list import ANSWER_TYPE, BITS, LIST_TYPE, MAX_POSITIONS, UNUSED, code_at
from signing.algorithms import PublicKey, algorithm_of, verify_signature
from signing.errors import KeyStorageError, TokenFormatError
from signing.jwk import b64url, load_public_jwk
from signing.tokens import parse_token
from verify.errors import VerifyError

MAX_ANSWER_LENGTH: Final = 4096
MAX_LIST_LENGTH: Final = 16 * 1024 * 1024
# Regions' clocks differ a little: data may look issued this far in the future.
CLOCK_SKEW: Final = timedelta(seconds=60)

_ANSWER_MEMBERS: Final = frozenset({"iss", "jti", "status", "known", "iat", "exp"})
_LIST_MEMBERS: Final = frozenset({"iss", "iat", "exp", "bits", "size", "lst"})


class StatusDataRefused(VerifyError):
    """Status data that must not be used: malformed, badly signed, foreign or stale.

    A verifier that gets this falls back to another source or answers UNDETERMINED
    ``STATUS_UNAVAILABLE``, never INVALID. ``problem`` says which rule failed:
    ``MALFORMED``, ``SIG_INVALID``, ``ISSUER_MISMATCH`` or ``STALE``.
    """

    code = "STATUS_UNAVAILABLE"

    def __init__(self, problem: str, detail: str) -> None:
        super().__init__(f"{problem}: {detail}")
        self.problem = problem


@dataclass(frozen=True)
class StatusAnswer:
    """A verified status answer about one certificate."""

    issuer: str
    certificate_id: str
    known: bool
    status: Status | None
    token_digest: str | None
    issued_at: datetime
    expires_at: datetime
    log_index: int | None = None

    def is_about(self, token: str) -> bool:
        """Whether the answer was made for exactly this token (its ``header.payload``)."""
        signing_input = token.rsplit(".", 1)[0].encode("ascii")
        return self.known and self.token_digest == b64url(hashlib.sha256(signing_input).digest())


@dataclass(frozen=True)
class StatusList:
    """A verified status list: the status at each position."""

    issuer: str
    issued_at: datetime
    expires_at: datetime
    size: int
    packed: bytes

    def status_at(self, index: int) -> Status | None:
        """The status at ``index``; None for an unused position or one beyond the list."""
        if not 0 <= index < self.size:
            return None
        code = code_at(self.packed, index)
        return None if code == UNUSED else Status(f"{code:02d}")


def read_status_answer(
    jws: str, status_public_jwk: dict[str, Any], *, issuer: str, certificate_id: str, now: datetime
) -> StatusAnswer:
    """Verify a status answer from region ``issuer`` about ``certificate_id``.

    Raises:
        StatusDataRefused: anything wrong with it (see the module's steps).
    """
    payload = _verified_payload(jws, status_public_jwk, ANSWER_TYPE, MAX_ANSWER_LENGTH)
    known = payload.get("known")
    members = _ANSWER_MEMBERS | {"sig"} if known is True else _ANSWER_MEMBERS
    # An answer from a region with a transparency log names the token's entry in it.
    _require_members(payload, members | {"log"} if known is True and "log" in payload else members)
    log_index = payload.get("log")
    if log_index is not None and not _is_int(log_index):
        raise StatusDataRefused("MALFORMED", "log is an entry index")
    issued_at, expires_at = _window(payload, issuer, now)
    if not isinstance(known, bool):
        raise StatusDataRefused("MALFORMED", "known is not a boolean")
    if payload["jti"] != certificate_id:
        raise StatusDataRefused("MALFORMED", "the answer is about another certificate")
    status: Status | None = None
    if known:
        try:
            status = Status(payload["status"])
        except ValueError as error:
            raise StatusDataRefused("MALFORMED", "status is not a national status code") from error
        if not isinstance(payload["sig"], str) or len(payload["sig"]) != 43:
            raise StatusDataRefused("MALFORMED", "sig is not a base64url SHA-256 digest")
    elif payload["status"] is not None:
        raise StatusDataRefused("MALFORMED", "an unknown certificate has no status")
    return StatusAnswer(
        issuer=issuer,
        certificate_id=certificate_id,
        known=known,
        status=status,
        token_digest=payload["sig"] if known else None,
        log_index=log_index,
        issued_at=issued_at,
        expires_at=expires_at,
    )


def read_status_list(jws: str, status_public_jwk: dict[str, Any], *, issuer: str, now: datetime) -> StatusList:
    """Verify region ``issuer``'s status list and unpack it.

    Raises:
        StatusDataRefused: anything wrong with it (see the module's steps), including a
            list whose positions hold values that are not status codes.
    """
    payload = _verified_payload(jws, status_public_jwk, LIST_TYPE, MAX_LIST_LENGTH)
    _require_members(payload, _LIST_MEMBERS)
    issued_at, expires_at = _window(payload, issuer, now)
    size, compressed = payload["size"], payload["lst"]
    if payload["bits"] != BITS or isinstance(payload["bits"], bool):
        raise StatusDataRefused("MALFORMED", f"bits must be {BITS}")
    if not _is_int(size) or not 0 <= size <= MAX_POSITIONS:
        raise StatusDataRefused("MALFORMED", f"size must be a whole number from 0 to {MAX_POSITIONS}")
    if not isinstance(compressed, str):
        raise StatusDataRefused("MALFORMED", "lst is not a string")
    packed = _inflate(_b64url_decode(compressed, "lst"), (size + 1) // 2)
    if any(byte & 0x88 for byte in packed):  # codes are 0 (unused) and 1 .. 7
        raise StatusDataRefused("MALFORMED", "a position holds a value that is no status code")
    if size % 2 == 1 and packed[-1] & 0x0F:
        raise StatusDataRefused("MALFORMED", "the position after the last one is not 0")
    return StatusList(issuer=issuer, issued_at=issued_at, expires_at=expires_at, size=size, packed=packed)


# ---------------------------------------------------------------- the steps


def _verified_payload(jws: str, jwk: dict[str, Any], typ: str, max_length: int) -> dict[str, Any]:
    try:
        key: PublicKey = load_public_jwk(jwk)
    except KeyStorageError as error:
        raise StatusDataRefused("MALFORMED", f"the status key is unusable: {error}") from error
    # 1. syntax (the strict token parser: canonical base64url, exact header, no duplicates)
    if not isinstance(jws, str):
        raise StatusDataRefused("MALFORMED", "not a JWS")
    try:
        parsed = parse_token(jws, max_length, typ=typ)
    except TokenFormatError as error:
        raise StatusDataRefused("MALFORMED", error.detail) from error
    algorithm = algorithm_of(key)
    if parsed.header.alg != algorithm:
        raise StatusDataRefused("MALFORMED", f"the header must say alg {algorithm!r}")
    payload = parsed.payload
    # 2. signature, with the caller's key and that key's algorithm
    if not verify_signature(algorithm, key, parsed.signing_input, parsed.signature):
        raise StatusDataRefused("SIG_INVALID", "the signature does not verify with the region's status key")
    return payload


def _require_members(payload: dict[str, Any], members: frozenset[str]) -> None:
    if set(payload) != members:
        raise StatusDataRefused("MALFORMED", f"the payload must hold exactly {', '.join(sorted(members))}")


def _window(payload: dict[str, Any], issuer: str, now: datetime) -> tuple[datetime, datetime]:
    # 4. issuer and freshness
    if payload["iss"] != issuer:
        raise StatusDataRefused("ISSUER_MISMATCH", f"issued by {payload['iss']!r}, not {issuer!r}")
    iat, exp = payload["iat"], payload["exp"]
    if not _is_int(iat) or not _is_int(exp) or not iat < exp:
        raise StatusDataRefused("MALFORMED", "iat and exp must be whole seconds, iat before exp")
    issued_at, expires_at = datetime.fromtimestamp(iat, UTC), datetime.fromtimestamp(exp, UTC)
    if issued_at > now + CLOCK_SKEW:
        raise StatusDataRefused("STALE", "issued in the future")
    if now >= expires_at:
        raise StatusDataRefused("STALE", "expired")
    return issued_at, expires_at


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**40


def _b64url_decode(segment: str, name: str) -> bytes:
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as error:
        raise StatusDataRefused("MALFORMED", f"{name} is not base64url") from error
    if b64url(decoded) != segment:
        raise StatusDataRefused("MALFORMED", f"{name} is not canonical unpadded base64url")
    return decoded


def _inflate(compressed: bytes, expected: int) -> bytes:
    # Never inflate more than the declared size: a small list cannot become a zlib bomb.
    inflater = zlib.decompressobj()
    try:
        packed = inflater.decompress(compressed, expected + 1)
    except zlib.error as error:
        raise StatusDataRefused("MALFORMED", "lst is not zlib data") from error
    if len(packed) != expected or not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        raise StatusDataRefused("MALFORMED", f"lst does not inflate to exactly {expected} bytes")
    return packed

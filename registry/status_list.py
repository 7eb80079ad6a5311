"""Signed certificate status for other regions: one-certificate answers and the status list.

Both are JWS compact tokens signed with the region's *status* key (Ed25519,
``region.status_kid``); the root key signs only trust lists. The formats are fixed in
``docs/status.md``; the readers are in :mod:`verify.status_sources`.

* A **status answer** (``typ`` ``ecert-status``) says, for one identifier, whether this
  registry knows it and its national status code, and binds the answer to the exact
  registered token (``sig``: SHA-256 of its ``header.payload``). Short-lived (5 minutes).
* A **status list** (``typ`` ``ecert-status-list``) holds every certificate's status as
  a 4-bit national code at its ``status_index`` (two positions per byte, high nibble
  first), zlib-compressed. Short-lived (1 hour by default).

Nothing here is cached in the database: both are computed from the certificate rows on
request, so a status change is visible in the next answer or list.
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.errors import RegionNotInitialised
from registry.models import Certificate, Region, StatusChange
from registry.regions import current_region
from registry.status import Status
from signing.jwk import b64url
from signing.keystore import KeyRing
from signing.tokens import encode_token

ANSWER_TYPE: Final = "ecert-status"
LIST_TYPE: Final = "ecert-status-list"
ANSWER_LIFETIME: Final = timedelta(seconds=300)
BITS: Final = 4
UNUSED: Final = 0  # the code of a position no certificate holds
MAX_POSITIONS: Final = 1 << 26  # 32 MiB packed; a reader refuses bigger lists (zlib bombs)


# ---------------------------------------------------------------- the bit layout


def pack_statuses(size: int, statuses: dict[int, Status]) -> bytes:
    """``size`` positions, 4 bits each, two per byte: position ``i`` is in byte ``i // 2``,
    the high nibble when ``i`` is even, the low nibble when odd. The value is the national
    code as a number (``"02"`` → 2); positions absent from ``statuses`` hold 0. An odd
    ``size`` leaves the last low nibble 0.

    Raises:
        ValueError: a position outside ``0 .. size - 1``.
    """
    packed = bytearray((size + 1) // 2)
    for index, status in statuses.items():
        if not 0 <= index < size:
            raise ValueError(f"status position {index} is outside a list of {size}")
        shift = 4 if index % 2 == 0 else 0
        packed[index // 2] |= int(status.value) << shift
    return bytes(packed)


def code_at(packed: bytes, index: int) -> int:
    """The 4-bit value at position ``index`` of a list packed by :func:`pack_statuses`.

    Raises:
        IndexError: ``index`` is beyond the packed bytes or negative.
    """
    if index < 0:
        raise IndexError("negative status position")
    byte = packed[index // 2]
    return byte >> 4 if index % 2 == 0 else byte & 0x0F


# ---------------------------------------------------------------- signing


def status_answer(session: Session, keyring: KeyRing, certificate_id: str, *, now: datetime) -> str:
    """The signed status of one certificate, as another region asks for it.

    An identifier this registry never issued is answered, signed, as unknown
    (``known: false``, ``status: null``): verifiers report it as ``NOT_IN_REGISTRY``.

    Raises:
        RegionNotInitialised: no region, or a region without a status key.
        signing.errors.KeyStorageError: the status key cannot be decrypted.
    """
    region = current_region(session)
    found = session.get(Certificate, certificate_id)
    issued_at = _seconds(now)
    payload: dict[str, Any] = {
        "iss": region.code,
        "jti": certificate_id,
        "status": None if found is None else found.status,
        "known": found is not None,
        "iat": issued_at,
        "exp": issued_at + int(ANSWER_LIFETIME.total_seconds()),
    }
    if found is not None:
        payload["sig"] = signing_input_digest(found.token)
        if found.log_index is not None:
            payload["log"] = found.log_index  # its issuance entry in our transparency log
    return sign_with_status_key(region, keyring, payload, ANSWER_TYPE)


def status_list(session: Session, keyring: KeyRing, *, now: datetime, lifetime: timedelta | None = None) -> str:
    """The region's signed status list: every certificate's code at its ``status_index``.

    ``lifetime`` defaults to the region's (``region init --status-list-lifetime``, 1 h).

    Raises:
        RegionNotInitialised: no region, or a region without a status key.
        signing.errors.KeyStorageError: the status key cannot be decrypted.
    """
    region = current_region(session)
    if lifetime is None:
        lifetime = timedelta(seconds=region.status_list_lifetime)
    rows = session.execute(
        select(Certificate.status_index, Certificate.status).where(Certificate.status_index.is_not(None))
    ).all()
    statuses = {int(index): Status(code) for index, code in rows}
    # Under READ COMMITTED the region row and the rows may come from different instants;
    # the list is as long as the positions it actually holds.
    size = max(region.next_status_index, max(statuses, default=-1) + 1)
    issued_at = _seconds(now)
    payload = {
        "iss": region.code,
        "iat": issued_at,
        "exp": issued_at + int(lifetime.total_seconds()),
        "bits": BITS,
        "size": size,
        "lst": b64url(zlib.compress(pack_statuses(size, statuses), 9)),
    }
    return sign_with_status_key(region, keyring, payload, LIST_TYPE)


def signing_input_digest(token: str) -> str:
    """base64url(SHA-256(``header.payload``)) of a compact token: what ``sig`` holds."""
    signing_input = token.rsplit(".", 1)[0].encode("ascii")
    return b64url(hashlib.sha256(signing_input).digest())


def sign_with_status_key(region: Region, keyring: KeyRing, payload: dict[str, Any], typ: str) -> str:
    """Sign ``payload`` with the region's status key (typ ``typ``)."""
    if region.status_kid is None or region.status_private_key is None:
        raise RegionNotInitialised("the region has no status key; it predates status lists")
    stored = region.status_private_key
    key = keyring.private_key(region.status_kid, lambda: stored)
    return encode_token(payload, key, region.status_kid, typ=typ)


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


# ---------------------------------------------------------------- a short per-process cache


@dataclass(frozen=True)
class _Cached:
    state: tuple[Any, ...]
    signed_at: datetime
    jws: str


class StatusListCache:
    """The last signed list, reused for up to ``ttl`` while the registry's statuses are unchanged.

    "Unchanged" is judged by a cheap query (the newest status change, the next free
    position, the status key), so a change made by any process is seen at once, except
    one committed out of id order by a concurrent transaction, which waits for ``ttl``.
    Thread-safe; one per deployment.
    """

    def __init__(self, ttl: timedelta = timedelta(seconds=60)) -> None:
        self._ttl = ttl
        self._cached: _Cached | None = None
        self._lock = threading.Lock()

    def get(self, session: Session, *, now: datetime, sign: Callable[[], str]) -> str:
        """The cached list if still current at ``now``, else a fresh one from ``sign``."""
        state = _registry_state(session)
        with self._lock:
            cached = self._cached
        # Never serve more than a quarter of a list's lifetime old (short lifetimes too).
        ttl = min(self._ttl, timedelta(seconds=current_region(session).status_list_lifetime) / 4)
        if cached is not None and cached.state == state and cached.signed_at <= now < cached.signed_at + ttl:
            return cached.jws
        jws = sign()
        with self._lock:
            self._cached = _Cached(state=state, signed_at=now, jws=jws)
        return jws


def _registry_state(session: Session) -> tuple[Any, ...]:
    region = current_region(session)
    newest_change = session.scalar(select(func.max(StatusChange.id)))
    return (region.code, region.status_kid, region.next_status_index, newest_change)

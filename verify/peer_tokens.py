"""The partner token another region issued us (``peer token``), held sealed.

A peer that admitted us as a partner region (its ``partner add``) counts our online status
lookups under its partner limit instead of its anonymous per-address one. We hold its
token sealed with our key passphrase (:mod:`signing.sealed`), bound to the peer's region,
and present it only to URLs under the peer's pinned URL
(:class:`verify.sources.PartnerCredential`). No verdict depends on it.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from sqlalchemy.orm import Session

from registry import api_tokens, audit
from registry.errors import FieldError, InvalidInput
from registry.models import Peer
from signing.errors import KeyStorageError
from signing.keystore import KeyRing
from verify.sources import PartnerCredential

_PARTNER_TOKEN = re.compile(re.escape(api_tokens.PARTNER_PREFIX) + r"[A-Za-z0-9_-]{32,}")

log = logging.getLogger(__name__)


def set_partner_token(session: Session, keyring: KeyRing, peer: Peer, token: str, *, now: datetime, actor: str) -> None:
    """Hold the API token ``peer`` issued us as its partner, sealed with our key passphrase
    and bound to the peer; audited by its public prefix only. Replaces any token held.

    Raises:
        InvalidInput: not the shape of a partner token (``ecertp_...``).
        KeyStorageError: our key passphrase is empty.
    """
    token = token.strip()
    if len(token) > api_tokens.MAX_TOKEN_LENGTH or not _PARTNER_TOKEN.fullmatch(token):
        raise InvalidInput(
            "the partner token cannot be stored",
            [
                FieldError(
                    "token",
                    "the peer's partner API token: ecertp_ and base64url characters, as `partner add` printed it",
                )
            ],
        )
    replaced = peer.partner_token is not None
    peer.partner_token = keyring.seal(token.encode("ascii"), _token_context(peer.region_code))
    audit.record(
        session,
        now=now,
        actor=actor,
        action="peer.partner_token",
        subject_type="peer",
        subject_id=peer.region_code,
        details={
            "prefix": api_tokens.shown_prefix(token, api_tokens.PARTNER_PREFIX),
            "replaced": replaced,
        },
    )
    session.flush()


def clear_partner_token(session: Session, peer: Peer, *, now: datetime, actor: str) -> bool:
    """Stop holding ``peer``'s partner token (we ask it anonymously again); False if none was held."""
    if peer.partner_token is None:
        return False
    peer.partner_token = None
    audit.record(
        session,
        now=now,
        actor=actor,
        action="peer.partner_token_clear",
        subject_type="peer",
        subject_id=peer.region_code,
        details={},
    )
    session.flush()
    return True


def open_partner_token(keyring: KeyRing, peer: Peer) -> str | None:
    """The partner token held for ``peer``, in clear; None when none is held.

    Raises:
        KeyStorageError: it cannot be opened (another passphrase sealed it, or the column was altered).
    """
    if peer.partner_token is None:
        return None
    return _opened(keyring, peer.region_code, peer.partner_token)


def _opened(keyring: KeyRing, region_code: str, sealed: bytes) -> str:
    return keyring.secret(_token_context(region_code), sealed).decode("ascii")


def _token_context(region_code: str) -> str:
    return f"peer-token:{region_code}"


def partner_credential(peer: Peer, keyring: KeyRing) -> PartnerCredential | None:
    """What the online status lookup presents to ``peer``: the token held, opened only when needed."""
    if peer.partner_token is None:
        return None
    region_code, sealed = peer.region_code, peer.partner_token

    def token() -> str | None:
        try:
            return _opened(keyring, region_code, sealed)
        except KeyStorageError as error:
            # The token only spares us the peer's anonymous rate limit: ask without it.
            log.warning(
                "the partner token held for region %s cannot be opened (%s); asking anonymously", region_code, error
            )
            return None

    return PartnerCredential(base_url=peer.url, token=token)

"""API bearer tokens: the one way offices and partner regions authenticate over HTTP.

A token is a public prefix naming whom it is for (``ecert_`` an office, ``ecertp_`` a
partner region) and 256 bits from the CSPRNG. Only its SHA-256 digest is stored, and
it is shown once. A token authenticates only as the kind its prefix names: an office
token never identifies a partner, and a partner token never an office.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import audit
from registry.errors import NotAuthenticated
from registry.models import ApiToken, Office, Partner

OFFICE_PREFIX: Final = "ecert_"  # public prefixes, not secrets
PARTNER_PREFIX: Final = "ecertp_"
TOKEN_BYTES: Final = 32  # 256 bits
MAX_TOKEN_LENGTH: Final = 128
SHOWN_PREFIX_CHARACTERS: Final = 6  # of the random part, kept to tell tokens apart in audits


def issue_token(session: Session, holder: Office | Partner, *, now: datetime, actor: str) -> str:
    """A new API token for ``holder``, audited; only its digest is stored. Shown once."""
    prefix = _prefix_of(holder)
    token = prefix + secrets.token_urlsafe(TOKEN_BYTES)
    record = ApiToken(
        office_id=holder.id if isinstance(holder, Office) else None,
        partner_id=holder.id if isinstance(holder, Partner) else None,
        digest=_digest(token),
        prefix=shown_prefix(token, prefix),
        created_at=now,
        revoked_at=None,
    )
    session.add(record)
    session.flush()
    subject_type, subject_id = _subject(holder)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="token.issue",
        subject_type=subject_type,
        subject_id=subject_id,
        details={"token_id": record.id, "prefix": record.prefix},
    )
    return token


def revoke_tokens(session: Session, holder: Office | Partner, *, now: datetime, actor: str) -> int:
    """Revoke every live token of ``holder``, each audited; return how many."""
    subject_type, subject_id = _subject(holder)
    tokens = session.scalars(
        select(ApiToken).where(_held_by(holder), ApiToken.revoked_at.is_(None)).order_by(ApiToken.id)
    ).all()
    for token in tokens:
        token.revoked_at = now
        audit.record(
            session,
            now=now,
            actor=actor,
            action="token.revoke",
            subject_type=subject_type,
            subject_id=subject_id,
            details={"token_id": token.id, "prefix": token.prefix},
        )
    session.flush()
    return len(tokens)


def live_token_count(session: Session, holder: Office | Partner) -> int:
    return len(session.scalars(select(ApiToken.id).where(_held_by(holder), ApiToken.revoked_at.is_(None))).all())


def shown_prefix(token: str, prefix: str) -> str:
    """What audits and listings show of ``token``: its public prefix and a few random characters."""
    return token[: len(prefix) + SHOWN_PREFIX_CHARACTERS]


def find_live_token(session: Session, bearer: str, prefix: str) -> ApiToken:
    """The live token record for ``bearer``, which must carry ``prefix``.

    Raises:
        NotAuthenticated: another kind of token, malformed, unknown or revoked.
    """
    if not bearer.startswith(prefix) or len(bearer) > MAX_TOKEN_LENGTH:
        raise NotAuthenticated("invalid API token")
    record = session.scalars(select(ApiToken).where(ApiToken.digest == _digest(bearer))).first()
    if record is None or record.revoked_at is not None:
        raise NotAuthenticated("invalid API token")
    return record


def _prefix_of(holder: Office | Partner) -> str:
    return OFFICE_PREFIX if isinstance(holder, Office) else PARTNER_PREFIX


def _subject(holder: Office | Partner) -> tuple[str, str]:
    if isinstance(holder, Office):
        return "office", holder.credit_code
    return "partner", holder.region_code


def _held_by(holder: Office | Partner) -> Any:
    if isinstance(holder, Office):
        return ApiToken.office_id == holder.id
    return ApiToken.partner_id == holder.id


def _digest(token: str) -> str:
    # The token has 256 bits of entropy, so a fast unsalted hash is safe here.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()

"""Partner regions (合作地区): other regions' systems admitted to verify here in bulk.

A partner presents its API token (``ecertp_...``) on the verification endpoints and is
then counted under its own, higher rate limit instead of its address's. A partner token
grants nothing else: it never authenticates an office endpoint.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import api_tokens, audit
from registry.errors import AlreadyExists, FieldError, InvalidInput, NotAuthenticated, NotFound
from registry.models import Partner
from registry.text import clean_text

PARTNER_TOKEN_PREFIX: Final = api_tokens.PARTNER_PREFIX
_REGION_CODE: Final = re.compile(r"[1-9][0-9]{5}")  # GB/T 2260
MAX_NAME_LENGTH: Final = 100


def add_partner(session: Session, *, region_code: str, name: str, now: datetime, actor: str) -> tuple[Partner, str]:
    """Admit a partner region and issue its first API token (returned in clear, once).

    Raises:
        InvalidInput: not a GB/T 2260 region code, or a bad name.
        AlreadyExists: the region is a partner already (``new_token`` issues another token).
    """
    errors = []
    region_code = region_code.strip()
    if not _REGION_CODE.fullmatch(region_code):
        errors.append(FieldError("region", "a GB/T 2260 code: six digits, not starting with 0"))
    try:
        name = clean_text(name)
    except ValueError as error:
        errors.append(FieldError("name", str(error)))
    if not name or len(name) > MAX_NAME_LENGTH:
        errors.append(FieldError("name", f"1 to {MAX_NAME_LENGTH} characters"))
    if errors:
        raise InvalidInput("the partner cannot be added", errors)
    if _find(session, region_code) is not None:
        raise AlreadyExists(f"region {region_code} is a partner already")
    partner = Partner(region_code=region_code, name=name, created_at=now)
    session.add(partner)
    session.flush()
    audit.record(
        session,
        now=now,
        actor=actor,
        action="partner.add",
        subject_type="partner",
        subject_id=region_code,
        details={"name": name},
    )
    return partner, api_tokens.issue_token(session, partner, now=now, actor=actor)


def get_partner(session: Session, region_code: str) -> Partner:
    """The partner for this region code.

    Raises:
        NotFound: the region is not a partner.
    """
    partner = _find(session, region_code.strip())
    if partner is None:
        raise NotFound(f"region {region_code!r} is not a partner")
    return partner


def list_partners(session: Session) -> list[tuple[Partner, int]]:
    """Every partner with its number of live tokens (0: revoked), by region code."""
    partners = session.scalars(select(Partner).order_by(Partner.region_code)).all()
    return [(partner, api_tokens.live_token_count(session, partner)) for partner in partners]


def new_token(session: Session, partner: Partner, *, now: datetime, actor: str) -> str:
    """Another API token for ``partner`` (to rotate, or to re-admit after a revocation)."""
    return api_tokens.issue_token(session, partner, now=now, actor=actor)


def revoke_partner(session: Session, partner: Partner, *, now: datetime, actor: str) -> int:
    """Revoke every live token of ``partner``; return how many. It verifies anonymously from then on."""
    return api_tokens.revoke_tokens(session, partner, now=now, actor=actor)


def authenticate_partner(session: Session, bearer: str) -> Partner:
    """The partner holding this live API token (never an office's token).

    Raises:
        NotAuthenticated: unknown, malformed or revoked token, or not a partner's.
    """
    record = api_tokens.find_live_token(session, bearer, PARTNER_TOKEN_PREFIX)
    if record.partner is None:
        raise NotAuthenticated("invalid API token")
    return record.partner


def _find(session: Session, region_code: str) -> Partner | None:
    return session.scalars(select(Partner).where(Partner.region_code == region_code)).first()

"""What the verifier trusts: the regions it recognises and their keys.

For now that is our own region, read from our registry. Peers' synced trust lists
(issue 4) will stand beside it behind the same :class:`TrustedRegion` shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import SigningKey
from registry.offices import COMPROMISED
from registry.regions import find_region
from signing.algorithms import Algorithm, PublicKey, require_algorithm
from signing.jwk import load_public_jwk


@dataclass(frozen=True)
class TrustedKey:
    """A signing key as the verifier knows it: from the trust list, never from a token."""

    kid: str
    algorithm: Algorithm
    public_key: PublicKey
    office_code: str
    office_name: str
    types: frozenset[str]
    not_before: datetime
    not_after: datetime | None
    compromised_since: datetime | None


@dataclass(frozen=True)
class TrustedRegion:
    code: str
    name: str
    public_url: str


class OwnRegionTrust:
    """Our own region's keys, read from our registry."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def region(self, code: str) -> TrustedRegion | None:
        region = find_region(self._session)
        if region is None or region.code != code:
            return None
        return TrustedRegion(code=region.code, name=region.name, public_url=region.public_url)

    def key(self, kid: str) -> TrustedKey | None:
        row = self._session.scalars(select(SigningKey).where(SigningKey.kid == kid)).first()
        if row is None:
            return None
        return TrustedKey(
            kid=row.kid,
            algorithm=require_algorithm(row.algorithm),
            public_key=load_public_jwk(row.public_jwk),
            office_code=row.office.credit_code,
            office_name=row.office.name,
            types=frozenset(row.types),
            not_before=row.not_before,
            not_after=row.not_after,
            compromised_since=row.compromised_since if row.state == COMPROMISED else None,
        )

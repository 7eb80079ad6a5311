"""The offline bundle: everything a service hall needs to verify without a network.

One JWS (``typ`` ``ecert-bundle``) signed with this region's status key, holding, for
this region and every peer, the signed trust list and status list as they were signed
(this region's status list freshly signed for the bundle's lifetime), the newest log
checkpoint (ours; for a peer, the one we witnessed, with our cosignature), and an expiry.
A verifier pins this region's root, checks this region's trust list with it, and the
bundle's signature with the status key that list names; each peer's lists are checked
under the root this region pinned for it. The reader is :mod:`verify.bundle`; the
format is in ``docs/bundle.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import audit
from registry.log import current_checkpoint
from registry.models import Peer
from registry.regions import current_region
from registry.status_list import sign_with_status_key, status_list
from registry.times import iso_utc
from registry.trust_list import current_trust_list, publish_trust_list
from signing.keystore import KeyRing

BUNDLE_TYPE: Final = "ecert-bundle"
DEFAULT_LIFETIME: Final = timedelta(hours=24)
MAX_LIFETIME: Final = timedelta(days=7)


def export_bundle(
    session: Session, keyring: KeyRing, *, now: datetime, actor: str, lifetime: timedelta = DEFAULT_LIFETIME
) -> str:
    """The signed bundle, valid for ``lifetime`` (at most :data:`MAX_LIFETIME`).

    May publish a fresh trust list of our own (the caller commits). Peers are included
    as held, stale or not: the verifier judges each list's freshness.

    Raises:
        RegionNotInitialised: no region (or one without a status key).
        KeyStorageError: a key cannot be decrypted.
        ValueError: ``lifetime`` is not positive or longer than the maximum.
    """
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise ValueError(f"a bundle lives more than 0 s and at most {MAX_LIFETIME}")
    region = current_region(session)
    own = current_trust_list(session, keyring, now=now, actor=actor)
    if own.expires_at < now + lifetime:
        # Our own keys must stay trusted for the bundle's whole life, not only until the
        # current list (which may have a quarter of its lifetime left) expires.
        region_lifetime = timedelta(seconds=region.trust_list_lifetime)
        own = publish_trust_list(session, keyring, now=now, actor=actor, lifetime=max(lifetime, region_lifetime))
    issued_at = int(now.astimezone(UTC).timestamp())
    entries: list[dict[str, Any]] = [
        {
            "code": region.code,
            "root": {**region.root_public_jwk, "kid": region.root_kid},
            "trust_list": own.jws,
            "status_list": status_list(session, keyring, now=now, lifetime=lifetime),
            "checkpoint": current_checkpoint(session, keyring, now=now).note,
        }
    ]
    peers = session.scalars(select(Peer).order_by(Peer.region_code)).all()
    entries.extend(
        {
            "code": peer.region_code,
            "root": {**peer.root_public_jwk, "kid": peer.root_fingerprint},
            "trust_list": peer.trust_list,
            "status_list": peer.status_list,
            # The newest checkpoint we witnessed, with our cosignature (null before any).
            "checkpoint": peer.log_cosigned or peer.log_checkpoint,
        }
        for peer in peers
    )
    payload = {
        "iss": region.code,
        "iat": issued_at,
        "exp": issued_at + int(lifetime.total_seconds()),
        "regions": entries,
    }
    audit.record(
        session,
        now=now,
        actor=actor,
        action="bundle.export",
        subject_type="region",
        subject_id=region.code,
        details={"regions": [entry["code"] for entry in entries], "expires_at": iso_utc(now + lifetime)},
    )
    return sign_with_status_key(region, keyring, payload, BUNDLE_TYPE)

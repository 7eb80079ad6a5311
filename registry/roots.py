"""Rotating this region's root key.

The old root signs a rotation statement (``typ`` ``ecert-root-rotation``) naming the new
root and the sequence number of the first trust list the new root signs; every later
trust list carries all such statements in ``root_chain``. A peer that pinned any earlier
root follows the chain, one signature per step, to the root that signed the list, and
accepts nothing signed by a root it cannot chain to (as TUF rotates its root role).
The old root's private key is erased: after a rotation it can sign nothing more here.
The format is in ``docs/trust-list.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry import audit
from registry.models import RootRotation, TrustList
from registry.trust_list import lock_region, publish_trust_list
from signing.algorithms import generate_private_key
from signing.jwk import public_jwk, thumbprint
from signing.keystore import KeyRing
from signing.tokens import encode_token

ROTATION_TYPE: Final = "ecert-root-rotation"


def rotate_root(session: Session, keyring: KeyRing, *, now: datetime, actor: str) -> RootRotation:
    """Replace the region's root key, and publish a trust list signed by the new one.

    The statement is signed by the old root before its private key is dropped; the trust
    list published next (signed by the new root) carries it in ``root_chain``.

    Raises:
        RegionNotInitialised: no region yet.
        KeyStorageError: the old root key cannot be decrypted (wrong passphrase).
    """
    region = lock_region(session)
    old_kid = region.root_kid
    old_root = keyring.private_key(old_kid, lambda: region.root_private_key)
    new_root = generate_private_key("EdDSA")
    new_kid = thumbprint(new_root.public_key())
    previous = session.scalar(select(func.max(TrustList.sequence)))
    takes_over_at = 1 if previous is None else previous + 1
    statement = {
        "region": region.code,
        "seq": takes_over_at,
        "iat": int(now.astimezone(UTC).timestamp()),
        "old": {**region.root_public_jwk, "kid": old_kid},
        "new": {**public_jwk(new_root.public_key()), "kid": new_kid},
    }
    rotation = RootRotation(
        sequence=takes_over_at,
        old_kid=old_kid,
        new_kid=new_kid,
        jws=encode_token(statement, old_root, old_kid, typ=ROTATION_TYPE),
        rotated_at=now,
    )
    session.add(rotation)
    region.root_kid = new_kid
    region.root_public_jwk = public_jwk(new_root.public_key())
    region.root_private_key = keyring.encrypt(new_root, new_kid)
    keyring.forget(old_kid)  # nor is it kept decrypted in this process
    audit.record(
        session,
        now=now,
        actor=actor,
        action="region.rotate_root",
        subject_type="region",
        subject_id=region.code,
        details={"old_root_fingerprint": old_kid, "new_root_fingerprint": new_kid, "sequence": takes_over_at},
    )
    session.flush()
    published = publish_trust_list(session, keyring, now=now, actor=actor)
    assert published.sequence == takes_over_at
    return rotation

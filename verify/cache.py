"""What every verification reads of our registry, kept in memory until it changes.

Every verification needs our region, its signing keys, the catalog and the peers'
copies; they change when an administrator acts, while verifications come by the
thousand. A :class:`RegistryView` holds them, immutable, labelled with the database's
cache generation (:mod:`registry.generation`) it was read under. A
:class:`RegistryViewCache` keeps the newest view: each verification request reads the
generation once (one small query) and gets the held view while the generation has not
moved, or a fresh one (four more queries) when it has.

Invalidation is the database's: triggers bump the generation in the very transaction of
every change to the tables a view is built from, whoever makes it (another gunicorn
worker, ``office key-compromised`` in another process, ``peer sync``, ``psql``). So a
change is seen by the first verification that starts after its commit, in every process.
The generation is read before the view's rows: a view may be newer than its label (then
it is read again once, harmlessly), never older.

A cache belongs to one deployment (:class:`deployment.Deployment`, so one per worker
process and database). Certificates and their status are never cached: they are read for
each request, by identifier, in one query. Of our log, only what stays true is kept
(proof nodes; the newest checkpoint seen, for seconds: :mod:`verify.log_cache`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog import list_types
from registry.generation import current_generation
from registry.models import Office, SigningKey
from registry.offices import COMPROMISED
from registry.regions import find_region
from signing.algorithms import require_algorithm
from signing.jwk import load_public_jwk
from signing.keystore import KeyRing
from verify.peers import peer_copies
from verify.report import TypeInfo, type_info
from verify.trust import HeldTrust, TrustedKey, TrustedRegion


@dataclass(frozen=True)
class RegistryView:
    """Our region, keys and peers' copies (:class:`HeldTrust`) and the catalog, as of
    ``generation``."""

    generation: int
    trust: HeldTrust
    types: Mapping[str, TypeInfo]

    def type_info(self, type_code: str) -> TypeInfo | None:
        return self.types.get(type_code)


class RegistryViewCache:
    """The newest :class:`RegistryView` of one database, for one process.

    ``keyring`` opens the partner tokens we hold for peers (when first presented).
    Thread-safe: a view is replaced whole, never changed.
    """

    def __init__(self, keyring: KeyRing | None = None) -> None:
        self._keyring = keyring
        self._view: RegistryView | None = None
        self._lock = threading.Lock()

    def current(self, session: Session) -> RegistryView:
        """The view as of now: one query while nothing changed, five when something did.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the registry cannot be read.
        """
        generation = current_generation(session)
        view = self._view
        if view is not None and view.generation == generation:
            return view
        fresh = read_view(session, generation, self._keyring)
        with self._lock:
            # Two requests may read at once: keep the newer view.
            if self._view is None or self._view.generation <= generation:
                self._view = fresh
        return fresh


def read_view(session: Session, generation: int, keyring: KeyRing | None = None) -> RegistryView:
    """Read the view from ``session`` (its generation read before, by the caller)."""
    region = find_region(session)
    own = None if region is None else TrustedRegion(code=region.code, name=region.name, public_url=region.public_url)
    trust = HeldTrust(region=own, keys=_own_keys(session), copies=peer_copies(session, keyring))
    return RegistryView(generation=generation, trust=trust, types={t.code: type_info(t) for t in list_types(session)})


def uncached_view(session: Session, keyring: KeyRing | None = None) -> RegistryView:
    """A view read now, for a verifier built without a cache (tests, one-off commands)."""
    return read_view(session, current_generation(session), keyring)


def _own_keys(session: Session) -> dict[str, TrustedKey]:
    rows = session.execute(
        select(
            SigningKey.kid,
            SigningKey.algorithm,
            SigningKey.public_jwk,
            SigningKey.types,
            SigningKey.state,
            SigningKey.not_before,
            SigningKey.not_after,
            SigningKey.compromised_since,
            Office.credit_code,
            Office.name,
        ).join(Office, SigningKey.office_id == Office.id)
    )
    return {
        row.kid: TrustedKey(
            kid=row.kid,
            algorithm=require_algorithm(row.algorithm),
            public_key=load_public_jwk(row.public_jwk),
            office_code=row.credit_code,
            office_name=row.name,
            types=frozenset(row.types),
            not_before=row.not_before,
            not_after=row.not_after,
            compromised_since=row.compromised_since if row.state == COMPROMISED else None,
        )
        for row in rows
    }

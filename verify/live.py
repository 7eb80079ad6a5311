"""The verifier of a running deployment: our registry through the request's session, our
region, keys, catalog and peers from the process's :class:`~verify.cache.RegistryViewCache`,
our log's proof nodes and newest checkpoint from its :class:`~verify.log_cache.OwnLogCache`,
online status from other regions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from registry.log import current_checkpoint
from registry.models import LogCheckpoint
from signing.keystore import KeyRing
from verify.cache import RegistryView, RegistryViewCache, uncached_view
from verify.fetch import Fetcher
from verify.log_cache import OwnLogCache
from verify.peers import refresh_keys
from verify.trust import HeldTrust, RegionCopy, TrustStore
from verify.verifier import Verifier


def live_verifier(
    session: Session,
    *,
    views: RegistryViewCache,
    log_cache: OwnLogCache,
    writer: Callable[[], Session],
    fetcher: Fetcher,
    now: datetime,
    leeway: timedelta,
    actor: str,
    keyring: KeyRing | None = None,
) -> Verifier:
    """The verifier for one request (or command) on a reading ``session``: the cache
    generation is read once, when the first token needs our region, keys, catalog or
    peers, however many tokens follow."""
    view: Callable[[], RegistryView] = functools.cache(lambda: views.current(session))
    trust = live_trust_store(
        session,
        writer=writer,
        fetcher=fetcher,
        now=now,
        actor=actor,
        keyring=keyring,
        held=lambda: view().trust,
        log_cache=log_cache,
    )
    return Verifier(session, now=now, leeway=leeway, trust=trust, catalog=lambda code: view().type_info(code))


def live_trust_store(
    session: Session,
    *,
    writer: Callable[[], Session],
    fetcher: Fetcher,
    now: datetime,
    actor: str,
    keyring: KeyRing | None = None,
    held: Callable[[], HeldTrust] | None = None,
    log_cache: OwnLogCache | None = None,
) -> TrustStore:
    """The trust store of a running deployment: our registry (read through ``session``),
    ``held`` (by default read from ``session`` when first needed), online status lookups,
    one rate-limited refresh per unknown kid, and, given the ``keyring``, a checkpoint of
    our log signed when an answer needs one (both written through a session from
    ``writer``, committed at once) and the partner tokens we hold presented on the online
    lookups; ``log_cache`` keeps our log's proof nodes and newest checkpoint across
    requests (with a reading ``session`` only)."""

    def checkpoint() -> LogCheckpoint:
        assert keyring is not None
        with writer() as writing:
            signed = current_checkpoint(writing, keyring, now=now)
            writing.commit()
            return signed

    def refresh(region_code: str) -> RegionCopy | None:
        with writer() as writing:
            copy = refresh_keys(writing, fetcher, region_code, now=now, actor=actor, keyring=keyring)
            writing.commit()
            return copy

    return TrustStore(
        now=now,
        own=session,
        held=held or (lambda: uncached_view(session, keyring).trust),
        fetcher=fetcher,
        refresh=refresh,
        checkpoint=None if keyring is None else checkpoint,
        log_cache=log_cache,
    )

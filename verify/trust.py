"""What the verifier trusts: the regions it recognises, their keys, and where their
registries answer.

One :class:`TrustStore` serves every verification, keyed by (region, kid): our own
region and its keys from our registry, as a :class:`HeldTrust` (which a running
deployment caches per process until the database says it changed, :mod:`verify.cache`);
each peer from the signed copies ``peer sync`` stored (:mod:`verify.peers`), re-verified
under its pinned root; with an offline bundle, every region from the bundle
(:mod:`verify.bundle`). Keys come only from those lists, never from a token.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from registry.models import LogCheckpoint
from signing.algorithms import Algorithm, PublicKey
from verify.fetch import Fetcher
from verify.log_cache import OwnLogCache
from verify.sources import OwnRegistry, PartnerCredential, PeerRegistry, Registry
from verify.trust_lists import SignedTrustList, TrustListError, read_trust_list


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
    """A recognised region. ``expires_at`` is its trust list's expiry (None for our own
    region, read live from the registry): past it, verdicts are UNDETERMINED."""

    code: str
    name: str
    public_url: str
    expires_at: datetime | None = None

    def stale(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class RegionCopy:
    """A region's signed copies as a verifier holds them (a peer row or a bundle entry)."""

    region_code: str
    root_public_jwk: dict[str, Any]
    trust_list: str
    status_list: str | None
    # The region's newest log checkpoint we witnessed (consistent with all seen before).
    checkpoint: str | None = None
    # The partner token the region issued us, for its online status answers.
    credential: PartnerCredential | None = None


@dataclass(frozen=True)
class HeldTrust:
    """What a trust store holds: our own region and its keys by kid (none offline), and the
    other regions' copies by region code. Immutable, so one can serve many verifications."""

    region: TrustedRegion | None
    keys: Mapping[str, TrustedKey]
    copies: Mapping[str, RegionCopy]


class TrustStore:
    """Our own region and other regions, from ``held`` (read when first needed, once per
    store); ``own``, the registry session, answers for our certificates.

    An offline bundle passes its ``copies`` instead of ``held``. ``fetcher`` lets peer
    lookups ask the issuing region online; without it (offline bundle) only cached status
    lists answer; ``valid_until`` (the bundle's expiry) caps every list's; ``checkpoint``
    signs a checkpoint of our log when answers need one; ``log_cache`` is what the
    deployment keeps of our log between requests (:mod:`verify.log_cache`). ``refresh`` is called at most
    once per region per store when a token names a kid that region's held list lacks; it
    returns the copies held afterwards (or None).
    """

    def __init__(
        self,
        *,
        now: datetime,
        own: Session | None,
        held: Callable[[], HeldTrust] | None = None,
        copies: Mapping[str, RegionCopy] | None = None,
        fetcher: Fetcher | None = None,
        refresh: Callable[[str], RegionCopy | None] | None = None,
        valid_until: datetime | None = None,
        checkpoint: Callable[[], LogCheckpoint] | None = None,
        log_cache: OwnLogCache | None = None,
    ) -> None:
        if (held is None) == (copies is None):
            raise ValueError("pass either held (our registry's trust) or copies (a bundle's)")
        self._now = now
        self._own = own
        self._source = held or (lambda: HeldTrust(region=None, keys={}, copies=copies or {}))
        self._trust: HeldTrust | None = None
        # Copies refreshed by this store (an unknown kid): they shadow the held ones.
        self._refreshed_copies: dict[str, RegionCopy] = {}
        self._fetcher = fetcher
        self._refresh = refresh
        self._refreshed: set[str] = set()
        self._valid_until = valid_until
        self._checkpoint = checkpoint
        self._log_cache = log_cache

    # -- the verifier's questions

    def region(self, code: str) -> TrustedRegion | None:
        own = self._held().region
        if own is not None and own.code == code:
            return own
        listed = self._listed(code)
        if listed is None:
            return None
        expires_at = listed.expires_at if self._valid_until is None else min(listed.expires_at, self._valid_until)
        return TrustedRegion(code=code, name=listed.region_name, public_url=listed.public_url, expires_at=expires_at)

    def key(self, region: TrustedRegion, kid: str) -> TrustedKey | None:
        if region.expires_at is None:
            return self._held().keys.get(kid)
        listed = self._listed(region.code)
        found = None if listed is None else _listed_key(listed, kid)
        if found is None and self._refresh is not None and region.code not in self._refreshed:
            self._refreshed.add(region.code)
            copy = self._refresh(region.code)
            if copy is not None:
                self._refreshed_copies[region.code] = copy
                listed = self._listed(region.code)
                found = None if listed is None else _listed_key(listed, kid)
        return found

    def registry(self, region: TrustedRegion) -> Registry:
        if region.expires_at is None and self._own is not None:
            return OwnRegistry(self._own, self._checkpoint, now=self._now, log=self._log_cache)
        copy = self._copy(region.code)
        listed = self._listed(region.code)
        assert copy is not None
        assert listed is not None
        return PeerRegistry(
            listed,
            copy.status_list,
            fetcher=self._fetcher,
            now=self._now,
            checkpoint=copy.checkpoint,
            credential=copy.credential,
        )

    # -- where the answers come from

    def _held(self) -> HeldTrust:
        if self._trust is None:
            self._trust = self._source()
        return self._trust

    def _copy(self, code: str) -> RegionCopy | None:
        return self._refreshed_copies.get(code) or self._held().copies.get(code)

    def _listed(self, code: str) -> SignedTrustList | None:
        copy = self._copy(code)
        if copy is None:
            return None
        listed = _verified(copy.trust_list, json.dumps(copy.root_public_jwk, sort_keys=True))
        # A stored copy that no longer verifies is as good as none (it cannot happen
        # unless the database was edited): the region is then not recognised.
        return listed if listed is not None and listed.region_code == code else None


@functools.lru_cache(maxsize=256)
def _verified(trust_list: str, root_jwk_json: str) -> SignedTrustList | None:
    """A held trust list, verified under its stored root (cached: the inputs are immutable)."""
    try:
        return read_trust_list(trust_list, pinned_root_jwk=json.loads(root_jwk_json))
    except (TrustListError, ValueError):
        return None


def _listed_key(listed: SignedTrustList, kid: str) -> TrustedKey | None:
    found = listed.key(kid)
    if found is None:
        return None
    office, key = found
    return TrustedKey(
        kid=key.kid,
        algorithm=key.algorithm,
        public_key=key.public_key,
        office_code=office.code,
        office_name=office.name,
        types=key.types,
        not_before=key.not_before,
        not_after=key.not_after,
        compromised_since=key.compromised_since,
    )

"""Other regions this one recognises (跨区域互认): pinning, syncing, and their health.

An administrator exchanges root fingerprints with another region out of band and runs
``peer add --url URL --fingerprint FP``: the peer's trust list is fetched, accepted only
if that root (or a root it handed over to) signed it, and stored byte for byte. ``peer
sync`` refreshes every peer's trust list and status list. The rules (modelled on TUF):

* a list signed by a root we cannot chain to from the pin is refused (``TRUSTLIST_UNTRUSTED``);
* a lower sequence number than the one held is a rollback (``TRUSTLIST_ROLLBACK``), the
  same number with other content an equivocation (``TRUSTLIST_CONFLICT``);
* a list that is already expired is not taken (``TRUSTLIST_STALE``);
* a status list must be signed by the status key of the trust list held now (a list from
  another generation is dropped); an older one than held is ignored (the newer stays).

Whatever is refused, the newest good copies stay, and the refusal is recorded on the
peer (``peer list`` shows it) and in the audit trail. Verification reads only the stored
copies (:class:`RegionCopy`), plus one rate-limited refresh when a token names a kid the
held list lacks (:func:`refresh_keys`).

A peer that admitted us as its partner gives us an API token out of band; ``peer token``
holds it sealed (:mod:`verify.peer_tokens`), and online status requests to the peer's
pinned URL present it (:class:`verify.sources.PartnerCredential`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import audit
from registry.errors import AlreadyExists, FieldError, InvalidInput, NotFound
from registry.log import ensure_log_key
from registry.models import Peer
from registry.regions import find_region
from registry.trust_list import TRUST_LIST_PATH
from signing.errors import KeyStorageError
from signing.jwk import public_jwk
from signing.keystore import KeyRing
from signing.notes import add_signature
from verify.errors import VerifyError
from verify.fetch import Fetcher, FetchFailed
from verify.peer_tokens import partner_credential
from verify.status_sources import MAX_LIST_LENGTH, StatusDataRefused, read_status_list
from verify.trust import RegionCopy
from verify.trust_lists import MAX_TRUST_LIST_LENGTH, SignedTrustList, TrustListError, read_trust_list
from verify.witness import LogRefused, witness

# A token naming a kid the held list lacks refetches that peer's list at most this often.
KEY_REFRESH_INTERVAL: Final = timedelta(seconds=60)
_FINGERPRINT = re.compile(r"[A-Za-z0-9_-]{43}")


class PeerRefused(VerifyError):
    """A peer's document that must not replace what we hold; ``code`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class SyncOutcome:
    region_code: str
    sequence: int
    changed: bool
    error_code: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None


def peer_copies(session: Session, keyring: KeyRing | None = None) -> dict[str, RegionCopy]:
    """Every peer's stored copies, by region code (with the partner tokens held, given the ``keyring``)."""
    return {peer.region_code: region_copy(peer, keyring) for peer in session.scalars(select(Peer))}


def region_copy(peer: Peer, keyring: KeyRing | None = None) -> RegionCopy:
    return RegionCopy(
        region_code=peer.region_code,
        root_public_jwk=dict(peer.root_public_jwk),
        trust_list=peer.trust_list,
        status_list=peer.status_list,
        checkpoint=peer.log_checkpoint,
        credential=None if keyring is None else partner_credential(peer, keyring),
    )


def list_peers(session: Session) -> list[Peer]:
    return list(session.scalars(select(Peer).order_by(Peer.region_code)))


def add_peer(
    session: Session,
    fetcher: Fetcher,
    *,
    url: str,
    fingerprint: str,
    now: datetime,
    actor: str,
    keyring: KeyRing | None = None,
) -> tuple[Peer, SyncOutcome]:
    """Pin a region by its root fingerprint and store its trust list (and status list).

    Nothing is stored unless the trust list verifies under the pinned root. The status
    list is fetched too; failing to get it is reported but does not undo the pin.

    Raises:
        InvalidInput: a bad URL or fingerprint, or the URL serves this region's own list.
        FetchFailed: the trust list cannot be fetched.
        PeerRefused: the list is not signed by the pinned root, is malformed or expired.
        AlreadyExists: that region is already a peer (``peer sync`` refreshes it).
    """
    url = _base_url(url)
    if not _FINGERPRINT.fullmatch(fingerprint):
        raise InvalidInput(
            "the peer cannot be added",
            [FieldError("fingerprint", "an RFC 7638 thumbprint: 43 base64url characters (`region show` prints it)")],
        )
    jws = fetcher.get_text(url + TRUST_LIST_PATH, max_bytes=MAX_TRUST_LIST_LENGTH)
    listed = _read(jws, fingerprint=fingerprint)
    if listed.expired(now):
        raise PeerRefused("TRUSTLIST_STALE", f"the trust list of {listed.region_code} expired; nothing was stored")
    own = find_region(session)
    if own is not None and own.code == listed.region_code:
        raise InvalidInput("the peer cannot be added", [FieldError("url", "it serves this region's own trust list")])
    if session.scalars(select(Peer).where(Peer.region_code == listed.region_code)).first() is not None:
        raise AlreadyExists(f"region {listed.region_code} is already a peer; `peer sync` refreshes it")
    peer = Peer(
        region_code=listed.region_code,
        url=url,
        pinned_fingerprint=fingerprint,
        added_at=now,
        last_attempt_at=now,
        **_list_columns(listed, now),
    )
    session.add(peer)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="peer.add",
        subject_type="peer",
        subject_id=listed.region_code,
        details={"url": url, "fingerprint": fingerprint, "root": listed.root_fingerprint, "sequence": listed.sequence},
    )
    session.flush()
    witnessed = _witness_log(session, fetcher, peer, listed, keyring=keyring, now=now, actor=actor)
    status = _sync_status_list(session, fetcher, peer, listed, now=now, actor=actor, changed=True)
    if witnessed is not None:
        peer.last_error_code, peer.last_error = witnessed.error_code, witnessed.error
        return peer, witnessed
    return peer, status


def get_peer(session: Session, region_code: str, *, lock: bool = False) -> Peer:
    """Raises: NotFound: no such peer."""
    query = select(Peer).where(Peer.region_code == region_code)
    peer = session.scalars(query.with_for_update() if lock else query).first()
    if peer is None:
        raise NotFound(f"region {region_code} is not a peer")
    return peer


def sync_peer(
    session: Session, fetcher: Fetcher, peer: Peer, *, now: datetime, actor: str, keyring: KeyRing | None = None
) -> SyncOutcome:
    """Refresh one peer's trust list, witness its log (countersigning the checkpoint with
    our log key when ``keyring`` is given), then refresh its status list; keep the newest
    good copies of each.

    Never raises for what the peer serves: the outcome (and the peer row) says what was
    refused, the first refusal first. The caller commits.
    """
    session.execute(select(Peer.id).where(Peer.id == peer.id).with_for_update())
    peer.last_attempt_at = now
    problems: list[SyncOutcome] = []
    try:
        listed, changed = _refresh_trust_list(session, fetcher, peer, now=now, actor=actor)
    except (FetchFailed, PeerRefused) as error:
        problems.append(_failed(session, peer, error.code, error.detail, now=now, actor=actor))
        try:
            listed, changed = held_trust_list(peer), False
        except TrustListError:
            return problems[0]
        if listed.expired(now):
            return problems[0]
    witnessed = _witness_log(session, fetcher, peer, listed, keyring=keyring, now=now, actor=actor)
    if witnessed is not None:
        problems.append(witnessed)
    status = _sync_status_list(session, fetcher, peer, listed, now=now, actor=actor, changed=changed)
    if not status.ok:
        problems.append(status)
    if not problems:
        return status
    first = problems[0]
    peer.last_error_code, peer.last_error = first.error_code, first.error
    return SyncOutcome(peer.region_code, peer.sequence, changed, first.error_code, first.error)


def _witness_log(
    session: Session,
    fetcher: Fetcher,
    peer: Peer,
    listed: SignedTrustList,
    *,
    keyring: KeyRing | None,
    now: datetime,
    actor: str,
) -> SyncOutcome | None:
    """Accept the peer's newest checkpoint if it extends the one held; None when all is well."""
    try:
        seen = witness(fetcher, listed, held_size=peer.log_size, held_root=peer.log_root)
    except (FetchFailed, LogRefused) as error:
        return _failed(session, peer, error.code, error.detail, now=now, actor=actor)
    if seen is None:
        return None
    peer.log_size, peer.log_root, peer.log_checkpoint = seen.checkpoint.size, seen.checkpoint.root_hash, seen.note
    own = find_region(session)
    if keyring is not None and own is not None:
        try:
            key = ensure_log_key(session, keyring, own)
        except KeyStorageError:
            return None  # witnessed, not countersigned: our log key is unusable (wrong passphrase)
        assert own.log_origin is not None
        peer.log_cosigned = add_signature(seen.note, own.log_origin, key)  # our countersignature
    return None


def refresh_keys(
    session: Session, fetcher: Fetcher, region_code: str, *, now: datetime, actor: str, keyring: KeyRing | None = None
) -> RegionCopy | None:
    """Refetch a peer's trust list because a token names a kid the held list lacks.

    At most once per :data:`KEY_REFRESH_INTERVAL` per peer (a stream of tokens with
    made-up kids must not turn us into a client hammering the peer). Returns the copies
    held afterwards (with our partner token, given the ``keyring``), or None when
    rate-limited or not a peer. The caller commits.
    """
    peer = session.scalars(select(Peer).where(Peer.region_code == region_code).with_for_update()).first()
    if peer is None or (peer.key_refresh_at is not None and now - peer.key_refresh_at < KEY_REFRESH_INTERVAL):
        return None
    peer.key_refresh_at = now
    peer.last_attempt_at = now
    try:
        _refresh_trust_list(session, fetcher, peer, now=now, actor=actor)
    except (FetchFailed, PeerRefused) as error:
        _failed(session, peer, error.code, error.detail, now=now, actor=actor)
    return region_copy(peer, keyring)


def held_trust_list(peer: Peer | RegionCopy) -> SignedTrustList:
    """The stored trust list, re-verified under the stored root (it never changes unverified)."""
    return read_trust_list(peer.trust_list, pinned_root_jwk=peer.root_public_jwk)


def health(peer: Peer, now: datetime) -> str:
    """``ok``, ``stale`` (the held list expired: verdicts are UNDETERMINED) or
    ``failing`` (the last sync was refused or failed; the held list is still current)."""
    if now >= peer.trust_list_expires_at:
        return "stale"
    return "failing" if peer.last_error_code else "ok"


# ---------------------------------------------------------------- the rules


def _refresh_trust_list(
    session: Session, fetcher: Fetcher, peer: Peer, *, now: datetime, actor: str
) -> tuple[SignedTrustList, bool]:
    jws = fetcher.get_text(peer.url + TRUST_LIST_PATH, max_bytes=MAX_TRUST_LIST_LENGTH)
    listed = _read(jws, pinned_root_jwk=peer.root_public_jwk)
    if listed.region_code != peer.region_code:
        raise PeerRefused("TRUSTLIST_UNTRUSTED", f"the list is region {listed.region_code}'s, not {peer.region_code}'s")
    if listed.sequence < peer.sequence:
        raise PeerRefused("TRUSTLIST_ROLLBACK", f"sequence {listed.sequence} is older than the {peer.sequence} held")
    if listed.sequence == peer.sequence:
        if jws != peer.trust_list:
            raise PeerRefused("TRUSTLIST_CONFLICT", f"two different lists carry sequence {listed.sequence}")
        if listed.expired(now):
            raise PeerRefused("TRUSTLIST_STALE", f"the peer still serves sequence {listed.sequence}, expired")
        peer.trust_list_fetched_at = now  # confirmed current just now
        return listed, False
    if listed.expired(now):
        raise PeerRefused("TRUSTLIST_STALE", f"sequence {listed.sequence} is already expired")
    previous = (peer.sequence, peer.root_fingerprint)
    try:
        held_status_kid = held_trust_list(peer).status_kid
    except TrustListError:
        held_status_kid = None  # the stored copy no longer verifies: nothing of it is kept
    for column, value in _list_columns(listed, now).items():
        setattr(peer, column, value)
    if peer.status_list is not None and listed.status_kid != held_status_kid:
        # A status list signed by the previous generation's status key is not kept.
        peer.status_list = peer.status_list_expires_at = peer.status_list_fetched_at = None
    audit.record(
        session,
        now=now,
        actor=actor,
        action="peer.trust_list",
        subject_type="peer",
        subject_id=peer.region_code,
        details={
            "from_sequence": previous[0],
            "to_sequence": listed.sequence,
            **({"new_root": listed.root_fingerprint} if listed.root_fingerprint != previous[1] else {}),
        },
    )
    return listed, True


def _sync_status_list(
    session: Session,
    fetcher: Fetcher,
    peer: Peer,
    listed: SignedTrustList,
    *,
    now: datetime,
    actor: str,
    changed: bool,
) -> SyncOutcome:
    if listed.status_key is None:
        return _done(peer, changed)
    key = public_jwk(listed.status_key)
    try:
        jws = fetcher.get_text(listed.endpoints.status_list, max_bytes=MAX_LIST_LENGTH)
        fetched = read_status_list(jws, key, issuer=peer.region_code, now=now)
    except FetchFailed as error:
        return _failed(session, peer, error.code, error.detail, now=now, actor=actor)
    except StatusDataRefused as error:
        return _failed(session, peer, "STATUS_LIST_REFUSED", str(error), now=now, actor=actor)
    if peer.status_list is not None:
        try:
            held = read_status_list(peer.status_list, key, issuer=peer.region_code, now=now)
        except StatusDataRefused:
            held = None  # expired or of another generation: anything current replaces it
        if held is not None and fetched.issued_at < held.issued_at:
            # Never replace a newer list with an older one. Not a failure: a region with
            # several workers serves each worker's own current list, seconds apart.
            return _done(peer, changed)
    peer.status_list = jws
    peer.status_list_expires_at = fetched.expires_at
    peer.status_list_fetched_at = now
    return _done(peer, changed)


def _done(peer: Peer, changed: bool) -> SyncOutcome:
    peer.last_error_code = peer.last_error = None
    return SyncOutcome(peer.region_code, peer.sequence, changed)


def _failed(session: Session, peer: Peer, code: str, detail: str, *, now: datetime, actor: str) -> SyncOutcome:
    peer.last_error_code, peer.last_error = code, detail[:500]
    audit.record(
        session,
        now=now,
        actor=actor,
        action="peer.sync_refused",
        subject_type="peer",
        subject_id=peer.region_code,
        details={"code": code, "detail": detail[:500], "sequence_held": peer.sequence},
    )
    return SyncOutcome(peer.region_code, peer.sequence, False, code, detail)


def _read(jws: str, **pin: Any) -> SignedTrustList:
    try:
        return read_trust_list(jws, **pin)
    except TrustListError as error:
        raise PeerRefused(error.code, str(error)) from error


def _list_columns(listed: SignedTrustList, now: datetime) -> dict[str, Any]:
    return {
        "region_name": listed.region_name,
        "root_fingerprint": listed.root_fingerprint,
        "root_public_jwk": public_jwk(listed.root_key),
        "sequence": listed.sequence,
        "trust_list": listed.jws,
        "trust_list_expires_at": listed.expires_at,
        "trust_list_fetched_at": now,
    }


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or parts.username:
        raise InvalidInput(
            "the peer cannot be added",
            [FieldError("url", "the peer's public URL: http(s), without credentials, query or fragment")],
        )
    return url.rstrip("/")

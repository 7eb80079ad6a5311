"""Where the verifier learns whether a certificate is registered, and its status.

* :class:`OwnRegistry`: our own registry, exact and always current.
* :class:`PeerRegistry`: another region's registry, asked in this order (issue 4):
  1. online: the issuing region's signed status answer for this identifier, bound to
     the exact token (short timeout), presenting the partner token that region issued
     us, if we hold one (:class:`PartnerCredential`), so that it counts us as a partner
     rather than as one more anonymous address;
  2. its signed status list as we hold it, while that list is current;
  3. otherwise :class:`StatusUnavailable` (the verdict is UNDETERMINED, never INVALID).

A status list cannot tell which token holds a position, only its status; so from a list
an unused position is ``NOT_IN_REGISTRY`` only when the list was signed well after the
token's issue time, a position in force is never taken as proof for a token signed by a
key that has since been compromised, and anything else it cannot settle is unavailable.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol
from urllib.parse import quote, urlsplit

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from registry import log
from registry.errors import RegistryError
from registry.merkle import NodeReader, inclusion_proof, leaf_hash, verify_inclusion
from registry.models import Certificate, LogCheckpoint
from registry.status import Status
from signing.errors import SigningError
from signing.jwk import b64url, public_jwk
from verify.errors import VerifyError
from verify.fetch import Fetcher, FetchFailed
from verify.log_cache import OwnLogCache
from verify.status_sources import (
    CLOCK_SKEW,
    MAX_ANSWER_LENGTH,
    StatusDataRefused,
    read_status_answer,
    read_status_list,
)
from verify.trust_lists import SignedTrustList
from verify.witness import MAX_PROOF_LENGTH, LogRefused, open_checkpoint, read_proof

ONLINE_STATUS_TIMEOUT: Final = 2.0  # seconds: a verifier at a counter must not hang
# Seconds of online lookups one batch may spend on one issuing region; the batch's other
# tokens of that region are answered from its held status list (a slow or hostile peer
# must not hold a worker for 1000 timeouts).
ONLINE_BATCH_BUDGET: Final = 5.0
# A list signed this long after a token's issue time would hold its position, had the
# issuing registry recorded it (issuance commits within moments of iat).
REGISTRATION_MARGIN: Final = timedelta(seconds=60)

OWN_REGISTRY: Final = "registry"
ISSUER_ONLINE: Final = "issuer"
STATUS_LIST: Final = "status-list"


class StatusUnavailable(VerifyError):
    """No source could say whether the certificate is registered, or its status."""

    code = "STATUS_UNAVAILABLE"


@dataclass(frozen=True)
class LogEvidence:
    """Where the token sits in its region's transparency log: its entry, and an RFC 6962
    inclusion proof under a signed checkpoint of ``tree_size`` entries."""

    index: int
    tree_size: int
    inclusion_proof: tuple[bytes, ...]
    checkpoint: str


@dataclass(frozen=True)
class RegistryRecord:
    """The issuing registry holds this very token, with this status; ``source`` says who said so."""

    status: Status
    source: str
    log: LogEvidence | None = None


@dataclass(frozen=True)
class Lookup:
    """What a registry is asked about a token whose signature has verified."""

    certificate_id: str
    token: str
    signing_input: bytes
    status_index: int | None
    issued_at: datetime
    # The signing key is known to be compromised (from some moment on): then only the
    # issuing registry itself can say the token is one it recorded.
    key_compromised: bool = False


@dataclass(frozen=True)
class PartnerCredential:
    """The API token a peer region issued us as its partner (``ecertp_...``).

    ``base_url`` is the peer's URL as we pinned it: the token is presented only to URLs
    under it, because the endpoints come from the peer's signed list, which may name any
    host. ``token`` opens the stored token when it is first needed; None when it cannot be
    had (the lookup then asks anonymously).
    """

    base_url: str
    token: Callable[[], str | None]

    def bearer_for(self, url: str) -> str | None:
        """The token to present on ``GET url``; None unless ``url`` is under :attr:`base_url`."""
        target, pinned = urlsplit(url), urlsplit(self.base_url)
        if (target.scheme, target.netloc.lower()) != (pinned.scheme, pinned.netloc.lower()):
            return None  # another host, port or scheme, or credentials in the URL
        if not target.path.startswith(pinned.path.rstrip("/") + "/") or ".." in target.path.split("/"):
            return None
        return self.token()


RegistryAnswer = RegistryRecord | StatusUnavailable | None
"""A registry's answer for one token: its record, why it cannot be had, or None (never issued)."""


class Registry(Protocol):
    def lookup_many(self, tokens: Sequence[Lookup]) -> list[RegistryAnswer]:
        """The answer for each token, in order: the record of exactly that token, None if
        the registry never issued it, or :class:`StatusUnavailable` if it cannot be asked.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: our own registry cannot be read (for all of them).
        """
        ...


# Certificate identifiers per query, well under both databases' parameter limits.
IDS_PER_QUERY: Final = 10_000
_CERTIFICATE_COLUMNS: Final = select(Certificate.id, Certificate.token, Certificate.status, Certificate.log_index)
_CERTIFICATES: Final = _CERTIFICATE_COLUMNS.where(Certificate.id.in_(bindparam("ids", expanding=True)))
# An expanding IN is rendered again at every execution (about 100 µs): the lone
# identifier of a single verification is asked with ``=``.
_ONE_CERTIFICATE: Final = _CERTIFICATE_COLUMNS.where(Certificate.id == bindparam("id"))


class OwnRegistry:
    """Our own registry: exact and always current, with each token's place in our log.

    ``checkpoint`` gives a signed checkpoint covering the whole log (a running deployment
    signs one when needed); without it, the newest kept checkpoint is used when it covers
    the entry, and otherwise the answer carries no log evidence. ``log`` is what the
    deployment keeps of our log between requests (:mod:`verify.log_cache`; pass it only
    with a reading session); without it, this registry keeps its own while it lives.

    However many tokens, :meth:`lookup_many` reads the certificates in one query, the
    newest checkpoint in one (none while the held one covers the entries and is recent),
    and the nodes of every inclusion proof in one (none when all are cached).
    """

    def __init__(
        self,
        session: Session,
        checkpoint: Callable[[], LogCheckpoint] | None = None,
        *,
        now: datetime,
        log: OwnLogCache | None = None,
    ) -> None:
        self._session = session
        self._checkpoint = checkpoint
        self._now = now
        self._log = log or OwnLogCache()

    def lookup_many(self, tokens: Sequence[Lookup]) -> list[RegistryAnswer]:
        rows = {row.id: row for row in self._certificates(sorted({token.certificate_id for token in tokens}))}
        found = []
        for token in tokens:
            row = rows.get(token.certificate_id)
            # The very token: the same signing input (the signature's spelling may differ).
            same = row is not None and row.token.rsplit(".", 1)[0].encode("ascii") == token.signing_input
            found.append(row if same else None)
        evidence = self._evidence({row.log_index for row in found if row is not None and row.log_index is not None})
        return [
            None
            if row is None
            else RegistryRecord(status=Status(row.status), source=OWN_REGISTRY, log=evidence.get(row.log_index))
            for row in found
        ]

    def _certificates(self, ids: list[str]) -> Iterator[Row[Any]]:
        """The rows of the certificates ``ids`` that exist: Core rows through the session's
        connection (plain columns need none of the ORM's statement handling)."""
        connection = self._session.connection()
        if len(ids) == 1:
            yield from connection.execute(_ONE_CERTIFICATE, {"id": ids[0]})
            return
        for start in range(0, len(ids), IDS_PER_QUERY):
            yield from connection.execute(_CERTIFICATES, {"ids": ids[start : start + IDS_PER_QUERY]})

    def _evidence(self, indices: set[int]) -> dict[int, LogEvidence]:
        """Inclusion proofs of the entries at ``indices``, under one checkpoint covering
        them all; an entry without a proof to give is left out. Evidence is extra: a damaged
        log (``log audit`` reports it) or an unusable log key never turns an answer into an
        error."""
        if not indices:
            return {}
        held = self._log.checkpoint_covering(max(indices) + 1, self._now)
        if held is None:
            try:
                checkpoint = log.newest_checkpoint(self._session)
                if (checkpoint is None or checkpoint.size <= max(indices)) and self._checkpoint is not None:
                    checkpoint = self._checkpoint()
            except (RegistryError, SigningError):
                return {}
            if checkpoint is None:
                return {}
            size, note = checkpoint.size, checkpoint.note
            self._log.hold(size, note, self._now)
        else:
            size, note = held.size, held.note
        proofs = {index: _proof_of(index, size) for index in sorted(indices) if index < size}
        read = log.nodes_for(self._session, proofs.values(), self._log.nodes)
        evidence = {}
        for index, proof in proofs.items():
            try:
                evidence[index] = LogEvidence(index, size, tuple(proof(read)), note)
            except RegistryError:
                continue
        return evidence


def _proof_of(index: int, size: int) -> Callable[[NodeReader], list[bytes]]:
    return lambda read: inclusion_proof(index, size, read)


class PeerRegistry:
    """Another region's registry, through its signed status answers and status list.

    With a ``credential``, the online status request presents our partner token. The
    inclusion-proof request does not: the peer counts its log reads per address whoever
    asks, so the token would be exposed there for nothing.
    """

    def __init__(
        self,
        listed: SignedTrustList,
        status_list: str | None,
        *,
        fetcher: Fetcher | None,
        now: datetime,
        checkpoint: str | None = None,
        credential: PartnerCredential | None = None,
    ) -> None:
        self._listed = listed
        self._status_list = status_list
        self._fetcher = fetcher
        self._now = now
        self._checkpoint = checkpoint
        self._credential = credential

    def lookup_many(self, tokens: Sequence[Lookup]) -> list[RegistryAnswer]:
        """One token after another (each is its own request to the issuing region), online
        until the lookups have taken :data:`ONLINE_BATCH_BUDGET` seconds; the rest from the
        held status list."""
        answers: list[RegistryAnswer] = []
        spent = 0.0
        for token in tokens:
            online = spent < ONLINE_BATCH_BUDGET
            started = time.monotonic()
            try:
                answers.append(self.lookup(token, online=online))
            except StatusUnavailable as error:
                answers.append(error)
            spent += time.monotonic() - started if online else 0.0
        return answers

    def lookup(self, token: Lookup, *, online: bool = True) -> RegistryRecord | None:
        """Raises: StatusUnavailable: no source can say."""
        if self._listed.status_key is None:
            raise StatusUnavailable(f"region {self._listed.region_code} publishes no status key")
        key = public_jwk(self._listed.status_key)
        problems = []
        if self._fetcher is None:
            problems.append("offline")
        elif not online:
            problems.append("online: not asked, this batch spent its time for the region's online answers")
        else:
            try:
                return self._online(token, key)
            except (FetchFailed, StatusDataRefused) as error:
                problems.append(f"online: {error}")
        try:
            return self._from_list(token, key)
        except StatusUnavailable as error:
            problems.append(f"status list: {error}")
        raise StatusUnavailable("; ".join(problems))

    def _online(self, token: Lookup, key: dict[str, Any]) -> RegistryRecord | None:
        assert self._fetcher is not None
        url = self._listed.endpoints.status.replace("{id}", quote(token.certificate_id, safe=""))
        # A refusal of the token (401, or 429 once its limit is spent) is a failure like
        # any other: the held status list answers.
        bearer = None if self._credential is None else self._credential.bearer_for(url)
        jws = self._fetcher.get_text(url, max_bytes=MAX_ANSWER_LENGTH, timeout=ONLINE_STATUS_TIMEOUT, bearer=bearer)
        answer = read_status_answer(
            jws, key, issuer=self._listed.region_code, certificate_id=token.certificate_id, now=self._now
        )
        digest = b64url(hashlib.sha256(token.signing_input).digest())
        if not answer.known or answer.token_digest != digest or answer.status is None:
            return None
        return RegistryRecord(status=answer.status, source=ISSUER_ONLINE, log=self._inclusion(token, answer.log_index))

    def _inclusion(self, token: Lookup, index: int | None) -> LogEvidence | None:
        """The token's inclusion proof under the checkpoint we witnessed, if the issuer can
        give one that verifies; None otherwise (evidence is extra, never the verdict)."""
        log_info, base = self._listed.log, self._listed.endpoints.log
        if index is None or self._checkpoint is None or log_info is None or base is None or self._fetcher is None:
            return None
        try:
            witnessed = open_checkpoint(self._checkpoint, log_info)
            if index >= witnessed.size:
                return None  # newer than what we witnessed: the next sync will cover it
            url = f"{base}/proof/inclusion?index={index}&size={witnessed.size}"
            proof = read_proof(
                self._fetcher.get_text(url, max_bytes=MAX_PROOF_LENGTH, timeout=ONLINE_STATUS_TIMEOUT), url
            )
        except (FetchFailed, LogRefused):
            return None
        if not verify_inclusion(
            leaf_hash(token.token.encode("ascii")), index, witnessed.size, proof, witnessed.root_hash
        ):
            return None
        return LogEvidence(index, witnessed.size, tuple(proof), self._checkpoint)

    def _from_list(self, token: Lookup, key: dict[str, Any]) -> RegistryRecord | None:
        if self._status_list is None:
            raise StatusUnavailable("none held")
        try:
            held = read_status_list(self._status_list, key, issuer=self._listed.region_code, now=self._now)
        except StatusDataRefused as error:
            raise StatusUnavailable(f"the held list is not usable ({error})") from error
        if token.status_index is None:
            raise StatusUnavailable("the token carries no status-list position")
        status = held.status_at(token.status_index)
        if status is Status.VALID and token.key_compromised:
            # A list says a position is in force, not which token holds it: a forger with
            # the leaked key could name any valid position and backdate iat.
            raise StatusUnavailable("the signing key is compromised; only the issuing registry can confirm this token")
        if status is not None:
            return RegistryRecord(status=status, source=STATUS_LIST)
        if held.issued_at >= token.issued_at + REGISTRATION_MARGIN + CLOCK_SKEW:
            return None
        raise StatusUnavailable("the held list is older than the certificate")

"""Reading a region's signed trust list, trusting only a pinned root key.

A peer pins a region's root out of band (its RFC 7638 thumbprint, or the public JWK
itself) and :func:`read_trust_list` accepts a list only if that root signed it. The key
that checks the signature is always the pinned one: never the header's ``kid`` (which
must merely name it) and, with a fingerprint pin, the list's own ``root`` member only
after its thumbprint equals the pin. The format is in ``docs/trust-list.md``.

Root rotation: a list carries ``root_chain``, the statements by which each old root
handed over to the next. The reader starts at the pinned root and follows only the
statements that root (and each successor) signed; the list must then be signed by the
root reached. ``SignedTrustList.root_fingerprint`` is that root: the caller pins it from
then on, so a list signed by an older root is refused afterwards.

Two failures are told apart (as sigstore does): :class:`TrustListMalformed` for a
document that is not a well-formed trust list, :class:`TrustListUntrusted` for a
well-formed one the pinned root did not sign. Expiry and rollback are the caller's
judgement (a stale list makes verdicts UNDETERMINED, not the list unreadable), so the
result carries ``sequence`` and ``expires_at`` and :meth:`SignedTrustList.expired`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ed25519

from signing.algorithms import Algorithm, PublicKey, algorithm_of, require_algorithm, verify_signature
from signing.errors import KeyStorageError, TokenFormatError, UnsupportedAlgorithm
from signing.jwk import key_id, load_public_jwk, thumbprint
from signing.notes import NoteError, open_note, parse_checkpoint, parse_verifier_key
from signing.tokens import parse_token
from verify.errors import VerifyError

TRUST_LIST_TYPE: Final = "ecert-trust-list"
TRUST_LIST_ALGORITHM: Final = "EdDSA"
ROTATION_TYPE: Final = "ecert-root-rotation"
MAX_TRUST_LIST_LENGTH: Final = 4 * 1024 * 1024
MAX_ROTATION_LENGTH: Final = 4096
KEY_STATES: Final = frozenset({"active", "retired", "compromised"})


class TrustListError(VerifyError):
    """Base class of the trust-list reader's errors."""

    code = "TRUSTLIST_ERROR"


class TrustListMalformed(TrustListError):
    """Not a well-formed ecert trust list (syntax, header, payload members)."""

    code = "TRUSTLIST_MALFORMED"


class TrustListUntrusted(TrustListError):
    """A well-formed trust list the pinned root did not sign (other root, bad signature)."""

    code = "TRUSTLIST_UNTRUSTED"


@dataclass(frozen=True)
class ListedKey:
    """An office's signing key as a trust list states it."""

    kid: str
    algorithm: Algorithm
    public_key: PublicKey
    types: frozenset[str]
    not_before: datetime
    not_after: datetime | None
    state: str
    compromised_since: datetime | None


@dataclass(frozen=True)
class ListedOffice:
    code: str
    name: str
    types: frozenset[str]
    keys: tuple[ListedKey, ...]


@dataclass(frozen=True)
class Endpoints:
    trust_list: str
    status: str  # a template: "{id}" stands for the certificate identifier
    status_list: str
    verify: str
    log: str | None  # the log API's base (null in lists from before the log)


@dataclass(frozen=True)
class ListedLog:
    """The region's transparency log as its trust list states it: origin, key, a checkpoint."""

    origin: str
    verifier_key: str
    key: ed25519.Ed25519PublicKey
    checkpoint: str


@dataclass(frozen=True)
class SignedTrustList:
    """A trust list whose signature the pinned root verified; every member typed."""

    region_code: str
    region_name: str
    public_url: str
    sequence: int
    issued_at: datetime
    expires_at: datetime
    root_fingerprint: str
    root_key: PublicKey
    status_kid: str | None
    status_key: PublicKey | None
    offices: tuple[ListedOffice, ...]
    endpoints: Endpoints
    jws: str
    log: ListedLog | None = None

    def key(self, kid: str) -> tuple[ListedOffice, ListedKey] | None:
        """The office and key with this kid, if the list names it."""
        for office in self.offices:
            for key in office.keys:
                if key.kid == kid:
                    return office, key
        return None

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def read_trust_list(
    jws: str, *, pinned_root_jwk: dict[str, Any] | None = None, fingerprint: str | None = None
) -> SignedTrustList:
    """Check ``jws`` against the pinned root and return its contents, typed.

    Pass exactly one pin: the root's public JWK, or its RFC 7638 thumbprint.

    Raises:
        TrustListMalformed: not a compact JWS, non-canonical base64url, duplicate JSON
            members, header members other than exactly ``alg``/``kid``/``typ``, wrong
            ``alg`` or ``typ``, or a payload member missing or of the wrong type.
        TrustListUntrusted: the header names a root the pin does not chain to, the list
            announces another root than its signer, or a signature does not verify.
        ValueError: not exactly one pin given, or the pinned JWK is unreadable.
    """
    if (pinned_root_jwk is None) == (fingerprint is None):
        raise ValueError("pin the root with exactly one of pinned_root_jwk or fingerprint")
    try:
        parsed = parse_token(jws, MAX_TRUST_LIST_LENGTH, typ=TRUST_LIST_TYPE)
    except TokenFormatError as error:
        raise TrustListMalformed(error.detail) from error
    if parsed.header.alg != TRUST_LIST_ALGORITHM:
        raise TrustListMalformed(f"a trust list is signed with {TRUST_LIST_ALGORITHM}")
    payload = parsed.payload
    root_member = _member(payload, "root", dict, "payload")
    listed_root = _jwk(root_member, "root")
    region_code = _member(_member(payload, "region", dict, "payload"), "code", str, "region")
    sequence = _integer(payload, "seq", "payload")

    pinned_key: PublicKey | None
    if pinned_root_jwk is not None:
        try:
            pinned_key = load_public_jwk(pinned_root_jwk)
        except KeyStorageError as error:
            raise ValueError(f"the pinned root JWK is unreadable: {error}") from error
        pinned = thumbprint(pinned_key)
    else:
        assert fingerprint is not None
        pinned, pinned_key = fingerprint, None
    # Follow the root rotations that start at the pinned root, one signature per step.
    pinned, pinned_key = _follow_rotations(
        _member(payload, "root_chain", list, "payload"), pinned, pinned_key, region_code, sequence
    )
    if pinned_key is None:
        # The list's own root is used only once it is the one pinned.
        if thumbprint(listed_root) != pinned:
            raise TrustListUntrusted("the trust list announces a root other than the pinned one")
        pinned_key = listed_root

    if parsed.header.kid != pinned:
        raise TrustListUntrusted("the trust list is signed by a root other than the pinned one")
    if algorithm_of(pinned_key) != TRUST_LIST_ALGORITHM or not verify_signature(
        TRUST_LIST_ALGORITHM, pinned_key, parsed.signing_input, parsed.signature
    ):
        raise TrustListUntrusted("the trust list's signature does not verify under the pinned root")
    # Signed by the pinned root (or one it handed over to) from here on.
    if thumbprint(listed_root) != pinned or root_member.get("kid") != pinned:
        raise TrustListUntrusted("the trust list announces a root other than the one that signed it")
    return _contents(payload, pinned, pinned_key, jws)


def _follow_rotations(
    chain: list[Any], pinned: str, pinned_key: PublicKey | None, region_code: str, sequence: int
) -> tuple[str, PublicKey | None]:
    """The root reached from ``pinned`` through the list's rotation statements.

    Statements before the pinned root are skipped (they cannot be checked, and need not
    be); from the first one the pinned root signed, each must be signed by the root the
    previous one named, for the same region, in increasing sequence. The list itself must
    come at or after the sequence at which its root took over: a list numbered before
    its own root existed mixes generations.

    Raises:
        TrustListMalformed: a statement is not well formed, or the chain is broken.
        TrustListUntrusted: a statement's signature does not verify.
    """
    followed_sequence = 0
    introduced_at: dict[str, int] = {}  # root fingerprint → first sequence it signs
    for entry in chain:
        if not isinstance(entry, str):
            raise TrustListMalformed("payload: root_chain holds rotation statements (strings)")
        try:
            statement = parse_token(entry, MAX_ROTATION_LENGTH, typ=ROTATION_TYPE)
        except TokenFormatError as error:
            raise TrustListMalformed(f"root_chain: {error.detail}") from error
        body = statement.payload
        if set(body) != {"region", "seq", "iat", "old", "new"} or statement.header.alg != TRUST_LIST_ALGORITHM:
            raise TrustListMalformed("root_chain: a rotation statement is EdDSA-signed region, seq, iat, old, new")
        old_key = _jwk(_member(body, "old", dict, "rotation"), "rotation old")
        new_key = _jwk(_member(body, "new", dict, "rotation"), "rotation new")
        old_fingerprint, new_fingerprint = thumbprint(old_key), thumbprint(new_key)
        if body["old"].get("kid") != old_fingerprint or body["new"].get("kid") != new_fingerprint:
            raise TrustListMalformed("root_chain: a rotation names a root by another kid than its thumbprint")
        step_sequence = _integer(body, "seq", "rotation")
        introduced_at[new_fingerprint] = step_sequence
        if old_fingerprint != pinned:
            if followed_sequence:
                raise TrustListMalformed("root_chain: the chain of roots is broken")
            continue  # a rotation before the root we pinned
        if _member(body, "region", str, "rotation") != region_code:
            raise TrustListMalformed("root_chain: a rotation of another region")
        if step_sequence <= followed_sequence:
            raise TrustListMalformed("root_chain: rotations out of order")
        if statement.header.kid != old_fingerprint or not verify_signature(
            TRUST_LIST_ALGORITHM, old_key, statement.signing_input, statement.signature
        ):
            raise TrustListUntrusted("root_chain: a rotation is not signed by the root it hands over from")
        pinned, pinned_key, followed_sequence = new_fingerprint, new_key, step_sequence
    if sequence < introduced_at.get(pinned, 0):
        raise TrustListMalformed("the list is older than the root that signed it (mixed generations)")
    return pinned, pinned_key


def _contents(payload: dict[str, Any], fingerprint: str, root: PublicKey, jws: str) -> SignedTrustList:
    region = _member(payload, "region", dict, "payload")
    sequence = _integer(payload, "seq", "payload")
    if sequence < 1:
        raise TrustListMalformed("payload: seq starts at 1")
    issued_at = _time(payload, "iat", "payload")
    expires_at = _time(payload, "exp", "payload")
    if expires_at <= issued_at:
        raise TrustListMalformed("payload: exp must come after iat")
    status_member = payload.get("status_key")
    if "status_key" not in payload or not (status_member is None or isinstance(status_member, dict)):
        raise TrustListMalformed("payload: status_key must be a JWK with a kid, or null")
    status_kid = None if status_member is None else _member(status_member, "kid", str, "status_key")
    status_key = None if status_member is None else _jwk(status_member, "status_key")
    offices = tuple(_office(entry) for entry in _member(payload, "offices", list, "payload"))
    kids = [key.kid for office in offices for key in office.keys]
    if len(set(kids)) != len(kids):
        raise TrustListMalformed("payload: a kid is listed twice")
    codes = [office.code for office in offices]
    if len(set(codes)) != len(codes):
        raise TrustListMalformed("payload: an office is listed twice")
    endpoints = _member(payload, "endpoints", dict, "payload")
    return SignedTrustList(
        region_code=_member(region, "code", str, "region"),
        region_name=_member(region, "name", str, "region"),
        public_url=_member(region, "public_url", str, "region"),
        sequence=sequence,
        issued_at=issued_at,
        expires_at=expires_at,
        root_fingerprint=fingerprint,
        root_key=root,
        status_kid=status_kid,
        status_key=status_key,
        offices=offices,
        endpoints=Endpoints(
            trust_list=_member(endpoints, "trust_list", str, "endpoints"),
            status=_member(endpoints, "status", str, "endpoints"),
            status_list=_member(endpoints, "status_list", str, "endpoints"),
            verify=_member(endpoints, "verify", str, "endpoints"),
            log=_optional_string(endpoints, "log", "endpoints"),
        ),
        jws=jws,
        log=_log(payload.get("log")),
    )


def _optional_string(container: dict[str, Any], name: str, where: str) -> str | None:
    value = container.get(name)
    if value is not None and not isinstance(value, str):
        raise TrustListMalformed(f"{where}: {name} must be a string")
    return value


def _log(member: Any) -> ListedLog | None:
    if member is None:
        return None
    if not isinstance(member, dict) or set(member) != {"origin", "verifier_key", "checkpoint"}:
        raise TrustListMalformed("payload: log is {origin, verifier_key, checkpoint} or absent")
    origin = _member(member, "origin", str, "log")
    verifier_key = _member(member, "verifier_key", str, "log")
    try:
        name, key = parse_verifier_key(verifier_key)
    except NoteError as error:
        raise TrustListMalformed(f"log: {error}") from error
    if name != origin:
        raise TrustListMalformed("log: the verifier key is not named after the log's origin")
    try:
        checkpoint = parse_checkpoint(open_note(_member(member, "checkpoint", str, "log"), {name: key})[0])
    except NoteError as error:
        raise TrustListMalformed(f"log: the checkpoint does not verify with the log key: {error}") from error
    if checkpoint.origin != origin:
        raise TrustListMalformed("log: the checkpoint is of another log")
    return ListedLog(
        origin=origin, verifier_key=verifier_key, key=key, checkpoint=_member(member, "checkpoint", str, "log")
    )


def _office(entry: Any) -> ListedOffice:
    if not isinstance(entry, dict):
        raise TrustListMalformed("payload: each office is an object")
    return ListedOffice(
        code=_member(entry, "code", str, "office"),
        name=_member(entry, "name", str, "office"),
        types=_types(entry, "office"),
        keys=tuple(_key(key) for key in _member(entry, "keys", list, "office")),
    )


def _key(entry: Any) -> ListedKey:
    if not isinstance(entry, dict):
        raise TrustListMalformed("payload: each key is an object")
    kid = _member(entry, "kid", str, "key")
    try:
        algorithm = require_algorithm(_member(entry, "alg", str, "key"))
    except UnsupportedAlgorithm as error:
        raise TrustListMalformed(f"key {kid}: {error}") from error
    public_key = _jwk(_member(entry, "jwk", dict, "key"), f"key {kid}")
    if key_id(public_key) != kid:
        raise TrustListMalformed(f"key {kid}: the kid is not the key's thumbprint prefix")
    if algorithm_of(public_key) != algorithm:
        raise TrustListMalformed(f"key {kid}: alg {algorithm} does not match the JWK")
    state = _member(entry, "state", str, "key")
    if state not in KEY_STATES:
        raise TrustListMalformed(f"key {kid}: unknown state {state!r}")
    not_after = _optional_time(entry, "not_after", "key")
    compromised_since = _optional_time(entry, "compromised_since", "key")
    if (state == "compromised") != (compromised_since is not None):
        raise TrustListMalformed(f"key {kid}: compromised_since is set exactly when the state is compromised")
    return ListedKey(
        kid=kid,
        algorithm=algorithm,
        public_key=public_key,
        types=_types(entry, "key"),
        not_before=_time(entry, "not_before", "key"),
        not_after=not_after,
        state=state,
        compromised_since=compromised_since,
    )


def _member(container: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = container.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TrustListMalformed(f"{where}: {name} must be a {kind.__name__}")
    return value


def _integer(container: dict[str, Any], name: str, where: str) -> int:
    return int(_member(container, name, int, where))


def _time(container: dict[str, Any], name: str, where: str) -> datetime:
    seconds = _integer(container, name, where)
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise TrustListMalformed(f"{where}: {name} is out of range") from error


def _optional_time(container: dict[str, Any], name: str, where: str) -> datetime | None:
    if name not in container:
        raise TrustListMalformed(f"{where}: {name} is missing (null when absent)")
    return None if container[name] is None else _time(container, name, where)


def _types(container: dict[str, Any], where: str) -> frozenset[str]:
    types = _member(container, "types", list, where)
    if not all(isinstance(code, str) for code in types):
        raise TrustListMalformed(f"{where}: types are strings")
    return frozenset(types)


def _jwk(member: dict[str, Any], where: str) -> PublicKey:
    jwk = {name: value for name, value in member.items() if name != "kid"}
    try:
        return load_public_jwk(jwk)
    except KeyStorageError as error:
        raise TrustListMalformed(f"{where}: {error}") from error

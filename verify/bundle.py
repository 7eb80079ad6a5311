"""Reading an offline bundle (written by :mod:`registry.bundle`; ``docs/bundle.md``).

The bundle is trusted through its exporting region's root: pinned with ``fingerprint``
(an earlier root chains through rotations), or, without a pin, the root the bundle
itself names, which the answer then reports so a person can compare it. That root's
trust list (in the bundle) names the status key; the bundle must be signed with it.
Each other region's lists are checked later, under the root the exporter pinned for
it, exactly as a synced peer's would be; every list's freshness is capped by the
bundle's expiry, so a stale bundle makes verdicts UNDETERMINED.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from signing.algorithms import verify_signature
from signing.errors import KeyStorageError, TokenFormatError
from signing.jwk import load_public_jwk, public_jwk
from signing.notes import Checkpoint
from signing.tokens import parse_token
from verify.errors import VerifyError
from verify.trust import RegionCopy
from verify.trust_lists import SignedTrustList, TrustListError, read_trust_list
from verify.witness import LogRefused, open_checkpoint

BUNDLE_TYPE: Final = "ecert-bundle"
MAX_BUNDLE_LENGTH: Final = 64 * 1024 * 1024


class BundleRefused(VerifyError):
    """Not a bundle this verifier can trust: malformed, or not signed as it must be."""

    code = "BUNDLE_REFUSED"


@dataclass(frozen=True)
class Bundle:
    issuer: str
    root_fingerprint: str
    issued_at: datetime
    expires_at: datetime
    copies: dict[str, RegionCopy]
    # Each region's newest log checkpoint the bundle carries (size and root), verified
    # with the log key that region's trust list names.
    checkpoints: dict[str, Checkpoint]


def read_bundle(text: str, *, fingerprint: str | None = None) -> Bundle:
    """Check a bundle's signature through its exporter's root and return its copies.

    Raises:
        BundleRefused: malformed, an exporter root other than the pinned one (or one it
            cannot chain to), or a signature that does not verify.
    """
    try:
        parsed = parse_token(text.strip(), MAX_BUNDLE_LENGTH, typ=BUNDLE_TYPE)
    except TokenFormatError as error:
        raise BundleRefused(f"not a bundle: {error.detail}") from error
    payload = parsed.payload
    if set(payload) != {"iss", "iat", "exp", "regions"} or not isinstance(payload["regions"], list):
        raise BundleRefused("a bundle holds exactly iss, iat, exp and regions")
    issued_at, expires_at = _time(payload, "iat"), _time(payload, "exp")
    if expires_at <= issued_at:
        raise BundleRefused("a bundle's exp comes after its iat")
    entries = [_entry(entry) for entry in payload["regions"]]
    codes = [entry["code"] for entry in entries]
    if len(set(codes)) != len(codes) or codes.count(payload["iss"]) != 1:
        raise BundleRefused("each region appears once, the exporting region among them")
    own = next(entry for entry in entries if entry["code"] == payload["iss"])
    try:
        listed = (
            read_trust_list(own["trust_list"], fingerprint=fingerprint)
            if fingerprint is not None
            else read_trust_list(own["trust_list"], pinned_root_jwk=_jwk(own["root"]))
        )
    except TrustListError as error:
        raise BundleRefused(f"the exporting region's trust list: {error}") from error
    if listed.region_code != payload["iss"]:
        raise BundleRefused("the exporting region's trust list is another region's")
    if (
        listed.status_key is None
        or parsed.header.kid != listed.status_kid
        or parsed.header.alg != "EdDSA"
        or not verify_signature("EdDSA", listed.status_key, parsed.signing_input, parsed.signature)
    ):
        raise BundleRefused("the bundle is not signed by its exporting region's status key")
    copies = {
        entry["code"]: RegionCopy(
            region_code=entry["code"],
            root_public_jwk=public_jwk(listed.root_key) if entry is own else _jwk(entry["root"]),
            trust_list=entry["trust_list"],
            status_list=entry["status_list"],
            checkpoint=entry["checkpoint"],
        )
        for entry in entries
    }
    checkpoints = {
        entry["code"]: _checkpoint(entry, listed if entry is own else None) for entry in entries if entry["checkpoint"]
    }
    return Bundle(
        checkpoints=checkpoints,
        issuer=listed.region_code,
        root_fingerprint=listed.root_fingerprint,
        issued_at=issued_at,
        expires_at=expires_at,
        copies=copies,
    )


def _checkpoint(entry: dict[str, Any], listed: SignedTrustList | None) -> Checkpoint:
    try:
        if listed is None:
            listed = read_trust_list(entry["trust_list"], pinned_root_jwk=_jwk(entry["root"]))
        if listed.log is None:
            raise BundleRefused(f"region {entry['code']}'s trust list names no log for its checkpoint")
        return open_checkpoint(entry["checkpoint"], listed.log)
    except (TrustListError, LogRefused) as error:
        raise BundleRefused(f"region {entry['code']}'s checkpoint: {error}") from error


def _entry(entry: Any) -> dict[str, Any]:
    if (
        not isinstance(entry, dict)
        or set(entry) != {"code", "root", "trust_list", "status_list", "checkpoint"}
        or not isinstance(entry["code"], str)
        or not isinstance(entry["root"], dict)
        or not isinstance(entry["trust_list"], str)
        or not (entry["status_list"] is None or isinstance(entry["status_list"], str))
        or not (entry["checkpoint"] is None or isinstance(entry["checkpoint"], str))
    ):
        raise BundleRefused("each region entry is {code, root, trust_list, status_list, checkpoint}")
    return entry


def _jwk(member: dict[str, Any]) -> dict[str, Any]:
    jwk = {name: value for name, value in member.items() if name != "kid"}
    try:
        load_public_jwk(jwk)
    except KeyStorageError as error:
        raise BundleRefused(f"a root key is unusable: {error}") from error
    return jwk


def _time(payload: dict[str, Any], name: str) -> datetime:
    value = payload[name]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**40:
        raise BundleRefused(f"{name} is a time in whole seconds")
    return datetime.fromtimestamp(value, UTC)

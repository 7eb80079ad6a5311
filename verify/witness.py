"""Witnessing other regions' transparency logs (issue 5).

On every ``peer sync`` we fetch the peer's newest checkpoint, check its signature with
the log key its root-signed trust list names, and check it is consistent with the last
checkpoint we accepted from that peer (an RFC 6962 consistency proof, fetched from the
peer and verified here). A smaller tree than before, another root for the same size, or
a proof that does not verify means the peer's history was rewritten (a database restored
from an old copy and written again, an insider's edit): the checkpoint is refused, the
last good one kept, and the sync fails with a code that names it. A checkpoint that
passes is countersigned with our own log key and served (``GET
/api/v1/log/cosignatures``), so a region cannot show different histories to different
peers without it being provable.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Final

from registry.merkle import verify_consistency
from signing.notes import MAX_NOTE_LENGTH, Checkpoint, NoteError, open_note, parse_checkpoint
from verify.errors import VerifyError
from verify.fetch import Fetcher, FetchFailed
from verify.trust_lists import ListedLog, SignedTrustList

MAX_PROOF_LENGTH: Final = 64 * 1024


class LogRefused(VerifyError):
    """A peer's checkpoint that must not be accepted; ``code`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Witnessed:
    """A peer checkpoint that verified and is consistent with the one held before."""

    note: str
    checkpoint: Checkpoint


def open_checkpoint(note: str, log: ListedLog) -> Checkpoint:
    """The checkpoint in ``note``, signed by the log key the trust list names.

    Raises:
        LogRefused: ``LOG_REFUSED`` if malformed, unsigned by that key, or of another origin.
    """
    try:
        text, _signers = open_note(note, {log.origin: log.key})
        checkpoint = parse_checkpoint(text)
    except NoteError as error:
        raise LogRefused("LOG_REFUSED", f"the checkpoint does not verify: {error}") from error
    if checkpoint.origin != log.origin:
        raise LogRefused("LOG_REFUSED", f"the checkpoint is of log {checkpoint.origin!r}, not {log.origin!r}")
    return checkpoint


def witness(
    fetcher: Fetcher, listed: SignedTrustList, *, held_size: int | None, held_root: bytes | None
) -> Witnessed | None:
    """Fetch the peer's newest checkpoint and prove it extends the one held.

    Returns None for a peer whose trust list names no log (it predates the log).

    Raises:
        FetchFailed: the checkpoint or the proof cannot be fetched.
        LogRefused: ``LOG_REFUSED`` (bad checkpoint), ``LOG_ROLLBACK`` (a smaller tree
            than one already seen) or ``LOG_FORK`` (not an extension of the tree seen).
    """
    if listed.log is None or listed.endpoints.log is None:
        return None
    note = fetcher.get_text(listed.endpoints.log + "/checkpoint", max_bytes=MAX_NOTE_LENGTH, encoding="utf-8")
    checkpoint = open_checkpoint(note, listed.log)
    check_extends(fetcher, listed, held_size, held_root, checkpoint)
    return Witnessed(note=note, checkpoint=checkpoint)


def check_extends(
    fetcher: Fetcher, listed: SignedTrustList, held_size: int | None, held_root: bytes | None, new: Checkpoint
) -> None:
    """Raise unless ``new`` is the held tree or an extension of it (RFC 6962 consistency).

    Raises:
        FetchFailed: the proof cannot be fetched.
        LogRefused: ``LOG_ROLLBACK`` or ``LOG_FORK``, naming the region and the sizes.
    """
    if held_size is None or held_root is None or held_size == 0:
        return  # nothing seen yet, or the empty tree: every tree extends it
    region = listed.region_code
    if new.size < held_size:
        raise LogRefused("LOG_ROLLBACK", f"region {region}'s log shrank from {held_size} to {new.size} entries")
    if new.size == held_size:
        if new.root_hash != held_root:
            raise LogRefused("LOG_FORK", f"region {region}'s log has two different roots at size {held_size}")
        return
    assert listed.endpoints.log is not None
    url = f"{listed.endpoints.log}/proof/consistency?from={held_size}&to={new.size}"
    proof = read_proof(fetcher.get_text(url, max_bytes=MAX_PROOF_LENGTH), url)
    if not verify_consistency(held_size, new.size, held_root, new.root_hash, proof):
        raise LogRefused(
            "LOG_FORK",
            f"region {region}'s log at {new.size} entries does not extend the {held_size} seen: its history was rewritten",
        )


@dataclass(frozen=True)
class PeerLogFinding:
    region: str
    code: str
    detail: str


def audit_peer_log(
    fetcher: Fetcher, listed: SignedTrustList, *, held_note: str | None, held_size: int | None, held_root: bytes | None
) -> list[PeerLogFinding]:
    """Re-check what we hold of a peer's log, then that its log now still extends it.

    Read-only: nothing is stored. An unreachable peer is reported as ``PEER_UNREACHABLE``
    (not an inconsistency: the caller decides).
    """
    region = listed.region_code
    if held_note is None or listed.log is None:
        return []
    try:
        held = open_checkpoint(held_note, listed.log)
    except LogRefused as error:
        return [PeerLogFinding(region, "LOG_REFUSED", f"the checkpoint held for region {region}: {error.detail}")]
    if (held.size, held.root_hash) != (held_size, held_root):
        return [PeerLogFinding(region, "LOG_FORK", f"the checkpoint held for region {region} was edited")]
    if listed.endpoints.log is None:
        return []
    try:
        note = fetcher.get_text(listed.endpoints.log + "/checkpoint", max_bytes=MAX_NOTE_LENGTH, encoding="utf-8")
    except FetchFailed as error:
        return [PeerLogFinding(region, error.code, error.detail)]  # unreachable: the caller's warning
    try:
        # From here on a peer that served a checkpoint but withholds its proof is refusing
        # to show its history extends what we saw: an inconsistency, not an outage.
        check_extends(fetcher, listed, held_size, held_root, open_checkpoint(note, listed.log))
    except FetchFailed as error:
        return [
            PeerLogFinding(
                region, "LOG_PROOF_WITHHELD", f"region {region} served a checkpoint but no proof: {error.detail}"
            )
        ]
    except LogRefused as error:
        return [PeerLogFinding(region, error.code, error.detail)]
    return []


def read_proof(body: str, url: str) -> list[bytes]:
    """The hashes of a ``{"proof": [base64 ...]}`` answer.

    Raises:
        LogRefused: ``LOG_REFUSED`` if it is not one.
    """
    try:
        document = json.loads(body)
        hashes = document["proof"]
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise TypeError("proof is not a list of strings")
        return [base64.b64decode(h, validate=True) for h in hashes]
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise LogRefused("LOG_REFUSED", f"{url}: not a consistency proof ({error})") from error

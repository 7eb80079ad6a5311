"""Root rotation (registry.roots.rotate_root) as a pinning reader sees it
(verify.trust_lists.read_trust_list): the chain of rotation statements leads from any
earlier pin to the newest root, and nothing off that chain is accepted.

Modelled on TUF's root rotation: root N+1 is trusted because root N signed a statement
naming it. Hostile chains are built with the real roots' private keys (captured before
each rotation erased them), so each case fails for exactly one reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from deployment import Deployment
from registry.models import AuditRecord, Region, RootRotation
from registry.regions import current_region
from registry.roots import ROTATION_TYPE, rotate_root
from registry.trust_list import newest_trust_list
from signing.algorithms import PrivateKey, generate_private_key
from signing.jwk import public_jwk, thumbprint
from signing.keystore import KeyRing
from signing.tokens import encode_token
from tests.conftest import TEST_PASSPHRASE, FixedClock
from tests.verify.conftest import b64url, unb64url
from tests.verify.peer_server import ACTOR, payload_of, signed_trust_list
from verify.trust_lists import TrustListMalformed, TrustListUntrusted, read_trust_list


@dataclass(frozen=True)
class Root:
    fingerprint: str
    jwk: dict[str, str]
    key: PrivateKey


@dataclass(frozen=True)
class Rotations:
    """The region's roots (0: the first, 2: the current) and the newest trust list
    published under each of them."""

    roots: list[Root]
    lists: list[str]

    @property
    def chain(self) -> list[str]:
        """The rotation statements the newest list carries (0→1, then 1→2)."""
        return list(payload_of(self.lists[-1])["root_chain"])


def current_root(deployment: Deployment, keyring: KeyRing) -> tuple[Root, str]:
    """The region's root (with its private key) and its newest trust list."""
    with deployment.read_session() as session:
        region = current_region(session)
        newest = newest_trust_list(session)
        assert newest is not None
        key = keyring.private_key(region.root_kid, lambda: region.root_private_key)
        return Root(region.root_kid, dict(region.root_public_jwk), key), newest.jws


def rotate(deployment: Deployment, keyring: KeyRing, clock: FixedClock) -> RootRotation:
    clock.advance(minutes=5)
    with deployment.session() as session:
        rotation = rotate_root(session, keyring, now=clock(), actor=ACTOR)
        session.commit()
        return rotation


@pytest.fixture
def rotations(deployment: Deployment, keyring: KeyRing, clock: FixedClock, office: Any) -> Rotations:
    """Two rotations of our root, with every root's private key captured on the way."""
    roots, lists = [], []
    for turn in range(3):
        if turn:
            rotate(deployment, keyring, clock)
        root, newest = current_root(deployment, keyring)
        roots.append(root)
        lists.append(newest)
    return Rotations(roots=roots, lists=lists)


def pin(root: Root, kind: str) -> dict[str, Any]:
    return {"fingerprint": root.fingerprint} if kind == "fingerprint" else {"pinned_root_jwk": root.jwk}


# ---------------------------------------------------------------- following the chain


@pytest.mark.parametrize("kind", ["fingerprint", "jwk"])
@pytest.mark.parametrize(
    ("after", "pinned"),
    [
        pytest.param(1, 0, id="one-rotation-first-pin"),
        pytest.param(1, 1, id="one-rotation-current-pin"),
        pytest.param(2, 0, id="two-rotations-first-pin"),
        pytest.param(2, 1, id="two-rotations-middle-pin"),
        pytest.param(2, 2, id="two-rotations-current-pin"),
    ],
)
def test_a_list_after_rotations_verifies_from_any_earlier_pin(
    rotations: Rotations, after: int, pinned: int, kind: str
) -> None:
    """From any root pinned before (by thumbprint or by JWK), the reader follows the
    statements to the root that signed the list and reports that newest root."""
    listed = read_trust_list(rotations.lists[after], **pin(rotations.roots[pinned], kind))

    assert listed.root_fingerprint == rotations.roots[after].fingerprint
    assert thumbprint(listed.root_key) == rotations.roots[after].fingerprint
    assert listed.sequence == payload_of(rotations.lists[after])["seq"]


@pytest.mark.parametrize("kind", ["fingerprint", "jwk"])
def test_a_random_pin_does_not_chain_to_the_list(rotations: Rotations, kind: str) -> None:
    """A root that never belonged to the region reaches nothing: the list is untrusted."""
    stranger = generate_private_key("EdDSA")
    random_root = Root(thumbprint(stranger.public_key()), public_jwk(stranger.public_key()), stranger)

    with pytest.raises(TrustListUntrusted):
        read_trust_list(rotations.lists[2], **pin(random_root, kind))


@pytest.mark.parametrize("kind", ["fingerprint", "jwk"])
@pytest.mark.parametrize(("signed_by", "pinned"), [(0, 1), (0, 2), (1, 2)])
def test_a_list_signed_by_an_old_root_is_refused_once_the_pin_moved(
    rotations: Rotations, signed_by: int, pinned: int, kind: str
) -> None:
    """A genuine list of an earlier root is refused by a reader that has moved its pin on."""
    with pytest.raises(TrustListUntrusted):
        read_trust_list(rotations.lists[signed_by], **pin(rotations.roots[pinned], kind))


def test_an_old_root_cannot_sign_past_its_own_hand_over(rotations: Rotations) -> None:
    """A list signed by the first root (stolen before it was erased) that carries the
    chain is refused even by a reader still pinning that first root: the chain leads on."""
    forged = payload_of(rotations.lists[2])
    forged["seq"] += 1
    forged["root"] = {**rotations.roots[0].jwk, "kid": rotations.roots[0].fingerprint}

    with pytest.raises(TrustListUntrusted):
        read_trust_list(signed_trust_list(forged, rotations.roots[0].key), fingerprint=rotations.roots[0].fingerprint)


# ---------------------------------------------------------------- tampered chains


def statement(body: dict[str, Any], key: PrivateKey, kid: str | None = None) -> str:
    return encode_token(body, key, kid or thumbprint(key.public_key()), typ=ROTATION_TYPE)


def flip_signature(jws: str) -> str:
    header, payload, signature = jws.split(".")
    raw = unb64url(signature)
    return f"{header}.{payload}.{b64url(bytes([raw[0] ^ 1]) + raw[1:])}"


def bad_signature(r: Rotations) -> list[str]:
    return [flip_signature(r.chain[0]), r.chain[1]]


def wrong_region(r: Rotations) -> list[str]:
    body = payload_of(r.chain[0])
    body["region"] = "320000"
    return [statement(body, r.roots[0].key), r.chain[1]]


def out_of_order(r: Rotations) -> list[str]:
    body = payload_of(r.chain[1])
    body["seq"] = payload_of(r.chain[0])["seq"]
    return [r.chain[0], statement(body, r.roots[1].key)]


def broken_chain(r: Rotations) -> list[str]:
    stranger = generate_private_key("EdDSA")
    body = payload_of(r.chain[1])
    body["old"] = {**public_jwk(stranger.public_key()), "kid": thumbprint(stranger.public_key())}
    return [r.chain[0], statement(body, stranger)]


def new_kid_not_the_thumbprint(r: Rotations) -> list[str]:
    body = payload_of(r.chain[0])
    body["new"]["kid"] = r.roots[2].fingerprint
    return [statement(body, r.roots[0].key), r.chain[1]]


def old_kid_not_the_thumbprint(r: Rotations) -> list[str]:
    body = payload_of(r.chain[0])
    body["old"]["kid"] = r.roots[1].fingerprint
    return [statement(body, r.roots[0].key), r.chain[1]]


def header_names_another_signer(r: Rotations) -> list[str]:
    return [statement(payload_of(r.chain[0]), r.roots[0].key, kid=r.roots[1].fingerprint), r.chain[1]]


def signed_by_the_new_root_itself(r: Rotations) -> list[str]:
    return [statement(payload_of(r.chain[0]), r.roots[1].key, kid=r.roots[0].fingerprint), r.chain[1]]


def not_a_statement(r: Rotations) -> list[str]:
    return ["not.a.statement", r.chain[1]]


TAMPERED: list[Any] = [
    pytest.param(bad_signature, TrustListUntrusted, "not signed by the root", id="bad-signature"),
    pytest.param(header_names_another_signer, TrustListUntrusted, "not signed by the root", id="header-kid"),
    pytest.param(signed_by_the_new_root_itself, TrustListUntrusted, "not signed by the root", id="self-signed"),
    pytest.param(wrong_region, TrustListMalformed, "another region", id="wrong-region"),
    pytest.param(out_of_order, TrustListMalformed, "out of order", id="out-of-order"),
    pytest.param(broken_chain, TrustListMalformed, "broken", id="broken-chain"),
    pytest.param(new_kid_not_the_thumbprint, TrustListMalformed, "thumbprint", id="new-kid"),
    pytest.param(old_kid_not_the_thumbprint, TrustListMalformed, "thumbprint", id="old-kid"),
    pytest.param(not_a_statement, TrustListMalformed, "root_chain", id="junk"),
]


def with_chain(r: Rotations, chain: list[str], **changes: Any) -> str:
    """The newest list with another ``root_chain``, signed again by the current root."""
    payload = payload_of(r.lists[2])
    payload.update(root_chain=chain, **changes)
    return signed_trust_list(payload, r.roots[2].key)


def test_the_genuine_chain_resigned_is_accepted(rotations: Rotations) -> None:
    """The control for the table below: re-signing the newest list unchanged is fine,
    so each tampered case is refused for its tampering alone."""
    listed = read_trust_list(with_chain(rotations, rotations.chain), fingerprint=rotations.roots[0].fingerprint)

    assert listed.root_fingerprint == rotations.roots[2].fingerprint


@pytest.mark.parametrize(("tamper", "error", "match"), TAMPERED)
def test_a_tampered_rotation_statement_is_refused(
    rotations: Rotations, tamper: Callable[[Rotations], list[str]], error: type[Exception], match: str
) -> None:
    """A chain whose statements are forged, foreign, reordered, broken or misnamed does
    not lead from the first pin to the current root."""
    with pytest.raises(error, match=match):
        read_trust_list(with_chain(rotations, tamper(rotations)), fingerprint=rotations.roots[0].fingerprint)


@pytest.mark.parametrize("pinned", [0, 1, 2], ids=["first-pin", "middle-pin", "current-pin"])
def test_a_list_older_than_the_root_that_signed_it_is_refused(rotations: Rotations, pinned: int) -> None:
    """A list numbered before the hand-over to the root that signed it mixes
    generations, whichever root the reader pinned (even the current one)."""
    last_hand_over = payload_of(rotations.chain[1])["seq"]
    mixed = with_chain(rotations, rotations.chain, seq=last_hand_over - 1)

    with pytest.raises(TrustListMalformed, match="mixed generations"):
        read_trust_list(mixed, fingerprint=rotations.roots[pinned].fingerprint)


# ---------------------------------------------------------------- what rotating does to the region


def test_rotation_replaces_the_root_and_audits_it(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, office: Any
) -> None:
    """After a rotation the region holds only the new root (its stored private key opens
    to the new root under a fresh key ring), and ``region.rotate_root`` is audited."""
    before, _list = current_root(deployment, keyring)
    with deployment.read_session() as session:
        old_blob = current_region(session).root_private_key

    rotation = rotate(deployment, keyring, clock)

    with deployment.read_session() as session:
        region = session.scalars(select(Region)).one()
        assert region.root_kid == rotation.new_kid != before.fingerprint
        assert region.root_private_key != old_blob
        stored = KeyRing(TEST_PASSPHRASE).private_key(region.root_kid, lambda: region.root_private_key)
        assert thumbprint(stored.public_key()) == region.root_kid
        audited = session.scalars(select(AuditRecord).where(AuditRecord.action == "region.rotate_root")).one()
    assert (rotation.old_kid, rotation.new_kid) == (before.fingerprint, region.root_kid)
    assert audited.details == {
        "old_root_fingerprint": before.fingerprint,
        "new_root_fingerprint": rotation.new_kid,
        "sequence": rotation.sequence,
    }


def test_rotation_drops_the_old_root_from_memory(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, office: Any
) -> None:
    """The old root can sign nothing more here: not even the process's key ring holds it."""
    before, _list = current_root(deployment, keyring)
    rotate(deployment, keyring, clock)

    def stored_nowhere() -> bytes:
        raise LookupError("the old root is stored nowhere")

    with pytest.raises(LookupError):
        keyring.private_key(before.fingerprint, stored_nowhere)


def test_each_rotation_takes_the_next_trust_list_sequence(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, office: Any
) -> None:
    """A rotation publishes the next list, signed by the new root and carrying every
    statement so far; the statement names that list's sequence."""
    for turn in (1, 2):
        with deployment.read_session() as session:
            previous = newest_trust_list(session)
            assert previous is not None
        rotation = rotate(deployment, keyring, clock)
        with deployment.read_session() as session:
            newest = newest_trust_list(session)
            assert newest is not None
        assert newest.sequence == rotation.sequence == previous.sequence + 1
        listed = read_trust_list(newest.jws, fingerprint=rotation.new_kid)
        assert listed.root_fingerprint == rotation.new_kid
        assert len(payload_of(newest.jws)["root_chain"]) == turn

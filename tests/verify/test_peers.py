"""Pinning and syncing other regions (verify.peers) against real HTTP servers.

The peer (330000) is a real deployment served on loopback. Where a test needs the
peer's address to serve what the real peer would not (an older list, another region's
list, junk), the peer is pinned at a canned server's address instead, which first
serves the peer's genuine list; the status list endpoint named inside that (signed)
list is still the real peer's. For status lists, the peer's public URL itself is moved
to the canned server (``relocated_peer``), so every endpoint of its signed list is
there. Every case runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from registry.errors import AlreadyExists, InvalidInput
from registry.regions import current_region
from registry.roots import rotate_root
from registry.trust_list import STATUS_LIST_PATH, TRUST_LIST_PATH, publish_trust_list
from signing.algorithms import generate_private_key
from signing.jwk import key_id, public_jwk
from tests.conftest import FixedClock
from tests.verify.peer_server import (
    PEER_CODE,
    CannedServer,
    Home,
    PeerRegion,
    payload_of,
    random_fingerprint,
    signed_trust_list,
)
from verify.peers import KEY_REFRESH_INTERVAL, PeerRefused, health
from verify.trust_lists import MAX_TRUST_LIST_LENGTH

pytest_plugins = ["tests.verify.conftest_peers"]


def assert_nothing_stored(home: Home) -> None:
    assert home.peers() == []
    assert home.audit("peer.add") == []


# ---------------------------------------------------------------- add_peer


def test_add_peer_stores_the_list_byte_for_byte_with_its_status_list(home: Home, peer: PeerRegion) -> None:
    """A list the pinned root signed is stored as served, with the status list its
    status key signed; the pin and the root reached are both recorded, and audited."""
    served = peer.trust_list()

    outcome = home.add(peer.url, peer.fingerprint)

    row = home.peer_row()
    assert outcome.ok and outcome.changed
    assert row is not None
    assert (row.region_name, row.url, row.trust_list) == ("浙江省", peer.url, served)
    assert row.pinned_fingerprint == row.root_fingerprint == peer.fingerprint
    assert row.status_list is not None and row.status_list_expires_at is not None
    assert row.last_error_code is None
    [added] = home.audit("peer.add")
    assert added.subject_id == PEER_CODE
    assert added.details["root"] == peer.fingerprint


def test_add_peer_keeps_the_pin_when_the_status_list_cannot_be_fetched(
    home: Home, relocated_peer: PeerRegion, canned: CannedServer, clock: FixedClock
) -> None:
    """The status list is fetched too, but failing to get it does not undo the pin: the
    peer is stored, without a status list, and reported as failing."""
    canned.serve(STATUS_LIST_PATH, "gone", status=404)

    outcome = home.add(canned.url, relocated_peer.fingerprint)

    row = home.peer_row()
    assert outcome.error_code == "PEER_UNREACHABLE"
    assert row is not None and row.status_list is None
    assert (row.last_error_code, health(row, clock())) == ("PEER_UNREACHABLE", "failing")


def test_add_peer_with_a_wrong_fingerprint_stores_nothing(home: Home, peer: PeerRegion) -> None:
    """A list its pinned root did not sign is refused (TRUSTLIST_UNTRUSTED) and nothing is kept."""
    with pytest.raises(PeerRefused) as refused:
        home.add(peer.url, random_fingerprint())

    assert refused.value.code == "TRUSTLIST_UNTRUSTED"
    assert_nothing_stored(home)


def test_add_peer_with_a_malformed_fingerprint_is_invalid_input(home: Home, peer: PeerRegion) -> None:
    """A fingerprint that is not a 43-character thumbprint is refused before any fetch."""
    with pytest.raises(InvalidInput, match="cannot be added"):
        home.add(peer.url, peer.fingerprint[:-1])

    assert_nothing_stored(home)


def test_add_peer_refuses_an_expired_list(
    home: Home, peer: PeerRegion, canned: CannedServer, clock: FixedClock
) -> None:
    """A genuine list served after its expiry (a frozen peer) is refused as TRUSTLIST_STALE."""
    canned.serve_trust_list(peer.trust_list())
    clock.advance(hours=25)

    with pytest.raises(PeerRefused) as refused:
        home.add(canned.url, peer.fingerprint)

    assert refused.value.code == "TRUSTLIST_STALE"
    assert_nothing_stored(home)


def test_add_peer_refuses_our_own_region(home: Home, client: FlaskClient, canned: CannedServer, region: Any) -> None:
    """Our own list, served at the address and pinned with our own fingerprint, is not a peer."""
    canned.serve_trust_list(client.get(TRUST_LIST_PATH).get_data(as_text=True))

    with pytest.raises(InvalidInput) as refused:
        home.add(canned.url, region.root_kid)

    assert [error.field for error in refused.value.errors] == ["url"]
    assert_nothing_stored(home)


def test_add_peer_refuses_a_region_already_pinned(home: Home, recognised_peer: PeerRegion) -> None:
    """A second ``peer add`` of the same region is AlreadyExists; the first pin stays alone."""
    with pytest.raises(AlreadyExists, match="already a peer"):
        home.add(recognised_peer.url, recognised_peer.fingerprint)

    assert home.peers() == [PEER_CODE]
    assert len(home.audit("peer.add")) == 1


# ---------------------------------------------------------------- sync_peer: what is refused


@dataclass
class Scene:
    """The peer pinned at ``canned``'s address while it served ``newer`` (the newest list);
    ``older`` is the peer's genuine list before that one."""

    peer: PeerRegion
    canned: CannedServer
    older: str
    newer: str
    our_list: str
    clock: FixedClock


@pytest.fixture
def scene(home: Home, peer: PeerRegion, canned: CannedServer, client: FlaskClient, clock: FixedClock) -> Scene:
    older = peer.trust_list()
    newer = peer.publish()
    canned.serve_trust_list(newer)
    outcome = home.add(canned.url, peer.fingerprint)
    assert outcome.ok, outcome
    our_list = client.get(TRUST_LIST_PATH).get_data(as_text=True)
    return Scene(peer=peer, canned=canned, older=older, newer=newer, our_list=our_list, clock=clock)


def serve_older_genuine_list(scene: Scene) -> None:
    scene.canned.serve_trust_list(scene.older)


def serve_other_content_under_the_same_sequence(scene: Scene) -> None:
    payload = payload_of(scene.newer)
    payload["region"]["name"] = "浙江省（另一份）"
    scene.canned.serve_trust_list(signed_trust_list(payload, scene.peer.root_key()))


def serve_another_regions_list(scene: Scene) -> None:
    scene.canned.serve_trust_list(scene.our_list)


def serve_a_list_for_another_region_signed_by_the_pinned_root(scene: Scene) -> None:
    payload = payload_of(scene.newer)
    payload["region"]["code"] = "320000"
    payload["seq"] += 1
    scene.canned.serve_trust_list(signed_trust_list(payload, scene.peer.root_key()))


def serve_junk(scene: Scene) -> None:
    scene.canned.serve_trust_list("this is not a trust list")


def stop_answering(scene: Scene) -> None:
    scene.canned.stop()


def answer_503(scene: Scene) -> None:
    scene.canned.serve_trust_list("busy", status=503)


def serve_an_oversize_answer(scene: Scene) -> None:
    scene.canned.serve_trust_list(b"A" * (MAX_TRUST_LIST_LENGTH + 1))


def keep_serving_the_held_list_past_its_expiry(scene: Scene) -> None:
    scene.clock.advance(hours=25)


def redirect_to_a_newer_genuine_list(scene: Scene) -> None:
    scene.peer.publish()  # following the redirect would bring a change
    scene.canned.serve_trust_list("", status=302, headers={"Location": scene.peer.url + TRUST_LIST_PATH})


def serve_non_ascii(scene: Scene) -> None:
    scene.canned.serve_trust_list("信任列表".encode())


REFUSED: list[Any] = [
    pytest.param(serve_older_genuine_list, "TRUSTLIST_ROLLBACK", id="rollback"),
    pytest.param(serve_other_content_under_the_same_sequence, "TRUSTLIST_CONFLICT", id="equivocation"),
    pytest.param(serve_another_regions_list, "TRUSTLIST_UNTRUSTED", id="another-regions-list"),
    pytest.param(serve_a_list_for_another_region_signed_by_the_pinned_root, "TRUSTLIST_UNTRUSTED", id="region-swap"),
    pytest.param(serve_junk, "TRUSTLIST_MALFORMED", id="junk"),
    pytest.param(stop_answering, "PEER_UNREACHABLE", id="unreachable"),
    pytest.param(answer_503, "PEER_UNREACHABLE", id="http-503"),
    pytest.param(serve_an_oversize_answer, "PEER_UNREACHABLE", id="oversize"),
    pytest.param(keep_serving_the_held_list_past_its_expiry, "TRUSTLIST_STALE", id="frozen"),
    pytest.param(redirect_to_a_newer_genuine_list, "PEER_UNREACHABLE", id="redirect-not-followed"),
    pytest.param(serve_non_ascii, "PEER_UNREACHABLE", id="not-ascii"),
]


@pytest.mark.parametrize(("serve", "code"), REFUSED)
def test_a_refused_sync_keeps_the_held_list_and_records_why(
    home: Home, scene: Scene, serve: Callable[[Scene], None], code: str
) -> None:
    """Whatever the address serves instead of a newer genuine list, the newest good list
    stays, the peer row names the refusal (``peer list`` shows it) and the audit trail
    records it; no ``peer.trust_list`` change is written."""
    before = home.peer_row()
    assert before is not None and before.trust_list == scene.newer
    serve(scene)

    outcome = home.sync()

    after = home.peer_row()
    assert after is not None
    assert (outcome.ok, outcome.error_code, outcome.changed) == (False, code, False)
    assert (after.sequence, after.trust_list, after.root_fingerprint) == (
        before.sequence,
        before.trust_list,
        before.root_fingerprint,
    )
    assert after.last_error_code == code
    refusals = [(r.subject_id, r.details["code"], r.details["sequence_held"]) for r in home.audit("peer.sync_refused")]
    assert (PEER_CODE, code, before.sequence) in refusals
    assert home.audit("peer.trust_list") == []


def test_a_refused_trust_list_still_refreshes_the_status_list(home: Home, scene: Scene) -> None:
    """While the held trust list is current, a sync refused on the trust list still
    takes the peer's newer status list (under the held list's status key)."""
    before = home.peer_row()
    assert before is not None
    scene.clock.advance(minutes=10)
    scene.canned.serve_trust_list(scene.older)

    outcome = home.sync()

    after = home.peer_row()
    assert after is not None
    assert (outcome.error_code, after.last_error_code) == ("TRUSTLIST_ROLLBACK", "TRUSTLIST_ROLLBACK")
    assert after.status_list != before.status_list
    assert after.status_list_fetched_at == scene.clock()


def test_a_list_signed_by_the_previous_root_is_refused_once_the_rotation_was_followed(
    home: Home, peer: PeerRegion, canned: CannedServer, clock: FixedClock
) -> None:
    """After the peer rotated its root and we followed, neither its old genuine list nor a
    newer one signed by the old root (stolen before it was erased) is accepted."""
    old_list = peer.trust_list()
    canned.serve_trust_list(old_list)
    assert home.add(canned.url, peer.fingerprint).ok
    old_fingerprint, old_root = peer.fingerprint, peer.root_key()
    clock.advance(minutes=5)
    with peer.session() as session:
        rotate_root(session, peer.keyring, now=clock(), actor="test:peer")
        session.commit()
    canned.serve_trust_list(peer.trust_list())
    assert home.sync().ok
    followed = home.peer_row()
    assert followed is not None
    assert (followed.pinned_fingerprint, followed.root_fingerprint) == (old_fingerprint, peer.fingerprint)
    [changed] = home.audit("peer.trust_list")
    assert changed.details["new_root"] == peer.fingerprint

    forged = payload_of(peer.trust_list())
    forged.update(
        seq=forged["seq"] + 1, root_chain=[], root={**public_jwk(old_root.public_key()), "kid": old_fingerprint}
    )
    for served in (old_list, signed_trust_list(forged, old_root)):
        canned.serve_trust_list(served)
        outcome = home.sync()
        assert outcome.error_code == "TRUSTLIST_UNTRUSTED"
        assert home.peer_row().trust_list == followed.trust_list  # type: ignore[union-attr]


# ---------------------------------------------------------------- sync_peer: what is taken


def test_a_newer_list_replaces_the_held_one(home: Home, recognised_peer: PeerRegion, clock: FixedClock) -> None:
    """A higher sequence signed by the pinned root replaces the held list; audited as
    ``peer.trust_list`` with both sequence numbers; the last error is cleared."""
    held = home.peer_row()
    assert held is not None
    clock.advance(minutes=10)
    newer = recognised_peer.publish()

    outcome = home.sync()

    row = home.peer_row()
    assert row is not None
    assert outcome.ok and outcome.changed
    assert (row.sequence, row.trust_list) == (held.sequence + 1, newer)
    assert row.trust_list_fetched_at == clock()
    [changed] = home.audit("peer.trust_list")
    assert changed.details == {"from_sequence": held.sequence, "to_sequence": held.sequence + 1}


def test_the_same_list_again_is_no_change(home: Home, recognised_peer: PeerRegion) -> None:
    """Syncing while the peer still serves the held list succeeds without a change."""
    held = home.peer_row()

    outcome = home.sync()

    assert outcome.ok and not outcome.changed
    assert home.peer_row().trust_list == held.trust_list  # type: ignore[union-attr]
    assert home.audit("peer.trust_list") == []


def renew_status_key(peer: PeerRegion) -> str:
    """Give the peer a new status key (a new generation) and publish the list naming it."""
    with peer.session() as session:
        region = current_region(session)
        renewed = generate_private_key("EdDSA")
        kid = key_id(renewed.public_key())
        region.status_kid = kid
        region.status_public_jwk = public_jwk(renewed.public_key())
        region.status_private_key = peer.keyring.encrypt(renewed, kid)
        published = publish_trust_list(session, peer.keyring, now=peer.now(), actor="test:peer")
        session.commit()
        return published.jws


@pytest.mark.parametrize(
    ("new_generation", "status_list_kept"),
    [pytest.param(True, False, id="new-status-key"), pytest.param(False, True, id="same-status-key")],
)
def test_a_status_list_of_the_previous_status_key_is_dropped(
    home: Home,
    scene: Scene,
    new_generation: bool,
    status_list_kept: bool,
) -> None:
    """When a newer trust list names another status key, the held status list (signed by
    the previous one) is dropped even if no new status list can be fetched; with the
    same status key the held one is kept through the failed fetch."""
    held = home.peer_row()
    assert held is not None and held.status_list is not None
    newest = renew_status_key(scene.peer) if new_generation else scene.peer.publish()
    scene.canned.serve_trust_list(newest)
    scene.peer.stop()  # the status list endpoint (the real peer) is down

    outcome = home.sync()

    row = home.peer_row()
    assert row is not None
    assert (outcome.error_code, row.trust_list) == ("PEER_UNREACHABLE", newest)
    assert (row.status_list == held.status_list) is status_list_kept
    if not status_list_kept:
        assert (row.status_list, row.status_list_expires_at, row.status_list_fetched_at) == (None, None, None)


# ---------------------------------------------------------------- sync_peer: status lists refused


@dataclass
class StatusScene:
    """The relocated peer pinned at ``canned``; ``first`` was its status list when pinned,
    ``held`` the newer one a sync 10 minutes later took."""

    peer: PeerRegion
    canned: CannedServer
    first: str
    held: str
    our_status_list: str
    clock: FixedClock


@pytest.fixture
def status_scene(
    home: Home, relocated_peer: PeerRegion, canned: CannedServer, client: FlaskClient, clock: FixedClock
) -> StatusScene:
    first = relocated_peer.status_list()
    assert home.add(canned.url, relocated_peer.fingerprint).ok
    clock.advance(minutes=10)
    held = relocated_peer.status_list()
    canned.serve_status_list(held)
    assert home.sync().ok
    ours = client.get(STATUS_LIST_PATH).get_data(as_text=True)
    return StatusScene(relocated_peer, canned, first, held, ours, clock)


def serve_older_status_list(scene: StatusScene) -> None:
    scene.canned.serve_status_list(scene.first)


def serve_expired_status_list(scene: StatusScene) -> None:
    scene.clock.advance(minutes=55)  # the first list (1 h) has expired, the held one not
    scene.canned.serve_status_list(scene.first)


def serve_another_regions_status_list(scene: StatusScene) -> None:
    scene.canned.serve_status_list(scene.our_status_list)


def serve_junk_status_list(scene: StatusScene) -> None:
    scene.canned.serve_status_list("not a status list")


@pytest.mark.parametrize(
    "serve",
    [
        pytest.param(serve_expired_status_list, id="expired"),
        pytest.param(serve_another_regions_status_list, id="another-region"),
        pytest.param(serve_junk_status_list, id="junk"),
    ],
)
def test_a_refused_status_list_keeps_the_held_one(
    home: Home, status_scene: StatusScene, serve: Callable[[StatusScene], None]
) -> None:
    """A status list that is expired, signed by another key or malformed is refused
    (STATUS_LIST_REFUSED, audited); the held one stays."""
    before = home.peer_row()
    assert before is not None and before.status_list == status_scene.held
    serve(status_scene)

    outcome = home.sync()

    after = home.peer_row()
    assert after is not None
    assert (outcome.error_code, after.last_error_code) == ("STATUS_LIST_REFUSED", "STATUS_LIST_REFUSED")
    assert (after.status_list, after.status_list_expires_at) == (before.status_list, before.status_list_expires_at)
    assert after.trust_list == before.trust_list
    assert "STATUS_LIST_REFUSED" in [record.details["code"] for record in home.audit("peer.sync_refused")]


def test_an_older_status_list_is_ignored_not_an_error(home: Home, status_scene: StatusScene) -> None:
    """A genuine status list older than the one held never replaces it; nor is it a
    failure: a region with several workers serves each worker's own list, seconds apart."""
    before = home.peer_row()
    assert before is not None and before.status_list == status_scene.held
    serve_older_status_list(status_scene)

    outcome = home.sync()

    after = home.peer_row()
    assert after is not None
    assert (outcome.error_code, after.last_error_code) == (None, None)
    assert (after.status_list, after.status_list_expires_at) == (before.status_list, before.status_list_expires_at)


# ---------------------------------------------------------------- refresh_keys and health


def test_refresh_keys_is_rate_limited_per_peer(home: Home, recognised_peer: PeerRegion, clock: FixedClock) -> None:
    """An unknown kid refetches the peer's list at most once per KEY_REFRESH_INTERVAL."""
    newer = recognised_peer.publish()

    first = home.refresh_keys()
    second = home.refresh_keys()
    clock.advance(seconds=KEY_REFRESH_INTERVAL.total_seconds() - 1)
    still_limited = home.refresh_keys()
    clock.advance(seconds=1)
    newest = recognised_peer.publish()
    after_interval = home.refresh_keys()

    assert first is not None and first.trust_list == newer
    assert second is None and still_limited is None
    assert after_interval is not None and after_interval.trust_list == newest
    assert home.refresh_keys("320000") is None  # not a peer


def test_refresh_keys_keeps_the_held_list_when_the_peer_is_down(home: Home, recognised_peer: PeerRegion) -> None:
    """A refresh that cannot reach the peer returns the copies held and records why."""
    held = home.peer_row()
    recognised_peer.stop()

    copy = home.refresh_keys()

    assert copy is not None and copy.trust_list == held.trust_list  # type: ignore[union-attr]
    assert home.peer_row().last_error_code == "PEER_UNREACHABLE"  # type: ignore[union-attr]


def make_failing(home: Home, peer: PeerRegion, clock: FixedClock) -> None:
    peer.stop()
    home.sync()


def make_stale(home: Home, peer: PeerRegion, clock: FixedClock) -> None:
    clock.advance(hours=24)


@pytest.mark.parametrize(
    ("happen", "expected"),
    [
        pytest.param(lambda home, peer, clock: None, "ok", id="ok"),
        pytest.param(make_failing, "failing", id="failing"),
        pytest.param(make_stale, "stale", id="stale"),
    ],
)
def test_health_says_ok_failing_or_stale(
    home: Home, recognised_peer: PeerRegion, clock: FixedClock, happen: Callable[..., None], expected: str
) -> None:
    """``ok`` after a good sync, ``failing`` while the last sync failed but the list is
    current, ``stale`` from the moment the held list expires (verdicts UNDETERMINED)."""
    happen(home, recognised_peer, clock)

    row = home.peer_row()
    assert row is not None
    assert health(row, clock()) == expected
    if expected == "stale":
        assert health(row, clock() - timedelta(seconds=1)) == "ok"


def test_a_sync_after_a_failure_clears_the_error(home: Home, scene: Scene, clock: FixedClock) -> None:
    """Once the address serves a good list again, the recorded failure is cleared."""
    scene.canned.serve_trust_list("junk")
    assert home.sync().error_code == "TRUSTLIST_MALFORMED"
    scene.canned.serve_trust_list(scene.newer)

    outcome = home.sync()

    assert outcome.ok
    row = home.peer_row()
    assert row is not None and row.last_error_code is None and row.last_error is None
    assert health(row, clock()) == "ok"

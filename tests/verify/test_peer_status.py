"""Another region's certificates through our verifier (issue 4): keys from the peer's held
trust list, then presence and status from the issuing region online, else from its held
status list, else UNDETERMINED; never a wrong INVALID or VALID.

The peer (330000) is a real deployment on loopback, and the verifier is the one
``POST /api/v1/verify`` builds (:func:`verify.peers.live_trust_store`: real HTTP,
online status answers, one rate-limited refresh for an unknown kid). "Issuer down"
means the peer's server is stopped. Tokens the peer never issued are signed with the
peer office's real key. Every case runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from registry.identifiers import CertificateId
from registry.offices import get_office, mark_key_compromised, rotate_key
from registry.trust_list import TRUST_LIST_PATH
from signing.algorithms import PrivateKey
from tests.conftest import FixedClock
from tests.verify.conftest import decode_parts, forge
from tests.verify.peer_server import PEER_CODE, PEER_OFFICE_CODE, CannedServer, Home, PeerRegion
from verify import sources
from verify.codes import Verdict
from verify.peers import held_trust_list
from verify.report import VerificationReport
from verify.sources import REGISTRATION_MARGIN
from verify.status_sources import CLOCK_SKEW

pytest_plugins = ["tests.verify.conftest_peers"]

ISSUER = "issuer"
STATUS_LIST = "status-list"


def verdict(report: VerificationReport) -> tuple[str, str, str | None]:
    return report.verdict.value, report.code, report.status_source


def header_for(kid: str) -> dict[str, str]:
    return {"alg": "EdDSA", "kid": kid, "typ": "ecert"}


def resigned(token: str, key: PrivateKey, kid: str | None = None, **changes: Any) -> str:
    """``token``'s payload with ``changes`` (a value of None removes the claim), really
    signed by ``key`` (header kid: ``kid``, or the original's)."""
    header, payload, _signature = decode_parts(token)
    payload.update(changes)
    payload = {name: value for name, value in payload.items() if value is not None}
    return forge(header_for(kid or header["kid"]), payload, key)


def never_issued(peer: PeerRegion, template: str, **changes: Any) -> str:
    """A token the peer's office key really signed for an identifier the peer never issued."""
    fresh = str(CertificateId.new("DL", PEER_OFFICE_CODE))
    return resigned(template, peer.office_key(), jti=fresh, **changes)


# ---------------------------------------------------------------- the issuer answers online


def test_a_peer_certificate_is_valid_from_the_issuers_online_answer(home: Home, recognised_peer: PeerRegion) -> None:
    """A genuine certificate of a recognised region: key from its held list, presence and
    status asked of the issuing region (``status_source`` ``issuer``)."""
    issued = recognised_peer.issue("DL")

    report = home.verify(issued["token"])

    assert verdict(report) == ("VALID", "OK", ISSUER)
    assert report.region is not None and report.region.code == PEER_CODE
    assert report.key is not None and report.key.office_code == PEER_OFFICE_CODE


def test_a_suspension_is_seen_online_at_once(home: Home, recognised_peer: PeerRegion) -> None:
    """A suspension at the issuer is the answer at once, without any sync."""
    issued = recognised_peer.issue("DL")
    recognised_peer.change_status(issued["id"], "SUSPENDED")

    report = home.verify(issued["token"])

    assert verdict(report) == ("INVALID", "SUSPENDED", ISSUER)


def test_the_verify_api_asks_the_issuer_online(client: FlaskClient, home: Home, recognised_peer: PeerRegion) -> None:
    """``POST /api/v1/verify`` uses the same live trust store: VALID from the issuer."""
    issued = recognised_peer.issue("PQ")

    answer = client.post("/api/v1/verify", json={"token": issued["token"]}).json

    assert answer is not None
    assert (answer["verdict"], answer["code"], answer["status_source"]) == ("VALID", "OK", ISSUER)
    assert answer["issuer"]["region"] == PEER_CODE


def test_an_identifier_unknown_to_the_issuer_is_not_in_registry(home: Home, recognised_peer: PeerRegion) -> None:
    """Signed with the peer's real key but never registered there (leaked key, insider):
    the issuer answers "unknown", and that is a forgery, even at a used list position."""
    template = recognised_peer.issue("DL")["token"]

    report = home.verify(never_issued(recognised_peer, template))

    assert (report.verdict, report.code) == (Verdict.INVALID, "NOT_IN_REGISTRY")


def test_a_token_other_than_the_registered_one_is_not_in_registry(home: Home, recognised_peer: PeerRegion) -> None:
    """Same identifier, other signed bytes (a changed field, really signed): the issuer's
    answer is bound to the registered token's digest, so this one is not registered."""
    issued = recognised_peer.issue("DL")
    fields = decode_parts(issued["token"])[1]["f"]

    altered = resigned(issued["token"], recognised_peer.office_key(), f=["A2", *fields[1:]])

    assert verdict(home.verify(issued["token"])) == ("VALID", "OK", ISSUER)
    assert verdict(home.verify(altered)) == ("INVALID", "NOT_IN_REGISTRY", None)


# ---------------------------------------------------------------- online answers that are refused


@pytest.fixture
def behind_address(home: Home, relocated_peer: PeerRegion, canned: CannedServer) -> PeerRegion:
    """The peer pinned at the canned address, which serves its genuine documents."""
    assert home.add(canned.url, relocated_peer.fingerprint).ok
    return relocated_peer


def synced_with(home: Home, peer: PeerRegion, canned: CannedServer) -> None:
    canned.serve_status_list(peer.status_list())
    assert home.sync().ok


@pytest.mark.parametrize(
    ("answer", "source"),
    [
        pytest.param("genuine", ISSUER, id="genuine-answer"),
        pytest.param("junk", STATUS_LIST, id="junk"),
        pytest.param("about-another-certificate", STATUS_LIST, id="another-certificate"),
        pytest.param("signed-by-another-region", STATUS_LIST, id="another-region"),
    ],
)
def test_a_refused_online_answer_falls_back_to_the_held_status_list(
    home: Home, behind_address: PeerRegion, canned: CannedServer, client: FlaskClient, answer: str, source: str
) -> None:
    """An online answer that does not verify (junk, about another identifier, signed by
    another region's key) is not used: the held status list answers instead."""
    issued = behind_address.issue("DL")
    other = behind_address.issue("DL")
    synced_with(home, behind_address, canned)
    served = {
        "genuine": behind_address.status_answer(issued["id"]),
        "junk": "not an answer",
        "about-another-certificate": behind_address.status_answer(other["id"]),
        "signed-by-another-region": client.get(f"/api/v1/status/{issued['id']}").get_data(as_text=True),
    }[answer]
    canned.serve(f"/api/v1/status/{issued['id']}", served)

    report = home.verify(issued["token"])

    assert verdict(report) == ("VALID", "OK", source)


def test_a_replayed_expired_answer_does_not_hide_a_suspension(
    home: Home, behind_address: PeerRegion, canned: CannedServer, clock: FixedClock
) -> None:
    """A genuine VALID answer captured before a suspension and replayed after it has
    expired (5 min) is refused; the held status list says SUSPENDED."""
    issued = behind_address.issue("DL")
    captured = behind_address.status_answer(issued["id"])
    behind_address.change_status(issued["id"], "SUSPENDED")
    clock.advance(minutes=6)
    synced_with(home, behind_address, canned)
    canned.serve(f"/api/v1/status/{issued['id']}", captured)

    report = home.verify(issued["token"])

    assert verdict(report) == ("INVALID", "SUSPENDED", STATUS_LIST)


def test_unknown_kids_refetch_the_peers_list_at_most_once_a_minute(
    home: Home,
    behind_address: PeerRegion,
    canned: CannedServer,
    clock: FixedClock,
    office: Any,
    private_key: Callable[[str], PrivateKey],
) -> None:
    """Tokens with kids the held list lacks refetch the peer's list once, then not again
    within 60 s however many arrive, then once more after."""
    template = behind_address.issue("DL")["token"]
    unknown_kid = resigned(template, private_key(office.kid), kid=office.kid)
    asked = canned.requests_for(TRUST_LIST_PATH)

    fetches = []
    for advance in (0, 1, 58, 1):
        clock.advance(seconds=advance)
        assert home.verify(unknown_kid).code == "KEY_UNKNOWN"
        fetches.append(canned.requests_for(TRUST_LIST_PATH) - asked)

    assert fetches == [1, 1, 1, 2]


def test_a_batch_asks_the_issuer_online_while_its_time_budget_lasts(
    home: Home, recognised_peer: PeerRegion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of 1000 tokens from a slow region must not wait for 1000 timeouts: once its
    online lookups for the region have taken ``ONLINE_BATCH_BUDGET`` seconds, the batch's
    other tokens of that region are answered from the held status list."""
    issued = [recognised_peer.issue("DL") for _ in range(3)]
    recognised_peer.change_status(issued[2]["id"], "SUSPENDED")
    assert home.sync().ok
    tokens = [i["token"] for i in issued]

    within = home.verify_many(tokens)
    monkeypatch.setattr(sources, "ONLINE_BATCH_BUDGET", 1e-9)  # spent by the first lookup
    spent = home.verify_many(tokens)

    assert [verdict(r) for r in within] == [("VALID", "OK", ISSUER)] * 2 + [("INVALID", "SUSPENDED", ISSUER)]
    assert [verdict(r) for r in spent] == [
        ("VALID", "OK", ISSUER),
        ("VALID", "OK", STATUS_LIST),
        ("INVALID", "SUSPENDED", STATUS_LIST),
    ]


# ---------------------------------------------------------------- the issuer is down


@pytest.fixture
def synced_then_down(home: Home, recognised_peer: PeerRegion) -> Callable[[], None]:
    """Sync the peer (its status list now holds what it issued), then stop its server."""

    def run() -> None:
        outcome = home.sync()
        assert outcome.ok, outcome
        recognised_peer.stop()

    return run


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(None, ("VALID", "OK"), id="valid"),
        pytest.param("SUSPENDED", ("INVALID", "SUSPENDED"), id="suspended"),
    ],
)
def test_with_the_issuer_down_the_fresh_held_status_list_answers(
    home: Home,
    recognised_peer: PeerRegion,
    synced_then_down: Callable[[], None],
    status: str | None,
    expected: tuple[str, str],
) -> None:
    """Issuer unreachable, status list synced and current: the answer comes from the list."""
    issued = recognised_peer.issue("DL")
    if status:
        recognised_peer.change_status(issued["id"], status)
    synced_then_down()

    report = home.verify(issued["token"])

    assert verdict(report) == (*expected, STATUS_LIST)


def test_with_the_issuer_down_an_expired_status_list_is_undetermined(
    home: Home, recognised_peer: PeerRegion, synced_then_down: Callable[[], None], clock: FixedClock
) -> None:
    """Issuer unreachable and the held status list expired (1 h): UNDETERMINED, never
    INVALID (the trust list itself is still current)."""
    issued = recognised_peer.issue("DL")
    synced_then_down()
    clock.advance(hours=1, seconds=1)

    report = home.verify(issued["token"])

    assert verdict(report) == ("UNDETERMINED", "STATUS_UNAVAILABLE", None)


@pytest.mark.parametrize(
    ("signed_after_iat", "expected"),
    [
        pytest.param(REGISTRATION_MARGIN + CLOCK_SKEW, ("INVALID", "NOT_IN_REGISTRY"), id="list-signed-well-after-iat"),
        pytest.param(REGISTRATION_MARGIN, ("UNDETERMINED", "STATUS_UNAVAILABLE"), id="list-signed-soon-after-iat"),
    ],
)
def test_with_the_issuer_down_an_unused_position_is_judged_by_the_lists_age(
    home: Home,
    recognised_peer: PeerRegion,
    synced_then_down: Callable[[], None],
    clock: FixedClock,
    signed_after_iat: Any,
    expected: tuple[str, str],
) -> None:
    """A position the held list leaves unused proves the token unregistered only if the
    list was signed well after the token's issue time (issuance commits in moments);
    a list signed too soon after cannot tell, so the answer is UNDETERMINED."""
    issued = recognised_peer.issue("DL")
    forged = never_issued(recognised_peer, issued["token"], s=decode_parts(issued["token"])[1]["s"] + 1)
    clock.advance(seconds=signed_after_iat.total_seconds())
    synced_then_down()

    report = home.verify(forged)

    assert (report.verdict.value, report.code) == expected


def test_with_the_issuer_down_a_token_without_a_position_is_undetermined(
    home: Home, recognised_peer: PeerRegion, synced_then_down: Callable[[], None], clock: FixedClock
) -> None:
    """Without claim ``s`` the status list cannot be read for the token: UNDETERMINED."""
    issued = recognised_peer.issue("DL")
    without_position = resigned(issued["token"], recognised_peer.office_key(), s=None)
    clock.advance(minutes=10)
    synced_then_down()

    report = home.verify(without_position)

    assert verdict(report) == ("UNDETERMINED", "STATUS_UNAVAILABLE", None)


# ---------------------------------------------------------------- the trust list decides


def test_an_expired_held_trust_list_is_undetermined(home: Home, recognised_peer: PeerRegion, clock: FixedClock) -> None:
    """Once the held trust list expires (24 h, no sync), the region's verdicts are
    UNDETERMINED ``TRUSTLIST_STALE``, though the issuer would still answer VALID."""
    issued = recognised_peer.issue("DL")
    clock.advance(hours=24)

    report = home.verify(issued["token"])

    assert verdict(report) == ("UNDETERMINED", "TRUSTLIST_STALE", None)
    assert report.claims is None


def test_a_region_nobody_pinned_is_not_recognised(home: Home, peer: PeerRegion) -> None:
    """A genuine certificate of a region we never pinned is REGION_NOT_RECOGNISED."""
    issued = peer.issue("DL")

    assert verdict(home.verify(issued["token"])) == ("INVALID", "REGION_NOT_RECOGNISED", None)


def test_our_key_does_not_sign_for_the_peer(
    home: Home,
    recognised_peer: PeerRegion,
    office: Any,
    private_key: Callable[[str], PrivateKey],
) -> None:
    """Keys are per region: a token naming the peer as issuer but our office's kid (and
    really signed by it) is KEY_UNKNOWN, after one refresh of the peer's list."""
    template = recognised_peer.issue("DL")["token"]
    ours = resigned(template, private_key(office.kid), kid=office.kid)

    report = home.verify(ours)

    assert (report.verdict, report.code) == (Verdict.INVALID, "KEY_UNKNOWN")
    row = home.peer_row()
    assert row is not None and row.key_refresh_at is not None


def test_a_key_added_after_the_sync_is_found_by_one_refresh(
    home: Home, recognised_peer: PeerRegion, clock: FixedClock
) -> None:
    """A kid the held list lacks refetches the peer's list once; the new key is there."""
    clock.advance(minutes=5)
    with recognised_peer.session() as session:
        _old, new = rotate_key(
            session,
            recognised_peer.keyring,
            get_office(session, PEER_OFFICE_CODE),
            algorithm=None,
            now=clock(),
            actor="test:peer",
        )
        session.commit()
    issued = recognised_peer.issue("DL")
    assert decode_parts(issued["token"])[0]["kid"] == new.kid

    report = home.verify(issued["token"])

    assert verdict(report) == ("VALID", "OK", ISSUER)
    row = home.peer_row()
    assert row is not None and row.key_refresh_at == clock()
    assert held_trust_list(row).key(new.kid) is not None


def test_a_key_compromise_reaches_us_through_a_synced_list(
    home: Home, recognised_peer: PeerRegion, clock: FixedClock
) -> None:
    """After the peer marks its key compromised since T and we sync: its certificates
    from T on are KEY_COMPROMISED; one issued before T (and registered) stays VALID."""
    before = recognised_peer.issue("DL")
    clock.advance(minutes=10)
    since = clock()
    after = recognised_peer.issue("DL")
    clock.advance(minutes=1)
    with recognised_peer.session() as session:
        mark_key_compromised(
            session, recognised_peer.keyring, recognised_peer.office.kid, since, now=clock(), actor="t"
        )
        session.commit()

    assert home.sync().ok

    assert verdict(home.verify(after["token"]))[:2] == ("INVALID", "KEY_COMPROMISED")
    assert verdict(home.verify(before["token"])) == ("VALID", "OK", ISSUER)

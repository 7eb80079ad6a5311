"""This region's trust list: signed by the root, strictly increasing, republished on every
office or key change and before it goes stale; read back only under a pinned root."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select

from deployment import Deployment
from registry.errors import InvalidInput, NotFound, RegionNotInitialised
from registry.models import SigningKey, TrustList
from registry.offices import active_key, mark_key_compromised, rotate_key, signing_key_for
from registry.regions import root_fingerprint
from registry.trust_list import current_trust_list, newest_trust_list, publish_trust_list
from signing.algorithms import generate_private_key
from signing.jwk import b64url, public_jwk, thumbprint
from tests.conftest import OTHER_OFFICE_CODE, make_office
from verify.trust_lists import TrustListMalformed, TrustListUntrusted, read_trust_list

ADMIN = "cli:admin"


def decode(jws: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _signature = jws.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
        json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))),
    )


def sign(payload: dict[str, Any], key: Any, headers: dict[str, Any]) -> str:
    """Sign ``payload`` as a trust list would be (for hostile lists signed by real keys)."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return jwt.PyJWS().encode(body, key, algorithm="EdDSA", headers=headers)


@pytest.fixture
def root_key(region, keyring):
    return keyring.private_key(region.root_kid, lambda: region.root_private_key)


@pytest.fixture
def published(session, office) -> TrustList:
    """The list the office fixture's creation published."""
    newest = newest_trust_list(session)
    assert newest is not None
    return newest


def sequences(session) -> list[int]:
    return list(session.scalars(select(TrustList.sequence).order_by(TrustList.sequence)))


# ---------------------------------------------------------------- signing


def test_the_list_verifies_under_the_root_pinned_by_fingerprint_and_under_no_office_key(
    session, region, office, published
):
    header, payload = decode(published.jws)
    signing_input, _, signature = published.jws.rpartition(".")
    raw_signature = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))

    assert header == {"alg": "EdDSA", "kid": root_fingerprint(region), "typ": "ecert-trust-list"}
    root_jwk = {k: v for k, v in payload["root"].items() if k != "kid"}
    root = ed25519.Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(root_jwk["x"] + "="))
    # RFC 7638 recomputed here by hand: members in lexicographic order, no whitespace.
    canonical = json.dumps({"crv": root_jwk["crv"], "kty": root_jwk["kty"], "x": root_jwk["x"]}, separators=(",", ":"))
    assert b64url(hashlib.sha256(canonical.encode()).digest()) == root_fingerprint(region)
    root.verify(raw_signature, signing_input.encode("ascii"))  # raises if not the root's signature
    office_jwk = session.get(SigningKey, office.kid).public_jwk
    office_key = ed25519.Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(office_jwk["x"] + "="))
    with pytest.raises(InvalidSignature):
        office_key.verify(raw_signature, signing_input.encode("ascii"))


def test_the_payload_names_region_keys_and_endpoints(session, region, office, published, clock):
    _header, payload = decode(published.jws)
    key = session.get(SigningKey, office.kid)

    assert payload["region"] == {"code": "310000", "name": "上海市", "public_url": region.public_url}
    assert (payload["seq"], payload["iat"], payload["exp"]) == (
        1,
        int(clock().timestamp()),
        int((clock() + timedelta(hours=24)).timestamp()),
    )
    assert payload["root"] == {**region.root_public_jwk, "kid": region.root_kid}
    assert payload["status_key"] == {**region.status_public_jwk, "kid": region.status_kid}
    assert payload["offices"] == [
        {
            "code": office.code,
            "name": "上海市示范发证中心",
            "types": ["BL", "DL", "PQ"],
            "keys": [
                {
                    "kid": office.kid,
                    "alg": "EdDSA",
                    "jwk": key.public_jwk,
                    "types": ["BL", "DL", "PQ"],
                    "not_before": int(clock().timestamp()),
                    "not_after": None,
                    "state": "active",
                    "compromised_since": None,
                }
            ],
        }
    ]
    url = region.public_url
    assert payload["endpoints"] == {
        "trust_list": f"{url}/.well-known/ecert/trust-list",
        "status": url + "/api/v1/status/{id}",
        "status_list": f"{url}/.well-known/ecert/status-list",
        "verify": f"{url}/api/v1/verify",
        "log": f"{url}/api/v1/log",
    }
    assert set(payload["log"]) == {"origin", "verifier_key", "checkpoint"}
    assert payload["log"]["origin"] == "ecert.sh.example/ecert-log/310000"
    assert payload["log"]["checkpoint"].startswith("ecert.sh.example/ecert-log/310000\n")
    assert (published.issued_at, published.expires_at) == (clock(), clock() + timedelta(hours=24))


def test_every_key_ever_held_is_listed_with_its_window_types_and_state(session, keyring, clock, office, other_office):
    start = clock()
    clock.advance(hours=1)
    _retired, middle = rotate_key(session, keyring, office.office, algorithm="ES256", now=clock(), actor=ADMIN)
    clock.advance(hours=1)
    compromise = mark_key_compromised(
        session, keyring, middle.kid, start + timedelta(hours=1, minutes=30), now=clock(), actor=ADMIN
    )
    session.commit()

    _header, payload = decode(compromise.trust_list.jws)
    listed = {o["code"]: {k["kid"]: k for k in o["keys"]} for o in payload["offices"]}
    epoch = lambda hours: int((start + timedelta(hours=hours)).timestamp())  # noqa: E731
    assert set(listed) == {office.code, other_office.code}
    assert [k for k in listed[office.code]] == [office.kid, middle.kid, compromise.replacement.kid]
    assert {
        kid: (k["alg"], k["not_before"], k["not_after"], k["state"], k["compromised_since"])
        for kid, k in listed[office.code].items()
    } == {
        office.kid: ("EdDSA", epoch(0), epoch(1), "retired", None),
        middle.kid: ("ES256", epoch(1), epoch(2), "compromised", epoch(1.5)),
        compromise.replacement.kid: ("ES256", epoch(2), None, "active", None),
    }
    assert listed[other_office.code][other_office.kid]["types"] == ["DL"]
    assert listed[office.code][middle.kid]["jwk"] == middle.public_jwk


# ---------------------------------------------------------------- sequence numbers


def test_sequence_strictly_increases_across_office_add_rotate_and_compromise(session, keyring, clock, office):
    assert sequences(session) == [1]  # the office's creation published the first list
    make_office(session, keyring, clock, OTHER_OFFICE_CODE, ["DL"])
    assert sequences(session) == [1, 2]
    rotate_key(session, keyring, office.office, algorithm=None, now=clock(), actor=ADMIN)
    session.commit()
    assert sequences(session) == [1, 2, 3]
    mark_key_compromised(session, keyring, office.kid, clock(), now=clock(), actor=ADMIN)
    session.commit()
    assert sequences(session) == [1, 2, 3, 4]
    assert [decode(t.jws)[1]["seq"] for t in session.scalars(select(TrustList).order_by(TrustList.sequence))] == [
        1,
        2,
        3,
        4,
    ]


def test_the_first_list_of_a_region_without_offices_has_sequence_one(session, keyring, region, clock):
    published = publish_trust_list(session, keyring, now=clock(), actor=ADMIN)
    session.commit()

    assert published.sequence == 1
    assert decode(published.jws)[1]["offices"] == []


def test_a_second_publisher_waits_for_the_first_and_takes_the_next_number(deployment: Deployment, office):
    """The first publisher holds its transaction open; the second must queue behind it
    (row lock on PostgreSQL, write lock on SQLite) and then take seq + 1, not the same
    number (which would fail on the primary key)."""
    second: list[int] = []
    failures: list[BaseException] = []

    def publish_second() -> None:
        try:
            with deployment.session() as own:
                second.append(publish_trust_list(own, deployment.keyring, now=deployment.now(), actor=ADMIN).sequence)
                own.commit()
        except BaseException as error:  # reported below, on the test's thread
            failures.append(error)

    with deployment.session() as first_session:
        first = publish_trust_list(first_session, deployment.keyring, now=deployment.now(), actor=ADMIN)
        racer = threading.Thread(target=publish_second)
        racer.start()
        racer.join(timeout=0.5)
        assert racer.is_alive(), "the second publisher did not wait for the first"
        first_session.commit()
        racer.join(timeout=60)

    assert failures == []
    assert (first.sequence, second) == (2, [3])


def test_publishing_needs_a_region(session, keyring, deployment, clock):
    with pytest.raises(RegionNotInitialised):
        publish_trust_list(session, keyring, now=clock(), actor=ADMIN)


def test_a_list_must_live_for_some_time(session, keyring, region, clock):
    with pytest.raises(ValueError, match="positive"):
        publish_trust_list(session, keyring, now=clock(), actor=ADMIN, lifetime=timedelta(0))


# ---------------------------------------------------------------- current list


@pytest.mark.parametrize(
    ("hours_later", "republished"),
    [
        pytest.param(0, False, id="fresh"),
        pytest.param(17.9, False, id="more-than-a-quarter-left"),
        pytest.param(18, True, id="a-quarter-left"),
        pytest.param(24, True, id="expired-at-exp"),
        pytest.param(200, True, id="long-expired"),
    ],
)
def test_current_list_is_republished_when_a_quarter_of_its_lifetime_remains(
    session, keyring, clock, published, hours_later, republished
):
    clock.advance(hours=hours_later)

    current = current_trust_list(session, keyring, now=clock(), actor=ADMIN)
    session.commit()

    assert current.sequence == (2 if republished else 1)
    assert sequences(session) == ([1, 2] if republished else [1])
    if republished:
        assert current.issued_at == clock().replace(microsecond=0)


def test_current_list_publishes_the_first_one(session, keyring, region, clock):
    assert current_trust_list(session, keyring, now=clock(), actor=ADMIN).sequence == 1


# ---------------------------------------------------------------- key compromise


def test_compromising_the_active_key_replaces_it_and_stops_it_signing(session, keyring, clock, office):
    since = clock() + timedelta(minutes=5, microseconds=700_000)
    clock.advance(hours=1)

    compromise = mark_key_compromised(session, keyring, office.kid, since, now=clock(), actor=ADMIN)
    session.commit()

    key = session.get(SigningKey, office.kid)
    assert (key.state, key.compromised_since, key.not_after) == ("compromised", since.replace(microsecond=0), clock())
    assert compromise.replacement is not None
    assert active_key(session, office.office).kid == compromise.replacement.kid != office.kid
    assert signing_key_for(session, office.office, "DL").kid == compromise.replacement.kid
    assert compromise.replacement.types == key.types


def test_compromising_a_retired_key_leaves_the_active_key_alone(session, keyring, clock, office):
    _old, new = rotate_key(session, keyring, office.office, algorithm=None, now=clock(), actor=ADMIN)
    session.commit()

    compromise = mark_key_compromised(session, keyring, office.kid, clock(), now=clock(), actor=ADMIN)

    assert compromise.replacement is None
    assert active_key(session, office.office).kid == new.kid


@pytest.mark.parametrize(
    ("second_since_hours", "kept_hours"),
    [pytest.param(-1, -1, id="earlier-moves-it-back"), pytest.param(1, 0, id="later-is-ignored")],
)
def test_marking_again_only_moves_the_compromise_earlier(
    session, keyring, clock, office, second_since_hours, kept_hours
):
    clock.advance(hours=3)
    first = clock() - timedelta(hours=2)
    mark_key_compromised(session, keyring, office.kid, first, now=clock(), actor=ADMIN)
    again = mark_key_compromised(
        session, keyring, office.kid, first + timedelta(hours=second_since_hours), now=clock(), actor=ADMIN
    )

    assert again.key.compromised_since == first + timedelta(hours=kept_hours)
    assert again.replacement is None


@pytest.mark.parametrize(
    ("kid", "since", "error", "match"),
    [
        pytest.param(None, datetime(2026, 3, 1, 7, 0), InvalidInput, "time zone", id="naive-time"),
        pytest.param(None, datetime(2026, 3, 1, 8, 0, 1, tzinfo=UTC), InvalidInput, "future", id="future"),
        pytest.param("AAAAAAAA", datetime(2026, 3, 1, 7, 0, tzinfo=UTC), NotFound, "AAAAAAAA", id="unknown-kid"),
        pytest.param("", datetime(2026, 3, 1, 7, 0, tzinfo=UTC), NotFound, "kid", id="empty-kid"),
    ],
)
def test_compromise_refuses_bad_input_and_changes_nothing(session, keyring, clock, office, kid, since, error, match):
    with pytest.raises(error, match=match):
        mark_key_compromised(session, keyring, office.kid if kid is None else kid, since, now=clock(), actor=ADMIN)
    session.rollback()

    assert session.get(SigningKey, office.kid).state == "active"
    assert sequences(session) == [1]


# ---------------------------------------------------------------- reading under a pinned root


def test_reading_returns_the_typed_contents(session, region, office, published, clock):
    by_fingerprint = read_trust_list(published.jws, fingerprint=root_fingerprint(region))
    by_jwk = read_trust_list(published.jws, pinned_root_jwk=region.root_public_jwk)

    assert by_fingerprint == by_jwk
    assert (by_fingerprint.region_code, by_fingerprint.region_name, by_fingerprint.public_url) == (
        "310000",
        "上海市",
        region.public_url,
    )
    assert (by_fingerprint.sequence, by_fingerprint.issued_at, by_fingerprint.expires_at) == (
        1,
        clock(),
        clock() + timedelta(hours=24),
    )
    assert by_fingerprint.root_fingerprint == root_fingerprint(region)
    assert by_fingerprint.status_kid == region.status_kid
    found = by_fingerprint.key(office.kid)
    assert found is not None
    listed_office, listed_key = found
    assert (listed_office.code, listed_office.types) == (office.code, frozenset({"BL", "DL", "PQ"}))
    assert (listed_key.algorithm, listed_key.state, listed_key.not_before, listed_key.not_after) == (
        "EdDSA",
        "active",
        clock(),
        None,
    )
    assert public_jwk(listed_key.public_key) == session.get(SigningKey, office.kid).public_jwk
    assert by_fingerprint.key("AAAAAAAA") is None
    assert not by_fingerprint.expired(clock() + timedelta(hours=23, minutes=59))
    assert by_fingerprint.expired(clock() + timedelta(hours=24))


def _flip_payload(jws: str) -> str:
    header, payload, signature = jws.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded["offices"][0]["keys"][0]["types"].append("XX")
    return ".".join([header, b64url(json.dumps(decoded, separators=(",", ":")).encode()), signature])


def _foreign_root() -> ed25519.Ed25519PrivateKey:
    return generate_private_key("EdDSA")  # type: ignore[return-value]


UNTRUSTED = [
    pytest.param(lambda jws, payload, root, office_key: _flip_payload(jws), id="tampered-payload"),
    pytest.param(
        lambda jws, payload, root, office_key: jws[:-4] + ("AAAA" if not jws.endswith("AAAA") else "BBBA"),
        id="tampered-signature",
    ),
    pytest.param(
        lambda jws, payload, root, office_key: sign(
            payload, (other := _foreign_root()), {"kid": thumbprint(other.public_key()), "typ": "ecert-trust-list"}
        ),
        id="another-root-names-itself",
    ),
    pytest.param(
        lambda jws, payload, root, office_key: sign(
            payload, _foreign_root(), {"kid": payload["root"]["kid"], "typ": "ecert-trust-list"}
        ),
        id="another-root-claims-the-pinned-kid",
    ),
    pytest.param(
        lambda jws, payload, root, office_key: sign(
            {
                **payload,
                "root": {**public_jwk((other := _foreign_root()).public_key()), "kid": thumbprint(other.public_key())},
            },
            other,
            {"kid": thumbprint(other.public_key()), "typ": "ecert-trust-list"},
        ),
        id="another-root-announces-itself",
    ),
    pytest.param(
        lambda jws, payload, root, office_key: sign(
            payload, office_key, {"kid": payload["root"]["kid"], "typ": "ecert-trust-list"}
        ),
        id="signed-by-an-office-key",
    ),
    pytest.param(
        lambda jws, payload, root, office_key: sign(
            {**payload, "root": {**public_jwk(_foreign_root().public_key()), "kid": payload["root"]["kid"]}},
            root,
            {"kid": payload["root"]["kid"], "typ": "ecert-trust-list"},
        ),
        id="pinned-root-signs-a-list-announcing-another-root",
    ),
]


@pytest.mark.parametrize("pin", ["fingerprint", "jwk"])
@pytest.mark.parametrize("forge", UNTRUSTED)
def test_a_list_the_pinned_root_did_not_sign_is_refused(
    session, region, keyring, office, published, root_key, pin, forge
):
    _header, payload = decode(published.jws)
    office_key = keyring.private_key(office.kid, lambda: session.get(SigningKey, office.kid).private_key)
    forged = forge(published.jws, payload, root_key, office_key)
    pinned = (
        {"fingerprint": root_fingerprint(region)}
        if pin == "fingerprint"
        else {"pinned_root_jwk": region.root_public_jwk}
    )

    with pytest.raises(TrustListUntrusted):
        read_trust_list(forged, **pinned)


def _rewrite_header(jws: str, header: str) -> str:
    return ".".join([b64url(header.encode()), *jws.split(".")[1:]])


def _resigned(mutate):
    def forge(jws: str, payload: dict[str, Any], root: Any) -> str:
        changed = json.loads(json.dumps(payload))
        mutate(changed)
        return sign(changed, root, {"kid": payload["root"]["kid"], "typ": "ecert-trust-list"})

    return forge


def _set(path: list[Any], value: Any):
    def mutate(payload: dict[str, Any]) -> None:
        target = payload
        for step in path[:-1]:
            target = target[step]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return mutate


_DELETE = object()
KEY = ["offices", 0, "keys", 0]

MALFORMED = [
    pytest.param(lambda jws, payload, root: jws + ".x", "segments", id="four-segments"),
    pytest.param(lambda jws, payload, root: jws.replace(".", "=.", 1), "base64url", id="padded"),
    pytest.param(
        lambda jws, payload, root: _rewrite_header(jws, '{"alg":"EdDSA","kid":"k","typ":"ecert-trust-list","x5u":"u"}'),
        "not allowed: x5u",
        id="extra-header-member",
    ),
    pytest.param(
        lambda jws, payload, root: _rewrite_header(jws, '{"alg":"EdDSA","kid":"k"}'), "lacks typ", id="missing-typ"
    ),
    pytest.param(
        lambda jws, payload, root: _rewrite_header(jws, '{"alg":"EdDSA","kid":"k","typ":"ecert"}'),
        "typ",
        id="certificate-typ",
    ),
    pytest.param(
        lambda jws, payload, root: _rewrite_header(jws, '{"alg":"ES256","kid":"k","typ":"ecert-trust-list"}'),
        "EdDSA",
        id="other-alg",
    ),
    pytest.param(
        lambda jws, payload, root: _rewrite_header(
            jws, '{"alg":"EdDSA","alg":"none","kid":"k","typ":"ecert-trust-list"}'
        ),
        "more than once",
        id="duplicate-header-member",
    ),
    pytest.param(_resigned(_set(["seq"], _DELETE)), "seq", id="no-seq"),
    pytest.param(_resigned(_set(["seq"], 0)), "seq", id="seq-zero"),
    pytest.param(_resigned(_set(["seq"], True)), "seq", id="seq-boolean"),
    pytest.param(_resigned(_set(["exp"], 0)), "exp", id="exp-before-iat"),
    pytest.param(_resigned(_set([*KEY, "kid"], "AAAAAAAA")), "thumbprint", id="kid-not-the-keys"),
    pytest.param(_resigned(_set([*KEY, "alg"], "ES256")), "match", id="alg-not-the-keys"),
    pytest.param(_resigned(_set([*KEY, "alg"], "none")), "none", id="alg-none"),
    pytest.param(_resigned(_set([*KEY, "state"], "compromised")), "compromised_since", id="compromised-without-since"),
    pytest.param(_resigned(_set([*KEY, "compromised_since"], 1)), "compromised_since", id="since-on-an-active-key"),
    pytest.param(_resigned(_set([*KEY, "state"], "trusted")), "state", id="unknown-state"),
    pytest.param(_resigned(_set([*KEY, "not_after"], _DELETE)), "not_after", id="missing-not-after"),
    pytest.param(_resigned(lambda p: p["offices"].append(p["offices"][0])), "twice", id="office-listed-twice"),
    pytest.param(_resigned(_set(["endpoints"], _DELETE)), "endpoints", id="no-endpoints"),
]


@pytest.mark.parametrize(("forge", "match"), MALFORMED)
def test_a_malformed_list_is_refused_as_malformed(region, office, published, root_key, forge, match):
    _header, payload = decode(published.jws)

    with pytest.raises(TrustListMalformed, match=match):
        read_trust_list(forge(published.jws, payload, root_key), fingerprint=root_fingerprint(region))


def test_exactly_one_pin_is_required(region, published):
    with pytest.raises(ValueError, match="exactly one"):
        read_trust_list(published.jws)
    with pytest.raises(ValueError, match="exactly one"):
        read_trust_list(published.jws, fingerprint=region.root_kid, pinned_root_jwk=region.root_public_jwk)

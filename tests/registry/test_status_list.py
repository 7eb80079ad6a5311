"""Signed status for other regions: answers and the status list, written by the registry
and read back by the verifier's readers, which must refuse anything not exactly as signed.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from registry.demo import sample_request
from registry.models import Certificate, Region, SigningKey
from registry.status import Status, change_status
from registry.status_list import code_at, pack_statuses, status_answer, status_list
from signing.algorithms import generate_private_key, sign
from signing.jwk import b64url, b64url_decode
from verify.status_sources import StatusDataRefused, read_status_answer, read_status_list

REGION_CODE = "310000"


# ---------------------------------------------------------------- helpers


def jws_parts(jws: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = jws.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


def signed(header: dict[str, Any], payload: dict[str, Any], key: Any) -> str:
    """A JWS over exactly these members, signed with ``key`` (to build hostile inputs)."""
    encoded = [b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)]
    signing_input = ".".join(encoded).encode("ascii")
    return f"{encoded[0]}.{encoded[1]}.{b64url(sign('EdDSA', key, signing_input))}"


@pytest.fixture
def status_key(region: Region, keyring: Any) -> Any:
    """The region's real status private key, for re-signing crafted payloads."""
    stored = region.status_private_key
    return keyring.private_key(region.status_kid, lambda: stored)


@pytest.fixture
def change(session, clock) -> Callable[[Certificate, Status], None]:
    def change_(certificate: Certificate, new: Status) -> None:
        change_status(session, certificate, new, "依法处理", now=clock(), actor="office:test")
        session.commit()

    return change_


@pytest.fixture
def answer_for(session, keyring, clock, region) -> Callable[[str], Any]:
    """Sign an answer for ``certificate_id`` now, and read it back with the status key."""

    def answer_(certificate_id: str) -> Any:
        jws = status_answer(session, keyring, certificate_id, now=clock())
        return read_status_answer(
            jws, region.status_public_jwk, issuer=REGION_CODE, certificate_id=certificate_id, now=clock()
        )

    return answer_


@pytest.fixture
def current_list(session, keyring, clock, region) -> Callable[[], Any]:
    def list_() -> Any:
        return read_status_list(
            status_list(session, keyring, now=clock()), region.status_public_jwk, issuer=REGION_CODE, now=clock()
        )

    return list_


# ---------------------------------------------------------------- the bit layout


def test_positions_pack_two_per_byte_high_nibble_first():
    packed = pack_statuses(5, {0: Status.VALID, 1: Status.SUSPENDED, 4: Status.REVOKED})
    assert packed == bytes([0x12, 0x00, 0x70])
    assert [code_at(packed, i) for i in range(5)] == [1, 2, 0, 0, 7]


def test_a_position_outside_the_list_cannot_be_packed():
    with pytest.raises(ValueError, match="outside a list of 2"):
        pack_statuses(2, {2: Status.VALID})


# ---------------------------------------------------------------- status answers


def test_answer_is_signed_with_the_status_key_and_names_its_type(session, keyring, clock, region, certificate):
    jws = status_answer(session, keyring, certificate.id, now=clock())
    header, payload = jws_parts(jws)
    iat = int(clock().timestamp())
    assert header == {"alg": "EdDSA", "kid": region.status_kid, "typ": "ecert-status"}
    assert payload == {
        "iss": REGION_CODE,
        "jti": certificate.id,
        "status": "01",
        "known": True,
        "iat": iat,
        "exp": iat + 300,
        "sig": b64url(hashlib.sha256(certificate.token.rsplit(".", 1)[0].encode()).digest()),
        "log": certificate.log_index,  # its issuance entry in the transparency log
    }


def test_answer_binds_exactly_the_registered_token(answer_for, certificate, issue):
    answer = answer_for(certificate.id)
    assert answer.is_about(certificate.token)
    other = issue(sample_request("DL")).certificate
    assert not answer.is_about(other.token)


@pytest.mark.parametrize(
    "path",
    [
        [Status.SUSPENDED],
        [Status.SUSPENDED, Status.VALID],
        [Status.REVOKED],
        [Status.SUSPENDED, Status.WITHDRAWN],
    ],
    ids=lambda path: "-".join(s.name for s in path),
)
def test_answer_follows_status_changes(answer_for, change, certificate, path):
    for new in path:
        change(certificate, new)
        answer = answer_for(certificate.id)
        assert (answer.known, answer.status) == (True, new)


@pytest.mark.parametrize("unknown_id", ["310000-DL-2026-NOPE", "x", "../../etc/passwd"])
def test_an_unknown_identifier_is_answered_as_unknown(session, keyring, clock, region, answer_for, unknown_id):
    _, payload = jws_parts(status_answer(session, keyring, unknown_id, now=clock()))
    assert (payload["known"], payload["status"], payload["jti"]) == (False, None, unknown_id)
    assert "sig" not in payload
    answer = answer_for(unknown_id)
    assert (answer.known, answer.status, answer.is_about("a.b.c")) == (False, None, False)


# ---------------------------------------------------------------- the status list


def test_list_holds_each_certificate_code_at_its_position(session, issue, change, current_list, region):
    issued = [issue(sample_request(t)).certificate for t in ("BL", "DL", "PQ", "DL", "BL")]
    change(issued[1], Status.SUSPENDED)
    change(issued[2], Status.REVOKED)
    change(issued[3], Status.SUSPENDED)
    change(issued[3], Status.VALID)
    change(issued[4], Status.TRANSFERRED)
    listed = current_list()
    assert [c.status_index for c in issued] == [0, 1, 2, 3, 4]
    assert [listed.status_at(c.status_index) for c in issued] == [
        Status.VALID,
        Status.SUSPENDED,
        Status.REVOKED,
        Status.VALID,
        Status.TRANSFERRED,
    ]
    assert listed.size == 5
    assert listed.packed[-1] & 0x0F == 0  # the padding nibble after an odd count


def test_list_header_and_payload_members(session, keyring, clock, region, certificate):
    header, payload = jws_parts(status_list(session, keyring, now=clock(), lifetime=timedelta(minutes=10)))
    iat = int(clock().timestamp())
    assert header == {"alg": "EdDSA", "kid": region.status_kid, "typ": "ecert-status-list"}
    assert payload == {"iss": REGION_CODE, "iat": iat, "exp": iat + 600, "bits": 4, "size": 1, "lst": payload["lst"]}
    assert zlib.decompress(b64url_decode(payload["lst"])) == bytes([0x10])


def test_unused_positions_are_zero(session, issue, current_list, region):
    first = issue(sample_request("DL")).certificate
    # Positions nobody holds (e.g. taken by a transaction that failed after its UPDATE).
    session.execute(update(Region).values(next_status_index=Region.next_status_index + 3))
    session.commit()
    later = issue(sample_request("DL")).certificate
    listed = current_list()
    assert (first.status_index, later.status_index, listed.size) == (0, 4, 5)
    assert [listed.status_at(i) for i in range(5)] == [Status.VALID, None, None, None, Status.VALID]
    assert [code_at(listed.packed, i) for i in range(5)] == [1, 0, 0, 0, 1]
    assert listed.status_at(5) is None
    assert listed.status_at(-1) is None


def test_an_empty_registry_has_an_empty_list(current_list):
    listed = current_list()
    assert (listed.size, listed.packed, listed.status_at(0)) == (0, b"", None)


# ---------------------------------------------------------------- readers: keys


def other_keys(session: Any, region: Region) -> dict[str, dict[str, Any]]:
    office_key = session.scalars(select(SigningKey)).first()
    return {"root": region.root_public_jwk, "office": office_key.public_jwk}


@pytest.mark.parametrize("wrong", ["root", "office"])
def test_only_the_status_key_verifies_a_list(session, keyring, clock, region, office, certificate, wrong):
    jws = status_list(session, keyring, now=clock())
    with pytest.raises(StatusDataRefused, match="SIG_INVALID"):
        read_status_list(jws, other_keys(session, region)[wrong], issuer=REGION_CODE, now=clock())


@pytest.mark.parametrize("wrong", ["root", "office"])
def test_only_the_status_key_verifies_an_answer(session, keyring, clock, region, office, certificate, wrong):
    jws = status_answer(session, keyring, certificate.id, now=clock())
    with pytest.raises(StatusDataRefused, match="SIG_INVALID"):
        read_status_answer(
            jws, other_keys(session, region)[wrong], issuer=REGION_CODE, certificate_id=certificate.id, now=clock()
        )


def test_a_key_named_by_nothing_but_the_header_is_never_used(session, keyring, clock, region, certificate):
    # A forger signs with their own key and copies the real kid into the header.
    forged_key = generate_private_key("EdDSA")
    _, payload = jws_parts(status_list(session, keyring, now=clock()))
    forged = signed({"alg": "EdDSA", "kid": region.status_kid, "typ": "ecert-status-list"}, payload, forged_key)
    with pytest.raises(StatusDataRefused, match="SIG_INVALID"):
        read_status_list(forged, region.status_public_jwk, issuer=REGION_CODE, now=clock())


# ---------------------------------------------------------------- readers: hostile lists


def _list_payload(clock: Any, **changes: Any) -> dict[str, Any]:
    iat = int(clock().timestamp())
    payload = {"iss": REGION_CODE, "iat": iat, "exp": iat + 3600, "bits": 4, "size": 3}
    payload["lst"] = b64url(zlib.compress(bytes([0x12, 0x70])))
    payload.update(changes)
    return {name: value for name, value in payload.items() if value is not None}


def _lst(raw: bytes) -> str:
    return b64url(zlib.compress(raw))


LIST_HEADER = {"alg": "EdDSA", "kid": "K", "typ": "ecert-status-list"}

HOSTILE_LISTS = [
    pytest.param({**LIST_HEADER, "jku": "https://evil.example"}, {}, "MALFORMED", id="header-extra-member"),
    pytest.param({**LIST_HEADER, "typ": "ecert-status"}, {}, "MALFORMED", id="header-answer-typ"),
    pytest.param({**LIST_HEADER, "alg": "ES256"}, {}, "MALFORMED", id="header-other-alg"),
    pytest.param({"alg": "EdDSA", "kid": "K"}, {}, "MALFORMED", id="header-no-typ"),
    pytest.param(LIST_HEADER, {"extra": 1}, "MALFORMED", id="payload-extra-member"),
    pytest.param(LIST_HEADER, {"size": None}, "MALFORMED", id="payload-no-size"),
    pytest.param(LIST_HEADER, {"iss": "320000"}, "ISSUER_MISMATCH", id="another-region"),
    pytest.param(LIST_HEADER, {"bits": 2}, "MALFORMED", id="bits-2"),
    pytest.param(LIST_HEADER, {"bits": True}, "MALFORMED", id="bits-bool"),
    pytest.param(LIST_HEADER, {"size": 5}, "MALFORMED", id="size-longer-than-lst"),
    pytest.param(LIST_HEADER, {"size": 2}, "MALFORMED", id="size-shorter-than-lst"),
    pytest.param(LIST_HEADER, {"size": -1}, "MALFORMED", id="size-negative"),
    pytest.param(LIST_HEADER, {"size": 3.0}, "MALFORMED", id="size-float"),
    pytest.param(LIST_HEADER, {"lst": _lst(bytes([0x12, 0x78]))}, "MALFORMED", id="padding-nibble-set"),
    pytest.param(LIST_HEADER, {"lst": _lst(bytes([0x18, 0x70]))}, "MALFORMED", id="code-8"),
    pytest.param(LIST_HEADER, {"lst": _lst(bytes([0xF2, 0x70]))}, "MALFORMED", id="code-15"),
    pytest.param(LIST_HEADER, {"lst": _lst(bytes(10_000_000))}, "MALFORMED", id="zlib-bomb"),
    pytest.param(LIST_HEADER, {"lst": b64url(bytes([0x12, 0x70]))}, "MALFORMED", id="not-compressed"),
    pytest.param(LIST_HEADER, {"lst": _lst(bytes([0x12, 0x70])) + "="}, "MALFORMED", id="padded-base64"),
    pytest.param(LIST_HEADER, {"lst": b64url(zlib.compress(bytes([0x12, 0x70])) + b"x")}, "MALFORMED", id="trailing"),
]


def test_the_hostile_list_baseline_is_accepted(region, status_key, clock):
    # Proof that each hostile case below fails for its one change, not for the fixture.
    header = {**LIST_HEADER, "kid": region.status_kid}
    listed = read_status_list(
        signed(header, _list_payload(clock), status_key), region.status_public_jwk, issuer=REGION_CODE, now=clock()
    )
    assert [listed.status_at(i) for i in range(3)] == [Status.VALID, Status.SUSPENDED, Status.REVOKED]


@pytest.mark.parametrize(("header", "changes", "problem"), HOSTILE_LISTS)
def test_hostile_lists_signed_by_the_real_key_are_refused(region, status_key, clock, header, changes, problem):
    header = {**header, "kid": region.status_kid}
    jws = signed(header, _list_payload(clock, **changes), status_key)
    with pytest.raises(StatusDataRefused, match=problem):
        read_status_list(jws, region.status_public_jwk, issuer=REGION_CODE, now=clock())


def test_a_tampered_list_is_refused(session, keyring, clock, region, issue, change):
    certificate = issue(sample_request("DL")).certificate
    change(certificate, Status.REVOKED)
    header, payload, signature = status_list(session, keyring, now=clock()).split(".")
    claims = json.loads(b64url_decode(payload))
    claims["lst"] = _lst(bytes([0x10]))  # "VALID again"
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(StatusDataRefused, match="SIG_INVALID"):
        read_status_list(tampered, region.status_public_jwk, issuer=REGION_CODE, now=clock())


@pytest.mark.parametrize(
    ("later", "problem"),
    [
        pytest.param(timedelta(minutes=59, seconds=59), None, id="last-second"),
        pytest.param(timedelta(hours=1), "STALE", id="at-exp"),
        pytest.param(timedelta(days=2), "STALE", id="days-later"),
        pytest.param(-timedelta(seconds=60), None, id="clock-skew-allowed"),
        pytest.param(-timedelta(seconds=61), "STALE", id="from-the-future"),
    ],
)
def test_list_freshness(session, keyring, clock, region, certificate, later, problem):
    jws = status_list(session, keyring, now=clock())
    reading = clock() + later
    if problem is None:
        assert read_status_list(jws, region.status_public_jwk, issuer=REGION_CODE, now=reading).size == 1
    else:
        with pytest.raises(StatusDataRefused, match=problem):
            read_status_list(jws, region.status_public_jwk, issuer=REGION_CODE, now=reading)


# ---------------------------------------------------------------- readers: hostile answers


def _answer_payload(clock: Any, **changes: Any) -> dict[str, Any]:
    iat = int(clock().timestamp())
    payload = {"iss": REGION_CODE, "jti": "C1", "status": "01", "known": True, "iat": iat, "exp": iat + 300}
    payload["sig"] = "A" * 43
    payload.update(changes)
    return {name: value for name, value in payload.items() if value != "DROP"}


ANSWER_HEADER = {"alg": "EdDSA", "kid": "K", "typ": "ecert-status"}

HOSTILE_ANSWERS = [
    pytest.param({**ANSWER_HEADER, "x5u": "https://evil.example"}, {}, "MALFORMED", id="header-extra-member"),
    pytest.param({**ANSWER_HEADER, "typ": "ecert-status-list"}, {}, "MALFORMED", id="header-list-typ"),
    pytest.param({**ANSWER_HEADER, "typ": "ecert"}, {}, "MALFORMED", id="header-certificate-typ"),
    pytest.param(ANSWER_HEADER, {"jti": "C2"}, "MALFORMED", id="another-certificate"),
    pytest.param(ANSWER_HEADER, {"iss": "320000"}, "ISSUER_MISMATCH", id="another-region"),
    pytest.param(ANSWER_HEADER, {"sig": "DROP"}, "MALFORMED", id="known-without-sig"),
    pytest.param(ANSWER_HEADER, {"sig": "short"}, "MALFORMED", id="sig-not-a-digest"),
    pytest.param(ANSWER_HEADER, {"status": "08"}, "MALFORMED", id="status-08"),
    pytest.param(ANSWER_HEADER, {"status": "SUSPENDED"}, "MALFORMED", id="status-name"),
    pytest.param(ANSWER_HEADER, {"known": "true"}, "MALFORMED", id="known-string"),
    pytest.param(ANSWER_HEADER, {"known": False}, "MALFORMED", id="unknown-with-status-and-sig"),
    pytest.param(ANSWER_HEADER, {"known": False, "sig": "DROP"}, "MALFORMED", id="unknown-with-status"),
    pytest.param(ANSWER_HEADER, {"iat": "now"}, "MALFORMED", id="iat-string"),
    pytest.param(ANSWER_HEADER, {"extra": 1}, "MALFORMED", id="payload-extra-member"),
]


def test_the_hostile_answer_baseline_is_accepted(region, status_key, clock):
    header = {**ANSWER_HEADER, "kid": region.status_kid}
    answer = read_status_answer(
        signed(header, _answer_payload(clock), status_key),
        region.status_public_jwk,
        issuer=REGION_CODE,
        certificate_id="C1",
        now=clock(),
    )
    assert (answer.known, answer.status, answer.token_digest) == (True, Status.VALID, "A" * 43)


@pytest.mark.parametrize(("header", "changes", "problem"), HOSTILE_ANSWERS)
def test_hostile_answers_signed_by_the_real_key_are_refused(region, status_key, clock, header, changes, problem):
    jws = signed({**header, "kid": region.status_kid}, _answer_payload(clock, **changes), status_key)
    with pytest.raises(StatusDataRefused, match=problem):
        read_status_answer(jws, region.status_public_jwk, issuer=REGION_CODE, certificate_id="C1", now=clock())


def test_a_tampered_answer_is_refused(session, keyring, clock, region, certificate, change):
    change(certificate, Status.REVOKED)
    header, payload, signature = status_answer(session, keyring, certificate.id, now=clock()).split(".")
    claims = json.loads(b64url_decode(payload))
    claims["status"] = "01"
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(StatusDataRefused, match="SIG_INVALID"):
        read_status_answer(
            tampered, region.status_public_jwk, issuer=REGION_CODE, certificate_id=certificate.id, now=clock()
        )


@pytest.mark.parametrize(
    ("later", "problem"),
    [
        pytest.param(timedelta(seconds=299), None, id="last-second"),
        pytest.param(timedelta(seconds=300), "STALE", id="at-exp"),
        pytest.param(-timedelta(seconds=61), "STALE", id="from-the-future"),
    ],
)
def test_answer_freshness(session, keyring, clock, region, certificate, later, problem):
    jws = status_answer(session, keyring, certificate.id, now=clock())
    reading = clock() + later

    def read() -> Any:
        return read_status_answer(
            jws, region.status_public_jwk, issuer=REGION_CODE, certificate_id=certificate.id, now=reading
        )

    if problem is None:
        assert read().status is Status.VALID
    else:
        with pytest.raises(StatusDataRefused, match=problem):
            read()


@pytest.mark.parametrize(
    "garbage",
    ["", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.", "W10.e30.AA"],
    ids=["empty", "two-segments", "four-segments", "not-base64", "empty-objects-no-signature", "header-array"],
)
def test_garbage_is_malformed(region, clock, garbage):
    with pytest.raises(StatusDataRefused, match="MALFORMED"):
        read_status_list(garbage, region.status_public_jwk, issuer=REGION_CODE, now=clock())

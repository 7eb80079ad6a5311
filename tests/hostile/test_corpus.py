"""The hostile-token corpus (``corpus/*.json``, README.md) against the one verifier, twice:
through :class:`verify.verifier.Verifier` directly and through ``POST /api/v1/verify``.

Every case must get its expected reason code (and verdict) on both paths and on both
databases, with no 5xx, inside the guard (guard.py): no outbound connection, no file
opened, no hang. The registry the recipes draw on is built once per module and database
(:func:`harness`); a case verified at another moment sets the clock for its own call only.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import MAX_REQUEST_BYTES
from deployment import Deployment
from registry.demo import sample_request
from registry.identifiers import make_credit_code
from registry.models import SigningKey
from registry.offices import get_office, mark_key_compromised, rotate_key
from signing.algorithms import PrivateKey, generate_private_key
from signing.jwk import key_id
from tests.conftest import (
    OFFICE_CODE,
    OTHER_OFFICE_CODE,
    START,
    FixedClock,
    OfficeFixture,
    init_test_region,
    make_app,
    make_office,
)
from tests.databases import postgres_with_schema, sqlite_with_schema
from tests.hostile.corpus import Case, Materialised, Materialiser, Signer, World, load_corpus
from tests.hostile.guard import GuardTripped, Hang, run_guarded
from tests.verify.conftest import ES256_OFFICE_CODE
from verify.report import answer
from verify.verifier import Verifier

CASES = load_corpus()
PARAMS = [
    pytest.param(case, id=case.name, marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else [])
    for case in CASES
]
REGION_CODE = "310000"
ROTATING_OFFICE_CODE = make_credit_code("12310000MB0000001")
COMPROMISED_OFFICE_CODE = make_credit_code("12310000MB0000002")
# The world's timeline: everything is issued at START, statuses change ten minutes later,
# one office rotates its key and another's key is found compromised (since START + 30 min)
# an hour later, and cases are verified two hours after START unless they say otherwise.
STATUS_CHANGED_AT = START + timedelta(minutes=10)
COMPROMISED_SINCE = START + timedelta(minutes=30)
ROTATED_AT = START + timedelta(hours=1)
NOW = START + timedelta(hours=2)

# Failures up to the signature check: nothing the token says may be shown.
UNSIGNED_CODES = frozenset(
    {"MALFORMED", "TOO_LARGE", "ALG_NOT_ALLOWED", "HEADER_FORBIDDEN", "DUPLICATE_MEMBER", "TYP_INVALID"}
    | {"KEY_UNKNOWN", "REGION_NOT_RECOGNISED", "SIG_INVALID"}
)


def expected_verdict(code: str) -> str:
    return {"OK": "VALID", "STATUS_UNAVAILABLE": "UNDETERMINED", "TRUSTLIST_STALE": "UNDETERMINED"}.get(code, "INVALID")


# ---------------------------------------------------------------- the registry, once per module


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hostile_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_with_schema(str(tmp_path_factory.mktemp("hostile") / "ecert.db"))
        return
    yield from postgres_with_schema("ecert_hostile")


@dataclass(frozen=True)
class Harness:
    client: FlaskClient
    deployment: Deployment
    clock: FixedClock
    world: World
    built: dict[str, Materialised]


@pytest.fixture(scope="module")
def harness(hostile_database: str) -> Iterator[Harness]:
    clock = FixedClock(START)
    # A thousand verifications from one address is this test, not an attack: limits off.
    app = make_app(hostile_database, clock)
    deployment: Deployment = app.extensions["ecert"]
    try:
        world = build_world(app, deployment, clock)
        materialiser = Materialiser(world)
        built = {case.name: materialiser.materialise(case) for case in CASES}
        harness = Harness(app.test_client(), deployment, clock, world, built)
        # Open the pooled connections and load what a first verification loads lazily,
        # outside the guard: the guard is about what a hostile input makes us do.
        for token in world.tokens.values():
            verify_directly(harness, token, NOW)
            verify_over_http(harness, token, NOW)
        yield harness
    finally:
        deployment.dispose()


def build_world(app: Flask, deployment: Deployment, clock: FixedClock) -> World:
    """Region 310000 with five offices, tokens in every state the corpus needs, a rotated
    key and a compromised one: the names and keys the recipes refer to (README.md)."""
    keyring = deployment.keyring
    with deployment.session() as session:
        region = init_test_region(session, keyring, clock, REGION_CODE)
        root = Signer(region.root_kid, keyring.private_key(region.root_kid, lambda: region.root_private_key))
        offices = {
            "office": make_office(session, keyring, clock, OFFICE_CODE, ["BL", "DL", "PQ"]),
            "other_office": make_office(session, keyring, clock, OTHER_OFFICE_CODE, ["DL"], name="交通警察总队"),
            "es256_office": make_office(session, keyring, clock, ES256_OFFICE_CODE, ["DL"], algorithm="ES256"),
            "rotating_office": make_office(session, keyring, clock, ROTATING_OFFICE_CODE, ["DL"], name="轮换中心"),
            "compromised_office": make_office(session, keyring, clock, COMPROMISED_OFFICE_CODE, ["DL"], name="泄露"),
        }
    tokens = issue_bases(app.test_client(), offices, clock)
    # Signer names: offices by name, except the rotating office's first key ("retired")
    # and its new one ("rotated"), and the compromised office's first key ("compromised").
    kids = {name: fixture.kid for name, fixture in offices.items()}
    kids["retired"], kids["compromised"] = kids.pop("rotating_office"), kids.pop("compromised_office")
    keys = {name: private_key(deployment, kid) for name, kid in kids.items()}  # before the compromise

    clock.moment = ROTATED_AT
    with deployment.session() as session:
        office = get_office(session, ROTATING_OFFICE_CODE)
        kids["rotated"] = rotate_key(session, keyring, office, algorithm=None, now=clock(), actor="test")[1].kid
        mark_key_compromised(session, keyring, kids["compromised"], COMPROMISED_SINCE, now=clock(), actor="test")
        session.commit()
    keys["rotated"] = private_key(deployment, kids["rotated"])
    tokens["rotated_dl"] = issue(app.test_client(), offices["rotating_office"], "DL")["token"]
    clock.moment = NOW

    signers = {"root": root}
    with deployment.read_session() as fresh:
        for name, kid in kids.items():
            row = fresh.get(SigningKey, kid)
            assert row is not None
            signers[name] = Signer(kid, keys[name], row.not_before, row.not_after, row.compromised_since)
    for name, algorithm in [("attacker", "EdDSA"), ("attacker_es256", "ES256")]:
        attacker_key = generate_private_key(algorithm)  # type: ignore[arg-type]
        signers[name] = Signer(key_id(attacker_key.public_key()), attacker_key)
    names = {"region": REGION_CODE, **{f"code:{name}": fixture.code for name, fixture in offices.items()}}
    return World(tokens=tokens, signers=signers, names=names, now=NOW, leeway=deployment.settings.verify_leeway)


def issue_bases(client: FlaskClient, offices: dict[str, OfficeFixture], clock: FixedClock) -> dict[str, str]:
    """The base tokens issued at START, statuses changed at STATUS_CHANGED_AT."""
    bases = {
        "dl": ("office", "DL"),
        "pq": ("office", "PQ"),
        "bl": ("office", "BL"),
        "other_dl": ("other_office", "DL"),
        "es256_dl": ("es256_office", "DL"),
        "retired_dl": ("rotating_office", "DL"),
        "compromised_dl": ("compromised_office", "DL"),
        "revoked": ("office", "DL"),
        "revoked_es256": ("es256_office", "DL"),
        "suspended": ("office", "DL"),
        "withdrawn": ("office", "BL"),
        "cancelled": ("office", "PQ"),
        "transferred": ("office", "DL"),
        "status_expired": ("office", "DL"),
    }
    issued = {name: issue(client, offices[office], type_code) for name, (office, type_code) in bases.items()}
    issued["future_pq"] = issue(client, offices["office"], "PQ", valid_from="2026-04-01")
    clock.moment = STATUS_CHANGED_AT
    changes = {"revoked": "REVOKED", "revoked_es256": "REVOKED", "suspended": "SUSPENDED", "withdrawn": "WITHDRAWN"}
    changes |= {"cancelled": "CANCELLED", "transferred": "TRANSFERRED", "status_expired": "EXPIRED"}
    for name, status in changes.items():
        response = client.post(
            f"/api/v1/certificates/{issued[name]['id']}/status",
            json={"status": status, "reason": "检查发现问题"},
            headers=offices[bases[name][0]].auth,
        )
        assert response.status_code == 200, response.json
    tokens = {name: str(body["token"]) for name, body in issued.items()}
    # Documents the region signs that are not certificates, for cross-document confusion.
    tokens["status_answer"] = client.get(f"/api/v1/status/{issued['dl']['id']}").get_data(as_text=True)
    tokens["status_list"] = client.get("/.well-known/ecert/status-list").get_data(as_text=True)
    return tokens


def issue(client: FlaskClient, office: OfficeFixture, type_code: str, **changes: Any) -> dict[str, Any]:
    """Issue the sample certificate of ``type_code`` through the API; the 201 body."""
    response = client.post("/api/v1/certificates", json=sample_request(type_code, **changes), headers=office.auth)
    assert response.status_code == 201, response.json
    body = response.json
    assert isinstance(body, dict)
    return body


def private_key(deployment: Deployment, kid: str) -> PrivateKey:
    with deployment.read_session() as fresh:
        row = fresh.get(SigningKey, kid)
        assert row is not None
        return deployment.keyring.private_key(kid, lambda: row.private_key)


# ---------------------------------------------------------------- the two paths


def verify_directly(harness: Harness, token: str, at: Any) -> dict[str, Any]:
    """The verifier's answer at ``at``, on a fresh reading session (as the CLI runs it)."""
    with harness.deployment.read_session() as session:
        report = Verifier(session, now=at, leeway=harness.deployment.settings.verify_leeway).verify(token)
    return answer(report)


def verify_over_http(harness: Harness, token: str, at: Any) -> tuple[int, dict[str, Any]]:
    """``POST /api/v1/verify`` with the clock at ``at`` for this request only."""
    # ensure_ascii: a lone surrogate in a hostile token must survive the trip as \\ud800.
    body = json.dumps({"token": token})
    saved, harness.clock.moment = harness.clock.moment, at
    try:
        response = harness.client.post("/api/v1/verify", data=body, content_type="application/json")
    finally:
        harness.clock.moment = saved
    return response.status_code, response.get_json()


# ---------------------------------------------------------------- the corpus


@pytest.mark.parametrize("case", PARAMS)
def test_verifier_answers_the_expected_code(case: Case, harness: Harness) -> None:
    built = harness.built[case.name]

    shown = run_guarded(lambda: verify_directly(harness, built.token, built.at))

    assert (shown["verdict"], shown["code"]) == (expected_verdict(case.expected), case.expected), shown["detail"]
    if case.expected in UNSIGNED_CODES:
        assert (shown["certificate"], shown["issuer"]) == (None, None)


@pytest.mark.parametrize("case", PARAMS)
def test_http_api_answers_the_expected_code(case: Case, harness: Harness) -> None:
    built = harness.built[case.name]

    status, body = run_guarded(lambda: verify_over_http(harness, built.token, built.at))

    assert status == case.http_status, body
    if status == 413:
        # The request is over the 1 MiB cap of every request: refused before it is read.
        assert len(json.dumps({"token": built.token})) > MAX_REQUEST_BYTES
        assert body["code"] == "REQUEST_TOO_LARGE"
        return
    if status == 400:
        # The body itself is not strict JSON (it can carry the token only in a form we refuse).
        assert body["code"] == "MALFORMED_JSON"
        return
    assert (body["verdict"], body["code"]) == (expected_verdict(case.expected), case.expected), body["detail"]
    if case.expected in UNSIGNED_CODES:
        assert (body["certificate"], body["issuer"]) == (None, None)
    assert harness.clock() == NOW


# ---------------------------------------------------------------- the corpus itself

# The issue's categories, each a data file (README.md maps them).
REQUIRED_CATEGORIES = {
    "alg-none",
    "hmac-with-public-key",
    "kid-injection",
    "header-url",
    "header-embedded-key",
    "header-crit-b64-zip",
    "signature-zero-and-range",
    "ed25519-malleability",
    "base64url-noncanonical",
    "whitespace-and-junk",
    "duplicate-members",
    "payload-not-object",
    "deep-nesting",
    "huge-integers",
    "huge-tokens",
    "segments-and-jwe",
    "unicode-lookalikes",
    "typ-header",
    "type-substitution",
    "issuer-substitution",
    "region-substitution",
    "validity-boundaries",
    "key-window-and-usage",
    "revoked-replay",
}


def test_corpus_covers_the_issue() -> None:
    per_category = Counter(case.category for case in CASES)

    assert set(per_category) >= REQUIRED_CATEGORIES
    assert len(per_category) >= 22
    assert len(CASES) >= 220
    assert min(per_category.values()) >= 3


def test_every_base_token_is_in_its_named_state(harness: Harness) -> None:
    """Cases fail only because of what their recipe changes: each base token the corpus
    starts from is genuine, in the state it is named for."""
    states = {"revoked": "REVOKED", "revoked_es256": "REVOKED", "suspended": "SUSPENDED"}
    states |= {"withdrawn": "WITHDRAWN", "cancelled": "CANCELLED", "transferred": "TRANSFERRED"}
    states |= {"status_expired": "EXPIRED", "future_pq": "NOT_YET_VALID"}
    states |= {"status_answer": "TYP_INVALID", "status_list": "TYP_INVALID"}  # signed, but not certificates
    for name, token in harness.world.tokens.items():
        assert verify_directly(harness, token, NOW)["code"] == states.get(name, "OK"), name


# ---------------------------------------------------------------- the guard trips


def test_guard_refuses_a_file_read() -> None:
    with pytest.raises(GuardTripped, match="open"):
        run_guarded(lambda: open(__file__, "rb").read())  # noqa: SIM115


def test_guard_trips_even_when_the_refusal_is_swallowed() -> None:
    def swallowing() -> None:
        with contextlib.suppress(OSError):
            open("/etc/hostname", "rb").close()

    with pytest.raises(GuardTripped, match="/etc/hostname"):
        run_guarded(swallowing)


def test_guard_refuses_a_name_lookup_and_a_connection() -> None:
    with pytest.raises(GuardTripped, match=r"socket\.getaddrinfo"):
        run_guarded(lambda: socket.getaddrinfo("evil.example", 443))
    with socket.socket() as probe, pytest.raises(GuardTripped, match=r"socket\.connect"):
        run_guarded(lambda: probe.connect(("127.0.0.1", 9)))


def test_guard_reports_a_hang() -> None:
    never = threading.Event()
    try:
        with pytest.raises(Hang):
            run_guarded(never.wait, timeout=0.05)
    finally:
        never.set()


def test_guard_sees_the_verifier_open_a_database_file(harness: Harness, hostile_database: str) -> None:
    """The guard watches the real verifier: with no pooled connection to reuse, opening the
    SQLite file trips it (that is why :func:`harness` warms the pools first). PostgreSQL
    connects inside libpq, out of the audit hook's sight: there the guard's blind spot is
    pinned down instead (a cold verifier connects unseen), so that the day the hook can
    see it, this test says so."""
    cold = Deployment(harness.deployment.settings, harness.clock)
    try:

        def verify_cold() -> Any:
            with cold.read_session() as session:
                return Verifier(session, now=NOW).verify(harness.world.tokens["dl"])

        if hostile_database.startswith("sqlite"):
            with pytest.raises(GuardTripped, match=r"sqlite3\.connect"):
                run_guarded(verify_cold)
        else:
            assert run_guarded(verify_cold).code == "OK"
    finally:
        cold.dispose()


def test_guard_is_disarmed_outside_the_guarded_call() -> None:
    run_guarded(lambda: None)

    with open(__file__, "rb") as unguarded:
        assert unguarded.read(3) == b'"""'

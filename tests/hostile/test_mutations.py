"""Property tests (Hypothesis): no mutation of a genuine token verifies, except the one
re-encoding the spec calls the same token.

Genuine tokens come from real issuance (``POST /api/v1/certificates``) into one registry
per database kind, shared by the module: an EdDSA office, a second EdDSA office and an
ES256 office, each with a real signing key, and the region's root key. Mutations:

* text: replace, insert or delete any character, or change the case of one or all;
* bytes: flip, insert or delete a byte of a decoded segment, re-encoded canonically;
* segments: swap, drop or duplicate one, or splice in another genuine token's;
* encoding: the same bytes spelt non-canonically (``=`` padding, standard base64 with
  ``+``/``/``, whitespace inside or around, non-zero trailing bits);
* JSON: add, remove, change, duplicate or reorder a header or payload member, shift a
  number (a time, the status position), or spell the same JSON differently (spaces,
  ``\\u`` escapes); then keep the old signature, re-sign with another real key of the
  registry (another office's, the root's; optionally naming it as the kid), or re-sign
  with the token's own key (a leaked key or an insider: validly signed, never registered);
* signature arithmetic: ES256 (r, s) to (n-r, s), (r, s+n), (s, r), ...; Ed25519 S to
  S + kL, R edits.

Properties:

1. Every mutation that changes the token text is refused (verdict not VALID) by
   :class:`verify.verifier.Verifier`, without raising; a sample also through
   ``POST /api/v1/verify`` (200, not VALID).
2. Except ES256 (r, n-s): ECDSA signatures are malleable and the registry matches tokens
   on their signed bytes (``signing/tokens.py``), so that twin is the same certificate:
   the same verdict, code, identifier, status and log entry as the original.
3. Ed25519 has no twin: S + kL (for every k that still fits in 32 bytes) is SIG_INVALID.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import select

from registry.demo import sample_request
from registry.models import SigningKey
from signing.algorithms import PrivateKey
from tests.conftest import OFFICE_CODE, OTHER_OFFICE_CODE, FixedClock, init_test_region, make_app, make_office
from tests.databases import empty_all_tables, sqlite_with_schema
from tests.verify.conftest import ES256_OFFICE_CODE, LEEWAY, b64url, forge, unb64url
from verify.codes import Verdict
from verify.report import VerificationReport
from verify.verifier import Verifier

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ED25519_L = 2**252 + 27742317777372353535851937790883648493
BASE64URL = string.ascii_letters + string.digits + "-_"

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
API_SAMPLE = settings(PROPERTY, max_examples=40)


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Issued:
    token: str
    certificate_id: str
    kid: str


@dataclass
class World:
    """One registry with real offices, keys and certificates, shared by the module."""

    app: Flask
    client: FlaskClient
    clock: FixedClock
    genuine: dict[str, Issued]  # a VALID certificate per algorithm
    es256_by_status: dict[str, Issued]
    keys: dict[str, PrivateKey]  # every real private key of the region, by kid

    def verify(self, token: str) -> VerificationReport:
        with self.app.extensions["ecert"].read_session() as fresh:
            return Verifier(fresh, now=self.clock(), leeway=LEEWAY).verify(token)

    def verify_online(self, token: str) -> dict[str, Any]:
        response = self.client.post("/api/v1/verify", json={"token": token})
        body = response.json
        assert response.status_code == 200 and isinstance(body, dict), body
        return body


def _build_world(app: Flask, clock: FixedClock) -> World:
    deployment = app.extensions["ecert"]
    keyring = deployment.keyring
    with deployment.session() as session:
        region = init_test_region(session, keyring, clock)
        eddsa = make_office(session, keyring, clock, OFFICE_CODE, ["BL", "DL", "PQ"])
        make_office(session, keyring, clock, OTHER_OFFICE_CODE, ["DL"], name="上海市公安局交通警察总队")
        es256 = make_office(
            session, keyring, clock, ES256_OFFICE_CODE, ["DL"], algorithm="ES256", name="上海市浦东新区示范发证中心"
        )
        keys = {region.root_kid: keyring.private_key(region.root_kid, lambda: region.root_private_key)}
        for row in session.scalars(select(SigningKey)):
            keys[row.kid] = keyring.private_key(row.kid, lambda stored=row.private_key: stored)

    client = app.test_client()

    def issue(office: Any, status: str = "VALID") -> Issued:
        response = client.post("/api/v1/certificates", json=sample_request("DL"), headers=office.auth)
        body = response.json
        assert response.status_code == 201 and isinstance(body, dict), body
        if status != "VALID":
            changed = client.post(
                f"/api/v1/certificates/{body['id']}/status",
                json={"status": status, "reason": "检查发现问题"},
                headers=office.auth,
            )
            assert changed.status_code == 200, changed.json
        return Issued(token=body["token"], certificate_id=body["id"], kid=office.kid)

    by_status = {status: issue(es256, status) for status in ("VALID", "SUSPENDED", "REVOKED")}
    return World(
        app=app,
        client=client,
        clock=clock,
        genuine={"EdDSA": issue(eddsa), "ES256": by_status["VALID"]},
        es256_by_status=by_status,
        keys=keys,
    )


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if request.param == "sqlite":
        url = sqlite_with_schema(str(tmp_path_factory.mktemp("mutations") / "ecert.db"))
    else:
        url = request.getfixturevalue("postgres_schema")
    clock = FixedClock()
    app = make_app(url, clock)  # limits off: thousands of verifications from one client
    try:
        yield _build_world(app, clock)
    finally:
        app.extensions["ecert"].dispose()
        if request.param == "postgresql":
            empty_all_tables(url)


# ---------------------------------------------------------------- signature arithmetic


def _signature(token: str) -> bytes:
    return unb64url(token.rsplit(".", 1)[1])


def _with_signature(token: str, signature: bytes) -> str:
    return f"{token.rsplit('.', 1)[0]}.{b64url(signature)}"


def high_s_twin(token: str) -> str:
    """The ES256 token with (r, n-s): the same signed bytes, the other valid signature."""
    signature = _signature(token)
    s = int.from_bytes(signature[32:], "big")
    return _with_signature(token, signature[:32] + (P256_N - s).to_bytes(32, "big"))


def is_high_s_twin(original: str, candidate: str) -> bool:
    return candidate != original and candidate == high_s_twin(original)


def _es256_edits(signature: bytes) -> list[tuple[str, bytes]]:
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    pairs = {
        "(r, n-s)": (r, P256_N - s),
        "(n-r, s)": (P256_N - r, s),
        "(n-r, n-s)": (P256_N - r, P256_N - s),
        "(s, r)": (s, r),
        "(r, s+n)": (r, s + P256_N),
        "(r+n, s)": (r + P256_N, s),
        "(r, 0)": (r, 0),
        "(0, s)": (0, s),
        "(r, n)": (r, P256_N),
        "(r, s+1)": (r, s + 1),
    }
    return [
        (name, a.to_bytes(32, "big") + b.to_bytes(32, "big")) for name, (a, b) in pairs.items() if max(a, b) < 2**256
    ]


def _ed25519_edits(signature: bytes) -> list[tuple[str, bytes]]:
    s = int.from_bytes(signature[32:], "little")
    edits = [(f"S+{k}L", signature[:32] + (s + k * ED25519_L).to_bytes(32, "little")) for k in range(1, 16)]
    edits = [(name, edited) for name, edited in edits if int.from_bytes(edited[32:], "little") < 2**256]
    edits.append(("R with its sign bit flipped", signature[:31] + bytes([signature[31] ^ 0x80]) + signature[32:]))
    edits.append(("S=L-S", signature[:32] + ((ED25519_L - s) % ED25519_L).to_bytes(32, "little")))
    return edits


def signature_arithmetic(token: str, algorithm: str) -> st.SearchStrategy[tuple[str, str]]:
    signature = _signature(token)
    edits = _es256_edits(signature) if algorithm == "ES256" else _ed25519_edits(signature)
    return st.sampled_from([(f"signature {name}", _with_signature(token, edited)) for name, edited in edits])


# ---------------------------------------------------------------- mutation strategies


def text_edits(token: str, characters: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str]]:
    position = st.integers(0, len(token))

    @st.composite
    def edit(draw: st.DrawFn) -> tuple[str, str]:
        at = draw(position)
        kind = draw(st.sampled_from(["replace", "insert", "delete", "swapcase", "upper", "lower"]))
        if kind == "insert":
            return kind, token[:at] + draw(characters) + token[at:]
        at = min(at, len(token) - 1)
        if kind == "replace":
            return kind, token[:at] + draw(characters) + token[at + 1 :]
        if kind == "delete":
            return kind, token[:at] + token[at + 1 :]
        if kind == "swapcase":
            return kind, token[:at] + token[at].swapcase() + token[at + 1 :]
        return kind, token.upper() if kind == "upper" else token.lower()

    return edit()


@st.composite
def byte_edits(draw: st.DrawFn, token: str) -> tuple[str, str]:
    segments = token.split(".")
    index = draw(st.integers(0, 2))
    raw = bytearray(unb64url(segments[index]))
    at = draw(st.integers(0, len(raw)))
    kind = draw(st.sampled_from(["flip", "insert", "delete"]))
    if kind == "insert":
        raw.insert(at, draw(st.integers(0, 255)))
    elif raw:
        at = min(at, len(raw) - 1)
        if kind == "flip":
            raw[at] ^= draw(st.integers(1, 255))
        else:
            del raw[at]
    segments[index] = b64url(bytes(raw))
    return f"byte {kind} in segment {index}", ".".join(segments)


@st.composite
def segment_surgery(draw: st.DrawFn, token: str, others: list[str]) -> tuple[str, str]:
    segments = token.split(".")
    kind = draw(st.sampled_from(["swap", "drop", "duplicate", "splice"]))
    if kind == "swap":
        i, j = draw(st.lists(st.integers(0, 2), min_size=2, max_size=2, unique=True))
        segments[i], segments[j] = segments[j], segments[i]
    elif kind == "drop":
        del segments[draw(st.integers(0, 2))]
    elif kind == "duplicate":
        segments.insert(draw(st.integers(0, 3)), segments[draw(st.integers(0, 2))])
    else:
        donor = draw(st.sampled_from(others)).split(".")
        index = draw(st.integers(0, 2))
        segments[index] = donor[index]
    return f"segments {kind}", ".".join(segments)


@st.composite
def non_canonical(draw: st.DrawFn, token: str) -> tuple[str, str]:
    segments = token.split(".")
    index = draw(st.integers(0, 2))
    segment, raw = segments[index], unb64url(segments[index])
    kind = draw(st.sampled_from(["padding", "standard", "whitespace", "trailing bits", "around"]))
    if kind == "padding":
        segment += "=" * draw(st.integers(1, 2))
    elif kind == "standard":
        segment = base64.b64encode(raw).decode("ascii")
    elif kind == "whitespace":
        at = draw(st.integers(0, len(segment)))
        segment = segment[:at] + draw(st.sampled_from([" ", "\t", "\r", "\n", "\u00a0", "\u3000"])) + segment[at:]
    elif kind == "trailing bits" and len(segment) % 4 in (2, 3):
        unused = 0b1111 if len(segment) % 4 == 2 else 0b11
        last = BASE64URL.index(segment[-1])
        segment = segment[:-1] + BASE64URL[(last & ~unused) | draw(st.integers(1, unused))]
    elif kind == "around":
        space = draw(st.sampled_from([" ", "\n", "\r\n", "\t"]))
        return "whitespace around the token", draw(st.sampled_from([space + token, token + space]))
    segments[index] = segment
    return f"{kind} in segment {index}", ".".join(segments)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)


@st.composite
def json_edit(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` (a JSON object) with one member edited, or the same JSON spelt differently."""
    members: dict[str, Any] = json.loads(raw)
    names = list(members)
    numbers = [name for name in names if isinstance(members[name], int) and not isinstance(members[name], bool)]
    kinds = ["add", "remove", "change", "duplicate", "reorder", "spaces", "escape"] + (["shift"] if numbers else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "shift":
        # A time or status position moved, still well-typed: reaches the later steps.
        members[draw(st.sampled_from(numbers))] += draw(st.integers(-(10**8), 10**8).filter(bool))
    elif kind == "add":
        members[draw(st.text(min_size=1, max_size=6).filter(lambda name: name not in members))] = draw(JSON_VALUES)
    elif kind == "remove":
        del members[draw(st.sampled_from(names))]
    elif kind == "change":
        members[draw(st.sampled_from(names))] = draw(JSON_VALUES)
    elif kind == "duplicate":
        name = draw(st.sampled_from(names))
        again = json.dumps({name: draw(JSON_VALUES | st.just(members[name]))}, ensure_ascii=False)[1:-1]
        return raw[:-1] + b"," + again.encode("utf-8") + b"}"
    elif kind == "reorder":
        members = dict(draw(st.permutations(list(members.items()))))
    elif kind == "spaces":
        return json.dumps(members, ensure_ascii=False, indent=draw(st.sampled_from([None, 0, 1]))).encode("utf-8")
    else:
        return json.dumps(members, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return json.dumps(members, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@st.composite
def json_edits(
    draw: st.DrawFn, issued: Issued, keys: dict[str, PrivateKey], *, insider: bool = False
) -> tuple[str, str]:
    """A header or payload edit, signed or not; ``insider``: the payload, re-signed with
    the token's own key (these get furthest through the checks)."""
    header_b64, payload_b64, signature_b64 = issued.token.split(".")
    header, payload = unb64url(header_b64), unb64url(payload_b64)
    if not insider and draw(st.booleans()):
        header = draw(json_edit(header))
        edited = "header"
    else:
        payload = draw(json_edit(payload))
        edited = "payload"
    signers = ["own key"] if insider else ["unsigned", "own key", "other key", "other key named"]
    signer = draw(st.sampled_from(signers))
    if signer == "unsigned":
        return f"{edited} edited, old signature", f"{b64url(header)}.{b64url(payload)}.{signature_b64}"
    if signer == "own key":
        # Re-signing the very same bytes would be the same token, not a mutation.
        assume((header, payload) != (unb64url(header_b64), unb64url(payload_b64)))
        return f"{edited} edited, re-signed by its own key", forge(header, payload, keys[issued.kid])
    kid = draw(st.sampled_from(sorted(kid for kid in keys if kid != issued.kid)))
    if signer == "other key named":
        members = json.loads(header)
        if isinstance(members, dict):
            members["kid"] = kid
            header = json.dumps(members, separators=(",", ":")).encode("utf-8")
    return f"{edited} edited, re-signed by {signer} {kid}", forge(header, payload, keys[kid])


def mutations(world: World, algorithm: str, characters: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str]]:
    issued = world.genuine[algorithm]
    token = issued.token
    others = [other.token for other in world.genuine.values() if other is not issued]
    others += [other.token for other in world.es256_by_status.values() if other is not issued]
    return st.one_of(
        text_edits(token, characters),
        byte_edits(token),
        segment_surgery(token, others),
        non_canonical(token),
        json_edits(issued, world.keys),
        json_edits(issued, world.keys, insider=True),
        signature_arithmetic(token, algorithm),
    )


# ---------------------------------------------------------------- properties


def _check(
    world: World, algorithm: str, label: str, mutated: str, verify: Callable[[str], tuple[str, str, str | None]]
) -> None:
    original = world.genuine[algorithm].token
    assume(mutated != original)
    note(f"{algorithm} {label}: {mutated!r}")
    verdict, code, certificate_id = verify(mutated)
    event(code)  # how deep mutations reach: --hypothesis-show-statistics
    if algorithm == "ES256" and is_high_s_twin(original, mutated):
        assert (verdict, code, certificate_id) == ("VALID", "OK", world.genuine[algorithm].certificate_id)
    else:
        assert verdict != "VALID", (label, code)


@PROPERTY
@given(algorithm=st.sampled_from(["EdDSA", "ES256"]), data=st.data())
def test_every_mutation_is_refused(world: World, algorithm: str, data: st.DataObject) -> None:
    label, mutated = data.draw(mutations(world, algorithm, st.characters()), label="mutation")

    def verify(token: str) -> tuple[str, str, str | None]:
        report = world.verify(token)
        return report.verdict.value, report.code, None if report.claims is None else report.claims.certificate_id

    _check(world, algorithm, label, mutated, verify)


@API_SAMPLE
@given(algorithm=st.sampled_from(["EdDSA", "ES256"]), data=st.data())
def test_every_mutation_is_refused_through_the_api(world: World, algorithm: str, data: st.DataObject) -> None:
    # Text a JSON request can carry (no lone surrogates).
    label, mutated = data.draw(mutations(world, algorithm, st.characters(codec="utf-8")), label="mutation")

    def verify(token: str) -> tuple[str, str, str | None]:
        answer = world.verify_online(token)
        return answer["verdict"], answer["code"], (answer["certificate"] or {}).get("id")

    _check(world, algorithm, label, mutated, verify)


@pytest.mark.parametrize("status", ["VALID", "SUSPENDED", "REVOKED"])
def test_es256_high_s_twin_is_the_same_certificate(world: World, status: str) -> None:
    issued = world.es256_by_status[status]
    twin = high_s_twin(issued.token)
    assert twin != issued.token

    original, mirrored = world.verify(issued.token), world.verify(twin)

    assert original.code == ("OK" if status == "VALID" else status)
    assert (mirrored.verdict, mirrored.code, mirrored.status) == (original.verdict, original.code, original.status)
    assert mirrored.claims is not None and original.claims is not None
    assert mirrored.claims.certificate_id == original.claims.certificate_id == issued.certificate_id
    assert mirrored.log == original.log
    # Through the API the whole answer is the same, log entry and proof included.
    online = world.verify_online(twin)
    assert online == world.verify_online(issued.token)
    assert online["certificate"]["id"] == issued.certificate_id
    assert online["certificate"]["status"]["name"] == status
    assert online["log"] is not None


def test_ed25519_has_no_twin(world: World) -> None:
    token = world.genuine["EdDSA"].token
    assert world.verify(token).valid
    edits = [(name, edited) for name, edited in _ed25519_edits(_signature(token)) if name.startswith("S+")]
    assert edits, "S + L always fits in 32 bytes"

    for name, edited in edits:
        report = world.verify(_with_signature(token, edited))
        assert (report.verdict, report.code) == (Verdict.INVALID, "SIG_INVALID"), name
    online = world.verify_online(_with_signature(token, edits[0][1]))
    assert (online["verdict"], online["code"]) == ("INVALID", "SIG_INVALID")

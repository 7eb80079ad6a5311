"""Fuzzing every parser that reads what another party sent us.

Tokens come from anyone; trust lists, status answers, status lists, checkpoints and
bundles come from other regions, and a region whose keys are stolen (or whose operator
turns hostile) can sign anything. So each reader is fed two kinds of input:

* arbitrary text, and text built from the format's own pieces (segments, lines), and
* genuine objects whose JSON payload has been mutated anywhere (a member replaced by any
  JSON value, removed, or added) and then signed again with the real key, so that the
  structure checks behind the signature are reached.

The property is the same everywhere: the reader either accepts or raises its own
documented error; nothing else (no TypeError, KeyError, RecursionError, OverflowError,
zlib.error ...) escapes, because an unexpected exception is a 500 on the API and a crash
of ``peer sync``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from registry.bundle import export_bundle
from registry.claims import CertificateClaims
from registry.log import current_checkpoint
from registry.regions import root_fingerprint
from registry.status_list import ANSWER_TYPE, LIST_TYPE, status_answer, status_list
from registry.trust_list import current_trust_list
from signing import strict_json
from signing.errors import TokenFormatError
from signing.notes import NoteError, open_note, parse_checkpoint, parse_verifier_key
from signing.tokens import encode_token, parse_token
from tests.conftest import FixedClock, OfficeFixture
from tests.databases import sqlite_with_schema
from verify.bundle import BundleRefused, read_bundle
from verify.status_sources import StatusDataRefused, read_status_answer, read_status_list
from verify.trust_lists import TrustListError, read_trust_list
from verify.verifier import token_from_qr_text

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---------------------------------------------------------------- strategies

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24)
    | st.sampled_from(["", "01", "07", "EdDSA", "ES256", "none", "ecert", "310000", "-1", "AAAA", "A" * 43])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)
SEGMENT = st.binary(max_size=96).map(lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii"))
SEGMENT_ISH = SEGMENT | st.text(alphabet="ABCabc019-_+/=. \n", max_size=40)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replaced(value[head], rest, new)
    return copy


def _removed(value: Any, path: tuple[Any, ...]) -> Any:
    parent_path, last = path[:-1], path[-1]
    parent = value
    for step in parent_path:
        parent = parent[step]
    copy = dict(parent) if isinstance(parent, dict) else list(parent)
    del copy[last]
    return _replaced(value, parent_path, copy)


@st.composite
def mutations(draw: st.DrawFn, genuine: dict[str, Any]) -> Any:
    """``genuine`` with one to three members replaced, removed or added anywhere."""
    value: Any = genuine
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = list(_paths(value))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "remove" and path:
            value = _removed(value, path)
        elif action == "add":
            target = path
            node = value
            for step in target:
                node = node[step]
            if isinstance(node, dict):
                value = _replaced(value, target, {**node, draw(st.text(max_size=8)): draw(JSON_VALUES)})
            elif isinstance(node, list):
                value = _replaced(value, target, [*node, draw(JSON_VALUES)])
            else:
                value = _replaced(value, target, draw(JSON_VALUES))
        else:
            value = _replaced(value, path, draw(JSON_VALUES))
    return value


def payload_of(jws: str) -> dict[str, Any]:
    segment = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


def header_of(jws: str) -> dict[str, Any]:
    segment = jws.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))  # type: ignore[no-any-return]


def resign(payload: Any, key: Any, header: dict[str, Any]) -> str:
    """``payload`` (any JSON, not only objects) signed under ``header`` with ``key``."""
    return encode_token(payload, key, header["kid"], typ=header["typ"])


# ---------------------------------------------------------------- the registry behind the genuine objects


@pytest.fixture
def database_url(tmp_path: Any) -> str:
    # What is fuzzed here is parsing, not storage: one database kind is enough.
    return sqlite_with_schema(str(tmp_path / "fuzz.db"))


@pytest.fixture
def genuine(
    session: Session, keyring: Any, clock: FixedClock, region: Any, office: OfficeFixture, client: Any
) -> dict[str, Any]:
    """One of each signed object this region publishes, and the keys that signed them."""
    from registry.demo import sample_request

    issued = client.post("/api/v1/certificates", json=sample_request("DL"), headers=office.auth)
    assert issued.status_code == 201, issued.get_json()
    now = clock()
    trust_list = current_trust_list(session, keyring, now=now, actor="test")
    checkpoint = current_checkpoint(session, keyring, now=now)
    answer = status_answer(session, keyring, issued.get_json()["id"], now=now)
    listing = status_list(session, keyring, now=now)
    bundle = export_bundle(session, keyring, now=now, actor="test", lifetime=timedelta(hours=1))
    session.commit()
    root = keyring.private_key(region.root_kid, lambda: region.root_private_key)
    status_key = keyring.private_key(region.status_kid, lambda: region.status_private_key)
    return {
        "region": region,
        "now": now,
        "token": issued.get_json()["token"],
        "certificate_id": issued.get_json()["id"],
        "trust_list": trust_list.jws,
        "checkpoint": checkpoint.note,
        "status_answer": answer,
        "status_list": listing,
        "bundle": bundle,
        "root": root,
        "status_key": status_key,
    }


def refuses_only(error_types: tuple[type[Exception], ...], read: Callable[[], Any]) -> None:
    try:
        read()
    except error_types as error:
        event(f"refused: {type(error).__name__}")
    else:
        event("accepted")


# ---------------------------------------------------------------- tokens and JSON from anyone


@FUZZ
@given(text=st.text(max_size=300) | st.lists(SEGMENT_ISH, min_size=1, max_size=6).map(".".join))
def test_the_token_parser_raises_only_its_format_error(text: str) -> None:
    refuses_only((TokenFormatError,), lambda: parse_token(text))


@FUZZ
@given(text=st.text(max_size=300) | st.builds(lambda v: json.dumps(v), JSON_VALUES))
def test_strict_json_raises_only_its_error(text: str) -> None:
    refuses_only((strict_json.StrictJsonError,), lambda: strict_json.loads(text))


def test_strict_json_refuses_deep_nesting_and_huge_numbers_cleanly() -> None:
    for text in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000, "9" * 100_000):
        with pytest.raises(strict_json.StrictJsonError):
            strict_json.loads(text)


@FUZZ
@given(text=st.text(max_size=200))
def test_qr_text_reading_raises_only_the_format_error(text: str) -> None:
    refuses_only((TokenFormatError,), lambda: token_from_qr_text(text))


@FUZZ
@given(data=st.data())
def test_claims_of_a_mutated_payload_are_read_or_refused_as_malformed(data: st.DataObject, genuine: dict) -> None:
    payload = data.draw(mutations(payload_of(genuine["token"])))
    if not isinstance(payload, dict):
        return  # the parser refuses non-object payloads before claims are read
    try:
        CertificateClaims.from_payload(payload)
    except TokenFormatError as error:
        assert error.code == "MALFORMED"


# ---------------------------------------------------------------- what other regions send


@FUZZ
@given(data=st.data())
def test_a_trust_list_signed_by_the_pinned_root_but_mutated_is_read_or_refused(
    data: st.DataObject, genuine: dict
) -> None:
    jws = genuine["trust_list"]
    mutated = resign(data.draw(mutations(payload_of(jws))), genuine["root"], header_of(jws))
    refuses_only((TrustListError,), lambda: read_trust_list(mutated, fingerprint=root_fingerprint(genuine["region"])))


@FUZZ
@given(data=st.data())
def test_a_status_answer_signed_by_the_status_key_but_mutated_is_read_or_refused(
    data: st.DataObject, genuine: dict
) -> None:
    region = genuine["region"]
    mutated = sign_payload(genuine["status_key"], region.status_kid, ANSWER_TYPE, data, genuine["status_answer"])
    refuses_only(
        (StatusDataRefused,),
        lambda: read_status_answer(
            mutated,
            region.status_public_jwk,
            issuer=region.code,
            certificate_id=genuine["certificate_id"],
            now=genuine["now"],
        ),
    )


@FUZZ
@given(data=st.data())
def test_a_status_list_signed_by_the_status_key_but_mutated_is_read_or_refused(
    data: st.DataObject, genuine: dict
) -> None:
    region = genuine["region"]
    mutated = sign_payload(genuine["status_key"], region.status_kid, LIST_TYPE, data, genuine["status_list"])
    refuses_only(
        (StatusDataRefused,),
        lambda: read_status_list(mutated, region.status_public_jwk, issuer=region.code, now=genuine["now"]),
    )


@FUZZ
@given(data=st.data())
def test_a_bundle_signed_by_its_exporter_but_mutated_is_read_or_refused(data: st.DataObject, genuine: dict) -> None:
    jws = genuine["bundle"]
    mutated = resign(data.draw(mutations(payload_of(jws))), genuine["status_key"], header_of(jws))
    refuses_only((BundleRefused,), lambda: read_bundle(mutated, fingerprint=root_fingerprint(genuine["region"])))


def sign_payload(key: Any, kid: str, typ: str, data: st.DataObject, jws: str) -> str:
    assert header_of(jws) == {"alg": "EdDSA", "kid": kid, "typ": typ}
    return resign(data.draw(mutations(payload_of(jws))), key, header_of(jws))


@FUZZ
@given(data=st.data())
def test_a_checkpoint_note_mutated_line_by_line_is_read_or_refused(data: st.DataObject, genuine: dict) -> None:
    lines = genuine["checkpoint"].split("\n")
    index = data.draw(st.integers(min_value=0, max_value=len(lines) - 1))
    lines[index] = data.draw(st.text(max_size=80) | SEGMENT_ISH)
    note = "\n".join(lines)
    region = genuine["region"]
    name, key = parse_verifier_key(region_verifier_key(region))
    try:
        text, _signers = open_note(note, {name: key})
        parse_checkpoint(text)
    except NoteError:
        pass


def region_verifier_key(region: Any) -> str:
    from registry.log import log_verifier_key

    key = log_verifier_key(region)
    assert key is not None
    return key


@FUZZ
@given(text=st.text(max_size=200), name=st.text(max_size=20))
def test_note_readers_raise_only_the_note_error(text: str, name: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    refuses_only((NoteError,), lambda: open_note(text, {name or "k": key}))
    refuses_only((NoteError,), lambda: parse_checkpoint(text))
    refuses_only((NoteError,), lambda: parse_verifier_key(text))

"""A verification answer carries an explicit allowlist of fields, and never a full ID number.

Every kind of answer (VALID, INVALID for several reasons, UNDETERMINED, a withheld
NOT_IN_REGISTRY forgery, a PDF upload, the CLI's ``verify --json`` online and offline) is
produced through the real front ends; every key path in it, lists included, must be in
the allowlist below. Adding a field to an answer makes this test fail: widen the
allowlist only after deciding the field is something a verifier needs.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from registry.identifiers import CertificateId
from registry.models import SigningKey
from tests.privacy.conftest import PrivacyRegistry, assert_no_full_id, canary_resident_id, masked
from tests.verify.conftest import decode_parts, forge, with_signature

# Every path an answer may hold: "a.b" for members, "a[]" for a list's items.
ANSWER_FIELDS = frozenset(
    {
        "verdict",
        "code",
        "message",
        "message.en",
        "message.zh",
        "detail",
        "certificate",
        "certificate.id",
        "certificate.type",
        "certificate.type.code",
        "certificate.type.name_zh",
        "certificate.type.name_en",
        "certificate.holder",
        "certificate.holder.name",
        "certificate.holder.id_type",
        "certificate.holder.id_number",
        "certificate.fields",
        "certificate.fields[]",
        "certificate.fields[].name",
        "certificate.fields[].label_zh",
        "certificate.fields[].label_en",
        "certificate.fields[].value",
        "certificate.issued_at",
        "certificate.valid_from",
        "certificate.valid_until",
        "certificate.status",
        "certificate.status.code",
        "certificate.status.name",
        "certificate.status.name_zh",
        "issuer",
        "issuer.region",
        "issuer.region_name",
        "issuer.office",
        "issuer.office_name",
        "issuer.kid",
        "status_source",
        "log",
        "log.index",
        "log.tree_size",
        "log.inclusion_proof",
        "log.inclusion_proof[]",
        "log.checkpoint",
        "checked_at",
    }
)
# POST /api/v1/verify/pdf adds what the PDF itself showed.
PDF_FIELDS = ANSWER_FIELDS | {
    "document",
    "document.source",
    "document.visible_text_checked",
    "document.mismatches",
    "document.mismatches[]",
}
# `verify --bundle` adds the bundle it trusted; checkpoints are keyed by region code.
BUNDLE_FIELDS = ANSWER_FIELDS | {
    "bundle",
    "bundle.issuer",
    "bundle.root_fingerprint",
    "bundle.pinned",
    "bundle.expires_at",
    "bundle.checkpoints",
    "bundle.checkpoints.*",
}
KEYED_BY_DATA = frozenset({"bundle.checkpoints"})

TOP_LEVEL = {"verdict", "code", "message", "detail", "certificate", "issuer", "status_source", "log", "checked_at"}
# What an answer that shows the certificate must show.
CERTIFICATE_SHOWN = {
    "certificate.id",
    "certificate.type.code",
    "certificate.holder.name",
    "certificate.holder.id_type",
    "certificate.holder.id_number",
    "certificate.valid_from",
    "certificate.valid_until",
    "issuer.office",
    "issuer.kid",
}

DL_HOLDER = canary_resident_id("310115", "19910817", "362")
PQ_HOLDER = canary_resident_id("310101", "19780203", "415")
FORGED_HOLDER = canary_resident_id("310104", "20000101", "238")
FORGED_NAME = "伪造者甲"
CANARIES = [DL_HOLDER, PQ_HOLDER, FORGED_HOLDER]


def key_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Every key path in ``value``: ``a.b`` for members, ``a[]`` for list items."""
    if isinstance(value, dict):
        for name, member in value.items():
            label = "*" if prefix in KEYED_BY_DATA else name
            path = f"{prefix}.{label}" if prefix else label
            yield path
            yield from key_paths(member, path)
    elif isinstance(value, list):
        for item in value:
            yield f"{prefix}[]"
            yield from key_paths(item, f"{prefix}[]")


def test_key_paths_see_nested_members_and_list_items() -> None:
    paths = set(key_paths({"a": {"b": [{"c": 1}, 2]}, "d": None}))

    assert paths == {"a", "a.b", "a.b[]", "a.b[].c", "d"}


# ---------------------------------------------------------------- the answers


def _api(registry: PrivacyRegistry, body: dict[str, Any]) -> dict[str, Any]:
    response = registry.client.post("/api/v1/verify", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json  # type: ignore[no-any-return]


def _cli(registry: PrivacyRegistry, *args: str) -> dict[str, Any]:
    result = registry.runner.invoke(args=["verify", *args, "--json"])
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def _pdf(registry: PrivacyRegistry, issued: dict[str, Any]) -> dict[str, Any]:
    pdf = registry.client.get(issued["links"]["pdf"], headers=registry.office.auth)
    assert pdf.status_code == 200
    response = registry.client.post(
        "/api/v1/verify/pdf",
        data={"file": (io.BytesIO(pdf.get_data()), "c.pdf", "application/pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json  # type: ignore[no-any-return]


def _office_key(registry: PrivacyRegistry) -> Any:
    with registry.deployment.read_session() as session:
        row = session.get(SigningKey, registry.office.kid)
        assert row is not None
        return registry.deployment.keyring.private_key(row.kid, lambda: row.private_key)


@pytest.fixture(scope="module")
def answers(privacy_registry: PrivacyRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every kind of answer, each produced by a real front end, by name."""
    registry = privacy_registry
    dl = registry.issue("DL", DL_HOLDER)
    pq = registry.issue("PQ", PQ_HOLDER)
    bl = registry.issue("BL")
    revoked = registry.issue("DL", DL_HOLDER)
    registry.change_status(revoked["id"], "REVOKED", f"持证人 {DL_HOLDER} 违法")
    suspended = registry.issue("PQ", PQ_HOLDER)
    registry.change_status(suspended["id"], "SUSPENDED", "暂扣")
    expired = registry.issue("DL", DL_HOLDER, valid_from="2020-01-01T00:00:00Z", valid_until="2021-01-01T00:00:00Z")
    not_yet = registry.issue("DL", DL_HOLDER, valid_from="2030-01-01T00:00:00Z")

    header, payload, signature = decode_parts(dl["token"])
    forged_payload = {
        **payload,
        "jti": str(CertificateId.new("DL", registry.office.code)),
        "h": {"n": FORGED_NAME, "i": FORGED_HOLDER},
    }
    found: dict[str, dict[str, Any]] = {
        "api-valid": _api(registry, {"token": dl["token"]}),
        "api-valid-qr-text": _api(registry, {"qr_text": pq["qr_text"]}),
        "api-valid-organisation": _api(registry, {"token": bl["token"]}),
        "api-invalid-revoked": _api(registry, {"token": revoked["token"]}),
        "api-invalid-suspended": _api(registry, {"token": suspended["token"]}),
        "api-invalid-expired": _api(registry, {"token": expired["token"]}),
        "api-invalid-not-yet-valid": _api(registry, {"token": not_yet["token"]}),
        "api-invalid-signature": _api(
            registry, {"token": with_signature(header, {**payload, "h": {"n": FORGED_NAME, "i": DL_HOLDER}}, signature)}
        ),
        "api-invalid-key-unknown": _api(
            registry, {"token": forge({**header, "kid": "unknown-kid-0000"}, payload, _office_key(registry))}
        ),
        "api-invalid-malformed": _api(registry, {"token": f"not.a.token{DL_HOLDER}"}),
        "api-invalid-too-large": _api(registry, {"token": "a" * 5000}),
        # Signed by the office's real key but never registered: a forgery, content withheld.
        "api-not-in-registry": _api(registry, {"token": forge(header, forged_payload, _office_key(registry))}),
        "pdf-valid": _pdf(registry, dl),
        "pdf-invalid-revoked": _pdf(registry, revoked),
        "cli-valid": _cli(registry, dl["token"]),
        "cli-valid-qr-text": _cli(registry, pq["qr_text"]),
        "cli-invalid-revoked": _cli(registry, revoked["token"]),
    }

    bundle = tmp_path_factory.mktemp("bundle") / "bundle.jws"
    exported = registry.runner.invoke(args=["bundle", "export", "--out", str(bundle), "--lifetime", "1h"])
    assert exported.exit_code == 0, exported.stderr
    found["cli-bundle-valid"] = _cli(registry, dl["token"], "--bundle", str(bundle))
    start = registry.clock.moment
    registry.clock.advance(hours=2)
    try:
        found["cli-bundle-undetermined"] = _cli(registry, dl["token"], "--bundle", str(bundle))
    finally:
        registry.clock.moment = start

    # A registry whose certificate table cannot be read (a failed restore, a broken
    # replica): the signature checks out but steps 7-8 cannot answer.
    with registry.deployment.session() as session:
        session.execute(text("ALTER TABLE certificate RENAME TO certificate_away"))
        session.commit()
    try:
        found["api-undetermined"] = _api(registry, {"token": pq["token"]})
    finally:
        with registry.deployment.session() as session:
            session.execute(text("ALTER TABLE certificate_away RENAME TO certificate"))
            session.commit()
    return found


EXPECTED = {
    "api-valid": ("VALID", "OK", True),
    "api-valid-qr-text": ("VALID", "OK", True),
    "api-valid-organisation": ("VALID", "OK", True),
    "api-invalid-revoked": ("INVALID", "REVOKED", True),
    "api-invalid-suspended": ("INVALID", "SUSPENDED", True),
    "api-invalid-expired": ("INVALID", "EXPIRED", True),
    "api-invalid-not-yet-valid": ("INVALID", "NOT_YET_VALID", True),
    "api-invalid-signature": ("INVALID", "SIG_INVALID", False),
    "api-invalid-key-unknown": ("INVALID", "KEY_UNKNOWN", False),
    "api-invalid-malformed": ("INVALID", "MALFORMED", False),
    "api-invalid-too-large": ("INVALID", "TOO_LARGE", False),
    "api-not-in-registry": ("INVALID", "NOT_IN_REGISTRY", False),
    "api-undetermined": ("UNDETERMINED", "STATUS_UNAVAILABLE", True),
    "pdf-valid": ("VALID", "OK", True),
    "pdf-invalid-revoked": ("INVALID", "REVOKED", True),
    "cli-valid": ("VALID", "OK", True),
    "cli-valid-qr-text": ("VALID", "OK", True),
    "cli-invalid-revoked": ("INVALID", "REVOKED", True),
    "cli-bundle-valid": ("VALID", "OK", True),
    "cli-bundle-undetermined": ("UNDETERMINED", "TRUSTLIST_STALE", False),
}


def allowed_fields(name: str) -> frozenset[str]:
    if name.startswith("pdf-"):
        return PDF_FIELDS
    if name.startswith("cli-bundle-"):
        return BUNDLE_FIELDS
    return ANSWER_FIELDS


@pytest.mark.parametrize("name", list(EXPECTED))
def test_an_answer_holds_only_allowlisted_fields(answers: dict[str, dict[str, Any]], name: str) -> None:
    answer = answers[name]
    verdict, code, shows_certificate = EXPECTED[name]

    assert (answer["verdict"], answer["code"]) == (verdict, code)
    paths = set(key_paths(answer))
    assert paths <= allowed_fields(name), f"fields outside the allowlist: {sorted(paths - allowed_fields(name))}"
    assert set(answer) >= TOP_LEVEL
    if shows_certificate:
        assert paths >= CERTIFICATE_SHOWN
    else:
        assert answer["certificate"] is None
    if name.startswith("pdf-"):
        assert set(answer["document"]) == {"source", "visible_text_checked", "mismatches"}
    if name.startswith("cli-bundle-"):
        assert "bundle.checkpoints.*" in paths


@pytest.mark.parametrize("name", list(EXPECTED))
def test_an_answer_never_holds_a_full_id_number(answers: dict[str, dict[str, Any]], name: str) -> None:
    answer = answers[name]

    assert_no_full_id(json.dumps(answer, ensure_ascii=False), CANARIES, name)
    holder = (answer["certificate"] or {}).get("holder")
    if holder is not None and holder["id_type"] == "RIC":
        assert holder["id_number"] in {masked(DL_HOLDER), masked(PQ_HOLDER)}


def test_a_withheld_forgery_shows_nothing_of_its_content(answers: dict[str, dict[str, Any]]) -> None:
    shown = json.dumps(answers["api-not-in-registry"], ensure_ascii=False)

    assert FORGED_NAME not in shown
    assert masked(FORGED_HOLDER) not in shown
    assert answers["api-not-in-registry"]["issuer"] is not None  # the key that signed it is named

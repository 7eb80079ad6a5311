"""The ordered verifier (DESIGN "Verification"): genuine certificates, hostile tokens forged
with real keys, the fixed clock, the lifecycle, key entitlement and the registry check.

Every case runs on SQLite and PostgreSQL (the ``database_url`` fixture).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from registry.claims import CertificateClaims, HolderClaims
from registry.demo import SAMPLE_REQUESTS
from registry.identifiers import CertificateId
from registry.offices import rotate_key
from signing.algorithms import PrivateKey, generate_private_key
from signing.jwk import key_id, public_jwk
from tests.verify.conftest import (
    LEEWAY,
    Genuine,
    b64url,
    compact_json,
    decode_parts,
    forge,
    unb64url,
    with_signature,
)
from verify.codes import Verdict
from verify.errors import VerificationFailed
from verify.report import VerificationReport, answer
from verify.verifier import Verifier, require_valid

Verify = Callable[[str], VerificationReport]
Issue = Callable[..., dict[str, Any]]

START = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)  # the fixed clock's start (tests/conftest.py)


def header_for(kid: str, alg: str = "EdDSA") -> dict[str, str]:
    return {"alg": alg, "kid": kid, "typ": "ecert"}


# The QR field values issuance signs for each sample, in catalog order.
QR_VALUES = {"BL": ("李明",), "DL": ("C1",), "PQ": ("电工", "三级/高级工")}


def issuance_payload(type_code: str, office_code: str, *, issued_at: datetime) -> dict[str, Any]:
    """Claims built the way issuance builds them, for a fresh identifier the registry never saw."""
    claims = CertificateClaims(
        region="310000",
        certificate_id=str(CertificateId.new(type_code, office_code)),
        issued_at=int(issued_at.timestamp()),
        not_before=None,
        expires=None,
        holder=HolderClaims(name="张伟", id_number="3101**********4415"),
        fields=QR_VALUES[type_code],
    )
    return claims.to_payload()


# ---------------------------------------------------------------- genuine certificates

SAMPLES = [
    pytest.param(
        "BL",
        "营业执照",
        "91310115MA1K3YJ2X5",
        {"legal_representative": "李明"},
        id="BL-business-licence",
    ),
    pytest.param(
        "DL",
        "机动车驾驶证",
        "3101**********3526",
        {"vehicle_class": "C1"},
        id="DL-driving-licence",
    ),
    pytest.param(
        "PQ",
        "职业资格证书",
        "3101**********4415",
        {"occupation": "电工", "level": "三级/高级工"},
        id="PQ-professional-qualification",
    ),
]


@pytest.mark.parametrize(("type_code", "name_zh", "shown_id_number", "qr_fields"), SAMPLES)
def test_genuine_certificate_is_valid_and_shows_its_signed_data(
    type_code: str,
    name_zh: str,
    shown_id_number: str,
    qr_fields: dict[str, Any],
    issue: Issue,
    verify: Verify,
    office: Any,
) -> None:
    issued = issue(type_code, office)

    report = verify(issued["token"])

    assert (report.verdict, report.code) == (Verdict.VALID, "OK")
    shown = answer(report)
    certificate = shown["certificate"]
    assert certificate["id"] == issued["id"]
    assert certificate["type"]["code"] == type_code
    assert certificate["type"]["name_zh"] == name_zh
    assert certificate["holder"]["name"] == SAMPLE_REQUESTS[type_code]["holder"]["name"]
    assert certificate["holder"]["id_number"] == shown_id_number
    assert {field["name"]: field["value"] for field in certificate["fields"]} == qr_fields
    assert certificate["issued_at"] == "2026-03-01T08:00:00Z"
    assert certificate["status"] == {"code": "01", "name": "VALID", "name_zh": "有效"}
    assert shown["issuer"] == {
        "region": "310000",
        "region_name": "上海市",
        "office": office.code,
        "office_name": "上海市示范发证中心",
        "kid": office.kid,
    }
    assert shown["checked_at"] == "2026-03-01T08:00:00Z"


@pytest.mark.parametrize("type_code", ["DL", "PQ"])
def test_full_resident_id_number_never_appears_in_the_answer(
    type_code: str, issue: Issue, verify: Verify, office: Any
) -> None:
    issued = issue(type_code, office)
    full_number = SAMPLE_REQUESTS[type_code]["holder"]["id_number"]

    text = json.dumps(answer(verify(issued["token"])), ensure_ascii=False)

    assert full_number not in text
    assert full_number[6:14] not in text  # the birth date


def test_es256_office_certificate_is_valid(issue: Issue, verify: Verify, es256_office: Any) -> None:
    issued = issue("DL", es256_office)
    assert decode_parts(issued["token"])[0]["alg"] == "ES256"

    report = verify(issued["token"])

    assert (report.verdict, report.code) == (Verdict.VALID, "OK")
    assert answer(report)["issuer"]["kid"] == es256_office.kid


def test_qr_text_is_verified_like_its_token(issue: Issue, session: Any, clock: Any, office: Any) -> None:
    issued = issue("PQ", office)
    assert issued["qr_text"] == f"https://ecert.sh.example/v#{issued['token']}"
    verifier = Verifier(session, now=clock(), leeway=LEEWAY)

    from_qr = verifier.verify_qr_text(issued["qr_text"])

    assert (from_qr.verdict, from_qr.code) == (Verdict.VALID, "OK")
    assert answer(from_qr) == answer(verifier.verify(issued["token"]))


@pytest.mark.parametrize(
    "qr_text",
    [
        pytest.param("{token}", id="bare-token-is-not-qr-text"),
        pytest.param("ftp://ecert.sh.example/v#{token}", id="not-http"),
        pytest.param("https://ecert.sh.example/verify#{token}", id="no-v-fragment"),
        pytest.param("/v#{token}", id="no-base-url"),
    ],
)
def test_malformed_qr_text_is_invalid(qr_text: str, issue: Issue, session: Any, clock: Any, office: Any) -> None:
    token = issue("DL", office)["token"]

    report = Verifier(session, now=clock(), leeway=LEEWAY).verify_qr_text(qr_text.format(token=token))

    assert (report.verdict, report.code) == (Verdict.INVALID, "MALFORMED")
    assert answer(report)["certificate"] is None


# ---------------------------------------------------------------- hostile tokens (steps 1-4)


def tampered_holder_name(g: Genuine) -> str:
    payload = {**g.payload, "h": {**g.payload["h"], "n": "李四"}}
    return with_signature(g.header, payload, g.signature)


def tampered_expiry(g: Genuine) -> str:
    return with_signature(g.header, {**g.payload, "exp": g.payload["exp"] + 10 * 365 * 86400}, g.signature)


def spliced_payload_of_another_certificate(g: Genuine) -> str:
    other_header, other_payload, _ = g.other_token.split(".")
    return f"{other_header}.{other_payload}.{g.token.split('.')[2]}"


def flipped_signature_bit(g: Genuine) -> str:
    signature = bytes([g.signature[0] ^ 1]) + g.signature[1:]
    return with_signature(g.header, g.payload, signature)


def empty_signature(g: Genuine) -> str:
    return with_signature(g.header, g.payload, b"")


def header_members_reordered(g: Genuine) -> str:
    header = {"typ": "ecert", "kid": g.kid, "alg": "EdDSA"}
    return f"{b64url(compact_json(header))}.{g.token.split('.', 1)[1]}"


def header_with_spaces(g: Genuine) -> str:
    header = json.dumps(g.header).encode()  # same members, default separators with spaces
    return f"{b64url(header)}.{g.token.split('.', 1)[1]}"


def other_key_claiming_same_kid(g: Genuine) -> str:
    return forge(g.header, g.payload, generate_private_key("EdDSA"))


def unknown_kid(g: Genuine) -> str:
    attacker = generate_private_key("EdDSA")
    return forge(header_for(key_id(attacker.public_key())), g.payload, attacker)


def region_root_key(g: Genuine) -> str:
    return forge(header_for(g.root_kid), g.payload, g.root_key)


def alg_none_empty_signature(g: Genuine) -> str:
    return with_signature(header_for(g.kid, "none"), g.payload, b"")


def alg_none_signature_kept(g: Genuine) -> str:
    return with_signature(header_for(g.kid, "none"), g.payload, g.signature)


def alg_lowercase_eddsa(g: Genuine) -> str:
    return forge(header_for(g.kid, "eddsa"), g.payload, g.office_key)


def _hs256_with(secret_of: Callable[[Any], bytes]) -> Callable[[Genuine], str]:
    def forged(g: Genuine) -> str:
        header = b64url(compact_json(header_for(g.kid, "HS256")))
        payload = b64url(compact_json(g.payload))
        secret = secret_of(g.office_key.public_key())
        mac = hmac.new(secret, f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64url(mac)}"

    return forged


hs256_raw_public_key = _hs256_with(
    lambda key: key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
)
hs256_pem_public_key = _hs256_with(
    lambda key: key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
)
hs256_jwk_public_key = _hs256_with(lambda key: json.dumps(public_jwk(key)).encode())


def es256_header_on_eddsa_key(g: Genuine) -> str:
    return forge(header_for(g.kid, "ES256"), g.payload, generate_private_key("ES256"))


def duplicate_kid_in_header(g: Genuine) -> str:
    header = f'{{"alg":"EdDSA","kid":"{g.kid}","typ":"ecert","kid":"{g.root_kid}"}}'
    return forge(header, g.payload, g.office_key)


def duplicate_alg_in_header(g: Genuine) -> str:
    header = f'{{"alg":"none","kid":"{g.kid}","typ":"ecert","alg":"EdDSA"}}'
    return forge(header, g.payload, g.office_key)


def duplicate_jti_in_payload(g: Genuine) -> str:
    body = compact_json(g.payload).decode()
    other_id = str(CertificateId.new("DL", CertificateId.parse(g.payload["jti"]).office_code))
    return forge(g.header, body[:-1] + f',"jti":"{other_id}"}}', g.office_key)


def duplicate_holder_name_in_payload(g: Genuine) -> str:
    body = compact_json(g.payload).decode()
    name = json.dumps(g.payload["h"]["n"], ensure_ascii=False)
    body = body.replace(f'"n":{name}', f'"n":{name},"n":"李四"', 1)
    return forge(g.header, body, g.office_key)


def padded_signature(g: Genuine) -> str:
    assert len(g.token.split(".")[2]) % 4 == 2  # 64 bytes: 86 characters, two of padding
    return g.token + "=="


def signature_with_nonzero_trailing_bits(g: Genuine) -> str:
    # The last of 86 characters carries 2 bits of data and 4 zero bits; setting one of
    # those zero bits leaves the decoded signature, and so the signature check, unchanged.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(g.token[-1])
    assert last & 0b1111 == 0
    token = g.token[:-1] + alphabet[last | 1]
    assert unb64url(token.split(".")[2]) == g.signature
    return token


def standard_base64_alphabet(g: Genuine) -> str:
    header, payload, signature = g.token.split(".")
    standard = payload.replace("-", "+").replace("_", "/")
    assert standard != payload
    return f"{header}.{standard}.{signature}"


def line_break_inside(g: Genuine) -> str:
    header, rest = g.token.split(".", 1)
    return f"{header}.{rest[:40]}\n{rest[40:]}"


def four_segments(g: Genuine) -> str:
    return g.token + "." + b64url(b"extra")


def two_segments(g: Genuine) -> str:
    return g.token.rsplit(".", 1)[0]


def payload_is_an_array(g: Genuine) -> str:
    return forge(g.header, compact_json([g.payload]), g.office_key)


def oversized_token(g: Genuine) -> str:
    token = forge(g.header, {**g.payload, "f": ["C1" * 1000, "x" * 2000]}, g.office_key)
    assert len(token) > 4096
    return token


def _with_typ(typ: Any) -> Callable[[Genuine], str]:
    def forged(g: Genuine) -> str:
        return forge({**g.header, "typ": typ}, g.payload, g.office_key)

    return forged


def _with_extra_header(name: str, value: Callable[[Genuine], Any]) -> Callable[[Genuine], str]:
    def forged(g: Genuine) -> str:
        return forge({**g.header, name: value(g)}, g.payload, g.office_key)

    return forged


def kid_with_nul_character(g: Genuine) -> str:
    return forge({**g.header, "kid": g.kid[:4] + "\u0000"}, g.payload, g.office_key)


def jti_with_fullwidth_version_digits(g: Genuine) -> str:
    type_code, office_code, serial, _version, check = g.payload["jti"].split(".")
    return forge(g.header, {**g.payload, "jti": f"{type_code}.{office_code}.{serial}.０１.{check}"}, g.office_key)


def foreign_region(g: Genuine) -> str:
    return forge(g.header, {**g.payload, "iss": "110000"}, g.office_key)


HOSTILE = [
    pytest.param(tampered_holder_name, "SIG_INVALID", id="payload-holder-changed-signature-kept"),
    pytest.param(tampered_expiry, "SIG_INVALID", id="payload-expiry-extended-signature-kept"),
    pytest.param(spliced_payload_of_another_certificate, "SIG_INVALID", id="payload-spliced-from-other-certificate"),
    pytest.param(flipped_signature_bit, "SIG_INVALID", id="signature-bit-flipped"),
    pytest.param(empty_signature, "SIG_INVALID", id="signature-empty"),
    pytest.param(header_members_reordered, "SIG_INVALID", id="header-rewritten-members-reordered"),
    pytest.param(header_with_spaces, "SIG_INVALID", id="header-rewritten-with-spaces"),
    pytest.param(other_key_claiming_same_kid, "SIG_INVALID", id="other-key-same-kid"),
    pytest.param(unknown_kid, "KEY_UNKNOWN", id="unknown-kid"),
    pytest.param(region_root_key, "KEY_UNKNOWN", id="region-root-key-signs-certificate"),
    pytest.param(alg_none_empty_signature, "ALG_NOT_ALLOWED", id="alg-none-empty-signature"),
    pytest.param(alg_none_signature_kept, "ALG_NOT_ALLOWED", id="alg-none-signature-kept"),
    pytest.param(alg_lowercase_eddsa, "ALG_NOT_ALLOWED", id="alg-eddsa-lowercase"),
    pytest.param(hs256_raw_public_key, "ALG_NOT_ALLOWED", id="hs256-keyed-with-raw-public-key"),
    pytest.param(hs256_pem_public_key, "ALG_NOT_ALLOWED", id="hs256-keyed-with-pem-public-key"),
    pytest.param(hs256_jwk_public_key, "ALG_NOT_ALLOWED", id="hs256-keyed-with-jwk-public-key"),
    pytest.param(es256_header_on_eddsa_key, "ALG_NOT_ALLOWED", id="es256-header-on-eddsa-key"),
    pytest.param(duplicate_kid_in_header, "DUPLICATE_MEMBER", id="header-duplicate-kid"),
    pytest.param(duplicate_alg_in_header, "DUPLICATE_MEMBER", id="header-duplicate-alg"),
    pytest.param(duplicate_jti_in_payload, "DUPLICATE_MEMBER", id="payload-duplicate-jti"),
    pytest.param(duplicate_holder_name_in_payload, "DUPLICATE_MEMBER", id="payload-duplicate-nested-holder-name"),
    pytest.param(padded_signature, "MALFORMED", id="base64-padded"),
    pytest.param(signature_with_nonzero_trailing_bits, "MALFORMED", id="base64-nonzero-trailing-bits"),
    pytest.param(standard_base64_alphabet, "MALFORMED", id="base64-standard-alphabet"),
    pytest.param(line_break_inside, "MALFORMED", id="line-break-inside"),
    pytest.param(four_segments, "MALFORMED", id="four-segments"),
    pytest.param(two_segments, "MALFORMED", id="two-segments"),
    pytest.param(payload_is_an_array, "MALFORMED", id="payload-not-an-object"),
    pytest.param(oversized_token, "TOO_LARGE", id="oversized-signed-token"),
    pytest.param(_with_typ("JWT"), "TYP_INVALID", id="typ-JWT"),
    pytest.param(_with_typ("ECERT"), "TYP_INVALID", id="typ-upper-case"),
    pytest.param(_with_extra_header("jku", lambda g: "https://evil.example/jwks.json"), "HEADER_FORBIDDEN", id="jku"),
    pytest.param(_with_extra_header("x5c", lambda g: ["MIIB"]), "HEADER_FORBIDDEN", id="x5c"),
    pytest.param(_with_extra_header("crit", lambda g: ["exp"]), "HEADER_FORBIDDEN", id="crit"),
    pytest.param(
        _with_extra_header("jwk", lambda g: public_jwk(g.office_key.public_key())), "HEADER_FORBIDDEN", id="jwk"
    ),
    pytest.param(foreign_region, "REGION_NOT_RECOGNISED", id="foreign-region-signed-by-our-key"),
    pytest.param(jti_with_fullwidth_version_digits, "MALFORMED", id="jti-fullwidth-version-digits"),
]


@pytest.mark.parametrize(("forge_token", "code"), HOSTILE)
def test_hostile_token_is_invalid_and_shows_no_certificate_data(
    forge_token: Callable[[Genuine], str], code: str, genuine: Genuine, verify: Verify
) -> None:
    report = verify(forge_token(genuine))

    assert (report.verdict, report.code) == (Verdict.INVALID, code), report.detail
    # Every one of these fails at step 1-4: nothing unsigned may be shown.
    shown = answer(report)
    assert shown["certificate"] is None
    assert shown["issuer"] is None
    assert "李四" not in json.dumps(shown, ensure_ascii=False)


def test_kid_with_nul_character_is_invalid_on_every_database(genuine: Genuine, verify: Verify) -> None:
    """An unsigned token must not be able to make the answer UNDETERMINED (an "outage")."""
    report = verify(kid_with_nul_character(genuine))

    assert report.verdict is Verdict.INVALID
    assert report.code in {"KEY_UNKNOWN", "MALFORMED"}


def test_genuine_token_behind_the_hostile_cases_is_valid(genuine: Genuine, verify: Verify) -> None:
    """The hostile table fails only because of what each case changes."""
    assert verify(genuine.token).code == "OK"
    assert verify(genuine.other_token).code == "OK"


@pytest.mark.parametrize(
    ("length", "code"),
    [pytest.param(4096, "MALFORMED", id="4096-chars-is-parsed"), pytest.param(4097, "TOO_LARGE", id="4097-chars")],
)
def test_size_cap_is_checked_before_anything_is_decoded(length: int, code: str, session: Any, clock: Any) -> None:
    report = Verifier(session, now=clock(), leeway=LEEWAY).verify("a" * length)

    assert (report.verdict, report.code) == (Verdict.INVALID, code)


def test_eddsa_header_on_es256_key_is_refused(es256_office: Any, private_key: Any, verify: Verify) -> None:
    payload = issuance_payload("DL", es256_office.code, issued_at=START)

    token = forge(header_for(es256_office.kid, "EdDSA"), payload, generate_private_key("EdDSA"))

    assert verify(token).code == "ALG_NOT_ALLOWED"


def test_der_encoded_es256_signature_by_the_real_key_is_refused(
    issue: Issue, es256_office: Any, private_key: Any, verify: Verify
) -> None:
    """RFC 7518 §3.4: ES256 signatures are raw r||s; a DER signature is not accepted."""
    token = issue("DL", es256_office)["token"]
    signing_input = token.rsplit(".", 1)[0]
    der = private_key(es256_office.kid).sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))

    report = verify(f"{signing_input}.{b64url(der)}")

    assert (report.verdict, report.code) == (Verdict.INVALID, "SIG_INVALID")


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def test_respelt_es256_signature_is_the_same_certificate(issue: Issue, es256_office: Any, verify: Verify) -> None:
    """ECDSA signatures are malleable: (r, n - s) verifies too. The spec counts the two
    spellings as one token: same signed bytes, same certificate, same status."""
    token = issue("DL", es256_office)["token"]
    signing_input, signature = token.rsplit(".", 1)
    raw = unb64url(signature)
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    respelt = f"{signing_input}.{b64url(r + (P256_ORDER - s).to_bytes(32, 'big'))}"
    assert respelt != token

    report = verify(respelt)

    assert (report.verdict, report.code) == (Verdict.VALID, "OK")
    assert report.claims is not None and report.claims == verify(token).claims


# ---------------------------------------------------------------- validity window on the fixed clock


@pytest.mark.parametrize(
    ("after_expiry", "code"),
    [
        pytest.param(-1, "OK", id="1s-before-exp"),
        pytest.param(0, "OK", id="at-exp-inside-leeway"),
        pytest.param(59, "OK", id="exp-plus-leeway-minus-1s"),
        pytest.param(60, "EXPIRED", id="exp-plus-leeway"),
        pytest.param(61, "EXPIRED", id="exp-plus-leeway-plus-1s"),
        pytest.param(365 * 86400, "EXPIRED", id="a-year-after-exp"),
    ],
)
def test_expiry_is_judged_with_60s_leeway(
    after_expiry: int, code: str, issue: Issue, verify: Verify, office: Any, clock: Any
) -> None:
    token = issue("DL", office)["token"]
    expires = decode_parts(token)[1]["exp"]

    clock.advance(seconds=expires + after_expiry - clock().timestamp())

    report = verify(token)
    assert report.code == code
    assert report.verdict is (Verdict.VALID if code == "OK" else Verdict.INVALID)


@pytest.mark.parametrize(
    ("before_start", "code"),
    [
        pytest.param(None, "NOT_YET_VALID", id="at-issue-a-month-early"),
        pytest.param(61, "NOT_YET_VALID", id="nbf-minus-leeway-minus-1s"),
        pytest.param(60, "OK", id="nbf-minus-leeway"),
        pytest.param(59, "OK", id="nbf-minus-leeway-plus-1s"),
        pytest.param(0, "OK", id="at-nbf"),
    ],
)
def test_future_validity_start_is_judged_with_60s_leeway(
    before_start: int | None, code: str, issue: Issue, verify: Verify, office: Any, clock: Any
) -> None:
    token = issue("PQ", office, valid_from="2026-04-01")["token"]
    not_before = decode_parts(token)[1]["nbf"]
    assert not_before == int(datetime(2026, 3, 31, 16, 0, tzinfo=UTC).timestamp())  # 1 April, China time

    if before_start is not None:
        clock.advance(seconds=not_before - before_start - clock().timestamp())

    report = verify(token)
    assert report.code == code
    if code == "NOT_YET_VALID":
        assert report.verdict is Verdict.INVALID
        assert answer(report)["certificate"]["valid_from"] == "2026-03-31T16:00:00Z"


# ---------------------------------------------------------------- lifecycle (step 8)

STATUSES = [
    pytest.param("SUSPENDED", "02", "暂扣", id="SUSPENDED"),
    pytest.param("WITHDRAWN", "03", "撤销", id="WITHDRAWN"),
    pytest.param("CANCELLED", "04", "注销", id="CANCELLED"),
    pytest.param("EXPIRED", "05", "失效", id="EXPIRED"),
    pytest.param("TRANSFERRED", "06", "转出", id="TRANSFERRED"),
    pytest.param("REVOKED", "07", "吊销", id="REVOKED"),
]


@pytest.mark.parametrize(("status", "national_code", "name_zh"), STATUSES)
def test_status_change_makes_the_certificate_invalid_with_that_code(
    status: str,
    national_code: str,
    name_zh: str,
    issue: Issue,
    change_status: Issue,
    verify: Verify,
    office: Any,
) -> None:
    issued = issue("BL", office)
    change_status(office, issued["id"], status)

    report = verify(issued["token"])

    assert (report.verdict, report.code) == (Verdict.INVALID, status)
    assert answer(report)["certificate"]["status"] == {"code": national_code, "name": status, "name_zh": name_zh}


def test_reinstated_certificate_is_valid_again(
    issue: Issue, change_status: Issue, verify: Verify, office: Any, clock: Any
) -> None:
    issued = issue("DL", office)
    change_status(office, issued["id"], "SUSPENDED")
    assert verify(issued["token"]).code == "SUSPENDED"

    clock.advance(days=30)
    change_status(office, issued["id"], "VALID", reason="暂扣期满")

    report = verify(issued["token"])
    assert (report.verdict, report.code) == (Verdict.VALID, "OK")
    assert answer(report)["certificate"]["status"]["code"] == "01"


def test_status_of_one_certificate_does_not_touch_another(
    issue: Issue, change_status: Issue, verify: Verify, office: Any
) -> None:
    revoked = issue("DL", office)
    kept = issue("DL", office)
    change_status(office, revoked["id"], "REVOKED")

    assert verify(revoked["token"]).code == "REVOKED"
    assert verify(kept["token"]).code == "OK"


# ---------------------------------------------------------------- key entitlement (step 5)

ENTITLEMENT = [
    pytest.param("other_office", "PQ", "other_office", 0, "TYPE_MISMATCH", id="DL-only-key-signs-PQ"),
    pytest.param("other_office", "DL", "office", 0, "ISSUER_MISMATCH", id="jti-names-another-office"),
    pytest.param("office", "DL", "office", -1, "KEY_NOT_VALID_AT_IAT", id="iat-1s-before-key-not-before"),
    pytest.param("office", "DL", "office", -86400, "KEY_NOT_VALID_AT_IAT", id="iat-a-day-before-key"),
    pytest.param("office", "DL", "office", 0, "NOT_IN_REGISTRY", id="iat-at-key-not-before-but-unregistered"),
    pytest.param("office", "DL", "office", 61, "NOT_YET_VALID", id="iat-beyond-leeway-in-future"),
]


@pytest.mark.parametrize(("signer", "type_code", "named_office", "iat_offset", "code"), ENTITLEMENT)
def test_token_signed_by_a_real_key_is_checked_for_entitlement(
    signer: str,
    type_code: str,
    named_office: str,
    iat_offset: int,
    code: str,
    office: Any,
    other_office: Any,
    private_key: Callable[[str], PrivateKey],
    verify: Verify,
) -> None:
    offices = {"office": office, "other_office": other_office}
    signing_office = offices[signer]
    payload = issuance_payload(type_code, offices[named_office].code, issued_at=START + timedelta(seconds=iat_offset))

    report = verify(forge(header_for(signing_office.kid), payload, private_key(signing_office.kid)))

    assert (report.verdict, report.code) == (Verdict.INVALID, code), report.detail
    # The signature verified, so the signed data is shown, with the key's true office;
    # except for an unregistered token, a forgery, whose content is withheld.
    shown = answer(report)
    if code == "NOT_IN_REGISTRY":
        assert shown["certificate"] is None
    else:
        assert shown["certificate"]["id"] == payload["jti"]
    assert shown["issuer"]["office"] == signing_office.code


LAST_SECOND_OF_9999 = 253402300799


@pytest.mark.parametrize(
    ("claim", "when", "code"),
    [
        pytest.param("iat", LAST_SECOND_OF_9999 + 1, "MALFORMED", id="iat-year-10000"),
        pytest.param("nbf", LAST_SECOND_OF_9999 + 1, "MALFORMED", id="nbf-year-10000"),
        pytest.param("exp", LAST_SECOND_OF_9999 + 1, "MALFORMED", id="exp-year-10000"),
        pytest.param("exp", 2**39, "MALFORMED", id="exp-year-19391"),
        pytest.param("iat", LAST_SECOND_OF_9999, "NOT_YET_VALID", id="iat-last-second-of-9999"),
        pytest.param("exp", LAST_SECOND_OF_9999, "NOT_IN_REGISTRY", id="exp-last-second-of-9999"),
    ],
)
def test_far_future_time_signed_by_a_real_key_is_answered_not_raised(
    claim: str, when: int, code: str, office: Any, private_key: Callable[[str], PrivateKey], verify: Verify
) -> None:
    """Times a datetime cannot hold (after 9999) are malformed; the verifier never raises."""
    payload = {**issuance_payload("DL", office.code, issued_at=START), claim: when}
    token = forge(header_for(office.kid), payload, private_key(office.kid))

    report = verify(token)

    assert (report.verdict, report.code) == (Verdict.INVALID, code)
    assert answer(report)["code"] == code


def test_rotation_keeps_earlier_certificates_valid_and_retires_the_old_key(
    issue: Issue,
    verify: Verify,
    office: Any,
    session: Any,
    keyring: Any,
    clock: Any,
    private_key: Callable[[str], PrivateKey],
) -> None:
    before = issue("DL", office)
    old_key = private_key(office.kid)
    clock.advance(hours=1)
    retired, new = rotate_key(session, keyring, office.office, algorithm=None, now=clock(), actor="test")
    session.commit()
    assert retired is not None and retired.kid == office.kid
    clock.advance(seconds=1)

    after = issue("DL", office)

    assert verify(before["token"]).code == "OK"
    assert decode_parts(after["token"])[0]["kid"] == new.kid
    assert verify(after["token"]).code == "OK"
    dated_after_retirement = issuance_payload("DL", office.code, issued_at=clock())
    assert verify(forge(header_for(office.kid), dated_after_retirement, old_key)).code == "KEY_NOT_VALID_AT_IAT"
    # Backdating a forgery into the old key's window gets past step 5 but not the registry.
    backdated = issuance_payload("DL", office.code, issued_at=START + timedelta(minutes=30))
    assert verify(forge(header_for(office.kid), backdated, old_key)).code == "NOT_IN_REGISTRY"


# ---------------------------------------------------------------- registry (step 7)


def never_registered(g: Genuine) -> str:
    payload = issuance_payload("DL", CertificateId.parse(g.payload["jti"]).office_code, issued_at=START)
    return forge(g.header, payload, g.office_key)


def registered_id_other_holder(g: Genuine) -> str:
    return forge(g.header, {**g.payload, "h": {**g.payload["h"], "n": "李四"}}, g.office_key)


def registered_id_extended_expiry(g: Genuine) -> str:
    return forge(g.header, {**g.payload, "exp": g.payload["exp"] + 10 * 365 * 86400}, g.office_key)


def registered_id_other_fields(g: Genuine) -> str:
    assert g.payload["f"] == ["C1"]
    return forge(g.header, {**g.payload, "f": ["A1"]}, g.office_key)


def same_claims_reserialised(g: Genuine) -> str:
    return forge(g.header, json.dumps(g.payload, ensure_ascii=True, sort_keys=True), g.office_key)


REGISTRY = [
    pytest.param(never_registered, id="fresh-identifier-never-registered"),
    pytest.param(registered_id_other_holder, id="registered-id-other-holder"),
    pytest.param(registered_id_extended_expiry, id="registered-id-extended-expiry"),
    pytest.param(registered_id_other_fields, id="registered-id-other-vehicle-class"),
    pytest.param(same_claims_reserialised, id="same-claims-other-serialisation"),
]


@pytest.mark.parametrize("forge_token", REGISTRY)
def test_token_signed_by_the_real_key_but_not_registered_is_a_forgery(
    forge_token: Callable[[Genuine], str], genuine: Genuine, verify: Verify
) -> None:
    report = verify(forge_token(genuine))

    assert (report.verdict, report.code) == (Verdict.INVALID, "NOT_IN_REGISTRY")
    # A forgery's content is not shown next to the verdict; who signed it is.
    shown = answer(report)
    assert shown["certificate"] is None
    assert shown["issuer"]["kid"] == genuine.kid


# ---------------------------------------------------------------- require_valid


def test_require_valid_returns_the_report_of_a_valid_certificate(
    issue: Issue, session: Any, clock: Any, office: Any
) -> None:
    token = issue("DL", office)["token"]

    report = require_valid(Verifier(session, now=clock(), leeway=LEEWAY), token)

    assert (report.verdict, report.code) == (Verdict.VALID, "OK")


def test_require_valid_raises_for_a_revoked_certificate(
    issue: Issue, change_status: Issue, deployment: Any, clock: Any, office: Any
) -> None:
    issued = issue("DL", office)
    change_status(office, issued["id"], "REVOKED")

    with deployment.read_session() as fresh, pytest.raises(VerificationFailed, match="INVALID REVOKED") as raised:
        require_valid(Verifier(fresh, now=clock(), leeway=LEEWAY), issued["token"])

    assert raised.value.report.code == "REVOKED"
    assert raised.value.code == "REVOKED"
    assert raised.value.report.verdict is Verdict.INVALID


def test_require_valid_raises_for_a_forgery(genuine: Genuine, session: Any, clock: Any) -> None:
    with pytest.raises(VerificationFailed, match="SIG_INVALID") as raised:
        require_valid(Verifier(session, now=clock(), leeway=LEEWAY), tampered_holder_name(genuine))

    assert raised.value.report.claims is None

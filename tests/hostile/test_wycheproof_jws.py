"""Wycheproof's JSON Web Signature vectors, through the one verifier.

``json_web_signature_test.json`` (401 cases) targets JWS libraries in general. The cases
selected here are those that apply to ecert:

* every case of a group whose public key is one of our key types (``kty`` ``EC`` with
  ``crv`` ``P-256`` for ES256, ``OKP`` ``Ed25519`` for EdDSA; the file has no OKP group
  today): groups ``es256``, ``ec_key_for_encryption`` and ``SpecialCaseEs256``;
* the keyless cases that attack any verifier whatever its key: ``alg`` ``none`` (tc 16,
  341-344) and a JWS in JSON serialization (tc 17).

That is 2 ``valid`` and 45 ``invalid`` cases (asserted, so vectors cannot vanish
silently). Each runs through :class:`verify.verifier.Verifier`, with the vector's public
JWK as the one trusted key (under the vector's own ``kid``) of a recognised region whose
registry never issued anything. Two views of each case:

* **as given**: the JWS exactly as Wycheproof writes it. None is an ecert token (no
  ``typ``, payload ``"foo"``), so every one is refused at step 1: ``ALG_NOT_ALLOWED`` for
  ``alg`` none and HS256 (the parser names a forbidden algorithm before missing members),
  ``HEADER_FORBIDDEN`` for an embedded ``jwk``, ``MALFORMED`` otherwise. The ``valid`` cases are
  refused for the profile only (``MALFORMED``, the header lacks ``typ``): their signature
  does verify under :func:`signing.algorithms.verify_signature`. For the ``invalid`` cases
  the signature check agrees with Wycheproof on its own, wherever there is a signature to
  check, so the profile is never what stands between us and a forgery.
* **in our profile**: the case's defect carried into an ecert token signed with the
  vector's private key. Segments the case shares with its group's ``valid`` token are
  replaced by that genuine ecert token's; a header the case changed keeps its members and
  gains the profile members it lacks (``kid`` the trusted kid, ``typ`` ``ecert``); a
  changed signature or payload is kept as the case has it. The genuine token itself goes
  all the way to step 7 (``NOT_IN_REGISTRY``: the vector key is trusted but issued
  nothing); each defect must then stop at the step that owns it:

  ========================================  =====================================
  defect (Wycheproof comment)               code in our profile
  ========================================  =====================================
  modified or missing signature, special    ``SIG_INVALID`` (step 4)
  (r, s) values, signature too long,
  trailing zeros, buffer overflow
  header naming another kid                 ``KEY_UNKNOWN`` (step 2)
  ``alg`` none / NONE, HS256 with the EC    ``ALG_NOT_ALLOWED`` (step 1)
  key's bytes as HMAC key
  embedded attacker ``jwk``                 ``HEADER_FORBIDDEN`` (step 1)
  missing or extra segments, empty header   ``MALFORMED`` (step 1)
  or payload, a payload that is not ours
  ========================================  =====================================

  Not carried over: the JSON serialization (it has no compact segments) and the key
  marked for encryption (``use`` ``enc``, ``key_ops`` ``encrypt``): a key enters our trust
  only as an office's signing key, so there is no such key to confuse.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from registry.claims import CertificateClaims, HolderClaims
from registry.identifiers import CertificateId
from signing.algorithms import PrivateKey, PublicKey, algorithm_of, verify_signature
from signing.jwk import load_public_jwk
from signing.tokens import encode_token
from verify.codes import Verdict
from verify.report import VerificationReport
from verify.sources import Lookup, RegistryAnswer
from verify.trust import TrustedKey, TrustedRegion
from verify.verifier import Verifier, reference_catalog

WYCHEPROOF = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "wycheproof"
VECTOR_FILE = WYCHEPROOF / "json_web_signature_test.json"
DECLARED_CASES = 401
SELECTED = {"valid": 2, "invalid": 45}

NOW = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
REGION = "310000"
OFFICE_CODE = "11310000002418960M"


@dataclass(frozen=True)
class Expected:
    """What one Wycheproof case must get: as given, and carried into our profile
    (None: not carried over); ``signature``: whether its signature verifies under the
    vector key (None: no signature to check)."""

    as_given: str
    in_profile: str | None
    signature: bool | None


_SIG_DEFECT = Expected("MALFORMED", "SIG_INVALID", False)
_NO_SEGMENTS = Expected("MALFORMED", "MALFORMED", None)

# By Wycheproof comment; a comment means the same defect in every group it appears in.
EXPECTED: dict[str, Expected] = {
    "acceptsValid": Expected("MALFORMED", "NOT_IN_REGISTRY", True),
    "valid": Expected("MALFORMED", "NOT_IN_REGISTRY", True),
    "rejectsModifiedSignature": _SIG_DEFECT,
    "rejectsMissingSignature": _SIG_DEFECT,
    "rejectsMissingSignatureAndSeparator": _NO_SEGMENTS,
    "rejectsModifiedPayload": Expected("MALFORMED", "MALFORMED", False),
    "rejectsMissingPayload": Expected("MALFORMED", "MALFORMED", False),
    "rejectsMissingPayloadAndSeparator": _NO_SEGMENTS,
    "rejectsModifiedHeader": Expected("MALFORMED", "KEY_UNKNOWN", False),
    "rejectsMissingHeader": Expected("MALFORMED", "MALFORMED", False),
    "rejectsMissingHeaderAndSeparator": _NO_SEGMENTS,
    "rejectsMissingHeaderAndSignature": Expected("MALFORMED", "MALFORMED", False),
    "rejectsMissingHeaderSignatureAndSeparators": _NO_SEGMENTS,
    "rejectsEmptyString": _NO_SEGMENTS,
    "rejectsSymmetryConfusionAttacks_aesKeyFromEcVerificationKeyBytes": Expected(
        "ALG_NOT_ALLOWED", "ALG_NOT_ALLOWED", False
    ),
    "rejectsAttackerProvidedEmbeddedJwk": Expected("HEADER_FORBIDDEN", "HEADER_FORBIDDEN", False),
    "rejectsNoneAlgorithmAndMissingSignature": Expected("ALG_NOT_ALLOWED", "ALG_NOT_ALLOWED", None),
    "algIsNone": Expected("ALG_NOT_ALLOWED", "ALG_NOT_ALLOWED", None),
    "rejectsValidJsonSerialization": Expected("MALFORMED", None, None),
    # The signature is genuine; the defect is the key's declared use (see the docstring).
    "rejectWrongUse": Expected("MALFORMED", None, True),
    "rejectWrongKeyOps": Expected("MALFORMED", None, True),
    **{
        comment: _SIG_DEFECT
        for comment in (
            "SignatureTooLong",
            "TrailingZeros",
            "RisTooBig",
            "SisTooBig",
            "IntegerOverflow",
            "BufferOverflow",
            *(f"rIs{r}_sIs{s}" for r in ("Zero", "One", "Nminus1", "N") for s in ("Zero", "One", "Nminus1", "N")),
        )
    },
}


@dataclass(frozen=True)
class Case:
    tc_id: int
    comment: str
    result: str
    jws: str
    public_jwk: dict[str, Any]
    private_jwk: dict[str, Any]
    genuine_jws: str  # the group's own valid token, whose segments the case reuses


# ---------------------------------------------------------------- selection


def _is_our_key(jwk: dict[str, Any] | None) -> bool:
    return jwk is not None and (jwk.get("kty"), jwk.get("crv")) in {("EC", "P-256"), ("OKP", "Ed25519")}


def _header(jws: str) -> dict[str, Any] | None:
    try:
        header = json.loads(_unb64url(jws.split(".")[0]))
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def _is_keyless_attack(test: dict[str, Any]) -> bool:
    header = _header(test["jws"])
    alg_none = header is not None and str(header.get("alg")).lower() == "none"
    return alg_none or "JsonSerialization" in test["flags"]


def _selected_cases() -> list[Case]:
    suite = json.loads(VECTOR_FILE.read_text(encoding="utf-8"))
    groups = suite["testGroups"]
    # The keyless cases are checked against the P-256 key of the es256 group.
    fallback = next(group for group in groups if _is_our_key(group.get("public")) and "d" in group["private"])
    cases = []
    for group in groups:
        ours = _is_our_key(group.get("public"))
        keys = group if ours else fallback
        valid = [test["jws"] for test in group["tests"] if test["result"] == "valid"]
        for test in group["tests"]:
            if not (ours or _is_keyless_attack(test)):
                continue
            cases.append(
                Case(
                    tc_id=test["tcId"],
                    comment=test["comment"],
                    result=test["result"],
                    jws=test["jws"],
                    public_jwk=keys["public"],
                    private_jwk=keys["private"],
                    genuine_jws=valid[0] if valid else "",
                )
            )
    return cases


def _params(*, carried: bool = False) -> list[Any]:
    """The selected cases (``carried``: only those with a counterpart in our profile)."""
    if not VECTOR_FILE.is_file():
        # One failing case instead of an empty (skipped) parametrisation.
        return [pytest.param(None, id="jws-vectors-missing")]
    return [
        pytest.param(case, id=f"tc{case.tc_id}-{case.comment}")
        for case in _selected_cases()
        if not carried or EXPECTED[case.comment].in_profile is not None
    ]


def _require(case: Case | None) -> Case:
    if case is None:
        pytest.fail(f"Wycheproof JWS vectors not found at {VECTOR_FILE}")
    return case


# ---------------------------------------------------------------- the trust a vector gets


class NeverIssued:
    """The vector region's registry: it holds no certificate at all."""

    def lookup_many(self, tokens: Sequence[Lookup]) -> list[RegistryAnswer]:
        return [None for _ in tokens]


class VectorTrust:
    """One recognised region whose only key is the vector's public key, under its kid."""

    def __init__(self, public_jwk: dict[str, Any]) -> None:
        public_key = _public_key(public_jwk)
        self._region = TrustedRegion(code=REGION, name="Wycheproof", public_url="https://wycheproof.example")
        self._key = TrustedKey(
            kid=public_jwk["kid"],
            algorithm=algorithm_of(public_key),
            public_key=public_key,
            office_code=OFFICE_CODE,
            office_name="Wycheproof",
            types=frozenset({"DL"}),
            not_before=NOW - timedelta(days=1),
            not_after=None,
            compromised_since=None,
        )

    def region(self, code: str) -> TrustedRegion | None:
        return self._region if code == self._region.code else None

    def key(self, region: TrustedRegion, kid: str) -> TrustedKey | None:
        return self._key if kid == self._key.kid else None

    def registry(self, region: TrustedRegion) -> NeverIssued:
        return NeverIssued()


def _verify(case: Case, token: str) -> VerificationReport:
    verifier = Verifier(None, now=NOW, trust=VectorTrust(case.public_jwk), catalog=reference_catalog())
    return verifier.verify(token)


def _public_key(jwk: dict[str, Any]) -> PublicKey:
    # load_public_jwk insists on the canonical members alone; alg, use, kid are the vector's.
    return load_public_jwk({member: jwk[member] for member in ("kty", "crv", "x", "y") if member in jwk})


def _private_key(jwk: dict[str, Any]) -> PrivateKey:
    secret = _unb64url(jwk["d"])
    if jwk["kty"] == "OKP":
        return ed25519.Ed25519PrivateKey.from_private_bytes(secret)
    public = _public_key(jwk)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return ec.EllipticCurvePrivateNumbers(int.from_bytes(secret, "big"), public.public_numbers()).private_key()


def _unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# ---------------------------------------------------------------- carrying a defect into our profile


def _ecert_token(case: Case) -> str:
    """A genuine ecert token, signed with the vector's private key under the vector's kid."""
    claims = CertificateClaims(
        region=REGION,
        certificate_id=str(CertificateId.new("DL", OFFICE_CODE)),
        issued_at=int(NOW.timestamp()) - 3600,
        not_before=None,
        expires=int(NOW.timestamp()) + 86400,
        holder=HolderClaims(name="王小明", id_number="310101********1234"),
        fields=("C1",),
    )
    return encode_token(claims.to_payload(), _private_key(case.private_jwk), kid=case.public_jwk["kid"])


def _in_profile(case: Case) -> str:
    """The case's token with the group's genuine segments swapped for an ecert token's."""
    genuine = case.genuine_jws.split(".")
    ours = _ecert_token(case).split(".")
    segments = case.jws.split(".")
    carried = []
    for position, segment in enumerate(segments):
        if segment in genuine:
            carried.append(ours[genuine.index(segment)])
            continue
        header = _header(segment) if position == 0 and len(segments) == 3 else None
        if header is None:
            carried.append(segment)
            continue
        profile = {"kid": case.public_jwk["kid"], "typ": "ecert"}
        header = {**header, **{name: value for name, value in profile.items() if name not in header}}
        carried.append(_b64url(json.dumps(header, separators=(",", ":")).encode("utf-8")))
    return ".".join(carried)


# ---------------------------------------------------------------- tests


def test_selection_is_complete() -> None:
    """The file is whole and the selection holds the cases counted in the docstring."""
    assert VECTOR_FILE.is_file(), f"Wycheproof JWS vectors not found at {VECTOR_FILE}"
    suite = json.loads(VECTOR_FILE.read_text(encoding="utf-8"))
    assert sum(len(group["tests"]) for group in suite["testGroups"]) == suite["numberOfTests"] == DECLARED_CASES
    cases = _selected_cases()
    assert Counter(case.result for case in cases) == SELECTED
    assert {case.comment for case in cases} <= set(EXPECTED)
    carried = [case for case in cases if EXPECTED[case.comment].in_profile is not None]
    assert all(case.genuine_jws for case in carried), "every carried case's group has a valid token to build on"


@pytest.mark.parametrize("case", _params())
def test_vector_as_given_is_refused_at_step_one(case: Case | None) -> None:
    case = _require(case)
    expected = EXPECTED[case.comment]

    report = _verify(case, case.jws)

    assert report.verdict is Verdict.INVALID, report
    assert report.code == expected.as_given, report.detail
    assert report.claims is None  # nothing unsigned is shown
    if case.result == "valid":
        # Refused for the ecert profile, not for the cryptography.
        assert report.detail == "header lacks typ"


@pytest.mark.parametrize("case", _params())
def test_vector_signature_agrees_with_wycheproof(case: Case | None) -> None:
    """Our signature check alone gives each case's answer, wherever it has a signature."""
    case = _require(case)
    expected = EXPECTED[case.comment]
    segments = case.jws.split(".")
    if expected.signature is None:
        assert len(segments) != 3 or _header(case.jws) is None or not segments[2]
        return
    public_key = _public_key(case.public_jwk)
    signing_input = f"{segments[0]}.{segments[1]}".encode("ascii")

    verified = verify_signature(algorithm_of(public_key), public_key, signing_input, _unb64url(segments[2]))

    assert verified is expected.signature


@pytest.mark.parametrize("case", _params(carried=True))
def test_vector_defect_in_our_profile_stops_at_its_own_step(case: Case | None) -> None:
    case = _require(case)
    expected = EXPECTED[case.comment]
    token = _in_profile(case)

    report = _verify(case, token)

    assert report.verdict is Verdict.INVALID, report
    assert report.code == expected.in_profile, report.detail

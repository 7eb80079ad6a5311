"""The strict token parser (verification step 1) and the token encoder.

Hostile tokens are built by hand from base64url segments, each differing from a
well-formed baseline (:data:`BASELINE`, which the parser accepts) in one rule only, so a
case fails for the reason its id names.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signing.algorithms import PrivateKey, algorithm_of, verify_signature
from signing.errors import TokenFormatError, UnsupportedAlgorithm
from signing.tokens import MAX_TOKEN_LENGTH, encode_token, parse_token

KID = "kid-1"
HEADER = '{"alg":"EdDSA","kid":"kid-1","typ":"ecert"}'
PAYLOAD = '{"jti":"x","n":1}'
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def lenient_b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def seg(json_text: str | bytes) -> str:
    return b64(json_text.encode("utf-8") if isinstance(json_text, str) else json_text)


SIGNATURE = b64(b"\xfb\xff" * 32)  # 64 bytes whose base64url holds both '-' and '_'


def token(header: str | bytes = HEADER, payload: str | bytes = PAYLOAD, signature: str = SIGNATURE) -> str:
    return f"{seg(header)}.{seg(payload)}.{signature}"


def header_with(**members: Any) -> str:
    """The baseline header with members replaced, added, or (value ``...``) removed."""
    header: dict[str, Any] = {"alg": "EdDSA", "kid": KID, "typ": "ecert"}
    for name, value in members.items():
        if value is ...:
            del header[name]
        else:
            header[name] = value
    return json.dumps(header, separators=(",", ":"))


def with_trailing_bits(segment: str) -> str:
    """The same bytes spelled with a non-zero unused bit in the last character."""
    unused_bits = {2: 4, 3: 2}[len(segment) % 4]
    last = ALPHABET.index(segment[-1])
    assert last % (1 << unused_bits) == 0
    altered = segment[:-1] + ALPHABET[last + 1]
    assert lenient_b64decode(altered) == lenient_b64decode(segment)
    return altered


def to_standard_alphabet(segment: str) -> str:
    assert "-" in segment or "_" in segment
    return segment.replace("-", "+").replace("_", "/")


def length_one_mod_four(segment: str) -> str:
    return segment + "A" * ((1 - len(segment)) % 4)


def nested(depth: int) -> str:
    return '{"a":' + "[" * depth + "]" * depth + "}"


BASELINE = token()
H, P = seg(HEADER), seg(PAYLOAD)
JWE_HEADER = seg('{"alg":"RSA-OAEP","enc":"A256GCM"}')

HOSTILE = [
    # segment counts
    pytest.param("", "MALFORMED", id="empty-text"),
    pytest.param(H, "MALFORMED", id="segments-1"),
    pytest.param(f"{H}.{P}", "MALFORMED", id="segments-2"),
    pytest.param(f"{BASELINE}.{SIGNATURE}", "MALFORMED", id="segments-4"),
    pytest.param(f"{BASELINE}.{SIGNATURE}.{SIGNATURE}", "MALFORMED", id="segments-5"),
    pytest.param(
        f"{JWE_HEADER}.{b64(bytes(256))}.{b64(bytes(12))}.{P}.{b64(bytes(16))}",
        "MALFORMED",
        id="jwe-compact",
    ),
    pytest.param("..", "MALFORMED", id="three-empty-segments"),
    # base64url spelling
    pytest.param(f"{H}.{P}.{SIGNATURE}==", "MALFORMED", id="signature-padded"),
    pytest.param(f"{H}=.{P}.{SIGNATURE}", "MALFORMED", id="header-padded"),
    pytest.param(f"{H}.{P}=.{SIGNATURE}", "MALFORMED", id="payload-padded"),
    pytest.param(f" {BASELINE}", "MALFORMED", id="leading-space"),
    pytest.param(f"{BASELINE}\n", "MALFORMED", id="trailing-newline"),
    pytest.param(f"{H}. {P}.{SIGNATURE}", "MALFORMED", id="space-after-dot"),
    pytest.param(f"{H[:10]}\t{H[10:]}.{P}.{SIGNATURE}", "MALFORMED", id="tab-in-header"),
    pytest.param(f"{H}.{P[:8]}\r\n{P[8:]}.{SIGNATURE}", "MALFORMED", id="crlf-in-payload"),
    pytest.param(f"{H}.{P}.{to_standard_alphabet(SIGNATURE)}", "MALFORMED", id="signature-plus-slash"),
    pytest.param(f"{H}.{P}.{SIGNATURE.replace('-', '+')}", "MALFORMED", id="signature-plus"),
    pytest.param(f"{H}.{P}.{SIGNATURE.replace('_', '/')}", "MALFORMED", id="signature-slash"),
    pytest.param(f"{H}.{P}.{SIGNATURE[:-1]}é", "MALFORMED", id="non-ascii-letter"),
    pytest.param(f"{H}.{P}.{SIGNATURE[:-1]}Ａ", "MALFORMED", id="fullwidth-letter"),
    pytest.param(f"{with_trailing_bits(H)}.{P}.{SIGNATURE}", "MALFORMED", id="header-trailing-bits"),
    pytest.param(f"{H}.{with_trailing_bits(P)}.{SIGNATURE}", "MALFORMED", id="payload-trailing-bits"),
    pytest.param(f"{H}.{P}.{with_trailing_bits(SIGNATURE)}", "MALFORMED", id="signature-trailing-bits"),
    pytest.param(f"{length_one_mod_four(H)}.{P}.{SIGNATURE}", "MALFORMED", id="header-length-1-mod-4"),
    pytest.param(f"{H}.{length_one_mod_four(P)}.{SIGNATURE}", "MALFORMED", id="payload-length-1-mod-4"),
    pytest.param(f"{H}.{P}.AAAAA", "MALFORMED", id="signature-length-1-mod-4"),
    # empty parts
    pytest.param(f".{P}.{SIGNATURE}", "MALFORMED", id="empty-header"),
    pytest.param(f"{H}..{SIGNATURE}", "MALFORMED", id="empty-payload"),
    # not UTF-8
    pytest.param(token(header=b'{"alg":"EdDSA","kid":"\xff","typ":"ecert"}'), "MALFORMED", id="header-not-utf8"),
    pytest.param(token(payload=b'{"n":"\xc3"}'), "MALFORMED", id="payload-truncated-utf8"),
    pytest.param(token(payload=b'{"n":"\xc0\xae"}'), "MALFORMED", id="payload-overlong-utf8"),
    pytest.param(token(payload=b'{"n":"\xed\xa0\x80"}'), "MALFORMED", id="payload-utf8-surrogate"),
    pytest.param(token(payload=b'{"n":"\xe5\xbc\xa0"}'.decode("utf-8").encode("gb18030")), "MALFORMED", id="gbk"),
    pytest.param(token(payload=PAYLOAD.encode("utf-16")), "MALFORMED", id="payload-utf16"),
    pytest.param(token(payload=b"\xef\xbb\xbf" + PAYLOAD.encode()), "MALFORMED", id="payload-utf8-bom"),
    # not JSON
    pytest.param(token(header="{"), "MALFORMED", id="header-truncated-json"),
    pytest.param(token(payload="nope"), "MALFORMED", id="payload-not-json"),
    pytest.param(token(payload='{"n":1} x'), "MALFORMED", id="payload-trailing-garbage"),
    pytest.param(token(payload='{"n":1}{"n":2}'), "MALFORMED", id="payload-two-objects"),
    pytest.param(token(payload="{'n':1}"), "MALFORMED", id="payload-single-quotes"),
    pytest.param(token(payload="{n:1}"), "MALFORMED", id="payload-bare-name"),
    pytest.param(token(payload='{"n":1,}'), "MALFORMED", id="payload-trailing-comma"),
    pytest.param(token(payload='{"n":1/*c*/}'), "MALFORMED", id="payload-comment"),
    # JSON, but not an object
    *(
        pytest.param(token(**{part: text}), "MALFORMED", id=f"{part}-{name}")
        for part in ("header", "payload")
        for name, text in [("array", "[]"), ("string", '"ecert"'), ("number", "1"), ("null", "null"), ("true", "true")]
    ),
    # non-standard constants
    pytest.param(token(payload='{"n":NaN}'), "MALFORMED", id="payload-NaN"),
    pytest.param(token(payload='{"n":Infinity}'), "MALFORMED", id="payload-Infinity"),
    pytest.param(token(payload='{"n":-Infinity}'), "MALFORMED", id="payload-minus-Infinity"),
    pytest.param(token(payload='{"n":[1,NaN]}'), "MALFORMED", id="payload-nested-NaN"),
    pytest.param(token(header='{"alg":NaN,"kid":"kid-1","typ":"ecert"}'), "MALFORMED", id="header-NaN"),
    # duplicate members (RFC 7515 §5.2)
    pytest.param(
        token(header='{"alg":"EdDSA","alg":"EdDSA","kid":"kid-1","typ":"ecert"}'),
        "DUPLICATE_MEMBER",
        id="header-duplicate-alg-same-value",
    ),
    pytest.param(
        token(header='{"alg":"EdDSA","kid":"kid-1","kid":"kid-2","typ":"ecert"}'),
        "DUPLICATE_MEMBER",
        id="header-duplicate-kid",
    ),
    pytest.param(
        token(header='{"alg":"EdDSA","kid":"kid-1","\\u006bid":"kid-2","typ":"ecert"}'),
        "DUPLICATE_MEMBER",
        id="header-duplicate-kid-escaped",
    ),
    pytest.param(token(payload='{"jti":"x","jti":"y"}'), "DUPLICATE_MEMBER", id="payload-duplicate"),
    pytest.param(token(payload='{"jti":"x","j\\u0074i":"y"}'), "DUPLICATE_MEMBER", id="payload-duplicate-escaped"),
    pytest.param(token(payload='{"h":{"n":"a","n":"b"}}'), "DUPLICATE_MEMBER", id="payload-duplicate-nested"),
    pytest.param(token(payload='{"f":[{"a":1,"a":1}]}'), "DUPLICATE_MEMBER", id="payload-duplicate-in-array"),
    # header members other than alg/kid/typ
    *(
        pytest.param(token(header=header_with(**{name: value})), "HEADER_FORBIDDEN", id=f"header-{name}")
        for name, value in [
            ("jku", "https://evil.example/jwks.json"),
            ("x5u", "https://evil.example/cert.pem"),
            ("x5c", ["MIIB"]),
            ("jwk", {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
            ("crit", ["b64"]),
            ("b64", False),
            ("zip", "DEF"),
            ("cty", "JWT"),
            ("enc", "A256GCM"),
        ]
    ),
    # required members missing
    *(
        pytest.param(token(header=header_with(**{name: ...})), "MALFORMED", id=f"header-missing-{name}")
        for name in ("alg", "kid", "typ")
    ),
    pytest.param(token(header="{}"), "MALFORMED", id="header-empty-object"),
    # algorithms other than EdDSA and ES256 (RFC 8725 §3.1)
    *(
        pytest.param(token(header=header_with(alg=alg)), "ALG_NOT_ALLOWED", id=f"alg-{alg!r}")
        for alg in [
            "none",
            "None",
            "NONE",
            "nOnE",
            "HS256",
            "RS256",
            "PS256",
            "ES512",
            "ES256K",
            "Ed25519",
            "eddsa",
            "es256",
            "EdDSA ",
            "",
            None,
            1,
            True,
            ["EdDSA"],
            {"EdDSA": True},
        ]
    ),
    # typ
    *(
        pytest.param(token(header=header_with(typ=typ)), "TYP_INVALID", id=f"typ-{typ!r}")
        for typ in ["JWT", "ecert+jwt", "application/ecert", "ECERT", "ecert ", "", None, 1, ["ecert"]]
    ),
    # kid
    *(
        pytest.param(token(header=header_with(kid=kid)), "MALFORMED", id=f"kid-{name}")
        for name, kid in [("empty", ""), ("65-chars", "k" * 65), ("number", 1), ("null", None), ("list", [KID])]
    ),
    # size: checked before anything is decoded
    pytest.param("!" * (MAX_TOKEN_LENGTH + 1), "TOO_LARGE", id="garbage-over-cap"),
    pytest.param("A" * (MAX_TOKEN_LENGTH + 1), "TOO_LARGE", id="one-segment-over-cap"),
    pytest.param(token(payload='{"n":"' + "x" * 3000 + '"}'), "TOO_LARGE", id="well-formed-over-cap"),
    pytest.param("." * 10_000_000, "TOO_LARGE", id="ten-million-dots"),
    # resource limits of the JSON decoder, inside the size cap
    pytest.param(token(payload=nested(1400)), "MALFORMED", id="nesting-1400-inside-cap"),
]


def test_baseline_is_accepted() -> None:
    """Every hostile case is this token with one rule broken."""
    parsed = parse_token(BASELINE)
    assert parsed.header.alg == "EdDSA"
    assert parsed.payload == {"jti": "x", "n": 1}
    assert len(nested(1400)) < MAX_TOKEN_LENGTH


@pytest.mark.parametrize(("text", "code"), HOSTILE)
def test_hostile_token_is_refused(text: str, code: str) -> None:
    with pytest.raises(TokenFormatError) as refused:
        parse_token(text)
    assert refused.value.code == code, refused.value.detail


@pytest.mark.parametrize(
    ("text", "code"),
    [
        pytest.param(token(payload=nested(100_000)), "MALFORMED", id="nesting-100000"),
        pytest.param(token(payload='{"n":' + "9" * 5000 + "}"), "MALFORMED", id="integer-5000-digits"),
        pytest.param(token(payload='{"n":-' + "9" * 5000 + "}"), "MALFORMED", id="negative-integer-5000-digits"),
        pytest.param(token(header=header_with(kid=...)[:-1] + ',"kid":' + "1" * 5000 + "}"), "MALFORMED", id="kid-int"),
    ],
)
def test_decoder_limits_hold_when_the_size_cap_is_raised(text: str, code: str) -> None:
    with pytest.raises(TokenFormatError) as refused:
        parse_token(text, max_length=len(text))
    assert refused.value.code == code, refused.value.detail


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("1e400", id="1e400"),
        pytest.param("-1e400", id="minus-1e400"),
        pytest.param("1" + "0" * 400 + ".0", id="401-digit-decimal"),
    ],
)
def test_number_overflowing_to_infinity_is_refused(number: str) -> None:
    with pytest.raises(TokenFormatError) as refused:
        parse_token(token(payload='{"n":' + number + "}"))
    assert refused.value.code == "MALFORMED"


def test_empty_signature_parses_but_never_verifies(ed25519_key: ed25519.Ed25519PrivateKey) -> None:
    parsed = parse_token(f"{H}.{P}.")
    assert parsed.signature == b""
    assert verify_signature("EdDSA", ed25519_key.public_key(), parsed.signing_input, parsed.signature) is False


# ---------------------------------------------------------------- real tokens

CHINESE_PAYLOAD: dict[str, Any] = {
    "iss": "310000",
    "jti": "BL-310000-0001",
    "h": {"n": "张三", "t": "居民身份证", "i": "310101199001011234"},
    "f": {"name": "上海市示范发证中心", "capital": 1000000},
}


def test_round_trip_keeps_chinese_as_utf8(signing_key: PrivateKey) -> None:
    text = encode_token(CHINESE_PAYLOAD, signing_key, KID)

    parsed = parse_token(text)

    assert parsed.payload == CHINESE_PAYLOAD
    assert (parsed.header.alg, parsed.header.kid, parsed.header.typ) == (algorithm_of(signing_key), KID, "ecert")
    assert parsed.text == text
    header_b64, payload_b64, _ = text.split(".")
    assert parsed.signing_input == f"{header_b64}.{payload_b64}".encode("ascii")
    payload_bytes = lenient_b64decode(payload_b64)
    assert "张三".encode() in payload_bytes
    assert "上海市示范发证中心".encode() in payload_bytes
    assert b"\\u" not in payload_bytes
    assert payload_bytes == json.dumps(CHINESE_PAYLOAD, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert set(json.loads(lenient_b64decode(header_b64))) == {"alg", "kid", "typ"}
    assert verify_signature(algorithm_of(signing_key), signing_key.public_key(), parsed.signing_input, parsed.signature)


def test_tampered_payload_still_parses_but_does_not_verify(signing_key: PrivateKey) -> None:
    header_b64, _, signature_b64 = encode_token(CHINESE_PAYLOAD, signing_key, KID).split(".")
    forged = {**CHINESE_PAYLOAD, "h": {**CHINESE_PAYLOAD["h"], "n": "李四"}}
    parsed = parse_token(f"{header_b64}.{seg(json.dumps(forged, ensure_ascii=False))}.{signature_b64}")

    assert parsed.payload["h"]["n"] == "李四"
    assert not verify_signature(
        algorithm_of(signing_key), signing_key.public_key(), parsed.signing_input, parsed.signature
    )


@pytest.mark.parametrize(
    "respell",
    [
        pytest.param(lambda t: t + "==", id="padded"),
        pytest.param(lambda t: t + "\n", id="newline"),
        pytest.param(lambda t: " " + t, id="leading-space"),
        pytest.param(lambda t: t[:-1] + ALPHABET[ALPHABET.index(t[-1]) + 1], id="signature-trailing-bits"),
    ],
)
def test_real_token_has_one_spelling(ed25519_key: ed25519.Ed25519PrivateKey, respell: Any) -> None:
    text = encode_token(CHINESE_PAYLOAD, ed25519_key, KID)
    assert len(text.rsplit(".", 1)[1]) % 4 == 2  # 64-byte signature: 4 unused bits in the last character

    with pytest.raises(TokenFormatError) as refused:
        parse_token(respell(text))
    assert refused.value.code == "MALFORMED"


def signed_token_of_length(key: PrivateKey, length: int) -> str:
    for filler in range(length):
        text = encode_token({"p": "x" * filler}, key, KID)
        if len(text) == length:
            return text
    raise AssertionError(f"no filler gives a token of exactly {length} characters")


def test_size_cap_is_inclusive(ed25519_key: ed25519.Ed25519PrivateKey) -> None:
    at_cap = signed_token_of_length(ed25519_key, MAX_TOKEN_LENGTH)

    assert parse_token(at_cap).text == at_cap
    with pytest.raises(TokenFormatError) as refused:
        parse_token(at_cap, max_length=MAX_TOKEN_LENGTH - 1)
    assert refused.value.code == "TOO_LARGE"


def test_signed_token_over_the_cap_is_too_large(ed25519_key: ed25519.Ed25519PrivateKey) -> None:
    over_cap = encode_token({"p": "x" * MAX_TOKEN_LENGTH}, ed25519_key, KID)

    with pytest.raises(TokenFormatError, match=str(MAX_TOKEN_LENGTH)) as refused:
        parse_token(over_cap)
    assert refused.value.code == "TOO_LARGE"


def test_encoder_refuses_nan(ed25519_key: ed25519.Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        encode_token({"n": float("nan")}, ed25519_key, KID)


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP256K1()], ids=["P-384", "secp256k1"])
def test_encoder_refuses_other_curves(curve: ec.EllipticCurve) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        encode_token(CHINESE_PAYLOAD, ec.generate_private_key(curve), KID)

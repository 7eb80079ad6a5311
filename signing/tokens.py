"""ecert tokens: JWS compact serialization (RFC 7515) with a JSON payload.

Signing goes through PyJWT. Reading goes through :func:`parse_token`, a strict parser
that accepts exactly one spelling of each header and payload, so that no parser
differential can be exploited (an ECDSA signature stays malleable, (r, n-s); that is
why the registry matches tokens on their signed bytes, never on the signature):

* exactly three segments, each canonical unpadded base64url (RFC 7515 §2: no padding,
  no whitespace, no ``+``/``/``, zero trailing bits);
* a size cap, checked before anything else is decoded;
* header and payload are UTF-8 JSON objects without duplicate members (RFC 7515 §5.2);
* the header holds ``alg``, ``kid`` and ``typ`` and nothing else.

The signature is not checked here: see :func:`signing.algorithms.verify_signature`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Final

import jwt

from signing import strict_json
from signing.algorithms import ALGORITHMS, PrivateKey, algorithm_of
from signing.errors import TokenFormatError

TOKEN_TYPE: Final = "ecert"  # noqa: S105 - the typ header value
MAX_TOKEN_LENGTH: Final = 4096
HEADER_MEMBERS: Final = frozenset({"alg", "kid", "typ"})
MAX_KID_LENGTH: Final = 64

# One signer for every token: PyJWS holds no per-call state, and building one costs
# about a tenth of an Ed25519 signature.
_JWS: Final = jwt.PyJWS()
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_KID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_KID_LENGTH}}}")


@dataclass(frozen=True)
class Header:
    alg: str
    kid: str
    typ: str


@dataclass(frozen=True)
class ParsedToken:
    """A token that passed the syntax rules; its signature is not yet checked."""

    header: Header
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes
    text: str


def encode_token(payload: dict[str, Any], private_key: PrivateKey, kid: str, typ: str = TOKEN_TYPE) -> str:
    """Sign ``payload`` into a compact token with header ``{alg, kid, typ}``.

    The payload is serialised without spaces and with ``ensure_ascii=False`` (UTF-8
    Chinese text takes 3 bytes, not the 6 of a ``\\uXXXX`` escape), keeping the QR small.

    Raises:
        UnsupportedAlgorithm: the key is not an Ed25519 or P-256 key.
    """
    algorithm = algorithm_of(private_key)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return _JWS.encode(body, private_key, algorithm=algorithm, headers={"kid": kid, "typ": typ})


def parse_token(text: str, max_length: int = MAX_TOKEN_LENGTH, typ: str = TOKEN_TYPE) -> ParsedToken:
    """Apply the syntax rules (verification step 1) and return the decoded parts.

    Raises:
        TokenFormatError: with ``code`` ``TOO_LARGE``, ``MALFORMED``, ``DUPLICATE_MEMBER``,
            ``HEADER_FORBIDDEN``, ``ALG_NOT_ALLOWED`` or ``TYP_INVALID``.
    """
    if len(text) > max_length:
        raise TokenFormatError("TOO_LARGE", f"token is longer than {max_length} characters")
    segments = text.split(".")
    if len(segments) != 3:
        raise TokenFormatError("MALFORMED", f"a token has 3 dot-separated segments, not {len(segments)}")
    header_b64, payload_b64, signature_b64 = segments
    header_json = _decode_segment(header_b64, "header")
    payload_json = _decode_segment(payload_b64, "payload")
    signature = _decode_segment(signature_b64, "signature")
    header = _parse_header(_parse_object(header_json, "header"), typ)
    payload = _parse_object(payload_json, "payload")
    return ParsedToken(
        header=header,
        payload=payload,
        signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
        signature=signature,
        text=text,
    )


def _decode_segment(segment: str, name: str) -> bytes:
    if not _BASE64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise TokenFormatError("MALFORMED", f"{name} is not unpadded base64url")
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error as error:
        raise TokenFormatError("MALFORMED", f"{name} is not base64url") from error
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != segment:
        raise TokenFormatError("MALFORMED", f"{name} is not canonical base64url (non-zero trailing bits)")
    if name != "signature" and not decoded:
        raise TokenFormatError("MALFORMED", f"{name} is empty")
    return decoded


def _parse_object(raw: bytes, name: str) -> dict[str, Any]:
    try:
        value = strict_json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise TokenFormatError("MALFORMED", f"{name} is not UTF-8") from error
    except strict_json.StrictJsonError as error:
        code = "DUPLICATE_MEMBER" if error.duplicate else "MALFORMED"
        raise TokenFormatError(code, f"{name}: {error}") from error
    if not isinstance(value, dict):
        raise TokenFormatError("MALFORMED", f"{name} is not a JSON object")
    return value


def _parse_header(members: dict[str, Any], expected_typ: str) -> Header:
    extra = sorted(set(members) - HEADER_MEMBERS)
    if extra:
        raise TokenFormatError("HEADER_FORBIDDEN", f"header members not allowed: {', '.join(extra)}")
    # An algorithm we never accept is named as such even when other members are missing:
    # {"alg": "none", "typ": "JWT"} is the classic attack, and its answer should say so.
    if "alg" in members and members["alg"] not in ALGORITHMS:
        raise TokenFormatError("ALG_NOT_ALLOWED", f"algorithm {members['alg']!r} is not allowed")
    missing = sorted(HEADER_MEMBERS - set(members))
    if missing:
        raise TokenFormatError("MALFORMED", f"header lacks {', '.join(missing)}")
    alg, kid, typ = members["alg"], members["kid"], members["typ"]
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        # Unsigned input that reaches a database lookup: base64url characters only.
        raise TokenFormatError("MALFORMED", f"kid must be 1 to {MAX_KID_LENGTH} base64url characters")
    if typ != expected_typ:
        raise TokenFormatError("TYP_INVALID", f"typ must be {expected_typ!r}")
    return Header(alg=alg, kid=kid, typ=typ)

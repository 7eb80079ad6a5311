"""The hostile-token corpus: its data files, and the recipes that turn a case into a token.

Each file in ``corpus/`` is one category; each case names a ``description``, an ``input``
and the reason code it must get (``expected``). An input is a literal token, or a recipe
(README.md, "Recipes") that :class:`Materialiser` builds with the keys and registered
certificates of the :class:`World` the test module made, since keys are generated per run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from registry.identifiers import CertificateId
from signing.algorithms import PrivateKey, PublicKey, algorithm_of, sign
from signing.jwk import public_jwk
from tests.verify.conftest import b64url, compact_json, decode_parts
from verify.codes import REASONS

CORPUS = Path(__file__).parent / "corpus"
CASE_MEMBERS = frozenset({"id", "description", "input", "expected", "http_status", "xfail"})
RECIPE_MEMBERS = frozenset(
    {"base", "header", "header_with", "header_without", "payload", "payload_with", "payload_without"}
    | {"signature", "text", "at"}
)
_CASE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,60}")

# Ed25519's group order (RFC 8032 §5.1), P-256's order and field prime (SEC 2 §2.4.2).
ED25519_L = 2**252 + 27742317777372353535851937790883648493
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_CONSTANTS = {"L": ED25519_L, "n": P256_N, "p": P256_P, "max": 2**256 - 1}
_HMAC = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")


class CorpusError(ValueError):
    """A data file or recipe that does not follow README.md."""


@dataclass(frozen=True)
class Case:
    """One hostile input and the code the verifier must answer."""

    category: str
    id: str
    description: str
    input: str | dict[str, Any]
    expected: str
    # 200 unless the request itself is refused (a body over the 1 MiB request cap: 413).
    http_status: int = 200
    # Why the verifier is known to answer otherwise (a bug not fixed yet), if it is.
    xfail: str | None = None

    @property
    def name(self) -> str:
        return f"{self.category}/{self.id}"


def load_corpus(directory: Path = CORPUS) -> list[Case]:
    """Every case of every ``*.json`` file in ``directory``, checked against the format.

    Raises:
        CorpusError: a file, case or recipe that breaks the format, or a repeated id.
    """
    cases: list[Case] = []
    for path in sorted(directory.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or set(document) != {"category", "about", "cases"}:
            raise CorpusError(f"{path.name}: a file is {{category, about, cases}}")
        if document["category"] != path.stem:
            raise CorpusError(f"{path.name}: category must be the file's name")
        seen: set[str] = set()
        for raw in document["cases"]:
            case = _case(path.stem, raw)
            if case.id in seen:
                raise CorpusError(f"{case.name}: id repeated")
            seen.add(case.id)
            cases.append(case)
    return cases


def _case(category: str, raw: Any) -> Case:
    if not isinstance(raw, dict) or not {"id", "description", "input", "expected"} <= set(raw) <= CASE_MEMBERS:
        raise CorpusError(f"{category}: a case is {{id, description, input, expected, ...}}: {raw!r:.80}")
    name = f"{category}/{raw['id']}"
    if not isinstance(raw["id"], str) or not _CASE_ID.fullmatch(raw["id"]):
        raise CorpusError(f"{name}: id must be lower-case letters, digits and dashes")
    if raw["expected"] not in REASONS:
        raise CorpusError(f"{name}: {raw['expected']!r} is not a reason code (verify/codes.py)")
    recipe = raw["input"]
    if isinstance(recipe, dict) and not set(recipe) <= RECIPE_MEMBERS:
        raise CorpusError(f"{name}: unknown recipe members {sorted(set(recipe) - RECIPE_MEMBERS)}")
    if not isinstance(recipe, str | dict) or not isinstance(raw["description"], str) or not raw["description"]:
        raise CorpusError(f"{name}: input is a token string or a recipe object; description is text")
    if raw.get("http_status", 200) not in (200, 400, 413) or not isinstance(raw.get("xfail", ""), str):
        raise CorpusError(f"{name}: http_status is 200, 400 or 413; xfail is a reason")
    return Case(
        category, raw["id"], raw["description"], recipe, raw["expected"], raw.get("http_status", 200), raw.get("xfail")
    )


# ---------------------------------------------------------------- the world recipes draw on


@dataclass(frozen=True)
class Signer:
    """A key a recipe may sign with: an office's (real, registered) or an attacker's."""

    kid: str
    private_key: PrivateKey
    not_before: datetime | None = None
    not_after: datetime | None = None
    compromised_since: datetime | None = None

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()


@dataclass(frozen=True)
class World:
    """What the test module registered: tokens by name, keys by name, names, moments."""

    tokens: Mapping[str, str]
    signers: Mapping[str, Signer]
    names: Mapping[str, str]  # region, code:<office>
    now: datetime
    leeway: timedelta


@dataclass(frozen=True)
class Materialised:
    token: str
    at: datetime


class Materialiser:
    """Builds each case's token (and the moment it is verified at) from a :class:`World`."""

    def __init__(self, world: World) -> None:
        self.world = world

    def materialise(self, case: Case) -> Materialised:
        """Raises: CorpusError: the recipe cannot be built (see its message)."""
        if isinstance(case.input, str):
            return Materialised(case.input, self.world.now)
        try:
            return self._recipe(case.input)
        except (KeyError, ValueError, AssertionError) as error:
            raise CorpusError(f"{case.name}: {type(error).__name__}: {error}") from error

    def _recipe(self, recipe: dict[str, Any]) -> Materialised:
        base_name = recipe.get("base", "dl")
        base = self.world.tokens[base_name]
        header_b64, payload_b64, _ = base.split(".")
        header, payload, signature = decode_parts(base)
        ctx = _Context(self.world, payload)
        if {"header", "header_with", "header_without"} & set(recipe):
            header_b64 = b64url(_part(recipe, "header", header, ctx))
        if {"payload", "payload_with", "payload_without"} & set(recipe):
            payload_b64 = b64url(_part(recipe, "payload", payload, ctx))
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        signed = _signature(recipe.get("signature", "keep"), signature, signing_input, ctx)
        segments = {"h": header_b64, "p": payload_b64, "s": b64url(signed)}
        segments["token"] = f"{segments['h']}.{segments['p']}.{segments['s']}"
        token = segments["token"] if "text" not in recipe else _text(recipe["text"], ctx, segments)
        at = self.world.now if "at" not in recipe else datetime.fromtimestamp(ctx.time(recipe["at"]), UTC)
        return Materialised(token, at)


class _Context:
    """Resolves ``${...}`` placeholders against the world and the base token's claims."""

    def __init__(self, world: World, base_payload: dict[str, Any]) -> None:
        self.world = world
        self.claims = base_payload

    def resolve(self, expression: str) -> Any:
        kind, _, rest = expression.partition(":")
        if kind == "kid":
            return self.world.signers[rest].kid
        if kind == "jwk":
            return public_jwk(self.world.signers[rest].public_key)
        if kind == "token":
            return self.world.tokens[rest]
        if kind == "code":
            return self.world.names[expression]
        if expression == "region":
            return self.world.names["region"]
        if kind == "jti":
            return str(decode_parts(self.world.tokens[rest])[1]["jti"]) if rest else str(self.claims["jti"])
        if kind == "new_jti":
            type_code, office = rest.split(":")  # an office's name, or a credit code
            return str(CertificateId.new(type_code, self.world.names.get(f"code:{office}", office)))
        return self.time(expression)

    def time(self, expression: str) -> int:
        """``now``, ``iat``, ``nbf``, ``exp`` (the base token's), ``leeway``,
        ``not_before:<signer>``, ``not_after:<signer>``, ``compromised_since:<signer>`` and
        whole numbers, joined by ``+`` and ``-``: seconds since the epoch."""
        return _sum(expression, self._time_term)

    def _time_term(self, name: str) -> int:
        if name == "now":
            return int(self.world.now.timestamp())
        if name == "leeway":
            return int(self.world.leeway.total_seconds())
        if name in ("iat", "exp"):
            return int(self.claims[name])
        if name == "nbf":
            return int(self.claims.get("nbf", self.claims["iat"]))
        window, _, signer_name = name.partition(":")
        moment = getattr(self.world.signers[signer_name], window)
        if window not in ("not_before", "not_after", "compromised_since") or moment is None:
            raise CorpusError(f"unknown time {name!r}")
        return int(moment.timestamp())


def _sum(expression: str, term: Callable[[str], int]) -> int:
    pieces = re.split(r"([+-])", expression.replace(" ", ""))
    total, sign = 0, 1
    for index, piece in enumerate(pieces):
        if index % 2:
            sign = 1 if piece == "+" else -1
        elif piece:
            total += sign * (int(piece, 0) if piece[0].isdigit() else term(piece))
    return total


def _expand(value: Any, ctx: _Context) -> Any:
    """Placeholders replaced: a string that is one ``${...}`` takes the value's type."""
    if isinstance(value, dict):
        return {_expand(name, ctx): _expand(member, ctx) for name, member in value.items()}
    if isinstance(value, list):
        return [_expand(item, ctx) for item in value]
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        return ctx.resolve(whole.group(1)) if whole else _substitute(value, ctx)
    return value


def _substitute(text: str, ctx: _Context) -> str:
    return _PLACEHOLDER.sub(lambda match: str(ctx.resolve(match.group(1))), text)


def _raw(parts: str | list[Any], ctx: _Context) -> bytes:
    """Raw text: a string, or a list of strings, ``{"repeat", "times"}``, ``{"hex"}`` and
    ``{"text", "encoding"}`` parts; strings are UTF-8 after placeholders are replaced."""
    out = bytearray()
    for part in [parts] if isinstance(parts, str) else parts:
        if isinstance(part, str):
            out += _substitute(part, ctx).encode("utf-8")
        elif set(part) == {"repeat", "times"}:
            out += part["repeat"].encode("utf-8") * part["times"]
        elif set(part) == {"hex"}:
            out += bytes.fromhex(part["hex"])
        elif set(part) == {"text", "encoding"}:
            out += _substitute(part["text"], ctx).encode(part["encoding"])
        else:
            raise CorpusError(f"unknown raw part {part!r}")
    return bytes(out)


def _part(recipe: dict[str, Any], name: str, base: dict[str, Any], ctx: _Context) -> bytes:
    if name in recipe:
        given = recipe[name]
        return compact_json(_expand(given, ctx)) if isinstance(given, dict) else _raw(given, ctx)
    members = {**base, **_expand(recipe.get(f"{name}_with", {}), ctx)}
    for dropped in recipe.get(f"{name}_without", []):
        del members[dropped]
    return compact_json(members)


def _text(parts: str | list[Any], ctx: _Context, segments: dict[str, str]) -> str:
    """The token's text from a template over ``${h}``, ``${p}``, ``${s}``, ``${token}``
    (``|std``: standard base64 alphabet; ``|bits``: a non-zero unused trailing bit)."""

    def segment(expression: str) -> str:
        name, _, spelling = expression.partition("|")
        value = segments[name]
        if spelling == "std":
            assert "-" in value or "_" in value, f"${{{name}}} has no - or _ to respell"
            return value.replace("-", "+").replace("_", "/")
        if spelling == "bits":
            return _nonzero_trailing_bits(value)
        assert not spelling, f"unknown spelling {spelling!r}"
        return value

    def piece(part: Any) -> str:
        if isinstance(part, str):
            return _PLACEHOLDER.sub(
                lambda m: segment(m.group(1)) if m.group(1).split("|")[0] in segments else str(ctx.resolve(m.group(1))),
                part,
            )
        if set(part) == {"repeat", "times"}:
            return str(part["repeat"]) * int(part["times"])
        raise CorpusError(f"unknown text part {part!r}")

    return "".join(piece(part) for part in ([parts] if isinstance(parts, str) else parts))


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _nonzero_trailing_bits(segment: str) -> str:
    unused = {2: 4, 3: 2}[len(segment) % 4]
    last = _ALPHABET.index(segment[-1])
    assert last % (1 << unused) == 0
    return segment[:-1] + _ALPHABET[last + 1]


# ---------------------------------------------------------------- signatures


def _signature(spec: str, kept: bytes, signing_input: bytes, ctx: _Context) -> bytes:
    """``source|op|op...`` (README.md, "Signatures")."""
    source, *operations = spec.split("|")
    kind, _, argument = source.partition(":")
    signers = ctx.world.signers
    if kind == "keep":
        value = kept
    elif kind == "sign":
        key = signers[argument].private_key
        value = sign(algorithm_of(key), key, signing_input)
    elif kind == "hmac":
        digest, signer, encoding = argument.split(":")
        secret = key_encodings(signers[signer].public_key, signers[signer].kid)[encoding]
        value = hmac.new(secret, signing_input, _HMAC[digest]).digest()
    elif kind == "of":
        value = decode_parts(ctx.world.tokens[argument])[2]
    elif kind in ("zero", "ff"):
        value = (b"\x00" if kind == "zero" else b"\xff") * int(argument)
    elif kind == "hex":
        value = bytes.fromhex(argument)
    elif kind == "empty":
        value = b""
    else:
        raise CorpusError(f"unknown signature source {source!r}")
    for operation in operations:
        value = _signature_operation(operation, value)
    return value


def _signature_operation(operation: str, value: bytes) -> bytes:
    name, _, argument = operation.partition(":")

    def number(text: str, **known: int) -> int:
        return _sum(text, lambda constant: {**_CONSTANTS, **known}[constant])

    if name == "ed_s_plus_l":  # RFC 8032 §5.1.7: S must be below L
        s = int.from_bytes(value[32:], "little") + int(argument) * ED25519_L
        return value[:32] + s.to_bytes(32, "little")
    if name == "ed_s":
        return value[:32] + number(argument).to_bytes(32, "little")
    if name == "ed_r":
        return bytes.fromhex(argument) + value[32:]
    if name in ("es_r", "es_s"):
        r, s = int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big")
        if name == "es_r":
            r = number(argument, r=r, s=s)
        else:
            s = number(argument, r=r, s=s)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if name == "der":  # RFC 7518 §3.4 wants raw r||s, not X9.62 DER
        return encode_dss_signature(int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big"))
    if name == "swap":
        half = len(value) // 2
        return value[half:] + value[:half]
    if name == "flip":
        index = int(argument)
        return value[:index] + bytes([value[index] ^ 1]) + value[index + 1 :]
    if name == "truncate":
        return value[: int(argument)]
    if name == "append":
        return value + bytes.fromhex(argument)
    raise CorpusError(f"unknown signature operation {operation!r}")


def key_encodings(key: PublicKey, kid: str) -> dict[str, bytes]:
    """The spellings of a public key an attacker might try as an HMAC secret."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        compressed = raw
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        raw = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        compressed = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk = public_jwk(key)
    return {
        "raw": raw,
        "compressed": compressed,
        "der": der,
        "pem": pem,
        "pem-no-newline": pem.rstrip(b"\n"),
        "pem-crlf": pem.replace(b"\n", b"\r\n"),
        "base64-der": base64.b64encode(der),
        "base64": base64.b64encode(raw),
        "base64url": b64url(raw).encode("ascii"),
        "hex": raw.hex().encode("ascii"),
        "jwk": json.dumps(jwk).encode("utf-8"),
        "jwk-compact": json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode("utf-8"),
        "jwks": json.dumps({"keys": [{**jwk, "kid": kid}]}, separators=(",", ":")).encode("utf-8"),
        "openssh": key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
        "kid": kid.encode("ascii"),
    }

"""The region and its root key; offices, their signing keys and their API tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy import select

from registry.errors import AlreadyExists, InvalidInput, KeyUnavailable, NotAuthenticated, RegionNotInitialised
from registry.identifiers import make_credit_code
from registry.models import ApiToken, Base, Region, SigningKey
from registry.offices import (
    ACTIVE,
    API_TOKEN_PREFIX,
    RETIRED,
    active_key,
    add_office,
    authenticate,
    get_office,
    issue_api_token,
    revoke_api_tokens,
    rotate_key,
    signing_key_for,
)
from registry.regions import current_region, init_region, root_fingerprint
from signing.errors import KeyStorageError
from signing.keystore import KeyRing, decrypt_private_key
from tests.conftest import OFFICE_CODE, PUBLIC_URL, TEST_PASSPHRASE, make_office
from tests.registry.builders import error_fields

THIRD_OFFICE_CODE = make_credit_code("12310000425006117")
BASE64URL = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _rfc7638_ed25519(public_key: ed25519.Ed25519PublicKey) -> str:
    """RFC 7638 §3 for an OKP key, written out by hand: required members, sorted, no spaces."""
    x = _b64url(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    canonical = '{"crv":"Ed25519","kty":"OKP","x":"' + x + '"}'
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def _add(
    session, keyring, clock, code=THIRD_OFFICE_CODE, types=("DL",), name="浦东新区市场监督管理局", algorithm="EdDSA"
):
    return add_office(
        session, keyring, credit_code=code, name=name, types=list(types), algorithm=algorithm, now=clock(), actor="test"
    )


# ---------------------------------------------------------------- region


def test_init_creates_the_region_with_an_ed25519_root_key(session, region):
    stored = current_region(session)
    assert (stored.code, stored.name, stored.public_url) == ("310000", "上海市", PUBLIC_URL)
    assert stored.root_public_jwk["kty"] == "OKP"
    assert stored.root_public_jwk["crv"] == "Ed25519"
    assert stored.root_kid == root_fingerprint(stored)


def test_public_url_loses_its_trailing_slash(session, keyring, clock):
    region = init_region(
        session, keyring, code="310000", name="上海市", public_url=PUBLIC_URL + "/", now=clock(), actor="test"
    )
    assert region.public_url == PUBLIC_URL


def test_region_is_not_initialised_before_init(session):
    with pytest.raises(RegionNotInitialised, match="region init"):
        current_region(session)


@pytest.mark.parametrize("code", ["310000", "110000"], ids=["same-code", "other-code"])
def test_second_init_is_refused(session, keyring, clock, region, code):
    with pytest.raises(AlreadyExists, match="already initialised"):
        init_region(session, keyring, code=code, name="北京市", public_url=PUBLIC_URL, now=clock(), actor="test")
    assert len(session.scalars(select(Region)).all()) == 1


@pytest.mark.parametrize(
    ("changes", "bad_fields"),
    [
        pytest.param({"code": "31000"}, ["code"], id="code-five-digits"),
        pytest.param({"code": "3100000"}, ["code"], id="code-seven-digits"),
        pytest.param({"code": "010000"}, ["code"], id="code-leading-zero"),
        pytest.param({"code": "31000A"}, ["code"], id="code-letter"),
        pytest.param({"code": "310000\n"}, ["code"], id="code-trailing-newline"),
        pytest.param({"code": "３１００００"}, ["code"], id="code-fullwidth-digits"),
        pytest.param({"name": ""}, ["name"], id="name-empty"),
        pytest.param({"name": "上海\u202e市"}, ["name"], id="name-bidi-override"),
        pytest.param({"public_url": "ftp://ecert.sh.example"}, ["public_url"], id="url-ftp"),
        pytest.param({"public_url": "javascript:alert(1)"}, ["public_url"], id="url-javascript"),
        pytest.param({"public_url": "https://"}, ["public_url"], id="url-no-host"),
        pytest.param({"public_url": "ecert.sh.example"}, ["public_url"], id="url-no-scheme"),
        pytest.param({"public_url": PUBLIC_URL + "/?a=1"}, ["public_url"], id="url-query"),
        pytest.param({"public_url": PUBLIC_URL + "/#v"}, ["public_url"], id="url-fragment"),
        pytest.param(
            {"code": "31", "name": " ", "public_url": "ftp://x"}, ["code", "name", "public_url"], id="all-at-once"
        ),
    ],
)
def test_bad_region_input_is_refused_field_by_field(session, keyring, clock, changes, bad_fields):
    arguments = {"code": "310000", "name": "上海市", "public_url": PUBLIC_URL} | changes
    with pytest.raises(InvalidInput) as refused:
        init_region(session, keyring, now=clock(), actor="test", **arguments)
    assert error_fields(refused.value) == bad_fields
    assert session.scalars(select(Region)).first() is None


def test_root_private_key_is_stored_as_encrypted_pkcs8_pem(session, region):
    pem = current_region(session).root_private_key
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    with pytest.raises(TypeError, match="encrypted"):
        serialization.load_pem_private_key(pem, password=None)
    # The passphrase itself is not the PKCS#8 password: it is stretched with scrypt first.
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(pem, password=TEST_PASSPHRASE.encode())


def test_root_private_key_decrypts_only_with_the_passphrase(session, region):
    stored = current_region(session)
    root = decrypt_private_key(stored.root_private_key, stored.root_kid, TEST_PASSPHRASE)
    assert isinstance(root, ed25519.Ed25519PrivateKey)
    assert _rfc7638_ed25519(root.public_key()) == stored.root_kid
    seed = root.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    der = base64.b64decode(b"".join(stored.root_private_key.splitlines()[1:-1]))
    assert seed not in der
    with pytest.raises(KeyStorageError, match="could not be decrypted"):
        decrypt_private_key(stored.root_private_key, stored.root_kid, TEST_PASSPHRASE + "x")
    # The kid salts the key derivation: the right passphrase under another kid fails too.
    with pytest.raises(KeyStorageError):
        decrypt_private_key(stored.root_private_key, "another-kid", TEST_PASSPHRASE)


def test_root_fingerprint_is_the_rfc7638_thumbprint_of_the_root_public_key(session, region):
    stored = current_region(session)
    root = decrypt_private_key(stored.root_private_key, stored.root_kid, TEST_PASSPHRASE)
    assert root_fingerprint(stored) == _rfc7638_ed25519(root.public_key())


def test_root_fingerprint_matches_the_rfc8037_test_vector():
    # RFC 8037 Appendix A.2 (public key) and A.3 (its RFC 7638 thumbprint).
    region = Region(
        root_public_jwk={"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    )
    assert root_fingerprint(region) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


# ---------------------------------------------------------------- offices


def test_add_office_creates_the_office_its_key_and_a_token(session, keyring, clock, region):
    office, key, token = _add(session, keyring, clock, code=THIRD_OFFICE_CODE.lower(), types=["pq", "DL", " DL "])
    assert office.credit_code == THIRD_OFFICE_CODE
    assert office.types == ["DL", "PQ"]
    assert (key.office_id, key.state, key.algorithm, key.types) == (office.id, ACTIVE, "EdDSA", ["DL", "PQ"])
    assert key.not_before == clock().replace(microsecond=0)
    assert key.not_after is None
    assert authenticate(session, token).id == office.id


@pytest.mark.parametrize(
    ("changes", "bad_fields"),
    [
        pytest.param({"code": THIRD_OFFICE_CODE[:-1] + "0"}, ["code"], id="credit-code-bad-check-char"),
        pytest.param({"code": THIRD_OFFICE_CODE[:-1]}, ["code"], id="credit-code-17-chars"),
        pytest.param({"types": ["XX"]}, ["types"], id="unknown-type"),
        pytest.param({"types": ["DL", "XX"]}, ["types"], id="one-unknown-type"),
        pytest.param({"types": []}, ["types"], id="no-types"),
        pytest.param({"types": [" "]}, ["types"], id="blank-type"),
        pytest.param({"name": ""}, ["name"], id="name-empty"),
        pytest.param({"name": "浦东\u200b市场监督管理局"}, ["name"], id="name-zero-width-space"),
        pytest.param({"code": "X", "name": "\x00", "types": ["XX"]}, ["code", "name", "types"], id="all-at-once"),
    ],
)
def test_bad_office_input_is_refused_field_by_field(session, keyring, clock, region, changes, bad_fields):
    arguments = {"code": THIRD_OFFICE_CODE, "types": ["DL"], "name": "浦东新区市场监督管理局"} | changes
    with pytest.raises(InvalidInput) as refused:
        _add(session, keyring, clock, **arguments)
    assert error_fields(refused.value) == bad_fields
    assert session.scalars(select(SigningKey)).all() == []


@pytest.mark.parametrize("code", [OFFICE_CODE, OFFICE_CODE.lower()], ids=["same-spelling", "lower-case"])
def test_duplicate_office_is_refused(session, keyring, clock, office, code):
    with pytest.raises(AlreadyExists, match=OFFICE_CODE):
        _add(session, keyring, clock, code=code)


def test_no_office_before_the_region(session, keyring, clock):
    with pytest.raises(RegionNotInitialised):
        _add(session, keyring, clock)


def test_signing_key_is_limited_to_the_offices_types(session, other_office):
    assert signing_key_for(session, other_office.office, "DL").kid == other_office.kid
    for type_code in ("BL", "PQ"):
        with pytest.raises(KeyUnavailable, match=f"no active key for type {type_code}"):
            signing_key_for(session, other_office.office, type_code)


def test_es256_office_gets_a_p256_key(session, keyring, clock, region):
    es256 = make_office(session, keyring, clock, THIRD_OFFICE_CODE, ["DL"], algorithm="ES256")
    key = session.get(SigningKey, es256.kid)
    assert key.algorithm == "ES256"
    assert (key.public_jwk["kty"], key.public_jwk["crv"]) == ("EC", "P-256")
    private = decrypt_private_key(key.private_key, key.kid, TEST_PASSPHRASE)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(private.curve, ec.SECP256R1)


# ---------------------------------------------------------------- key rotation


def test_rotate_key_retires_the_old_key_and_activates_a_new_one(session, keyring, clock, office):
    clock.advance(days=30)
    old, new = rotate_key(session, keyring, office.office, algorithm=None, now=clock(), actor="test")
    session.commit()
    assert old.kid == office.kid
    assert (old.state, old.not_after) == (RETIRED, clock())
    assert (new.state, new.not_after, new.not_before) == (ACTIVE, None, clock())
    assert new.kid != old.kid
    assert (new.algorithm, new.types) == (old.algorithm, old.types)
    assert active_key(session, office.office).kid == new.kid
    states = {key.kid: key.state for key in session.scalars(select(SigningKey))}
    assert states == {old.kid: RETIRED, new.kid: ACTIVE}


def test_rotate_key_may_change_the_algorithm(session, keyring, clock, office):
    _old, new = rotate_key(session, keyring, office.office, algorithm="ES256", now=clock(), actor="test")
    assert new.algorithm == "ES256"
    assert new.public_jwk["kty"] == "EC"


def test_rotating_twice_leaves_one_active_key(session, keyring, clock, office):
    rotate_key(session, keyring, office.office, algorithm=None, now=clock(), actor="test")
    clock.advance(seconds=1)
    _old, newest = rotate_key(session, keyring, office.office, algorithm=None, now=clock(), actor="test")
    session.commit()
    active = session.scalars(select(SigningKey).where(SigningKey.state == ACTIVE)).all()
    assert [key.kid for key in active] == [newest.kid]


# ---------------------------------------------------------------- API tokens


def test_api_token_has_the_prefix_and_at_least_128_bits(office, other_office):
    for token in (office.token, other_office.token):
        assert token.startswith(API_TOKEN_PREFIX)
        secret = token.removeprefix(API_TOKEN_PREFIX)
        assert set(secret) <= BASE64URL
        assert len(secret) * 6 >= 128
    assert office.token != other_office.token


def test_api_token_is_stored_only_as_its_sha256_digest(session, office):
    (stored,) = session.scalars(select(ApiToken).where(ApiToken.office_id == office.office.id))
    assert stored.digest == hashlib.sha256(office.token.encode()).hexdigest()
    assert len(stored.prefix) < len(office.token) // 2


def test_clear_api_token_appears_in_no_column_of_any_table(session, office, other_office):
    secrets_in_clear = [office.token, office.token.removeprefix(API_TOKEN_PREFIX)]
    secrets_in_clear += [other_office.token, other_office.token.removeprefix(API_TOKEN_PREFIX)]
    scanned = 0
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)).mappings():
            for column, value in row.items():
                text = value.decode("latin-1") if isinstance(value, bytes) else json.dumps(value, default=str)
                scanned += 1
                for secret in secrets_in_clear:
                    assert secret not in text, f"{table.name}.{column} holds the clear API token"
    assert scanned > 0


def test_authenticate_returns_the_tokens_office(session, office, other_office):
    assert authenticate(session, office.token).id == office.office.id
    assert authenticate(session, other_office.token).id == other_office.office.id


@pytest.mark.parametrize(
    "bearer",
    [
        pytest.param(lambda token: API_TOKEN_PREFIX + secrets.token_urlsafe(32), id="unknown"),
        pytest.param(lambda token: token.removeprefix(API_TOKEN_PREFIX), id="without-prefix"),
        pytest.param(lambda token: "Bearer " + token, id="with-scheme"),
        pytest.param(lambda token: token + " ", id="trailing-space"),
        pytest.param(lambda token: token[:-1], id="truncated"),
        pytest.param(lambda token: token.upper(), id="upper-case"),
        pytest.param(lambda token: "", id="empty"),
        pytest.param(lambda token: API_TOKEN_PREFIX, id="prefix-only"),
        pytest.param(lambda token: token + "A" * 200, id="overlong"),
        pytest.param(lambda token: hashlib.sha256(token.encode()).hexdigest(), id="stored-digest"),
        pytest.param(lambda token: API_TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest(), id="prefixed-digest"),
    ],
)
def test_authenticate_refuses_unknown_and_malformed_tokens(session, office, bearer):
    with pytest.raises(NotAuthenticated, match="invalid API token"):
        authenticate(session, bearer(office.token))


def test_revoked_token_is_refused_and_a_new_one_works(session, clock, office, other_office):
    assert revoke_api_tokens(session, office.office, now=clock(), actor="test") == 1
    session.commit()
    with pytest.raises(NotAuthenticated):
        authenticate(session, office.token)
    # Revocation is per office.
    assert authenticate(session, other_office.token).id == other_office.office.id
    fresh = issue_api_token(session, office.office, now=clock(), actor="test")
    session.commit()
    assert authenticate(session, fresh).id == office.office.id
    with pytest.raises(NotAuthenticated):
        authenticate(session, office.token)


def test_revoking_again_revokes_nothing(session, clock, office):
    revoke_api_tokens(session, office.office, now=clock(), actor="test")
    assert revoke_api_tokens(session, office.office, now=clock(), actor="test") == 0


def test_a_wrong_passphrase_creates_no_key(session, region, clock):
    """A mistyped passphrase must not leave keys under two passphrases in one database."""
    wrong = KeyRing("not-the-deployment-passphrase")
    with pytest.raises(KeyStorageError, match="could not be decrypted"):
        add_office(
            session,
            wrong,
            credit_code="11310000MB03195470",
            name="某局",
            types=["DL"],
            algorithm="EdDSA",
            now=clock(),
            actor="test",
        )
    session.rollback()
    assert session.scalars(select(SigningKey)).all() == []


def test_offices_are_found_by_any_spelling_of_their_code(session, office):
    spaced = " ".join([office.code[:9], office.code[9:].lower()])
    assert get_office(session, spaced).id == office.office.id

"""The offline bundle: exported by our region (registry.bundle.export_bundle), read back
(verify.bundle.read_bundle) and used by a verifier with no database and no network
(a TrustStore of the bundle's copies, capped by its expiry, and the reference catalog).

Our region has pinned the peer (330000, a real deployment on loopback) and synced it,
so the bundle holds both regions' signed lists. Verification from a bundle happens with
the peer's server stopped. Every case runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from deployment import Deployment
from registry.bundle import BUNDLE_TYPE, export_bundle
from registry.regions import current_region, root_fingerprint
from registry.roots import rotate_root
from registry.status_list import sign_with_status_key
from signing.algorithms import generate_private_key
from signing.jwk import public_jwk, thumbprint
from signing.keystore import KeyRing
from signing.tokens import encode_token
from tests.conftest import FixedClock
from tests.verify.conftest import LEEWAY, b64url, compact_json, decode_parts
from tests.verify.peer_server import ACTOR, PEER_CODE, Home, PeerRegion, payload_of
from verify.bundle import Bundle, BundleRefused, read_bundle
from verify.report import VerificationReport
from verify.trust import TrustStore
from verify.verifier import Verifier, reference_catalog

pytest_plugins = ["tests.verify.conftest_peers"]

OWN_CODE = "310000"


@dataclass(frozen=True)
class Certificates:
    own: str
    peer: str


@pytest.fixture
def certificates(
    home: Home, recognised_peer: PeerRegion, issue: Callable[..., dict[str, Any]], office: Any
) -> Certificates:
    """A certificate of ours and one of the peer's, the peer synced after issuing it."""
    own = issue("DL", office)["token"]
    peer = recognised_peer.issue("DL")["token"]
    assert home.sync().ok
    return Certificates(own=own, peer=peer)


def export(deployment: Deployment, keyring: KeyRing, clock: FixedClock, lifetime: timedelta | None = None) -> str:
    with deployment.session() as session:
        bundle = export_bundle(
            session, keyring, now=clock(), actor=ACTOR, **({"lifetime": lifetime} if lifetime else {})
        )
        session.commit()
        return bundle


def our_fingerprint(deployment: Deployment) -> str:
    with deployment.read_session() as session:
        return root_fingerprint(current_region(session))


def verify_offline(bundle: Bundle, clock: FixedClock, token: str) -> VerificationReport:
    """Verify with the bundle alone: no registry session, no fetcher, the reference catalog."""
    trust = TrustStore(now=clock(), own=None, copies=bundle.copies, valid_until=bundle.expires_at)
    return Verifier(None, now=clock(), leeway=LEEWAY, trust=trust, catalog=reference_catalog()).verify(token)


def verdict(report: VerificationReport) -> tuple[str, str]:
    return report.verdict.value, report.code


def with_payload(bundle: str, payload: dict[str, Any]) -> str:
    """The bundle's header and signature around another payload (a tampered copy)."""
    header, _payload, signature = bundle.split(".")
    return f"{header}.{b64url(compact_json(payload))}.{signature}"


def resigned_by_us(deployment: Deployment, keyring: KeyRing, payload: dict[str, Any]) -> str:
    with deployment.read_session() as session:
        return sign_with_status_key(current_region(session), keyring, payload, BUNDLE_TYPE)


# ---------------------------------------------------------------- accepted


def test_a_fresh_bundle_verifies_our_and_the_peers_certificates_offline(
    deployment: Deployment,
    keyring: KeyRing,
    clock: FixedClock,
    certificates: Certificates,
    recognised_peer: PeerRegion,
) -> None:
    """Pinned with our root, a fresh bundle makes both regions' genuine certificates VALID
    from the held status lists, with the peer unreachable and no database read."""
    text = export(deployment, keyring, clock)
    recognised_peer.stop()

    bundle = read_bundle(text, fingerprint=our_fingerprint(deployment))

    assert (bundle.issuer, bundle.root_fingerprint) == (OWN_CODE, our_fingerprint(deployment))
    assert sorted(bundle.copies) == [OWN_CODE, PEER_CODE]
    for token in (certificates.own, certificates.peer):
        report = verify_offline(bundle, clock, token)
        assert (*verdict(report), report.status_source) == ("VALID", "OK", "status-list")


def test_an_unpinned_bundle_reports_the_root_it_names(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, certificates: Certificates
) -> None:
    """Without a pin the bundle's own root is used, and reported for a person to compare."""
    bundle = read_bundle(export(deployment, keyring, clock))

    assert bundle.root_fingerprint == our_fingerprint(deployment)


def test_a_stale_bundle_is_undetermined(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, certificates: Certificates
) -> None:
    """Past the bundle's expiry every region's verdict is UNDETERMINED TRUSTLIST_STALE,
    though each trust list inside would still be current on its own."""
    bundle = read_bundle(
        export(deployment, keyring, clock, timedelta(minutes=30)), fingerprint=our_fingerprint(deployment)
    )

    clock.advance(minutes=29)
    assert verdict(verify_offline(bundle, clock, certificates.peer)) == ("VALID", "OK")
    clock.advance(minutes=1)
    for token in (certificates.own, certificates.peer):
        assert verdict(verify_offline(bundle, clock, token)) == ("UNDETERMINED", "TRUSTLIST_STALE")


def test_a_bundle_pinned_with_an_older_root_is_accepted_after_a_rotation(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, certificates: Certificates
) -> None:
    """A service hall that pinned our root before we rotated it follows the rotation."""
    old = our_fingerprint(deployment)
    clock.advance(minutes=5)
    with deployment.session() as session:
        rotate_root(session, keyring, now=clock(), actor=ACTOR)
        session.commit()

    bundle = read_bundle(export(deployment, keyring, clock), fingerprint=old)

    assert bundle.root_fingerprint == our_fingerprint(deployment) != old
    assert verdict(verify_offline(bundle, clock, certificates.own)) == ("VALID", "OK")


def test_the_genuine_payload_signed_again_by_our_status_key_is_accepted(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, certificates: Certificates
) -> None:
    """The control for the refusals below: re-signing is not what they are refused for."""
    text = resigned_by_us(deployment, keyring, payload_of(export(deployment, keyring, clock)))

    assert read_bundle(text, fingerprint=our_fingerprint(deployment)).issuer == OWN_CODE


# ---------------------------------------------------------------- refused


def test_a_bundle_pinned_with_a_wrong_fingerprint_is_refused(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, certificates: Certificates
) -> None:
    """A pin that is not our root (nor one it handed over from) refuses the bundle."""
    stranger = thumbprint(generate_private_key("EdDSA").public_key())

    with pytest.raises(BundleRefused, match="trust list"):
        read_bundle(export(deployment, keyring, clock), fingerprint=stranger)


def test_a_bundle_pinned_with_the_peers_root_is_refused(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, certificates: Certificates, recognised_peer: PeerRegion
) -> None:
    """The peer's root (whose list is inside) does not vouch for a bundle we exported."""
    with pytest.raises(BundleRefused):
        read_bundle(export(deployment, keyring, clock), fingerprint=recognised_peer.fingerprint)


def test_a_tampered_bundle_is_refused(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, certificates: Certificates
) -> None:
    """A payload changed after signing (a longer life) no longer matches the signature."""
    text = export(deployment, keyring, clock)
    payload = payload_of(text)
    payload["exp"] += 7 * 24 * 3600

    with pytest.raises(BundleRefused, match="status key"):
        read_bundle(with_payload(text, payload), fingerprint=our_fingerprint(deployment))


@pytest.mark.parametrize("header_kid", ["ours", "theirs"])
def test_a_bundle_signed_by_another_regions_status_key_is_refused(
    deployment: Deployment,
    keyring: KeyRing,
    clock: FixedClock,
    certificates: Certificates,
    recognised_peer: PeerRegion,
    header_kid: str,
) -> None:
    """Our bundle's payload signed by the peer's status key, whether the header names our
    status key or the peer's, is not our bundle."""
    text = export(deployment, keyring, clock)
    their_kid, their_key = recognised_peer.status_key()
    kid = decode_parts(text)[0]["kid"] if header_kid == "ours" else their_kid

    with pytest.raises(BundleRefused, match="status key"):
        read_bundle(
            encode_token(payload_of(text), their_key, kid, typ=BUNDLE_TYPE), fingerprint=our_fingerprint(deployment)
        )


def test_a_bundle_with_a_region_twice_is_refused(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, certificates: Certificates
) -> None:
    """Two entries for one region (which copy would count?) refuse the bundle, even
    properly signed by our status key."""
    payload = payload_of(export(deployment, keyring, clock))
    peer_entry = next(entry for entry in payload["regions"] if entry["code"] == PEER_CODE)
    payload["regions"].append(dict(peer_entry))

    with pytest.raises(BundleRefused, match="each region appears once"):
        read_bundle(resigned_by_us(deployment, keyring, payload), fingerprint=our_fingerprint(deployment))


# ---------------------------------------------------------------- what each region's copies allow


def test_a_peers_status_list_keeps_its_own_short_expiry_in_a_bundle(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, certificates: Certificates
) -> None:
    """The peer's status list (1 h) expires long before a 24 h bundle: its certificates
    are then UNDETERMINED STATUS_UNAVAILABLE, while ours (our list is signed for the
    bundle's lifetime) stay VALID."""
    bundle = read_bundle(
        export(deployment, keyring, clock, timedelta(hours=24)), fingerprint=our_fingerprint(deployment)
    )
    clock.advance(hours=1)

    assert verdict(verify_offline(bundle, clock, certificates.peer)) == ("UNDETERMINED", "STATUS_UNAVAILABLE")
    assert verdict(verify_offline(bundle, clock, certificates.own)) == ("VALID", "OK")


def peer_entry_under_another_root(deployment: Deployment, keyring: KeyRing, clock: FixedClock, **entry: Any) -> str:
    """Our bundle, signed again by our status key, naming a stranger's root for the peer
    (so the peer's list no longer verifies), with ``entry``'s members changed too."""
    payload = payload_of(export(deployment, keyring, clock))
    stranger = generate_private_key("EdDSA").public_key()
    for region_entry in payload["regions"]:
        if region_entry["code"] == PEER_CODE:
            region_entry.update(root={**public_jwk(stranger), "kid": thumbprint(stranger)}, **entry)
    return resigned_by_us(deployment, keyring, payload)


def test_a_peer_entry_its_root_did_not_sign_leaves_that_region_unknown(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, certificates: Certificates
) -> None:
    """A peer's list is read under the root the exporter follows for it: an entry naming
    another root (and no checkpoint) makes only that region unknown."""
    text = peer_entry_under_another_root(deployment, keyring, clock, checkpoint=None)
    bundle = read_bundle(text, fingerprint=our_fingerprint(deployment))

    assert verdict(verify_offline(bundle, clock, certificates.peer)) == ("INVALID", "REGION_NOT_RECOGNISED")
    assert verdict(verify_offline(bundle, clock, certificates.own)) == ("VALID", "OK")


def test_a_checkpoint_of_a_region_whose_list_does_not_verify_refuses_the_bundle(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, certificates: Certificates
) -> None:
    """With a checkpoint present, a peer entry whose list does not verify under its root
    cannot have that checkpoint checked: the whole bundle is refused (docs/bundle.md)."""
    text = peer_entry_under_another_root(deployment, keyring, clock)

    with pytest.raises(BundleRefused, match="checkpoint"):
        read_bundle(text, fingerprint=our_fingerprint(deployment))


def test_our_certificates_stay_verifiable_for_the_bundles_whole_lifetime(
    deployment: Deployment, keyring: KeyRing, clock: FixedClock, certificates: Certificates
) -> None:
    """docs/bundle.md: our status list is signed for the bundle's lifetime, so a bundle
    settles our certificates for its whole lifetime (a 24 h bundle, exported when our
    newest trust list still had 7 of its 24 hours, is still good 8 hours later)."""
    clock.advance(hours=17)
    bundle = read_bundle(
        export(deployment, keyring, clock, timedelta(hours=24)), fingerprint=our_fingerprint(deployment)
    )
    clock.advance(hours=8)

    assert clock() < bundle.expires_at
    assert verdict(verify_offline(bundle, clock, certificates.own)) == ("VALID", "OK")

"""Region administrators' commands: ``region``, ``office``, ``partner``, ``bundle`` and ``demo``."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import click
from flask.cli import AppGroup, with_appcontext

from console import Outcome, cli_actor, reporting, running_deployment
from registry.bundle import MAX_LIFETIME as MAX_BUNDLE_LIFETIME
from registry.bundle import export_bundle
from registry.errors import FieldError, InvalidInput
from registry.offices import add_office as add_office_record
from registry.offices import get_office, issue_api_token, mark_key_compromised, revoke_api_tokens, rotate_key
from registry.partners import add_partner, get_partner, list_partners, new_token, revoke_partner
from registry.regions import current_region, init_region, root_fingerprint
from registry.roots import rotate_root
from registry.times import iso_utc, parse_duration
from registry.trust_list import newest_trust_list, publish_trust_list
from signing.algorithms import ALGORITHMS, require_algorithm


@click.group("region", cls=AppGroup)
def region_group() -> None:
    """This deployment's region."""


@region_group.command("init")
@click.option("--code", required=True, help="GB/T 2260 code, e.g. 310000.")
@click.option("--name", required=True, help="Region name, e.g. 上海市.")
@click.option("--public-url", default=None, help="Public base URL (default: ECERT_PUBLIC_URL).")
@click.option("--trust-list-lifetime", default="24h", show_default=True, help="How long a trust list is current.")
@click.option("--status-list-lifetime", default="1h", show_default=True, help="How long a status list is current.")
@reporting
def init_command(
    code: str, name: str, public_url: str | None, trust_list_lifetime: str, status_list_lifetime: str
) -> Outcome:
    """Create the region, its root key, the reference catalog and the first trust list."""
    deployment = running_deployment()
    with deployment.session() as session:
        region = init_region(
            session,
            deployment.keyring,
            code=code,
            name=name,
            public_url=public_url or deployment.settings.public_url,
            now=deployment.now(),
            actor=cli_actor(),
            trust_list_lifetime=_duration("trust_list_lifetime", trust_list_lifetime),
            status_list_lifetime=_duration("status_list_lifetime", status_list_lifetime),
        )
        published = publish_trust_list(session, deployment.keyring, now=deployment.now(), actor=cli_actor())
        session.commit()
        return _region_outcome(
            region.code, region.name, region.public_url, root_fingerprint(region), published.sequence, "created"
        )


@region_group.command("show")
@reporting
def show_command() -> Outcome:
    """Print code, name, public URL, root fingerprint (RFC 7638) and the newest trust list's sequence.

    Read only: it shows the newest published list (``null`` if none yet), never publishes.
    """
    deployment = running_deployment()
    with deployment.read_session() as session:
        region = current_region(session)
        newest = newest_trust_list(session)
        return _region_outcome(
            region.code,
            region.name,
            region.public_url,
            root_fingerprint(region),
            None if newest is None else newest.sequence,
            None,
        )


@region_group.command("rotate-root")
@reporting
def rotate_root_command() -> Outcome:
    """Replace the root key: the old root signs a statement naming the new one, and a
    trust list signed by the new root is published (peers follow it on their next sync)."""
    deployment = running_deployment()
    with deployment.session() as session:
        rotation = rotate_root(session, deployment.keyring, now=deployment.now(), actor=cli_actor())
        session.commit()
        region = current_region(session)
        outcome = _region_outcome(
            region.code, region.name, region.public_url, rotation.new_kid, rotation.sequence, "root rotated"
        )
        outcome.result["previous_root_fingerprint"] = rotation.old_kid
        outcome.lines.insert(2, f"previous root fingerprint: {rotation.old_kid} (its private key is erased)")
        return outcome


def _region_outcome(
    code: str, name: str, url: str, fingerprint: str, sequence: int | None, verb: str | None
) -> Outcome:
    lines = [
        f"region {code} {name}" + (f" {verb}" if verb else ""),
        f"public URL: {url}",
        f"root fingerprint: {fingerprint}",
        f"trust list sequence: {'(none yet)' if sequence is None else sequence}",
    ]
    result = {
        "code": code,
        "name": name,
        "public_url": url,
        "root_fingerprint": fingerprint,
        "trust_list_sequence": sequence,
    }
    return Outcome(result, lines)


@click.group("office", cls=AppGroup)
def office_group() -> None:
    """Issuing offices, their keys and API tokens."""


@office_group.command("add")
@click.option("--code", required=True, help="Unified social credit code (18 characters).")
@click.option("--name", required=True)
@click.option("--types", required=True, help="Certificate types it may issue, e.g. BL,DL.")
@click.option("--alg", "algorithm", type=click.Choice(ALGORITHMS), default="EdDSA", show_default=True)
@reporting
def add_command(code: str, name: str, types: str, algorithm: str) -> Outcome:
    """Create an office, its first signing key, and an API token (shown once)."""
    deployment = running_deployment()
    with deployment.session() as session:
        office, key, token = add_office_record(
            session,
            deployment.keyring,
            credit_code=code,
            name=name,
            types=types.split(","),
            algorithm=require_algorithm(algorithm),
            now=deployment.now(),
            actor=cli_actor(),
        )
        session.commit()
        result = {
            "code": office.credit_code,
            "name": office.name,
            "types": office.types,
            "kid": key.kid,
            "alg": key.algorithm,
            "api_token": token,
        }
        lines = [
            f"office {office.credit_code} {office.name} created for {','.join(office.types)}",
            f"signing key {key.kid} ({key.algorithm})",
            f"API token (shown once, keep it secret): {token}",
        ]
        return Outcome(result, lines)


@office_group.command("rotate-key")
@click.option("--code", required=True, help="The office's credit code.")
@click.option("--alg", "algorithm", type=click.Choice(ALGORITHMS), default=None, help="Default: the old key's.")
@reporting
def rotate_key_command(code: str, algorithm: str | None) -> Outcome:
    """Retire the active key (it keeps verifying what it signed) and make a new one."""
    deployment = running_deployment()
    with deployment.session() as session:
        office = get_office(session, code)
        old, new = rotate_key(
            session,
            deployment.keyring,
            office,
            algorithm=require_algorithm(algorithm) if algorithm else None,
            now=deployment.now(),
            actor=cli_actor(),
        )
        session.commit()
        result = {
            "code": office.credit_code,
            "retired_kid": old.kid if old else None,
            "kid": new.kid,
            "alg": new.algorithm,
        }
        return Outcome(result, [f"retired {old.kid if old else '(none)'}; new key {new.kid} ({new.algorithm})"])


@office_group.command("key-compromised")
@click.option("--kid", required=True, help="The compromised key's kid.")
@click.option("--since", required=True, help="ISO 8601 time with a time zone, e.g. 2026-03-01T08:00:00+08:00.")
@reporting
def key_compromised_command(kid: str, since: str) -> Outcome:
    """Mark a key compromised since a moment: it stops signing; certificates it signed
    from then on verify as KEY_COMPROMISED. An active key is replaced; a trust list is published."""
    deployment = running_deployment()
    with deployment.session() as session:
        compromise = mark_key_compromised(
            session, deployment.keyring, kid, _parse_since(since), now=deployment.now(), actor=cli_actor()
        )
        session.commit()
        key, replacement = compromise.key, compromise.replacement
        assert key.compromised_since is not None
        result = {
            "kid": key.kid,
            "office": key.office.credit_code,
            "state": key.state,
            "compromised_since": iso_utc(key.compromised_since),
            "replacement_kid": None if replacement is None else replacement.kid,
            "trust_list_sequence": compromise.trust_list.sequence,
        }
        lines = [
            f"key {key.kid} of office {key.office.credit_code} compromised since {result['compromised_since']}",
            f"new active key {replacement.kid}" if replacement else "the office's active key is unchanged",
            f"trust list {compromise.trust_list.sequence} published",
        ]
        return Outcome(result, lines)


def _parse_since(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise InvalidInput(
            "the compromise time is not an ISO 8601 time", [FieldError("since", "e.g. 2026-03-01T08:00:00Z")]
        ) from error


@office_group.command("new-token")
@click.option("--code", required=True, help="The office's credit code.")
@reporting
def new_token_command(code: str) -> Outcome:
    """Issue another API token for the office (shown once)."""
    deployment = running_deployment()
    with deployment.session() as session:
        office = get_office(session, code)
        token = issue_api_token(session, office, now=deployment.now(), actor=cli_actor())
        session.commit()
        return Outcome({"code": office.credit_code, "api_token": token}, [f"API token (shown once): {token}"])


@office_group.command("revoke-tokens")
@click.option("--code", required=True, help="The office's credit code.")
@reporting
def revoke_tokens_command(code: str) -> Outcome:
    """Revoke every API token of the office."""
    deployment = running_deployment()
    with deployment.session() as session:
        office = get_office(session, code)
        count = revoke_api_tokens(session, office, now=deployment.now(), actor=cli_actor())
        session.commit()
        return Outcome({"code": office.credit_code, "revoked": count}, [f"revoked {count} API token(s)"])


@click.command("demo")
@with_appcontext
@reporting
def demo_command() -> Outcome:
    """Load a demo region, office and sample certificates when the database is empty."""
    from registry.demo import load_demo

    deployment = running_deployment()
    with deployment.session() as session:
        demo = load_demo(
            session,
            deployment.keyring,
            public_url=deployment.settings.public_url,
            now=deployment.now(),
            actor=cli_actor(),
        )
        session.commit()
        lines = [
            "demo region 310000 上海市 " + ("created" if demo.created else "already present"),
            f"demo office {demo.office_code}; API token (shown once): {demo.api_token}",
            *(f"sample {c['type']} certificate {c['id']}: {c['qr_text']}" for c in demo.certificates),
        ]
        return Outcome(
            {
                "created": demo.created,
                "office": demo.office_code,
                "api_token": demo.api_token,
                "certificates": demo.certificates,
            },
            lines,
        )


@click.group("bundle", cls=AppGroup)
def bundle_group() -> None:
    """Offline bundles for service halls that lose connectivity."""


@bundle_group.command("export")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--lifetime", default="24h", show_default=True, help="How long it stays valid (at most 7d).")
@reporting
def bundle_export_command(out_file: Path, lifetime: str) -> Outcome:
    """Write one signed file with the trust lists and status lists of every recognised region."""
    deployment = running_deployment()
    now = deployment.now()
    if not timedelta(0) < _duration("lifetime", lifetime) <= MAX_BUNDLE_LIFETIME:
        raise InvalidInput("bad --lifetime", [FieldError("lifetime", f"at most {MAX_BUNDLE_LIFETIME.days} days")])
    with deployment.session() as session:
        bundle = export_bundle(
            session, deployment.keyring, now=now, actor=cli_actor(), lifetime=_duration("lifetime", lifetime)
        )
        session.commit()
    partial = out_file.with_name(out_file.name + ".partial")
    partial.write_text(bundle + "\n", encoding="ascii")
    partial.replace(out_file)  # never a half-written bundle under its final name
    expires = iso_utc(now + _duration("lifetime", lifetime))
    return Outcome(
        {"out": str(out_file), "bytes": len(bundle) + 1, "expires_at": expires},
        [f"bundle written to {out_file} ({len(bundle) + 1} bytes), valid until {expires}"],
    )


def _duration(name: str, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise InvalidInput(f"bad --{name.replace('_', '-')}", [FieldError(name, str(error))]) from error


@click.group("partner", cls=AppGroup)
def partner_group() -> None:
    """Partner regions: other regions' systems that verify here under a higher rate limit."""


@partner_group.command("add")
@click.option("--region", "region_code", required=True, help="The partner's GB/T 2260 code, e.g. 440000.")
@click.option("--name", required=True, help="The partner's name, e.g. 广东省.")
@reporting
def partner_add_command(region_code: str, name: str) -> Outcome:
    """Admit a partner region and print its API token (shown once)."""
    deployment = running_deployment()
    with deployment.session() as session:
        partner, token = add_partner(
            session, region_code=region_code, name=name, now=deployment.now(), actor=cli_actor()
        )
        session.commit()
        return Outcome(
            {"region": partner.region_code, "name": partner.name, "api_token": token},
            [
                f"partner {partner.region_code} {partner.name} added",
                f"API token (shown once, keep it secret): {token}",
            ],
        )


@partner_group.command("new-token")
@click.option("--region", "region_code", required=True, help="The partner's region code.")
@reporting
def partner_new_token_command(region_code: str) -> Outcome:
    """Issue another API token for a partner (shown once): to rotate, or to re-admit."""
    deployment = running_deployment()
    with deployment.session() as session:
        partner = get_partner(session, region_code)
        token = new_token(session, partner, now=deployment.now(), actor=cli_actor())
        session.commit()
        return Outcome({"region": partner.region_code, "api_token": token}, [f"API token (shown once): {token}"])


@partner_group.command("list")
@reporting
def partner_list_command() -> Outcome:
    """Every partner region and how many live API tokens it holds (0: revoked)."""
    deployment = running_deployment()
    with deployment.read_session() as session:
        partners = [
            {"region": partner.region_code, "name": partner.name, "live_tokens": live}
            for partner, live in list_partners(session)
        ]
    lines = [f"{p['region']} {p['name']}: {p['live_tokens']} live token(s)" for p in partners] or ["no partners"]
    return Outcome({"partners": partners}, lines)


@partner_group.command("revoke")
@click.option("--region", "region_code", required=True, help="The partner's region code.")
@reporting
def partner_revoke_command(region_code: str) -> Outcome:
    """Revoke every API token of a partner: it verifies anonymously from then on."""
    deployment = running_deployment()
    with deployment.session() as session:
        partner = get_partner(session, region_code)
        count = revoke_partner(session, partner, now=deployment.now(), actor=cli_actor())
        session.commit()
        return Outcome({"region": partner.region_code, "revoked": count}, [f"revoked {count} API token(s)"])

"""CLI of partner regions: ``flask --app app partner add|new-token|list|revoke``."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from console import Outcome, cli_actor, reporting, running_deployment
from registry.partners import add_partner, get_partner, list_partners, new_token, revoke_partner


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

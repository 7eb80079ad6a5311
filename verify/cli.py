"""``verify`` and ``peer`` commands.

* ``verify TOKEN [--bundle FILE [--fingerprint FP]]``: the same answer as ``POST
  /api/v1/verify``; with a bundle, no network and no database are used.
* ``peer add --url URL --fingerprint FP``, ``peer sync``, ``peer list``: the regions
  this one recognises (``docs/peers.md``); ``peer token --region R [--clear]``: the
  partner token a peer issued us (read from standard input, held sealed).
* ``log audit``: our log, registry and audit trail, and every peer's log (``docs/log.md``).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click
from flask.cli import AppGroup, with_appcontext

from console import Outcome, cli_actor, reporting, running_deployment
from registry.audit import HEAD_ID
from registry.log_audit import audit_registry
from registry.models import AuditHead, Peer
from registry.regions import current_region
from registry.times import iso_utc
from verify.bundle import read_bundle
from verify.peer_tokens import clear_partner_token, set_partner_token
from verify.peers import add_peer, get_peer, health, held_trust_list, list_peers, sync_peer
from verify.report import VerificationReport, answer
from verify.trust import TrustStore
from verify.trust_lists import TrustListError
from verify.verifier import Verifier, reference_catalog
from verify.witness import audit_peer_log


@click.command("verify")
@click.argument("token")
@click.option(
    "--bundle",
    "bundle_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Verify offline against this bundle (`bundle export`): no network, no database.",
)
@click.option(
    "--fingerprint",
    default=None,
    help="With --bundle: the exporting region's pinned root fingerprint (strongly advised).",
)
@with_appcontext
@reporting
def verify_command(token: str, bundle_file: Path | None, fingerprint: str | None) -> Outcome:
    """Verify a token (or a QR text ``<URL>/v#<token>``). Exits 1 unless VALID."""
    deployment = running_deployment()
    now = deployment.now()
    if bundle_file is not None:
        bundle = read_bundle(bundle_file.read_text(encoding="ascii", errors="replace"), fingerprint=fingerprint)
        trust = TrustStore(now=now, own=None, copies=bundle.copies, valid_until=bundle.expires_at)
        verifier = Verifier(
            None, now=now, leeway=deployment.settings.verify_leeway, trust=trust, catalog=reference_catalog()
        )
        outcome = _verified(verifier, token)
        outcome.result["bundle"] = {
            "issuer": bundle.issuer,
            "root_fingerprint": bundle.root_fingerprint,
            "pinned": fingerprint is not None,
            "expires_at": iso_utc(bundle.expires_at),
            "checkpoints": {code: cp.size for code, cp in sorted(bundle.checkpoints.items())},
        }
        if fingerprint is None:
            outcome.lines.append(
                f"bundle of region {bundle.issuer}, root {bundle.root_fingerprint} (not pinned: compare it, "
                "or pass --fingerprint)"
            )
        return outcome
    with deployment.read_session() as session:
        verifier = deployment.verifier(session, now=now, actor=cli_actor())
        return _verified(verifier, token)


def _verified(verifier: Verifier, token: str) -> Outcome:
    report: VerificationReport = verifier.verify_qr_text(token) if "/v#" in token else verifier.verify(token)
    result = answer(report)
    lines = [f"{result['verdict']} {result['code']}: {result['message']['en']}"]
    if result["certificate"]:
        lines.append(json.dumps(result["certificate"], ensure_ascii=False, indent=2))
    return Outcome(result, lines, exit_code=0 if report.valid else 1)


@click.group("peer", cls=AppGroup)
def peer_group() -> None:
    """Other regions this one recognises (跨区域互认)."""


@peer_group.command("add")
@click.option("--url", required=True, help="The peer's public base URL.")
@click.option("--fingerprint", required=True, help="The peer's root fingerprint, exchanged out of band.")
@reporting
def peer_add_command(url: str, fingerprint: str) -> Outcome:
    """Fetch the peer's trust list, accept it only if the pinned root signed it, and store it."""
    deployment = running_deployment()
    now = deployment.now()
    with deployment.session() as session:
        peer, outcome = add_peer(
            session,
            deployment.fetcher,
            url=url,
            fingerprint=fingerprint,
            now=now,
            actor=cli_actor(),
            keyring=deployment.keyring,
        )
        session.commit()
        result = _peer_row(peer, now)
        lines = [f"peer {peer.region_code} {peer.region_name} added: trust list sequence {peer.sequence}"]
        if not outcome.ok:
            lines.append(f"warning: {outcome.error_code}: {outcome.error}")
        return Outcome(result, lines)


@peer_group.command("sync")
@reporting
def peer_sync_command() -> Outcome:
    """Refresh every peer's trust list and status list. Exits 1 if any peer failed."""
    deployment = running_deployment()
    now = deployment.now()
    outcomes = []
    with deployment.session() as session:
        for peer in list_peers(session):
            outcomes.append(
                sync_peer(session, deployment.fetcher, peer, now=now, actor=cli_actor(), keyring=deployment.keyring)
            )
            session.commit()  # each peer on its own: one peer's failure keeps the others' news
        lines = [
            f"{o.region_code}: sequence {o.sequence}" + ("" if o.ok else f" — {o.error_code}: {o.error}")
            for o in outcomes
        ] or ["no peers"]
        result = {
            "peers": [
                {
                    "region": o.region_code,
                    "sequence": o.sequence,
                    "changed": o.changed,
                    "error": o.error_code,
                    "detail": o.error,
                }
                for o in outcomes
            ]
        }
        return Outcome(result, lines, exit_code=0 if all(o.ok for o in outcomes) else 1)


@peer_group.command("list")
@reporting
def peer_list_command() -> Outcome:
    """Each peer's trust-list sequence, age and health."""
    deployment = running_deployment()
    now = deployment.now()
    with deployment.read_session() as session:
        rows = [_peer_row(peer, now) for peer in list_peers(session)]
    lines = [
        f"{row['region']} {row['name']}  seq {row['sequence']}  age {row['age_seconds']}s  {row['health']}"
        + (f" ({row['last_error']})" if row["last_error"] else "")
        + f"  partner token: {'yes' if row['partner_token_held'] else 'no'}"
        for row in rows
    ] or ["no peers"]
    return Outcome({"peers": rows}, lines)


@peer_group.command("token")
@click.option("--region", "region_code", required=True, help="The peer's region code.")
@click.option("--clear", is_flag=True, help="Remove the token held: the peer is asked anonymously again.")
@reporting
def peer_token_command(region_code: str, clear: bool) -> Outcome:
    """Hold the partner API token the peer issued us, read from standard input (one line),
    sealed with ECERT_KEY_PASSPHRASE. Our online status requests to the peer present it,
    so the peer counts us under its partner rate limit."""
    deployment = running_deployment()
    now = deployment.now()
    # Never an argument: that would land in the shell's history and the process list.
    token = None if clear else _line_from_stdin("partner token")
    with deployment.session() as session:
        peer = get_peer(session, region_code.strip(), lock=True)
        if token is None:
            removed = clear_partner_token(session, peer, now=now, actor=cli_actor())
            session.commit()
            line = (
                f"partner token for {peer.region_code} removed"
                if removed
                else f"no partner token was held for {peer.region_code}"
            )
            return Outcome({"region": peer.region_code, "partner_token_held": False, "removed": removed}, [line])
        set_partner_token(session, deployment.keyring, peer, token, now=now, actor=cli_actor())
        session.commit()
        return Outcome(
            {"region": peer.region_code, "partner_token_held": True},
            [f"partner token for {peer.region_code} held (sealed); presented on its online status requests"],
        )


def _line_from_stdin(what: str) -> str:
    stdin = click.get_text_stream("stdin")
    if stdin.isatty():
        return str(click.prompt(what, hide_input=True, err=True))
    return stdin.readline()


def _peer_row(peer: Peer, now: datetime) -> dict[str, object]:
    return {
        "region": peer.region_code,
        "name": peer.region_name,
        "url": peer.url,
        "pinned_fingerprint": peer.pinned_fingerprint,
        "root_fingerprint": peer.root_fingerprint,
        "sequence": peer.sequence,
        "age_seconds": int((now - peer.trust_list_fetched_at).total_seconds()),
        "trust_list_expires_at": iso_utc(peer.trust_list_expires_at),
        "status_list_expires_at": None if peer.status_list_expires_at is None else iso_utc(peer.status_list_expires_at),
        "status_list_fresh": peer.status_list_expires_at is not None and now < peer.status_list_expires_at,
        "health": health(peer, now),
        "last_error": peer.last_error_code,
        "last_error_detail": peer.last_error,
        "partner_token_held": peer.partner_token is not None,  # never the token itself
    }


@click.group("log", cls=AppGroup)
def log_group() -> None:
    """This region's transparency log, and the peers' logs it witnesses."""


@log_group.command("audit")
@reporting
def log_audit_command() -> Outcome:
    """Check our own log, registry and audit trail for direct edits, and every peer's log
    for a rewritten history. Exits 1 on any inconsistency (an unreachable peer is a warning)."""
    deployment = running_deployment()
    with deployment.read_session() as session:
        own = [{"subject": f.subject, "detail": f.detail} for f in audit_registry(session)]
        peers: list[dict[str, str]] = []
        warnings: list[dict[str, str]] = []
        for peer in list_peers(session):
            try:
                listed = held_trust_list(peer)
            except TrustListError as error:
                peers.append({"region": peer.region_code, "code": error.code, "detail": str(error)})
                continue
            for finding in audit_peer_log(
                deployment.fetcher,
                listed,
                held_note=peer.log_checkpoint,
                held_size=peer.log_size,
                held_root=peer.log_root,
            ):
                row = {"region": finding.region, "code": finding.code, "detail": finding.detail}
                (warnings if finding.code == "PEER_UNREACHABLE" else peers).append(row)
        size = current_region(session).log_size
        head = session.get(AuditHead, HEAD_ID)
        # Record these outside the database (a ticket, a print-out): a chain rebuilt from
        # scratch by someone with the table owner's rights would end at another hash.
        chain = None if head is None else {"records": head.records, "head": head.chain_hash.hex()}
    lines = [f"own log: {size} entries, " + (f"{len(own)} problem(s)" if own else "consistent")]
    lines += [f"  {f['subject']}: {f['detail']}" for f in own]
    lines += [f"peer {p['region']}: {p['code']}: {p['detail']}" for p in peers]
    lines += [f"warning: peer {w['region']}: {w['detail']}" for w in warnings]
    result = {
        "consistent": not own and not peers,
        "tree_size": size,
        "audit_chain": chain,
        "own": own,
        "peers": peers,
        "warnings": warnings,
    }
    if chain:
        lines.insert(1, f"audit trail: {chain['records']} records, chain head {chain['head']}")
    return Outcome(result, lines, exit_code=0 if result["consistent"] else 1)

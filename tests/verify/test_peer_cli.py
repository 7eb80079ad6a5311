"""The administrators' commands for cross-region recognition, run through Flask's CLI
runner against our real database: ``peer add``, ``peer list``, ``peer sync``,
``bundle export``, ``verify --bundle`` and ``region rotate-root``.

The peers are real deployments served on loopback; ``--json`` prints one JSON object
on the last line, and a failure exits non-zero with a one-line reason on stderr.
Every case runs on SQLite and PostgreSQL (our database).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask.testing import FlaskCliRunner

from app import create_app
from tests.conftest import TEST_PASSPHRASE, FixedClock
from tests.verify.peer_server import PEER_CODE, Home, PeerRegion, payload_of, random_fingerprint
from verify.bundle import read_bundle

pytest_plugins = ["tests.verify.conftest_peers"]

PEER_ROW = {
    "region",
    "name",
    "url",
    "pinned_fingerprint",
    "root_fingerprint",
    "sequence",
    "age_seconds",
    "trust_list_expires_at",
    "status_list_expires_at",
    "health",
    "last_error",
    "last_error_detail",
}

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(runner: FlaskCliRunner) -> Invoke:
    def run(*args: str) -> Result:
        return runner.invoke(args=list(args))

    return run


def last_json(result: Result) -> dict[str, Any]:
    """The one JSON object on the last stdout line."""
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {result.stderr!r}"
    document = json.loads(lines[-1])
    assert isinstance(document, dict)
    return document


def assert_failed(result: Result, code: str) -> dict[str, Any]:
    """Exit 1, a one-line reason naming ``code`` on stderr, ``{error, detail}`` on stdout."""
    assert result.exit_code == 1, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and code in result.stderr
    answer = last_json(result)
    assert answer["error"] == code and answer["detail"]
    return answer


def peers_listed(invoke: Invoke) -> list[dict[str, Any]]:
    listed = invoke("peer", "list", "--json")
    assert listed.exit_code == 0, listed.output
    return last_json(listed)["peers"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------- peer add, list, sync


def test_peer_add_pins_the_region_and_prints_its_row(invoke: Invoke, home: Home, peer: PeerRegion) -> None:
    """``peer add`` with the right fingerprint exits 0 and prints the stored peer."""
    result = invoke("peer", "add", "--url", peer.url + "/", "--fingerprint", peer.fingerprint, "--json")

    assert result.exit_code == 0, result.output
    row = last_json(result)
    assert set(row) >= PEER_ROW
    assert (row["region"], row["name"], row["url"]) == (PEER_CODE, "浙江省", peer.url)
    assert row["pinned_fingerprint"] == row["root_fingerprint"] == peer.fingerprint
    assert (row["health"], row["last_error"], row["age_seconds"]) == ("ok", None, 0)
    assert row["status_list_expires_at"] is not None
    assert home.peers() == [PEER_CODE]


@pytest.mark.parametrize(
    ("fingerprint", "code"),
    [
        pytest.param("random", "TRUSTLIST_UNTRUSTED", id="another-root"),
        pytest.param("short", "VALIDATION_FAILED", id="not-a-thumbprint"),
    ],
)
def test_peer_add_with_a_bad_fingerprint_fails_and_stores_nothing(
    invoke: Invoke, home: Home, peer: PeerRegion, fingerprint: str, code: str
) -> None:
    """A fingerprint that is not the peer's root exits 1 with the reason; nothing is stored."""
    pinned = random_fingerprint() if fingerprint == "random" else peer.fingerprint[:20]

    result = invoke("peer", "add", "--url", peer.url, "--fingerprint", pinned, "--json")

    assert_failed(result, code)
    assert home.peers() == []
    assert peers_listed(invoke) == []


def test_peer_list_shows_sequence_age_and_health(
    invoke: Invoke, home: Home, recognised_peer: PeerRegion, clock: FixedClock
) -> None:
    """``peer list`` shows each peer's region, sequence, age (seconds since its list was
    fetched), health and last error: ok, then failing after a failed sync, then stale."""
    held = home.peer_row()
    assert held is not None
    clock.advance(minutes=10)

    [ok] = peers_listed(invoke)
    assert (ok["region"], ok["sequence"], ok["age_seconds"], ok["health"], ok["last_error"]) == (
        PEER_CODE,
        held.sequence,
        600,
        "ok",
        None,
    )

    recognised_peer.stop()
    assert invoke("peer", "sync").exit_code == 1
    [failing] = peers_listed(invoke)
    assert (failing["health"], failing["last_error"]) == ("failing", "PEER_UNREACHABLE")
    assert failing["sequence"] == held.sequence

    clock.advance(hours=24)
    [stale] = peers_listed(invoke)
    assert stale["health"] == "stale"

    text = invoke("peer", "list")
    assert text.exit_code == 0
    assert f"{PEER_CODE} 浙江省  seq {held.sequence}" in text.stdout and "stale (PEER_UNREACHABLE)" in text.stdout


def test_peer_list_age_counts_from_the_last_confirming_sync(
    invoke: Invoke, clock: FixedClock, recognised_peer: Any
) -> None:
    """As docs/peers.md defines it, the age runs from the last fetch that confirmed the
    held list current: it grows between syncs, and a sync finding the same list resets it."""
    clock.advance(minutes=10)
    [before] = peers_listed(invoke)
    assert invoke("peer", "sync").exit_code == 0
    [after] = peers_listed(invoke)

    assert (before["age_seconds"], after["age_seconds"]) == (600, 0)
    assert after["sequence"] == before["sequence"]


def test_peer_sync_exits_0_when_every_peer_synced(invoke: Invoke, recognised_peer: PeerRegion) -> None:
    """A sync of healthy peers exits 0 and reports each one's sequence and change."""
    newer = recognised_peer.publish()

    result = invoke("peer", "sync", "--json")

    assert result.exit_code == 0, result.output
    [synced] = last_json(result)["peers"]
    assert (synced["region"], synced["changed"], synced["error"]) == (PEER_CODE, True, None)
    assert synced["sequence"] == payload_of(newer)["seq"]


def test_peer_sync_exits_1_when_any_peer_fails(
    invoke: Invoke, home: Home, recognised_peer: PeerRegion, second_peer: PeerRegion
) -> None:
    """One unreachable peer among healthy ones: the others still sync, the exit is 1, and
    the failing peer is named with its error code."""
    assert home.add(second_peer.url, second_peer.fingerprint).ok
    second_peer.publish()
    recognised_peer.stop()

    result = invoke("peer", "sync", "--json")

    assert result.exit_code == 1, result.output
    outcomes = {entry["region"]: entry for entry in last_json(result)["peers"]}
    assert (outcomes[PEER_CODE]["error"], outcomes[PEER_CODE]["changed"]) == ("PEER_UNREACHABLE", False)
    assert (outcomes["320000"]["error"], outcomes["320000"]["changed"]) == (None, True)


# ---------------------------------------------------------------- bundle export and verify --bundle


@pytest.fixture
def certificates(
    home: Home, recognised_peer: PeerRegion, issue: Callable[..., dict[str, Any]], office: Any
) -> dict[str, str]:
    """Our certificate and the peer's (the peer synced after issuing it), by region."""
    own = issue("DL", office)["token"]
    theirs = recognised_peer.issue("DL")["token"]
    assert home.sync().ok
    return {"310000": own, PEER_CODE: theirs}


def test_bundle_export_writes_the_file_atomically(
    invoke: Invoke, certificates: dict[str, str], tmp_path: Path, region: Any
) -> None:
    """``bundle export --out`` replaces the file whole (written aside, then renamed): the
    old content is gone, no partial file is left, and the file is the signed bundle."""
    out = tmp_path / "hall" / "bundle.jws"
    out.parent.mkdir()
    out.write_text("an older bundle that is much longer than nothing\n" * 1000, encoding="ascii")

    result = invoke("bundle", "export", "--out", str(out), "--lifetime", "8h", "--json")

    assert result.exit_code == 0, result.output
    reported = last_json(result)
    written = out.read_text(encoding="ascii")
    assert (reported["out"], reported["bytes"]) == (str(out), len(written))
    assert reported["expires_at"] == "2026-03-01T16:00:00Z"
    assert sorted(path.name for path in out.parent.iterdir()) == ["bundle.jws"]
    assert written.endswith("\n") and written.count("\n") == 1
    assert read_bundle(written, fingerprint=region.root_kid).issuer == "310000"


@pytest.fixture
def bundle_file(invoke: Invoke, certificates: dict[str, str], tmp_path: Path) -> Path:
    out = tmp_path / "bundle.jws"
    result = invoke("bundle", "export", "--out", str(out), "--lifetime", "2h")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def empty_deployment_invoke(tmp_path: Path, clock: FixedClock) -> Any:
    """The CLI of a deployment whose database has no tables at all (a service hall's laptop)."""
    app = create_app(
        {
            "TESTING": True,
            "ECERT_DATABASE_URL": f"sqlite:///{tmp_path / 'hall' / 'empty.db'}",
            "ECERT_KEY_PASSPHRASE": TEST_PASSPHRASE,
            "ECERT_CLOCK": clock,
        }
    )
    runner = app.test_cli_runner()
    yield lambda *args: runner.invoke(args=list(args))
    app.extensions["ecert"].dispose()


@pytest.mark.parametrize("issuer", ["310000", PEER_CODE])
def test_verify_with_a_bundle_needs_no_network_and_no_database(
    empty_deployment_invoke: Invoke,
    certificates: dict[str, str],
    bundle_file: Path,
    recognised_peer: PeerRegion,
    region: Any,
    issuer: str,
) -> None:
    """``verify TOKEN --bundle FILE --fingerprint FP`` on an empty deployment, with the
    peer unreachable, answers VALID for both regions' certificates, from the bundle."""
    recognised_peer.stop()

    result = empty_deployment_invoke(
        "verify", certificates[issuer], "--bundle", str(bundle_file), "--fingerprint", region.root_kid, "--json"
    )

    assert result.exit_code == 0, result.output
    answer = last_json(result)
    assert (answer["verdict"], answer["code"], answer["status_source"]) == ("VALID", "OK", "status-list")
    assert answer["issuer"]["region"] == issuer
    assert {name: answer["bundle"][name] for name in ("issuer", "root_fingerprint", "pinned", "expires_at")} == {
        "issuer": "310000",
        "root_fingerprint": region.root_kid,
        "pinned": True,
        "expires_at": "2026-03-01T10:00:00Z",
    }


def test_verify_with_a_stale_bundle_is_undetermined(
    invoke: Invoke, certificates: dict[str, str], bundle_file: Path, clock: FixedClock
) -> None:
    """Past the bundle's expiry the answer is UNDETERMINED TRUSTLIST_STALE, exit 1."""
    clock.advance(hours=2)

    result = invoke("verify", certificates[PEER_CODE], "--bundle", str(bundle_file), "--json")

    assert result.exit_code == 1
    assert (last_json(result)["verdict"], last_json(result)["code"]) == ("UNDETERMINED", "TRUSTLIST_STALE")


def test_verify_with_a_bundle_and_a_wrong_fingerprint_fails(
    invoke: Invoke, certificates: dict[str, str], bundle_file: Path
) -> None:
    """A pin the bundle does not chain to refuses the bundle (no verdict at all)."""
    result = invoke(
        "verify", certificates[PEER_CODE], "--bundle", str(bundle_file), "--fingerprint", random_fingerprint(), "--json"
    )

    assert_failed(result, "BUNDLE_REFUSED")


def test_verify_online_asks_the_issuing_region(invoke: Invoke, certificates: dict[str, str]) -> None:
    """Without a bundle, ``verify`` answers like the API: the peer's status online."""
    result = invoke("verify", certificates[PEER_CODE], "--json")

    assert result.exit_code == 0, result.output
    answer = last_json(result)
    assert (answer["verdict"], answer["status_source"]) == ("VALID", "issuer")


# ---------------------------------------------------------------- region rotate-root


def test_region_rotate_root_prints_the_new_and_previous_fingerprints(invoke: Invoke, region: Any) -> None:
    """``region rotate-root --json`` names the new root and the previous one; ``region
    show`` then prints the new one; the old one is gone from the region."""
    before = last_json(invoke("region", "show", "--json"))

    result = invoke("region", "rotate-root", "--json")

    assert result.exit_code == 0, result.output
    rotated = last_json(result)
    assert rotated["previous_root_fingerprint"] == before["root_fingerprint"] == region.root_kid
    assert rotated["root_fingerprint"] != before["root_fingerprint"]
    assert rotated["trust_list_sequence"] == (before["trust_list_sequence"] or 0) + 1
    after = last_json(invoke("region", "show", "--json"))
    assert (after["root_fingerprint"], after["trust_list_sequence"]) == (
        rotated["root_fingerprint"],
        rotated["trust_list_sequence"],
    )

    text = invoke("region", "rotate-root")
    assert f"previous root fingerprint: {rotated['root_fingerprint']}" in text.stdout

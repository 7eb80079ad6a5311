"""The transparency log over HTTP, checked the way an outsider would: with the published
verifier key, the C2SP note format and the RFC 6962 verifiers, nothing from the server's
own code paths but the bytes it serves."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask.testing import FlaskClient

from registry.demo import sample_request
from registry.merkle import leaf_hash, verify_consistency, verify_inclusion
from signing.notes import open_note, parse_checkpoint, parse_verifier_key


def b64(values: list[str]) -> list[bytes]:
    return [base64.b64decode(value) for value in values]


def issue(client: FlaskClient, office: Any, type_code: str = "DL") -> dict[str, Any]:
    response = client.post("/api/v1/certificates", json=sample_request(type_code), headers=office.auth)
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[no-any-return]


def checkpoint(client: FlaskClient) -> tuple[int, bytes]:
    """The current checkpoint's size and root, after checking its signature with the published key."""
    info = client.get("/api/v1/log").json
    name, key = parse_verifier_key(info["verifier_key"])
    assert name == info["origin"]
    response = client.get("/api/v1/log/checkpoint")
    assert response.mimetype == "text/plain"
    text, signers = open_note(response.get_data(as_text=True), {name: key})
    assert signers == [name]
    parsed = parse_checkpoint(text)
    assert parsed.origin == info["origin"]
    return parsed.size, parsed.root_hash


def test_every_issuance_and_status_change_is_an_entry(client: FlaskClient, office: Any) -> None:
    first, second = issue(client, office), issue(client, office, "PQ")
    changed = client.post(
        f"/api/v1/certificates/{first['id']}/status",
        json={"status": "SUSPENDED", "reason": "审查"},
        headers=office.auth,
    )
    assert changed.status_code == 200, changed.json

    assert client.get("/api/v1/log").json["tree_size"] == 3
    entries = b64(client.get("/api/v1/log/entries?start=0&end=3").json["entries"])
    assert entries[0] == first["token"].encode("ascii")
    assert entries[1] == second["token"].encode("ascii")
    assert b'"status":"02"' in entries[2] and first["id"].encode() in entries[2]


def test_inclusion_and_consistency_proofs_verify_under_signed_checkpoints(client: FlaskClient, office: Any) -> None:
    tokens = [issue(client, office)["token"] for _ in range(3)]
    size1, root1 = checkpoint(client)
    tokens += [issue(client, office)["token"] for _ in range(4)]
    size2, root2 = checkpoint(client)
    assert (size1, size2) == (3, 7)

    for index, token in enumerate(tokens):
        proof = b64(client.get(f"/api/v1/log/proof/inclusion?index={index}&size={size2}").json["proof"])
        assert verify_inclusion(leaf_hash(token.encode("ascii")), index, size2, proof, root2)
    proof = b64(client.get(f"/api/v1/log/proof/consistency?from={size1}&to={size2}").json["proof"])
    assert verify_consistency(size1, size2, root1, root2, proof)
    assert not verify_consistency(size1, size2, root1, root1, proof)


def test_a_verification_answer_carries_the_tokens_place_in_the_log(client: FlaskClient, office: Any) -> None:
    issue(client, office)
    token = issue(client, office)["token"]

    log = client.post("/api/v1/verify", json={"token": token}).json["log"]

    name, key = parse_verifier_key(client.get("/api/v1/log").json["verifier_key"])
    text, _ = open_note(log["checkpoint"], {name: key})
    signed = parse_checkpoint(text)
    assert (log["index"], log["tree_size"]) == (1, signed.size)
    proof = b64(log["inclusion_proof"])
    assert verify_inclusion(leaf_hash(token.encode("ascii")), log["index"], signed.size, proof, signed.root_hash)


def test_a_forgery_answer_carries_no_log(client: FlaskClient, office: Any) -> None:
    token = issue(client, office)["token"]
    header, payload, signature = token.split(".")
    forged = signature[:10] + ("B" if signature[10] == "A" else "A") + signature[11:]  # always a change
    answer = client.post("/api/v1/verify", json={"token": f"{header}.{payload}.{forged}"}).json
    assert answer["verdict"] == "INVALID" and answer["log"] is None


@pytest.mark.parametrize(
    "query",
    [
        "proof/inclusion?index=1&size=1",
        "proof/inclusion?index=0&size=99",
        "proof/inclusion?index=-1&size=1",
        "proof/consistency?from=0&to=1",
        "proof/consistency?from=2&to=1",
        "proof/consistency?from=1&to=99",
        "entries?start=0&end=99",
        "entries?start=1&end=1",
        "entries?start=0&end=01",
        "entries?start=x&end=1",
        "entries?start=0",
    ],
)
def test_out_of_range_or_malformed_queries_are_400(client: FlaskClient, office: Any, query: str) -> None:
    issue(client, office)
    response = client.get(f"/api/v1/log/{query}")
    assert response.status_code == 400
    assert response.json["code"] == "BAD_REQUEST"

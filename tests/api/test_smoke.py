from __future__ import annotations

from registry.demo import sample_request


def test_issue_then_verify(client, office):
    response = client.post("/api/v1/certificates", json=sample_request("DL"), headers=office.auth)
    assert response.status_code == 201, response.json
    answer = client.post("/api/v1/verify", json={"token": response.json["token"]}).json
    assert answer["verdict"] == "VALID"

"""The verification cache across processes: a real gunicorn server with two workers (two
caches), and ``flask office key-compromised`` run in another process. Every worker's next
verification sees the compromise (the database's cache generation moved), on SQLite and
PostgreSQL, with the schema ``db upgrade`` built (its triggers included)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from registry.demo import sample_request
from tests.e2e.live import LiveDeployment, free_port, fresh_database, http

pytestmark = pytest.mark.e2e

OFFICE_CODE = "11310000002418960M"
# Enough requests that both workers answer some (gunicorn's workers accept in turn).
ROUNDS = 12


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDeployment]:
    for database_url in fresh_database(request.param, tmp_path_factory):
        deployment = LiveDeployment(
            folder=tmp_path_factory.mktemp("instance"), database_url=database_url, port=free_port()
        )
        try:
            yield deployment
        finally:
            deployment.stop_all()


def verdicts(url: str, token: str) -> set[str]:
    answers = [http("POST", f"{url}/api/v1/verify", {"token": token}) for _ in range(ROUNDS)]
    assert {answer.status for answer in answers} == {200}
    return {answer.body["code"] for answer in answers}


def test_a_compromise_made_by_the_cli_reaches_every_worker_at_once(live: LiveDeployment) -> None:
    assert live.flask("db", "upgrade").returncode == 0
    live.flask_json("region", "init", "--code", "310000", "--name", "上海市")
    office = live.flask_json("office", "add", "--code", OFFICE_CODE, "--name", "发证中心", "--types", "DL")
    server = live.start_server(workers=2)
    issued = http("POST", f"{server.url}/api/v1/certificates", sample_request("DL"), office["api_token"])
    assert issued.status == 201, issued.body
    token = issued.body["token"]
    assert verdicts(server.url, token) == {"OK"}  # every worker has its view cached now

    since = "2000-01-01T00:00:00Z"  # before the certificate: it counts as signed by a compromised key
    compromised = live.flask_json("office", "key-compromised", "--kid", office["kid"], "--since", since)
    assert compromised["state"] == "compromised"

    assert verdicts(server.url, token) == {"KEY_COMPROMISED"}
    batch = http("POST", f"{server.url}/api/v1/verify/batch", {"tokens": [token, token]})
    assert [answer["code"] for answer in batch.body["answers"]] == ["KEY_COMPROMISED"] * 2

"""Fixtures for the cross-region tests: a second region served over real HTTP, a canned
server to stand at a peer's address, and our region's side of recognising peers.

Test modules load it with ``pytest_plugins = ["tests.verify.conftest_peers"]`` (it is
not a ``conftest.py``, so the existing ones stay as they are); the helpers the tests call
live in :mod:`tests.verify.peer_server`. Our region is the ``app`` of
``tests/conftest.py`` (310000 上海市); the peer is 330000 浙江省 with its own database (a
second SQLite file, or a second PostgreSQL database) and the same
:class:`~tests.conftest.FixedClock`, so moving the clock ages both sides.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import create_engine

from app import create_app
from deployment import Deployment
from registry.identifiers import make_credit_code
from registry.models import Base
from tests.conftest import TEST_PASSPHRASE, FixedClock
from tests.databases import empty_all_tables, postgres_with_schema, sqlite_with_schema
from tests.verify.peer_server import (
    PEER_CODE,
    PEER_NAME,
    PEER_OFFICE_CODE,
    PEER_OFFICE_NAME,
    CannedServer,
    Home,
    PeerRegion,
    start_region,
)

# ---------------------------------------------------------------- the peer's database


@pytest.fixture(scope="session")
def peer_postgres_schema() -> Iterator[str]:
    """A second PostgreSQL database (the peer's), with the schema, dropped at the end."""
    yield from postgres_with_schema("ecert_peer")


@pytest.fixture
def peer_database_url(database_url: str, request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """The peer's own database, on the same kind of server as ours."""
    if database_url.startswith("sqlite"):
        yield sqlite_with_schema(str(tmp_path / "peer.db"))
        return
    url = request.getfixturevalue("peer_postgres_schema")
    yield url
    empty_all_tables(url)


# ---------------------------------------------------------------- servers


@contextmanager
def running_region(database_url: str, clock: FixedClock, **region: Any) -> Iterator[PeerRegion]:
    """A region's app on ``database_url`` (schema created), served on loopback and
    initialised with one office (``region``: :func:`start_region`'s arguments)."""
    app = create_app(
        {
            "TESTING": True,
            "ECERT_DATABASE_URL": database_url,
            "ECERT_KEY_PASSPHRASE": TEST_PASSPHRASE,
            "ECERT_PUBLIC_URL": "http://127.0.0.1",  # unused: the region's URL is where it is served
            "ECERT_CLOCK": clock,
        }
    )
    try:
        running = start_region(app, now=clock(), **region)
        try:
            yield running
        finally:
            running.stop()
    finally:
        app.extensions["ecert"].dispose()


@pytest.fixture
def peer(peer_database_url: str, clock: FixedClock) -> Iterator[PeerRegion]:
    """Region 330000, served over HTTP on loopback, with one office for DL and PQ."""
    with running_region(
        peer_database_url,
        clock,
        code=PEER_CODE,
        name=PEER_NAME,
        office_code=PEER_OFFICE_CODE,
        office_name=PEER_OFFICE_NAME,
        types=["DL", "PQ"],
    ) as region:
        yield region


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    """A server answering whatever bytes the test sets (to stand at a peer's address)."""
    server = CannedServer()
    yield server
    server.stop()


# ---------------------------------------------------------------- our side


@pytest.fixture
def home(deployment: Deployment, clock: FixedClock, region: Any) -> Home:
    """Our region (310000, initialised), acting on its peers."""
    return Home(deployment, clock)


@pytest.fixture
def recognised_peer(home: Home, peer: PeerRegion) -> PeerRegion:
    """The peer, pinned by its root fingerprint (trust list and status list stored)."""
    outcome = home.add(peer.url, peer.fingerprint)
    assert outcome.ok, outcome
    return peer


@pytest.fixture
def relocated_peer(peer: PeerRegion, canned: CannedServer) -> PeerRegion:
    """The peer with its public URL (so every endpoint its signed list names) at the
    canned server: everything we fetch from the peer then comes through ``canned``,
    which serves the list and status list the real peer signed when this fixture ran
    until the test serves something else, and relays every other path to the real peer.
    Not yet pinned."""
    canned.forward_to(peer.url)
    canned.serve_trust_list(peer.move_to(canned.url))
    canned.serve_status_list(peer.status_list())
    return peer


@pytest.fixture
def second_peer(clock: FixedClock, tmp_path: Any) -> Iterator[PeerRegion]:
    """A further region (320000 江苏省), on loopback, for tests that need two peers.

    Its database is always a SQLite file: what such tests examine is our side.
    """
    url = f"sqlite:///{tmp_path / 'second-peer.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    with running_region(
        url,
        clock,
        code="320000",
        name="江苏省",
        office_code=make_credit_code("11320000002418962"),
        office_name="江苏省示范发证中心",
        types=["BL"],
    ) as region:
        yield region

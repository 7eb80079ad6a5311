"""Shared fixtures: databases (SQLite always, PostgreSQL when configured), a fixed clock,
an app per test, and a region with an office.

PostgreSQL tests run when ECERT_TEST_POSTGRES_URL is set (CI sets it). With
ECERT_REQUIRE_POSTGRES=1 an unreachable server fails the run instead of skipping.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy.orm import Session

from app import create_app
from deployment import Deployment
from registry.models import Office
from registry.offices import add_office
from registry.regions import init_region
from signing.keystore import KeyRing
from tests.databases import empty_all_tables, postgres_with_schema, sqlite_with_schema

TEST_PASSPHRASE = "test-passphrase-not-for-production"
PUBLIC_URL = "https://ecert.sh.example"
START = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
OFFICE_CODE = "11310000002418960M"
OTHER_OFFICE_CODE = "11310000MB03195470"
# The suite calls verification far more often than any limit allows; tests/api/test_rate_limits.py
# turns the limits on.
RATE_LIMITS_OFF = {
    "ECERT_VERIFY_RATE_LIMIT": "off",
    "ECERT_PUBLIC_RATE_LIMIT": "off",
    "ECERT_AUTH_FAILURE_LIMIT": "off",
}


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> datetime:
        self.moment += timedelta(**delta)
        return self.moment


# ---------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """A fresh PostgreSQL database with the schema for this test session, dropped afterwards."""
    yield from postgres_with_schema("ecert_test")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """Every database-facing test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_with_schema(str(tmp_path / "ecert.db"))
        return
    url = request.getfixturevalue("postgres_schema")
    yield url
    empty_all_tables(url)


# ---------------------------------------------------------------- app and domain


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


def make_app(database_url: str, clock: FixedClock, **settings: Any) -> Flask:
    """An app on ``database_url`` with the test settings: the test passphrase and public
    URL, ``clock``, rate limits off; ``settings`` override any of them."""
    return create_app(
        {
            "TESTING": True,
            "ECERT_DATABASE_URL": database_url,
            "ECERT_KEY_PASSPHRASE": TEST_PASSPHRASE,
            "ECERT_PUBLIC_URL": PUBLIC_URL,
            "ECERT_CLOCK": clock,
            **RATE_LIMITS_OFF,
            **settings,
        }
    )


def init_test_region(session: Session, keyring: KeyRing, clock: FixedClock, code: str = "310000") -> Any:
    """Region ``code`` (上海市) at the test public URL, committed."""
    created = init_region(session, keyring, code=code, name="上海市", public_url=PUBLIC_URL, now=clock(), actor="test")
    session.commit()
    return created


@pytest.fixture
def app(database_url: str, clock: FixedClock, tmp_path: Any) -> Iterator[Flask]:
    application = make_app(database_url, clock)
    yield application
    application.extensions["ecert"].dispose()


@pytest.fixture
def deployment(app: Flask) -> Deployment:
    return app.extensions["ecert"]  # type: ignore[no-any-return]


@pytest.fixture
def keyring(deployment: Deployment) -> KeyRing:
    return deployment.keyring


@pytest.fixture
def session(deployment: Deployment) -> Iterator[Session]:
    with deployment.session() as db_session:
        yield db_session


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@dataclass
class OfficeFixture:
    office: Office
    kid: str
    token: str
    code: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def region(session: Session, keyring: KeyRing, clock: FixedClock) -> Any:
    return init_test_region(session, keyring, clock)


def make_office(
    session: Session,
    keyring: KeyRing,
    clock: FixedClock,
    code: str,
    types: list[str],
    algorithm: str = "EdDSA",
    name: str = "上海市示范发证中心",
) -> OfficeFixture:
    office, key, token = add_office(
        session, keyring, credit_code=code, name=name, types=types, algorithm=algorithm, now=clock(), actor="test"
    )  # type: ignore[arg-type]
    session.commit()
    return OfficeFixture(office=office, kid=key.kid, token=token, code=office.credit_code)


@pytest.fixture
def office(region: Any, session: Session, keyring: KeyRing, clock: FixedClock) -> OfficeFixture:
    """An office that may issue all three reference types."""
    return make_office(session, keyring, clock, OFFICE_CODE, ["BL", "DL", "PQ"])


@pytest.fixture
def other_office(region: Any, session: Session, keyring: KeyRing, clock: FixedClock) -> OfficeFixture:
    """A second office, for the DL type only."""
    return make_office(session, keyring, clock, OTHER_OFFICE_CODE, ["DL"], name="上海市公安局交通警察总队")

"""The cache generation (registry/generation.py): the database bumps it on every change to
what verification caches, and on nothing else. On SQLite and PostgreSQL, with the schema
of ``create_all`` and with the one the migrations build."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from app import create_app
from registry.demo import sample_request
from registry.generation import current_generation
from registry.issuance import issue_certificate
from registry.models import CertificateType, Office, Region, SigningKey
from registry.offices import add_office, get_office
from registry.regions import init_region
from registry.requests import parse_issuance_request
from signing.keystore import KeyRing
from tests.conftest import OFFICE_CODE, OTHER_OFFICE_CODE, PUBLIC_URL, FixedClock, OfficeFixture
from tests.databases import empty_postgres_database

Change = Callable[[Session], Any]


def generation_after(session: Session, change: Change) -> tuple[int, int]:
    before = current_generation(session)
    change(session)
    session.commit()
    return before, current_generation(session)


def issue_one(keyring: KeyRing, clock: FixedClock) -> Change:
    def change(session: Session) -> None:
        office = get_office(session, OFFICE_CODE)
        issue_certificate(
            session, keyring, office, parse_issuance_request(sample_request("DL")), now=clock(), actor="test"
        )

    return change


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: s.execute(update(Region).values(name="上海")), id="region-name"),
        pytest.param(lambda s: s.execute(update(Region).values(public_url="https://x.example")), id="region-url"),
        pytest.param(lambda s: s.execute(update(Office).values(name="新名称")), id="office"),
        pytest.param(lambda s: s.execute(update(SigningKey).values(types=["DL"])), id="signing-key"),
        pytest.param(lambda s: s.execute(update(CertificateType).values(name_en="x")), id="catalog"),
    ],
)
def test_a_change_to_what_verification_caches_bumps_the_generation(
    session: Session, office: OfficeFixture, change: Change
) -> None:
    before, after = generation_after(session, change)

    assert after > before


def test_a_new_office_and_key_bump_the_generation(
    session: Session, keyring: KeyRing, office: OfficeFixture, clock: FixedClock
) -> None:
    def add(s: Session) -> None:
        add_office(
            s,
            keyring,
            credit_code=OTHER_OFFICE_CODE,
            name="上海市公安局交通警察总队",
            types=["DL"],
            algorithm="EdDSA",
            now=clock(),
            actor="test",
        )

    before, after = generation_after(session, add)

    assert after > before


def test_issuance_and_the_log_leave_the_generation_alone(
    session: Session, keyring: KeyRing, office: OfficeFixture, clock: FixedClock
) -> None:
    # Issuance updates the region row (status index, log size) and appends to the log.
    before, after = generation_after(session, issue_one(keyring, clock))

    assert after == before


def test_a_rolled_back_change_leaves_the_generation(session: Session, office: OfficeFixture) -> None:
    before = current_generation(session)
    session.execute(update(Office).values(name="不算"))
    session.rollback()

    assert current_generation(session) == before


# ---------------------------------------------------------------- through the migrations


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrated_session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    """A session on a database built by ``db upgrade`` (not ``create_all``)."""
    urls = (
        iter([f"sqlite:///{tmp_path / 'migrated.db'}"])
        if request.param == "sqlite"
        else empty_postgres_database("ecert_generation")
    )
    for url in urls:
        application = create_app({"TESTING": True, "ECERT_DATABASE_URL": url, "ECERT_KEY_PASSPHRASE": "x"})
        running = application.extensions["ecert"]
        try:
            with application.app_context():
                flask_migrate.upgrade()
            with running.session() as session:
                yield session
        finally:
            running.dispose()


def test_the_migrations_install_the_triggers(migrated_session: Session) -> None:
    clock = FixedClock()
    assert current_generation(migrated_session) == 0

    def create(s: Session) -> None:
        init_region(s, KeyRing("x"), code="310000", name="上海市", public_url=PUBLIC_URL, now=clock(), actor="test")

    _before, created = generation_after(migrated_session, create)
    _created, renamed = generation_after(migrated_session, lambda s: s.execute(update(Region).values(name="上海")))
    _renamed, counted = generation_after(
        migrated_session, lambda s: s.execute(update(Region).values(log_size=Region.log_size + 0))
    )

    assert 0 < created < renamed == counted

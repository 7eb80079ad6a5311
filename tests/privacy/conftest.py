"""Privacy test helpers: canary resident ID numbers, and one small registry per module.

A canary is a value that must never be shown in full: a valid resident ID number
nobody else uses (so finding it anywhere is a leak, not a coincidence).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from stdnum.cn import ric

from deployment import Deployment
from registry.demo import sample_request
from registry.identifiers import RESIDENT_ID, mask_id_number
from tests.conftest import (
    OFFICE_CODE,
    FixedClock,
    OfficeFixture,
    init_test_region,
    make_app,
    make_office,
)
from tests.databases import sqlite_with_schema


def canary_resident_id(region: str, birth_date: str, sequence: str) -> str:
    """A valid resident ID number (GB 11643: region, YYYYMMDD, 3-digit sequence, check)."""
    body = f"{region}{birth_date}{sequence}"
    number = body + ric.calc_check_digit(body + "0")  # stdnum expects a check position
    assert ric.is_valid(number), number
    return number


def masked(number: str) -> str:
    return mask_id_number(RESIDENT_ID, number)


def assert_no_full_id(text: str | bytes, numbers: list[str], where: str) -> None:
    """None of ``numbers`` appears whole in ``text``, nor the digits masking hides."""
    haystack = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    for number in numbers:
        assert number not in haystack, f"full ID number {number} in {where}"
        assert number[4:-4] not in haystack, f"the hidden digits of {number} in {where}"


@dataclass
class PrivacyRegistry:
    """A region with one office for every reference type, on SQLite, on a fixed clock."""

    app: Flask
    client: FlaskClient
    runner: FlaskCliRunner
    deployment: Deployment
    clock: FixedClock
    office: OfficeFixture

    def issue(self, type_code: str, id_number: str | None = None, **changes: Any) -> dict[str, Any]:
        body = sample_request(type_code, **changes)
        if id_number is not None:
            body["holder"] = {**body["holder"], "id_number": id_number}
        response = self.client.post("/api/v1/certificates", json=body, headers=self.office.auth)
        assert response.status_code == 201, response.json
        return response.json  # type: ignore[no-any-return]

    def change_status(self, certificate_id: str, status: str, reason: str) -> dict[str, Any]:
        response = self.client.post(
            f"/api/v1/certificates/{certificate_id}/status",
            json={"status": status, "reason": reason},
            headers=self.office.auth,
        )
        assert response.status_code == 200, response.json
        return response.json  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def privacy_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivacyRegistry]:
    clock = FixedClock()
    database = sqlite_with_schema(str(tmp_path_factory.mktemp("privacy") / "ecert.db"))
    application = make_app(database, clock)
    running: Deployment = application.extensions["ecert"]
    with running.session() as session:
        init_test_region(session, running.keyring, clock)
        office = make_office(session, running.keyring, clock, OFFICE_CODE, ["BL", "DL", "PQ"])
    yield PrivacyRegistry(application, application.test_client(), application.test_cli_runner(), running, clock, office)
    running.dispose()

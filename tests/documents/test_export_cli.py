"""``flask --app app export-pdfs --office CODE --out DIR``: an office's certificate PDFs in bulk.

Run through Flask's CLI runner against a real database (SQLite and PostgreSQL), with
certificates issued through the API by two offices. Every PDF written is read back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from click.testing import Result
from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug.test import TestResponse

from registry.demo import sample_request
from registry.identifiers import make_credit_code
from tests.conftest import OfficeFixture

UNKNOWN_OFFICE_CODE = make_credit_code("12310000425012345")  # well formed, never added


@pytest.fixture
def export(runner: FlaskCliRunner) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        return runner.invoke(args=["export-pdfs", *args])

    return run


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The output folder (not ``tmp_path`` itself, where the SQLite database lives)."""
    return tmp_path / "pdfs"


@pytest.fixture
def issued(client: FlaskClient, office: OfficeFixture, other_office: OfficeFixture) -> dict[str, list[dict[str, Any]]]:
    """Issuance answers by office code: BL, DL and PQ by ``office``, a DL by ``other_office``."""
    answers: dict[str, list[dict[str, Any]]] = {office.code: [], other_office.code: []}
    for issuer, type_code in [(office, "BL"), (office, "DL"), (office, "PQ"), (other_office, "DL")]:
        response = client.post("/api/v1/certificates", json=sample_request(type_code), headers=issuer.auth)
        assert response.status_code == 201, response.get_data(as_text=True)
        answers[issuer.code].append(json_of(response))
    return answers


def json_of(response: TestResponse) -> dict[str, Any]:
    document = response.get_json()
    assert isinstance(document, dict), response.get_data(as_text=True)
    return document


def last_json(result: Result) -> dict[str, Any]:
    """The JSON object on the last stdout line, checking it is the only one printed."""
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {result.stderr!r}"
    for line in lines[:-1]:
        assert not line.lstrip().startswith("{"), f"more than one JSON object printed: {result.stdout!r}"
    document = json.loads(lines[-1])
    assert isinstance(document, dict)
    return document


def files_in(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()} if folder.exists() else set()


def pdf_subject_and_token(path: Path) -> tuple[str, str]:
    document = pdfium.PdfDocument(path.read_bytes())
    try:
        assert len(document) == 1
        metadata = document.get_metadata_dict()
    finally:
        document.close()
    return metadata["Subject"], metadata["Keywords"].removeprefix("ecert-token:")


# ---------------------------------------------------------------- writing PDFs


@pytest.mark.parametrize("which", ["office", "other_office"])
def test_writes_one_pdf_per_certificate_of_the_office_and_none_of_others(
    export: Callable[..., Result],
    issued: dict[str, list[dict[str, Any]]],
    request: pytest.FixtureRequest,
    out: Path,
    which: str,
) -> None:
    code = request.getfixturevalue(which).code

    result = export("--office", code, "--out", str(out), "--json")

    assert result.exit_code == 0, result.stderr
    own = {answer["id"]: answer["token"] for answer in issued[code]}
    assert files_in(out) == {f"{identifier}.pdf" for identifier in own}
    for identifier, token in own.items():
        assert pdf_subject_and_token(out / f"{identifier}.pdf") == (identifier, token)
    assert last_json(result) == {"office": code, "out": str(out), "written": len(own)}


def test_office_code_is_accepted_as_written_in_lower_case(
    export: Callable[..., Result], issued: dict[str, list[dict[str, Any]]], office: OfficeFixture, out: Path
) -> None:
    result = export("--office", office.code.lower(), "--out", str(out), "--json")

    assert result.exit_code == 0, result.stderr
    assert last_json(result) == {"office": office.code, "out": str(out), "written": 3}


def test_without_json_says_how_many_it_wrote_where(
    export: Callable[..., Result], issued: dict[str, list[dict[str, Any]]], office: OfficeFixture, out: Path
) -> None:
    result = export("--office", office.code, "--out", str(out))

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"wrote 3 PDF(s) of office {office.code} to {out}"


def test_office_without_certificates_writes_nothing_and_succeeds(
    export: Callable[..., Result], other_office: OfficeFixture, out: Path
) -> None:
    result = export("--office", other_office.code, "--out", str(out), "--json")

    assert result.exit_code == 0, result.stderr
    assert files_in(out) == set()
    assert last_json(result) == {"office": other_office.code, "out": str(out), "written": 0}


def test_stale_files_of_an_earlier_run_are_replaced_and_no_part_file_is_left(
    export: Callable[..., Result], issued: dict[str, list[dict[str, Any]]], office: OfficeFixture, out: Path
) -> None:
    first = issued[office.code][0]["id"]
    out.mkdir()
    (out / f"{first}.pdf").write_bytes(b"half a PDF")
    (out / f"{first}.pdf.part").write_bytes(b"%PDF-1.4 interrupted")

    result = export("--office", office.code, "--out", str(out), "--json")

    assert result.exit_code == 0, result.stderr
    assert files_in(out) == {f"{answer['id']}.pdf" for answer in issued[office.code]}
    assert pdf_subject_and_token(out / f"{first}.pdf")[0] == first


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(UNKNOWN_OFFICE_CODE, id="well-formed-unknown"),
        pytest.param(UNKNOWN_OFFICE_CODE[:-1] + "0", id="wrong-check-character"),
        pytest.param("not-a-credit-code", id="malformed"),
        pytest.param("", id="empty"),
    ],
)
def test_unknown_office_fails_with_a_one_line_reason_and_writes_nothing(
    export: Callable[..., Result], issued: dict[str, list[dict[str, Any]]], out: Path, code: str
) -> None:
    result = export("--office", code, "--out", str(out), "--json")

    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception
    reason = result.stderr.strip()
    assert len(reason.splitlines()) == 1, reason
    assert "NOT_FOUND" in reason
    assert last_json(result)["error"] == "NOT_FOUND"
    assert not any(name.endswith((".pdf", ".part")) for name in files_in(out))


def test_out_that_is_a_file_is_a_usage_error_and_the_file_is_untouched(
    export: Callable[..., Result], issued: dict[str, list[dict[str, Any]]], office: OfficeFixture, out: Path
) -> None:
    out.mkdir()
    target = out / "certificates.pdf"
    target.write_bytes(b"keep me")

    result = export("--office", office.code, "--out", str(target), "--json")

    assert result.exit_code == 2
    assert "--out" in result.stderr
    assert target.read_bytes() == b"keep me"


@pytest.mark.parametrize("missing", ["--office", "--out"])
def test_both_options_are_required(export: Callable[..., Result], out: Path, missing: str) -> None:
    given = {"--office": "11310000002418960M", "--out": str(out)}
    del given[missing]

    result = export(*[part for option, value in given.items() for part in (option, value)])

    assert result.exit_code == 2
    assert missing in result.stderr
    assert files_in(out) == set()

"""QR codes for certificates: the matrix (level M, smallest version), its dark runs and the
one filled path drawn from them.

The error-correction level is read back from the symbol itself, twice: from the format
information modules (ISO/IEC 18004 §7.9) and by decoding a rendering with zxing-cpp.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import zxingcpp
from flask.testing import FlaskClient
from PIL import Image
from qrcode.constants import ERROR_CORRECT_L, ERROR_CORRECT_M
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from documents.qr import QUIET_ZONE, QrMatrix, dark_runs, qr_matrix, qr_path_operators
from registry.demo import sample_request
from registry.regions import init_region
from signing.keystore import KeyRing
from tests.conftest import OFFICE_CODE, FixedClock, make_office

# A public URL of realistic length: a provincial government's subdomain.
GOV_PUBLIC_URL = "https://ecert.shanghai.gov.cn"
MAX_VERSION = 15  # 77x77 modules: still read by a phone from a 3 cm print
FORMAT_MASK = 0b101010000010010  # ISO/IEC 18004 §7.9.1: format bits are XORed with this
# The format information's two-bit error-correction indicator, as qrcode names it.
LEVEL_NAMES = {ERROR_CORRECT_L: "L", ERROR_CORRECT_M: "M", 0b11: "Q", 0b10: "H"}


# ---------------------------------------------------------------- reading a symbol back


def json_of(response: TestResponse) -> dict[str, Any]:
    document = response.get_json()
    assert isinstance(document, dict), response.get_data(as_text=True)
    return document


def format_information(matrix: QrMatrix) -> tuple[int, int]:
    """The 15 format bits of both copies (beside the top-left finder, and split between
    the other two), unmasked; positions from ISO/IEC 18004 §7.9.1."""
    modules, size, q = matrix.modules, matrix.size - 2 * QUIET_ZONE, QUIET_ZONE
    first = second = 0
    for i in range(15):
        row = i if i < 6 else i + 1 if i < 8 else size - 15 + i
        column = size - i - 1 if i < 8 else 15 - i if i < 9 else 15 - i - 1
        first |= modules[q + row][q + 8] << i
        second |= modules[q + 8][q + column] << i
    return first ^ FORMAT_MASK, second ^ FORMAT_MASK


def error_correction_level(matrix: QrMatrix) -> str:
    first, second = format_information(matrix)
    assert first == second, "the two copies of the format information disagree"
    return LEVEL_NAMES[first >> 13]


def decoded(matrix: QrMatrix, pixels_per_module: int = 4) -> list[Any]:
    """What zxing-cpp reads from ``matrix`` drawn black on white."""
    image = Image.new("1", (matrix.size, matrix.size), 1)
    image.putdata([0 if dark else 1 for row in matrix.modules for dark in row])
    return list(zxingcpp.read_barcodes(image.resize((matrix.size * pixels_per_module,) * 2, Image.Resampling.NEAREST)))


def matrix_from_runs(size: int, runs: list[tuple[int, int, int]]) -> tuple[tuple[bool, ...], ...]:
    grid = [[False] * size for _ in range(size)]
    for row, start, length in runs:
        for column in range(start, start + length):
            assert not grid[row][column], f"module ({row}, {column}) is in two runs"
            grid[row][column] = True
    return tuple(tuple(row) for row in grid)


RECTANGLE = re.compile(r"(\d+) (\d+) (\d+) 1 re")


def matrix_from_path(size: int, operators: str) -> tuple[tuple[bool, ...], ...]:
    """The modules a path of unit-high rectangles fills (PDF y counts up from the bottom)."""
    runs = []
    for line in operators.splitlines()[:-1]:
        match = RECTANGLE.fullmatch(line)
        assert match, f"not an integer unit-high rectangle: {line!r}"
        x, y, width = (int(value) for value in match.groups())
        runs.append((size - 1 - y, x, width))
    return matrix_from_runs(size, runs)


# ---------------------------------------------------------------- level M, smallest version


# Byte-mode capacities at level M (ISO/IEC 18004 Table 7): n bytes fit version v, n + 1 do not.
# At level L the same lengths would give smaller versions (version 1 holds 17 bytes).
LEVEL_M_CAPACITY = [
    pytest.param(1, 1, id="1-byte-v1"),
    pytest.param(14, 1, id="14-bytes-v1-full"),
    pytest.param(15, 2, id="15-bytes-v2"),
    pytest.param(26, 2, id="26-bytes-v2-full"),
    pytest.param(27, 3, id="27-bytes-v3"),
    pytest.param(62, 4, id="62-bytes-v4-full"),
    pytest.param(84, 5, id="84-bytes-v5-full"),
    pytest.param(213, 10, id="213-bytes-v10-full"),
    pytest.param(214, 11, id="214-bytes-v11"),
    pytest.param(412, 15, id="412-bytes-v15-full"),
    pytest.param(413, 16, id="413-bytes-v16"),
]


@pytest.mark.parametrize(("length", "version"), LEVEL_M_CAPACITY)
def test_matrix_is_the_smallest_version_at_level_m(length: int, version: int) -> None:
    text = f"{GOV_PUBLIC_URL}/v#" + "a" * (length - len(GOV_PUBLIC_URL) - 3) if length > 40 else "a" * length

    matrix = qr_matrix(text)

    assert len(text.encode("utf-8")) == length
    assert matrix.version == version
    assert matrix.size == 17 + 4 * version + 2 * QUIET_ZONE
    assert error_correction_level(matrix) == "M"


@pytest.mark.parametrize(
    ("text", "version"),
    [
        pytest.param("证" * 4, 1, id="4-chinese-12-bytes-v1"),
        pytest.param("证" * 5, 2, id="5-chinese-15-bytes-v2"),
    ],
)
def test_text_is_encoded_as_utf8_bytes(text: str, version: int) -> None:
    matrix = qr_matrix(text)

    assert matrix.version == version
    assert [(b.text, b.ec_level) for b in decoded(matrix)] == [(text, "M")]


@pytest.mark.parametrize("length", [1, 62, 412], ids=lambda n: f"{n}-bytes")
def test_matrix_decodes_to_its_text_at_level_m_with_a_quiet_zone(length: int) -> None:
    text = "https://e.cn/v#" + "x" * (length - 15) if length > 15 else "x" * length
    matrix = qr_matrix(text)

    assert [(b.format.name, b.text, b.ec_level) for b in decoded(matrix)] == [("QRCode", text, "M")]
    border = [*matrix.modules[:QUIET_ZONE], *matrix.modules[-QUIET_ZONE:]]
    border += [row[:QUIET_ZONE] + row[-QUIET_ZONE:] for row in matrix.modules]
    assert not any(any(row) for row in border)


# ---------------------------------------------------------------- samples stay within version 15


@pytest.fixture
def gov_region(session: Session, keyring: KeyRing, clock: FixedClock) -> Any:
    created = init_region(
        session, keyring, code="310000", name="上海市", public_url=GOV_PUBLIC_URL, now=clock(), actor="test"
    )
    session.commit()
    return created


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
@pytest.mark.parametrize("type_code", ["BL", "DL", "PQ"])
def test_sample_certificates_qr_fits_version_15_at_level_m(
    client: FlaskClient,
    session: Session,
    keyring: KeyRing,
    clock: FixedClock,
    gov_region: Any,
    type_code: str,
    algorithm: str,
) -> None:
    office = make_office(session, keyring, clock, OFFICE_CODE, [type_code], algorithm=algorithm)
    answer = client.post("/api/v1/certificates", json=sample_request(type_code), headers=office.auth)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    issued = json_of(answer)
    qr_text = issued["qr_text"]

    matrix = qr_matrix(qr_text)

    assert len(GOV_PUBLIC_URL) == 29
    assert qr_text == f"{GOV_PUBLIC_URL}/v#{issued['token']}"
    assert matrix.version <= MAX_VERSION, f"{len(qr_text)} characters need version {matrix.version}"
    assert error_correction_level(matrix) == "M"
    assert [b.text for b in decoded(matrix)] == [qr_text]


# ---------------------------------------------------------------- dark runs


def grid(*rows: str) -> QrMatrix:
    """A square matrix drawn with ``#`` for dark and ``.`` for light modules."""
    assert all(len(row) == len(rows) for row in rows)
    return QrMatrix(version=1, modules=tuple(tuple(module == "#" for module in row) for row in rows))


RUN_TABLE = [
    pytest.param(grid("...", "...", "..."), [], id="all-light"),
    pytest.param(grid("##", "##"), [(0, 0, 2), (1, 0, 2)], id="all-dark"),
    pytest.param(grid("###", "...", "..."), [(0, 0, 3)], id="one-full-row"),
    pytest.param(grid("#.#", "...", "..."), [(0, 0, 1), (0, 2, 1)], id="dark-at-both-edges"),
    pytest.param(grid("....", ".##.", "....", "...."), [(1, 1, 2)], id="inner-run"),
    pytest.param(grid("##.", ".##", "..."), [(0, 0, 2), (1, 1, 2)], id="two-rows"),
    pytest.param(grid("#.", ".#"), [(0, 0, 1), (1, 1, 1)], id="diagonal"),
]


@pytest.mark.parametrize(("matrix", "runs"), RUN_TABLE)
def test_dark_runs_of_small_matrices(matrix: QrMatrix, runs: list[tuple[int, int, int]]) -> None:
    assert dark_runs(matrix) == runs


@pytest.mark.parametrize(
    "text",
    ["x", sample_request("DL")["holder"]["name"], f"{GOV_PUBLIC_URL}/v#" + "Ab0_-" * 76],
    ids=["v1", "cjk", "v15"],
)
def test_dark_runs_cover_exactly_the_dark_modules_in_maximal_runs(text: str) -> None:
    matrix = qr_matrix(text)
    runs = dark_runs(matrix)

    assert matrix_from_runs(matrix.size, runs) == matrix.modules
    for row, start, length in runs:
        assert length >= 1
        # Maximal: a run ends at the edge or at a light module, on both sides.
        assert start == 0 or not matrix.modules[row][start - 1]
        assert start + length == matrix.size or not matrix.modules[row][start + length]


# ---------------------------------------------------------------- the path operators


def test_path_operators_of_a_small_matrix() -> None:
    matrix = grid("#.", ".#")

    assert qr_path_operators(matrix) == "0 1 1 1 re\n1 0 1 1 re\nf"


@pytest.mark.parametrize("text", ["x", f"{GOV_PUBLIC_URL}/v#" + "Ab0_-" * 76], ids=["v1", "v15"])
def test_path_is_one_fill_of_integer_rectangles_that_redraws_the_matrix(text: str) -> None:
    matrix = qr_matrix(text)

    operators = qr_path_operators(matrix)

    assert operators.split().count("f") == 1 and operators.endswith("\nf")
    assert re.fullmatch(r"[0-9 \nref]+", operators), "only integers, re and f"
    assert len(operators.splitlines()) == len(dark_runs(matrix)) + 1
    assert matrix_from_path(matrix.size, operators) == matrix.modules

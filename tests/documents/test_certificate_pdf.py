"""The certificate PDF: what it shows, its QR code, its fonts and metadata, what it never
shows (a holder's full resident ID number), and how long values are laid out.

Every PDF here is issued and downloaded through the HTTP API on a real database (SQLite
and PostgreSQL), then read back with pypdfium2 (text, page objects, rendering) and
zxing-cpp (the QR code), and by parsing the file itself (fonts, streams). Rendering and
decoding are the slow part, so each module-scoped database issues its certificates once
and every PDF is rendered and decoded once, shared by the tests that read it.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
import zxingcpp
from flask import Flask
from flask.testing import FlaskClient
from PIL.Image import Image
from sqlalchemy import create_engine
from werkzeug.test import TestResponse

from app import create_app
from documents.qr import dark_runs, qr_matrix, qr_path_operators
from registry.catalog import reference_type_definitions
from registry.demo import sample_request
from registry.models import Base
from registry.offices import add_office
from registry.regions import init_region
from tests.conftest import OFFICE_CODE, PUBLIC_URL, START, TEST_PASSPHRASE, FixedClock
from tests.databases import empty_postgres_database

CERTIFICATES = "/api/v1/certificates"
TYPES = ["BL", "DL", "PQ"]
OFFICE_NAME = "上海市示范发证中心"
SCAN_CAPTION = "扫码核验 / Scan to verify"
RENDER_SCALE = 2
# What the PDF may show of each sample holder's ID: resident ID numbers keep their first
# and last four characters; an organisation's credit code is public and printed whole.
PRINTED_ID = {"BL": "91310115MA1K3YJ2X5", "DL": "3101**********3526", "PQ": "3101**********4415"}
FULL_RESIDENT_ID = {"DL": "310115198506123526", "PQ": "310101199003074415"}
CATALOG = {definition["code"]: definition for definition in reference_type_definitions()}

BUSINESS_PHRASES = (
    "一般项目：技术服务、技术开发、技术咨询、技术交流、技术转让、技术推广；软件开发；"
    "信息系统集成服务；信息技术咨询服务；数据处理和存储支持服务；计算机系统服务；"
    "网络技术服务；人工智能应用软件开发；物联网技术服务；会议及展览服务；"
    "办公用品销售；计算机软硬件及辅助设备零售；电子产品销售；企业管理咨询；"
    "市场营销策划；广告设计、代理；广告制作；广告发布（非广播电台、电视台、报刊出版单位）。"
)


def chinese_text(length: int, source: str = BUSINESS_PHRASES) -> str:
    """``length`` characters of realistic Chinese text (``source`` repeated as needed)."""
    return (source * (length // len(source) + 1))[:length]


@dataclass(frozen=True)
class LayoutCase:
    """A sample certificate with one field's value made ``length`` characters long."""

    type_code: str
    field_name: str
    length: int
    source: str = BUSINESS_PHRASES

    @property
    def value(self) -> str:
        return chinese_text(self.length, self.source)

    def request(self) -> dict[str, Any]:
        body = sample_request(self.type_code)
        body["fields"] = {**body["fields"], self.field_name: self.value}
        return body


# Long values, each within what the catalog's schema accepts, and a short one as control.
LAYOUT_CASES = {
    "BL-business-scope-21-sample-length": LayoutCase("BL", "business_scope", 21),
    "BL-business-scope-300": LayoutCase("BL", "business_scope", 300),
    "BL-business-scope-2000-schema-max": LayoutCase("BL", "business_scope", 2000),
    "DL-address-200-schema-max": LayoutCase("DL", "address", 200, "上海市浦东新区世纪大道200号"),
    "PQ-evaluation-body-100-schema-max": LayoutCase("PQ", "evaluation_body", 100, "上海市职业技能鉴定中心"),
}


# ---------------------------------------------------------------- reading PDFs


def squeeze(text: str) -> str:
    """``text`` without whitespace: wrapped rows and spacing do not matter for "contains"."""
    return "".join(text.split())


PDF_OBJECT = re.compile(rb"(\d+) 0 obj\s*<<((?:(?!endobj).)*?)>>\s*(stream\r?\n|endobj)", re.S)
REFERENCE = rb"(\d+) 0 R"


@dataclass
class PdfFile:
    """One PDF, parsed the plain way: its objects' dictionaries and its decoded streams.

    reportlab writes dictionaries uncompressed and no object streams, so a regular
    expression finds every object; the parse checks it accounted for every stream.
    """

    data: bytes
    dictionaries: dict[int, bytes] = field(init=False)
    streams: dict[int, bytes] = field(init=False)

    def __post_init__(self) -> None:
        assert b"/ObjStm" not in self.data, "object streams would hide objects from this parse"
        self.dictionaries, self.streams = {}, {}
        for match in PDF_OBJECT.finditer(self.data):
            number, dictionary = int(match.group(1)), match.group(2)
            self.dictionaries[number] = dictionary
            if match.group(3).startswith(b"stream"):
                length = int(_member(dictionary, b"Length"))
                self.streams[number] = decode_stream(dictionary, self.data[match.end() : match.end() + length])
        assert len(self.streams) == self.data.count(b"endstream"), "some stream was not found"

    def fonts(self) -> dict[int, bytes]:
        return {number: d for number, d in self.dictionaries.items() if re.search(rb"/Type\s*/Font\b", d)}

    def referenced(self, dictionary: bytes, key: bytes) -> bytes | None:
        found = re.search(rb"/" + key + rb"\s*\[?\s*" + REFERENCE, dictionary)
        return self.dictionaries.get(int(found.group(1))) if found else None

    def has_embedded_truetype(self, font: bytes) -> bool:
        """The font (or, for a composite font, its descendant) embeds TrueType outlines."""
        if re.search(rb"/Subtype\s*/Type0\b", font):
            descendant = self.referenced(font, b"DescendantFonts")
            return descendant is not None and self.has_embedded_truetype(descendant)
        if not re.search(rb"/Subtype\s*/(TrueType|CIDFontType2)\b", font):
            return False
        descriptor = self.referenced(font, b"FontDescriptor")
        outlines = self.referenced(descriptor, b"FontFile2") if descriptor else None
        return outlines is not None and b"/Length1" in outlines


def _member(dictionary: bytes, key: bytes) -> bytes:
    found = re.search(rb"/" + key + rb"\s+(\d+)\b", dictionary)
    assert found, f"/{key.decode()} missing in {dictionary[:200]!r}"
    return found.group(1)


def decode_stream(dictionary: bytes, raw: bytes) -> bytes:
    """A stream's data with every filter undone; a filter we cannot undo fails the test."""
    listed = re.search(rb"/Filter\s*(\[[^\]]*\]|/\w+)", dictionary)
    filters = re.findall(rb"/(\w+)", listed.group(1)) if listed else []
    data = raw
    for name in filters:
        if name == b"ASCII85Decode":
            data = base64.a85decode(data.strip(), adobe=True)
        elif name == b"FlateDecode":
            data = zlib.decompress(data)
        else:
            pytest.fail(f"stream filter {name.decode()} is not undone by this test")
    return data


def qr_box_of(page: pdfium.PdfPage, qr_text: str) -> tuple[float, float, float, float]:
    """The bounds of the one path object that draws the QR code of ``qr_text``: each dark
    run is one ``re`` operator, which pdfium counts as five path segments."""
    runs = len(dark_runs(qr_matrix(qr_text)))
    boxes = [
        obj.get_bounds()
        for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH])
        if pdfium_c.FPDFPath_CountSegments(obj.raw) == 5 * runs
    ]
    assert len(boxes) == 1, f"expected one path of {runs} runs, found {len(boxes)}"
    left, bottom, right, top = boxes[0]
    return float(left), float(bottom), float(right), float(top)


@dataclass
class IssuedPdf:
    """A certificate as the API answered its issuance, its PDF as the API served it, and
    what reading that PDF gives (each computed once)."""

    request: dict[str, Any]
    answer: dict[str, Any]
    pdf: bytes

    @property
    def type_code(self) -> str:
        return str(self.request["type"])

    @cached_property
    def parsed(self) -> PdfFile:
        return PdfFile(self.pdf)

    @cached_property
    def reading(self) -> PdfReading:
        return PdfReading.of(self.pdf, self.answer["qr_text"])


@dataclass(frozen=True)
class PdfReading:
    page_count: int
    page_size: tuple[float, float]
    text: str
    char_boxes: tuple[tuple[float, float, float, float], ...]
    metadata: dict[str, str]
    fonts_of_text: tuple[tuple[str, bool], ...]  # (base font name, embedded) per text object
    qr_box: tuple[float, float, float, float]
    barcodes: tuple[tuple[str, str, str], ...]  # (format, text, error correction level)

    @classmethod
    def of(cls, pdf: bytes, qr_text: str) -> PdfReading:
        document = pdfium.PdfDocument(pdf)
        try:
            page = document[0]
            text_page = page.get_textpage()
            fonts = tuple(
                (text_object.get_font().get_base_name(), bool(text_object.get_font().is_embedded))
                for text_object in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_TEXT])
            )
            image: Image = page.render(scale=RENDER_SCALE).to_pil()
            return cls(
                page_count=len(document),
                page_size=page.get_size(),
                text="\n".join(text_page.get_text_range().splitlines()),
                char_boxes=tuple(text_page.get_charbox(index) for index in range(text_page.count_chars())),
                metadata=document.get_metadata_dict(),
                fonts_of_text=fonts,
                qr_box=qr_box_of(page, qr_text),
                barcodes=tuple(
                    (barcode.format.name, barcode.text, barcode.ec_level) for barcode in zxingcpp.read_barcodes(image)
                ),
            )
        finally:
            document.close()


# ---------------------------------------------------------------- certificates, once per database


@dataclass(frozen=True)
class IssuedPdfs:
    samples: dict[str, IssuedPdf]
    layouts: dict[str, IssuedPdf]


@contextmanager
def _database(kind: str, folder: Path) -> Iterator[str]:
    """A new database with the schema: a SQLite file, or a PostgreSQL database of its own
    (so the function-scoped tests' cleanup never touches it)."""
    if kind == "sqlite":
        url = f"sqlite:///{folder / 'ecert.db'}"
        databases: AbstractContextManager[str] = nullcontext(url)
    else:
        databases = contextmanager(empty_postgres_database)("ecert_pdf")
    with databases as url:
        engine = create_engine(url)
        Base.metadata.create_all(engine)
        engine.dispose()
        yield url


def json_of(response: TestResponse) -> dict[str, Any]:
    document = response.get_json()
    assert isinstance(document, dict), response.get_data(as_text=True)
    return document


def _issue(client: FlaskClient, auth: dict[str, str], body: dict[str, Any]) -> IssuedPdf:
    issued = client.post(CERTIFICATES, json=body, headers=auth)
    assert issued.status_code == 201, issued.get_data(as_text=True)
    answer = json_of(issued)
    served = client.get(answer["links"]["pdf"], headers=auth)
    assert served.status_code == 200, served.get_data(as_text=True)
    return IssuedPdf(request=body, answer=answer, pdf=served.data)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def issued_pdfs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuedPdfs]:
    """A region, an office for BL, DL and PQ, and certificates issued and downloaded through the API."""
    with _database(request.param, tmp_path_factory.mktemp("pdf")) as url:
        clock = FixedClock(START)
        app: Flask = create_app(
            {
                "TESTING": True,
                "ECERT_DATABASE_URL": url,
                "ECERT_KEY_PASSPHRASE": TEST_PASSPHRASE,
                "ECERT_PUBLIC_URL": PUBLIC_URL,
                "ECERT_CLOCK": clock,
            }
        )
        deployment = app.extensions["ecert"]
        try:
            with deployment.session() as session:
                init_region(
                    session,
                    deployment.keyring,
                    code="310000",
                    name="上海市",
                    public_url=PUBLIC_URL,
                    now=clock(),
                    actor="test",
                )
                _office, _key, token = add_office(
                    session,
                    deployment.keyring,
                    credit_code=OFFICE_CODE,
                    name=OFFICE_NAME,
                    types=TYPES,
                    algorithm="EdDSA",
                    now=clock(),
                    actor="test",
                )
                session.commit()
            client, auth = app.test_client(), {"Authorization": f"Bearer {token}"}
            yield IssuedPdfs(
                samples={type_code: _issue(client, auth, sample_request(type_code)) for type_code in TYPES},
                layouts={name: _issue(client, auth, case.request()) for name, case in LAYOUT_CASES.items()},
            )
        finally:
            deployment.dispose()


@pytest.fixture(params=TYPES)
def issued(issued_pdfs: IssuedPdfs, request: pytest.FixtureRequest) -> IssuedPdf:
    """The sample certificate of each reference type."""
    return issued_pdfs.samples[request.param]


@pytest.fixture(params=sorted(FULL_RESIDENT_ID))
def issued_to_person(issued_pdfs: IssuedPdfs, request: pytest.FixtureRequest) -> IssuedPdf:
    """The samples whose holder is a person with a resident ID number."""
    return issued_pdfs.samples[request.param]


# ---------------------------------------------------------------- what the page shows


def expected_text(issued: IssuedPdf) -> list[str]:
    definition = CATALOG[issued.type_code]
    labels = [
        text
        for spec in definition["fields_schema"]["properties"].values()
        for text in (spec["title"], spec["x-label-en"])
    ]
    values = [str(value) for value in issued.request["fields"].values()]
    return [
        issued.request["holder"]["name"],
        definition["name_zh"],
        definition["name_en"],
        *labels,
        *values,
        issued.answer["id"],
        PRINTED_ID[issued.type_code],
        OFFICE_NAME,
        SCAN_CAPTION,
    ]


def test_page_shows_holder_type_fields_identifier_masked_id_office_and_scan_caption(issued: IssuedPdf) -> None:
    text = squeeze(issued.reading.text)

    missing = [expected for expected in expected_text(issued) if squeeze(expected) not in text]

    assert missing == []
    assert issued.reading.page_count == 1


@pytest.mark.parametrize(
    ("type_code", "validity"),
    [
        pytest.param("BL", ("2026-03-01", "长期"), id="BL-no-end"),
        pytest.param("PQ", ("2026-03-01", "长期"), id="PQ-no-end"),
        pytest.param("DL", ("2026-03-01", "2032-02-29"), id="DL-default-validity"),
    ],
)
def test_page_shows_validity_and_issue_date_in_china_standard_time(
    issued_pdfs: IssuedPdfs, type_code: str, validity: tuple[str, str]
) -> None:
    # Issued at 2026-03-01T08:00Z, 16:00 in Shanghai. DL's default validity is 2191 days;
    # the last valid day (the end is exclusive) is 2032-02-29.
    text = issued_pdfs.samples[type_code].reading.text
    valid_from, valid_until = validity

    assert f"有效期自\nValid from\n{valid_from}" in text
    assert f"有效期至\nValid until\n{valid_until}" in text
    assert "发证日期\nDate of issue\n2026-03-01" in text


# ---------------------------------------------------------------- the QR code


def test_rendered_page_holds_exactly_one_qr_code_with_the_certificates_qr_text(issued: IssuedPdf) -> None:
    assert issued.reading.barcodes == (("QRCode", issued.answer["qr_text"], "M"),)


def test_qr_code_is_drawn_as_one_filled_path_of_the_matrix(issued: IssuedPdf) -> None:
    operators = qr_path_operators(qr_matrix(issued.answer["qr_text"])).encode("ascii")

    assert sum(operators in stream for stream in issued.parsed.streams.values()) == 1
    assert not re.search(rb"/Subtype\s*/Image\b", issued.pdf), "vectors, not a raster image"


# ---------------------------------------------------------------- fonts


def test_all_text_is_set_in_the_embedded_truetype_cjk_font(issued: IssuedPdf) -> None:
    fonts = set(issued.reading.fonts_of_text)
    fonts_used = {name for name, _embedded in fonts}

    assert fonts and all(embedded for _name, embedded in fonts), fonts
    assert fonts_used <= {"NotoSansSC-Regular", "NotoSansSC-Bold"}, fonts_used
    assert b"/Type3" not in issued.pdf
    descriptors = [d for d in issued.parsed.dictionaries.values() if b"/FontDescriptor" in d and b"/FontName" in d]
    assert descriptors and all(b"/FontFile2" in d for d in descriptors)
    assert not any(re.search(rb"/FontFile3?\b", d) for d in descriptors), "Type 1 or CFF outlines"


def test_every_font_the_pdf_declares_is_embedded_truetype(issued: IssuedPdf) -> None:
    fonts = issued.parsed.fonts()

    not_embedded = [d[:120] for d in fonts.values() if not issued.parsed.has_embedded_truetype(d)]

    assert fonts
    assert not_embedded == []


# ---------------------------------------------------------------- the full ID number never appears


def test_full_resident_id_number_appears_nowhere_in_the_pdf(issued_to_person: IssuedPdf) -> None:
    full = FULL_RESIDENT_ID[issued_to_person.type_code]
    masked = PRINTED_ID[issued_to_person.type_code]
    parsed, reading = issued_to_person.parsed, issued_to_person.reading
    forms = [full.encode("ascii"), full.encode("utf-16-be")]
    token = reading.metadata["Keywords"].removeprefix("ecert-token:")
    header, payload, _signature = (base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)) for s in token.split("."))

    assert not any(form in issued_to_person.pdf for form in forms)
    assert not any(form in stream for stream in parsed.streams.values() for form in forms)
    assert full not in squeeze(reading.text)
    assert not any(full in value for value in reading.metadata.values())
    assert full.encode("ascii") not in header + payload
    # The searches above would have found it: the masked form is there, in the same places.
    assert any(masked.encode("ascii") in stream for stream in parsed.streams.values())
    assert masked in reading.text
    assert json.loads(payload)["h"]["i"] == masked


# ---------------------------------------------------------------- metadata


def test_metadata_names_the_certificate_and_carries_its_token(issued: IssuedPdf) -> None:
    definition = CATALOG[issued.type_code]
    metadata = issued.reading.metadata

    assert definition["name_zh"] in metadata["Title"]
    assert definition["name_en"] in metadata["Title"]
    assert issued.request["holder"]["name"] in metadata["Title"]
    assert metadata["Author"] == OFFICE_NAME
    assert metadata["Subject"] == issued.answer["id"]
    assert metadata["Keywords"] == f"ecert-token:{issued.answer['token']}"


# ---------------------------------------------------------------- long values


@pytest.mark.parametrize("case", list(LAYOUT_CASES))
def test_long_value_wraps_on_one_page_and_extracts_whole(issued_pdfs: IssuedPdfs, case: str) -> None:
    reading = issued_pdfs.layouts[case].reading

    assert reading.page_count == 1
    assert squeeze(LAYOUT_CASES[case].value) in squeeze(reading.text)
    # Wrapped: no character runs past the page's right edge, however long the value.
    assert max(right for _left, _bottom, right, _top in reading.char_boxes) < reading.page_size[0]


def _overlaps(box: tuple[float, float, float, float], other: tuple[float, float, float, float]) -> bool:
    left, bottom, right, top = box
    other_left, other_bottom, other_right, other_top = other
    return left < other_right and other_left < right and bottom < other_top and other_bottom < top


LAYOUT_PARAMS = list(LAYOUT_CASES)


@pytest.mark.parametrize("case", LAYOUT_PARAMS)
def test_long_value_stays_on_the_page_and_clear_of_the_qr_code(issued_pdfs: IssuedPdfs, case: str) -> None:
    issued = issued_pdfs.layouts[case]
    reading = issued.reading
    width, height = reading.page_size

    off_page = [box for box in reading.char_boxes if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height]
    over_qr = [box for box in reading.char_boxes if _overlaps(box, reading.qr_box)]

    assert off_page == []
    assert over_qr == []
    assert reading.barcodes == (("QRCode", issued.answer["qr_text"], "M"),)

"""Line breaking on the certificate: nothing may run past its column."""

from __future__ import annotations

import pytest
from reportlab.pdfbase import pdfmetrics

from documents.certificate_pdf import VALUE_WIDTH, wrap
from documents.fonts import certificate_fonts


@pytest.mark.parametrize(
    "text",
    [
        "A" * 200,  # one long code with no space
        "https://example.gov.cn/" + "x" * 150,
        "软件开发" * 60,
        "Software development and " * 20,
        "混合 mixed 文本 " + "9" * 120,
    ],
    ids=["latin-run", "url", "chinese", "latin-words", "mixed"],
)
def test_rows_fit_the_column_and_keep_every_character(text: str) -> None:
    font = certificate_fonts().regular

    rows = wrap(text, font, 11, VALUE_WIDTH)

    assert all(pdfmetrics.stringWidth(row, font, 11) <= VALUE_WIDTH for row in rows)
    assert "".join(rows).replace(" ", "") == text.replace(" ", "")


def test_words_that_fit_are_not_split() -> None:
    font = certificate_fonts().regular

    rows = wrap("Software development and consulting " * 10, font, 11, VALUE_WIDTH)

    assert all(not row.endswith(("Softw", "develo", "consul")) for row in rows)

"""The naive way to make a certificate PDF, as the baseline for bench/pdf.py.

What a first version would do: load the TrueType font for each document, compute the
seal's glyph placement each time, and draw the QR module by module with one
``canvas.rect`` per dark module. Same page content as documents.certificate_pdf.
"""

from __future__ import annotations

import io
import math

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from documents.fonts import font_folder
from documents.model import CertificateDocument


def naive_certificate_pdf(document: CertificateDocument, *, load_fonts: bool = True) -> bytes:
    """``load_fonts=False`` keeps the fonts registered by an earlier call: the naive page
    with only font caching added, to show where the rest of the gain comes from."""
    if load_fonts or "NaiveSC" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("NaiveSC", str(font_folder() / "NotoSansSC-Regular.ttf")))
        pdfmetrics.registerFont(TTFont("NaiveSC-Bold", str(font_folder() / "NotoSansSC-Bold.ttf")))
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4)
    width, height = A4
    canvas.setTitle(document.title_zh)
    canvas.setKeywords("ecert-token:" + document.token)
    canvas.setFont("NaiveSC-Bold", 30)
    canvas.drawCentredString(width / 2, height - 100, document.title_zh)
    canvas.setFont("NaiveSC", 12)
    canvas.drawCentredString(width / 2, height - 122, document.title_en)
    y = height - 178
    rows = [("持证主体", document.holder_name), (document.holder_id.label_zh, document.holder_id.value)]
    rows += [(line.label_zh, line.value) for line in document.fields]
    rows += [("有效期至", document.valid_until), ("发证机关", document.office_name), ("发证日期", document.issued_on)]
    for label, value in rows:
        canvas.setFont("NaiveSC-Bold", 11)
        canvas.drawString(56, y, label)
        canvas.setFont("NaiveSC", 11)
        canvas.drawString(206, y, value[:40])
        y -= 30
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4)
    code.add_data(document.qr_text.encode("utf-8"))
    code.make(fit=True)
    matrix = code.get_matrix()
    module = 150 / len(matrix)
    for row, modules in enumerate(matrix):
        for column, dark in enumerate(modules):
            if dark:
                canvas.rect(
                    56 + column * module, 70 + (len(matrix) - row - 1) * module, module, module, stroke=0, fill=1
                )
    canvas.setFont("NaiveSC", 10)
    canvas.drawString(70, 56, "扫码核验 / Scan to verify")
    canvas.setFillColorRGB(0.8, 0.07, 0.07)
    canvas.setStrokeColorRGB(0.8, 0.07, 0.07)
    canvas.circle(460, 145, 66, stroke=1, fill=0)
    for index, character in enumerate(document.office_name):
        theta = math.radians(90 + 110 - 220 * (index + 0.5) / len(document.office_name))
        canvas.saveState()
        canvas.translate(460 + 50 * math.cos(theta), 145 + 50 * math.sin(theta))
        canvas.rotate(math.degrees(theta) - 90)
        canvas.setFont("NaiveSC", 15)
        canvas.drawCentredString(0, -5, character)
        canvas.restoreState()
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()

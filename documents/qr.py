"""QR codes for certificates: ``qrcode`` builds the matrix, we draw it as one path.

Error correction is level M (15 %): enough for a worn print or a scratched phone
screen. The matrix is drawn as one filled path of horizontal runs, instead of one
rectangle operation per dark module (hundreds of operations for version 15).
"""

from __future__ import annotations

from dataclasses import dataclass

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from reportlab.pdfgen.canvas import Canvas

QUIET_ZONE = 4  # modules of white border, as ISO/IEC 18004 requires


@dataclass(frozen=True)
class QrMatrix:
    version: int
    modules: tuple[tuple[bool, ...], ...]  # with the quiet zone

    @property
    def size(self) -> int:
        return len(self.modules)


def qr_matrix(text: str) -> QrMatrix:
    """The smallest QR code at level M that holds ``text`` (byte mode, UTF-8)."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=QUIET_ZONE)
    code.add_data(text.encode("utf-8"), optimize=0)
    code.make(fit=True)
    assert code.version is not None
    return QrMatrix(version=code.version, modules=tuple(tuple(row) for row in code.get_matrix()))


def dark_runs(matrix: QrMatrix) -> list[tuple[int, int, int]]:
    """Every horizontal run of dark modules as (row, first column, length)."""
    runs = []
    for row, modules in enumerate(matrix.modules):
        column = 0
        while column < matrix.size:
            if modules[column]:
                start = column
                while column < matrix.size and modules[column]:
                    column += 1
                runs.append((row, start, column - start))
            else:
                column += 1
    return runs


def qr_path_operators(matrix: QrMatrix) -> str:
    """The PDF operators of the dark runs as one filled path, in module units.

    Integer coordinates in a coordinate system scaled to one module keep the content
    stream short and spare reportlab's float formatting for every rectangle.
    """
    size = matrix.size
    # Rows count down from the top; PDF y counts up from the bottom.
    rectangles = "\n".join(f"{start} {size - row - 1} {length} 1 re" for row, start, length in dark_runs(matrix))
    return f"{rectangles}\nf"


def draw_qr(canvas: Canvas, matrix: QrMatrix, x: float, y: float, width: float) -> None:
    """Draw ``matrix`` with its lower-left corner at (x, y), ``width`` points wide."""
    canvas.saveState()
    canvas.translate(x, y)
    canvas.scale(width / matrix.size, width / matrix.size)
    canvas.setFillColorRGB(0, 0, 0)
    canvas.addLiteral(qr_path_operators(matrix))
    canvas.restoreState()

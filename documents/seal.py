"""The official seal (公章), drawn as vectors in seal red: a ring, a five-pointed star,
the office's name along the upper arc and "电子证照专用章" across the bottom.

The glyph placement for an office name is computed once and cached; drawing it is a
few dozen text and path operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

SEAL_RED = (0.80, 0.07, 0.07)
SEAL_LEGEND = "电子证照专用章"


@dataclass(frozen=True)
class _Glyph:
    character: str
    dx: float  # from the seal's centre, in units of the radius
    dy: float
    angle: float  # degrees


@lru_cache(maxsize=1024)
def _arc_layout(name: str) -> tuple[_Glyph, ...]:
    """Characters of ``name`` spread over the top 240 degrees of the ring."""
    count = len(name)
    span = min(240.0, 22.0 * count)
    glyphs = []
    for index, character in enumerate(name):
        # From left (start) to right, centred on the top of the circle.
        theta = math.radians(90 + span / 2 - (span * (index + 0.5) / count))
        glyphs.append(
            _Glyph(character, dx=0.72 * math.cos(theta), dy=0.72 * math.sin(theta), angle=math.degrees(theta) - 90)
        )
    return tuple(glyphs)


def _star(canvas: Canvas, cx: float, cy: float, radius: float) -> None:
    path = canvas.beginPath()
    for point in range(10):
        r = radius if point % 2 == 0 else radius * 0.382
        theta = math.radians(90 + point * 36)
        px, py = cx + r * math.cos(theta), cy + r * math.sin(theta)
        if point == 0:
            path.moveTo(px, py)
        else:
            path.lineTo(px, py)
    path.close()
    canvas.drawPath(path, stroke=0, fill=1)


def draw_seal(canvas: Canvas, office_name: str, cx: float, cy: float, radius: float, font: str) -> None:
    """Draw the seal of ``office_name`` centred at (cx, cy)."""
    canvas.saveState()
    canvas.setStrokeColorRGB(*SEAL_RED)
    canvas.setFillColorRGB(*SEAL_RED)
    canvas.setLineWidth(radius * 0.06)
    canvas.circle(cx, cy, radius * 0.95, stroke=1, fill=0)
    _star(canvas, cx, cy, radius * 0.28)
    size = radius * 0.22 if len(office_name) <= 12 else radius * 0.22 * 12 / len(office_name)
    for glyph in _arc_layout(office_name):
        canvas.saveState()
        canvas.translate(cx + glyph.dx * radius, cy + glyph.dy * radius)
        canvas.rotate(glyph.angle)
        canvas.setFont(font, size)
        canvas.drawCentredString(0, -size * 0.35, glyph.character)
        canvas.restoreState()
    legend_size = radius * 0.16
    canvas.setFont(font, legend_size)
    width = pdfmetrics.stringWidth(SEAL_LEGEND, font, legend_size)
    canvas.drawString(cx - width / 2, cy - radius * 0.55, SEAL_LEGEND)
    canvas.restoreState()

"""The fonts certificates are set in: Noto Sans SC (TrueType outlines, SIL OFL 1.1),
installed into ``.fonts/`` by the README's setup from the npm registry.

reportlab embeds a subset of each TrueType font it uses, with a ToUnicode map, so the
Chinese text renders in every viewer and extracts as text; no Type 3 bitmaps and no
reliance on fonts installed on the machine. Registration parses a 10 MB font, so it
happens once per process.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from documents.errors import FontsMissing

REGULAR = "NotoSansSC"
BOLD = "NotoSansSC-Bold"
_FILES = {REGULAR: "NotoSansSC-Regular.ttf", BOLD: "NotoSansSC-Bold.ttf"}
_lock = threading.Lock()


@dataclass(frozen=True)
class Fonts:
    regular: str
    bold: str


def font_folder() -> Path:
    """``ECERT_FONT_DIR`` if set, else ``.fonts/`` at the repository root."""
    configured = os.environ.get("ECERT_FONT_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / ".fonts"


def certificate_fonts() -> Fonts:
    """Register the certificate fonts with reportlab (once per process) and name them.

    Raises:
        FontsMissing: the font files are not installed.
    """
    with _lock:
        registered = set(pdfmetrics.getRegisteredFontNames())
        for name, file_name in _FILES.items():
            if name in registered:
                continue
            path = font_folder() / file_name
            if not path.is_file():
                raise FontsMissing(f"{path} is missing; run ./scripts/run or ./scripts/test once to install it")
            pdfmetrics.registerFont(TTFont(name, str(path)))
    return Fonts(regular=REGULAR, bold=BOLD)

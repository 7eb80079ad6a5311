"""Text hygiene for everything that goes into a certificate.

Text is NFC-normalised (so that two spellings of one name are one name) and refuses
control, format and surrogate characters: they have no place on a certificate, and
zero-width or bidi-override characters are the tools of look-alike forgeries.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from registry.errors import FieldError

# Control, format, surrogate, private-use and unassigned characters, and the line and
# paragraph separators (which print as line breaks inside a name).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def clean_text(value: str) -> str:
    """``value`` in NFC with surrounding whitespace removed.

    Raises:
        ValueError: the text holds a control, format, surrogate or private-use character.
    """
    for character in value:
        if unicodedata.category(character) in _REFUSED_CATEGORIES:
            raise ValueError(f"contains the forbidden character U+{ord(character):04X}")
    return unicodedata.normalize("NFC", value).strip()


def clean_tree(value: Any, path: str, errors: list[FieldError]) -> Any:
    """Clean every string (keys included) in a JSON value; record problems in ``errors``."""
    if isinstance(value, str):
        try:
            return clean_text(value)
        except ValueError as error:
            errors.append(FieldError(field=path, message=str(error)))
            return value
    if isinstance(value, dict):
        return {clean_tree(k, path, errors): clean_tree(v, f"{path}/{k}", errors) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_tree(item, f"{path}/{i}", errors) for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(FieldError(field=path, message="not a finite number"))
    return value

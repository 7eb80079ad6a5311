"""Strict JSON reading, shared by the token parser and the HTTP layer.

RFC 8259 JSON, read so that two parsers cannot disagree about its meaning: no
duplicate member names (RFC 7515 §5.2 and RFC 7493 I-JSON), no NaN or Infinity
(Python extensions), no number that overflows to infinity, and no unpaired surrogate
escape such as ``\\ud800`` (I-JSON §2.1): no UTF-8 text can hold one, so a string
carrying it could be neither stored, signed nor answered.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


class StrictJsonError(ValueError):
    """The text is not strict JSON. ``duplicate`` tells a repeated member from other faults."""

    def __init__(self, message: str, *, duplicate: bool = False) -> None:
        super().__init__(message)
        self.duplicate = duplicate


def loads(text: str) -> Any:
    """Parse ``text`` strictly.

    Raises:
        StrictJsonError: not JSON, a duplicate member, a non-finite number, nesting too
            deep, or an unpaired surrogate.
    """
    try:
        value = json.loads(
            text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except StrictJsonError:
        raise
    except (ValueError, RecursionError) as error:
        raise StrictJsonError(f"not JSON: {error}") from error
    _refuse_unpaired_surrogates(value)
    return value


def _refuse_unpaired_surrogates(value: Any) -> None:
    # json.loads joins an escaped pair into one character, so any surrogate left is unpaired.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise StrictJsonError("a string holds an unpaired surrogate (RFC 7493 §2.1)")
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise StrictJsonError(f"member {name!r} appears more than once", duplicate=True)
        members[name] = value
    return members


def _refuse_constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJsonError(f"the number {text[:20]} is out of range")
    return value

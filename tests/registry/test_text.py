"""Text hygiene: NFC normalisation, and no control, format, surrogate or private-use characters."""

from __future__ import annotations

import re

import pytest

from registry.errors import FieldError
from registry.text import clean_text, clean_tree


@pytest.mark.parametrize(
    ("given", "clean"),
    [
        pytest.param("e\u0301", "é", id="e-combining-acute"),
        pytest.param("Ame\u0301lie", "Amélie", id="decomposed-inside-a-name"),
        pytest.param("\u212b", "Å", id="angstrom-sign"),
        pytest.param("  王小红 ", "王小红", id="surrounding-spaces"),
        pytest.param("上海市浦东新区", "上海市浦东新区", id="chinese-unchanged"),
    ],
)
def test_text_is_nfc_normalised_and_trimmed(given, clean):
    assert clean_text(given) == clean


@pytest.mark.parametrize(
    ("text", "code_point"),
    [
        pytest.param("王\x00小红", "U+0000", id="nul"),
        pytest.param("王\n小红", "U+000A", id="newline"),
        pytest.param("王\t小红", "U+0009", id="tab"),
        pytest.param("王\x7f小红", "U+007F", id="delete"),
        pytest.param("王\x85小红", "U+0085", id="next-line-c1"),
        pytest.param("\u202e红小王", "U+202E", id="right-to-left-override"),
        pytest.param("王\u200b小红", "U+200B", id="zero-width-space"),
        pytest.param("王\u200d小红", "U+200D", id="zero-width-joiner"),
        pytest.param("\ufeff王小红", "U+FEFF", id="byte-order-mark"),
        pytest.param("王\u2066小红", "U+2066", id="left-to-right-isolate"),
        pytest.param("王\ud800小红", "U+D800", id="lone-surrogate"),
        pytest.param("王\ue000小红", "U+E000", id="private-use"),
        pytest.param("王小红\n", "U+000A", id="trailing-newline-not-just-stripped"),
    ],
)
def test_control_format_surrogate_and_private_use_characters_are_refused(text, code_point):
    with pytest.raises(ValueError, match=re.escape(f"forbidden character {code_point}")):
        clean_text(text)


def test_clean_tree_cleans_nested_strings_and_keys():
    errors: list[FieldError] = []
    cleaned = clean_tree({"cafe\u0301": ["e\u0301", 3, {"k": " x "}]}, "fields", errors)
    assert cleaned == {"café": ["é", 3, {"k": "x"}]}
    assert errors == []


def test_clean_tree_reports_every_bad_string_with_its_path():
    errors: list[FieldError] = []
    clean_tree({"name": "a\u202eb", "list": ["ok", "c\x00"], "nested": {"deep": "\u200b"}}, "fields", errors)
    assert sorted(error.field for error in errors) == ["fields/list/1", "fields/name", "fields/nested/deep"]
    assert all("forbidden character" in error.message for error in errors)

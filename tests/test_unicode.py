"""The spec's pinned Unicode (14.0.0): the generated tables, and the shared cases of
tests/vectors/unicode/cases.json (also run by tests/js/unicode.test.mjs), through the
public record parser, whatever the Unicode version of this Python."""

from __future__ import annotations

import base64
import json
import sys
import unicodedata
from pathlib import Path

import pytest

from ledger.core.errors import FormatError
from ledger.core.records import parse_body
from ledger.core.unicode import UNICODE_VERSION, category_class

ROOT = Path(__file__).resolve().parent.parent
CASES = json.loads((ROOT / "tests/vectors/unicode/cases.json").read_text())
sys.path.insert(0, str(ROOT / "scripts"))
import unicode_tables  # noqa: E402


def _body(field: str, text: str) -> bytes:
    if field == "name":
        return (
            "endorsement-ledger/v1 register\nlog ledger.example.org/u\nsigned_at 1\n"
            f"key {base64.b64encode(bytes(32)).decode()}\nname {text}\nkind other\n"
        ).encode()
    t = base64.b64encode(text.encode()).decode()
    author = "00" * 32
    return (
        "endorsement-ledger/v1 statement\nlog ledger.example.org/u\nsigned_at 1\n"
        f"title T\nauthor {author}\ntext {t}\n"
    ).encode()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shared_cases(case: dict[str, str]) -> None:
    data = _body(case["field"], case["text"])
    if case["expected"] == "accept":
        parse_body(data)
    else:
        with pytest.raises(FormatError, match=case["reason"]):
            parse_body(data)


@pytest.mark.skipif(
    unicodedata.unidata_version != UNICODE_VERSION, reason="needs Python 3.11 (Unicode 14.0.0)"
)
def test_the_tables_are_the_generators_output() -> None:
    rs = unicode_tables.ranges()
    assert (ROOT / "ledger/core/unicode_data.py").read_text() == unicode_tables.python_module(rs)
    assert (ROOT / "ledger/mirror/js/unicode-data.js").read_text() == unicode_tables.js_module(rs)


def test_classes_of_known_code_points() -> None:
    assert category_class("\x00") == "control"
    assert category_class("\u200b") == "control"
    assert category_class("\u3000") == "space"
    assert category_class("\u0378") == "unassigned"
    assert category_class("\U00013439") == "unassigned"  # added in 15.0, as Cf
    assert category_class("a") is None

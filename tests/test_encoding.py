import pytest

from ledger.core.encoding import b64decode_strict, b64encode, parse_hex32, parse_uint
from ledger.core.errors import FormatError


@pytest.mark.parametrize(
    "s,v", [("0", 0), ("1", 1), ("42", 42), ("9223372036854775807", 2**63 - 1)]
)
def test_parse_uint_accepts_canonical(s: str, v: int) -> None:
    assert parse_uint(s, field="n") == v


@pytest.mark.parametrize(
    "s", ["", "00", "042", "+42", "-1", "4_2", " 42", "42 ", "٤٢", "9223372036854775808", "1e3"]
)
def test_parse_uint_rejects_non_canonical(s: str) -> None:
    with pytest.raises(FormatError):
        parse_uint(s, field="n")


def test_b64_round_trip() -> None:
    for n in range(0, 70):
        data = bytes(range(n))
        assert b64decode_strict(b64encode(data), field="x") == data


@pytest.mark.parametrize(
    "s",
    [
        "AA",  # missing padding
        "AB==",  # non-zero padding bits: decodes, but is not canonical
        "AA==\n",
        "A A=",
        "AA-_",  # URL alphabet
        "AAé=",
    ],
)
def test_b64_rejects_non_canonical(s: str) -> None:
    with pytest.raises(FormatError):
        b64decode_strict(s, field="x")


def test_b64_length_is_checked() -> None:
    with pytest.raises(FormatError, match="wrong length"):
        b64decode_strict(b64encode(b"abc"), field="x", length=4)


def test_hex32() -> None:
    assert parse_hex32("ab" * 32, field="h") == b"\xab" * 32
    for bad in ["AB" * 32, "ab" * 31, "ab" * 33, "zz" * 32]:
        with pytest.raises(FormatError):
            parse_hex32(bad, field="h")

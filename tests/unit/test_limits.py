"""limits: integers checked for length before Python converts them; SLIT rows."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numaguard.errors import ParseError
from numaguard.limits import MAX_DISTANCE, decimal, distance_row, shorten


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_decimal_reads_what_str_writes(n):
    assert decimal(str(n)) == n
    assert decimal(f"  000{n}\n") == n          # strtoull: leading zeros and white space


@pytest.mark.parametrize("text", ["", " ", "-1", "+1", "1_000", "0x10", "١٢", "1.5", "12a"])
def test_decimal_refuses_what_is_not_ascii_digits(text):
    with pytest.raises(ParseError, match="expected a non-negative integer"):
        decimal(text, field="f")


def test_decimal_checks_the_length_before_converting():
    digits = "9" * 100_000                       # int() would refuse beyond 4,300 digits
    with pytest.raises(ParseError) as exc:
        decimal(digits, field="vcpu", limit=4096, path="d.xml", line=3)
    assert str(exc.value).startswith("d.xml:3: vcpu: 999")
    assert "(100000 characters) is out of range (at most 4096)" in str(exc.value)
    assert decimal("0" * 5000 + "7", limit=7) == 7
    with pytest.raises(ParseError, match="out of range"):
        decimal("8", limit=7)


def test_shorten():
    assert shorten("abc") == "abc"
    assert shorten("x" * 100, 10) == "xxxxxxxxx… (100 characters)"


def test_distance_rows():
    assert distance_row(["10", "21", "255"], field="distance") == (10, 21, 255)
    assert distance_row(["010", "0021"], field="distance") == (10, 21)   # the slow path
    assert distance_row([], field="distance") == ()
    for bad in (["10", "256"], ["10", "9" * 5000], ["1e3"], ["-1"]):
        with pytest.raises(ParseError, match="distance"):
            distance_row(bad, field="distance")
    assert MAX_DISTANCE == 255

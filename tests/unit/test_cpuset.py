import pytest

from numaguard.cpuset import CPUMASK_LEN, format_bitmap, parse_bitmap, parse_cpulist, parse_nodeset
from numaguard.errors import NodesetError


@pytest.mark.parametrize("text,expected", [
    ("0", {0}),
    ("0-3", {0, 1, 2, 3}),
    ("0-10,^7", set(range(11)) - {7}),
    ("^1,0-3", {0, 1, 2, 3}),          # left to right: the ^1 comes before 1 is set
    ("0-3,^1", {0, 2, 3}),
    (" 1 , 3 - 5 ", {1, 3, 4, 5}),     # virSkipSpaces around items and '-'
    ("0,", {0}),                       # a trailing comma ends the loop in libvirt
    ("0,^0", set()),                   # parses; nodeset callers reject the empty result
    ("16383", {16383}),
    ("2-2", {2}),
    ("0-+3", {0, 1, 2, 3}),            # strtol after '-' takes a sign
])
def test_parse_bitmap_like_libvirt(text, expected):
    assert parse_bitmap(text) == frozenset(expected)


@pytest.mark.parametrize("text,why", [
    ("", "empty"),
    ("   ", "empty"),
    ("3-1", "ends before it starts"),
    ("^1-2", "cannot be excluded"),
    ("0,,1", "expected a number"),
    ("16384", "beyond the maximum 16383"),
    ("0-16384", "beyond the maximum"),
    ("a", "expected a number"),
    ("1-", "expected a number"),
    ("^ 1", r"after '\^'"),
    ("1;2", "unexpected ';'"),
    ("99999999999", "out of range"),
])
def test_parse_bitmap_rejects(text, why):
    with pytest.raises(NodesetError, match=why):
        parse_bitmap(text)


def test_nodeset_must_select_something():
    with pytest.raises(NodesetError, match="selects no node"):
        parse_nodeset("0,^0")
    assert parse_nodeset("0-1,^0") == {1}


def test_error_names_field():
    with pytest.raises(NodesetError) as exc:
        parse_nodeset("3-1", field="numatune/memory/@nodeset")
    assert exc.value.field == "numatune/memory/@nodeset"
    assert str(exc.value) == "numatune/memory/@nodeset: '3-1': range 3-1 ends before it starts"


@pytest.mark.parametrize("bits,text", [
    ({0, 1, 2, 3, 4, 5, 6, 8, 9, 10}, "0-6,8-10"),
    ({0, 1}, "0-1"),
    ({5}, "5"),
    (set(), ""),
    ({0, 2, 4}, "0,2,4"),
])
def test_format_normalised(bits, text):
    assert format_bitmap(bits) == text


def test_kernel_cpulist():
    assert parse_cpulist("0-3,8-11\n") == frozenset([0, 1, 2, 3, 8, 9, 10, 11])
    assert parse_cpulist("\n") == frozenset()  # CPU-less node
    assert CPUMASK_LEN == 16384

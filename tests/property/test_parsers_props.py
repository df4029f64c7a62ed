"""Property tests: the bitmap and unit parsers against an independent model of libvirt's rules."""

from hypothesis import given, settings
from hypothesis import strategies as st

from numaguard.cpuset import CPUMASK_LEN, format_bitmap, parse_bitmap, parse_nodeset
from numaguard.errors import NodesetError, ParseError, UnitError
from numaguard.units import parse_scaled, unit_scale

bit = st.integers(min_value=0, max_value=CPUMASK_LEN - 1)
small_bit = st.integers(min_value=0, max_value=64)


@given(st.frozensets(bit, min_size=1, max_size=40))
def test_format_then_parse_is_identity(bits):
    assert parse_nodeset(format_bitmap(bits)) == bits


@given(st.frozensets(bit, max_size=40))
def test_format_is_normalised(bits):
    text = format_bitmap(bits)
    if bits:
        assert format_bitmap(parse_bitmap(text)) == text


# A nodeset is a list of items applied left to right: N, N-M, ^N.
item = st.one_of(
    st.tuples(st.just("set"), small_bit),
    st.tuples(st.just("clear"), small_bit),
    st.tuples(st.just("range"), small_bit, st.integers(min_value=0, max_value=8)),
)


@given(st.lists(item, min_size=1, max_size=12), st.sampled_from(["", " "]))
def test_items_apply_left_to_right(items, space):
    parts, expected = [], set()
    for it in items:
        if it[0] == "set":
            parts.append(str(it[1]))
            expected.add(it[1])
        elif it[0] == "clear":
            parts.append(f"^{it[1]}")
            expected.discard(it[1])
        else:
            lo, hi = it[1], it[1] + it[2]
            parts.append(f"{lo}{space}-{space}{hi}")
            expected.update(range(lo, hi + 1))
    assert parse_bitmap(f",{space}".join(parts)) == expected


@settings(max_examples=500)
@given(st.text(alphabet="0123456789,-^ \t+x", max_size=20))
def test_bitmap_never_raises_anything_but_nodeset_error(text):
    try:
        result = parse_bitmap(text)
    except NodesetError:
        return
    assert all(0 <= b < CPUMASK_LEN for b in result)


units = st.sampled_from(["b", "bytes", "k", "KiB", "m", "MiB", "g", "GiB", "t", "TiB",
                         "KB", "MB", "GB", "TB", None])


@given(st.integers(min_value=0, max_value=2**20), units)
def test_scaled_is_whole_kib_at_least_the_value(value, unit):
    nbytes = parse_scaled(str(value), unit)
    exact = value * unit_scale(unit)
    assert nbytes % 1024 == 0
    assert exact <= nbytes < exact + 1024


@given(st.integers(min_value=0, max_value=2**20), units)
def test_units_case_insensitive(value, unit):
    if unit is None:
        return
    assert parse_scaled(str(value), unit.upper()) == parse_scaled(str(value), unit.lower())


@settings(max_examples=500)
@given(st.text(max_size=12), st.one_of(st.none(), st.text(max_size=6)))
def test_scaled_never_raises_anything_but_parse_error(value, unit):
    try:
        parse_scaled(value, unit)
    except UnitError:
        pass
    except ParseError as exc:  # pragma: no cover - would be a wrong subclass
        raise AssertionError(f"expected UnitError, got {exc!r}") from None

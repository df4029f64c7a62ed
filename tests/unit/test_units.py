import pytest

from numaguard.errors import UnitError
from numaguard.units import GiB, KiB, MiB, format_bytes, parse_scaled, parse_size, unit_scale


@pytest.mark.parametrize("unit,scale", [
    (None, KiB), ("", KiB), ("b", 1), ("bytes", 1), ("BYTE", 1),
    ("k", KiB), ("KiB", KiB), ("kib", KiB), ("K", KiB),
    ("M", MiB), ("MiB", MiB), ("g", GiB), ("GiB", GiB), ("t", 1024**4), ("TiB", 1024**4),
    ("p", 1024**5), ("e", 1024**6), ("EiB", 1024**6),
    ("KB", 1000), ("kb", 1000), ("MB", 1000**2), ("GB", 1000**3), ("TB", 1000**4),
])
def test_unit_table_is_libvirts(unit, scale):
    assert unit_scale(unit) == scale


@pytest.mark.parametrize("unit", ["parsec", "KiBB", "Ki", "x", "kibibytes", "MBytes"])
def test_unknown_units(unit):
    with pytest.raises(UnitError, match="unknown unit"):
        unit_scale(unit)


def test_memory_rounds_up_to_kib():
    assert parse_scaled("1", "b") == KiB
    assert parse_scaled("1025", "bytes") == 2 * KiB
    assert parse_scaled("1", "KB") == KiB          # 1000 bytes -> 1 KiB
    assert parse_scaled("3", "KB") == 3 * KiB      # 3000 bytes -> 2.93 KiB -> 3 KiB
    assert parse_scaled("12", "GiB") == 12 * GiB
    assert parse_scaled("36700160") == 35 * GiB    # no unit: KiB (the article's vm1)
    assert parse_scaled("0") == 0


@pytest.mark.parametrize("value", ["-1", "1.5", "", "12G", "0x10", "１２"])
def test_bad_values(value):
    with pytest.raises(UnitError):
        parse_scaled(value, "KiB")


def test_too_large():
    assert parse_scaled("8589934591", "GiB") == 8589934591 * GiB   # < 2**63 bytes
    with pytest.raises(UnitError, match="too large"):
        parse_scaled("8", "EiB")


def test_human_sizes():
    assert parse_size("12GiB") == 12 * GiB
    assert parse_size("512 MiB") == 512 * MiB
    assert parse_size("1.5GiB") == 3 * GiB // 2
    assert parse_size("4GB") == 4 * 10**9
    assert parse_size(4096) == 4096
    with pytest.raises(UnitError):
        parse_size("twelve")
    assert format_bytes(12 * GiB) == "12.0 GiB"
    assert format_bytes(512 * MiB) == "512.0 MiB"
    assert format_bytes(0) == "0 B"
    assert format_bytes(None) == "-"

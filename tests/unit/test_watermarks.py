"""Watermarks derived the kernel's way (mm/page_alloc.c), checked by hand and against a kernel."""

import pathlib
import re

from numaguard.core.watermarks import default_min_free_kbytes, kernel_watermarks

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "sys"
GiB = 1024**3
PAGE = 4096


def test_min_free_kbytes_is_4_sqrt_of_lowmem_clamped():
    # the table in mm/page_alloc.c's comment above calculate_min_free_kbytes()
    for mib, kbytes in ((16, 512), (64, 1024), (1024, 4096), (4096, 8192), (16384, 16384)):
        assert default_min_free_kbytes(mib * 1024**2) == kbytes
    assert default_min_free_kbytes(1024**2) == 128            # clamp floor
    assert default_min_free_kbytes(8 * 1024**4) == 262144     # clamp ceiling (256 MiB)


def test_a_4x16_gib_host_by_hand():
    marks = kernel_watermarks(dict.fromkeys(range(4), 16 * GiB))
    # 64 GiB: int_sqrt(67108864 KiB * 16) = 32768 KiB -> 8192 pages, a quarter per node (2048);
    # low = 2048 + max(512, mult_frac(4194304, 10, 10000) = 419 * 10 + 4304 * 10 / 10000 = 4194)
    for m in marks.values():
        assert (m.min, m.low, m.high) == (2048 * PAGE, 6242 * PAGE, 10436 * PAGE)


def _zones(path):
    """(managed, min, low, high) of every populated zone of a captured /proc/zoneinfo."""
    zones, cur = [], None
    for line in path.read_text().splitlines():
        if re.match(r"Node \d+, zone", line):
            cur = {}
            zones.append(cur)
            continue
        parts = line.split()
        if cur is not None and len(parts) == 2 and parts[0] in ("min", "low", "high",
                                                                "managed"):
            cur[parts[0]] = int(parts[1])
    return [(z["managed"], z["min"], z["low"], z["high"]) for z in zones if z.get("managed")]


def test_the_split_over_zones_matches_a_real_kernel():
    """Debian 6.1 under qemu (tests/fixtures/sys/1node): feed each zone's managed pages and the
    captured min_free_kbytes; every zone's min/low/high comes out as the kernel printed it."""
    root = FIXTURES / "1node" / "proc"
    min_free = int((root / "sys" / "vm" / "min_free_kbytes").read_text())
    zones = _zones(root / "zoneinfo")
    assert len(zones) == 2
    marks = kernel_watermarks({i: z[0] * PAGE for i, z in enumerate(zones)},
                              min_free_kbytes=min_free)
    for i, (_, wmin, low, high) in enumerate(zones):
        assert (marks[i].min, marks[i].low, marks[i].high) == (wmin * PAGE, low * PAGE,
                                                               high * PAGE)


def test_watermark_scale_factor_widens_the_gap():
    narrow = kernel_watermarks({0: 64 * GiB})[0]
    wide = kernel_watermarks({0: 64 * GiB}, watermark_scale_factor=200)[0]
    assert wide.min == narrow.min and wide.low - wide.min == 64 * GiB // PAGE * 200 // 10000 * PAGE

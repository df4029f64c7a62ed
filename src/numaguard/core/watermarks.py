"""Zone watermarks as the kernel sets them at boot, for nodes whose ``/proc/zoneinfo`` we lack.

A port of ``calculate_min_free_kbytes()`` and ``__setup_per_zone_wmarks()`` (mm/page_alloc.c,
called from ``init_per_zone_wmark_min()``; read at torvalds/linux
dac22531bbd4af2426c4e29e05594415ccfa365d, the same code as Linux 6.1):

* ``min_free_kbytes = int_sqrt(lowmem_kbytes * 16)``, clamped to [128, 262144] KiB, where
  ``lowmem_kbytes`` is every lowmem zone's managed pages (``nr_free_buffer_pages()`` at boot,
  when no watermark is set yet) — on x86-64 all memory is lowmem;
* ``pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)`` is split over the zones by their share of
  managed pages: ``min = pages_min * managed / lowmem_pages``;
* ``low = min + max(min_share >> 2, mult_frac(managed, watermark_scale_factor, 10000))`` and
  ``high = low + the same distance`` (``watermark_scale_factor`` defaults to 10, i.e. 0.1 %).

Simplifications: one zone per node (a node's DMA/DMA32/Normal zones each round down on their
own, a few pages' difference), managed pages = MemTotal, and no transparent-hugepage boost —
khugepaged raises ``min_free_kbytes`` (mm/khugepaged.c ``set_recommended_min_free_kbytes``)
towards tens or hundreds of MiB on Debian's kernels; pass the host's real
``/proc/sys/vm/min_free_kbytes`` as *min_free_kbytes* to follow it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

PAGE_SIZE = 4096
PAGE_SHIFT = 12
MIN_FREE_KBYTES_FLOOR = 128
MIN_FREE_KBYTES_CEILING = 262144
DEFAULT_WATERMARK_SCALE_FACTOR = 10


@dataclass(frozen=True, slots=True)
class Watermarks:
    """One node's watermarks in bytes."""

    min: int
    low: int
    high: int


def default_min_free_kbytes(lowmem_bytes: int) -> int:
    """``calculate_min_free_kbytes()``: 4 × sqrt(lowmem in KiB), clamped to [128, 262144]."""
    lowmem_kbytes = (lowmem_bytes // PAGE_SIZE) * (PAGE_SIZE >> 10)
    value = math.isqrt(lowmem_kbytes * 16)
    return max(MIN_FREE_KBYTES_FLOOR, min(MIN_FREE_KBYTES_CEILING, value))


def _mult_frac(x: int, numer: int, denom: int) -> int:
    """The kernel's ``mult_frac(x, n, d)``: x * n / d without overflowing, rounding down."""
    quot, rem = divmod(x, denom)
    return quot * numer + (rem * numer) // denom


def kernel_watermarks(totals: Mapping[int, int], *, min_free_kbytes: int | None = None,
                      watermark_scale_factor: int = DEFAULT_WATERMARK_SCALE_FACTOR,
                      ) -> dict[int, Watermarks]:
    """The min/low/high watermarks of every node, from each node's total memory (bytes).

    *min_free_kbytes* defaults to what the kernel computes at boot from the sum of *totals*.
    """
    managed = {n: max(0, t) // PAGE_SIZE for n, t in totals.items()}
    lowmem_pages = sum(managed.values())
    if min_free_kbytes is None:
        min_free_kbytes = default_min_free_kbytes(lowmem_pages * PAGE_SIZE)
    pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)
    out: dict[int, Watermarks] = {}
    for n, pages in managed.items():
        share = pages_min * pages // lowmem_pages if lowmem_pages else 0
        distance = max(share >> 2, _mult_frac(pages, watermark_scale_factor, 10000))
        low = share + distance
        out[n] = Watermarks(share * PAGE_SIZE, low * PAGE_SIZE, (low + distance) * PAGE_SIZE)
    return out

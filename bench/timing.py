"""The one timing helper the benchmarks share: the median wall time of repeated calls."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

#: runs per figure (``BENCH_RUNS``)
RUNS = int(os.environ.get("BENCH_RUNS", "7"))


def median_seconds(fn: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)

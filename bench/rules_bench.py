"""The audit's rules without the simulator (issue 11): in-process medians, for bench/run.py.

``audit()`` = the rules + NG110's prediction (the simulator playing every start order, which
core/simulate.py's benchmark measures).  To time the rules alone, the prediction is played once
per snapshot and handed to every later audit (:func:`rules_seconds`): a Context whose
``prediction`` is already known, nothing else changed.  Each function returns ``(label,
seconds)`` medians; *runs* defaults to bench/run.py's ``BENCH_RUNS``.

Run alone: ``PYTHONPATH=src python bench/rules_bench.py [SNAPSHOT ...]`` (default: builds the
16 x 1,000, 16 x 10,000 at the same density, plain 16 x 10,000 and 256 x 1,000 snapshots in a
temporary directory).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

RUNS = int(os.environ.get("BENCH_RUNS", "7"))

#: (nodes, guests, node_gib) of each measured snapshot, with the label's words
SNAPSHOTS = (
    (16, 1000, 256, "16 x 1,000"),
    (16, 10000, 2560, "16 x 10,000, same density (node_gib=2560)"),
    (16, 10000, 256, "16 x 10,000, node_gib=256 (more OOM kills)"),
    (256, 1000, 256, "256 x 1,000"),
)


def seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_seconds(fn: Callable[[], object], runs: int = RUNS) -> float:
    """The median wall time of *runs* calls of *fn* (as bench/run.py's)."""
    return statistics.median(seconds(fn) for _ in range(runs))


@contextmanager
def known_prediction(host, guests) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Within this block, every audit of *host* hands its Context the prediction played once
    here (the simulator's part, with the start orders it plays: core/orders.py), so that what
    is timed is the rules.  Only a Context of these very guests (the same tuple) gets it:
    verify()'s re-audits of changed guests play their own."""
    from numaguard.core import rules

    guests = tuple(guests)
    played = rules.Context(host, guests, rules.AuditOptions())
    prediction, orders = played.prediction, played.orders
    plain = rules.Context

    class Played(plain):  # type: ignore[misc,valid-type]
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            if self.guests is guests and self.host is host:
                self.__dict__["prediction"] = prediction
                self.__dict__["orders"] = orders   # the start orders it played

    rules.Context = Played  # type: ignore[misc]
    try:
        yield
    finally:
        rules.Context = plain  # type: ignore[misc]


def rules_seconds(snap: str, runs: int = RUNS) -> tuple[float, float]:
    """(every rule without the prediction, the whole in-process audit) for snapshot *snap*."""
    from numaguard.core.rules import audit
    from numaguard.readers.sources import read_paths

    loaded = read_paths([snap])
    host, guests = loaded.host, tuple(loaded.guests)
    whole = median_seconds(lambda: audit(host, guests), runs)
    with known_prediction(host, guests):
        alone = median_seconds(lambda: audit(host, guests), runs)
    return alone, whole


def rules_rows(tmp: str, runs: int = RUNS,
               snapshots: tuple[tuple[int, int, int, str], ...] = SNAPSHOTS
               ) -> list[tuple[str, float]]:
    """The rules alone (and the whole audit) on each of *snapshots* (default
    :data:`SNAPSHOTS`; the two 10,000-guest ones take most of a minute), built under *tmp*
    unless there already."""
    from tests.support.synth import synth_snapshot

    rows = []
    for nodes, guests, node_gib, words in snapshots:
        snap = os.path.join(tmp, f"rules-{nodes}-{guests}-{node_gib}")
        if not os.path.isdir(snap):
            synth_snapshot(snap, nodes=nodes, guests=guests, node_gib=node_gib)
        alone, whole = rules_seconds(snap, runs)
        rows.append((f"  in-process: the rules without NG110's prediction, {words}", alone))
        rows.append((f"  in-process: the whole audit, {words}", whole))
    return rows


def floor_seconds(runs: int = RUNS) -> float:
    """``python -c pass``, the machine's yardstick in the same run (it is shared and noisy)."""
    return median_seconds(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True),
                          runs)


def main() -> None:
    floor = floor_seconds()
    print(f"python -c pass: {floor * 1000:.1f} ms")
    if len(sys.argv) > 1:
        for snap in sys.argv[1:]:
            alone, whole = rules_seconds(snap)
            print(f"{snap}: rules {alone * 1000:8.1f} ms ({alone / floor:4.1f}x)   "
                  f"audit {whole * 1000:8.1f} ms ({whole / floor:4.1f}x)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for label, secs in rules_rows(tmp):
            print(f"{label:<80} {secs * 1000:9.1f} ms ({secs / floor:5.1f}x)")


if __name__ == "__main__":
    main()

"""Reading the world (issue 11): domain XML extraction and the sysfs/snapshot readers, in-process.

Each function returns ``(label, seconds)`` rows, every figure the median of ``BENCH_RUNS``
(default 7) runs; ``bench/run.py`` puts them in its table.  :func:`read_rows` builds the
snapshots it needs under a temporary folder (tests/support/synth.py), the same as the rest of
the benchmark: 16 nodes x 1,000 guests, 16 x 10,000 at the same density (``node_gib=2560``),
and 64 and 256 nodes x 1,000 guests.

Targets (issue 11): ``read_paths`` of the 16 x 1,000 snapshot <= 35 ms (about 110 ms
before); 10,000 guests <= 11x the 1,000-guest figure; sysfs reading near-linear in nodes.
``python bench/read_bench.py [DIR]`` prints the rows with the scaling ratios (DIR keeps the
snapshots for the next run).
"""

from __future__ import annotations

import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench.timing import RUNS, median_seconds

Row = tuple[str, float]


def make_snapshots(tmp: str) -> dict[str, str]:
    """The snapshots the rows read, by name: ``n16``, ``n16-10k``, ``n64``, ``n256``."""
    from tests.support.synth import synth_snapshot

    specs = {"n16": {"nodes": 16, "guests": 1000},
             "n16-10k": {"nodes": 16, "guests": 10_000, "node_gib": 2560},
             "n64": {"nodes": 64, "guests": 1000},
             "n256": {"nodes": 256, "guests": 1000}}
    paths = {}
    for name, spec in specs.items():
        path = os.path.join(tmp, name)
        if not os.path.isdir(path):
            synth_snapshot(path, **spec)
        paths[name] = path
    return paths


def audit_input_rows(snaps: dict[str, str]) -> list[Row]:
    """``read_paths([SNAP])``: host, guests and kernel facts, as ``numaguard audit``."""
    from numaguard.readers.sources import read_paths

    return [
        ("  in-process: audit input, 16 x 1,000 (target <= 35 ms)",
         median_seconds(lambda: read_paths([snaps["n16"]]))),
        ("  in-process: audit input, 16 x 10,000 (target <= 11x the 1,000)",
         median_seconds(lambda: read_paths([snaps["n16-10k"]]), runs=max(3, RUNS // 2))),
        ("  in-process: audit input, 256 x 1,000",
         median_seconds(lambda: read_paths([snaps["n256"]]))),
    ]


def extraction_rows(snaps: dict[str, str]) -> list[Row]:
    """The 1,000 domain XMLs of the 16 x 1,000 snapshot split into listing, reading, parsing
    (the safe parser) and extraction (document -> Guest)."""
    from numaguard.domxml.document import DomainDocument
    from numaguard.domxml.extract import extract_guest
    from numaguard.readers.domains import list_domain_files_keyed
    from numaguard.readers.files import read_listed_bytes

    folder = os.path.join(snaps["n16"], "domains")
    listed = list_domain_files_keyed(folder)
    blobs = [(f.path, read_listed_bytes(f.path)) for f in listed]
    docs = [DomainDocument(data, path=path) for path, data in blobs]
    return [
        ("  in-process: list 1,000 domain XMLs (realpath keys)",
         median_seconds(lambda: list_domain_files_keyed(folder))),
        ("  in-process: read 1,000 domain XMLs",
         median_seconds(lambda: [read_listed_bytes(f.path) for f in listed])),
        ("  in-process: parse 1,000 domain XMLs (safe parser)",
         median_seconds(lambda: [DomainDocument(data, path=path) for path, data in blobs])),
        ("  in-process: extract 1,000 guests from parsed XML",
         median_seconds(lambda: [extract_guest(doc) for doc in docs])),
    ]


def sysfs_rows(snaps: dict[str, str]) -> list[Row]:
    """The captured sysfs tree of 16, 64 and 256 nodes (the SLIT grows with nodes squared)."""
    from numaguard.readers.sysfs import SysfsReader

    return [(f"  in-process: read {name[1:]}-node sysfs tree",
             median_seconds(lambda name=name: SysfsReader(
                 os.path.join(snaps[name], "host")).read_host()))
            for name in ("n16", "n64", "n256")]


def read_rows(tmp: str) -> list[Row]:
    """Every row above, on snapshots made under *tmp*."""
    snaps = make_snapshots(tmp)
    return audit_input_rows(snaps) + extraction_rows(snaps) + sysfs_rows(snaps)


def main() -> None:
    if len(sys.argv) > 1:  # a folder to keep the snapshots in between runs
        rows = read_rows(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory(prefix="numaguard-read-bench-") as tmp:
            rows = read_rows(tmp)
    width = max(len(label) for label, _ in rows)
    for label, secs in rows:
        print(f"{label:<{width}}  {secs * 1000:8.2f} ms")
    by = dict(rows)
    a1k, a10k = by[rows[0][0]], by[rows[1][0]]
    print(f"10,000 / 1,000 guests: {a10k / a1k:.1f}x (target <= 11x)")
    s16, s256 = (by[f"  in-process: read {n}-node sysfs tree"] for n in ("16", "256"))
    print(f"sysfs 256 / 16 nodes: {s256 / s16:.1f}x (16x is linear)")


if __name__ == "__main__":
    main()

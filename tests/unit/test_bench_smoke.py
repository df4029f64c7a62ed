"""The benchmarks still run against today's API (they are not part of any timed test: this
only runs their measuring code once, on a small snapshot, and checks what it returns)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.support.synth import synth_snapshot
synth_snapshot({snap!r}, nodes=4, guests=20)
from bench import run, rules_bench
parts = run._parts({snap!r})
assert len(parts) == 8 and all(secs > 0 for _, secs in parts), parts
alone, whole = rules_bench.rules_seconds({snap!r}, runs=1)
assert 0 < alone and 0 < whole
print("ok")
"""


def test_the_in_process_benchmarks_run(tmp_path):
    snap = str(tmp_path / "snap")
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(root=str(ROOT), snap=snap)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "BENCH_RUNS": "1",
                               "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_scrape_benchmark_tree_reads_back(tmp_path):
    """bench/live_bench.py's generated live tree: both paths give the same per-node bytes."""
    sys.path.insert(0, str(ROOT))
    from bench.live_bench import live_tree
    from numaguard.readers.live import read_live
    from tests.support.synth import synth_snapshot

    figures = []
    for cgroup in (True, False):
        snap = tmp_path / f"s{cgroup}"
        synth_snapshot(str(snap), nodes=4, guests=6)
        live_tree(str(snap), cgroup=cgroup)
        state = read_live(str(snap / "host"))
        assert all(g.error is None for g in state.guests) and len(state.guests) == 6
        assert {g.source for g in state.guests} == {"cgroup-v2" if cgroup else "numa_maps"}
        figures.append({g.name: g.per_node for g in state.guests})
    assert figures[0] == figures[1]


def test_the_scrape_benchmark_rows_and_numastat_beside_them():
    """bench/live_bench.measure on a small tree: the two scrape rows as bench/run.py reads
    them, and numastat -p's row — timed and checked against numaguard's figures (a mismatch
    raises), or one line saying why it did not run here."""
    sys.path.insert(0, str(ROOT))
    from bench.live_bench import measure

    measured = measure(1, guests=6, nodes=4)
    assert [label.rsplit(", ", 1)[1] for label, _, _ in measured.scrape] == \
        ["cgroup path (memory.numa_stat)", "numa_maps path"]
    assert all(secs > 0 and series > 6 * 4 for _, secs, series in measured.scrape)
    label, secs, note = measured.numastat
    assert label == "numastat -p, the same 6 PIDs"
    if secs is None:
        assert note.startswith("not run: ") and "\n" not in note, note
    else:
        assert secs > 0 and "28.76 MiB of library page cache" in note, note

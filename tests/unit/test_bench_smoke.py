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

"""Golden renders of ``numaguard top --once`` on examples/article-host (its host/ tree carries
captured live files: three running guests' pid files, cgroups and v1 ``memory.numa_stat``), at
80 and 120 columns.  ``UPDATE_GOLDEN=1 pytest tests/golden/test_top_golden.py`` rewrites them
from the current output: read every changed line before committing it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from numaguard.cli import main

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(__file__).resolve().parent / "output" / "top"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("columns", [80, 120])
def test_top_once(capsys, monkeypatch, columns):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("COLUMNS", str(columns))
    capsys.readouterr()
    code = main(["top", "examples/article-host", "--once"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert max(len(line) for line in out.splitlines()) <= columns
    golden = OUTPUT / f"article-host-{columns}.txt"
    if UPDATE:
        golden.write_text(out)
    assert out == golden.read_text()


def test_top_of_a_remote_uri_says_where_to_run_it(capsys):
    pytest.importorskip("libvirt")
    code = main(["top", "-c", "test:///default", "--once"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert "top reads the guests' memory from /proc and the cgroups" in err

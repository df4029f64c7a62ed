"""The exporter's scrape at scale (issue 13): 500 running guests on 16 nodes (a generated
snapshot with generated live files), one full scrape (read the inventory, the live state, audit,
render the page), over the cgroup path (``memory.numa_stat``) and the numa_maps path (the same
guests without ``memory.numa_stat``: ``/proc/PID/numa_maps`` of ~200 mappings each, QEMU's
typical count), in process; the 95th percentile over the runs and the page's series count.
``numastat -p`` cannot read a generated tree (it reads the live /proc), so it is not beside them.

    PYTHONPATH=src .venv/bin/python bench/live_bench.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.timing import RUNS
from tests.support.synth import synth_snapshot

GUESTS, NODES = 500, 16
MAPPINGS = 200   # QEMU maps its binary, ~50 libraries, guest RAM, heaps, stacks


def live_tree(snapshot: str, *, cgroup: bool) -> None:
    """Every guest of *snapshot* running: libvirt's pid file, a v2 cgroup, and either its
    ``memory.numa_stat`` or only its numa_maps; memory spread over two nodes."""
    host = os.path.join(snapshot, "host")
    run = os.path.join(host, "run", "libvirt", "qemu")
    os.makedirs(run, exist_ok=True)
    names = sorted(f.removesuffix(".xml") for f in os.listdir(os.path.join(snapshot, "domains")))
    for i, name in enumerate(names):
        pid = 10_000 + i
        with open(os.path.join(run, f"{name}.pid"), "w") as fh:
            fh.write(str(pid))
        scope = f"machine.slice/machine-qemu\\x2d{i + 1}\\x2d{name}.scope"
        proc = os.path.join(host, "proc", str(pid))
        os.makedirs(proc, exist_ok=True)
        with open(os.path.join(proc, "cgroup"), "w") as fh:
            fh.write(f"0::/{scope}/libvirt/emulator\n")
        a, b = i % NODES, (i + 1) % NODES
        pages = {a: 200_000 + i, b: 50_000}
        lines = []
        for m in range(MAPPINGS - 1):
            lines.append(f"7f{m:010x}000 default file=/usr/lib/lib{m}.so anon=3 dirty=3 "
                         f"mapped=40 N{a}=40 kernelpagesize_kB=4")
        per = " ".join(f"N{n}={p}" for n, p in sorted(pages.items()))
        lines.append(f"7fff00000000 bind:{a},{b} anon={sum(pages.values())} dirty=1 {per} "
                     "kernelpagesize_kB=4")
        with open(os.path.join(proc, "numa_maps"), "w") as fh:
            fh.write("\n".join(lines) + "\n")
        cg = os.path.join(host, "sys", "fs", "cgroup", scope)
        os.makedirs(cg, exist_ok=True)
        if cgroup:   # the same bytes numa_maps counts: RAM, plus the libraries' anon pages
            libs = 3 * 4096 * (MAPPINGS - 1)
            anon = " ".join(f"N{n}={pages.get(n, 0) * 4096 + (libs if n == a else 0)}"
                            for n in range(NODES))
            zero = " ".join(f"N{n}=0" for n in range(NODES))
            with open(os.path.join(cg, "memory.numa_stat"), "w") as fh:
                fh.write(f"anon {anon}\nfile {zero}\nshmem {zero}\n")


def scrape_seconds(snapshot: str, runs: int) -> tuple[list[float], int]:
    from prometheus_client import generate_latest

    from numaguard.exporter.collector import NumaguardCollector
    from numaguard.exporter.serve import registry_for
    from numaguard.readers.live import read_live
    from numaguard.readers.sources import read_paths

    collector = NumaguardCollector(lambda: read_paths([snapshot]),
                                   live=lambda inv: read_live(os.path.join(snapshot, "host")))
    registry = registry_for(collector)
    times = []
    page = b""
    for _ in range(runs):
        t0 = time.perf_counter()
        page = generate_latest(registry)
        times.append(time.perf_counter() - t0)
    assert b"numaguard_scrape_success 1.0" in page, page[-400:]
    series = sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))
    return times, series


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]


def rows(runs: int = RUNS) -> list[tuple[str, float, int]]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "base")
        synth_snapshot(base, nodes=NODES, guests=GUESTS)
        for label, cgroup in (("cgroup path (memory.numa_stat)", True),
                              ("numa_maps path", False)):
            snap = os.path.join(tmp, label.split()[0])
            shutil.copytree(base, snap)
            live_tree(snap, cgroup=cgroup)
            times, series = scrape_seconds(snap, max(runs, 5))
            out.append((f"exporter scrape, {GUESTS} guests x {NODES} nodes, {label}",
                        p95(times), series))
    return out


if __name__ == "__main__":
    for label, secs, series in rows():
        print(f"{label:62} p95 {secs * 1000:8.1f} ms  {series:,} series")

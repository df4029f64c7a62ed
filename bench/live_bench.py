"""The exporter's scrape at scale (issue 13): 500 running guests on 16 nodes (a generated
snapshot with generated live files), one full scrape (read the inventory, the live state, audit,
render the page), over the cgroup path (``memory.numa_stat``) and the numa_maps path (the same
guests without ``memory.numa_stat``: ``/proc/PID/numa_maps`` of ~200 mappings each, QEMU's
typical count), in process; the 95th percentile over the runs and the page's series count.
Between two scrapes every guest's figures change (:func:`grow`, not timed), as on a live host:
nothing the scrape caches can stand in for reading and auditing them.

Beside them, ``numastat -p`` on the numa_maps tree's 500 PIDs: one whole ``numastat -p PID PID
…`` process per run, inside a private mount namespace where the tree's ``proc/`` is /proc
(bench/numastat_tree.py; root).  Its per-node MiB are checked against numaguard's numa_maps
figures plus the libraries' page cache numastat counts and numaguard does not; a difference
stops the benchmark.  The files are generated: neither numa_maps row includes the kernel's
page-table walk a live ``/proc/PID/numa_maps`` costs (~23 ms per GiB of guest, docs/live.md).

    PYTHONPATH=src .venv/bin/python bench/live_bench.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import numastat_tree
from bench.timing import RUNS
from tests.support.synth import synth_snapshot

GUESTS, NODES = 500, 16
MAPPINGS = 200   # QEMU maps its binary, ~50 libraries, guest RAM, heaps, stacks
LIB_MAPPED, LIB_ANON = 40, 3   # pages of each library mapping: mapped (page cache), anon (CoW)
PAGE = 4096


def live_tree(snapshot: str, *, cgroup: bool) -> None:
    """Every guest of *snapshot* running: libvirt's pid file (guest ``i`` of the sorted names
    is PID 10,000 + i), a v2 cgroup, and either its ``memory.numa_stat`` or only its
    numa_maps; memory spread over two of the snapshot's nodes (:func:`guest_nodes`)."""
    host = os.path.join(snapshot, "host")
    nodes = node_count(snapshot)
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
        a, b = guest_nodes(i, nodes)
        pages = {a: 200_000 + i, b: 50_000}
        lines = []
        for m in range(MAPPINGS - 1):
            lines.append(f"7f{m:010x}000 default file=/usr/lib/lib{m}.so anon={LIB_ANON} "
                         f"dirty={LIB_ANON} mapped={LIB_MAPPED} N{a}={LIB_MAPPED} "
                         f"kernelpagesize_kB={PAGE // 1024}")
        per = " ".join(f"N{n}={p}" for n, p in sorted(pages.items()))
        lines.append(f"7fff00000000 bind:{a},{b} anon={sum(pages.values())} dirty=1 {per} "
                     "kernelpagesize_kB=4")
        with open(os.path.join(proc, "numa_maps"), "w") as fh:
            fh.write("\n".join(lines) + "\n")
        cg = os.path.join(host, "sys", "fs", "cgroup", scope)
        os.makedirs(cg, exist_ok=True)
        if cgroup:
            write_numa_stat(cg, nodes, a, pages, 0)


#: the keys of a v2 ``memory.numa_stat`` as Debian's 6.1 prints them (27 lines), from the
#: kernel oracle's capture
NUMA_STAT_KEYS = tuple(line.split(" ", 1)[0] for line in open(os.path.join(  # noqa: SIM115
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "live",
    "n3-bind-cpu2", "memory.numa_stat")).read().splitlines() if line)


def write_numa_stat(cgroup_dir: str, nodes: int, a: int, pages: dict[int, int],
                    grown: int) -> None:
    """The guest's ``memory.numa_stat`` with every key the kernel prints: ``anon`` the bytes
    numa_maps counts (RAM, plus the libraries' anon pages) and *grown* more pages on node *a*,
    ``active_anon`` the same, ``pagetables`` and ``kernel_stack`` a little, the rest 0."""
    libs = LIB_ANON * PAGE * (MAPPINGS - 1)
    anon = {n: (pages.get(n, 0) + (grown if n == a else 0)) * PAGE + (libs if n == a else 0)
            for n in range(nodes)}
    small = {n: (4096 * 64 if n == a else 0) for n in range(nodes)}
    lines = []
    for key in NUMA_STAT_KEYS:
        values = anon if key in ("anon", "active_anon") else small \
            if key in ("pagetables", "kernel_stack") else dict.fromkeys(range(nodes), 0)
        lines.append(key + " " + " ".join(f"N{n}={values[n]}" for n in range(nodes)))
    with open(os.path.join(cgroup_dir, "memory.numa_stat"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


def grow(snapshot: str, step: int) -> None:
    """Between two scrapes, as on a live host: every guest holds *step* more pages (cgroup
    tree: its ``memory.numa_stat``; numa_maps tree: its RAM mapping's counts)."""
    host = os.path.join(snapshot, "host")
    nodes = node_count(snapshot)
    names = sorted(f.removesuffix(".xml") for f in os.listdir(os.path.join(snapshot, "domains")))
    for i, name in enumerate(names):
        a, b = guest_nodes(i, nodes)
        pages = {a: 200_000 + i, b: 50_000}
        cg = os.path.join(host, "sys", "fs", "cgroup",
                          f"machine.slice/machine-qemu\\x2d{i + 1}\\x2d{name}.scope")
        if os.path.exists(os.path.join(cg, "memory.numa_stat")):
            write_numa_stat(cg, nodes, a, pages, step)
            continue
        path = os.path.join(host, "proc", str(10_000 + i), "numa_maps")
        with open(path) as fh:
            lines = fh.read().splitlines()
        pages[a] += step
        per = " ".join(f"N{n}={p}" for n, p in sorted(pages.items()))
        lines[-1] = (f"7fff00000000 bind:{a},{b} anon={sum(pages.values())} dirty=1 {per} "
                     "kernelpagesize_kB=4")
        with open(path, "w") as fh:
            fh.write("\n".join(lines) + "\n")


def node_count(snapshot: str) -> int:
    return sum(1 for e in os.listdir(os.path.join(snapshot, "host", numastat_tree.NODE_DIR))
               if e.startswith("node") and e[4:].isdigit())


def guest_nodes(i: int, nodes: int) -> tuple[int, int]:
    """Guest *i*'s two nodes: its RAM's main one (with its libraries) and the second."""
    return i % nodes, (i + 1) % nodes


def page_cache(i: int, nodes: int) -> dict[int, int]:
    """Bytes of guest *i*'s library mappings that are page cache (mapped, not anon): what
    ``numastat -p`` counts and numaguard's numa_maps reader leaves out, per node."""
    return {guest_nodes(i, nodes)[0]: (MAPPINGS - 1) * (LIB_MAPPED - LIB_ANON) * PAGE}


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
    for run in range(runs):
        grow(snapshot, 256 * run)   # new figures at every scrape (not timed)
        t0 = time.perf_counter()
        page = generate_latest(registry)
        times.append(time.perf_counter() - t0)
    assert b"numaguard_scrape_success 1.0" in page, page[-400:]
    series = sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))
    return times, series


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]


@dataclass(frozen=True)
class Measured:
    """:func:`measure`'s rows: ``scrape`` as :func:`rows` gives them, (label, p95 seconds,
    series); ``numastat``: (label, p95 seconds or ``None`` when it could not run, what was
    checked or, in one line, why it did not run)."""

    scrape: list[tuple[str, float, int]]
    numastat: tuple[str, float | None, str] | None


def rows(runs: int = RUNS) -> list[tuple[str, float, int]]:
    """The two scrape rows (cgroup path, numa_maps path)."""
    return measure(runs, numastat=False).scrape


def measure(runs: int = RUNS, *, guests: int = GUESTS, nodes: int = NODES,
            numastat: bool = True) -> Measured:
    """The scrape rows and, with *numastat*, numastat -p's on the numa_maps tree."""
    out = []
    side = None
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "base")
        synth_snapshot(base, nodes=nodes, guests=guests)
        for label, cgroup in (("cgroup path (memory.numa_stat)", True),
                              ("numa_maps path", False)):
            snap = os.path.join(tmp, label.split()[0])
            shutil.copytree(base, snap)
            live_tree(snap, cgroup=cgroup)
            times, series = scrape_seconds(snap, max(runs, 5))
            out.append((f"exporter scrape, {guests} guests x {nodes} nodes, {label}",
                        p95(times), series))
        if numastat:
            side = numastat_row(os.path.join(tmp, "numa_maps"), max(runs, 5))
    return Measured(out, side)


def numastat_row(snapshot: str, runs: int) -> tuple[str, float | None, str]:
    """``numastat -p`` on every guest PID of *snapshot*'s numa_maps tree, *runs* times: its
    per-node MiB must be numaguard's numa_maps figures plus the libraries' page cache
    (:func:`page_cache`), else :class:`numastat_tree.NumastatMismatch`."""
    from numaguard.readers.live import read_live

    host = os.path.join(snapshot, "host")
    state = read_live(host)
    assert all(g.error is None and g.source == "numa_maps" for g in state.guests), state
    pids = [g.pid for g in state.guests if g.pid is not None]
    label = f"numastat -p, the same {len(pids)} PIDs"
    why = numastat_tree.unavailable()
    if why is None:
        numastat_tree.prepare(host, pids)
        try:
            times, text = numastat_tree.run(host, pids, runs)
        except numastat_tree.NumastatError as exc:
            why = str(exc)
    if why is not None:
        return label, None, f"not run: {why}"
    nodes = node_count(snapshot)
    expected = {}
    for g in state.guests:
        assert g.pid is not None
        per_node = dict(g.per_node)
        for node, cache in page_cache(g.pid - 10_000, nodes).items():
            per_node[node] = per_node.get(node, 0) + cache
        expected[g.pid] = per_node
    numastat_tree.check(numastat_tree.parse(text), expected)
    cache = sum(page_cache(0, nodes).values()) / numastat_tree.MiB
    return (label, p95(times), f"whole process; every PID's per-node MiB = numaguard's + "
                               f"{cache:.2f} MiB of library page cache")


if __name__ == "__main__":
    measured = measure()
    for label, secs, series in measured.scrape:
        print(f"{label:62} p95 {secs * 1000:8.1f} ms  {series:,} series")
    if measured.numastat is not None:
        label, secs, note = measured.numastat
        if secs is None:
            print(f"{label:62} {note}")
        else:
            print(f"{label:62} p95 {secs * 1000:8.1f} ms  {note}")

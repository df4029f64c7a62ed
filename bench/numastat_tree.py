"""``numastat -p`` (numactl) run on a generated or captured tree, beside numaguard's reader.

numastat reads fixed paths under ``/proc`` and ``/sys``, so the tree's ``proc/`` is bind-mounted
on ``/proc`` and its ``sys/devices/system/node`` on ``/sys/devices/system/node`` inside a private
mount namespace (``unshare --mount``, root): the host's own mounts are untouched and the binds
vanish with the namespace's last process.

What ``numastat -p PID PID …`` reads (numastat.c of numactl 2.0.16, Debian's ``numactl``
package; github.com/numactl/numactl tag v2.0.16):

* ``/sys/devices/system/node``: the ``node<N>`` directory names only, its columns
  (``init_node_ix_map_and_header``; per-node ``meminfo`` only with ``-m``).  A ``N<k>=`` in
  numa_maps for a node not listed there runs past its node array, so the tree's node
  directories must cover every node its numa_maps name.
* ``/proc/meminfo`` ``Hugepagesize:`` (``get_huge_page_size_in_bytes``; it exits when the file
  cannot be opened): the page size of every ``huge`` mapping, whatever its own size.
* ``/proc/PID/status`` ``Name:``: the row's label ``PID (Name)`` (``command_name_for_pid``;
  ``(null)`` without the file).
* ``/proc/PID/numa_maps``: every ``N<node>=<pages>`` token of every line × ``sysconf
  (_SC_PAGESIZE)`` (× ``Hugepagesize`` on a line with a token starting ``huge``), divided by
  ``MEGABYTE`` (1024 × 1024) and printed with two decimals (``show_process_info``).  It does not
  read ``kernelpagesize_kB`` and counts file mappings whole: the shared libraries' page cache
  is in its figure, not in numaguard's (readers/live.py ``parse_numa_maps``).

Several PIDs (they may follow ``-p`` as further arguments: ``main``'s ``optind`` loop) give one
table, a row per PID, sorted and deduplicated; one PID gives its Huge/Heap/Stack/Private rows
and their Total.  Off a terminal the table is not folded (``get_screen_width``: 10,000,000
columns).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence

MiB = 1024 * 1024
#: numastat prints MiB with two decimals: half a hundredth, plus the doubles' summing error
TOLERANCE_MIB = 0.005 + 1e-6
NODE_DIR = "sys/devices/system/node"

# Timed inside the namespace: each run is the whole numastat process, as an admin runs it.
_INNER = """
import json, subprocess, sys, time
runs, argv = int(sys.argv[1]), sys.argv[2:]
times, out = [], ""
for _ in range(runs):
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    times.append(time.perf_counter() - t0)
    if done.returncode != 0 or done.stderr:
        print(json.dumps({"error": f"exit {done.returncode}: {done.stderr.strip()[:300]}"}))
        sys.exit(3)
    out = done.stdout
print(json.dumps({"times": times, "stdout": out}))
"""
# the node directory first: mount(8) reads /proc/self/mountinfo, which the bound proc/ lacks
_BIND = ('mount --bind "$1" /sys/devices/system/node && mount --bind "$2" /proc '
         '&& shift 2 && exec "$@"')


class NumastatError(Exception):
    """numastat could not be run on the tree: ``str()`` is one line saying why."""


class NumastatMismatch(AssertionError):
    """numastat's figure for a PID and node differs from the expected one."""


def unavailable() -> str | None:
    """Why numastat cannot be run on a tree here, ``None`` when it can."""
    if os.geteuid() != 0:
        return f"needs root for a private mount namespace (unshare --mount); uid {os.geteuid()}"
    for tool, package in (("numastat", "numactl"), ("unshare", "util-linux"),
                          ("mount", "mount")):
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian package {package})"
    if not os.path.isdir("/sys/devices/system/node"):
        return "/sys/devices/system/node is missing (the bind needs it as its mount point)"
    try:
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare --mount true: {exc}"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[0]
        return f"unshare --mount true: {why}"
    return None


def prepare(root: str, pids: Sequence[int], name: str = "qemu-system-x86") -> None:
    """Give *root* what numastat reads and a generated tree may lack: ``proc/PID/status`` with
    ``Name:`` for each of *pids* (kept when present) and ``proc/meminfo``'s ``Hugepagesize:``
    (x86-64's default, 2048 kB, when the file has none)."""
    for pid in pids:
        status = os.path.join(root, "proc", str(pid), "status")
        if not os.path.exists(status):
            with open(status, "w") as fh:
                fh.write(f"Name:\t{name}\nPid:\t{pid}\nHugetlbPages:\t       0 kB\n")
    meminfo = os.path.join(root, "proc", "meminfo")
    text = ""
    if os.path.exists(meminfo):
        with open(meminfo) as fh:
            text = fh.read()
    if "Hugepagesize:" not in text:
        with open(meminfo, "a") as fh:
            fh.write("Hugepagesize:       2048 kB\n")


def run(root: str, pids: Sequence[int], runs: int = 1) -> tuple[list[float], str]:
    """``numastat -p PID PID …`` *runs* times with *root*'s ``proc/`` on /proc and its node
    directory on /sys/devices/system/node: (the wall time of each run, the last one's output).
    Raises :class:`NumastatError` (one line) when it cannot run or reports an error."""
    numastat = shutil.which("numastat")
    if numastat is None:
        raise NumastatError("numastat not installed (Debian package numactl)")
    if not pids:
        raise NumastatError("no PIDs to pass to numastat -p")
    argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _BIND, "sh",
            os.path.join(root, NODE_DIR), os.path.join(root, "proc"),
            sys.executable, "-c", _INNER, str(runs),
            numastat, "-p", *map(str, pids)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=60 + 10 * runs)
    except subprocess.TimeoutExpired:
        raise NumastatError(f"numastat -p on {root}: no answer in {60 + 10 * runs} s") from None
    try:
        result = json.loads(done.stdout)
    except ValueError:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[0]
        raise NumastatError(f"numastat -p on {root}: {why}") from None
    if "error" in result:
        raise NumastatError(f"numastat -p on {root}: {result['error'].splitlines()[0]}")
    return result["times"], result["stdout"]


_FOR_PID = re.compile(r"Per-node process memory usage \(in MBs\) for PID ([0-9]+) ")
_PID_ROW = re.compile(r"([0-9]+) \(")


def parse(text: str) -> dict[int, dict[int, float]]:
    """numastat -p's output -> ``{pid: {node: MiB}}`` (the Total column left out).  Several
    PIDs: their rows; one PID: its ``Total`` row.  An unexpected line raises ValueError."""
    nodes: list[int] = []
    single: int | None = None
    found: dict[int, dict[int, float]] = {}
    for line in text.splitlines():
        m = _FOR_PID.match(line)
        if m:
            single = int(m.group(1))
            continue
        if "Node " in line:
            nodes = [int(n) for n in re.findall(r"Node ([0-9]+)", line)]
            continue
        fields = line.split()
        if not fields or set(line) <= {"-", " "} or line.startswith("Per-node"):
            continue
        values = fields[-(len(nodes) + 1):]
        label = " ".join(fields[:-(len(nodes) + 1)])
        try:
            figures = [float(v) for v in values]
        except ValueError:
            raise ValueError(f"numastat line {line[:80]!r}: expected {len(nodes) + 1} "
                             "figures (a node column each and Total)") from None
        if not nodes or len(figures) != len(nodes) + 1:
            raise ValueError(f"numastat line {line[:80]!r}: not a row under a Node header")
        row = _PID_ROW.match(label)
        if row:
            found[int(row.group(1))] = dict(zip(nodes, figures, strict=False))
        elif label.strip() == "Total" and single is not None:
            found[single] = dict(zip(nodes, figures, strict=False))
    return found


def check(numastat: Mapping[int, Mapping[int, float]],
          expected: Mapping[int, Mapping[int, int]]) -> None:
    """Every PID of *expected* (``{pid: {node: bytes}}``) has numastat's figure on every node
    within numastat's rounding; else :class:`NumastatMismatch` naming the first that differs."""
    for pid, per_node in sorted(expected.items()):
        if pid not in numastat:
            raise NumastatMismatch(f"numastat printed no row for PID {pid}")
        got = numastat[pid]
        for node in sorted(set(per_node) | set(got)):
            want = per_node.get(node, 0) / MiB
            have = got.get(node, 0.0)
            if abs(have - want) > TOLERANCE_MIB:
                raise NumastatMismatch(f"PID {pid} node {node}: numastat {have:.2f} MiB, "
                                       f"expected {want:.3f} MiB")

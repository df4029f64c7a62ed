"""Host topology from a sysfs/procfs tree: the live machine (``root="/"``) or a captured copy.

Files read, all relative to *root* (formats from the Linux kernel sources):

``sys/devices/system/node/online``
    The online nodes in cpulist syntax (``0-1``).  ``drivers/base/node.c`` prints every node
    file below for online nodes only.  Optional: without it the ``node<N>`` directories are
    used.
``sys/devices/system/node/node<N>/cpulist``
    ``cpumask_of_node(N) & cpu_online_mask`` (``node_read_cpumap``), so offline CPUs are
    absent and a CPU-less node has an empty line.  Required.
``sys/devices/system/node/node<N>/meminfo``
    ``Node 0 MemTotal:       16384 kB`` lines (``node_read_meminfo`` plus
    ``hugetlb_report_node_meminfo``, whose ``HugePages_*`` lines are counts without ``kB``).
    ``kB`` means KiB (``K(x) = x << (PAGE_SHIFT - 10)``).  Required; MemTotal and MemFree
    must be there.  A memoryless node reports ``MemTotal: 0 kB``.
``sys/devices/system/node/node<N>/distance``
    One row of the SLIT: ``node_distance(N, i)`` for every online node ``i`` in id order,
    separated by single spaces (``node_read_distance``).  Optional; a row whose length is not
    the number of nodes is a :class:`ParseError`.
``sys/devices/system/node/node<N>/hugepages/hugepages-<size>kB/{nr,free}_hugepages``
    Per-node hugetlb pools (``mm/hugetlb.c``).  Optional: older kernels create them only for
    nodes with memory (the captured 6.1 trees have empty pools on a memoryless node too), and a
    kernel without hugetlbfs has none.
``proc/meminfo``
    ``SwapTotal:`` and ``SwapFree:`` in kB (``fs/proc/meminfo.c``).  Optional.
``proc/sys/kernel/numa_balancing``
    ``0`` off; otherwise on.  Since Linux 5.18 it is a bit mask (``1`` normal, ``2`` memory
    tiering; ``include/linux/sched/sysctl.h``).  Optional.

A missing optional file gives ``None`` (or no hugepage pools); a missing required file is a
:class:`SourceError` naming it; :class:`PermissionDenied` is never swallowed; malformed content is
a :class:`ParseError` naming the file, the line and the field.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace

from numaguard.cpuset import parse_cpulist
from numaguard.errors import ParseError, PermissionDenied, SourceError
from numaguard.limits import MAX_DISTANCE, MAX_NODES, decimal, distance_row, shorten
from numaguard.model.topology import Host, HostHugepages, Node
from numaguard.readers.files import read_optional_text, read_text
from numaguard.units import KiB

NODE_DIR = "sys/devices/system/node"
PROC_MEMINFO = "proc/meminfo"
NUMA_BALANCING = "proc/sys/kernel/numa_balancing"
ZONEINFO = "proc/zoneinfo"
#: x86-64 base page size: zoneinfo counts pages
PAGE_SIZE = 4096

#: sizes in kB and page counts: at most 2**63 bytes
_MAX_KIB = (2**63 - 1) // KiB
_MAX_PAGES = (2**63 - 1) // PAGE_SIZE

_NODE_NAME = re.compile(r"node([0-9]+)")
_ZONE_HEADER = re.compile(r"Node ([0-9]+), zone\s+\S+")
_HUGEPAGES_NAME = re.compile(r"hugepages-([0-9]+)kB")
# "Node 0 MemTotal:       16384 kB" / "Node 0 HugePages_Total:     0"
_NODE_MEMINFO_LINE = re.compile(r"Node ([0-9]+) ([A-Za-z0-9_()]+):\s+([0-9]+)( kB)?")
# "SwapTotal:       0 kB" / "HugePages_Total:       0"
_MEMINFO_LINE = re.compile(r"([A-Za-z0-9_()]+):\s+([0-9]+)( kB)?")
# "10 21 21 31\n": node<N>/distance as the kernel prints it (any other spacing: the slow path)
_DISTANCE_ROW = re.compile(r"[0-9]{1,3}(?: [0-9]{1,3})*\n?")


class SysfsReader:
    """Read a :class:`Host` from ``<root>/sys`` and ``<root>/proc``."""

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = os.fspath(root)

    @staticmethod
    def capture_paths() -> list[str]:
        """Every file :meth:`read_host` may open, as globs relative to the root.

        ``numaguard snapshot`` copies these to make an offline tree that reads the same.
        """
        node = f"{NODE_DIR}/node*"
        pools = f"{node}/hugepages/hugepages-*kB"
        return [
            f"{NODE_DIR}/online",
            f"{node}/cpulist",
            f"{node}/meminfo",
            f"{node}/distance",
            f"{pools}/nr_hugepages",
            f"{pools}/free_hugepages",
            PROC_MEMINFO,
            NUMA_BALANCING,
            ZONEINFO,
        ]

    def _path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def read_host(self) -> Host:
        node_ids = self._node_ids()
        marks = self._read_watermarks()
        nodes: list[Node] = []
        rows: list[tuple[int, ...] | None] = []
        for nid in node_ids:
            node, row = self._read_node(nid, len(node_ids))
            if nid in marks:
                low, high, minimum = marks[nid]["low"], marks[nid]["high"], marks[nid]["min"]
                node = replace(node, watermark_min=minimum, watermark_low=low,
                               watermark_high=high)
            nodes.append(node)
            rows.append(row)
        distances: tuple[tuple[int, ...], ...] | None = None
        if rows and all(r is not None for r in rows):
            distances = tuple(r for r in rows if r is not None)
        swap_total, swap_free = self._read_swap()
        return Host(
            nodes=tuple(nodes),
            distances=distances,
            swap_total=swap_total,
            swap_free=swap_free,
            numa_balancing=self._read_numa_balancing(),
        )

    # -- nodes ---------------------------------------------------------------------------------

    def _node_ids(self) -> list[int]:
        node_dir = self._path(NODE_DIR)
        try:
            names = os.listdir(node_dir)
        except (FileNotFoundError, NotADirectoryError):
            raise SourceError(node_dir, "not a NUMA sysfs tree (no such directory)") from None
        except PermissionError as exc:
            raise PermissionDenied(node_dir) from exc
        present = sorted(_node_id(m.group(1), os.path.join(node_dir, n)) for n in names
                         if (m := _NODE_NAME.fullmatch(n)))

        online_path = self._path(f"{NODE_DIR}/online")
        online_text = read_optional_text(online_path)
        if online_text is None:
            ids = present
        else:
            try:
                ids = sorted(parse_cpulist(online_text, field="online", limit=MAX_NODES))
            except ParseError as exc:
                raise exc.located(path=online_path, line=1) from None
            for nid in ids:
                if nid not in present:
                    raise SourceError(self._path(f"{NODE_DIR}/node{nid}"),
                                      f"node {nid} is listed in {online_path} but its "
                                      "directory is missing")
        if not ids:
            raise SourceError(node_dir, "not a NUMA sysfs tree (no node<N> directories)")
        return ids

    def _read_node(self, nid: int, count: int) -> tuple[Node, tuple[int, ...] | None]:
        base = f"{NODE_DIR}/node{nid}"

        cpulist_path = self._path(f"{base}/cpulist")
        try:
            cpus = parse_cpulist(read_text(cpulist_path), field="cpulist")
        except ParseError as exc:
            raise exc.located(path=cpulist_path, line=1) from None

        meminfo_path = self._path(f"{base}/meminfo")
        mem = _parse_node_meminfo(read_text(meminfo_path), nid, meminfo_path)
        for key in ("MemTotal", "MemFree"):
            if key not in mem:
                raise ParseError(f"no {key} line", field=key, path=meminfo_path)

        distance_path = self._path(f"{base}/distance")
        distance_text = read_optional_text(distance_path)
        row = None if distance_text is None else _parse_distance(distance_text, count,
                                                                  distance_path)
        node = Node(
            id=nid,
            cpus=cpus,
            mem_total=mem["MemTotal"],
            mem_free=mem["MemFree"],
            hugepages=self._read_hugepages(f"{base}/hugepages"),
            reclaimable=(mem["Active(file)"] + mem["Inactive(file)"]
                         if "Active(file)" in mem and "Inactive(file)" in mem else None),
        )
        return node, row

    def _read_watermarks(self) -> dict[int, dict[str, int]]:
        """Per node, the min/low/high watermarks of its zones summed, in bytes.

        ``/proc/zoneinfo`` (mm/vmstat.c ``zoneinfo_show_print``) has a ``Node N, zone NAME``
        header per zone and ``min``/``low``/``high`` lines in pages.  Optional.
        """
        path = self._path(ZONEINFO)
        text = read_optional_text(path)
        if text is None:
            return {}
        marks: dict[int, dict[str, int]] = {}
        node: int | None = None
        for lineno, line in enumerate(text.splitlines(), start=1):
            m = _ZONE_HEADER.match(line)
            if m:
                node = _node_id(m.group(1), path, line=lineno)
                marks.setdefault(node, {"min": 0, "low": 0, "high": 0})
                continue
            parts = line.split()
            if node is not None and len(parts) == 2 and parts[0] in ("min", "low", "high"):
                pages = _uint(parts[1], path, parts[0], lineno, limit=_MAX_PAGES)
                marks[node][parts[0]] += pages * PAGE_SIZE
        return marks

    def _read_hugepages(self, rel: str) -> tuple[HostHugepages, ...]:
        pools_dir = self._path(rel)
        try:
            names = os.listdir(pools_dir)
        except (FileNotFoundError, NotADirectoryError):
            return ()
        except PermissionError as exc:
            raise PermissionDenied(pools_dir) from exc
        pools: list[HostHugepages] = []
        for name in names:
            m = _HUGEPAGES_NAME.fullmatch(name)
            if m is None:
                continue  # not a pool directory (the kernel creates nothing else here)
            size = _uint(m.group(1), os.path.join(pools_dir, name), "hugepage size", None,
                         limit=_MAX_KIB) * KiB
            total_path = self._path(f"{rel}/{name}/nr_hugepages")
            total = _parse_count(read_text(total_path), total_path, "nr_hugepages")
            free_path = self._path(f"{rel}/{name}/free_hugepages")
            free_text = read_optional_text(free_path)
            free = None if free_text is None else _parse_count(free_text, free_path,
                                                               "free_hugepages")
            pools.append(HostHugepages(size=size, total=total, free=free))
        return tuple(sorted(pools, key=lambda p: p.size))

    # -- proc ----------------------------------------------------------------------------------

    def _read_swap(self) -> tuple[int | None, int | None]:
        path = self._path(PROC_MEMINFO)
        text = read_optional_text(path)
        if text is None:
            return None, None
        values = _parse_meminfo(text, path, wanted=("SwapTotal", "SwapFree"))
        return values.get("SwapTotal"), values.get("SwapFree")

    def _read_numa_balancing(self) -> bool | None:
        path = self._path(NUMA_BALANCING)
        text = read_optional_text(path)
        if text is None:
            return None
        return _parse_count(text, path, "numa_balancing") > 0


# -- pure helpers (text in, values out; the path only locates errors) ------------------------------


def _parse_count(text: str, path: str, field: str) -> int:
    """A file holding one non-negative integer and a newline (``nr_hugepages``, sysctls)."""
    return _uint(text, path, field, 1, limit=2**63 - 1)


def _uint(text: str, path: str, field: str | None, line: int | None, *, limit: int) -> int:
    return decimal(text, field=field, limit=limit, path=path, line=line)


def _node_id(digits: str, path: str, *, line: int | None = None) -> int:
    """A node number from a name (``node12``) or a zoneinfo header: below MAX_NUMNODES."""
    try:
        return decimal(digits, field="node", limit=MAX_NODES - 1)
    except ParseError:
        raise ParseError(f"node {digits[:20]}: Linux numbers NUMA nodes below MAX_NUMNODES "
                         f"({MAX_NODES})", field="node", path=path, line=line) from None


def _parse_node_meminfo(text: str, nid: int, path: str) -> dict[str, int]:
    """``Node <nid> <Key>: <n> [kB]`` lines -> ``{Key: bytes or count}``."""
    values: dict[str, int] = {}
    own = str(nid)
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _NODE_MEMINFO_LINE.fullmatch(line.strip())
        if m is None:
            key = _guess_key(line)
            raise ParseError(f"malformed line {line.strip()!r} (expected "
                             f"'Node {nid} <Key>: <number> kB')", field=key, path=path,
                             line=lineno)
        node, key, digits, kb = m.groups()
        if node != own and _node_id(node, path, line=lineno) != nid:
            raise ParseError(f"line is about node {node[:20]}, expected node {nid}",
                             field=key, path=path, line=lineno)
        # up to 15 digits is below both limits (2**53 kB, 2**63 - 1); longer: checked
        number = int(digits) if len(digits) <= 15 else _uint(
            digits, path, key, lineno, limit=_MAX_KIB if kb else 2**63 - 1)
        values[key] = number * KiB if kb else number
    return values


def _parse_meminfo(text: str, path: str, *, wanted: tuple[str, ...]) -> dict[str, int]:
    """``/proc/meminfo``: the *wanted* keys in bytes; a wanted line that is malformed fails."""
    values: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        key = _guess_key(line)
        if key not in wanted:
            continue
        m = _MEMINFO_LINE.fullmatch(line.strip())
        if m is None or m.group(3) is None:
            raise ParseError(f"malformed line {line.strip()!r} (expected '{key}: <number> kB')",
                             field=key, path=path, line=lineno)
        values[key] = _uint(m.group(2), path, key, lineno, limit=_MAX_KIB) * KiB
    return values


def _parse_distance(text: str, count: int, path: str) -> tuple[int, ...]:
    if _DISTANCE_ROW.fullmatch(text):
        # the kernel's own format (node_read_distance): up to three digits each, one space
        # apart; a million entries at 1,024 nodes, so checked by one regular expression
        row = tuple(map(int, text.split()))
        if len(row) == count and max(row) <= MAX_DISTANCE:
            return row
    fields = text.split()
    if not all(f.isascii() and f.isdigit() for f in fields):
        raise ParseError(f"expected distances separated by spaces, got {shorten(text.strip())!r}",
                         field="distance", path=path, line=1)
    if len(fields) != count:
        raise ParseError(f"{len(fields)} distances for {count} online nodes",
                         field="distance", path=path, line=1)
    return distance_row(fields, field="distance", path=path, line=1)


def _guess_key(line: str) -> str | None:
    """The ``Key`` of a ``[Node N ]Key: value`` line, for error messages."""
    head = line.split(":", 1)[0].split()
    return head[-1] if head and ":" in line else None

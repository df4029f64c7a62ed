"""Host topology from the text of ``numactl -H`` (``numactl --hardware``).

The format, from ``hardware()``, ``print_node_cpus()``, ``fmt_mem()`` and ``print_distances()``
in numactl's ``numactl.c`` (github.com/numactl/numactl)::

    available: 2 nodes (0-1)                 node list compressed with '-' and ','
    node 0 cpus: 0 1 2 3                     one per online CPU; nothing for a CPU-less node
    node 0 size: 16035 MB                    fmt_mem(): "%llu MB" of (bytes >> 20), i.e. MiB
    node 0 free: 15000 MB                    rounded down; "<not available>" when unreadable
    node distances:                          or "No distance information available."
    node   0   1                             header; "% 3d " columns, "% 4d " since 2.0.19
      0:  10  21
      1:  21  10

``numa_node_size64()`` (``libnuma.c``) takes size and free from the node's sysfs ``meminfo``
(``MemTotal``/``MemFree`` kB << 10), so a size here is the sysfs MemTotal rounded *down* to a
MiB.  ``--cpu-compress`` (2.0.17+) prints CPUs as ranges with a count: ``0-3, 8-11 (8)``.  On a
kernel without NUMA the only line is ``No NUMA available on this system``, which is an error
here: there is no topology to read.  The text says nothing of swap or ``numa_balancing``
(``None`` in the :class:`Host`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from numaguard.cpuset import parse_cpulist
from numaguard.errors import ParseError
from numaguard.limits import MAX_CPUS, MAX_NODES, decimal, distance_row, shorten
from numaguard.model.topology import Host, Node
from numaguard.units import MiB

_AVAILABLE = re.compile(r"available:\s+([0-9]+) nodes \(([0-9,\- ]*)\)")
_NODE_LINE = re.compile(r"node ([0-9]+) (cpus|size|free):(.*)")
_SIZE = re.compile(r"([0-9]+) MB")
_COMPRESSED_CPUS = re.compile(r"(.*)\(([0-9]+)\)")
_ROW = re.compile(r"([0-9]+):((?:\s+[0-9]+)*)")
_NOT_AVAILABLE = "<not available>"
_DISTANCES = "node distances:"
_NO_DISTANCES = "No distance information available."
# libnuma prints warnings on stderr; a capture made with 2>&1 may hold them.
_LIBNUMA_WARNING = "libnuma: Warning:"


@dataclass
class _NodeLines:
    first_line: int
    cpus: frozenset[int] | None = None
    size: int | None = None
    free: int | None = None
    seen: tuple[str, ...] = ()


def parse_numactl(text: str, *, path: str | None = None) -> Host:
    """Parse ``numactl -H`` output; every problem is a :class:`ParseError` naming its line."""

    def fail(reason: str, line: int | None, field: str | None = None) -> ParseError:
        return ParseError(reason, field=field, path=path, line=line)

    lines = [(n, raw.strip()) for n, raw in enumerate(text.splitlines(), start=1)]
    lines = [(n, s) for n, s in lines if s and not s.startswith(_LIBNUMA_WARNING)]
    if not lines:
        raise fail("empty numactl -H output", None)

    n, first = lines[0]
    if first.startswith("No NUMA"):
        raise fail(f"numactl reports no NUMA on this system ({first!r})", n)
    m = _AVAILABLE.fullmatch(first)
    if m is None:
        raise fail(f"expected 'available: N nodes (LIST)', got {first!r}", n, "available")
    declared = _cpulist(m.group(2), n, "available", path, limit=MAX_NODES)
    if len(declared) != _int(m.group(1), n, "available", path, MAX_NODES):
        raise fail(f"{m.group(1)} nodes announced but the list {m.group(2)!r} has "
                   f"{len(declared)}", n, "available")

    nodes: dict[int, _NodeLines] = {}
    k = 1
    while k < len(lines):
        n, line = lines[k]
        m = _NODE_LINE.fullmatch(line)
        if m is None:
            break
        nid, key, value = (_int(m.group(1), n, "node", path, MAX_NODES - 1), m.group(2),
                           m.group(3).strip())
        entry = nodes.setdefault(nid, _NodeLines(first_line=n))
        if key in entry.seen:
            raise fail(f"second '{key}' line for node {nid}", n, key)
        entry.seen += (key,)
        if key == "cpus":
            entry.cpus = _cpus(value, n, path)
        elif key == "size":
            if value == _NOT_AVAILABLE:
                raise fail(f"numactl could not read the size of node {nid}", n, "size")
            entry.size = _megabytes(value, n, "size", path)
        else:
            entry.free = None if value == _NOT_AVAILABLE else _megabytes(value, n, "free", path)
        k += 1

    if k < len(lines) and lines[k][1] not in (_DISTANCES, _NO_DISTANCES):
        n, line = lines[k]
        raise fail(f"unexpected line {line!r}", n)
    if sorted(nodes) != sorted(declared):
        where = lines[k - 1][0] if k > 1 else lines[0][0]
        raise fail(f"node lines for {sorted(nodes)} but 'available' lists {sorted(declared)}",
                   where, "available")
    for nid, entry in nodes.items():
        for key in ("cpus", "size"):
            if key not in entry.seen:
                raise fail(f"no '{key}' line for node {nid}", entry.first_line, key)

    ids = sorted(nodes)
    distances = None
    if k < len(lines):
        distances, k = _distances(lines, k, ids, path)
    if k < len(lines):
        n, line = lines[k]
        raise fail(f"unexpected line {line!r}", n)

    return Host(
        nodes=tuple(
            Node(id=nid, cpus=nodes[nid].cpus or frozenset(), mem_total=nodes[nid].size or 0,
                 mem_free=nodes[nid].free)
            for nid in ids
        ),
        distances=distances,
    )


def _distances(
    lines: list[tuple[int, str]], k: int, ids: list[int], path: str | None
) -> tuple[tuple[tuple[int, ...], ...] | None, int]:
    """The distance section starting at ``lines[k]``; returns the matrix and the next index."""
    n, line = lines[k]
    if line == _NO_DISTANCES:
        return None, k + 1
    if k + 1 >= len(lines):
        raise ParseError("no header after 'node distances:'", field="distances", path=path,
                         line=n)
    n, header = lines[k + 1]
    words = header.split()
    if not words or words[0] != "node" or not all(w.isdigit() for w in words[1:]):
        raise ParseError(f"expected 'node 0 1 ...', got {header!r}", field="distances",
                         path=path, line=n)
    if [_int(w, n, "distances", path, MAX_NODES - 1) for w in words[1:]] != ids:
        raise ParseError(f"distance columns {words[1:]} do not match the nodes {ids}",
                         field="distances", path=path, line=n)
    rows: list[tuple[int, ...]] = []
    k += 2
    for nid in ids:
        if k >= len(lines):
            raise ParseError(f"no distance row for node {nid}", field="distances", path=path,
                             line=lines[-1][0])
        n, line = lines[k]
        m = _ROW.fullmatch(line)
        if m is None:
            raise ParseError(f"expected 'N: d d ...', got {line!r}", field="distances",
                             path=path, line=n)
        if _int(m.group(1), n, "distances", path, MAX_NODES - 1) != nid:
            raise ParseError(f"distance row for node {m.group(1)}, expected node {nid}",
                             field="distances", path=path, line=n)
        row = distance_row(m.group(2).split(), field="distances", path=path, line=n)
        if len(row) != len(ids):
            raise ParseError(f"{len(row)} distances for {len(ids)} nodes", field="distances",
                             path=path, line=n)
        rows.append(row)
        k += 1
    return tuple(rows), k


def _cpus(value: str, line: int, path: str | None) -> frozenset[int]:
    m = _COMPRESSED_CPUS.fullmatch(value)
    if m is not None:  # --cpu-compress: "0-3, 8-11 (8)"
        cpus = _cpulist(m.group(1).replace(" ", ""), line, "cpus", path)
        if len(cpus) != _int(m.group(2), line, "cpus", path, MAX_CPUS):
            raise ParseError(f"{len(cpus)} CPUs listed but the count says {m.group(2)}",
                             field="cpus", path=path, line=line)
        return cpus
    words = value.split()
    if not all(w.isascii() and w.isdigit() for w in words):
        raise ParseError(f"expected CPU numbers separated by spaces, got {shorten(value)!r}",
                         field="cpus", path=path, line=line)
    return frozenset(_int(w, line, "cpus", path, MAX_CPUS - 1) for w in words)


def _cpulist(text: str, line: int, field: str, path: str | None,
             limit: int = MAX_CPUS) -> frozenset[int]:
    try:
        return parse_cpulist(text, field=field, limit=limit)
    except ParseError as exc:
        raise exc.located(path=path, line=line) from None


def _int(text: str, line: int, field: str, path: str | None, limit: int) -> int:
    return decimal(text, field=field, limit=limit, path=path, line=line)


def _megabytes(value: str, line: int, field: str, path: str | None) -> int:
    m = _SIZE.fullmatch(value)
    if m is None:
        raise ParseError(f"expected '<number> MB', got {shorten(value)!r}", field=field,
                         path=path, line=line)
    return _int(m.group(1), line, field, path, (2**63 - 1) // MiB) * MiB

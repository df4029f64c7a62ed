"""What a running host holds now, per guest and per host node (issue 13): :func:`read_live`.

Everything is read under an explicit *root* (``/`` on the live machine, a captured copy in the
tests: ``tests/support/capture_live.py`` copies exactly the files listed in
:attr:`LiveReader.visited`).  Formats and their kernel sources (docs/live.md has the details):

``sys/devices/system/node/node<N>/meminfo``
    ``Node N MemTotal: … kB`` (``drivers/base/node.c`` ``node_read_meminfo``); ``HugePages_Total``
    and ``HugePages_Free`` are counts of the default hugepage size, ``Hugepagesize:`` of
    ``proc/meminfo`` (``hugetlb_report_meminfo``, mm/hugetlb.c).
``<run_dir>/NAME.pid``
    the QEMU PID libvirt writes for a running domain (``virPidFileWrite``: the number).
``proc/PID/cgroup``
    ``hierarchy:controllers:path`` (cgroups(7)); v1 ``N:memory:/machine/qemu-1-vm.libvirt-qemu``
    (libvirt without systemd) or ``…:/machine.slice/machine-qemu\\x2d1\\x2dvm.scope`` (with
    systemd); v2 ``0::/…``.  The guest's cgroup is the one named after it (``qemu-…libvirt-qemu``
    or ``machine-qemu…scope``), above libvirt's ``emulator``/``vcpuN``/``libvirt`` children.
``sys/fs/cgroup/<path>/memory.numa_stat`` (v2)
    ``anon N0=<bytes> N1=…`` and ``shmem N0=…`` (Documentation/admin-guide/cgroup-v2.rst,
    memory.numa_stat: "the amount of memory in bytes", hierarchical).  A guest's memory is
    ``anon`` + ``shmem`` (a memfd/shared-memory backend is shmem, not anon).
``sys/fs/cgroup/memory/<path>/memory.numa_stat`` (v1)
    ``total=<pages> N0=<pages> …``, ``file=``, ``anon=``, ``unevictable=`` and their
    ``hierarchical_*`` sums (Documentation/admin-guide/cgroup-v1/memory.rst, 5.6 numa_stat;
    mm/memcontrol.c ``memcg_numa_stat_show``: LRU page counts).  A guest's memory is
    ``hierarchical_anon`` + ``hierarchical_unevictable`` (a locked guest is unevictable; shmem
    is on the anon LRU in v1), the plain lines when the hierarchical ones are absent; pages of
    *page_size* bytes (default 4096, x86-64's PAGE_SIZE: ``PAGE_SHIFT`` 12 in
    arch/x86/include/asm/page_types.h, which numa_maps' ``kernelpagesize_kB=4`` shows).
``…/hugetlb.<size>.numa_stat``
    ``total=<bytes> N0=<bytes> …`` (v1 adds ``hierarchical_total=``; mm/hugetlb_cgroup.c
    ``hugetlb_cgroup_read_numa_stat`` multiplies by PAGE_SIZE: bytes in both), in the hugetlb
    hierarchy (v1 ``sys/fs/cgroup/hugetlb/<path>``) or the v2 cgroup.  Without it (kernels
    before 5.14, no hugetlb controller) a guest whose ``proc/PID/status`` shows
    ``HugetlbPages:`` above 0 gets its hugepages from numa_maps.
``proc/PID/numa_maps``
    the fallback, when the guest's cgroup has no ``memory.numa_stat``: per mapping
    ``N<node>=<pages>`` × ``kernelpagesize_kB`` (proc(5)); a ``huge`` mapping counts as
    hugepages.  The policy field may contain a space (``prefer (many):0``), so the counters are
    read from the end of the line.  It walks the process's page tables (~23 ms per GiB).

QEMU's own memory (5–15 MiB) is in every figure: it is reported, not subtracted.  A guest that
cannot be read gets ``error``: one line naming the file and the field; the others are still read.
Nothing here raises for bad input except a *root* that is not a directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from numaguard.errors import NumaguardError, ParseError, SourceError
from numaguard.limits import MAX_NODES, decimal
from numaguard.model.inventory import Inventory
from numaguard.model.live import GuestLive, LiveState, NodeLive
from numaguard.readers.files import read_text
from numaguard.readers.sysfs import PAGE_SIZE, _parse_meminfo, _parse_node_meminfo
from numaguard.units import KiB

NODE_DIR = "sys/devices/system/node"
PROC_MEMINFO = "proc/meminfo"
CGROUP_ROOT = "sys/fs/cgroup"
RUN_DIR = "run/libvirt/qemu"

_NODE_NAME = re.compile(r"node([0-9]+)")
_NODE_COUNT = re.compile(r"N([0-9]+)=([0-9]+)")
# a line's counts as the kernel prints them (``N0=123 N1=0``): at most 4-digit nodes and 18-digit
# values (below 2**63), single spaces; anything else is read item by item
_NODE_COUNTS = re.compile(r"(?:N[0-9]{1,4}=[0-9]{1,18}(?: N[0-9]{1,4}=[0-9]{1,18})*)?")
# the guest's own cgroup: libvirt without systemd / with systemd (machined's scope)
_GUEST_CGROUP = re.compile(r"qemu-[0-9]+-.+\.libvirt-qemu|machine-qemu.+\.scope")
_HUGETLB_STAT = re.compile(r"hugetlb\.([0-9]+[KMG]B)\.numa_stat")
# counters numa_maps prints after the policy and the file/heap/stack/huge token (proc(5))
_MAPS_COUNTER = re.compile(
    r"(?:anon|dirty|mapped|mapmax|swapcache|active|writeback|N[0-9]+|kernelpagesize_kB)"
    r"=[0-9]+")
_MAX_COUNT = 2**63 - 1
#: file mappings that are shared memory (a memfd or shm guest RAM backend): counted whole
_SHARED_MEMORY = ("/memfd:", "/dev/shm/", "/SYSV", "/dev/zero")


class _GuestError(Exception):
    """One guest cannot be read: ``str()`` is the line for :attr:`GuestLive.error`."""


class LiveReader:
    """Reads a :class:`LiveState` under *root*; :attr:`visited` lists every file it read (or
    tried to), relative to *root*, in order — what a capture must copy."""

    def __init__(self, root: str, *, run_dir: str = RUN_DIR, page_size: int = PAGE_SIZE) -> None:
        if not os.path.isdir(root):
            raise SourceError(root, "not a directory (expected the root of a host's /sys and "
                                    "/proc, or a captured copy)")
        self.root = root
        self.run_dir = run_dir.strip("/")
        self.page_size = page_size
        self.visited: list[str] = []

    # -- files ----------------------------------------------------------------------------
    def _path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def _read(self, rel: str) -> str:
        self.visited.append(rel)
        return read_text(self._path(rel))

    def _read_proc(self, rel: str, pid: int) -> str:
        """``proc/PID/…``: a missing file means the process has gone."""
        try:
            return self._read(rel)
        except SourceError as exc:
            if exc.reason.startswith("no such file"):
                raise _GuestError(f"{exc.path}: pid: no such process {pid} (the guest stopped "
                                  "or the PID is stale)") from None
            raise

    def _exists(self, rel: str) -> bool:
        return os.path.lexists(self._path(rel))

    # -- the whole host -------------------------------------------------------------------
    def read(self, guests: Iterable[tuple[str, int | None]] | None = None) -> LiveState:
        notes: list[str] = []
        nodes = self._read_nodes(notes)
        if guests is None:
            guests = [(name, None) for name in self._running_names(notes)]
        return LiveState(nodes=nodes, guests=tuple(self.read_guest(n, p) for n, p in guests),
                         notes=tuple(notes))

    def _running_names(self, notes: list[str]) -> list[str]:
        """The domains with a ``NAME.pid`` in *run_dir* (libvirt removes it at shutdown)."""
        try:
            entries = sorted(e.name for e in os.scandir(self._path(self.run_dir)))
        except OSError as exc:
            notes.append(f"{self._path(self.run_dir)}: {exc.strerror or exc}; no running guests "
                         "found")
            return []
        return [e[:-4] for e in entries if e.endswith(".pid") and len(e) > 4]

    def _read_nodes(self, notes: list[str]) -> tuple[NodeLive, ...]:
        try:
            names = [e.name for e in os.scandir(self._path(NODE_DIR)) if e.is_dir()]
        except OSError as exc:
            notes.append(f"{self._path(NODE_DIR)}: {exc.strerror or exc}; no node figures")
            return ()
        ids = sorted(int(m.group(1)) for m in map(_NODE_NAME.fullmatch, names)
                     if m and len(m.group(1)) <= 4 and int(m.group(1)) < MAX_NODES)
        hugepagesize: int | None = None
        nodes: list[NodeLive] = []
        for nid in ids:
            rel = f"{NODE_DIR}/node{nid}/meminfo"
            try:
                mem = _parse_node_meminfo(self._read(rel), nid, self._path(rel))
                for key in ("MemTotal", "MemFree"):
                    if key not in mem:
                        raise ParseError(f"no {key} line", field=key, path=self._path(rel))
                huge_total = mem.get("HugePages_Total", 0)
                huge_free = mem.get("HugePages_Free", 0)
                if huge_total and hugepagesize is None:
                    hugepagesize = self._hugepagesize()
            except NumaguardError as exc:
                notes.append(str(exc).splitlines()[0])
                continue
            size = hugepagesize or 0
            nodes.append(NodeLive(id=nid, mem_total=mem["MemTotal"], mem_free=mem["MemFree"],
                                  file_pages=mem.get("FilePages", 0),
                                  anon_pages=mem.get("AnonPages", 0),
                                  hugepages_total=huge_total * size,
                                  hugepages_free=huge_free * size))
        return tuple(nodes)

    def _hugepagesize(self) -> int:
        values = _parse_meminfo(self._read(PROC_MEMINFO), self._path(PROC_MEMINFO),
                                wanted=("Hugepagesize",))
        if "Hugepagesize" not in values:
            raise ParseError("no Hugepagesize line (needed for HugePages_Total)",
                             field="Hugepagesize", path=self._path(PROC_MEMINFO))
        return values["Hugepagesize"]

    # -- one guest ------------------------------------------------------------------------
    def read_guest(self, name: str, pid: int | None = None) -> GuestLive:
        """One guest; its failure is its ``error``, never an exception."""
        cgroup: str | None = None
        try:
            if pid is None:
                pid = self._pid(name)
            cgroups = self._cgroups(pid)
            v1 = "memory" in cgroups
            cgroup = cgroups.get("memory", cgroups.get(""))
            if cgroup is None:
                raise _GuestError(f"{self._path(f'proc/{pid}/cgroup')}: memory: no memory "
                                  "controller line and no cgroup v2 line")
            cgroup = _guest_cgroup(cgroup)
            memory_dir = f"{CGROUP_ROOT}/memory{cgroup}" if v1 else f"{CGROUP_ROOT}{cgroup}"
            stat_rel = f"{memory_dir}/memory.numa_stat".replace("//", "/")
            per_node: dict[int, int]
            if self._exists(stat_rel):
                per_node = self._memory_numa_stat(stat_rel, v1)
                source = "cgroup-v1" if v1 else "cgroup-v2"
                huge = self._hugetlb(cgroups, v1, pid)
                if huge is not None:
                    hugepages, from_maps = huge
                    source = "numa_maps" if from_maps else "hugetlb"
                else:
                    hugepages = {}
            else:
                per_node, hugepages = self._numa_maps(pid)
                source = "numa_maps"
        except _GuestError as exc:
            return GuestLive(name=name, pid=pid, cgroup=cgroup, error=str(exc))
        except NumaguardError as exc:
            return GuestLive(name=name, pid=pid, cgroup=cgroup,
                             error=str(exc).splitlines()[0])
        return GuestLive(name=name, pid=pid, per_node=_pairs(per_node),
                         hugepages_per_node=_pairs(hugepages), source=source, cgroup=cgroup)

    def _pid(self, name: str) -> int:
        rel = f"{self.run_dir}/{name}.pid"
        if "/" in name or name in ("", ".", ".."):
            raise _GuestError(f"{self._path(rel)}: name: not a domain name")
        text = self._read(rel)
        pid = decimal(text, field="pid", limit=2**22, path=self._path(rel), line=1)
        if pid == 0:
            raise ParseError("0 is not a process", field="pid", path=self._path(rel), line=1)
        return pid

    def _cgroups(self, pid: int) -> dict[str, str]:
        """``proc/PID/cgroup`` -> ``{controller: path}``; v2's line under ``""``."""
        rel = f"proc/{pid}/cgroup"
        text = self._read_proc(rel, pid)
        found: dict[str, str] = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line:
                continue
            parts = line.split(":", 2)
            if len(parts) != 3 or not parts[2].startswith("/"):
                raise ParseError(f"malformed line {line[:80]!r} (expected "
                                 "'hierarchy:controllers:/path')", field="cgroup",
                                 path=self._path(rel), line=lineno)
            hierarchy, controllers, path = parts
            if hierarchy == "0" and not controllers:
                found.setdefault("", path)
            for c in controllers.split(","):
                if c in ("memory", "hugetlb"):
                    found[c] = path
        return found

    def _memory_numa_stat(self, rel: str, v1: bool) -> dict[int, int]:
        rows = _numa_stat(self._read(rel), self._path(rel), v1=v1,
                          wanted=_V1_KEYS if v1 else _V2_KEYS)
        if v1:
            keys = (("hierarchical_anon", "hierarchical_unevictable")
                    if "hierarchical_anon" in rows else ("anon", "unevictable"))
            scale = self.page_size
        else:
            keys, scale = ("anon", "shmem"), 1
        if keys[0] not in rows:
            raise ParseError(f"no {keys[0]} line", field=keys[0], path=self._path(rel))
        total: dict[int, int] = {}
        for key in keys:
            for node, value in rows.get(key, {}).items():
                total[node] = total.get(node, 0) + value * scale
        return total

    def _hugetlb(self, cgroups: dict[str, str], v1: bool,
                 pid: int) -> tuple[dict[int, int], bool] | None:
        """Hugepages per node (and whether from numa_maps), ``None`` for a guest without."""
        path = cgroups.get("hugetlb") if v1 else cgroups.get("")
        stats: list[str] = []
        if path is not None:
            base = f"{CGROUP_ROOT}/hugetlb{_guest_cgroup(path)}" if v1 else \
                f"{CGROUP_ROOT}{_guest_cgroup(path)}"
            try:
                stats = sorted(f"{base}/{e.name}".replace("//", "/")
                               for e in os.scandir(self._path(base))
                               if _HUGETLB_STAT.fullmatch(e.name))
            except OSError:
                stats = []
        if stats:
            total: dict[int, int] = {}
            for rel in stats:
                rows = _numa_stat(self._read(rel), self._path(rel), v1=True)
                key = "hierarchical_total" if "hierarchical_total" in rows else "total"
                if key not in rows:
                    raise ParseError("no total= line", field="total", path=self._path(rel))
                for node, value in rows[key].items():
                    total[node] = total.get(node, 0) + value
            return (total, False) if any(total.values()) else None
        if not self._status_hugetlb(pid):
            return None
        return self._numa_maps(pid)[1], True

    def _status_hugetlb(self, pid: int) -> int:
        rel = f"proc/{pid}/status"
        if not self._exists(rel):
            return 0
        values = _parse_meminfo(self._read(rel), self._path(rel), wanted=("HugetlbPages",))
        return values.get("HugetlbPages", 0)

    def _numa_maps(self, pid: int) -> tuple[dict[int, int], dict[int, int]]:
        """``proc/PID/numa_maps`` -> (ordinary, huge) bytes per node."""
        rel = f"proc/{pid}/numa_maps"
        text = self._read_proc(rel, pid)
        return parse_numa_maps(text, self._path(rel))


def read_live(root: str, guests: Iterable[tuple[str, int | None]] | None = None, *,
              run_dir: str = RUN_DIR, page_size: int = PAGE_SIZE) -> LiveState:
    """The nodes of *root* and its running guests: *guests* as ``(name, QEMU PID or None)``
    (``None``: read from ``<root>/<run_dir>/NAME.pid``); all of them: every ``NAME.pid`` there.
    Raises only for a *root* that is not a directory (:class:`SourceError`)."""
    return LiveReader(root, run_dir=run_dir, page_size=page_size).read(guests)


def _guest_cgroup(path: str) -> str:
    """The guest's own cgroup in *path* (the part up to ``qemu-…libvirt-qemu`` or
    ``machine-qemu…scope``), *path* itself when none is named so."""
    parts = path.split("/")
    for i in range(len(parts) - 1, 0, -1):
        if _GUEST_CGROUP.fullmatch(parts[i]):
            return "/".join(parts[:i + 1])
    return path


#: the lines of memory.numa_stat a guest's figure is made of (see _memory_numa_stat)
_V2_KEYS = frozenset({"anon", "shmem"})
_V1_KEYS = frozenset({"hierarchical_anon", "hierarchical_unevictable", "anon", "unevictable"})


def _numa_stat(text: str, path: str, *, v1: bool,
               wanted: frozenset[str] | None = None) -> dict[str, dict[int, int]]:
    """``key N0=… N1=…`` (v2) or ``key=total N0=…`` (v1, hugetlb) lines ->
    ``{key: {node: value}}``, of the keys *wanted* (``None``: all; the others are not parsed,
    as a v2 file has 27 lines of which a guest's figure needs two); a malformed line read is
    an error naming it."""
    rows: dict[str, dict[int, int]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        head, _, rest = line.strip().partition(" ")
        if not head:
            continue
        key, _, total = head.partition("=")
        if wanted is not None and key not in wanted:
            continue
        if v1 and total:
            decimal(total, field=key, limit=_MAX_COUNT, path=path, line=lineno)
        rest = rest.strip()
        if _NODE_COUNTS.fullmatch(rest):   # the kernel's own spelling: one regex, no checks
            values = {int(n): int(v) for n, v in _NODE_COUNT.findall(rest)}
            if not values or max(values) < MAX_NODES:
                rows[key] = values
                continue
        rows[key] = _node_counts(rest.split(), key, path, lineno)
    return rows


def _node_counts(items: list[str], key: str, path: str, lineno: int) -> dict[int, int]:
    """``N<node>=<number>`` items -> ``{node: number}``: plain ones (a node below MAX_NODES,
    at most 18 digits) directly, anything else through the checks that name it."""
    values: dict[int, int] = {}
    for item in items:
        name, sep, digits = item.partition("=")
        node = name[1:]
        if (sep and name[:1] == "N" and 0 < len(node) <= 4 and node.isascii() and node.isdigit()
                and 0 < len(digits) <= 18 and digits.isascii() and digits.isdigit()):
            n = int(node)
            if n < MAX_NODES:
                values[n] = int(digits)
                continue
        m = _NODE_COUNT.fullmatch(item)
        if m is None or len(m.group(1)) > 4 or int(m.group(1)) >= MAX_NODES:
            raise ParseError(f"malformed entry {item[:40]!r} (expected N<node>=<number>)",
                             field=key, path=path, line=lineno)
        values[int(m.group(1))] = decimal(m.group(2), field=key, limit=_MAX_COUNT, path=path,
                                          line=lineno)
    return values


def parse_numa_maps(text: str, path: str) -> tuple[dict[int, int], dict[int, int]]:
    """``/proc/PID/numa_maps`` -> (ordinary, huge) bytes per node: per mapping ``N<node>=``
    pages × ``kernelpagesize_kB`` (proc(5)), the memory a cgroup charges to the guest:

    * a mapping without ``file=`` (anonymous, ``heap``, ``stack``), a ``huge`` one, or one of
      shared memory (``/memfd:``, ``/dev/shm/``, ``/SYSV``, ``/dev/zero``: a memfd or shm guest
      RAM backend): all its pages;
    * any other file mapping (QEMU's binary and libraries: ~23 MiB of page cache shared with
      every process, not the guest's): only its ``anon=`` pages (copy-on-write data), split
      over its nodes in proportion to its ``N<node>=`` counts (exact on one node).

    The counters are the trailing ``key=number`` tokens, read from the end (the policy may
    contain a space, ``prefer (many):0``; a file name anything); a mapping without pages
    prints none."""
    normal: dict[int, int] = {}
    huge: dict[int, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split(" ")
        counters: list[str] = []
        while fields and _MAPS_COUNTER.fullmatch(fields[-1]):
            counters.append(fields.pop())
        if not counters:
            continue
        if not counters[0].startswith("kernelpagesize_kB="):
            raise ParseError("no kernelpagesize_kB= at the end of a mapping with pages",
                             field="kernelpagesize_kB", path=path, line=lineno)
        page = decimal(counters[0].split("=", 1)[1], field="kernelpagesize_kB",
                       limit=2**32, path=path, line=lineno) * KiB
        pages: dict[int, int] = {}
        anon = 0
        for item in counters[1:]:
            key, _, digits = item.partition("=")
            m = _NODE_COUNT.fullmatch(item)
            if m is None:
                if key == "anon":
                    anon = decimal(digits, field="anon", limit=_MAX_COUNT, path=path,
                                   line=lineno)
                continue
            if len(m.group(1)) > 4 or int(m.group(1)) >= MAX_NODES:
                raise ParseError(f"node {m.group(1)[:20]} is not below MAX_NUMNODES",
                                 field=key[:20], path=path, line=lineno)
            pages[int(m.group(1))] = decimal(digits, field=key, limit=_MAX_COUNT, path=path,
                                             line=lineno)
        is_huge = "huge" in fields[2:]
        name = _file_name(fields)
        if name is not None and not is_huge and not name.startswith(_SHARED_MEMORY):
            pages = _share(anon, pages)
        target = huge if is_huge else normal
        for node, count in pages.items():
            target[node] = target.get(node, 0) + count * page
    return normal, huge


def _file_name(fields: list[str]) -> str | None:
    """The ``file=`` of a numa_maps line (without its counters), ``None`` without one."""
    for i, item in enumerate(fields):
        if item.startswith("file="):
            return " ".join(fields[i:])[5:]
    return None


def _share(count: int, pages: dict[int, int]) -> dict[int, int]:
    """*count* pages split over the nodes of *pages* in proportion (largest remainders)."""
    total = sum(pages.values())
    if not count or not total:
        return {}
    count = min(count, total)
    shares = {n: count * p // total for n, p in pages.items()}
    left = count - sum(shares.values())
    for n in sorted(pages, key=lambda n: (-(count * pages[n] % total), n))[:left]:
        shares[n] += 1
    return shares


def _pairs(per_node: dict[int, int]) -> tuple[tuple[int, int], ...]:
    """Sorted ``(node, bytes)``, nodes holding nothing left out."""
    return tuple(sorted((n, b) for n, b in per_node.items() if b))


def running_of(inventory: Inventory) -> list[tuple[str, int | None]] | None:
    """What to pass :func:`read_live` as *guests* for *inventory*: the guests libvirt says run
    (their PIDs from libvirt's pid files), or ``None`` when the source cannot tell (files): every
    ``NAME.pid`` libvirt left in its run folder."""
    if inventory.running is None:
        return None
    return [(name, None) for name in sorted(inventory.running)]

"""DomainDocument -> Guest: what a domain asks for, with libvirt's defaults applied.

Element by element this follows libvirt's parser (src/conf/domain_conf.c, numa_conf.c,
domain_validate.c); the policy rules themselves live in :mod:`numaguard.model.policy`.  Every
problem in a document is collected and reported at once as ``file:line: field: what is wrong``.

Checks made here because libvirt rejects such a definition:
  vcpu count/current/placement/cpuset, vcpupin vcpu/cpuset, emulatorpin cpuset, memory sizes and
  units, guest NUMA cell ids (0..n-1, no duplicates), overlapping cell cpus, cell cpus beyond the
  vCPU count, cell memory, more than one <numatune>, numatune modes/placement/nodesets, memnode
  rules, hugepage page sizes, nodesets naming missing guest cells, overlapping page nodesets, two
  pages without nodeset.
Accepted as libvirt accepts them: a vcpupin for a vCPU beyond the maximum (ignored), a hugepage
nodeset='0' on a guest without NUMA cells (applies to all memory).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from lxml import etree

from numaguard.cpuset import parse_bitmap, parse_nodeset
from numaguard.domxml.document import DomainDocument
from numaguard.errors import InvalidDocument, ParseError
from numaguard.limits import (
    MAX_BITMAP_MEMBERS,
    MAX_GUEST_CELLS,
    MAX_PROBLEMS,
    MAX_VCPUS,
    decimal,
)
from numaguard.model.guest import Guest, GuestCell, HugepageBacking, VcpuPin
from numaguard.model.policy import (
    MemnodeSpec,
    MemorySpec,
    NumatuneSpec,
    Placement,
    ResolvedNumatune,
    resolve_numatune,
)
from numaguard.units import parse_scaled, unit_scale

T = TypeVar("T")

_UINT_MAX = 2**32 - 1
#: an element's children by tag (:func:`_children`)
_Kids = dict[str, list[etree._Element]]
_PLACEMENTS = {p.value: p for p in Placement}

#: Parsed cpusets/nodesets and sizes, and resolved <numatune>s, shared by every document of a
#: run: a host's guests repeat the same few texts ("13", "208-223", "4194304" KiB) and
#: policies, and working each out again was most of the cost of reading them.  Only valid
#: values of short texts and sets of few members are kept, at most _SHARED_ENTRIES of each (a
#: few MB however hostile the input); the functions they memoise are pure, so a hit is what
#: computing again would give.
_SHARED_BITMAPS: dict[tuple[str, bool], frozenset[int]] = {}
_SHARED_SIZES: dict[tuple[str, str | None], int] = {}
_SHARED_NUMATUNES: dict[tuple[object, ...], ResolvedNumatune] = {}
_SHARED_ENTRIES = 1024
_SHARED_TEXT = 64
_SHARED_MEMBERS = 256


class _Collector:
    """Gathers every problem of one document; parsing carries on after each.

    It also parses the document's cpusets and nodesets (:meth:`bitmap`): each distinct text
    once, and at most :data:`~numaguard.limits.MAX_BITMAP_MEMBERS` members over all of them."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.problems: list[ParseError] = []
        self._bitmaps: dict[tuple[str, bool], frozenset[int]] = {}
        self._members = 0

    def add(self, reason: str, field: str, el: etree._Element | None) -> None:
        self.problems.append(ParseError(reason, field=field, path=self.path,
                                        line=el.sourceline if el is not None else None))

    def attempt(self, field: str, el: etree._Element | None, fn: Callable[..., T],
                *args: object, **kwargs: object) -> T | None:
        """``fn(*args, **kwargs)``, or ``None`` with the problem recorded at *field*/*el*."""
        try:
            return fn(*args, **kwargs)
        except ParseError as exc:
            # The caller knows where the value sits; it names the field.
            self.problems.append(ParseError(exc.reason, field=field, path=self.path,
                                            line=el.sourceline if el is not None else None))
            return None

    def bitmap(self, field: str, el: etree._Element, text: str, *,
               nonempty: bool = True) -> frozenset[int] | None:
        """A cpuset/nodeset in libvirt syntax (:func:`parse_nodeset`, or :func:`parse_bitmap`
        when it may be empty), or ``None`` with the problem recorded."""
        key = (text, nonempty)
        bits = self._bitmaps.get(key)
        if bits is not None:
            return bits
        if self._members > MAX_BITMAP_MEMBERS:
            return None  # reported once, when the budget ran out
        bits = _SHARED_BITMAPS.get(key)
        if bits is None:
            bits = self.attempt(field, el, parse_nodeset if nonempty else parse_bitmap, text)
            if bits is None:
                return None
            if (len(text) <= _SHARED_TEXT and len(bits) <= _SHARED_MEMBERS
                    and len(_SHARED_BITMAPS) < _SHARED_ENTRIES):
                _SHARED_BITMAPS[key] = bits
        self._members += len(bits)
        if self._members > MAX_BITMAP_MEMBERS:
            self.add(f"the cpusets and nodesets of this domain name more than "
                     f"{MAX_BITMAP_MEMBERS} CPUs/nodes in total; numaguard reads no more "
                     "(no host has that many CPUs to pin to)", field, el)
            return None
        self._bitmaps[key] = bits
        return bits

    def error(self) -> InvalidDocument:
        problems = sorted(self.problems, key=lambda p: p.line or 0)
        if len(problems) > MAX_PROBLEMS:
            more = len(problems) - MAX_PROBLEMS
            problems = problems[:MAX_PROBLEMS] + [ParseError(
                f"... and {more} more problem{'s' if more != 1 else ''} in this file",
                path=self.path)]
        return InvalidDocument(problems)


def _uint(text: str | None) -> int:
    if text is None:
        raise ParseError("expected a non-negative integer, got nothing")
    if len(text) < 10 and text.isascii() and text.isdigit():
        return int(text)  # nine digits or fewer: below _UINT_MAX, what decimal() returns
    return decimal(text, limit=_UINT_MAX)


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    return (el.text or "").strip()


def _children(el: etree._Element) -> _Kids:
    """The element children of *el* by tag, in document order, read in one pass.

    This replaces one ElementPath search per field (each walks the children again and costs
    more than the whole pass).  It matches as ``el.find("vcpu")`` does: the tag exactly, so
    ``vcpu`` is a child with no namespace; comments and processing instructions (whose tag is
    not a string) are skipped."""
    kids: dict[str, list[etree._Element]] = {}
    for child in el:
        tag = child.tag
        if tag.__class__ is str:
            group = kids.get(tag)
            if group is None:
                kids[tag] = [child]
            else:
                group.append(child)
    return kids


def _first(kids: _Kids, tag: str) -> etree._Element | None:
    group = kids.get(tag)
    return group[0] if group else None


def _grandchildren(kids: _Kids, tag: str,
                   sub: str) -> list[etree._Element]:
    """``el.findall("tag/sub")`` over the children read by :func:`_children`."""
    group = kids.get(tag)
    if group is None:
        return []
    return [g for child in group for g in child.iterchildren(sub)]


def _memory_of(el: etree._Element, col: _Collector, field: str, *, value: str | None = None,
               unit_attr: str = "unit") -> int | None:
    raw = value if value is not None else (el.text or "")
    unit = el.get(unit_attr)
    key = (raw, unit)
    size = _SHARED_SIZES.get(key)
    if size is not None:
        return size
    try:
        scale = unit_scale(unit)
    except ParseError as exc:
        base = field.rsplit("/@", 1)[0] if "/@" in field else field
        col.add(exc.reason, f"{base}/@{unit_attr}", el)
        return None
    size = col.attempt(field, el, parse_scaled, raw.strip(), None, default_scale=scale)
    if (size is not None and len(raw) <= _SHARED_TEXT
            and (unit is None or len(unit) <= _SHARED_TEXT)
            and len(_SHARED_SIZES) < _SHARED_ENTRIES):
        _SHARED_SIZES[key] = size
    return size


def extract_guest(doc: DomainDocument) -> Guest:
    """Read one guest; raise :class:`InvalidDocument` with every problem when libvirt would
    reject the definition.

    One helper per part of the document, called in the order the problems are reported."""
    root = doc.root
    col = _Collector(doc.path)
    kids = _children(root)
    name = _name(kids, root, col)
    uuid = _text(_first(kids, "uuid")) or None

    vcpus, vcpus_current, vcpu_placement, cpuset = _vcpus(kids, col)
    pins, emulatorpin, has_iothreadpin = _cputune(kids, col, vcpus)
    cell_ids, cell_cpus, cell_mem, ncells = _numa_cells(kids, col, vcpus)
    memory, current = _memory(kids, root, col, cell_mem, ncells)
    hugepages = _hugepages(kids, col, ncells)
    has_cpu_pinning = bool(cpuset or pins or emulatorpin or has_iothreadpin)
    resolved = _numatune(kids, col, vcpu_placement, ncells, has_cpu_pinning)

    if col.problems:
        raise col.error()

    cells = tuple(
        GuestCell(
            id=cid,
            cpus=cell_cpus[i],
            memory=cell_mem[i],
            policy=resolved.cells[cid] if cid < len(resolved.cells) else None,
            hugepage_size=_cell_hugepage_size(hugepages, cid),
            memnode=cid in resolved.memnodes,
        )
        for i, cid in enumerate(cell_ids)
    ) if cell_ids else ()
    if resolved.vcpu_placement is Placement.AUTO:
        cpuset = None
    return Guest(
        name=name,
        uuid=uuid,
        memory=memory,
        current_memory=current,
        vcpus=vcpus,
        vcpus_current=vcpus_current,
        vcpu_placement=resolved.vcpu_placement,
        cpuset=cpuset,
        pins=tuple(pins),
        emulatorpin=emulatorpin,
        policy=resolved.memory,
        cells=cells,
        hugepages=tuple(hugepages),
        source=doc.path,
        immediate=any(a.get("mode") == "immediate"
                      for a in _grandchildren(kids, "memoryBacking", "allocation")),
    )


def _name(kids: _Kids, root: etree._Element, col: _Collector) -> str:
    name_el = _first(kids, "name")
    name_text = "" if name_el is None else name_el.text or ""
    name = name_text.strip()
    if not name:
        col.add("missing <name>", "name", name_el if name_el is not None else root)
        name = "?"
    elif "\n" in name_text:
        # every driver's DefineXML: virXMLCheckIllegalChars("name", def->name, "\n")
        col.add("a domain name cannot contain a line break (libvirt refuses it)", "name",
                name_el)
        name = "?"
    return name


def _vcpus(kids: _Kids, col: _Collector,
           ) -> tuple[int, int, Placement, frozenset[int] | None]:
    """``(vcpus, vcpus_current, vcpu_placement, cpuset)`` from <vcpu>."""
    # --- vCPUs (virDomainVcpuParse) -------------------------------------------------------
    vcpu_el = _first(kids, "vcpu")
    vcpus = vcpus_current = 1
    vcpu_placement = Placement.STATIC
    cpuset: frozenset[int] | None = None
    if vcpu_el is not None:
        if (vcpu_el.text or "").strip():
            parsed = col.attempt("vcpu", vcpu_el, _uint, vcpu_el.text)
            vcpus = 1 if parsed is None else parsed  # 0 is an error below, not "1"
            if vcpus > MAX_VCPUS:
                col.add(f"{vcpus} vCPUs: QEMU's largest machine type (q35) takes at most "
                        f"{MAX_VCPUS}, and libvirt refuses more than the machine type's limit",
                        "vcpu", vcpu_el)
                vcpus = MAX_VCPUS  # the other checks go on against the largest legal count
        current_attr = vcpu_el.get("current")
        vcpus_current = vcpus
        if current_attr is not None:
            parsed = col.attempt("vcpu/@current", vcpu_el, _uint, current_attr)
            vcpus_current = vcpus if parsed is None else parsed
            if vcpus_current > vcpus:
                col.add(f"current vCPU count {vcpus_current} exceeds the maximum {vcpus}",
                        "vcpu/@current", vcpu_el)
        placement_attr = vcpu_el.get("placement")
        if placement_attr in ("static", "auto"):
            vcpu_placement = _PLACEMENTS[placement_attr]
        elif placement_attr is not None:
            col.add(f"unsupported placement {placement_attr!r} (static, auto)",
                    "vcpu/@placement", vcpu_el)
        cpuset_attr = vcpu_el.get("cpuset")
        # libvirt ignores cpuset with automatic vCPU placement (numad decides).
        if cpuset_attr is not None and vcpu_placement is Placement.STATIC:
            cpuset = col.bitmap("vcpu/@cpuset", vcpu_el, cpuset_attr)
    if vcpus == 0:
        col.add("a guest needs at least one vCPU", "vcpu", vcpu_el)
    elif vcpus_current == 0:
        # qemu_validate.c qemuValidateDomainVCpuTopology: "Domain requires at least 1 vCPU".
        col.add("a guest needs at least one online vCPU", "vcpu/@current", vcpu_el)
    return vcpus, vcpus_current, vcpu_placement, cpuset


def _cputune(kids: _Kids, col: _Collector, vcpus: int,
             ) -> tuple[list[VcpuPin], frozenset[int] | None, bool]:
    """``(pins by vCPU, emulatorpin, has an iothreadpin)`` from <cputune>."""
    # --- cputune pinning ------------------------------------------------------------------
    pins: list[VcpuPin] = []
    emulatorpin: frozenset[int] | None = None
    has_iothreadpin = False
    cputune = _first(kids, "cputune")
    if cputune is not None:
        seen_vcpus: set[int] = set()
        for pin in cputune.iterchildren("vcpupin"):
            vcpu = col.attempt("cputune/vcpupin/@vcpu", pin, _uint, pin.get("vcpu"))
            # virDomainVcpuPinDefParseXML: a pin for a vCPU beyond the maximum is ignored
            # ("Ignoring vcpupin for missing vcpus", a warning only), before its cpuset is read.
            if vcpu is not None and vcpu >= vcpus:
                continue
            cpus_attr = pin.get("cpuset")
            cpus = None
            if cpus_attr is None:
                col.add("missing cpuset", "cputune/vcpupin/@cpuset", pin)
            else:
                cpus = col.bitmap("cputune/vcpupin/@cpuset", pin, cpus_attr)
            if vcpu is None:
                continue
            if vcpu in seen_vcpus:
                col.add(f"duplicate vcpupin for vCPU {vcpu}", "cputune/vcpupin/@vcpu", pin)
                continue
            seen_vcpus.add(vcpu)
            if cpus is not None:
                pins.append(VcpuPin(vcpu, cpus))
        emu = next(cputune.iterchildren("emulatorpin"), None)
        if emu is not None:
            emu_attr = emu.get("cpuset")
            if emu_attr is None:
                col.add("missing cpuset", "cputune/emulatorpin/@cpuset", emu)
            else:
                emulatorpin = col.bitmap("cputune/emulatorpin/@cpuset", emu, emu_attr)
        has_iothreadpin = next(cputune.iterchildren("iothreadpin"), None) is not None
    pins.sort(key=lambda p: p.vcpu)
    return pins, emulatorpin, has_iothreadpin


def _numa_cells(kids: _Kids, col: _Collector, vcpus: int,
                ) -> tuple[list[int], list[frozenset[int]], list[int], int]:
    """``(cell ids, their vCPUs, their memory in bytes, the number of cells)`` from
    <cpu><numa>, the valid cells in id order."""
    # --- guest NUMA cells (virDomainNumaDefParseXML) ---------------------------------------
    cell_ids: list[int] = []
    cell_cpus: list[frozenset[int]] = []
    cell_mem: list[int] = []
    numas = _grandchildren(kids, "cpu", "numa")
    cells_el = [cell for numa in numas for cell in numa.iterchildren("cell")]
    numa_el = numas[0] if numas else None
    if numa_el is not None and not cells_el:
        col.add("NUMA topology defined without NUMA cells", "cpu/numa", numa_el)
    ncells = len(cells_el)
    if ncells > MAX_GUEST_CELLS:
        col.add(f"{ncells} guest NUMA cells: QEMU supports at most {MAX_GUEST_CELLS} "
                "(MAX_NODES)", "cpu/numa/cell", cells_el[MAX_GUEST_CELLS])
        cells_el = cells_el[:MAX_GUEST_CELLS]
        ncells = len(cells_el)
    by_id: dict[int, tuple[frozenset[int], int]] = {}
    for index, cell in enumerate(cells_el):
        cid_attr = cell.get("id")
        cid = index if cid_attr is None else col.attempt("cpu/numa/cell/@id", cell, _uint, cid_attr)
        if cid is None:
            continue
        if cid >= ncells:
            col.add(f"cell id {cid}: guest NUMA cell ids must be 0..{ncells - 1}, one each",
                    "cpu/numa/cell/@id", cell)
            continue
        if cid in by_id:
            col.add(f"duplicate NUMA cell id {cid}", "cpu/numa/cell/@id", cell)
            continue
        cpus: frozenset[int] = frozenset()
        cpus_attr = cell.get("cpus")
        if cpus_attr is not None:
            cpus = col.bitmap("cpu/numa/cell/@cpus", cell, cpus_attr, nonempty=False) \
                or frozenset()
        for other, (ocpus, _) in by_id.items():
            if cpus & ocpus:
                col.add(f"NUMA cells {cid} and {other} have overlapping vCPU ids",
                        "cpu/numa/cell/@cpus", cell)
        # virDomainDefParseXML: "CPU IDs in <numa> exceed the <vcpu> count".
        if cpus and max(cpus) >= vcpus:
            col.add(f"cell {cid} names vCPU {max(cpus)} but the guest has {vcpus} vCPUs "
                    "(CPU IDs in <numa> exceed the <vcpu> count)", "cpu/numa/cell/@cpus", cell)
        mem_attr = cell.get("memory")
        if mem_attr is None:
            col.add("missing memory size", "cpu/numa/cell/@memory", cell)
            mem = 0
        else:
            mem = _memory_of(cell, col, "cpu/numa/cell/@memory", value=mem_attr) or 0
        by_id[cid] = (cpus, mem)
    for cid in sorted(by_id):
        cell_ids.append(cid)
        cell_cpus.append(by_id[cid][0])
        cell_mem.append(by_id[cid][1])
    return cell_ids, cell_cpus, cell_mem, ncells


def _memory(kids: _Kids, root: etree._Element, col: _Collector, cell_mem: list[int],
            ncells: int) -> tuple[int, int]:
    """``(memory, current memory)`` in bytes, as libvirt works them out."""
    # --- memory sizes (virDomainDefPostParseMemory) ----------------------------------------
    mem_el = _first(kids, "memory")
    declared = 0
    if mem_el is not None:
        declared = _memory_of(mem_el, col, "memory") or 0
    hotplug = 0
    sizes: list[etree._Element] = []
    dimms = _grandchildren(kids, "devices", "memory")
    if dimms:
        targets = [t for m in dimms for t in m.iterchildren("target")]
        sizes = [s for t in targets for s in t.iterchildren("size")]
        for size_el in sizes:
            hotplug += _memory_of(size_el, col, "devices/memory/target/size") or 0
        # virDomainMemoryDefValidate: a memory device's target node must be a guest NUMA cell.
        for node_el in (n for t in targets for n in t.iterchildren("node")):
            target = col.attempt("devices/memory/target/node", node_el, _uint, node_el.text)
            if target is not None and target >= ncells:
                col.add(f"memory device targets guest NUMA cell {target}, but the guest "
                        + _cells_phrase(ncells), "devices/memory/target/node", node_el)
    numa_total = sum(cell_mem)
    # libvirt sets <memory> to the sum of the guest cells plus memory devices when it defines a
    # guest with NUMA cells (the qemu driver parses with ABI update); we do the same.
    memory = numa_total + hotplug if numa_total else declared
    if not numa_total and hotplug > declared and not col.problems:
        # virDomainDefPostParseMemory: without NUMA cells <memory> includes the devices.
        col.add(f"memory devices total {hotplug} bytes, more than <memory> ({declared} bytes)",
                "devices/memory/target/size", sizes[0])
    if memory - hotplug <= 0 and not col.problems:
        col.add("memory size must be given in <memory> or in the guest NUMA cells", "memory",
                mem_el if mem_el is not None else root)
    cur_el = _first(kids, "currentMemory")
    current = memory
    if cur_el is not None:
        cur = _memory_of(cur_el, col, "currentMemory")
        if cur:  # 0 or above the maximum is clamped to the maximum, as libvirt does
            current = min(cur, memory)
    return memory, current


def _hugepages(kids: _Kids, col: _Collector, ncells: int) -> list[HugepageBacking]:
    # --- hugepages (virDomainDefMemtuneValidate) --------------------------------------------
    hugepages: list[HugepageBacking] = []
    owner: dict[int, HugepageBacking] = {}     # guest cell -> the first page that claims it
    hp_els = _grandchildren(kids, "memoryBacking", "hugepages")
    if hp_els:
        pages = list(hp_els[0].iterchildren("page"))
        if not pages:
            hugepages.append(HugepageBacking(size=None, cells=None))
        for page in pages:
            size = None
            size_attr = page.get("size")
            if size_attr is None:
                col.add("missing page size", "memoryBacking/hugepages/page/@size", page)
            else:
                size = _memory_of(page, col, "memoryBacking/hugepages/page/@size",
                                  value=size_attr)
                if size == 0:
                    col.add("hugepage size can't be zero", "memoryBacking/hugepages/page/@size",
                            page)
                    size = None
            cells_set: frozenset[int] | None = None
            ns_attr = page.get("nodeset")
            if ns_attr is not None:
                cells_set = col.bitmap("memoryBacking/hugepages/page/@nodeset", page, ns_attr)
                if ncells == 0 and cells_set == frozenset({0}):
                    # virDomainDefPostParseMemtune: without guest NUMA, nodeset='0' is dropped
                    # and the page applies to all memory (as if it had no nodeset).
                    ns_attr = cells_set = None
                if cells_set is not None:
                    missing = sorted(c for c in cells_set if c >= ncells)
                    if missing:
                        col.add(
                            f"hugepage nodeset names guest NUMA cell {missing[0]}, but the guest "
                            + _cells_phrase(ncells)
                            + " (this nodeset lists guest cells, not host nodes)",
                            "memoryBacking/hugepages/page/@nodeset", page)
                        cells_set = None
            if size is None:
                continue
            # each page against the pages before it, through what they claimed (one page
            # without nodeset; each guest cell's first page): O(pages x cells), where a
            # pairwise check made ~7 million problems of a fuzzed file with ~3,700 pages
            if ns_attr is None and any(p.cells is None for p in hugepages):
                col.add("two hugepage sizes without nodeset; at most one may apply to "
                        "every cell", "memoryBacking/hugepages/page", page)
            elif cells_set:
                for earlier in dict.fromkeys(owner[c] for c in sorted(cells_set) if c in owner):
                    col.add(f"nodesets of hugepages of {earlier.size} and {size} bytes intersect",
                            "memoryBacking/hugepages/page/@nodeset", page)
            if ns_attr is None or cells_set is not None:
                backing = HugepageBacking(size=size, cells=cells_set)
                hugepages.append(backing)
                for c in cells_set or ():
                    owner.setdefault(c, backing)
    return hugepages


def _numatune(kids: _Kids, col: _Collector, vcpu_placement: Placement, ncells: int,
              has_cpu_pinning: bool) -> ResolvedNumatune:
    """<numatune> resolved against the rest of the guest; its problems go to *col*."""
    # --- numatune --------------------------------------------------------------------------
    numatunes = kids.get("numatune", ())
    if len(numatunes) > 1:
        col.add("only one <numatune> is supported", "numatune", numatunes[1])
    nt = numatunes[0] if numatunes else None
    nt_mem: etree._Element | None = None
    memnode_els: list[etree._Element] = []
    if nt is not None:
        for child in nt:  # nt.find("memory"), nt.findall("memnode") in one pass
            if child.tag == "memory":
                if nt_mem is None:
                    nt_mem = child
            elif child.tag == "memnode":
                memnode_els.append(child)
    # the policy as written, without the line numbers that only locate its problems
    mem_key: tuple[str | None, str | None, frozenset[int] | None] | None = None
    bad_memory_nodeset = False
    if nt_mem is not None:
        nodeset = None
        ns_attr = nt_mem.get("nodeset")
        if ns_attr is not None:
            nodeset = col.bitmap("numatune/memory/@nodeset", nt_mem, ns_attr)
            bad_memory_nodeset = nodeset is None
        mem_key = (nt_mem.get("mode"), nt_mem.get("placement"), nodeset)
    memnodes: list[tuple[int | None, str | None, frozenset[int] | None, etree._Element]] = []
    for mn in memnode_els:
        cellid = None
        if mn.get("cellid") is not None:
            cellid = col.attempt("numatune/memnode/@cellid", mn, _uint, mn.get("cellid"))
            if cellid is None:
                continue
        nodeset = None
        ns_attr = mn.get("nodeset")
        if ns_attr is not None:
            nodeset = col.bitmap("numatune/memnode/@nodeset", mn, ns_attr)
            if nodeset is None:
                continue
        memnodes.append((cellid, mn.get("mode"), nodeset, mn))
    key = (nt is not None, mem_key, tuple(m[:3] for m in memnodes), vcpu_placement, ncells,
           has_cpu_pinning)
    resolved = _SHARED_NUMATUNES.get(key)
    if resolved is None:
        spec = NumatuneSpec()
        if nt is not None:
            mem_spec = None
            if nt_mem is not None and mem_key is not None:
                mem_spec = MemorySpec(mode=mem_key[0], placement=mem_key[1], nodeset=mem_key[2],
                                      line=nt_mem.sourceline)
            spec = NumatuneSpec(present=True, memory=mem_spec, memnodes=tuple(
                MemnodeSpec(cellid=c, mode=m, nodeset=n, line=el.sourceline)
                for c, m, n, el in memnodes), line=nt.sourceline)
        resolved = resolve_numatune(spec, vcpu_placement=vcpu_placement, ncells=ncells,
                                    has_cpu_pinning=has_cpu_pinning)
        # lines only place problems: a policy without problems is the same at any line
        if (not resolved.problems and len(_SHARED_NUMATUNES) < _SHARED_ENTRIES
                and all(len(n) <= _SHARED_MEMBERS for n in _nodesets(mem_key, memnodes))):
            _SHARED_NUMATUNES[key] = resolved
    # A <memory> nodeset that did not parse would come back as "nodeset must be set": report
    # it once, and every other numatune problem as well.
    if resolved.problems:
        col.problems.extend(
            p.located(path=col.path) for p in resolved.problems
            if not (bad_memory_nodeset and p.field == "numatune/memory/@nodeset"))
    return resolved


def _nodesets(mem_key: tuple[str | None, str | None, frozenset[int] | None] | None,
              memnodes: list[tuple[int | None, str | None, frozenset[int] | None, etree._Element]],
              ) -> list[frozenset[int]]:
    sets = [n for _, _, n, _ in memnodes if n is not None]
    if mem_key is not None and mem_key[2] is not None:
        sets.append(mem_key[2])
    return sets


def _cells_phrase(ncells: int) -> str:
    if ncells == 0:
        return "has no NUMA cells"
    return "has only cell 0" if ncells == 1 else f"has cells 0-{ncells - 1}"


def _cell_hugepage_size(pages: list[HugepageBacking], cell: int) -> int | None:
    """The page backing a guest cell: the page whose nodeset names it, else the page without a
    nodeset, else none (ordinary memory).  0 stands for the host's default hugepage size."""
    master = None
    for page in pages:
        if page.cells is None:
            master = page
        elif cell in page.cells:
            return page.size if page.size is not None else 0
    if master is not None:
        return master.size if master.size is not None else 0
    return None

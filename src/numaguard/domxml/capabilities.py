"""Host topology from ``virsh capabilities`` XML (``virConnectGetCapabilities``).

The part read here, as written by ``virCapabilitiesHostNUMAFormat`` and
``virCapsHostNUMACellCPUFormat`` (libvirt ``src/conf/capabilities.c``) and described by
``src/conf/schemas/capability.rng``::

    <capabilities><host>...
      <topology>
        <cells num='2'>
          <cell id='0'>
            <memory unit='KiB'>16288412</memory>           omitted when the cell has none
            <pages unit='KiB' size='4'>4064207</pages>     system pages
            <pages unit='KiB' size='2048'>16</pages>       one per hugepage pool: nr_hugepages
            <distances>
              <sibling id='0' value='10'/>
              <sibling id='1' value='21'/>
            </distances>
            <cpus num='2'>
              <cpu id='0' socket_id='0' die_id='0' core_id='0' siblings='0'/>   (+ cluster_id
              <cpu id='1' socket_id='0' die_id='0' core_id='1' siblings='1'/>    since 10.0)
            </cpus>
          </cell>
          ...

Facts this relies on (``src/util/virnuma.c``): ``<memory>`` is the node's sysfs ``MemTotal``
(``virNumaGetNodeMemory``) and is only printed when non-zero, so a missing ``<memory>`` is a
memoryless cell; ``virNumaGetPages`` lists every hugepage pool of the node with its
``nr_hugepages`` (free counts are not in the XML) and appends the system page size, whose count is
``(MemTotal - hugepage pools) / page size``; the list is sorted, so the smallest ``<pages>`` of a
cell (if at most 64 KiB) is the system page and every larger one a hugepage pool; cells list
only online CPUs.
``mem_free``, swap and ``numa_balancing`` are unknown (``None``).

Without ``<topology>`` (a custom ``test:///file.xml`` driver, some containers) there is nothing
to audit: that is a :class:`ParseError`.  The document is parsed by :mod:`numaguard.domxml.safexml`
(no entities, no DTD, no network; DOCTYPE/ENTITY declarations refused).
"""

from __future__ import annotations

from lxml import etree

from numaguard.domxml.safexml import parse_xml
from numaguard.errors import ParseError
from numaguard.limits import MAX_CPUS, MAX_DISTANCE, MAX_NODES, decimal, shorten
from numaguard.model.topology import Host, HostHugepages, Node
from numaguard.units import KiB, parse_scaled

#: The largest base (system) page size of a Linux architecture libvirt runs on (arm64, ppc64).
MAX_BASE_PAGE = 64 * KiB


def parse_capabilities(data: bytes, *, path: str | None = None) -> Host:
    """Parse a ``virsh capabilities`` document into a :class:`Host` (totals only)."""
    root = parse_xml(data, path=path).getroot()

    def fail(reason: str, el: etree._Element, field: str | None = None) -> ParseError:
        return ParseError(reason, field=field, path=path, line=_line(el))

    if root.tag != "capabilities":
        raise fail(f"not a capabilities XML: the root element is <{_tag(root)}>", root)
    host = root.find("host")
    if host is None:
        raise fail("no <host> element", root, "host")
    topology = host.find("topology")
    if topology is None:
        raise fail("the host reports no NUMA topology (no <topology> in <host>)", host,
                   "topology")
    cells_el = topology.find("cells")
    if cells_el is None:
        raise fail("no <cells> in <topology>", topology, "cells")
    cells = cells_el.findall("cell")
    if not cells:
        # libvirt's test driver with a custom file writes <cells num='0'></cells>, which its
        # own schema rejects.
        raise fail("the host reports no NUMA topology (no <cell> in <cells>)", cells_el,
                   "cells")
    num = _uint(cells_el, "num", path, MAX_NODES)
    if num != len(cells):
        raise fail(f"cells num='{num}' but {len(cells)} <cell> elements", cells_el, "num")

    parsed: dict[int, tuple[Node, dict[int, int], etree._Element]] = {}
    for cell in cells:
        node, siblings = _cell(cell, path)
        if node.id in parsed:
            raise fail(f"duplicate cell id {node.id}", cell, "id")
        parsed[node.id] = (node, siblings, cell)

    ids = sorted(parsed)
    distances = None
    with_distances = [nid for nid in ids if parsed[nid][1]]
    if with_distances:
        rows = []
        for nid in ids:
            _, siblings, cell = parsed[nid]
            missing = [i for i in ids if i not in siblings]
            if missing:
                raise fail(f"cell {nid} gives no distance to cell(s) {missing}", cell,
                           "distances")
            unknown = sorted(set(siblings) - set(ids))
            if unknown:
                raise fail(f"cell {nid} gives a distance to unknown cell(s) {unknown}", cell,
                           "distances")
            rows.append(tuple(siblings[i] for i in ids))
        distances = tuple(rows)

    return Host(nodes=tuple(parsed[nid][0] for nid in ids), distances=distances)


def _cell(cell: etree._Element, path: str | None) -> tuple[Node, dict[int, int]]:
    nid = _uint(cell, "id", path, MAX_NODES - 1)

    memory = cell.find("memory")
    mem_total = 0 if memory is None else _scaled(memory, memory.text or "",
                                                 memory.get("unit"), path)

    pools: list[tuple[int, int, etree._Element]] = []
    for pages in cell.findall("pages"):
        size_text = pages.get("size")
        if size_text is None:
            raise ParseError("<pages> without size", field="size", path=path,
                             line=_line(pages))
        size = _scaled(pages, size_text, pages.get("unit"), path, field="size")
        pools.append((size, _text_uint(pages, path), pages))
    pools.sort(key=lambda p: p[0])
    # libvirt always appends the system page (virNumaGetPages): the smallest size, if it can be
    # a base page at all (4 KiB on x86, up to 64 KiB on arm64/ppc64); the others are pools.
    if pools and pools[0][0] <= MAX_BASE_PAGE:
        pools = pools[1:]
    hugepages = tuple(HostHugepages(size=size, total=count) for size, count, _ in pools)
    if len({p.size for p in hugepages}) != len(hugepages):
        raise ParseError(f"cell {nid} lists a page size twice", field="pages", path=path,
                         line=_line(cell))

    siblings: dict[int, int] = {}
    for sib in cell.findall("distances/sibling"):
        sid = _uint(sib, "id", path, MAX_NODES - 1)
        if sid in siblings:
            raise ParseError(f"second distance to cell {sid}", field="sibling", path=path,
                             line=_line(sib))
        siblings[sid] = _uint(sib, "value", path, MAX_DISTANCE)

    cpus: set[int] = set()
    cpus_el = cell.find("cpus")
    if cpus_el is not None:
        for cpu in cpus_el.findall("cpu"):
            cpus.add(_uint(cpu, "id", path, MAX_CPUS - 1))
        declared = _uint(cpus_el, "num", path, MAX_CPUS)
        if declared != len(cpus_el.findall("cpu")):
            raise ParseError(f"cpus num='{declared}' but {len(cpus_el.findall('cpu'))} <cpu> "
                             "elements", field="num", path=path, line=_line(cpus_el))

    node = Node(id=nid, cpus=frozenset(cpus), mem_total=mem_total, mem_free=None,
                hugepages=hugepages)
    return node, siblings


def _uint(el: etree._Element, attr: str, path: str | None, limit: int) -> int:
    value = el.get(attr)
    if value is None:
        raise ParseError(f"<{_tag(el)}> has no {attr}", field=attr, path=path, line=_line(el))
    if not (value.isascii() and value.isdigit()):
        raise ParseError(f"<{_tag(el)} {attr}='{shorten(value)}'>: expected a non-negative "
                         "integer", field=attr, path=path, line=_line(el))
    return decimal(value, field=attr, limit=limit, path=path, line=_line(el))


def _text_uint(el: etree._Element, path: str | None) -> int:
    value = (el.text or "").strip()
    tag = _tag(el)
    if not (value.isascii() and value.isdigit()):
        raise ParseError(f"<{tag}>{shorten(value)}</{tag}>: expected a non-negative "
                         "integer", field=tag, path=path, line=_line(el))
    return decimal(value, field=tag, limit=2**63 - 1, path=path, line=_line(el))


def _scaled(el: etree._Element, value: str, unit: str | None, path: str | None,
            *, field: str | None = None) -> int:
    try:
        return parse_scaled(value.strip(), unit, round_to=1)
    except ParseError as exc:
        raise exc.located(path=path, line=_line(el), field=field or _tag(el)) from None


def _tag(el: etree._Element) -> str:
    """The element's name: a str for every element lxml parsed (types-lxml types the property
    as whatever a tag may be set to: str, bytes or QName)."""
    tag = el.tag
    return tag if isinstance(tag, str) else str(tag)


def _line(el: etree._Element) -> int | None:
    line = el.sourceline  # lxml: None for elements not read from text
    return line if isinstance(line, int) else None

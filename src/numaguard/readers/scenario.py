"""Scenario files (TOML) and snapshots as input of ``numaguard simulate``.

The format is documented with examples in ``examples/scenarios/README.md``; its keys are a
contract (users and tests write them)::

    name = "article-fig5"            # optional; default: the file name without .toml
    [host]                           # or, at the top: snapshot = "path/to/snapshot"
    distances = [[10, 21], [21, 10]] # optional (no SLIT: 10 local, 20 remote)
    fallback = [[0, 1], [1, 0]]      # optional: "Fallback order for Node N" of each node
    swap = "4GiB"                    # swap free for this scenario (default 0)
    min_free_kbytes = 67584          # optional: vm.min_free_kbytes (default: the kernel's formula)
    watermark_scale_factor = 10      # optional: vm.watermark_scale_factor (default 10)
    [[host.nodes]]
    id = 0
    cpus = "0-7"
    mem_total = "16GiB"
    mem_free = "15GiB"               # optional; watermark_min, watermark_low, reclaimable,
                                     # hugepages = {"2MiB" = 512} (free pages per size)
    [[step]]
    name = "vm1"
    size = "12GiB"
    action = "alloc"                 # alloc | free
    policy = "bind"                  # default | bind | preferred | preferred-many | interleave
    nodes = "0"                      # libvirt nodeset syntax
    cpu_node = 0
    cpuset_mems = "0"
    hugepage_size = "2MiB"
    oom_score_adj = 0
    policy_scope = "task"            # task (set_mempolicy) | vma (mbind, as QEMU does)

Every problem is a :class:`ParseError` ``file: key: what is wrong`` (``scenario.toml:
step[2].policy: unknown policy 'binded' (default, bind, …)``); a TOML syntax error names the
line.  The CLI prints it as one line and exits 2.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

from numaguard.core.scenario import QEMU_OWN, Scenario, guest_steps, sim_host
from numaguard.core.simulate import Policy, SimHost, Step, new_step
from numaguard.core.whatif import host_before_guests
from numaguard.cpuset import format_bitmap, parse_cpulist, parse_nodeset
from numaguard.errors import ParseError, SourceError
from numaguard.limits import MAX_NODES, shorten
from numaguard.model.guest import Guest
from numaguard.model.inventory import Inventory
from numaguard.model.live import LiveState
from numaguard.model.topology import Host, HostHugepages, Node
from numaguard.readers import scenario_toml
from numaguard.readers.files import read_bytes
from numaguard.units import parse_size

#: a scenario is a few KiB; refuse megabytes
MAX_SCENARIO_BYTES = 4 * 1024 * 1024

#: ``[oracle]`` holds the kernel-oracle harness settings (tests/oracle); the simulator ignores it.
_TOP_KEYS = ("name", "description", "host", "snapshot", "step", "oracle")
_HOST_KEYS = ("distances", "fallback", "swap", "nodes", "min_free_kbytes",
              "watermark_scale_factor")
_NODE_KEYS = ("id", "cpus", "mem_total", "mem_free", "watermark_min", "watermark_low",
              "reclaimable", "hugepages")
_STEP_KEYS = ("name", "size", "action", "policy", "nodes", "cpu_node", "cpuset_mems",
              "hugepage_size", "oom_score_adj", "policy_scope")
_ACTIONS = ("alloc", "free")
_POLICIES = tuple(p.value for p in Policy)
_POLICY_OF = {p.value: p for p in Policy}
_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_scenario(source: str, *, order: str | None = None,
                  qemu_overhead: int | None = None) -> Scenario:
    """A scenario TOML file, or a snapshot directory whose guests touch their full memory
    (in start order *order*, see :func:`_snapshot_scenario`), each QEMU with
    *qemu_overhead* bytes of its own memory besides its guest RAM (default
    :data:`~numaguard.core.scenario.QEMU_OWN`)."""
    if os.path.isdir(source):
        return _snapshot_scenario(source, steps=None, name=None, where=source, order=order,
                                  qemu_overhead=QEMU_OWN if qemu_overhead is None
                                  else qemu_overhead)
    if order is not None:
        raise ParseError(f"{source}: --order goes with a snapshot directory (a scenario file "
                         "gives its steps in order)", field="--order")
    if qemu_overhead is not None:
        raise ParseError(f"{source}: --qemu-overhead goes with a snapshot directory or -c "
                         "(a scenario file gives its steps)", field="--qemu-overhead")
    if not os.path.exists(source):
        raise SourceError(source, "no such file or directory")
    return parse_scenario(read_bytes(source, limit=MAX_SCENARIO_BYTES), path=source)


def parse_scenario(data: bytes | str, *, path: str) -> Scenario:
    """Parse scenario TOML; *path* names the file in errors and anchors ``snapshot``."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(path, f"not UTF-8 text (byte {exc.start})") from None
    try:
        doc = scenario_toml.loads(data)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _TOML_LINE.search(message)
        reason = _TOML_LINE.sub("", message).strip() or "invalid TOML"
        line = int(m.group(1)) if m else None
        if m:
            reason += f" (column {m.group(2)})"
        raise ParseError(f"invalid TOML: {reason}", path=path, line=line) from None
    except ValueError as exc:  # tomllib converts integers itself: Python refuses 4,300+ digits
        raise ParseError(f"invalid TOML: a value that cannot be converted ({shorten(str(exc))})",
                         path=path) from None
    except RecursionError:
        raise ParseError("invalid TOML: arrays or tables nested too deeply", path=path) from None
    return _Parser(path).scenario(doc)


# -- the parser -------------------------------------------------------------------------------

class _Parser:
    def __init__(self, path: str) -> None:
        self.path = path
        #: sizes and nodesets already read (a long scenario repeats a few texts many times);
        #: only values that parsed are kept, so every error is still raised where it is
        self._sizes: dict[str, int] = {}
        self._nodesets: dict[tuple[str, frozenset[int]], frozenset[int]] = {}

    def fail(self, key: str, reason: str) -> ParseError:
        return ParseError(reason, field=key, path=self.path)

    def keys(self, table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(_join(where, key),
                                f"unknown key (expected one of: {', '.join(allowed)})")

    # typed values ----------------------------------------------------------------------------

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_show(value)}")
        return value

    def integer(self, value: Any, key: str, *, lo: int | None = None,
                hi: int | None = 2**63 - 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {_show(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise self.fail(key, f"{shorten(str(value))} is out of range ({bounds})")
        return value

    def size(self, value: Any, key: str) -> int:
        if type(value) is str:
            known = self._sizes.get(value)
            if known is None:
                known = self._sizes[value] = self._size(value, key)
            return known
        return self._size(value, key)

    def _size(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.fail(key, f"expected a size such as \"12GiB\", got {_show(value)}")
        try:
            return parse_size(value)
        except ParseError as exc:
            raise self.fail(key, exc.reason) from None

    def nodeset(self, value: Any, key: str, known: frozenset[int]) -> frozenset[int]:
        if type(value) is str:
            nodes = self._nodesets.get((value, known))
            if nodes is None:
                nodes = self._nodesets[value, known] = self._nodeset(value, key, known)
            return nodes
        return self._nodeset(value, key, known)

    def _nodeset(self, value: Any, key: str, known: frozenset[int]) -> frozenset[int]:
        if isinstance(value, bool):
            raise self.fail(key, f"expected a nodeset such as \"0-2\", got {_show(value)}")
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str):
            raise self.fail(key, f"expected a nodeset such as \"0-2\", got {_show(value)}")
        try:
            nodes = parse_nodeset(value, field=key)
        except ParseError as exc:
            raise self.fail(key, exc.reason) from None
        unknown = nodes - known
        if unknown:
            raise self.fail(key, f"node {format_bitmap(unknown)} is not a host node "
                            f"({format_bitmap(known)})")
        return nodes

    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {_show(value)}")
        return value

    # sections ---------------------------------------------------------------------------------

    def scenario(self, doc: Mapping[str, Any]) -> Scenario:
        self.keys(doc, _TOP_KEYS, "")
        name = self.string(doc["name"], "name") if "name" in doc else _stem(self.path)
        if "description" in doc:
            self.string(doc["description"], "description")
        raw_steps = doc.get("step")
        if raw_steps is not None and (not isinstance(raw_steps, list) or not all(
                isinstance(s, dict) for s in raw_steps)):
            raise self.fail("step", "expected [[step]] tables")
        if "snapshot" in doc:
            if "host" in doc:
                raise self.fail("snapshot", "give [host] or snapshot, not both")
            where = self.string(doc["snapshot"], "snapshot")
            target = os.path.join(os.path.dirname(self.path), where)
            if not os.path.isdir(target):
                raise self.fail("snapshot", f"{where!r} is not a directory (relative paths "
                                "start at the scenario file's folder)")
            return _snapshot_scenario(target, steps=raw_steps, name=name, where=self.path,
                                      parser=self)
        if "host" not in doc:
            raise self.fail("host", "missing: describe the host with [host] and "
                            "[[host.nodes]], or name a snapshot with snapshot = \"DIR\"")
        host, sim = self.host(self.table(doc["host"], "host"))
        if not raw_steps:
            raise self.fail("step", "missing: a scenario needs at least one [[step]]")
        steps = [self.step(s, i, host) for i, s in enumerate(raw_steps)]
        return Scenario(name, sim, tuple(steps), tuple(s.name for s in steps), self.path)

    def host(self, t: Mapping[str, Any]) -> tuple[Host, Any]:
        self.keys(t, _HOST_KEYS, "host")
        raw_nodes = t.get("nodes")
        if not raw_nodes:
            raise self.fail("host.nodes", "missing: describe each node with [[host.nodes]]")
        if not isinstance(raw_nodes, list) or not all(isinstance(n, dict) for n in raw_nodes):
            raise self.fail("host.nodes", "expected [[host.nodes]] tables")
        nodes = [self.node(n, i) for i, n in enumerate(raw_nodes)]
        ids = [n.id for n in nodes]
        for i, nid in enumerate(ids):
            if nid in ids[:i]:
                raise self.fail(f"host.nodes[{i}].id", f"node {nid} is defined twice")
        order = sorted(range(len(nodes)), key=lambda i: ids[i])
        if order != list(range(len(nodes))):
            raise self.fail("host.nodes", f"list the nodes by id (got {ids})")
        known = frozenset(ids)
        distances = None
        if "distances" in t:
            distances = self.matrix(t["distances"], "host.distances", len(nodes))
        swap = self.size(t["swap"], "host.swap") if "swap" in t else 0
        min_free = None
        if "min_free_kbytes" in t:
            min_free = self.integer(t["min_free_kbytes"], "host.min_free_kbytes", lo=0)
        scale = 10
        if "watermark_scale_factor" in t:
            scale = self.integer(t["watermark_scale_factor"], "host.watermark_scale_factor",
                                 lo=1, hi=3000)
        host = Host(nodes=tuple(nodes), distances=distances, swap_free=swap, swap_total=swap)
        fallback = None
        if "fallback" in t:
            fallback = self.fallback(t["fallback"], ids, known)
        sim = sim_host(host, fallback=fallback, swap=swap, min_free_kbytes=min_free,
                       watermark_scale_factor=scale)
        for i, node in enumerate(nodes):
            sn = sim.node(node.id)
            if sn.watermark_low < sn.watermark_min:
                raise self.fail(f"host.nodes[{i}].watermark_low",
                                "below watermark_min (the kernel keeps min <= low)")
        return host, sim

    def node(self, t: Mapping[str, Any], i: int) -> Node:
        where = f"host.nodes[{i}]"
        self.keys(t, _NODE_KEYS, where)
        for key in ("id", "mem_total"):
            if key not in t:
                raise self.fail(f"{where}.{key}", "missing")
        nid = self.integer(t["id"], f"{where}.id", lo=0, hi=MAX_NODES - 1)
        cpus: frozenset[int] = frozenset()
        if "cpus" in t:
            try:
                cpus = parse_cpulist(self.string(t["cpus"], f"{where}.cpus"),
                                     field=f"{where}.cpus")
            except ParseError as exc:
                raise self.fail(f"{where}.cpus", exc.reason) from None
        total = self.size(t["mem_total"], f"{where}.mem_total")
        pools: list[HostHugepages] = []
        if "hugepages" in t:
            for size_text, count in self.table(t["hugepages"], f"{where}.hugepages").items():
                key = f"{where}.hugepages.{size_text}"
                size = self.size(size_text, key)
                if size <= 0:
                    raise self.fail(key, "the page size must be positive")
                pages = self.integer(count, key, lo=0)
                pools.append(HostHugepages(size=size, total=pages, free=pages))
        pools.sort(key=lambda p: p.size)
        hugepage_bytes = sum(p.total_bytes for p in pools)
        if hugepage_bytes > total:
            raise self.fail(f"{where}.hugepages", "the pools hold more than mem_total")
        if "mem_free" in t:
            free = self.size(t["mem_free"], f"{where}.mem_free")
            if free > total:
                raise self.fail(f"{where}.mem_free", "larger than mem_total")
        else:
            free = max(0, total - hugepage_bytes)
        optional: dict[str, int | None] = {}
        for key in ("watermark_min", "watermark_low", "reclaimable"):
            optional[key] = self.size(t[key], f"{where}.{key}") if key in t else None
        return Node(id=nid, cpus=cpus, mem_total=total, mem_free=free, hugepages=tuple(pools),
                    watermark_min=optional["watermark_min"],
                    watermark_low=optional["watermark_low"],
                    reclaimable=optional["reclaimable"])

    def matrix(self, value: Any, key: str, size: int) -> tuple[tuple[int, ...], ...]:
        if not isinstance(value, list) or len(value) != size or not all(
                isinstance(r, list) and len(r) == size for r in value):
            raise self.fail(key, f"expected a {size}x{size} matrix (one row per node)")
        rows = []
        for i, row in enumerate(value):
            rows.append(tuple(self.integer(d, f"{key}[{i}]", lo=1, hi=255) for d in row))
        return tuple(rows)

    def fallback(self, value: Any, ids: list[int],
                 known: frozenset[int]) -> dict[int, tuple[int, ...]]:
        key = "host.fallback"
        if not isinstance(value, list) or len(value) != len(ids) or not all(
                isinstance(r, list) for r in value):
            raise self.fail(key, f"expected one list per node ({len(ids)}), each the "
                            "kernel's \"Fallback order for Node N\"")
        orders: dict[int, tuple[int, ...]] = {}
        for nid, row in zip(ids, value, strict=True):
            where = f"{key}[{ids.index(nid)}]"
            order = tuple(self.integer(n, where, lo=0) for n in row)
            if not order:
                raise self.fail(where, "empty")
            if len(set(order)) != len(order):
                raise self.fail(where, f"a node appears twice in {list(order)}")
            unknown = set(order) - known
            if unknown:
                raise self.fail(where, f"node {format_bitmap(unknown)} is not a host node "
                                f"({format_bitmap(known)})")
            orders[nid] = order
        return orders

    def step(self, t: Mapping[str, Any], i: int, host: Host) -> Step:
        where = f"step[{i}]"
        self.keys(t, _STEP_KEYS, where)
        known = host.node_ids
        if "name" not in t:
            raise self.fail(f"{where}.name", "missing: name the guest or application")
        name = self.string(t["name"], f"{where}.name").strip()
        if not name:
            raise self.fail(f"{where}.name", "empty")
        action = self.string(t.get("action", "alloc"), f"{where}.action")
        if action not in _ACTIONS:
            raise self.fail(f"{where}.action", f"unknown action {action!r} ({', '.join(_ACTIONS)})")
        size: int | None = None
        if "size" in t:
            size = self.size(t["size"], f"{where}.size")
        elif action == "alloc":
            raise self.fail(f"{where}.size", "missing: how much memory the step touches")
        if action == "free":
            extra = [k for k in t if k not in ("name", "size", "action")]
            if extra:
                raise self.fail(f"{where}.{extra[0]}", "not used by action = \"free\" (it frees "
                                "`size` bytes of the task, or all of it without size)")
            return new_step(name, size, "free", Policy.DEFAULT, None, 0, None, None, 0, "task")
        policy_text = self.string(t.get("policy", "default"), f"{where}.policy")
        policy = _POLICY_OF.get(policy_text)
        if policy is None:
            raise self.fail(f"{where}.policy", f"unknown policy {policy_text!r} "
                            f"({', '.join(_POLICIES)})")
        nodes = self.nodeset(t["nodes"], f"{where}.nodes", known) if "nodes" in t else None
        if policy is not Policy.DEFAULT and nodes is None:
            raise self.fail(f"{where}.nodes", f"missing: policy {policy.value!r} needs a nodeset")
        if policy is Policy.PREFERRED and nodes is not None and len(nodes) > 1:
            raise self.fail(f"{where}.nodes", "policy 'preferred' takes one node; use "
                            "'preferred-many' for several")
        if "cpu_node" in t:
            cpu_node = self.integer(t["cpu_node"], f"{where}.cpu_node", lo=0)
            if cpu_node not in known:
                raise self.fail(f"{where}.cpu_node", f"node {cpu_node} is not a host node "
                                f"({format_bitmap(known)})")
        else:
            cpu_node = min(nodes) if nodes else min(known)
        cpuset = None
        if "cpuset_mems" in t:
            cpuset = self.nodeset(t["cpuset_mems"], f"{where}.cpuset_mems", known)
        hugepage_size = None
        if "hugepage_size" in t:
            hugepage_size = self.size(t["hugepage_size"], f"{where}.hugepage_size")
            pools = {p.size for n in host.nodes for p in n.hugepages}
            if hugepage_size not in pools:
                have = ", ".join(_size_text(s) for s in sorted(pools)) or "none"
                raise self.fail(f"{where}.hugepage_size", f"no node has a pool of "
                                f"{_size_text(hugepage_size)} pages (pools: {have})")
        adj = 0
        if "oom_score_adj" in t:
            adj = self.integer(t["oom_score_adj"], f"{where}.oom_score_adj", lo=-1000, hi=1000)
        scope = t.get("policy_scope", "task")
        if scope not in ("task", "vma"):
            raise self.fail(f"{where}.policy_scope",
                            f"unknown policy scope {scope!r} (task, vma)")
        return new_step(name, size, "alloc", policy, nodes, cpu_node, cpuset, hugepage_size, adj,
                        scope)


def _snapshot_scenario(directory: str, *, steps: list[dict[str, Any]] | None,
                       name: str | None, where: str, parser: _Parser | None = None,
                       order: str | None = None, qemu_overhead: int = QEMU_OWN) -> Scenario:
    """A snapshot's host; its guests touching their memory one after another unless *steps*:
    in start order *order* (one of the audit's, :mod:`numaguard.core.orders`), by default
    the order the snapshot recorded, else ``bound-last`` — never by name, so that renaming a
    guest does not change who dies."""
    from numaguard.readers.sources import is_snapshot, load_guests, load_host, read_snapshot_meta

    host = load_host(directory)
    sim = sim_host(host, min_free_kbytes=_snapshot_min_free_kbytes(directory))
    label = name or os.path.basename(os.path.normpath(directory))
    if steps:
        assert parser is not None
        parsed = [parser.step(s, i, host) for i, s in enumerate(steps)]
        return Scenario(label, sim, tuple(parsed), tuple(s.name for s in parsed), where)
    guests = load_guests(directory)
    meta = read_snapshot_meta(directory) if is_snapshot(directory) else None
    recorded = meta.start_order if meta is not None else None
    live = _snapshot_live(directory, meta.running if meta is not None else None, guests)
    if live is not None:
        sim = sim_host(host_before_guests(host, live),
                       min_free_kbytes=_snapshot_min_free_kbytes(directory))
    return _guests_scenario(host, sim, guests, recorded, order, label, where,
                            (directory, "domains/ is empty"), live, qemu_overhead)


def _snapshot_live(directory: str, running: tuple[str, ...] | None,
                   guests: list[Guest]) -> LiveState | None:
    """A snapshot's captured live state (its ``host/`` has libvirt's run folder) of its
    *guests*, if any of them ran."""
    from numaguard.core.whatif import of_guests
    from numaguard.readers.live import read_live
    from numaguard.readers.sources import has_live_files

    root = os.path.join(directory, "host")
    if not os.path.isdir(root) or not has_live_files(root):
        return None
    state = of_guests(read_live(root, None if running is None else
                                [(n, None) for n in sorted(running)]), guests)
    return state if state.guests else None


def inventory_scenario(inventory: Inventory, *, order: str | None = None,
                       live: LiveState | None = None, qemu_overhead: int = QEMU_OWN
                       ) -> Scenario:
    """What :func:`load_scenario` makes of a snapshot, for an inventory read from anywhere
    (``numaguard simulate -c URI``): its guests touching their memory one after another in
    start order *order* (default: the order the guests were started in, when the source
    knows it, else ``bound-last``); from what the running guests hold now with *live*."""
    host = inventory.host
    if live is not None:
        from numaguard.core.whatif import of_guests

        live = of_guests(live, inventory.guests)
        live = live if live.guests else None
    sim = sim_host(host if live is None else host_before_guests(host, live),
                   min_free_kbytes=inventory.facts.min_free_kbytes)
    return _guests_scenario(host, sim, list(inventory.guests), inventory.start_order, order,
                            inventory.origin, inventory.origin,
                            (inventory.origin, "no domains there"), live, qemu_overhead)


def _guests_scenario(host: Host, sim: SimHost, guests: list[Guest],
                     recorded: tuple[str, ...] | None, order: str | None, label: str,
                     where: str, empty: tuple[str, str],
                     live: LiveState | None = None, qemu_overhead: int = QEMU_OWN
                     ) -> Scenario:
    """The guests in start order *order*; on a live host (*live*) what the running guests hold
    now first, then every guest growing to its full size in that order (core/whatif.py, as the
    audit's NG110 plays it there)."""
    from numaguard.core.orders import named_order

    if order is None:
        order = "recorded" if recorded is not None else "bound-last"
    try:
        start = named_order(guests, order, recorded=recorded)
    except ValueError as exc:
        raise ParseError(str(exc), field="--order") from None
    held = 0
    if live is None:
        pairs = guest_steps(host, guests, start.guests, own=qemu_overhead)
        label = f"{label} ({start.name} start order)"
    else:
        from numaguard.core.whatif import live_steps

        pairs, held = live_steps(host, guests, live, start.guests, own=qemu_overhead)
        label = f"{label} (live: {start.name} growth order)"
    if not pairs:
        raise SourceError(empty[0], f"no guests to simulate ({empty[1]}) and no [[step]] "
                          "given")
    return Scenario(label, sim, tuple(s for s, _ in pairs), tuple(lb for _, lb in pairs),
                    where, held)


def _snapshot_min_free_kbytes(directory: str) -> int | None:
    """``vm.min_free_kbytes`` captured in a snapshot (``numaguard snapshot`` keeps it), for
    watermarks the snapshot has no ``/proc/zoneinfo`` for."""
    from numaguard.readers.hostfacts import min_free_kbytes

    for root in (os.path.join(directory, "host"), directory):
        value = min_free_kbytes(root)
        if value is not None:
            return value
    return None


# -- helpers ------------------------------------------------------------------------------------

def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _stem(path: str) -> str:
    return os.path.basename(path).removesuffix(".toml")


def _show(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    text = repr(value)
    return kind if len(text) > 40 else f"{kind} ({text})"


def _size_text(size: int) -> str:
    from numaguard.units import format_bytes

    return format_bytes(size, precision=0)

"""The memory and NUMA part of a QEMU command line (what libvirt hands QEMU).

A pure parse of an argv (a list of strings, as ``shlex.split`` makes of ``virsh domxml-to-native
qemu-argv``): no I/O, so it also reads an argv taken from ``/proc/PID/cmdline``.  What it reads
(QEMU 7.2's ``qemu-options.hx`` and ``qapi/qom.json``; libvirt 9.0's ``src/qemu/qemu_command.c``
writes them — see docs/qemu-argv.md):

* ``-object`` of qom-type ``memory-backend-ram``, ``-file`` or ``-memfd`` (:class:`MemoryBackend`)
  and ``thread-context`` (:class:`ThreadContext`), in the JSON form libvirt 9 writes
  (``-object '{"qom-type":"memory-backend-ram","id":"pc.ram","size":268435456,...}'``) and the
  legacy ``memory-backend-ram,id=m0,size=256M,host-nodes=0-1,policy=bind`` form (QemuOpts: a
  doubled comma is a literal comma; a repeated ``host-nodes=``/``cpus=`` adds to the list;
  ``a-b`` is a range, qapi/opts-visitor.c).  Other objects (secrets, …) are skipped.
* ``-numa node,nodeid=N,cpus=A-B,memdev=ID`` (:class:`NumaNode`; ``dist``/``cpu``/``hmat-*``
  entries are skipped), ``-m [size=]N[,slots=..,maxmem=..]`` (MiB without a suffix),
  ``-machine TYPE,...,memory-backend=ID``, ``-smp [cpus=]N,sockets=..,cores=..,threads=..,
  maxcpus=..``, ``-mem-prealloc`` and ``-mem-path``.

Sizes are bytes.  QEMU's size suffixes are powers of 1024, case-insensitive (``B K M G T P E``,
util/cutils.c ``do_strtosz``); a fraction needs a suffix.  Bad input raises :class:`ParseError`
naming the option and field (``-object pc.ram: size: ...``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from numaguard.cpuset import parse_cpulist, parse_nodeset
from numaguard.errors import ParseError
from numaguard.limits import MAX_CPUS, MAX_NODES, shorten

#: QEMU's HostMemPolicy (qapi/machine.json): what ``policy`` may say; ``default`` when absent
POLICIES = ("default", "preferred", "bind", "interleave")
BACKEND_TYPES = ("memory-backend-ram", "memory-backend-file", "memory-backend-memfd")
_SUFFIX = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_SIZE = re.compile(r"([0-9]{1,20})(?:\.([0-9]{1,20}))?([bkmgtpe]?)", re.IGNORECASE)
_BOOL = {"on": True, "yes": True, "true": True, "y": True,
         "off": False, "no": False, "false": False, "n": False}
_MAX_BYTES = 2**64 - 1


@dataclass(frozen=True, slots=True)
class MemoryBackend:
    """One ``memory-backend-*`` object.  ``host_nodes`` is ``None`` when not given (QEMU then
    sets no NUMA policy on the memory); ``policy`` is ``"default"`` when not given."""

    id: str
    qom_type: str
    size: int
    host_nodes: frozenset[int] | None = None
    policy: str = "default"
    prealloc: bool = False
    prealloc_threads: int | None = None
    prealloc_context: str | None = None
    mem_path: str | None = None
    share: bool | None = None
    hugetlb: bool = False
    hugetlbsize: int | None = None

    @property
    def hugepages(self) -> bool:
        """Backed by huge pages: a memfd with ``hugetlb``, or a file (libvirt gives a file
        backend a ``mem-path`` only on a hugetlbfs mount or for ``<source type='file'>``)."""
        return self.hugetlb or self.mem_path is not None


@dataclass(frozen=True, slots=True)
class ThreadContext:
    """A ``thread-context`` object (QEMU 7.2): the CPUs or nodes its threads (a backend's
    prealloc threads, through ``prealloc-context``) are created on."""

    id: str
    node_affinity: frozenset[int] | None = None
    cpu_affinity: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class NumaNode:
    """``-numa node``: a guest NUMA cell.  ``mem`` is the legacy ``mem=`` size (bytes)."""

    nodeid: int
    cpus: frozenset[int]
    memdev: str | None = None
    mem: int | None = None


@dataclass(frozen=True, slots=True)
class Smp:
    cpus: int
    sockets: int | None = None
    cores: int | None = None
    threads: int | None = None
    maxcpus: int | None = None


@dataclass(frozen=True, slots=True)
class QemuMemoryLayout:
    """What one QEMU command line says about guest memory."""

    memory: int | None
    machine: str | None
    machine_memory_backend: str | None
    smp: Smp | None
    backends: tuple[MemoryBackend, ...]
    numa_nodes: tuple[NumaNode, ...]
    thread_contexts: tuple[ThreadContext, ...]
    mem_prealloc: bool = False
    mem_path: str | None = None

    def backend(self, backend_id: str) -> MemoryBackend | None:
        return next((b for b in self.backends if b.id == backend_id), None)

    def thread_context(self, context_id: str) -> ThreadContext | None:
        return next((t for t in self.thread_contexts if t.id == context_id), None)

    def guest_ram(self) -> tuple[MemoryBackend, ...]:
        """The backends guest RAM is made of: each ``-numa node``'s memdev, else the
        ``-machine memory-backend=``; empty when QEMU allocates RAM itself."""
        ids = [n.memdev for n in self.numa_nodes if n.memdev is not None]
        if not ids and self.machine_memory_backend is not None:
            ids = [self.machine_memory_backend]
        out = []
        for i in ids:
            b = self.backend(i)
            if b is None:
                raise ParseError(f"memory backend {i!r} is used but never defined",
                                 field="-numa memdev" if self.numa_nodes
                                 else "-machine memory-backend")
            out.append(b)
        return tuple(out)


def qemu_size(value: object, *, field: str, default_suffix: str = "") -> int:
    """A QEMU size: an integer (JSON) or text such as ``256M``/``1.5G``; bytes."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ParseError(f"expected a size, got {shorten(repr(value))}", field=field)
    if isinstance(value, int):
        if not 0 <= value <= _MAX_BYTES:
            raise ParseError(f"size {value} is out of range", field=field)
        return value
    m = _SIZE.fullmatch(value)
    if m is None:
        raise ParseError(f"invalid size {shorten(value)!r}", field=field)
    whole, frac, suffix = m.group(1), m.group(2), (m.group(3) or default_suffix).lower()
    if frac is not None and suffix in ("", "b"):
        raise ParseError(f"invalid size {shorten(value)!r}: a fraction needs a suffix",
                         field=field)
    scale = 1024 ** _SUFFIX[suffix]
    n = int(whole) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
    if n > _MAX_BYTES:
        raise ParseError(f"size {shorten(value)!r} is out of range", field=field)
    return n


def split_opts(text: str) -> list[tuple[str, str | None]]:
    """QemuOpts ``a,b=c,d=e,,f`` → ``[("a", None), ("b", "c"), ("d", "e,f")]``."""
    items: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == ",":
            if text.startswith(",,", i):
                cur.append(",")
                i += 2
                continue
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    items.append("".join(cur))
    out: list[tuple[str, str | None]] = []
    for item in items:
        key, eq, val = item.partition("=")
        out.append((key, val if eq else None))
    return out


def parse_qemu_argv(argv: Sequence[str]) -> QemuMemoryLayout:
    """Read the memory/NUMA options of *argv* (``argv[0]`` may be the emulator or an option)."""
    memory: int | None = None
    machine: str | None = None
    machine_backend: str | None = None
    smp: Smp | None = None
    backends: list[MemoryBackend] = []
    nodes: list[NumaNode] = []
    contexts: list[ThreadContext] = []
    mem_prealloc = False
    mem_path: str | None = None
    for opt, value in _options(argv):
        if opt == "-m":
            memory = _memory(value)
        elif opt == "-machine":
            machine, machine_backend = _machine(value)
        elif opt == "-smp":
            smp = _smp(value)
        elif opt == "-numa":
            node = _numa(value)
            if node is not None:
                nodes.append(node)
        elif opt == "-object":
            obj = _object(value)
            if isinstance(obj, MemoryBackend):
                backends.append(obj)
            elif isinstance(obj, ThreadContext):
                contexts.append(obj)
        elif opt == "-mem-prealloc":
            mem_prealloc = True
        elif opt == "-mem-path":
            mem_path = value
    for kind, ids in (("-object", [b.id for b in backends]), ("-numa nodeid",
                                                            [str(n.nodeid) for n in nodes])):
        dup = next((i for i in ids if ids.count(i) > 1), None)
        if dup is not None:
            raise ParseError(f"{dup} is defined twice", field=kind)
    return QemuMemoryLayout(memory, machine, machine_backend, smp, tuple(backends),
                            tuple(nodes), tuple(contexts), mem_prealloc, mem_path)


#: options that take no value (the ones a libvirt argv has; any other option takes one)
_FLAGS = frozenset({"-S", "-no-user-config", "-nodefaults", "-no-shutdown", "-no-acpi",
                    "-nographic", "-no-reboot", "-no-hpet", "-enable-kvm", "-daemonize",
                    "-mem-prealloc", "-snapshot", "-enable-fips"})
_WITH_VALUE = frozenset({"-m", "-machine", "-M", "-smp", "-numa", "-object", "-mem-path"})


def _options(argv: Sequence[str]) -> Iterator[tuple[str, str]]:
    i = 1 if argv and not argv[0].startswith("-") else 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            i += 1                      # a value of an option we do not know takes a value
            continue
        opt = "-" + arg.lstrip("-")     # QEMU accepts --opt for -opt
        opt = "-machine" if opt == "-M" else opt
        unknown_flag = (opt not in _WITH_VALUE and i + 1 < len(argv)
                        and argv[i + 1].startswith("-"))
        if opt in _FLAGS or unknown_flag:   # an option we do not know, followed by an option,
            yield opt, ""                   # took no value
            i += 1
            continue
        if i + 1 >= len(argv):
            if opt in _WITH_VALUE:
                raise ParseError("has no value (the command line ends)", field=opt)
            break
        yield opt, argv[i + 1]
        i += 2


def _memory(value: str) -> int:
    size: int | None = None
    for key, val in split_opts(value):
        if val is None and size is None:
            size = qemu_size(key, field="-m", default_suffix="m")
        elif key == "size" and val is not None:
            size = qemu_size(val, field="-m size", default_suffix="m")
    if size is None:
        raise ParseError(f"no size in {shorten(value)!r}", field="-m")
    return size


def _machine(value: str) -> tuple[str | None, str | None]:
    machine = backend = None
    for n, (key, val) in enumerate(split_opts(value)):
        if val is None and n == 0:
            machine = key
        elif key == "type":
            machine = val
        elif key == "memory-backend":
            backend = val
    return machine, backend


def _int(value: object, field: str, *, low: int = 0, high: int = 2**31 - 1) -> int:
    if isinstance(value, bool):
        raise ParseError(f"expected an integer, got {value!r}", field=field)
    if isinstance(value, str):
        if not value.isdigit() or len(value) > 10:
            raise ParseError(f"expected an integer, got {shorten(value)!r}", field=field)
        value = int(value)
    if not isinstance(value, int) or not low <= value <= high:
        raise ParseError(f"expected an integer in {low}..{high}, got {shorten(repr(value))}",
                         field=field)
    return value


def _smp(value: str) -> Smp:
    found: dict[str, int] = {}
    for n, (key, val) in enumerate(split_opts(value)):
        if val is None and n == 0:
            found["cpus"] = _int(key, "-smp cpus")
        elif key in ("cpus", "sockets", "cores", "threads", "maxcpus") and val is not None:
            found[key] = _int(val, f"-smp {key}")
    if "cpus" not in found:
        if "maxcpus" not in found:
            raise ParseError(f"no CPU count in {shorten(value)!r}", field="-smp")
        found["cpus"] = found["maxcpus"]
    return Smp(**found)


def _numa(value: str) -> NumaNode | None:
    opts = split_opts(value)
    kind = opts[0][0] if opts and opts[0][1] is None else "node"
    if kind != "node":
        return None
    nodeid: int | None = None
    cpus: set[int] = set()
    memdev: str | None = None
    mem: int | None = None
    for key, val in opts[1:] if opts[0][1] is None else opts:
        if val is None:
            raise ParseError(f"{shorten(key)!r} has no value", field="-numa node")
        if key == "nodeid":
            nodeid = _int(val, "-numa node nodeid", high=MAX_NODES - 1)
        elif key == "cpus":
            cpus |= parse_cpulist(val, field="-numa node cpus", limit=MAX_CPUS)
        elif key == "memdev":
            memdev = val
        elif key == "mem":
            mem = qemu_size(val, field="-numa node mem", default_suffix="m")
    if nodeid is None:
        raise ParseError(f"no nodeid in {shorten(value)!r}", field="-numa node")
    return NumaNode(nodeid, frozenset(cpus), memdev, mem)


def _object(value: str) -> MemoryBackend | ThreadContext | None:
    props: dict[str, object]
    if value.lstrip().startswith("{"):
        try:
            loaded = json.loads(value)
        except ValueError as exc:
            raise ParseError(f"invalid JSON: {exc}", field="-object") from None
        if not isinstance(loaded, dict):
            raise ParseError("the JSON is not an object", field="-object")
        props = loaded
    else:
        props = _legacy_object(value)
    qom_type = props.get("qom-type")
    if qom_type not in BACKEND_TYPES and qom_type != "thread-context":
        return None
    oid = props.get("id")
    if not isinstance(oid, str) or not oid:
        raise ParseError(f"a {qom_type} without an id", field="-object id")
    where = f"-object {oid}"
    if qom_type == "thread-context":
        return ThreadContext(oid, _nodes(props.get("node-affinity"), f"{where}: node-affinity"),
                             _nodes(props.get("cpu-affinity"), f"{where}: cpu-affinity",
                                    high=MAX_CPUS - 1))
    if "size" not in props:
        raise ParseError("missing", field=f"{where}: size")
    policy = props.get("policy", "default")
    if policy not in POLICIES:
        raise ParseError(f"{shorten(repr(policy))} is not one of {', '.join(POLICIES)}",
                         field=f"{where}: policy")
    threads = props.get("prealloc-threads")
    context = props.get("prealloc-context")
    mem_path = props.get("mem-path")
    for name, val in (("prealloc-context", context), ("mem-path", mem_path)):
        if val is not None and not isinstance(val, str):
            raise ParseError(f"expected a string, got {shorten(repr(val))}",
                             field=f"{where}: {name}")
    share = props.get("share")
    hugetlbsize = props.get("hugetlbsize")
    return MemoryBackend(
        id=oid, qom_type=str(qom_type),
        size=qemu_size(props["size"], field=f"{where}: size"),
        host_nodes=_nodes(props.get("host-nodes"), f"{where}: host-nodes"),
        policy=str(policy),
        prealloc=bool(_bool(props.get("prealloc", False), f"{where}: prealloc")),
        prealloc_threads=None if threads is None else _int(threads, f"{where}: prealloc-threads",
                                                           low=1),
        prealloc_context=context if isinstance(context, str) else None,
        mem_path=mem_path if isinstance(mem_path, str) else None,
        share=None if share is None else _bool(share, f"{where}: share"),
        hugetlb=bool(_bool(props.get("hugetlb", False), f"{where}: hugetlb")),
        hugetlbsize=None if hugetlbsize is None else qemu_size(hugetlbsize,
                                                               field=f"{where}: hugetlbsize"),
    )


def _legacy_object(value: str) -> dict[str, object]:
    opts = split_opts(value)
    props: dict[str, object] = {}
    lists: dict[str, list[str]] = {}
    for n, (key, val) in enumerate(opts):
        if n == 0 and val is None:
            props["qom-type"] = key
        elif val is None:
            raise ParseError(f"{shorten(key)!r} has no value", field="-object")
        elif key in ("host-nodes", "node-affinity", "cpu-affinity"):
            lists.setdefault(key, []).append(val)
        else:
            props[key] = val
    for key, vals in lists.items():
        props[key] = ",".join(vals)     # a nodeset string, read by _nodes
    return props


def _nodes(value: object, field: str, *, high: int = MAX_NODES - 1) -> frozenset[int] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_nodeset(value, field=field, limit=high + 1)
    if isinstance(value, list):
        return frozenset(_int(v, field, high=high) for v in value)
    raise ParseError(f"expected a list of node numbers, got {shorten(repr(value))}", field=field)


def _bool(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOL:
        return _BOOL[value.lower()]
    raise ParseError(f"expected on/off or true/false, got {shorten(repr(value))}", field=field)

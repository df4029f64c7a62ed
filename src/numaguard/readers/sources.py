"""Turning a SOURCE argument into a Host or guests.

A SOURCE is one of:

* a snapshot directory: ``host/`` (a captured ``sys/``+``proc/`` tree, ``numactl-H.txt`` or
  ``capabilities.xml``) and ``domains/*.xml``;
* a captured sysfs root (a directory holding ``sys/devices/system/node``);
* a ``numactl -H`` text file or a ``virsh capabilities`` XML file (topology);
* a domain XML file or a folder of them (guests);
* nothing: this machine (``/`` and ``/etc/libvirt/qemu``).

``numaguard audit`` takes several SOURCEs (:func:`load_audit_input`): the first one that yields
a topology is the host, guests come from all of them, and a folder may also hold
``capabilities.xml`` or ``numactl-H.txt`` beside its domain XMLs.

A snapshot made by ``numaguard snapshot`` also holds ``snapshot.json`` (what was captured, where
and when, and the order the running guests started in; see :mod:`numaguard.writers.snapshot`),
read by :func:`read_snapshot_meta`.  Older snapshots without it still load.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from numaguard.errors import ParseError, SourceError
from numaguard.model.inventory import HostFacts, Inventory, Problem
from numaguard.model.topology import Host
from numaguard.readers.files import decode_utf8, read_bytes

#: typing.TYPE_CHECKING without importing typing (~2 ms of every command); mypy and ruff
#: read a module's own TYPE_CHECKING as true
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `topology` reads no guests (~4 ms of imports)
    from collections.abc import Mapping
    from typing import Any

    from numaguard.model.guest import Guest
    from numaguard.model.live import LiveState
    from numaguard.readers.domains import ListedFile

LIVE_ROOT = "/"
LIBVIRT_QEMU_DIR = "/etc/libvirt/qemu"

NUMACTL_FILE = "numactl-H.txt"
CAPABILITIES_FILE = "capabilities.xml"
#: a snapshot's metadata file, and the version of its layout this numaguard writes and reads
SNAPSHOT_META = "snapshot.json"
SNAPSHOT_SCHEMA = 1


def is_snapshot(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "host")) or os.path.isdir(
        os.path.join(path, "domains"))


def _is_sysfs_root(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "sys", "devices", "system", "node"))


def facts_root(source: str) -> str | None:
    """The captured sysfs/proc root under *source* (a sysfs root, or a snapshot's ``host/``
    holding one) that host facts such as the kernel release come from; ``None`` otherwise."""
    if not os.path.isdir(source):
        return None
    root = os.path.join(source, "host") if is_snapshot(source) else source
    return root if _is_sysfs_root(root) else None


def read_host_dir(path: str) -> Host:
    """A directory holding one topology source (a snapshot's ``host/``, or a sysfs root)."""
    from numaguard.readers.sysfs import SysfsReader

    if _is_sysfs_root(path):
        host = SysfsReader(path).read_host()
    elif os.path.isfile(os.path.join(path, NUMACTL_FILE)):
        host = read_host_file(os.path.join(path, NUMACTL_FILE))
    elif os.path.isfile(os.path.join(path, CAPABILITIES_FILE)):
        host = read_host_file(os.path.join(path, CAPABILITIES_FILE))
    else:
        raise SourceError(path, f"no topology here: expected sys/devices/system/node, "
                          f"{NUMACTL_FILE} or {CAPABILITIES_FILE}")
    return host


def read_host_file(path: str) -> Host:
    data = read_bytes(path)
    if _looks_like_xml(data):
        from numaguard.domxml.capabilities import parse_capabilities

        return parse_capabilities(data, path=path)
    from numaguard.readers.numactl import parse_numactl

    _check_text(data, path, "neither a capabilities XML nor numactl -H text")
    return parse_numactl(decode_utf8(data, path), path=path)


def _looks_like_xml(data: bytes) -> bool:
    return data.removeprefix(_UTF8_BOM).lstrip()[:1] == b"<"


def _looks_like_numactl(data: bytes) -> bool:
    """``numactl -H`` text: its first line is ``available: …`` or ``No NUMA available …``
    (libnuma's warnings may come first in a capture made with ``2>&1``)."""
    for line in data.splitlines():
        line = line.strip()
        if line and not line.startswith(b"libnuma: Warning:"):
            return line.startswith((b"available:", b"No NUMA"))
    return False


def _check_text(data: bytes, path: str, what: str) -> None:
    """Refuse an empty file, or one in another encoding than UTF-8 (with the reason)."""
    if not data.strip():
        raise SourceError(path, f"empty file: {what}")
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")) or b"\x00" in data:
        from numaguard.domxml.safexml import check_utf8_xml

        check_utf8_xml(data, path=path)  # says which encoding it is


def load_host(source: str | None) -> Host:
    """The host topology of SOURCE (see the module docstring); ``None`` is this machine."""
    if source is None:
        from numaguard.readers.sysfs import SysfsReader

        return SysfsReader(LIVE_ROOT).read_host()
    if os.path.isdir(source):
        if is_snapshot(source):
            host_dir = os.path.join(source, "host")
            if not os.path.isdir(host_dir):
                raise SourceError(source, "snapshot has no host/ folder")
            return read_host_dir(host_dir)
        return read_host_dir(source)
    if not os.path.exists(source):
        raise SourceError(source, "no such file or directory")
    return read_host_file(source)


def load_guests(source: str | None) -> list[Guest]:
    """The guests of SOURCE; ``None`` is this machine's ``/etc/libvirt/qemu``."""
    from numaguard.readers.domains import read_domain_dir, read_domain_file

    if source is None:
        if not os.path.isdir(LIBVIRT_QEMU_DIR):
            raise SourceError(LIBVIRT_QEMU_DIR, "no such directory (is libvirt installed here? "
                              "name a snapshot, a domain XML or a folder of them)")
        return read_domain_dir(LIBVIRT_QEMU_DIR)
    if os.path.isdir(source):
        if is_snapshot(source):
            domains = os.path.join(source, "domains")
            return read_domain_dir(domains) if os.path.isdir(domains) else []
        return read_domain_dir(source)
    if not os.path.exists(source):
        raise SourceError(source, "no such file or directory")
    return [read_domain_file(source)]


def load_guests_partial(source: str | None) -> tuple[list[Guest], tuple[Problem, ...]]:
    """:func:`load_guests`, going past the files of a folder that cannot be read (each is a
    :class:`~numaguard.model.inventory.Problem`); a file named on its own may not fail."""
    from numaguard.readers.domains import read_domain_dir_partial, read_domain_file

    if source is None:
        if not os.path.isdir(LIBVIRT_QEMU_DIR):
            load_guests(None)      # the error saying why
        folder = LIBVIRT_QEMU_DIR
    elif os.path.isdir(source):
        folder = os.path.join(source, "domains") if is_snapshot(source) else source
        if not os.path.isdir(folder):
            return [], ()
    else:
        if not os.path.exists(source):
            raise SourceError(source, "no such file or directory")
        return [read_domain_file(source)], ()
    guests, problems = read_domain_dir_partial(folder)
    return guests, tuple(problems)


# -- audit: one host and the guests of several sources ------------------------------------------

_UTF8_BOM = b"\xef\xbb\xbf"
_TAG_NAME = re.compile(rb"<([A-Za-z_][\w.:-]*)")


def _first_tag(data: bytes) -> bytes | None:
    """The name of the first element, after the XML declaration, processing instructions and
    comments; ``None`` when something else comes first.  A linear scan: a regular expression
    with a repeated lazy group here backtracks exponentially over many comments."""
    i = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    while True:
        while i < len(data) and data[i:i + 1].isspace():
            i += 1
        for opening, closing in ((b"<?", b"?>"), (b"<!--", b"-->")):
            if data.startswith(opening, i):
                end = data.find(closing, i + len(opening))
                if end < 0:
                    return None
                i = end + len(closing)
                break
        else:
            m = _TAG_NAME.match(data, i)
            return m.group(1) if m else None


# -- snapshot.json ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """``snapshot.json`` of a snapshot: who captured what, where and when."""

    path: str
    numaguard_version: str
    hostname: str | None
    captured_at: str
    kernel_release: str | None
    domains_copied: int
    domains_skipped: tuple[tuple[str, str], ...]    # (file name, why)
    #: running guests, oldest QEMU first; ``None`` when none was running (or it is unknown)
    start_order: tuple[str, ...] | None
    #: the libvirt URI it was read through (``None``: this machine's files)
    source: str | None = None
    #: the guests that were running, when the snapshot was taken through libvirt
    running: tuple[str, ...] | None = None


_CAPTURED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


def _field(obj: dict[str, Any], key: str, kind: type, path: str,
           *, optional: bool = False, where: str = "") -> Any:
    name = f"{where}{key}"
    if key not in obj:
        if optional:
            return None
        raise ParseError("missing", field=name, path=path)
    value = obj[key]
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        import json

        want = {str: "a string", int: "an integer", list: "a list", dict: "an object"}
        raise ParseError(f"expected {want.get(kind, kind)}{' or null' if optional else ''}, "
                         f"got {json.dumps(value)[:40]}", field=name, path=path)
    return value


def read_snapshot_meta(snapshot: str) -> SnapshotMeta | None:
    """``SNAPSHOT/snapshot.json``, checked; ``None`` for a snapshot made before it existed.
    Anything malformed is a :class:`ParseError` naming the file and the field."""
    import json  # only a snapshot has this file; topology and guests need no JSON reader

    from numaguard.readers.files import read_optional_text

    path = os.path.join(snapshot, SNAPSHOT_META)
    text = read_optional_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not JSON: {exc.msg}", field="json", path=path,
                         line=exc.lineno) from None
    except RecursionError:
        raise ParseError("nested too deeply", field="json", path=path) from None
    if not isinstance(data, dict):
        raise ParseError("expected a JSON object", field="json", path=path)
    version = _field(data, "schema_version", int, path)
    if version != SNAPSHOT_SCHEMA:
        raise ParseError(f"unknown version {version} (this numaguard reads "
                         f"{SNAPSHOT_SCHEMA})", field="schema_version", path=path)
    captured = _field(data, "captured_at", str, path)
    if not _CAPTURED_AT.fullmatch(captured):
        raise ParseError(f"expected UTC time such as 2026-12-01T10:31:15Z, got {captured!r}",
                         field="captured_at", path=path)
    domains = _field(data, "domains", dict, path)
    copied = _field(domains, "copied", int, path, where="domains.")
    if copied < 0:
        raise ParseError(f"expected a count, got {copied}", field="domains.copied", path=path)
    skipped: list[tuple[str, str]] = []
    for i, item in enumerate(_field(domains, "skipped", list, path, where="domains.")):
        where = f"domains.skipped[{i}]."
        if not isinstance(item, dict):
            raise ParseError("expected an object", field=where.rstrip("."), path=path)
        skipped.append((_field(item, "file", str, path, where=where),
                        _field(item, "reason", str, path, where=where)))
    order = _field(data, "start_order", list, path, optional=True)
    if order is not None:
        for i, name in enumerate(order):
            if not isinstance(name, str) or not name:
                raise ParseError(f"expected a guest name, got {json.dumps(name)[:40]}",
                                 field=f"start_order[{i}]", path=path)
            if name in order[:i]:
                raise ParseError(f"{name!r} listed twice", field=f"start_order[{i}]",
                                 path=path)
    running = _field(data, "running", list, path, optional=True)
    for i, name in enumerate(running or ()):
        if not isinstance(name, str) or not name:
            raise ParseError(f"expected a guest name, got {json.dumps(name)[:40]}",
                             field=f"running[{i}]", path=path)
    return SnapshotMeta(path, _field(data, "numaguard_version", str, path),
                        _field(data, "hostname", str, path, optional=True), captured,
                        _field(data, "kernel_release", str, path, optional=True), copied,
                        tuple(skipped), tuple(order) if order else None,
                        _field(data, "source", str, path, optional=True),
                        tuple(running) if running is not None else None)


def _is_topology_file(path: str) -> bool:
    """Whether a file named as an audit SOURCE is a topology (a capabilities XML or ``numactl
    -H`` text) rather than a domain XML.  It is decided by what the file holds, and anything
    that is neither topology is read as a domain XML, so an empty, binary, truncated or
    otherwise broken file is an error naming it, never silently taken for a host source."""
    data = read_bytes(path)
    if _looks_like_numactl(data):
        return True
    if not _looks_like_xml(data):
        _check_text(data, path, "neither a domain XML, a capabilities XML nor numactl -H text")
        raise SourceError(path, "neither a domain XML, a capabilities XML nor numactl -H "
                          "text (it does not start with '<' or 'available:')")
    return _first_tag(data) == b"capabilities"


def _split_source(source: str) -> tuple[str | None, str | None, list[ListedFile]]:
    """(host source or ``None``, sysfs root for host facts or ``None``, domain XML files, each
    with its real path)."""
    from numaguard.readers.domains import ListedFile
    from numaguard.readers.domains import list_domain_files_keyed as list_domain_files

    if os.path.isdir(source):
        if is_snapshot(source):
            host_dir = os.path.join(source, "host")
            domains = os.path.join(source, "domains")
            files = list_domain_files(domains) if os.path.isdir(domains) else []
            if not os.path.isdir(host_dir):
                return None, None, files
            return host_dir, facts_root(source), files
        if _is_sysfs_root(source):
            return source, facts_root(source), []
        files = list_domain_files(source)
        topology = [f for f in files if os.path.basename(f.path) == CAPABILITIES_FILE]
        if topology or os.path.isfile(os.path.join(source, NUMACTL_FILE)):
            # a flat folder: capabilities.xml or numactl-H.txt beside the domain XMLs
            return source, None, [f for f in files if f not in topology]
        return None, None, files
    if not os.path.exists(source):
        raise SourceError(source, "no such file or directory")
    if _is_topology_file(source):
        return source, None, []
    return None, None, [ListedFile(source, os.path.realpath(source), plain=False)]


def read_paths(sources: list[str] | tuple[str, ...]) -> Inventory:
    """The host and guests of one or several SOURCE paths.

    The first source that yields a topology is the host (a snapshot's ``host/``, a sysfs root, a
    ``numactl -H`` file, a capabilities XML, or a folder holding one of those beside domain
    XMLs); guests come from every source.  A file named twice counts once; two different files
    defining the same guest name are an error, as in libvirt.  A domain XML found in a folder
    that cannot be read or is not a valid domain is a :class:`~numaguard.model.inventory.Problem`
    of the inventory and the other guests are still read; a domain XML named on its own is an
    error (as is a folder none of whose files can be read).
    """
    from numaguard.readers.domains import read_domain_files_partial
    from numaguard.readers.hostfacts import kernel_release, min_free_kbytes

    host_source: str | None = None
    host_arg: str | None = None
    facts_root: str | None = None
    meta: SnapshotMeta | None = None
    files: list[str] = []
    seen: set[str] = set()
    plain: set[str] = set()
    named: set[str] = set()
    for source in sources:
        host_part, root, domain_files = _split_source(source)
        if host_source is None and host_part is not None:
            host_source, facts_root, host_arg = host_part, root, source
            if os.path.isdir(source) and is_snapshot(source):
                meta = read_snapshot_meta(source)
        for f in domain_files:
            if f.real not in seen:
                seen.add(f.real)
                files.append(f.path)
                if f.plain:
                    plain.add(f.path)
                if f.path == source:
                    named.add(f.path)
    if host_source is None:
        raise SourceError(", ".join(sources), "no host topology among the sources: add a "
                          "snapshot, a sysfs root, a numactl -H file or a capabilities XML "
                          "(or run without SOURCE on the hypervisor)")
    host = read_host_dir(host_source) if os.path.isdir(host_source) else read_host_file(host_source)
    guests, problems = read_domain_files_partial(files, listed=plain, strict=named)
    facts = HostFacts(kernel_release(facts_root) if facts_root is not None else None,
                      min_free_kbytes=min_free_kbytes(facts_root) if facts_root else None)
    live: list[Guest] = []
    if meta is not None and host_arg is not None and meta.running is not None:
        live, more = _live_guests(host_arg)   # a snapshot taken through libvirt (-c URI)
        problems += more
    return Inventory(host, tuple(guests), facts, origin=", ".join(sources),
                     start_order=meta.start_order if meta is not None else None,
                     host_source=host_arg, problems=tuple(problems),
                     running=frozenset(meta.running) if meta and meta.running is not None
                     else None, live_guests=tuple(live))


#: the running guests' live XMLs in a snapshot taken through libvirt (writers/snapshot.py)
LIVE_DIR = "live"


def _live_guests(snapshot: str) -> tuple[list[Guest], list[Problem]]:
    from numaguard.readers.domains import read_domain_dir_partial

    folder = os.path.join(snapshot, LIVE_DIR)
    return read_domain_dir_partial(folder) if os.path.isdir(folder) else ([], [])


def read_this_machine() -> Inventory:
    """This machine without libvirt: ``/sys``, ``/proc``, ``/etc/libvirt/qemu``, numad."""
    from numaguard.readers.domains import read_domain_dir_partial

    host = load_host(None)
    if not os.path.isdir(LIBVIRT_QEMU_DIR):
        raise SourceError(LIBVIRT_QEMU_DIR, "no such directory (is libvirt installed here? "
                          "name a snapshot, a domain XML or a folder of them)")
    guests, problems = read_domain_dir_partial(LIBVIRT_QEMU_DIR)
    return Inventory(host, tuple(guests), this_machine_facts(), live=True,
                     problems=tuple(problems))


def this_machine_facts() -> HostFacts:
    """The kernel release and numad of this machine (its watermarks come from the live
    ``/proc/zoneinfo`` the sysfs reader reads, so ``min_free_kbytes`` is not needed)."""
    from numaguard.readers.hostfacts import kernel_release, numad_installed

    return HostFacts(kernel_release(LIVE_ROOT), numad_installed())


def command_refs(inventory: Inventory) -> Any:
    """How printed ``numaguard fix`` lines name the guests of *inventory*
    (:class:`~numaguard.core.rules.CommandRefs`): by name on this machine, by name and ``-c
    URI`` through libvirt; else by their domain XML file, plus ``--host SOURCE`` unless the
    file lies in that snapshot's ``domains/``."""
    from numaguard.core.rules import LIVE_REFS, CommandRefs

    if inventory.uri is not None:
        return CommandRefs(connect=inventory.uri)
    if inventory.live:
        return LIVE_REFS
    host = inventory.host_source
    paths = {g.name: g.source for g in inventory.guests if g.source}
    if host is None:
        return CommandRefs(None, paths)
    domains = os.path.join(os.path.abspath(host), "domains")
    folders = {os.path.dirname(p) for p in paths.values()}   # a snapshot: one folder
    inside = all(os.path.abspath(folder) == domains for folder in folders)
    return CommandRefs(None if inside else host, paths)


# -- the Source interface -----------------------------------------------------------------------

class Source:
    """One place an :class:`~numaguard.model.inventory.Inventory` is read from.

    ``label`` names it for people (a path, "this machine", a libvirt URI); :meth:`read` reads it
    now (each call reads again: a source is a place, not a cache)."""

    label = "?"

    def read(self) -> Inventory:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r})"


class LocalSource(Source):
    """This machine through its files: ``/sys``, ``/proc`` and ``/etc/libvirt/qemu``."""

    label = "this machine"

    def read(self) -> Inventory:
        return read_this_machine()


class PathSource(Source):
    """Snapshots, sysfs roots, topology files and domain XMLs (:func:`read_paths`)."""

    def __init__(self, paths: list[str] | tuple[str, ...]) -> None:
        self.paths = tuple(paths)
        self.label = ", ".join(self.paths)

    def read(self) -> Inventory:
        return read_paths(self.paths)


class LibvirtSource(Source):
    """A libvirt URI (:class:`numaguard.readers.libvirt_api.LibvirtReader`).

    The guests always come from libvirt.  For a QEMU URI of this machine (``qemu:///system``,
    ``qemu:///session``, ``qemu+unix:///…``: no host part) the topology and the host facts
    come from this machine's sysfs and procfs, as without ``-c``: libvirt's capabilities have
    no swap, no free hugepages, no ``numa_balancing`` and no kernel release, and the audit
    weighs all of them.  For any other URI (``qemu+ssh://HOST/system``, ``test:///default``)
    they come from libvirt's capabilities and ``virNodeGetCellsFreeMemory``."""

    def __init__(self, uri: str) -> None:
        self.uri = self.label = uri

    def read(self) -> Inventory:
        from dataclasses import replace

        from numaguard.readers.libvirt_api import LibvirtReader

        with LibvirtReader(self.uri) as reader:
            inventory = reader.read()
        if not is_this_machine(self.uri):
            return with_free_memory(inventory)
        facts = replace(this_machine_facts(), free_bytes=inventory.facts.free_bytes)
        return replace(inventory, host=load_host(None), facts=facts)


def with_free_memory(inventory: Inventory) -> Inventory:
    """The inventory with each node's free memory from ``facts.free_bytes`` (libvirt's
    ``virNodeGetCellsFreeMemory``, which its capabilities do not carry), where it has one."""
    from dataclasses import replace

    free = dict(inventory.facts.free_bytes or ())
    if not free:
        return inventory
    nodes = tuple(replace(n, mem_free=min(free[n.id], n.mem_total)) if n.id in free else n
                  for n in inventory.host.nodes)
    return replace(inventory, host=replace(inventory.host, nodes=nodes))


def live_root(source: Source, inventory: Inventory) -> str | None:
    """Where *source*'s live files are (``/proc``, the cgroups, libvirt's pid files:
    :mod:`numaguard.readers.live`): ``/`` for this machine (no SOURCE, or its system QEMU
    driver: ``qemu:///system``, ``qemu+unix:///system``), a snapshot's ``host/`` tree; ``None``
    for a remote URI, another driver of this machine, or a path without them.

    Only the system driver keeps its pid files in ``/run/libvirt/qemu`` (the run folder
    :func:`numaguard.readers.live.read_live` reads); ``qemu:///session`` keeps them in
    ``$XDG_RUNTIME_DIR/libvirt/qemu/run`` (libvirt's src/qemu/qemu_conf.c
    ``virQEMUDriverConfigNew``: ``stateDir``), where a session guest named like a system one
    would be read as the system one's process."""
    if isinstance(source, LocalSource):
        return LIVE_ROOT
    if isinstance(source, LibvirtSource):
        from urllib.parse import urlsplit

        system = urlsplit(source.uri).path.rstrip("/") == "/system"
        return LIVE_ROOT if is_this_machine(source.uri) and system else None
    where = inventory.host_source
    if where is not None and os.path.isdir(where) and is_snapshot(where):
        where = os.path.join(where, "host")
    return where if where is not None and os.path.isdir(where) else None


def has_live_files(root: str, run_dir: str = "run/libvirt/qemu") -> bool:
    """Whether *root* holds libvirt's run folder (its guests' pid files)."""
    return os.path.isdir(os.path.join(root, run_dir))


def is_this_machine(uri: str) -> bool:
    """Whether *uri* is the QEMU driver of this machine (libvirt's URI syntax,
    https://libvirt.org/uri.html: ``driver[+transport]://[user@][host][:port]/path``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    driver, _, transport = parts.scheme.partition("+")
    return driver == "qemu" and transport in ("", "unix") and not parts.hostname


#: where libvirtd listens for qemu:///system (libvirt's src/remote/remote_sockets.c: the
#: runstatedir, /run on Debian; /var/run is a link to it there but not everywhere)
LIBVIRT_SOCKETS = ("/run/libvirt/libvirt-sock", "/var/run/libvirt/libvirt-sock")
SYSTEM_URI = "qemu:///system"


def default_uri(environ: Mapping[str, str], sockets: tuple[str, ...] | None = None
                ) -> str | None:
    """The URI a command without SOURCE reads: ``LIBVIRT_DEFAULT_URI`` when set (as virsh does),
    else ``qemu:///system`` when libvirt-python is installed and libvirtd's socket exists, else
    ``None`` (this machine's files)."""
    uri = environ.get("LIBVIRT_DEFAULT_URI")
    if uri:
        return uri
    import importlib.util

    if importlib.util.find_spec("libvirt") is None:
        return None
    sockets = LIBVIRT_SOCKETS if sockets is None else sockets
    return SYSTEM_URI if any(os.path.exists(s) for s in sockets) else None


def open_source(paths: list[str] | tuple[str, ...] = (), connect: str | None = None, *,
                environ: Mapping[str, str] | None = None) -> Source:
    """The source a command reads: ``-c URI``, else the SOURCE paths, else libvirt when it runs
    here (:func:`default_uri`), else this machine's files."""
    if connect is not None:
        if paths:
            raise SourceError(connect, "give SOURCE paths or -c/--connect, not both")
        return LibvirtSource(connect)
    if paths:
        return PathSource(paths)
    uri = default_uri(os.environ if environ is None else environ)
    return LibvirtSource(uri) if uri is not None else LocalSource()


def live_state(source: Source, inventory: Inventory) -> LiveState | None:
    """What *source*'s running guests hold now (:func:`numaguard.readers.live.read_live`),
    where it has live files (:func:`live_root` with libvirt's run folder): this machine, a QEMU
    URI of it, a snapshot with captured live files; ``None`` elsewhere (a remote URI, plain
    domain XML files)."""
    root = live_root(source, inventory)
    if root is None or not has_live_files(root):
        return None
    from numaguard.readers.live import read_live, running_of

    return read_live(root, running_of(inventory))

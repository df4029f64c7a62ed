"""What ``numaguard fix GUEST|FILE`` works on: the domain XML file, and the host around it.

The file is GUEST|FILE itself when that is a path, else the domain XML whose ``<name>`` is
GUEST in the snapshot given with ``--host SNAPSHOT`` or in ``/etc/libvirt/qemu``.

The host (for the nodeset check and the re-audit) is ``--host SOURCE`` when given (an explicit
choice beats an inferred one), else the snapshot the file lives in (``SNAP/domains/FILE``), else
this machine.  When an inferred host cannot be read, the host checks are skipped with a note;
a ``--host`` that cannot be read is an error.  The other guests for the re-audit come from the
same snapshot, or from ``/etc/libvirt/qemu`` for a file there; an invalid one is skipped with a
note.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from numaguard.domxml.document import DomainDocument
from numaguard.errors import InvalidDocument, NumaguardError, ParseError, SourceError
from numaguard.model.guest import Guest
from numaguard.model.inventory import HostFacts, Inventory
from numaguard.model.topology import Host
from numaguard.readers import sources
from numaguard.readers.domains import list_domain_files, read_domain_file
from numaguard.readers.files import read_bytes


@dataclass(frozen=True, slots=True)
class FixTarget:
    path: str
    #: the snapshot directory the file lives in (``SNAP/domains/FILE``), if any
    snapshot: str | None = None


def _domain_name(path: str) -> str | None:
    try:
        doc = DomainDocument(read_bytes(path), path=path)
    except (ParseError, SourceError):
        return None
    text = doc.root.findtext("name")
    return text.strip() if text else None


def find_domain_file(folder: str, name: str) -> str | None:
    """The ``*.xml`` in *folder* whose ``<name>`` is *name* (``NAME.xml`` is tried first)."""
    files = list_domain_files(folder)
    first = os.path.join(folder, f"{name}.xml")
    for path in sorted(files, key=lambda p: p != first):
        if _domain_name(path) == name:
            return path
    return None


def _snapshot_of(path: str) -> str | None:
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(folder) != "domains":
        return None
    snap = os.path.dirname(folder)
    return snap if sources.is_snapshot(snap) else None


def resolve_target(arg: str, *, host_source: str | None = None) -> FixTarget:
    if os.path.isdir(arg):
        raise SourceError(arg, "is a directory: give a domain XML file or a guest name")
    if os.path.exists(arg):
        path = arg
    elif os.sep in arg or arg.endswith(".xml"):
        raise SourceError(arg, "no such file")
    else:
        if host_source is not None and os.path.isdir(host_source) and \
                sources.is_snapshot(host_source):
            folder = os.path.join(host_source, "domains")
        else:
            folder = sources.LIBVIRT_QEMU_DIR
        if not os.path.isdir(folder):
            raise SourceError(folder, f"no such directory to look for guest {arg!r} in (give "
                              "the domain XML file, --host SNAPSHOT, or --apply for libvirt)")
        found = find_domain_file(folder, arg)
        if found is None:
            raise SourceError(folder, f"no domain XML with <name>{arg}</name> here (give the "
                              "domain XML file, --host SNAPSHOT, or --apply for libvirt)")
        path = found
    return FixTarget(path, _snapshot_of(path))


def other_guests(folder: str, *, exclude: str | None = None) -> tuple[list[Guest], list[str]]:
    """Every valid domain in *folder* but the file *exclude*; notes for the invalid ones."""
    guests: list[Guest] = []
    notes: list[str] = []
    skip = os.path.realpath(exclude) if exclude else None
    seen: set[str] = set()
    for path in list_domain_files(folder):
        if skip is not None and os.path.realpath(path) == skip:
            continue
        try:
            g = read_domain_file(path)
        except (InvalidDocument, ParseError):
            notes.append(f"re-audit: skipped {path}: not a valid domain (numaguard guests "
                         f"{path} says why)")
            continue
        if g.name not in seen:
            seen.add(g.name)
            guests.append(g)
    return guests, notes


def fix_world(target: FixTarget | None, host_source: str | None
              ) -> tuple[Inventory | None, str | None, list[str]]:
    """The host and the other guests for ``numaguard fix`` (see the module docstring):
    ``(inventory, why the host is unknown, notes)``; the inventory is ``None`` when the host
    cannot be read (then the nodeset check and the re-audit are skipped)."""
    from numaguard.readers.hostfacts import kernel_release

    notes: list[str] = []
    folder: str | None = None
    host: Host | None = None
    facts = HostFacts()
    start_order: tuple[str, ...] | None = None
    unknown: str | None = None
    snapshot = host_source if host_source is not None else (
        target.snapshot if target is not None else None)
    if snapshot is not None:
        try:
            host = sources.load_host(snapshot)         # explicit --host: errors are errors
            root = sources.facts_root(snapshot)
            facts = HostFacts(kernel_release(root) if root else None)
        except NumaguardError as exc:
            if host_source is not None:
                raise
            unknown = f"{exc}"
        if os.path.isdir(snapshot) and sources.is_snapshot(snapshot):
            folder = os.path.join(snapshot, "domains")
    else:
        try:
            host = sources.load_host(None)
            facts = sources.this_machine_facts()
        except NumaguardError as exc:
            unknown = f"this machine: {exc}"
    if folder is None and target is not None and os.path.realpath(
            os.path.dirname(os.path.abspath(target.path))) == os.path.realpath(
            sources.LIBVIRT_QEMU_DIR):
        folder = sources.LIBVIRT_QEMU_DIR
    others: list[Guest] = []
    if folder is not None and os.path.isdir(folder):
        others, notes = other_guests(folder, exclude=target.path if target else None)
    if host is None:
        return None, unknown, notes
    return Inventory(host, tuple(others), facts, start_order=start_order,
                     host_source=host_source), None, notes

"""A host read through libvirt (``-c/--connect URI``): every domain, the capabilities, free memory.

:class:`LibvirtReader` returns one :class:`~numaguard.model.inventory.Inventory`.  The calls it
makes (libvirt's public API, ``include/libvirt/libvirt-*.h``; libvirt-python names):

``virConnectOpen`` (``libvirt.open(uri)``)
    Read-write, as ``virsh`` connects: on ``qemu:///system`` that is the socket
    ``/run/libvirt/libvirt-sock``, which libvirtd gives to the ``unix_sock_group`` with
    ``unix_sock_rw_perms`` (Debian: group ``libvirt``, 0770; ``/etc/libvirt/libvirtd.conf``).
    A refused connection, a failed authentication or an unknown URI is one
    :class:`LibvirtError` line naming the URI.
``virConnectGetCapabilities``
    ``<host><topology><cells>``: cells, page pools, distances, CPUs, parsed by
    :func:`numaguard.domxml.capabilities.parse_capabilities` (its docstring lists the facts).
``virNodeGetCellsFreeMemory(start, max)`` (``getCellsFreeMemory``)
    Free memory per cell.  The API documents **bytes** (``src/libvirt-host.c``: "the free
    memory in bytes for each cell"); the qemu driver returns the node's ``MemFree`` in bytes
    (measured here: equal to ``node0/meminfo`` MemFree).  The test driver ``test:///default``
    returns each cell's *total* in KiB instead (``testNodeGetCellsFreeMemory`` in
    ``src/test/test_driver.c`` copies ``cells[i].mem``); the code follows the API and keeps
    the figures as bytes in ``HostFacts.free_bytes``.  A driver without it
    (``VIR_ERR_NO_SUPPORT``) gives ``None``.
``virConnectListAllDomains(0)`` (``listAllDomains(0)``)
    Every domain: active and inactive, persistent and transient (flags 0 filter nothing).
``virDomainIsActive``, ``virDomainIsPersistent``, ``virDomainGetXMLDesc``
    Per domain: the persistent definition ``XMLDesc(VIR_DOMAIN_XML_INACTIVE)`` (what the next
    boot uses; without ``VIR_DOMAIN_XML_SECURE``, so secrets such as ``<graphics passwd>`` are
    left out — nothing here needs them) and, for a running domain, the live one
    ``XMLDesc(0)`` (what QEMU was started with).  A transient domain has no persistent
    definition: its live XML stands for both.
``virDomainGetID``
    Local to the handle (no call to the daemon).  The qemu and test drivers number running
    domains from one counter that only grows (``qemuDriverAllocateID``, ``src/qemu/qemu_conf.c``;
    libvirtd restarts it above the highest running ID, ``qemuStateInitialize``;
    ``testDomainStartState``, ``src/test/test_driver.c``), so ascending IDs are the start
    order.  For other drivers ``start_order`` is ``None``.

A domain that disappears between the listing and its reads (``VIR_ERR_NO_DOMAIN`` on any call)
is skipped with a note in ``Inventory.notes``; a domain whose XML numaguard cannot read is an
``inventory.Problem`` and the other guests are still read.

``import libvirt`` happens on first use (libvirt-python is optional: ``numaguard[libvirt]``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Self

from numaguard.domxml.capabilities import parse_capabilities
from numaguard.domxml.document import DomainDocument
from numaguard.domxml.extract import extract_guest
from numaguard.errors import InvalidDocument, NumaguardError, ParseError
from numaguard.model.guest import Guest
from numaguard.model.inventory import HostFacts, Inventory, Problem
from numaguard.model.topology import Host

DEFAULT_URI = "qemu:///system"

#: ``virConnectGetType`` of the drivers whose domain IDs follow the start order (module docstring).
_ORDERED_DRIVERS = frozenset({"QEMU", "TEST"})


class LibvirtError(NumaguardError):
    """A libvirt call failed: one line naming the URI."""


class DomainVanished(LibvirtError):
    """The domain was destroyed or undefined while it was being read (``VIR_ERR_NO_DOMAIN``)."""

    def __init__(self, uri: str, name: str) -> None:
        super().__init__(f"{uri}: domain {name} vanished while being read; skipped")
        self.name = name


def import_libvirt(needed_for: str = "reading through libvirt", otherwise: str = "") -> Any:
    """``import libvirt``, or a :class:`NumaguardError` saying how to install it (and
    *otherwise*, what to do instead: ", or use ...")."""
    try:
        import libvirt  # type: ignore[import-untyped]
    except ImportError as exc:
        raise NumaguardError(f"{needed_for} needs libvirt-python ({exc}); install it with "
                             "pip install 'numaguard[libvirt]' (needs libvirt-dev and "
                             f"pkg-config){otherwise}") from None
    return libvirt


def _silent(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; ours are reported once, as one line."""


class LibvirtConnection:
    """One open connection to *uri*; every call through :meth:`_call` turns a libvirt error
    into one :class:`LibvirtError` line naming the URI.  A context manager."""

    def __init__(self, uri: str | None = None, *,
                 needed_for: str = "reading through libvirt", otherwise: str = "") -> None:
        self.uri = uri or DEFAULT_URI
        self.libvirt = import_libvirt(needed_for, otherwise)
        self.libvirt.registerErrorHandler(_silent, None)
        self.conn: Any = self._call(self.libvirt.open, self.uri)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(self.libvirt.libvirtError):
                self.conn.close()
            self.conn = None

    def _message(self, exc: Any) -> str:
        return f"{self.uri}: {exc.get_error_message() or exc}".splitlines()[0]

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self.libvirt.libvirtError as exc:
            raise LibvirtError(self._message(exc)) from None

    def label(self, name: str) -> str:
        """How a domain is named in messages and ``Guest.source``: ``URI domain NAME``."""
        return f"{self.uri} domain {name}"

    def capabilities(self) -> bytes:
        xml: str = self._call(self.conn.getCapabilities)
        return xml.encode("utf-8")


class DomainXMLs(NamedTuple):
    """One domain as libvirt holds it: ``persistent`` is ``XMLDesc(VIR_DOMAIN_XML_INACTIVE)``
    (for a transient domain: its live XML), ``live`` is ``XMLDesc(0)`` of a running domain
    (``None`` when shut off)."""

    name: str
    persistent: bytes
    live: bytes | None
    running: bool
    transient: bool = False
    #: ``virDomainGetID`` of a running domain (``None`` when shut off)
    id: int | None = None


class LibvirtReader(LibvirtConnection):
    """The host behind *uri* as one :class:`Inventory` (``with LibvirtReader(uri) as r:
    inv = r.read()``)."""

    def list_domains(self) -> list[Any]:
        """Handles of every domain (``listAllDomains(0)``), in libvirt's order."""
        return list(self._call(self.conn.listAllDomains, 0))

    def read_domain(self, dom: Any) -> DomainXMLs:
        """The XML and state of one listed domain; :class:`DomainVanished` when it is gone."""
        name: str = dom.name()  # kept in the handle: no call to the daemon
        lv = self.libvirt
        try:
            running = bool(dom.isActive())
            transient = not dom.isPersistent()
            live = dom.XMLDesc(0).encode("utf-8") if running or transient else None
            persistent = live if transient else dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE).encode(
                "utf-8")
            dom_id = dom.ID() if running else None
        except lv.libvirtError as exc:
            if exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN:
                raise DomainVanished(self.uri, name) from None
            raise LibvirtError(self._message(exc)) from None
        assert persistent is not None
        return DomainXMLs(name, persistent, live if running else None, running, transient,
                          dom_id if dom_id is None or dom_id >= 0 else None)

    def domain_xmls(self, domains: Iterable[Any] | None = None,
                    notes: list[str] | None = None) -> Iterator[DomainXMLs]:
        """:meth:`read_domain` of every listed domain (default: :meth:`list_domains`); a
        vanished domain is left out (its line appended to *notes* when given)."""
        for dom in self.list_domains() if domains is None else domains:
            try:
                yield self.read_domain(dom)
            except DomainVanished as gone:
                if notes is not None:
                    notes.append(str(gone))

    def read_domain_xml(self, name: str) -> DomainXMLs:
        """:meth:`read_domain` of the domain named *name* (or with that UUID)."""
        lv = self.libvirt
        for lookup in (self.conn.lookupByName, self.conn.lookupByUUIDString):
            try:
                dom = lookup(name)
            except lv.libvirtError:
                continue
            return self.read_domain(dom)
        raise LibvirtError(f"{self.uri}: no domain named {name!r}")

    def host(self) -> Host:
        """The topology from the capabilities (a :class:`ParseError` naming the URI when it
        has none, e.g. a custom ``test:///file.xml``)."""
        return parse_capabilities(self.capabilities(), path=f"{self.uri} capabilities")

    def free_bytes(self, host: Host) -> tuple[tuple[int, int], ...] | None:
        """``(node, bytes)`` for every node of *host* (``getCellsFreeMemory``; module
        docstring), ``None`` when the driver has no such call."""
        ids = sorted(n.id for n in host.nodes)
        if not ids:
            return ()
        lv = self.libvirt
        try:
            if ids == list(range(len(ids))):
                free = list(self.conn.getCellsFreeMemory(0, len(ids)))
            else:  # sparse node ids: one cell at a time
                free = [self.conn.getCellsFreeMemory(i, 1)[0] for i in ids]
        except lv.libvirtError as exc:
            if exc.get_error_code() == lv.VIR_ERR_NO_SUPPORT:
                return None
            raise LibvirtError(self._message(exc)) from None
        if len(free) != len(ids):
            raise LibvirtError(f"{self.uri}: getCellsFreeMemory returned {len(free)} cells "
                               f"for {len(ids)} host nodes")
        return tuple(zip(ids, (int(b) for b in free), strict=True))

    def read(self) -> Inventory:
        """The host, its facts, every domain (module docstring)."""
        return self.inventory(self.list_domains())

    def inventory(self, domains: Iterable[Any]) -> Inventory:
        """:meth:`read` over a given listing (handles from :meth:`list_domains`)."""
        host = self.host()
        facts = HostFacts(free_bytes=self.free_bytes(host))
        notes: list[str] = []
        problems: list[Problem] = []
        guests: list[Guest] = []
        live_guests: list[Guest] = []
        started: list[DomainXMLs] = []
        for d in self.domain_xmls(domains, notes):
            label = self.label(d.name)
            guest = self._guest(d.persistent, label, problems)
            if guest is not None:
                guests.append(guest)
            if d.live is not None:
                live = guest if d.transient else self._guest(d.live, f"{label} live XML",
                                                              problems)
                if live is not None:
                    live_guests.append(live)
            if d.running:
                started.append(d)
        return Inventory(
            host, guests=tuple(guests), facts=facts, origin=self.uri, uri=self.uri, live=True,
            running=frozenset(d.name for d in started),
            start_order=self.start_order(started),
            live_guests=tuple(live_guests), notes=tuple(notes), problems=tuple(problems))

    def start_order(self, running: Iterable[DomainXMLs]) -> tuple[str, ...] | None:
        """The running domains, oldest first, by domain ID for the drivers whose ID counter
        only grows (the module docstring); ``None`` for other drivers."""
        if self._call(self.conn.getType) not in _ORDERED_DRIVERS:
            return None
        return tuple(d.name for d in sorted(running, key=lambda d: (
            -1 if d.id is None else d.id, d.name)))

    @staticmethod
    def _guest(xml: bytes, label: str, problems: list[Problem]) -> Guest | None:
        try:
            return extract_guest(DomainDocument(xml, path=label))
        except ParseError as exc:
            problems.append(Problem(label, _unlocated(exc)))
        except InvalidDocument as exc:
            more = len(exc.problems) - 1
            problems.append(Problem(label, _unlocated(exc.problems[0])
                                    + (f" (and {more} more)" if more else "")))
        return None


def _unlocated(err: ParseError) -> str:
    """*err* without its path (a :class:`Problem` names the domain already)."""
    line = f"line {err.line}: " if err.line is not None else ""
    return f"{line}{err.field + ': ' if err.field else ''}{err.reason}"

"""What numaguard knows about one host: its topology and facts, its guests, and where they came
from.

Every source (:mod:`numaguard.readers.sources`: this machine, a snapshot, domain files, a
``numactl -H`` or capabilities file; :mod:`numaguard.readers.libvirt_api`: a libvirt URI) returns
one :class:`Inventory`, and ``audit``, ``simulate``, ``fix`` and ``snapshot`` take one.  It
replaces the three holders that carried "host + guests + facts" before (``AuditInput``,
``HostSide``, ``AuditContext``; issue 12).

Pure values: no paths are opened here; the strings in ``origin``, ``host_source`` and
:class:`Problem` only name where things came from, for people and for printed commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from numaguard.model.guest import Guest
from numaguard.model.topology import Host


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What some rules weigh beside the topology, when the source knows it (``None``: unknown).

    ``kernel_release``: ``uname -r`` (this machine, or a captured ``proc/sys/kernel/osrelease``);
    ``numad_installed``: only known for this machine; ``min_free_kbytes``: ``vm.min_free_kbytes``
    (the kernel's own unit, KiB), for watermarks when ``/proc/zoneinfo`` is not there;
    ``free_bytes``: free memory per host node as the source reported it at reading time
    (libvirt's ``virNodeGetCellsFreeMemory``, bytes), as ``(node, bytes)`` pairs."""

    kernel_release: str | None = None
    numad_installed: bool | None = None
    min_free_kbytes: int | None = None
    free_bytes: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """One input that could not be read while the others were: the inventory is incomplete.

    ``where`` names it (a file, or ``URI domain NAME``), ``line`` the line in it where known;
    ``message`` says why, in one line (``FILE:LINE: field: reason`` in all, as every error)."""

    where: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        at = f":{self.line}" if self.line is not None else ""
        return f"{self.where}{at}: {self.message}"


@dataclass(frozen=True, slots=True)
class Inventory:
    """One host as one source saw it.

    ``guests`` are the persistent definitions (what the next boot uses; for a transient domain,
    its only one).  ``live_guests``: the running definitions read from libvirt (what QEMU was
    started with), one per running guest whose source has it.  ``running``: the names of the
    guests that are running (``None``: the source cannot tell, e.g. a folder of XML files).
    ``start_order``: the running guests, oldest first, when known.  ``live``: the guests are
    named by libvirt (this machine, or a URI), so printed commands name them by name, not by
    file.  ``host_source``: the SOURCE argument the topology came from (``None``: this machine
    or libvirt).  ``notes``: things said while reading that change nothing (a domain that
    vanished mid-read); ``problems``: inputs that could not be read (see :class:`Problem`)."""

    host: Host
    guests: tuple[Guest, ...] = ()
    facts: HostFacts = field(default_factory=HostFacts)
    #: what it was read from, for people: "this machine", a path, or a libvirt URI
    origin: str = "this machine"
    #: the libvirt URI it was read through (``None``: files or sysfs)
    uri: str | None = None
    live: bool = False
    running: frozenset[str] | None = None
    start_order: tuple[str, ...] | None = None
    host_source: str | None = None
    live_guests: tuple[Guest, ...] = ()
    notes: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def complete(self) -> bool:
        """Every input the source listed was read."""
        return not self.problems

    def guest(self, name: str) -> Guest | None:
        for g in self.guests:
            if g.name == name:
                return g
        return None

    def live_guest(self, name: str) -> Guest | None:
        """The running definition of *name*, when the source read one."""
        for g in self.live_guests:
            if g.name == name:
                return g
        return None

    def is_running(self, name: str) -> bool | None:
        """Whether *name* runs (``None``: the source cannot tell)."""
        return None if self.running is None else name in self.running

    def with_guests(self, guests: tuple[Guest, ...]) -> Inventory:
        """The same host with other guests (a fix's "after", the planner's candidates)."""
        return replace(self, guests=tuple(guests))

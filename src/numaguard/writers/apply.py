"""``numaguard fix --apply``: the change made through libvirt, opt-in, checked at every step.

1. read the persistent definition (``XMLDesc(VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE)``,
   as ``virsh edit`` does: without SECURE libvirt leaves out secrets such as ``<graphics
   passwd>``, and defining that XML would drop them) and its sha256;
2. (the caller plans the edit on exactly those bytes, see :mod:`numaguard.fix`);
3. save the old XML to ``BACKUP_DIR/DOMAIN.numaguard-YYYYmmddTHHMMSS.xml`` (atomically, never
   over an existing file, mode 0600 as it holds the secrets) — ``virsh define`` of that file
   restores it;
4. just before defining, read the definition again: if its hash differs, someone changed the
   domain since step 1 and nothing is defined (the backup is removed again);
5. ``defineXML`` the edited XML, then read it back and compare the effective policies with the
   plan's (libvirt normalises the XML, so bytes are not compared);
6. live: only for a running guest in restrictive mode whose ``<memory>`` nodeset alone changed,
   ``setNumaParameters({nodeset}, VIR_DOMAIN_AFFECT_LIVE)``; anything else takes effect at the
   next cold boot (libvirt never changes a running guest's mode; src/qemu/qemu_driver.c).

``import libvirt`` happens only when ``--apply`` is used (the connection, its one-line errors and
the lazy import are :mod:`numaguard.readers.libvirt_api`'s).  Every libvirt error is
one line naming the URI (exit code 2).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from numaguard.cpuset import format_bitmap
from numaguard.domxml.document import DomainDocument
from numaguard.domxml.extract import extract_guest
from numaguard.errors import InvalidDocument, NumaguardError, ParseError
from numaguard.fix import FixPlan, effective_policies
from numaguard.readers.libvirt_api import LibvirtConnection, LibvirtError
from numaguard.writers.xml_patch import save_new, stamp


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class DomainXML:
    """One read of a domain's persistent definition."""

    name: str
    uuid: str
    xml: bytes
    digest: str
    active: bool
    label: str


@dataclass(frozen=True, slots=True)
class ApplyResult:
    backup: str
    active: bool
    live_nodeset: frozenset[int] | None    # set when the running guest took the new nodeset
    live_error: str | None = None


class LibvirtSession(LibvirtConnection):
    """A connection to one libvirt URI (``with LibvirtSession(uri) as s: ...``); the connection
    itself (``uri``, ``conn``, ``_call``, ``label``, ``capabilities``) is
    :class:`numaguard.readers.libvirt_api.LibvirtConnection`."""

    def __init__(self, uri: str | None = None) -> None:
        super().__init__(uri, needed_for="--apply", otherwise=", or use --virsh / --write")

    @property
    def _persistent(self) -> int:
        """XMLDesc flags of the persistent definition with its secrets (``virsh edit``)."""
        return int(self.libvirt.VIR_DOMAIN_XML_INACTIVE | self.libvirt.VIR_DOMAIN_XML_SECURE)

    def _lookup(self, name: str) -> Any:
        try:
            return self.conn.lookupByName(name)
        except self.libvirt.libvirtError:
            pass
        try:
            return self.conn.lookupByUUIDString(name)
        except self.libvirt.libvirtError:
            raise LibvirtError(f"{self.uri}: no domain named {name!r}") from None

    def read(self, name: str) -> DomainXML:
        """The persistent definition of domain *name* (a name or a UUID)."""
        dom = self._lookup(name)
        if not self._call(dom.isPersistent):
            raise LibvirtError(f"{self.uri}: domain {name!r} is transient: it has no persistent "
                               "definition to change")
        xml = self._call(dom.XMLDesc, self._persistent).encode("utf-8")
        real = self._call(dom.name)
        return DomainXML(real, self._call(dom.UUIDString), xml, sha256(xml),
                         bool(self._call(dom.isActive)), self.label(real))

    def apply(self, read: DomainXML, plan: FixPlan, *, backup_dir: str = ".",
              now: datetime | None = None) -> ApplyResult:
        """Steps 3-6 of the module docstring for *plan*, planned on *read*."""
        if plan.old != read.xml:
            raise NumaguardError(f"{read.label}: the plan was not made on the XML read from "
                                 "libvirt")
        safe = read.name.replace(os.sep, "_")
        if not os.path.isdir(backup_dir):
            raise NumaguardError(f"{backup_dir}: --backup-dir is not a directory")
        backup = save_new(backup_dir, f"{safe}.numaguard-{stamp(now)}", ".xml", read.xml)
        try:
            dom = self._lookup(read.uuid)
            current = self._call(dom.XMLDesc, self._persistent)
            if sha256(current.encode("utf-8")) != read.digest:
                raise NumaguardError(f"{read.label}: the domain's XML changed since it was "
                                     "read; nothing changed (run the command again)")
            self._call(self.conn.defineXML, plan.new.decode("utf-8"))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(backup)
            raise
        self._verify(read, plan, backup)
        dom = self._lookup(read.uuid)
        active = bool(self._call(dom.isActive))
        live = plan.live_nodeset
        if active and live is not None:
            try:
                self._call(dom.setNumaParameters,
                           {self.libvirt.VIR_DOMAIN_NUMA_NODESET: format_bitmap(live)},
                           self.libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except LibvirtError as exc:
                return ApplyResult(backup, active, None, str(exc))
            return ApplyResult(backup, active, live)
        return ApplyResult(backup, active, None)

    def pin(self, read: DomainXML, vcpus: Mapping[int, frozenset[int]],
            emulator: frozenset[int] | None, *, backup_dir: str = ".",
            now: datetime | None = None) -> str:
        """Pin vCPUs (*vcpus*: vCPU -> host CPUs) and QEMU's emulator threads in the persistent
        definition read as *read*, as ``virsh vcpupin/emulatorpin --config`` do:
        ``virDomainPinVcpuFlags`` / ``virDomainPinEmulator`` with ``VIR_DOMAIN_AFFECT_CONFIG``
        (libvirt.org/html/libvirt-libvirt-domain.html).  The XML as read is saved first in
        *backup_dir*; returns that file."""
        if not os.path.isdir(backup_dir):
            raise NumaguardError(f"{backup_dir}: --backup-dir is not a directory")
        dom = self._lookup(read.uuid)
        current = self._call(dom.XMLDesc, self._persistent)
        if sha256(current.encode("utf-8")) != read.digest:
            raise NumaguardError(f"{read.label}: the domain's XML changed since it was read; "
                                 "no pin changed (run the command again)")
        host_cpus = int(self._call(self.conn.getCPUMap)[0])
        wanted = [*vcpus.values(), *([emulator] if emulator else [])]
        if any(not cpus or max(cpus) >= host_cpus for cpus in wanted):
            raise NumaguardError(f"{read.label}: a pin names a CPU the host does not have (it "
                                 f"has {host_cpus}); no pin changed")
        backup = save_new(backup_dir, f"{read.name.replace(os.sep, '_')}.numaguard-"
                          f"{stamp(now)}", ".xml", read.xml)
        flags = self.libvirt.VIR_DOMAIN_AFFECT_CONFIG

        def cpumap(cpus: frozenset[int]) -> tuple[bool, ...]:
            return tuple(c in cpus for c in range(host_cpus))

        for vcpu, cpus in sorted(vcpus.items()):
            self._call(dom.pinVcpuFlags, vcpu, cpumap(cpus), flags)
        if emulator:
            self._call(dom.pinEmulator, cpumap(emulator), flags)
        return backup

    def _verify(self, read: DomainXML, plan: FixPlan, backup: str) -> None:
        dom = self._lookup(read.uuid)
        stored = self._call(dom.XMLDesc, self._persistent).encode("utf-8")
        try:
            now = extract_guest(DomainDocument(stored, path=read.label))
        except (InvalidDocument, ParseError) as exc:
            raise NumaguardError(f"{read.label}: defined, but the stored XML does not read "
                                 f"back ({str(exc).splitlines()[0]}); the old XML is in "
                                 f"{backup} (virsh define {backup} restores it)") from None
        if effective_policies(now) != effective_policies(plan.after):
            raise NumaguardError(f"{read.label}: defined, but libvirt stored a different "
                                 "<numatune> than numaguard asked for; the old XML is in "
                                 f"{backup} (virsh define {backup} restores it)")

"""A libvirt guest's NUMA-relevant configuration, after libvirt's defaults are applied."""

from __future__ import annotations

from dataclasses import dataclass, field

from numaguard.model.policy import MemoryPolicy, Placement


@dataclass(frozen=True, slots=True)
class VcpuPin:
    """``<cputune><vcpupin vcpu cpuset>``: host CPUs one vCPU may run on."""

    vcpu: int
    cpus: frozenset[int]


@dataclass(frozen=True, slots=True)
class HugepageBacking:
    """``<memoryBacking><hugepages><page size nodeset>``.

    ``size`` is in bytes; ``None`` means the host's default hugepage size (``<hugepages/>``
    with no ``<page>``).  ``cells`` names *guest* NUMA cells; ``None`` means every cell not
    named by another page element.
    """

    size: int | None
    cells: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class GuestCell:
    """A guest NUMA cell (``<cpu><numa><cell>``) with its effective memory policy.

    ``policy`` is the cell's ``<memnode>``, else the guest's ``<memory>`` policy, else ``None``.
    ``hugepage_size`` is the page size backing this cell (bytes, 0 for the host default), or
    ``None`` when the cell uses ordinary pages.
    """

    id: int
    cpus: frozenset[int]
    memory: int
    policy: MemoryPolicy | None
    hugepage_size: int | None = None
    #: the cell has its own ``<memnode>`` (else its policy follows ``<memory>``)
    memnode: bool = False


@dataclass(frozen=True, slots=True)
class Guest:
    """One domain.  ``memory`` is the maximum (``<memory>``, or the sum of the guest cells and
    memory devices as libvirt recomputes it); ``current_memory`` the balloon target, clamped to
    ``memory`` as libvirt does.  ``vcpus`` is the maximum vCPU count, ``vcpus_current`` the
    ``current`` attribute (defaults to the maximum)."""

    name: str
    uuid: str | None
    memory: int
    current_memory: int
    vcpus: int
    vcpus_current: int
    vcpu_placement: Placement
    cpuset: frozenset[int] | None
    pins: tuple[VcpuPin, ...] = ()
    emulatorpin: frozenset[int] | None = None
    policy: MemoryPolicy | None = None
    cells: tuple[GuestCell, ...] = ()
    hugepages: tuple[HugepageBacking, ...] = ()
    source: str | None = None
    #: ``<memoryBacking><allocation mode='immediate'/>``: QEMU preallocates all guest RAM at
    #: start (libvirt emits ``prealloc`` for it, as for huge pages; docs/qemu-argv.md)
    immediate: bool = False
    #: vCPU -> CPUs of its first ``<vcpupin>`` (so that vcpu_cpus is a look-up, not a search:
    #: the rules ask about every vCPU of every guest)
    _pinned: dict[int, frozenset[int]] = field(init=False, repr=False, compare=False)
    #: what :func:`numaguard.core.capacity.memory_units` made of this guest, kept by it: an
    #: audit asks once per rule pass, and verifying its fixes re-audits the host up to ten
    #: times with every other guest unchanged (the same objects)
    _units: object = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pinned: dict[int, frozenset[int]] = {}
        for pin in self.pins:
            pinned.setdefault(pin.vcpu, pin.cpus)
        object.__setattr__(self, "_pinned", pinned)
        object.__setattr__(self, "_units", None)

    def vcpu_cpus(self, vcpu: int) -> frozenset[int] | None:
        """Host CPUs a vCPU may run on: its vcpupin, else the ``<vcpu cpuset>``, else ``None``
        (anywhere)."""
        return self._pinned.get(vcpu, self.cpuset)

    @property
    def policies(self) -> tuple[MemoryPolicy | None, ...]:
        """The effective policy of each guest cell, or the guest policy when it has no cells."""
        if self.cells:
            return tuple(c.policy for c in self.cells)
        return (self.policy,)

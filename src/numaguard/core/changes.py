"""Changes to a guest's definition as typed values, and applying them to an inventory (pure).

A fix of the audit, a ``numaguard fix`` command line and (later) a plan of the planner are all
tuples of these values.  The core applies them to the model (:func:`apply_changes`: what the
host would be after them, for re-auditing and re-simulating); :mod:`numaguard.domxml.edit`
turns the memory ones into byte-exact edits of the domain XML and
:mod:`numaguard.writers.virsh` into ``virsh`` lines.

Each value names one guest and sets one thing, the way libvirt's XML says it:

* :class:`SetMemoryPolicy`: ``<numatune><memory mode nodeset>`` (placement static); guest NUMA
  cells without a ``<memnode>`` follow it (libvirt: a cell uses its memnode, else ``<memory>``;
  src/qemu/qemu_command.c);
* :class:`SetMemnode`: ``<numatune><memnode cellid mode nodeset>`` of one guest NUMA cell;
* :class:`SetMaxMemory`: ``<memory>`` (``<currentMemory>`` is clamped to it, as libvirt
  does: src/conf/domain_conf.c);
* :class:`PinVcpus`: ``<cputune><vcpupin vcpu cpuset>``;
* :class:`PinEmulator`: ``<cputune><emulatorpin cpuset>``.

The values are frozen and hashable: equal changes are one change, and a set of them is a plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from numaguard.model.guest import Guest, VcpuPin
from numaguard.model.inventory import Inventory
from numaguard.model.policy import MemoryMode, MemoryPolicy, Placement


@dataclass(frozen=True, slots=True)
class SetMemoryPolicy:
    """``<numatune><memory mode=… nodeset=…>`` with static placement."""

    guest: str
    mode: MemoryMode
    nodeset: frozenset[int]


@dataclass(frozen=True, slots=True)
class SetMemnode:
    """``<numatune><memnode cellid=… mode=… nodeset=…>``: the policy of one guest NUMA cell."""

    guest: str
    cell: int
    mode: MemoryMode
    nodeset: frozenset[int]


@dataclass(frozen=True, slots=True)
class SetMaxMemory:
    """``<memory>``: the guest's maximum memory, in bytes."""

    guest: str
    memory: int


@dataclass(frozen=True, slots=True)
class PinVcpus:
    """``<vcpupin vcpu=… cpuset=…>`` for each vCPU of *vcpus*: the host CPUs they may run on."""

    guest: str
    vcpus: frozenset[int]
    cpus: frozenset[int]


@dataclass(frozen=True, slots=True)
class PinEmulator:
    """``<emulatorpin cpuset=…>``: the host CPUs QEMU's own threads may run on."""

    guest: str
    cpus: frozenset[int]


Change = SetMemoryPolicy | SetMemnode | SetMaxMemory | PinVcpus | PinEmulator

#: the changes that edit ``<numatune>``
NUMATUNE_CHANGES = (SetMemoryPolicy, SetMemnode)


def apply_change(guest: Guest, change: Change) -> Guest:
    """*guest* as it is after *change*; a change of another guest leaves it as it is.

    A change the guest cannot take is a ``ValueError`` naming it (a memnode of a cell the guest
    does not have; a vCPU it does not have; a maximum memory that is not positive)."""
    if change.guest != guest.name:
        return guest
    if isinstance(change, SetMemoryPolicy):
        new = MemoryPolicy(change.mode, Placement.STATIC, change.nodeset)
        # cells without a memnode follow <memory>
        cells = tuple(c if c.memnode else dataclasses.replace(c, policy=new)
                      for c in guest.cells)
        return dataclasses.replace(guest, policy=new, cells=cells)
    if isinstance(change, SetMemnode):
        if all(c.id != change.cell for c in guest.cells):
            raise ValueError(f"{guest.name} has no guest NUMA cell {change.cell}")
        new = MemoryPolicy(change.mode, Placement.STATIC, change.nodeset)
        return dataclasses.replace(guest, cells=tuple(
            dataclasses.replace(c, policy=new, memnode=True) if c.id == change.cell else c
            for c in guest.cells))
    if isinstance(change, SetMaxMemory):
        if change.memory <= 0:
            raise ValueError(f"{guest.name}: a maximum memory must be positive, not "
                             f"{change.memory}")
        if guest.cells:
            raise ValueError(f"{guest.name}: its memory is the sum of its guest NUMA cells; "
                             "change the cells instead")
        return dataclasses.replace(guest, memory=change.memory,
                                   current_memory=min(guest.current_memory, change.memory))
    if isinstance(change, PinVcpus):
        missing = sorted(v for v in change.vcpus if not 0 <= v < guest.vcpus)
        if missing:
            raise ValueError(f"{guest.name} has no vCPU {missing[0]} (it has {guest.vcpus})")
        kept = tuple(p for p in guest.pins if p.vcpu not in change.vcpus)
        pins = tuple(sorted((*kept, *(VcpuPin(v, change.cpus) for v in change.vcpus)),
                            key=lambda p: p.vcpu))
        return dataclasses.replace(guest, pins=pins)
    if isinstance(change, PinEmulator):
        return dataclasses.replace(guest, emulatorpin=change.cpus)
    raise TypeError(f"not a change: {change!r}")


def apply_to_guests(guests: Iterable[Guest], changes: Iterable[Change]) -> tuple[Guest, ...]:
    """The guests after every change, in order (a later change of the same thing wins)."""
    out = list(guests)
    for change in changes:
        out = [apply_change(g, change) for g in out]
    return tuple(out)


def apply_changes(inventory: Inventory, changes: Iterable[Change]) -> Inventory:
    """The inventory as it is after *changes*: its guests' definitions changed, everything
    else (the host, what runs, the live definitions) as it was.  A change naming a guest the
    inventory does not have is a ``ValueError``."""
    changes = tuple(changes)
    names = {g.name for g in inventory.guests}
    unknown = sorted({c.guest for c in changes} - names)
    if unknown:
        raise ValueError(f"no guest {unknown[0]!r} here")
    return inventory.with_guests(apply_to_guests(inventory.guests, changes))


def guests_changed(changes: Iterable[Change]) -> tuple[str, ...]:
    """The guests *changes* touch, in the order they first appear."""
    return tuple(dict.fromkeys(c.guest for c in changes))

"""Host rules (NG4xx): host-wide settings that work against the guests' NUMA placement."""

from __future__ import annotations

from collections.abc import Iterator

from numaguard.core.findings import Finding, Fix, Severity
from numaguard.core.rules import Context, rule
from numaguard.core.rules.common import nodes_text, size
from numaguard.display import shell_quote
from numaguard.model.guest import Guest
from numaguard.model.policy import MemoryMode, Placement
from numaguard.units import MiB

SYSCTL_FILE = "/etc/sysctl.d/90-numaguard-numa-balancing.conf"


@rule("NG401", "autonuma-with-binding")
def autonuma_with_binding(ctx: Context) -> Iterator[Finding]:
    """Automatic NUMA balancing is on while guests have memory bound to NUMA nodes.

    What it checks: ``kernel.numa_balancing`` is on (``/proc/sys/kernel/numa_balancing`` is
    not 0) and at least one guest's memory — the guest's or one of its cells' — is placed on
    fixed nodes with ``strict``, ``restrictive`` or ``preferred``.  ``interleave`` is left out:
    the balancer's target for an interleaved page is its interleave node
    (mm/mempolicy.c ``mpol_misplaced``), so it does not fight that placement.  Sources that do
    not report the sysctl (``numactl -H``, ``virsh capabilities``) are not judged.

    Why it matters: the kernel documentation (Documentation/admin-guide/sysctl/kernel.rst,
    ``numa_balancing``) says: "The unmapping of pages and trapping faults incur additional
    overhead that ideally is offset by improved memory locality but there is no universal
    guarantee.  If the target workload is already bound to NUMA nodes then this feature should
    be disabled."  The balancer keeps unmapping the guests' pages to sample NUMA hinting faults
    (minor faults in the vCPU threads), cannot migrate pages that ``strict`` binds, and may
    move threads away from the memory an administrator placed on purpose.

    Severity: **warning** (overhead and placement fights, not failure).

    Fix: ``sysctl -w kernel.numa_balancing=0`` now, and ``kernel.numa_balancing = 0`` in a file
    under ``/etc/sysctl.d/`` so that it survives a reboot.  Keep it on only when most guests
    are unbound and no memory is placed by hand.
    """
    if ctx.host.numa_balancing is not True:
        return
    placed = [u for u in ctx.units if u.static_nodeset and u.policy is not None
              and u.policy.mode is not MemoryMode.INTERLEAVE]
    if not placed:
        return
    guests = tuple(sorted({u.guest for u in placed}))
    nodes = frozenset().union(*(u.static_nodeset or frozenset() for u in placed))
    nodes &= ctx.host.node_ids
    named = ", ".join(guests[:5]) + (f" and {len(guests) - 5} more" if len(guests) > 5 else "")
    yield Finding(
        "NG401", Severity.WARNING,
        f"automatic NUMA balancing is on (kernel.numa_balancing=1) while {len(guests)} "
        f"guest{'s' if len(guests) > 1 else ''} ({named}) "
        f"keep{'' if len(guests) > 1 else 's'} "
        f"{size(sum(u.size for u in placed))} of memory on fixed nodes ({nodes_text(nodes)}); "
        "the kernel documentation says to disable it for workloads already bound to NUMA "
        "nodes.",
        guests=guests, nodes=tuple(sorted(nodes)),
        evidence={"numa_balancing": 1, "bound_guests": len(guests),
                  "bound_units": len(placed),
                  "bound_bytes": sum(u.size for u in placed)},
        fix=Fix(guest=guests[0],
                description="switch automatic NUMA balancing off now and at every boot "
                            "(Documentation/admin-guide/sysctl/kernel.rst: \"If the target "
                            "workload is already bound to NUMA nodes then this feature should "
                            "be disabled\")",
                commands=("sysctl -w kernel.numa_balancing=0",
                          f"echo 'kernel.numa_balancing = 0' > {SYSCTL_FILE}")),
    )


def _auto(guest: Guest) -> tuple[bool, bool]:
    """(vCPU placement auto, memory placement auto) as libvirt resolved them."""
    policies = [guest.policy, *(c.policy for c in guest.cells)]
    memory = any(p is not None and p.placement is Placement.AUTO for p in policies)
    return guest.vcpu_placement is Placement.AUTO, memory


@rule("NG402", "numad-placement")
def numad_placement(ctx: Context) -> Iterator[Finding]:
    """Automatic placement (``placement='auto'``) relies on numad's advice at every start.

    What it checks: guests whose ``<vcpu placement='auto'>`` or ``<numatune><memory
    placement='auto'>`` is in effect (libvirt's defaults applied: ``<vcpu placement='auto'>``
    without ``<numatune>`` implies automatic memory placement, and automatic memory placement
    without any CPU pinning makes the vCPU placement automatic too).

    Why it matters: libvirt does not choose the nodes itself.  At start,
    ``qemuProcessPrepareDomainNUMAPlacement`` (src/qemu/qemu_process.c) calls
    ``virNumaGetAutoPlacementAdvice`` (src/util/virnuma.c), which runs the numad binary as
    ``numad -w VCPUS:MiB`` and binds the guest's memory (``strict`` unless another mode is
    given) and vCPUs to the nodes numad prints.  So the memory nodeset is chosen at each start
    and no audit can check it beforehand; the audit's memory rules treat such guests as
    unbound.  When the numad binary is missing the command fails ("Failed to query numad for
    the advisory nodeset"), the function returns no nodeset and the guest does not start; a
    libvirt built without numad support fails the same way ("numad is not available on this
    host").

    Severity: **info** when numad is installed or the source cannot tell (offline sources);
    **critical** when the audit of a live host found no numad binary.

    Fix: install numad (``dnf install numad`` / ``apt-get install numad``; ``numad -w
    VCPUS:MiB`` shows the advice libvirt will get), or switch the guest to static placement
    with an explicit nodeset (``virsh numatune GUEST --mode MODE --nodeset N --config``).
    """
    installed = ctx.options.numad_installed
    for guest in ctx.guests:
        vcpu_auto, memory_auto = _auto(guest)
        if not (vcpu_auto or memory_auto):
            continue
        mib = -(-guest.memory // MiB)  # VIR_DIV_UP(KiB, 1024)
        query = f"numad -w {guest.vcpus_current}:{mib}"
        which = " and ".join(w for w, on in (("vCPU", vcpu_auto), ("memory", memory_auto)) if on)
        ev = {"vcpus": guest.vcpus_current, "memory_bytes": guest.memory,
              "vcpu_placement_auto": int(vcpu_auto), "memory_placement_auto": int(memory_auto)}
        g = shell_quote(guest.name)
        if installed is False:
            yield Finding(
                "NG402", Severity.CRITICAL,
                f"{guest.name} has automatic {which} placement, which needs numad's advice "
                f"({query}), but numad is not installed: libvirt fails with \"Failed to query "
                "numad for the advisory nodeset\" and the guest does not start.",
                guests=(guest.name,), evidence=ev,
                fix=Fix(guest=guest.name,
                        description="install numad (libvirt runs it at every start of the "
                                    "guest), or give the guest static placement with an "
                                    "explicit nodeset",
                        commands=("dnf install numad  # Debian/Ubuntu: apt-get install numad",
                                  query)))
            continue
        yield Finding(
            "NG402", Severity.INFO,
            f"{guest.name} has automatic {which} placement: it relies on numad's advice "
            f"({query}), so its memory nodeset ({size(guest.memory)}) is chosen at each start "
            "and cannot be audited beforehand.",
            guests=(guest.name,), evidence=ev,
            fix=Fix(guest=guest.name,
                    description="see where numad would place the guest now; for a placement "
                                "that can be audited, set a static nodeset "
                                f"(virsh numatune {g} --mode strict --nodeset N --config)",
                    commands=(query,)))

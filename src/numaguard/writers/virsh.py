"""The ``virsh`` lines that make a planned ``<numatune>`` change, and when it takes effect.

What libvirt can change, and when (docs/FACTS.md; src/qemu/qemu_driver.c
``qemuDomainSetNumaParameters`` / ``qemuDomainSetNumaParamsLive``):

* ``virsh numatune DOMAIN --mode M --nodeset N --config`` changes ``<numatune><memory>`` of
  the persistent definition; the running guest keeps its policy until a cold boot (``virsh
  shutdown`` + ``virsh start``: a reboot inside the guest keeps the same QEMU process);
* a running guest's mode never changes ("can't change numatune mode for running domain");
* a running guest's nodeset changes (``--live``) only in ``restrictive`` mode: since libvirt
  8.0.0 a ``strict`` guest's is refused, and preferred/interleave have no cgroup to move;
* ``virsh numatune`` has no option for ``<memnode>``: the edited XML is defined instead
  (``virsh define FILE``).

Every argument is shell-quoted so that the line works as printed when pasted into bash, and no
control character of a guest name reaches the terminal (:func:`numaguard.display.shell_quote`).
"""

from __future__ import annotations

from numaguard.core.changes import Change, PinEmulator, PinVcpus, SetMaxMemory, SetMemoryPolicy
from numaguard.cpuset import format_bitmap
from numaguard.display import printable, shell_join, shell_quote
from numaguard.fix import FixPlan
from numaguard.model.policy import Placement

COLD_BOOT = ("takes effect at the next cold boot (virsh shutdown + start; a reboot inside the "
             "guest is not enough)")
WHY_COLD_BOOT = ("libvirt never changes the mode of a running guest, and changes a running "
                 "guest's nodeset only in restrictive mode (src/qemu/qemu_driver.c)")


def effect_note(plan: FixPlan) -> str:
    """One sentence: when the planned change reaches the running guest."""
    if not plan.changed:
        return f"no change: {plan.name} already has this <numatune>"
    if not plan.policy_changed:
        return ("the effective policy is unchanged (the implicit strict mode is only written "
                "out); nothing needs a restart")
    live = plan.live_nodeset
    if live is not None:
        return (f"{COLD_BOOT}; a running {plan.name} can take the new nodeset now as well "
                f"(restrictive mode): virsh numatune {shell_quote(plan.name)} --nodeset "
                f"{format_bitmap(live)} --live")
    return f"{COLD_BOOT}: {WHY_COLD_BOOT}"


def change_commands(change: Change) -> list[str]:
    """The ``virsh`` line that makes *change* in the persistent definition (``--config``:
    the next cold boot), or ``[]`` when virsh has no option for it (a ``<memnode>``: define the
    edited XML, :func:`virsh_lines`).  From virsh(1): ``numatune --mode --nodeset``,
    ``setmaxmem SIZE`` (KiB without a suffix: the size is given in KiB here), ``vcpupin VCPU
    CPULIST``, ``emulatorpin CPULIST``, each with ``--config``."""
    name = change.guest
    if isinstance(change, SetMemoryPolicy):
        args = ["numatune", name, "--mode", change.mode.value, "--nodeset",
                format_bitmap(change.nodeset)]
    elif isinstance(change, SetMaxMemory):
        args = ["setmaxmem", name, f"{-(-change.memory // 1024)}KiB"]
    elif isinstance(change, PinVcpus):
        return [shell_join(["virsh", "vcpupin", name, str(v), format_bitmap(change.cpus),
                            "--config"]) for v in sorted(change.vcpus)]
    elif isinstance(change, PinEmulator):
        args = ["emulatorpin", name, format_bitmap(change.cpus)]
    else:
        return []
    return [shell_join(["virsh", *args, "--config"])]


def virsh_lines(plan: FixPlan, *, xml_file: str | None = None,
                save_command: str | None = None) -> list[str]:
    """The commands (and ``#`` comment lines) that make *plan* with virsh.

    ``<memnode>`` changes go through ``virsh define`` of the edited XML: *xml_file* is where
    it is (or will be) saved, *save_command* the command that saves it there."""
    name = plan.name
    if not plan.changed:
        return [f"# {printable(effect_note(plan))}"]
    lines: list[str] = []
    after = plan.after.policy
    if plan.edit.memnodes or after is None:
        target = xml_file or f"{name}.numaguard.xml"
        lines.append("# virsh numatune has no option for <memnode>: define the edited XML "
                     "instead (the persistent definition; a running guest keeps its policy)"
                     + (", saved first:" if save_command else ""))
        if save_command:
            lines.append(f"{save_command} > {shell_quote(target)}")
        lines.append(shell_join(["virsh", "define", target]))
    else:
        if after.placement is Placement.STATIC and after.nodeset is not None:
            lines += change_commands(SetMemoryPolicy(name, after.mode, after.nodeset))
        else:
            lines.append(shell_join(["virsh", "numatune", name, "--mode", after.mode.value,
                                     "--config"]))
        live = plan.live_nodeset
        if live is not None:
            lines.append(f"# if {printable(name)} is running, its nodeset can change now too "
                         "(restrictive mode allows it):")
            lines.append(shell_join(["virsh", "numatune", name, "--nodeset",
                                     format_bitmap(live), "--live"]))
    lines.append(f"# {printable(effect_note(plan))}")
    return lines

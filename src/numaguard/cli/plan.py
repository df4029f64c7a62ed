"""``numaguard plan``: place every guest on the host's NUMA nodes (memory mode and nodeset, vCPU
pins) with the planner of :mod:`numaguard.core.plan`, audit the planned host, and print the
changes as ``numaguard fix`` and ``virsh`` lines (``--apply``: define them through libvirt).

The source is read as ``audit`` reads it (:func:`numaguard.readers.sources.open_source`).  The
planned host is audited with every guest starting from nothing — what the host is after the
cold restarts the plan asks for — so the live what-if of the running guests (``audit``'s
``live_state``) is not played: the memory a running guest holds now is where its old binding
put it.  Where the source is live, the plan and that audit start from the host as it was
before the running guests (each node's MemFree plus what they hold there:
core/whatif.host_before_guests), else their memory would count twice.  Guests the plan cannot
place are left out of the planned host's audit: they must go to another host (the proof says
why), and the report says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from numaguard.cli import EXIT_FINDINGS, EXIT_OK, _connect_argument, _emit
from numaguard.cli.common import add_qemu_overhead, seconds_type
from numaguard.errors import NumaguardError, ParseError

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (see numaguard.cli)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SOLVERS = ("auto", "highs", "greedy")
INSTALL_HINT = "pip install 'numaguard[plan]'"


def _moves(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected 0 or more guests")
    return int(text)


_seconds = seconds_type("time limit")


def _names(values: list[str] | None) -> list[str]:
    """``--keep a --keep b,c`` -> [a, b, c]."""
    return [n.strip() for v in values or [] for n in v.split(",") if n.strip()]


def quiet(factory: Callable[[], Any]) -> Callable[[], Any]:
    """*factory* called with file descriptor 1 pointed at ``/dev/null``: HiGHS's C++ prints
    its banner ("Running HiGHS …") to the process's stdout when a ``Highs`` is made, before
    any option can silence it, and that line would break ``--format json``."""
    def make() -> Any:
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            return factory()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
    return make


def _solver(name: str) -> tuple[Callable[[], Any] | None, str | None]:
    """The solver factory for ``--solver``, and a note when the greedy plan serves alone."""
    from numaguard.core.plan.milp import load_highs

    if name == "greedy":
        return None, None
    highs = load_highs()
    if highs is None:
        if name == "highs":
            raise NumaguardError(f"--solver highs: highspy is not installed ({INSTALL_HINT})")
        return None, (f"highspy is not installed ({INSTALL_HINT}): the greedy plan serves "
                      "alone and no optimality is claimed")
    return quiet(highs), None


def _new_guests(paths: list[str], existing: set[str]) -> list[Any]:
    """The ``--new`` domain XMLs, read as every domain file is (bad field: one line each)."""
    from numaguard.readers.domains import read_domain_file

    out = []
    for path in paths:
        g = read_domain_file(path)
        if g.name in existing:
            raise ParseError(f"a guest named {g.name!r} is already on the host or given twice",
                             field="--new", path=path)
        existing.add(g.name)
        out.append(g)
    return out


def _fix_args(placement: Any) -> list[str]:
    """``numaguard fix`` options of a placement's ``<numatune>`` changes."""
    from numaguard.core.changes import SetMemnode, SetMemoryPolicy
    from numaguard.cpuset import format_bitmap

    args: list[str] = []
    for c in placement.changes:
        if isinstance(c, SetMemoryPolicy):
            args += ["--mode", c.mode.value, "--nodeset", format_bitmap(c.nodeset)]
    for c in placement.changes:
        if isinstance(c, SetMemnode):
            args += ["--memnode", f"{c.cell}:{c.mode.value}:{format_bitmap(c.nodeset)}"]
    return args


def _virsh(lines: list[str], uri: str | None) -> list[str]:
    """virsh lines aimed at *uri* (``virsh -c URI …``) when the source was a libvirt URI."""
    if uri is None:
        return lines
    from numaguard.display import shell_quote

    return [f"virsh -c {shell_quote(uri)} {line[len('virsh '):]}"
            if line.startswith("virsh ") else line for line in lines]


def guest_commands(plan: Any, inventory: Any, new_paths: dict[str, str], *,
                   virsh_only: bool = False) -> tuple[Any, ...]:
    """Per changed guest, the lines that make its change: ``numaguard fix`` for its
    ``<numatune>`` (``--write`` on a file, ``--apply`` through libvirt), ``virsh vcpupin`` /
    ``emulatorpin --config`` for its pins (``numaguard fix`` changes only ``<numatune>``);
    *virsh_only*: ``virsh numatune`` (or the edited XML defined, for ``<memnode>``) instead of
    ``numaguard fix``."""
    from numaguard.core.changes import PinEmulator, PinVcpus, SetMemnode
    from numaguard.display import shell_join
    from numaguard.readers.sources import command_refs
    from numaguard.report.plan import GuestCommands
    from numaguard.writers.virsh import change_commands

    refs = command_refs(inventory)
    uri = inventory.uri
    out = []
    for pl in plan.placements:
        if not pl.changes:
            continue
        lines: list[str] = []
        numatune = _fix_args(pl)
        if pl.new:
            path = new_paths[pl.guest]
            target = [path, *(["--host", inventory.host_source]
                              if inventory.host_source is not None else [])]
        else:
            target = list(refs.fix_args(pl.guest))
        output = "--apply" if uri is not None and not pl.new else "--write"
        if numatune and virsh_only and (pl.new or any(isinstance(c, SetMemnode)
                                                      for c in pl.changes)):
            saved = f"{pl.guest}.numaguard.xml"
            lines.append("# virsh numatune has no option for <memnode>: define the edited XML")
            lines.append(shell_join(["numaguard", "fix", *target, *numatune, "--xml"])
                         + f" > {shell_join([saved])}")
            lines += _virsh([shell_join(["virsh", "define", saved])], uri)
        elif numatune and virsh_only:
            lines += _virsh([x for c in pl.changes if not isinstance(c, (PinVcpus, PinEmulator))
                             for x in change_commands(c)], uri)
        elif numatune:
            lines.append(shell_join(["numaguard", "fix", *target, *numatune, output]))
            if pl.new:
                lines += _virsh([shell_join(["virsh", "define", new_paths[pl.guest]])], uri)
        pins = [x for c in pl.changes if isinstance(c, (PinVcpus, PinEmulator))
                for x in change_commands(c)]
        if pins:
            if not virsh_only:
                lines.append("# the vCPU and emulator pins (numaguard fix changes only "
                             "<numatune>), in the persistent definition:")
            lines += _virsh(pins, uri)
        out.append(GuestCommands(pl.guest, pl.restart, tuple(lines)))
    return tuple(out)


def _apply(plan: Any, inventory: Any, backup_dir: str) -> tuple[list[str], list[str]]:
    """Define every moved guest's ``<numatune>`` change through libvirt, as ``numaguard fix
    --apply`` does, then its vCPU and emulator pins (``LibvirtSession.pin``: what ``virsh
    vcpupin/emulatorpin --config`` do), each after a backup of the XML as it was
    (:class:`numaguard.writers.apply.LibvirtSession`); the lines that say what was done, and
    those that say what libvirt refused (the command then exits 2)."""
    from numaguard.core.changes import PinEmulator, PinVcpus, SetMemnode, SetMemoryPolicy
    from numaguard.display import shell_join
    from numaguard.domxml.document import DomainDocument
    from numaguard.domxml.edit import NumatuneEdit
    from numaguard.fix import plan_fix
    from numaguard.writers.apply import LibvirtSession

    said: list[str] = []
    failed: list[str] = []
    with LibvirtSession(inventory.uri) as session:
        for pl in plan.placements:
            if not pl.moved or pl.new:
                continue
            memory = [c for c in pl.changes if isinstance(c, (SetMemoryPolicy, SetMemnode))]
            vcpus = {v: c.cpus for c in pl.changes if isinstance(c, PinVcpus) for v in c.vcpus}
            emulator = next((c.cpus for c in pl.changes if isinstance(c, PinEmulator)), None)
            read = session.read(pl.guest)
            if memory:
                fix = plan_fix(DomainDocument(read.xml, path=read.label),
                               NumatuneEdit.from_changes(memory), inventory)
                if fix.changed:
                    result = session.apply(read, fix, backup_dir=backup_dir)
                    said.append(f"defined {pl.guest}'s <numatune> on {session.uri}; the old "
                                f"XML is in {result.backup} "
                                f"({shell_join(['virsh', 'define', result.backup])} restores "
                                "it)")
                    read = session.read(pl.guest)
            if vcpus or emulator:
                try:
                    backup = session.pin(read, vcpus, emulator, backup_dir=backup_dir)
                except NumaguardError as exc:   # libvirt refused, or a CPU it has not
                    failed.append(f"{pl.guest}'s pins not changed: {exc}")
                    continue
                said.append(f"pinned {pl.guest}'s vCPUs and emulator on {session.uri} "
                            f"(--config); the XML before the pins is in {backup}")
    return said, failed


def _before_running_guests(source: Any, inventory: Any) -> tuple[Any, bool]:
    """*inventory* with its host as before its running guests, where the source is live; and
    whether its MemFree is then the host's own (the plan may cap a node's room by it): not
    when guests run that the source cannot give back (a remote URI, libvirt's test driver)."""
    from dataclasses import replace

    from numaguard.core.whatif import host_before_guests, of_guests
    from numaguard.readers.sources import live_state

    live = live_state(source, inventory)
    if live is not None:
        live = of_guests(live, inventory.guests)
    if live is None or not live.guests:
        return inventory, not inventory.running
    return replace(inventory, host=host_before_guests(inventory.host, live)), True


def cmd_plan(args: argparse.Namespace) -> int:
    from numaguard.cli.audit import _audit_options
    from numaguard.core.findings import Severity
    from numaguard.core.plan import plan as make_plan
    from numaguard.core.rules import AuditOptions, audit_inventory
    from numaguard.readers.sources import LibvirtSource, command_refs, open_source
    from numaguard.report.plan import PlanReport

    opts = _audit_options(args)          # options first: a typo fails before any reading
    keep = _names(args.keep)
    if args.backup_dir is not None and not args.apply:
        raise NumaguardError("--backup-dir goes with --apply")
    if args.apply and args.virsh:
        raise NumaguardError("--apply defines the changes; --virsh prints them: give one")
    if args.apply and args.sources:
        raise NumaguardError("--apply changes the definitions libvirt keeps: read the host "
                             "with -c URI (for files, run the printed numaguard fix lines)")
    factory, solver_note = _solver(args.solver)
    source = open_source(args.sources, args.connect)
    if args.apply and not isinstance(source, LibvirtSource):
        raise NumaguardError("--apply changes the definitions libvirt keeps: read the host "
                             "with -c URI")
    inventory, free_now = _before_running_guests(source, source.read())
    names = {g.name for g in inventory.guests}
    for name in keep:
        if name not in names:
            raise ParseError(f"no guest {name!r} on {source.label}", field="--keep")
    new_paths = _names(args.new)
    new = _new_guests(new_paths, set(names))
    options = AuditOptions(**opts)
    result = make_plan(inventory, keep=keep, max_moves=args.max_moves, new=new,
                       objective=args.objective, time_limit=args.time_limit,
                       options=options, solver=factory, free_now=free_now,
                       clock=time.monotonic)
    after = result.apply(inventory, new)
    unplaced = set(result.unplaced)
    if unplaced:   # they leave the host: the planned host is the placed guests
        after = after.with_guests(tuple(g for g in after.guests if g.name not in unplaced))
    audit = audit_inventory(after, AuditOptions(refs=command_refs(inventory), **opts))
    commands = guest_commands(result, inventory, {g.name: p for g, p in zip(new, new_paths,
                                                                             strict=True)},
                              virsh_only=args.virsh)
    notes = [solver_note] if solver_note else []
    if args.apply:
        done, refused = _apply(result, inventory, args.backup_dir or ".")
        notes += (done or ["--apply: nothing to define"]) + refused
    report = PlanReport(source.label, result, audit, commands, args.time_limit,
                        explain=args.explain, notes=tuple(notes))
    if args.virsh:
        from numaguard.report.plan import plan_virsh

        sys.stdout.write(plan_virsh(report))
    else:
        _emit(report, args.format, "plan", module="plan")
    clean = result.complete and not any(f.severity is Severity.CRITICAL
                                        for f in audit.findings)
    if args.apply and refused:
        from numaguard.display import printable

        for line in refused:
            sys.stderr.write(f"numaguard plan: {printable(line)}\n")
        return 2
    return EXIT_OK if clean else EXIT_FINDINGS


def _plan_arguments(p: argparse.ArgumentParser) -> None:
    from numaguard.core.plan import STAGES

    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="snapshot dir, or a topology source plus domain XML files/folders "
                        "(default: this machine)")
    _connect_argument(p)
    p.add_argument("--keep", action="append", metavar="GUEST",
                   help="a guest that stays as it is (repeatable, or comma-separated)")
    p.add_argument("--max-moves", metavar="N", type=_moves,
                   help="at most N existing guests change (default: any number)")
    p.add_argument("--new", action="append", metavar="GUEST.xml",
                   help="a domain XML of a guest to place as well (repeatable)")
    p.add_argument("--objective", choices=STAGES, default=STAGES[0],
                   help="what to optimise first after placing every guest: the worst "
                        "node's fill (peak, default), the remote-access cost, or the moves")
    p.add_argument("--time-limit", metavar="SECONDS", type=_seconds, default=30.0,
                   help="seconds for the solver in all; then the best plan found, with its "
                        "gap (default: 30)")
    p.add_argument("--solver", choices=SOLVERS, default="auto",
                   help="highs (numaguard[plan]), greedy (no optimality claimed), or auto: "
                        "highs when installed (default)")
    p.add_argument("--explain", action="store_true",
                   help="say why every guest goes where it goes (default: the moved, new "
                        "and unplaced ones)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--format", choices=("text", "json"), default="text")
    out.add_argument("--virsh", action="store_true",
                     help="print only the changes, as virsh lines (a shell script)")
    p.add_argument("--apply", action="store_true",
                   help="define every moved guest's <numatune> through libvirt (-c URI), as "
                        "numaguard fix --apply does")
    p.add_argument("--backup-dir", metavar="DIR",
                   help="where --apply saves the old XML (default: the current directory)")
    add_qemu_overhead(p)
    p.add_argument("--host-reserve", metavar="SIZE|PCT",
                   help="memory per node kept for the kernel and host processes, e.g. 2GiB "
                        "or 8%% (default: max(1 GiB, 5%% of the node's MemTotal))")
    p.add_argument("--cpu-overcommit", metavar="RATIO", default="1.0",
                   help="vCPUs pinned per hardware thread of a node (default: 1.0)")
    p.set_defaults(min_headroom="4GiB")

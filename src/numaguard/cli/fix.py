"""``numaguard fix GUEST|FILE``: change one guest's ``<numatune>`` (diff, XML, virsh lines, a
file rewritten, or a definition through libvirt)."""

from __future__ import annotations

import argparse
import os
import sys

from numaguard.cli import EXIT_OK, _width
from numaguard.display import printable, printable_lines, shell_join
from numaguard.errors import NumaguardError, ParseError

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (see numaguard.cli)
if TYPE_CHECKING:
    from typing import Any


def _fix_edit(args: argparse.Namespace) -> Any:
    """The NumatuneEdit the options ask for; ``None`` for --recommended."""
    from numaguard.cpuset import parse_nodeset
    from numaguard.domxml.edit import MODES, MemnodeEdit, NumatuneEdit
    from numaguard.fix import NOTHING_TO_CHANGE

    explicit = args.mode is not None or args.nodeset is not None or bool(args.memnode)
    if args.recommended and explicit:
        raise NumaguardError("give --recommended or --mode/--nodeset/--memnode, not both")
    if args.recommended:
        return None
    if not explicit:
        raise NumaguardError(NOTHING_TO_CHANGE)
    nodeset = None
    if args.nodeset is not None:
        try:
            nodeset = parse_nodeset(args.nodeset)
        except ParseError as exc:
            raise ParseError(exc.reason, field="--nodeset") from None
    memnodes: list[Any] = []
    for text in args.memnode or []:
        parts = [p.strip() for p in text.split(":")]
        if len(parts) != 3:
            raise ParseError(f"{text!r}: expected CELL:MODE:NODESET such as 0:preferred:1",
                             field="--memnode")
        cell, mode, ns = parts[0], parts[1].lower(), parts[2]
        if not (cell.isascii() and cell.isdigit()):
            raise ParseError(f"{text!r}: CELL must be a guest NUMA cell number",
                             field="--memnode")
        if mode not in MODES:
            raise ParseError(f"{text!r}: unknown mode {mode!r} ({', '.join(MODES)})",
                             field="--memnode")
        try:
            nodes = parse_nodeset(ns)
        except ParseError as exc:
            raise ParseError(f"{text!r}: {exc.reason}", field="--memnode") from None
        if any(m.cellid == int(cell) for m in memnodes):
            raise ParseError(f"cell {int(cell)} given twice", field="--memnode")
        memnodes.append(MemnodeEdit(int(cell), mode, nodes))
    return NumatuneEdit(args.mode, nodeset, tuple(memnodes))


def _fix_world(found: tuple[Any, str | None, list[str]]) -> tuple[Any, str | None]:
    """Say the notes and why the host is unknown; the inventory and that reason."""
    world, unknown, notes = found
    for note in notes:
        sys.stderr.write(printable(f"numaguard fix: {note}") + "\n")
    if unknown:
        sys.stderr.write(printable(f"numaguard fix: host topology unknown ({unknown}): "
                                   "the nodeset check and the re-audit are skipped") + "\n")
    return world, unknown


def _libvirt_world(uri: str, host_source: str | None) -> tuple[Any, str | None, list[str]]:
    """The host and every guest of *uri* for ``fix -c URI`` (``--host SOURCE`` replaces the
    host); a topology the URI cannot give makes the host unknown, as for a file."""
    import dataclasses

    from numaguard.readers.sources import LibvirtSource
    from numaguard.readers.target import fix_world

    try:
        inventory = LibvirtSource(uri).read()
    except ParseError as exc:
        return None, str(exc).splitlines()[0], []
    notes = list(inventory.notes) + [f"re-audit: skipped {p}" for p in inventory.problems]
    if host_source is not None:
        world, _, _ = fix_world(None, host_source)
        assert world is not None        # an explicit --host that cannot be read raised
        inventory = dataclasses.replace(inventory, host=world.host, facts=world.facts,
                                        host_source=host_source)
    return inventory, None, notes


def _fix_replay(args: argparse.Namespace, output: str) -> str:
    """This command line with another output option (the line that saves the edited XML
    before `virsh define`)."""
    argv = ["numaguard", "fix", args.target]
    if args.connect is not None:
        argv += ["-c", args.connect]
    if args.recommended:
        argv.append("--recommended")
    if args.mode is not None:
        argv += ["--mode", args.mode]
    if args.nodeset is not None:
        argv += ["--nodeset", args.nodeset]
    for m in args.memnode or []:
        argv += ["--memnode", m]
    if args.host is not None:
        argv += ["--host", args.host]
    return shell_join([*argv, output])


def _fix_apply(args: argparse.Namespace, edit: Any) -> int:
    from numaguard.domxml.document import DomainDocument
    from numaguard.fix import plan_fix
    from numaguard.report.fix import summary_lines, wrapped
    from numaguard.writers.apply import LibvirtSession
    from numaguard.writers.virsh import COLD_BOOT

    if os.sep in args.target or os.path.exists(args.target):
        raise NumaguardError(f"{args.target}: --apply takes a domain name (libvirt keeps the "
                             "definition); to change a file use --write")
    with LibvirtSession(args.connect) as session:
        read = session.read(args.target)
        world, unknown = _fix_world(_libvirt_world(session.uri, args.host))
        plan = plan_fix(DomainDocument(read.xml, path=read.label), edit, world,
                        unknown=unknown)
        if plan.edit.empty:
            sys.stderr.write(printable(f"numaguard fix: the audit proposes no <numatune> "
                                       f"change for {plan.name}") + "\n")
            return EXIT_OK
        if not plan.changed:
            sys.stdout.write(printable(f"{plan.name}: nothing to define, its persistent XML "
                                       "already has this <numatune>") + "\n")
            return EXIT_OK
        result = session.apply(read, plan, backup_dir=args.backup_dir or ".")
    out = [(f"defined {plan.name} on {session.uri}; the old XML is saved in {result.backup} "
            f"({shell_join(['virsh', 'define', result.backup])} restores it)")]
    if result.live_nodeset is not None:
        out.append(f"the running {plan.name} took the new nodeset now as well")
    elif result.live_error is not None:
        out.append(f"the running {plan.name} kept its nodeset ({result.live_error}); the "
                   f"change {COLD_BOOT}")
    elif plan.policy_changed:
        out.append(COLD_BOOT)
    sys.stdout.write("".join(f"{printable(line)}\n" for line in out))
    sys.stderr.write(wrapped(summary_lines(plan, effect=False), _width()))
    return EXIT_OK


def cmd_fix(args: argparse.Namespace) -> int:
    from numaguard.domxml.document import DomainDocument
    from numaguard.fix import plan_fix
    from numaguard.readers.files import read_bytes
    from numaguard.readers.sources import LIBVIRT_QEMU_DIR
    from numaguard.readers.target import fix_world, resolve_target
    from numaguard.report.fix import summary_lines, wrapped
    from numaguard.writers.virsh import virsh_lines
    from numaguard.writers.xml_patch import replace_file, unified_diff

    edit = _fix_edit(args)
    if args.output != "apply" and args.backup_dir is not None:
        raise NumaguardError("--backup-dir goes with --apply")
    if args.output == "apply":
        return _fix_apply(args, edit)
    if args.connect is not None:      # the persistent definition libvirt keeps, shown
        if os.sep in args.target or os.path.exists(args.target):
            raise NumaguardError(f"{args.target}: with -c/--connect name a domain (libvirt "
                                 "keeps the definition); to change a file, leave -c out")
        if args.output == "write":
            raise NumaguardError("libvirt keeps the definition: use --apply to define the "
                                 "change, or --xml to save the edited XML")
        from numaguard.readers.libvirt_api import LibvirtReader

        with LibvirtReader(args.connect) as reader:
            read = reader.read_domain_xml(args.target)
        doc = DomainDocument(read.persistent, path=f"{args.connect} domain {read.name}")
        target = None
        world, unknown = _fix_world(_libvirt_world(args.connect, args.host))
    else:
        target = resolve_target(args.target, host_source=args.host)
        doc = DomainDocument(read_bytes(target.path), path=target.path)
        world, unknown = _fix_world(fix_world(target, args.host))
    plan = plan_fix(doc, edit, world, unknown=unknown)
    if plan.edit.empty:   # --recommended, and the audit proposes nothing
        sys.stderr.write(printable(f"numaguard fix: the audit proposes no <numatune> change "
                                   f"for {plan.name}") + "\n")
    summary = summary_lines(plan)
    if args.output == "diff":
        # the diff shows lines of the file: no control character of it reaches the terminal
        sys.stdout.write(printable_lines(unified_diff(plan.old, plan.new, plan.label)))
        sys.stdout.write(wrapped(summary, _width(), "# "))
        return EXIT_OK
    if args.output == "xml":
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(plan.new)
            buffer.flush()
        else:  # pragma: no cover - a text-only stdout
            sys.stdout.write(plan.new.decode("utf-8"))
    elif args.output == "virsh":
        lines = virsh_lines(plan, save_command=_fix_replay(args, "--xml"))
        # comments wrap to the terminal; command lines stand whole
        sys.stdout.write("".join(wrapped([line[2:]], _width(), "# ") if line.startswith("# ")
                                 else f"{line}\n" for line in lines))
        summary = summary_lines(plan, effect=False)
    elif args.output == "write":
        assert target is not None       # --write with -c was refused above
        if not plan.changed:
            sys.stdout.write(printable(f"{target.path}: nothing written") + "\n")
        else:
            saved = replace_file(target.path, plan.old, plan.new,
                                 follow_symlinks=args.follow_symlinks)
            # with --follow-symlinks the file written is the link's target
            written = os.path.realpath(target.path) if args.follow_symlinks else target.path
            through = f" through the link {target.path}" if written != target.path else ""
            sys.stdout.write(printable(f"wrote {written}{through} (backup: {saved})") + "\n")
            if os.path.realpath(os.path.dirname(os.path.abspath(written))) == \
                    os.path.realpath(LIBVIRT_QEMU_DIR):
                summary.append(f"libvirtd reads {LIBVIRT_QEMU_DIR} only when it starts: run "
                               f"`{shell_join(['virsh', 'define', written])}` so it sees "
                               "the change now")
    sys.stderr.write(wrapped(summary, _width()))
    return EXIT_OK


def _fix_arguments(p: argparse.ArgumentParser) -> None:
    # the mode names from the model, not domxml.edit (which imports lxml)
    from numaguard.model.policy import MODE_NAMES as MODES

    p.add_argument("target", metavar="GUEST|FILE")
    p.add_argument("--mode", choices=MODES, help="the <memory> mode")
    p.add_argument("--nodeset", metavar="NODESET", help="the <memory> host nodes, e.g. 0-1")
    p.add_argument("--memnode", action="append", metavar="CELL:MODE:NODESET",
                   help="a guest NUMA cell's policy (repeatable), e.g. 1:preferred:1")
    p.add_argument("--recommended", action="store_true",
                   help="apply the changes the audit proposes for this guest")
    out = p.add_mutually_exclusive_group()
    for flag, what in (("diff", "unified diff (default, dry run)"),
                       ("xml", "the whole edited XML"),
                       ("virsh", "the equivalent virsh lines"),
                       ("write", "rewrite FILE atomically, keeping a .bak"),
                       ("apply", "define through libvirt")):
        out.add_argument(f"--{flag}", dest="output", action="store_const", const=flag, help=what)
    p.set_defaults(output="diff")
    p.add_argument("--host", metavar="SOURCE",
                   help="host topology (snapshot, sysfs root, numactl -H file, capabilities "
                        "XML) for the nodeset check and the re-audit")
    p.add_argument("-c", "--connect", metavar="URI",
                   help="read GUEST's persistent definition through libvirt at this URI, "
                        "as virsh -c (with --apply: define the change there; default "
                        "qemu:///system)")
    p.add_argument("--backup-dir", metavar="DIR",
                   help="where --apply saves the old XML (default: the current directory)")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="--write: when FILE is a symbolic link, replace the file it points to "
                        "(its backup goes beside that file); without it a link is refused")

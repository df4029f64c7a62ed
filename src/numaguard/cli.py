"""numaguard command line.

Exit codes (every command):
  0  success
  1  findings at or above --fail-on (commands that audit); an OOM kill or a failed
     allocation (simulate)
  2  bad input or unreadable source: one line per problem, ``file:line: field: what is wrong``;
     a bad option or option value is one line naming the option; output that cannot be
     written (a full disk, a closed stdout)
  3  internal error (a bug in numaguard): one line; ``NUMAGUARD_DEBUG=1`` shows the traceback

No exit code is ever produced by an uncaught exception (Python's own is 1, which means
"findings" here): :func:`main` is the one error boundary.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import math
import os
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence

from numaguard import __version__
from numaguard.display import printable, printable_lines, shell_join
from numaguard.errors import NumaguardError, ParseError
from numaguard.signals import signals_unwind

#: typing.TYPE_CHECKING without importing typing (~2 ms of every command); mypy and ruff
#: read a module's own TYPE_CHECKING as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_INTERNAL = 3

EPILOG = """\
SOURCE is a snapshot directory (host/ + domains/, see `numaguard snapshot`), a captured sysfs
root, a `numactl -H` text file, a `virsh capabilities` XML file, a domain XML file or a folder of
them.  Without SOURCE numaguard reads this machine (/sys, /proc, /etc/libvirt/qemu).

exit codes:
  0  success
  1  findings at or above --fail-on (audit); an OOM kill or failed allocation (simulate)
  2  bad input or unreadable source (one line per problem: file:line: field: what is wrong),
     or a bad option value (one line naming the option)
  3  internal error: a bug in numaguard (NUMAGUARD_DEBUG=1 shows the traceback)
"""

AUDIT_EPILOG = """\
SOURCE: a snapshot directory (host/ + domains/), or a topology source (sysfs root, `numactl -H`
file, capabilities XML, or a folder holding capabilities.xml or numactl-H.txt beside domain XMLs)
plus domain XML files or folders.  The first source that yields a topology is the host; guests
come from every source.  Without SOURCE numaguard audits this machine (/sys, /proc,
/etc/libvirt/qemu, numad).

exit codes:
  0  no finding at or above --fail-on (default: critical; `never` always gives 0)
  1  at least one finding at or above --fail-on
  2  bad input, unreadable source or bad option value (one line per problem)
  3  internal error: a bug in numaguard (NUMAGUARD_DEBUG=1 shows the traceback)
--nagios (Monitoring Plugins guidelines): 0 OK, 1 WARNING, 2 CRITICAL (the worst finding),
  3 UNKNOWN (bad input, unreadable source, bad option, internal error), on stdout

examples:
  numaguard audit examples/article-host
  numaguard audit --nagios /srv/snapshots/hv07
  numaguard audit --fail-on warning --format json /srv/snapshots/hv07 > hv07.json
  numaguard audit capabilities.xml domains/ --rule NG101 --min-headroom 8GiB
"""

SIMULATE_EPILOG = """\
SOURCE: a scenario file (.toml, see examples/scenarios/README.md) or a snapshot directory, whose
guests then touch their full memory one after another, each guest cell with the policy libvirt
gives QEMU and the cgroups, in the start order the snapshot recorded, else bound guests last
(largest first); --order plays another of the orders the audit plays (NG110).

--compare MODES plays the same steps once per mode (comma-separated: strict, restrictive,
preferred, interleave): every step with a `nodes` nodeset gets that mode; other steps (an
application with the default policy) stay as written.

--plot FILE draws the end of the run (bytes per node and in swap, nodesets, who was OOM-killed);
--plot-steps FILE draws the run over its steps (memory per node, swap, OOM kills).  One panel
per mode; .png or .svg; both may be given.

exit codes:
  0  every byte was placed (in RAM or swap) and nobody was OOM-killed
  1  some task was OOM-killed or some allocation failed (in any mode with --compare)
  2  bad input, unreadable source or bad option value (one line: file: key: what is wrong)
  3  internal error: a bug in numaguard (NUMAGUARD_DEBUG=1 shows the traceback)

examples:
  numaguard simulate examples/scenarios/article-vm1-app.toml
  numaguard simulate examples/scenarios/article-fig5-strict.toml --compare strict,interleave
  numaguard simulate examples/article-host --format json
  numaguard simulate examples/scenarios/three-modes.toml --compare strict,preferred,interleave \\
      --plot end.png --plot-steps steps.png
"""

FAIL_ON = ("critical", "warning", "info", "never")


class _UsageError(Exception):
    """A bad command line: the CLI prints it as one line and exits with code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``numaguard audit: argument --fail-on: …``)
    raised to :func:`main`, not usage text and ``sys.exit`` from deep inside parsing.

    Abbreviated long options are refused (``allow_abbrev=False``): with them ``audit --host X``
    silently meant ``--host-reserve X``, and a later option sharing the prefix would change
    what an old command line means."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        """As argparse's, but arguments left over by a sub-command are that sub-command's
        error (``numaguard audit: unrecognized arguments: …``), not the top parser's."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = getattr(parsed, "command", None)
            prog = f"{self.prog} {command}" if command else self.prog
            raise _UsageError(f"{prog}: unrecognized arguments: {' '.join(extra)}")
        return parsed


class _HelpFormatter(argparse.HelpFormatter):
    """``--help`` at the terminal's width (argparse takes ``COLUMNS``, else the tty, else 80
    columns, from :func:`shutil.get_terminal_size`): option help and prose are wrapped to it;
    an indented line of a description or epilog (an example command, a row of the exit-code
    table and its continuation) is kept exactly as written, so a command stays pasteable."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        # argparse makes a formatter for every add_argument and, without a width, imports
        # shutil (with bz2 and lzma, ~1.7 ms) to ask shutil.get_terminal_size; this is the
        # same columns figure, the same way, minus the 2 argparse takes off
        if width is None:
            width = _help_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        prose: list[str] = []

        def flush() -> None:
            if prose:
                out.extend(textwrap.wrap(" ".join(prose), width, initial_indent=indent,
                                         subsequent_indent=indent, break_long_words=False,
                                         break_on_hyphens=False))
                prose.clear()

        for line in text.splitlines():
            if line[:1].isspace() or not line.strip():
                flush()
                out.append(indent + line if line.strip() else "")
            else:
                prose.append(line.strip())
        flush()
        return "\n".join(out)


def _help_columns() -> int:
    """``shutil.get_terminal_size().columns``, as it computes it: ``COLUMNS`` when a positive
    integer, else the terminal of ``sys.__stdout__``, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns


def _use_color() -> bool:
    """Colour only on a terminal, and not when ``NO_COLOR`` is set to a non-empty value
    (https://no-color.org: "when present and not an empty string") or ``TERM=dumb``."""
    stream = sys.stdout
    return (stream is not None and stream.isatty() and not os.environ.get("NO_COLOR")
            and os.environ.get("TERM") != "dumb")


def _emit(value: object, fmt: str, kind: str, *, module: str | None = None,
          **options: Any) -> int:
    """Render with ``report.<module>.<kind>_<fmt>``; *module* defaults to ``jsonout`` for JSON
    and ``text`` for text.  The module is imported only when used (rich costs ~30 ms of
    start-up that JSON callers skip); text renderers get ``color=`` and ``width=``, the
    terminal width read here once (``COLUMNS``, else the tty, else 80:
    :func:`numaguard.report.term.terminal_width`)."""
    if module is None:
        module = {"json": "jsonout", "text": "text"}[fmt]
    render = getattr(importlib.import_module(f"numaguard.report.{module}"), f"{kind}_{fmt}")
    if fmt == "text":
        text = render(value, width=_width(), color=_use_color(), **options)
    else:
        text = render(value)
    sys.stdout.write(text)
    return EXIT_OK


def _width() -> int:
    from numaguard.report.term import terminal_width

    return terminal_width(os.environ, sys.stdout)


def cmd_topology(args: argparse.Namespace) -> int:
    from numaguard.readers.sources import LocalSource, PathSource, load_host, open_source

    source = open_source(_paths(args.source), args.connect)
    if isinstance(source, (LocalSource, PathSource)):   # no guests to read for a topology
        host = load_host(args.source)
    else:
        host = source.read().host
    return _emit(host, args.format, "topology")


def cmd_guests(args: argparse.Namespace) -> int:
    from numaguard.readers.sources import LibvirtSource, load_guests_partial, open_source

    source = open_source(_paths(args.source), args.connect)
    if isinstance(source, LibvirtSource):
        inventory = source.read()
        guests, problems, notes = list(inventory.guests), inventory.problems, inventory.notes
    else:
        guests, problems = load_guests_partial(args.source)
        notes = ()
    _emit(guests, args.format, "guests")
    return _incomplete("guests", problems, notes, len(guests)) or EXIT_OK


def _paths(source: str | None) -> tuple[str, ...]:
    return () if source is None else (source,)


def _incomplete(command: str, problems: Sequence[Any], notes: Sequence[str], read: int) -> int:
    """Say what could not be read (one line each) and what was skipped; ``EXIT_ERROR`` when
    something could not be read (the output covers the rest), else 0."""
    for note in notes:
        sys.stderr.write(printable(f"numaguard {command}: {note}") + "\n")
    if not problems:
        return 0
    for problem in problems:
        sys.stderr.write(printable(f"numaguard {command}: {problem}") + "\n")
    files = len({p.where for p in problems})
    sys.stderr.write(printable(
        f"numaguard {command}: input incomplete: {files} domain definition"
        f"{'s' if files != 1 else ''} could not be read; the output covers the other "
        f"{read} guest{'s' if read != 1 else ''} (exit 2)") + "\n")
    return EXIT_ERROR


def cmd_snapshot(args: argparse.Namespace) -> int:
    from numaguard.readers.sources import LIBVIRT_QEMU_DIR, default_uri
    from numaguard.writers.snapshot import capture_snapshot

    uri = args.connect
    if uri is not None and args.libvirt_dir is not None:
        raise NumaguardError("give -c/--connect or --libvirt-dir, not both")
    if uri is None and args.libvirt_dir is None and args.root is None:
        uri = default_uri(os.environ)    # libvirt when it runs here: transient guests too
    summary = capture_snapshot(args.directory, root=args.root or "/",
                               libvirt_dir=args.libvirt_dir or LIBVIRT_QEMU_DIR, uri=uri)
    sys.stdout.write(printable(summary) + "\n")
    return EXIT_OK


def _audit_options(args: argparse.Namespace) -> dict[str, Any]:
    """AuditOptions keyword arguments from the command line; a bad value is a one-line error
    naming its option."""
    from numaguard.core.capacity import parse_reserve
    from numaguard.units import parse_size

    opts: dict[str, Any] = {}
    if args.host_reserve is not None:
        opts["host_reserve"] = parse_reserve(args.host_reserve)
    try:
        opts["min_headroom"] = parse_size(args.min_headroom)
    except ParseError as exc:
        raise ParseError(exc.reason, field="--min-headroom") from None
    try:
        ratio = float(args.cpu_overcommit)
    except ValueError:
        ratio = math.nan
    if not (math.isfinite(ratio) and ratio > 0):
        raise ParseError(f"invalid ratio {args.cpu_overcommit!r}: expected a positive number "
                         "such as 1.5", field="--cpu-overcommit")
    opts["cpu_overcommit_ratio"] = ratio
    if getattr(args, "orders", None) is not None:
        opts["random_orders"] = args.orders
    return opts


def _known_rules() -> dict[str, Any]:
    from numaguard.core.rules import all_rules

    return {r.id: r for r in all_rules()}


def _unknown_rule(rule_id: str, known: dict[str, Any]) -> str:
    listing = ", ".join(known) if known else "none are registered"
    return f"unknown rule {rule_id!r} (known: {listing})"


def _selected_rules(values: list[str] | None) -> list[str] | None:
    """``--rule NG101 --rule ng102,NG103`` -> ["NG101", "NG102", "NG103"]."""
    if not values:
        return None
    known = _known_rules()
    wanted: list[str] = []
    for item in (i.strip() for value in values for i in value.split(",")):
        if item and item.upper() not in known:
            raise ParseError(_unknown_rule(item, known), field="--rule")
        if item and item.upper() not in wanted:
            wanted.append(item.upper())
    if not wanted:
        raise ParseError("expected a rule ID such as NG101", field="--rule")
    return wanted


def _orders_count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 3:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected 0 to 999")
    return int(text)


def exit_code(worst: Any, fail_on: str) -> int:
    """0 when no finding is at or above *fail_on* (``never``: always 0), else 1."""
    from numaguard.core.findings import Severity

    if fail_on == "never" or worst is None:
        return EXIT_OK
    return EXIT_FINDINGS if worst >= Severity.parse(fail_on) else EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from numaguard.core.rules import AuditOptions, audit_inventory
    from numaguard.readers.sources import open_source

    opts = _audit_options(args)  # options first: a typo fails before any reading
    only = _selected_rules(args.rule)
    if args.summary and args.format != "text":
        raise NumaguardError("--summary goes with --format text")
    connect = args.connect or []
    if len(connect) > 1:
        raise NumaguardError("one -c/--connect URI per audit (a fleet run is not here yet)")
    inventory = open_source(args.sources, connect[0] if connect else None).read()
    options = AuditOptions(refs=_command_refs(inventory), **opts)
    result = audit_inventory(inventory, options, only=only)
    incomplete = _incomplete("audit", inventory.problems, inventory.notes,
                             len(inventory.guests)) if not args.nagios else 0
    if args.nagios:   # the monitoring-plugin status line and state (report/nagios.py)
        from numaguard.report.nagios import nagios_status

        line, state = nagios_status(result)
        if inventory.problems and state < 2:   # CRITICAL stays; else UNKNOWN: input missing
            line = line.rstrip("\n") + f" (incomplete: {len(inventory.problems)} problem" \
                f"{'s' if len(inventory.problems) != 1 else ''} reading the guests)\n"
            state = 3
        sys.stdout.write(line)
        return state
    _emit(result, args.format, "audit", module="audit",
          **({"summary": True} if args.summary else {}))
    return incomplete or exit_code(result.worst(), args.fail_on)


def _command_refs(loaded: Any) -> Any:
    """How printed ``numaguard fix`` lines name guests: by name on this machine, by name and
    ``-c URI`` through libvirt; else by their domain XML file, plus ``--host SOURCE`` unless
    the file lies in that snapshot's domains/."""
    from numaguard.core.rules import LIVE_REFS, CommandRefs

    if loaded.uri is not None:
        return CommandRefs(connect=loaded.uri)
    if loaded.live:
        return LIVE_REFS
    host = loaded.host_source
    paths = {g.name: g.source for g in loaded.guests if g.source}
    if host is None:
        return CommandRefs(None, paths)
    domains = os.path.join(os.path.abspath(host), "domains")
    folders = {os.path.dirname(p) for p in paths.values()}   # a snapshot: one folder
    inside = all(os.path.abspath(folder) == domains for folder in folders)
    return CommandRefs(None if inside else host, paths)


def cmd_explain(args: argparse.Namespace) -> int:
    from numaguard.report import rules as docs

    if args.all and args.rule:
        raise NumaguardError("give a rule ID or --all, not both")
    if args.all:
        sys.stdout.write(docs.rules_markdown() if args.format == "markdown"
                         else docs.rules_text())
        return EXIT_OK
    if not args.rule:
        raise NumaguardError("name a rule ID (e.g. NG101) or --all")
    known = _known_rules()
    rule = known.get(args.rule.strip().upper())
    if rule is None:
        raise NumaguardError(_unknown_rule(args.rule, known))
    sys.stdout.write(docs.explain_markdown(rule) if args.format == "markdown"
                     else docs.explain_text(rule))
    return EXIT_OK


def cmd_rules(args: argparse.Namespace) -> int:
    args.all, args.rule = True, None
    return cmd_explain(args)


def _compare_modes(text: str) -> list[str]:
    from numaguard.core.scenario import MODES

    modes: list[str] = []
    for item in (i.strip().lower() for i in text.split(",")):
        if not item:
            continue
        if item not in MODES:
            raise ParseError(f"unknown mode {item!r} (known: {', '.join(MODES)})",
                             field="--compare")
        if item not in modes:
            modes.append(item)
    if not modes:
        raise ParseError("expected modes such as strict,preferred,interleave", field="--compare")
    return modes


def _plot_format(path: str, option: str = "--plot") -> str:
    from numaguard.report.plots import FORMATS

    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise ParseError(f"{path!r}: expected a file name ending in .png or .svg", field=option)
    return ext


def cmd_simulate(args: argparse.Namespace) -> int:
    from numaguard.core.scenario import compare, play
    from numaguard.readers.scenario import load_scenario

    modes = _compare_modes(args.compare) if args.compare is not None else None
    plots = [(path, _plot_format(path, option), kind)
             for path, option, kind in ((args.plot, "--plot", "bars"),
                                        (args.plot_steps, "--plot-steps", "steps"))
             if path is not None]
    if args.connect is not None:
        from numaguard.readers.scenario import inventory_scenario
        from numaguard.readers.sources import open_source

        if args.source is not None:
            raise NumaguardError("give a SOURCE or -c/--connect, not both")
        scenario = inventory_scenario(open_source((), args.connect).read(), order=args.order)
    elif args.source is None:
        raise NumaguardError("give a scenario .toml file, a snapshot dir or -c/--connect URI")
    else:
        scenario = load_scenario(args.source, order=args.order)
    runs = compare(scenario, modes) if modes else (play(scenario),)
    if plots:
        from numaguard.report.plots import render_plot
        from numaguard.writers.xml_patch import OUTPUT_MODE, write_atomic

        for path, fmt, kind in plots:
            write_atomic(path, render_plot(runs, fmt, kind), mode=OUTPUT_MODE,
                         follow_symlinks=args.follow_symlinks)
    _emit(runs, args.format, "simulate", module="simulate")
    return EXIT_FINDINGS if any(r.troubled for r in runs) else EXIT_OK


FIX_EPILOG = """\
GUEST|FILE: a domain XML file, or a guest name looked up in the snapshot given with --host
SNAPSHOT or in /etc/libvirt/qemu (--apply: a domain name on the libvirt connection).

Output (one of):
  --diff     (default) a dry run: the unified diff of the domain XML, then the guest's findings
             before -> after the change (re-audited) and when the change takes effect
  --xml      the whole edited XML on stdout
  --virsh    the equivalent virsh lines (shell-quoted), `virsh define` for <memnode> changes
  --write    replace FILE atomically, keeping FILE.numaguard-YYYYmmddTHHMMSS.bak
  --apply    define the edited persistent XML through libvirt (--connect URI, default
             qemu:///system), refused if the domain changed since it was read; the old XML is
             saved first in --backup-dir (default .) as DOMAIN.numaguard-YYYYmmddTHHMMSS.xml

Only <numatune> changes; every other byte of the XML is kept.  The host (for the nodeset check
and the re-audit) is --host SOURCE, else the snapshot FILE lives in, else this machine (--apply:
the connection's capabilities).  libvirt never changes the mode of a running guest: a change
takes effect at the next cold boot (virsh shutdown + start; a reboot inside the guest is not
enough); only a restrictive guest's nodeset can change live.

exit codes:
  0  done (or nothing to change for --recommended)
  2  refused or failed, nothing written: one line naming the file and the field
  3  internal error: a bug in numaguard (NUMAGUARD_DEBUG=1 shows the traceback)

examples:
  numaguard fix examples/article-host/domains/vm1.xml --recommended
  numaguard fix vm1 --host examples/article-host --mode preferred --nodeset 0 --virsh
  numaguard fix /etc/libvirt/qemu/db.xml --memnode 1:preferred:1 --write
  numaguard fix vm1 --mode interleave --nodeset 0-1 --apply --connect qemu:///system
"""


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
        inventory = dataclasses.replace(inventory, host=world.host, facts=world.facts,
                                        host_source=host_source)
    return inventory, None, notes


def _fix_replay(args: argparse.Namespace, output: str) -> str:
    """This command line with another output option (the line that saves the edited XML before `virsh define`)."""
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


CONNECT_HELP = ("read the host and guests through libvirt at this URI, as virsh -c (e.g. "
                "qemu:///system, qemu+ssh://HOST/system); default without SOURCE: "
                "$LIBVIRT_DEFAULT_URI, else qemu:///system when libvirtd runs here, else "
                "this machine's files")


def _connect_argument(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    p.add_argument("-c", "--connect", metavar="URI", action="append" if many else "store",
                   help=CONNECT_HELP)


def _topology_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="snapshot dir, sysfs root, numactl -H file or capabilities XML "
                        "(default: this machine)")
    _connect_argument(p)
    p.add_argument("--format", choices=("text", "json"), default="text")


def _guests_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="snapshot dir, domain XML file or folder of them "
                        "(default: libvirt when it runs here, else /etc/libvirt/qemu)")
    _connect_argument(p)
    p.add_argument("--format", choices=("text", "json"), default="text")


def _snapshot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", metavar="DIR")
    _connect_argument(p)
    p.add_argument("--root", help="filesystem root to read sys/ and proc/ from (default: /)")
    p.add_argument("--libvirt-dir",
                   help="folder of domain XMLs to copy instead of asking libvirt (default: "
                        "libvirt when it runs here, else /etc/libvirt/qemu; files that "
                        "cannot be read are skipped and named)")


def _audit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="snapshot dir, or a topology source plus domain XML files/folders "
                        "(default: this machine)")
    _connect_argument(p, many=True)
    output = p.add_mutually_exclusive_group()
    output.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    output.add_argument("--nagios", action="store_true",
                        help="be a Nagios/Icinga plugin: one status line with per-node "
                             "headroom as performance data, exit 0 OK, 1 WARNING, 2 CRITICAL, "
                             "3 UNKNOWN (--fail-on is not used)")
    p.add_argument("--fail-on", choices=FAIL_ON, default="critical",
                   help="exit 1 when a finding is at or above this severity (default: "
                        "critical)")
    p.add_argument("--host-reserve", metavar="SIZE|PCT",
                   help="memory per node kept for the kernel and host processes, e.g. 2GiB "
                        "or 8%% (default: max(1 GiB, 5%% of the node's MemTotal))")
    p.add_argument("--min-headroom", metavar="SIZE", default="4GiB",
                   help="warn when bound guests leave a node less than this (default: 4GiB)")
    p.add_argument("--cpu-overcommit", metavar="RATIO", default="1.0",
                   help="vCPUs pinned per hardware thread of a node before NG204 warns "
                        "(default: 1.0)")
    p.add_argument("--rule", action="append", metavar="ID",
                   help="run only this rule (repeatable, or comma-separated)")
    p.add_argument("--summary", action="store_true",
                   help="print only the verdict and the per-node table (text format)")
    p.add_argument("--orders", metavar="N", type=_orders_count, default=None,
                   help="shuffled start orders NG110 simulates besides the named ones "
                        "(default: 4)")


def _simulate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", nargs="?",
                   help="scenario .toml file or snapshot dir")
    p.add_argument("-c", "--connect", metavar="URI",
                   help="simulate the guests libvirt has at this URI (as virsh -c) touching "
                        "all their memory, as for a snapshot")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--order", metavar="NAME",
                   help="a snapshot's start order: recorded (the default when the snapshot "
                        "has one), bound-last (else the default), largest-first, "
                        "smallest-first, name, random-N — the orders the audit plays")
    p.add_argument("--compare", metavar="MODES",
                   help="run once per libvirt mode, side by side, e.g. strict,preferred,"
                        "interleave")
    p.add_argument("--plot", metavar="FILE",
                   help="also draw the end of the run into FILE (.png or .svg): per node each "
                        "task's bytes, a swap column, each task's nodeset, who was OOM-killed "
                        "at which step (needs matplotlib; mode 0644 minus the umask)")
    p.add_argument("--plot-steps", metavar="FILE",
                   help="also draw the run step by step into FILE (.png or .svg): memory taken "
                        "per node, swap, OOM kills")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="when a --plot/--plot-steps FILE is a symbolic link, write the file it "
                        "points to; without it a link is refused")


def _explain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rule", nargs="?", metavar="RULE", help="a rule ID such as NG101")
    p.add_argument("--all", action="store_true", help="every rule")
    p.add_argument("--format", choices=("text", "markdown"), default="text")


def _rules_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "markdown"), default="text")


#: every command: its arguments, then sub.add_parser's name, function, help, description
#: [, epilog]; in the order ``numaguard --help`` lists them
COMMANDS: tuple[tuple[Any, ...], ...] = (
    (_topology_arguments, "topology", cmd_topology,
     "show the host's NUMA nodes (like numactl -H)",
     "Per node: CPUs, total and free memory, hugepages; the distance matrix; swap."),
    (_guests_arguments, "guests", cmd_guests,
     "show each guest's memory, vCPUs, pinning and NUMA policy",
     ("Per guest: memory, vCPUs, pinning and the effective memory policy of each guest "
     "NUMA cell, resolved the way libvirt resolves it (implicit strict marked).")),
    (_snapshot_arguments, "snapshot", cmd_snapshot,
     "capture this machine's topology and guests into DIR",
     ("Copy the sysfs/proc files numaguard reads into DIR/host/ and the readable domain "
     "XMLs into DIR/domains/: an offline unit of work for support bundles and fleets. "
     "DIR must not exist yet; it appears complete or not at all.")),
    (_audit_arguments, "audit", cmd_audit,
     "find NUMA memory and CPU risks, with the fix for each",
     ("Run every rule (`numaguard explain --all`) over the host and its guests: a "
     "summary of each node's capacity, bound memory and headroom, then every finding "
     "grouped by severity with its evidence and the change that fixes it."),
     AUDIT_EPILOG),
    (_simulate_arguments, "simulate", cmd_simulate,
     "play allocations on the host: where pages land, swap, OOM kills",
     ("Follow the kernel's page allocator step by step (zonelist fallback, memory "
     "policies, cpuset.mems, watermarks, reclaim, swap, the OOM killer): per step and at "
     "the end, the bytes of every task on every node, per-node free memory, swap and "
     "OOM events."), SIMULATE_EPILOG),
    (_explain_arguments, "explain", cmd_explain,
     "print a rule's documentation (--all: every rule)",
     ("Print the documentation of a rule (its ID, name and docstring) as plain text "
     "wrapped to the terminal, or with --all one entry per rule.  `--all --format "
     "markdown` is docs/rules.md.")),
    (_rules_arguments, "rules", cmd_rules,
     "list every rule (same as `explain --all`)",
     ("One entry per rule: ID, name, summary (wrapped to the terminal on indented "
     "lines).  `numaguard explain ID` prints one in full.")),
    (_fix_arguments, "fix", cmd_fix,
     "change a guest's <numatune> safely: diff, XML, virsh lines, file edit or libvirt apply",
     ("Change one guest's NUMA memory tuning exactly: only <numatune> changes, every "
     "other byte of the domain XML is kept; the result is checked the way libvirt "
     "checks it, re-audited, and its effect explained."), FIX_EPILOG),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with a known *command*, only that command's arguments are built (what
    parses and every message about it are the same).  Without one: every command's."""
    parser = _Parser(
        prog="numaguard",
        description="Audit, simulate and fix NUMA memory policies of KVM/libvirt guests.",
        epilog=EPILOG,
    )
    parser.add_argument("-V", "--version", action="version", version=f"numaguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str,
            description: str, epilog: str = EPILOG) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=description, epilog=epilog)
        # the module's function of that name now, as a direct reference in this function
        # would be: replacing cli.cmd_topology (the hostile tests do) still takes effect
        p.set_defaults(func=globals()[fn.__name__])
        return p

    # every command is listed (top-level help, "invalid choice"), but only the one being run
    # gets its arguments: the others' ~200 add_argument calls are most of the parser's cost
    known = command in {entry[1] for entry in COMMANDS}
    for arguments, *spec in COMMANDS:
        p = add(*spec)
        if not known or spec[0] == command:
            arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code of the module docstring.

    This is the one error boundary: whatever goes wrong below comes out as one line per
    problem on stderr (``numaguard COMMAND: …``, data shown :func:`printable`) and a
    documented exit code, never a traceback.  ``NUMAGUARD_DEBUG=1`` lets an internal error
    raise, for a bug report."""
    if sys.stderr is None:          # started with fd 2 closed: nowhere to say anything
        return EXIT_ERROR
    if sys.stdout is None:
        sys.stderr.write("numaguard: standard output is closed; nothing can be printed\n")
        return EXIT_ERROR
    for stream in (sys.stdout, sys.stderr):
        # a non-UTF-8 locale or PYTHONIOENCODING=ascii: escape what it cannot show
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    argv = sys.argv[1:] if argv is None else list(argv)
    # `audit --nagios`: every error is the plugin state UNKNOWN on stdout (exit 3), even one in
    # the command line itself, found before --nagios is parsed
    options = argv[:argv.index("--")] if "--" in argv else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    nagios = command == "audit" and "--nagios" in options
    fail = _nagios_unknown if nagios else _fail
    parser = build_parser(command)
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:  # its message names the command: "numaguard audit: …"
        return fail(None, str(exc), EXIT_ERROR)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    prog = f"numaguard {args.command}"
    with signals_unwind(), _no_cyclic_gc():   # SIGTERM/SIGHUP unwind: every finally removes
        try:                                  # its temp files
            code = args.func(args)
            sys.stdout.flush()      # inside the boundary: a full disk or a closed pipe is an error
            return code
        except NumaguardError as exc:
            return fail(prog, str(exc) or type(exc).__name__, EXIT_ERROR)
        except BrokenPipeError:
            # `numaguard guests | head`: stop quietly, as coreutils do.
            _silence_stdout()
            return EXIT_OK
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename is not None else "output: "
            if exc.filename is None:
                _silence_stdout()
            return fail(prog, f"{where}{exc.strerror or exc}", EXIT_ERROR)
        except UnicodeError as exc:
            _silence_stdout()
            return fail(prog, f"cannot show the output in this terminal's encoding ({exc}); "
                         "set LANG=C.UTF-8", EXIT_ERROR)
        except RecursionError:
            return fail(prog, "input nested too deeply to read", EXIT_ERROR)
        except MemoryError:
            return fail(prog, "out of memory (the input is too large to analyse)", EXIT_ERROR)
        except KeyboardInterrupt:
            return 130
        except Exception as exc:  # a bug: one line, exit 3, and how to see the traceback
            if os.environ.get("NUMAGUARD_DEBUG") == "1":
                raise
            return fail(prog, f"internal error: {type(exc).__name__}: {exc} (a bug in "
                         "numaguard; NUMAGUARD_DEBUG=1 shows the traceback)", EXIT_INTERNAL)


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Run one command with Python's cyclic garbage collector paused, as it was before after.

    A command is one short process that builds its data once and drops it at exit; what it
    makes is freed by reference counting, and the few cycles (the simulator's task/chunk
    links) live until exit anyway.  The collector's passes over the growing heap cost ~35 ms
    of a 16 x 1,000 audit (300 -> 266 ms, whole process) and ~1 s at 10,000 guests, with the
    same peak memory either way (740 MB at 10,000 guests; issue 11).  A long-running caller
    (an exporter) must not use this: it would keep every cycle it ever made."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _fail(prog: str | None, message: str, code: int) -> int:
    """Print *message* on stderr as lines ``PROG: line``, each shown printable; return *code*."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        _silence_stdout()
    lead = f"{prog}: " if prog else ""
    try:
        sys.stderr.write("".join(f"{lead}{printable(line)}\n"
                                 for line in message.splitlines() or [message]))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr itself is gone: the exit code still says it
    return code


def _nagios_unknown(prog: str | None, message: str, code: int) -> int:
    """An error in ``audit --nagios``: the UNKNOWN status line on stdout, where monitoring
    reads a plugin (nothing on stderr), and exit 3 — whatever *code* the error would have."""
    from numaguard.report.nagios import UNKNOWN, unknown

    del prog, code
    try:
        sys.stdout.write(unknown(message))
        sys.stdout.flush()
    except (OSError, ValueError):
        _silence_stdout()
    return UNKNOWN


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null, so the interpreter's last flush of what could not be written
    does not fail again (``Exception ignored … BrokenPipeError``) after we reported it."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def run() -> NoReturn:
    """The ``numaguard`` script and ``python -m numaguard``: :func:`main`, then exit.

    Before the interpreter's own shutdown, every object still alive is moved out of the
    cyclic collector's reach (``gc.freeze``): shutdown runs one full collection whatever
    ``gc.disable`` says, and walking what a large audit leaves behind (memos, caches,
    modules) cost ~7 ms of a 16 x 1,000 audit's exit (12 -> 5 ms).  Shutdown itself — atexit,
    flushing and closing files — runs as usual.  Only here, at the process's end: a caller
    of :func:`main` in a long-lived process keeps its collector untouched."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()

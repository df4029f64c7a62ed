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

This package is the parser, the boundary and what every command shares (the exit codes, the
``--help`` formatter, rendering); each command lives in its own module (``cli/audit.py``:
``cmd_audit`` and ``_audit_arguments``, listed in :data:`COMMANDS`), imported only when that
command runs (:func:`build_parser`) and reached as ``numaguard.cli.cmd_audit``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import sys
import textwrap
from collections.abc import Iterator, Sequence

from numaguard import __version__
from numaguard.display import printable
from numaguard.errors import NumaguardError
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


PLAN_EPILOG = """\
SOURCE as for audit (a snapshot, or a topology source plus domain XMLs), or -c URI.

exit codes:
  0  every guest placed and the planned host audits with no critical finding
  1  some guest not placed (the proof says why), or the planned host keeps a
     critical finding
  2  bad input, unreadable source or bad option value (one line per problem)
  3  internal error: a bug in numaguard (NUMAGUARD_DEBUG=1 shows the traceback)

examples:
  numaguard plan examples/article-host
  numaguard plan examples/article-host --format json
  numaguard plan /srv/snapshots/hv07 --keep db --max-moves 2 --new new-guest.xml
  numaguard plan -c qemu:///system --apply
"""


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


def _paths(source: str | None) -> tuple[str, ...]:
    return () if source is None else (source,)


CONNECT_HELP = ("read the host and guests through libvirt at this URI, as virsh -c (e.g. "
                "qemu:///system, qemu+ssh://HOST/system); default without SOURCE: "
                "$LIBVIRT_DEFAULT_URI, else qemu:///system when libvirtd runs here, else "
                "this machine's files")


def _connect_argument(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    p.add_argument("-c", "--connect", metavar="URI", action="append" if many else "store",
                   help=CONNECT_HELP)


#: every command: the module of this package that runs it (``cmd_NAME`` and its arguments,
#: ``_NAME_arguments``), then sub.add_parser's name, help, description [, epilog]; in the
#: order ``numaguard --help`` lists them
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("topology", "topology",
     "show the host's NUMA nodes (like numactl -H)",
     "Per node: CPUs, total and free memory, hugepages; the distance matrix; swap."),
    ("guests", "guests",
     "show each guest's memory, vCPUs, pinning and NUMA policy",
     ("Per guest: memory, vCPUs, pinning and the effective memory policy of each guest "
     "NUMA cell, resolved the way libvirt resolves it (implicit strict marked).")),
    ("snapshot", "snapshot",
     "capture this machine's topology and guests into DIR",
     ("Copy the sysfs/proc files numaguard reads into DIR/host/ and the readable domain "
     "XMLs into DIR/domains/: an offline unit of work for support bundles and fleets. "
     "DIR must not exist yet; it appears complete or not at all.")),
    ("audit", "audit",
     "find NUMA memory and CPU risks, with the fix for each",
     ("Run every rule (`numaguard explain --all`) over the host and its guests: a "
     "summary of each node's capacity, bound memory and headroom, then every finding "
     "grouped by severity with its evidence and the change that fixes it."),
     AUDIT_EPILOG),
    ("top", "top",
     "show what each running guest holds on each node now, and who would be OOM-killed",
     ("One bar per node (guests, host, free, strict pledges), the running guests' memory "
      "per node with their locality, mode and nodeset, and the live what-if: who the kernel "
      "would OOM-kill if every running guest grew to its full size now. Refreshes every -n "
      "seconds; --once prints one frame.")),
    ("simulate", "simulate",
     "play allocations on the host: where pages land, swap, OOM kills",
     ("Follow the kernel's page allocator step by step (zonelist fallback, memory "
     "policies, cpuset.mems, watermarks, reclaim, swap, the OOM killer): per step and at "
     "the end, the bytes of every task on every node, per-node free memory, swap and "
     "OOM events."), SIMULATE_EPILOG),
    ("explain", "explain",
     "print a rule's documentation (--all: every rule)",
     ("Print the documentation of a rule (its ID, name and docstring) as plain text "
     "wrapped to the terminal, or with --all one entry per rule.  `--all --format "
     "markdown` is docs/rules.md.")),
    ("explain", "rules",
     "list every rule (same as `explain --all`)",
     ("One entry per rule: ID, name, summary (wrapped to the terminal on indented "
     "lines).  `numaguard explain ID` prints one in full.")),
    ("fix", "fix",
     "change a guest's <numatune> safely: diff, XML, virsh lines, file edit or libvirt apply",
     ("Change one guest's NUMA memory tuning exactly: only <numatune> changes, every "
     "other byte of the domain XML is kept; the result is checked the way libvirt "
     "checks it, re-audited, and its effect explained."), FIX_EPILOG),
    ("plan", "plan",
     "place guests on NUMA nodes with a solver: nodes, mode, pins, and the changes as fixes",
     ("Place every guest (and --new ones) on the host's nodes: its memory nodes, mode and "
      "nodeset, its vCPU pins; the objective values with the solver's gap, independent "
      "bounds, a proof when not every guest fits, the audit of the planned host and the "
      "changes as numaguard fix and virsh lines (docs/plan.md)."), PLAN_EPILOG),
    ("exporter", "exporter",
     "serve the audit as Prometheus metrics (HTTP on loopback, or a node_exporter textfile)",
     ("Read SOURCE (or -c URI) again and audit it at every scrape: per-node memory, bound "
     "memory and headroom, each guest's policy, the findings and the OOM kills the audit "
     "predicts, as numaguard_* metrics (docs/exporter.md).  Serves until SIGTERM."),
     "exit codes:\n  0  stopped by SIGTERM, or the textfile written\n  2  bad input, "
     "unreadable source, bad option value, or (--textfile) a failed read\n     (the file "
     "then says numaguard_scrape_success 0)\n  3  internal error: a bug in numaguard\n\n"
     "examples:\n  numaguard exporter examples/article-host\n  numaguard exporter -c "
     "qemu:///system --listen 127.0.0.1:9177\n  numaguard exporter --textfile "
     "/var/lib/prometheus/node-exporter/numaguard.prom\n"),
)

#: command name -> its module in this package
_MODULE_OF = {name: module for module, name, *_ in COMMANDS}


def __getattr__(name: str) -> Any:
    """``cmd_NAME`` and ``_NAME_arguments`` of every command, as attributes of this package:
    taken from the command's module, which is imported only now, on first use (PEP 562; the
    modules of the commands not being run are never imported).  A name assigned here
    (``cli.cmd_topology = …``, as the hostile tests do) is found before this is asked."""
    if name.startswith("cmd_"):
        command = name[len("cmd_"):]
    elif name.startswith("_") and name.endswith("_arguments"):
        command = name[1:-len("_arguments")]
    else:
        command = ""
    if command not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[command]}"), name)


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
    package = sys.modules[__name__]
    # every command is listed (top-level help, "invalid choice"), but only the one being run
    # gets its arguments and its function, and only its module is imported: the others'
    # ~200 add_argument calls are most of the parser's cost
    known = command in _MODULE_OF
    for _module, name, help_, description, *epilog in COMMANDS:
        p = sub.add_parser(name, help=help_, description=description,
                           epilog=epilog[0] if epilog else EPILOG)
        if not known or name == command:
            getattr(package, f"_{name}_arguments")(p)
            # the package's function of that name now, not a reference taken earlier:
            # replacing cli.cmd_topology (the hostile tests do) still takes effect
            p.set_defaults(func=getattr(package, f"cmd_{name}"))
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


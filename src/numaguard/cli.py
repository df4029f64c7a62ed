"""numaguard command line.

Exit codes (every command):
  0  success
  1  findings at or above --fail-on (commands that audit)
  2  bad input or unreadable source: one line per problem, ``file:line: field: what is wrong``;
     a bad option or option value is one line naming the option
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from numaguard import __version__
from numaguard.errors import NumaguardError, ParseError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2

EPILOG = """\
SOURCE is a snapshot directory (host/ + domains/, see `numaguard snapshot`), a captured sysfs
root, a `numactl -H` text file, a `virsh capabilities` XML file, a domain XML file or a folder of
them.  Without SOURCE numaguard reads this machine (/sys, /proc, /etc/libvirt/qemu).

exit codes:
  0  success
  1  findings at or above --fail-on (audit)
  2  bad input or unreadable source (one line per problem: file:line: field: what is wrong),
     or a bad option value (one line naming the option)
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

examples:
  numaguard audit examples/article-host
  numaguard audit --fail-on warning --format json /srv/snapshots/hv07 > hv07.json
  numaguard audit capabilities.xml domains/ --rule NG101 --min-headroom 8GiB
"""

FAIL_ON = ("critical", "warning", "info", "never")


class _UsageError(Exception):
    """A bad command line: the CLI prints it as one line and exits with code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``numaguard audit: argument --fail-on: …``)
    raised to :func:`main`, not usage text and ``sys.exit`` from deep inside parsing."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def _use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _emit(value: object, fmt: str, kind: str, *, module: str | None = None) -> int:
    """Render with ``report.<module>.<kind>_<fmt>``; *module* defaults to ``jsonout`` for JSON
    and ``text`` for text.  The module is imported only when used (rich costs ~30 ms of
    start-up that JSON callers skip); text renderers get ``color=``."""
    if module is None:
        module = {"json": "jsonout", "text": "text"}[fmt]
    render = getattr(importlib.import_module(f"numaguard.report.{module}"), f"{kind}_{fmt}")
    sys.stdout.write(render(value, color=_use_color()) if fmt == "text" else render(value))
    return EXIT_OK


def cmd_topology(args: argparse.Namespace) -> int:
    from numaguard.readers.sources import load_host

    return _emit(load_host(args.source), args.format, "topology")


def cmd_guests(args: argparse.Namespace) -> int:
    from numaguard.readers.sources import load_guests

    return _emit(load_guests(args.source), args.format, "guests")


def cmd_snapshot(args: argparse.Namespace) -> int:
    from numaguard.writers.snapshot import capture_snapshot

    summary = capture_snapshot(args.directory, root=args.root, libvirt_dir=args.libvirt_dir)
    sys.stdout.write(summary + "\n")
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


def exit_code(worst: Any, fail_on: str) -> int:
    """0 when no finding is at or above *fail_on* (``never``: always 0), else 1."""
    from numaguard.core.findings import Severity

    if fail_on == "never" or worst is None:
        return EXIT_OK
    return EXIT_FINDINGS if worst >= Severity.parse(fail_on) else EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from numaguard.core.rules import AuditOptions, audit
    from numaguard.readers.sources import load_audit_input

    opts = _audit_options(args)  # options first: a typo fails before any reading
    only = _selected_rules(args.rule)
    loaded = load_audit_input(args.sources)
    options = AuditOptions(kernel_release=loaded.kernel_release,
                           numad_installed=loaded.numad_installed, **opts)
    result = audit(loaded.host, loaded.guests, options, only=only)
    _emit(result, args.format, "audit", module="audit")
    return exit_code(result.worst(), args.fail_on)


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="numaguard",
        description="Audit, simulate and fix NUMA memory policies of KVM/libvirt guests.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"numaguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str,
            description: str, epilog: str = EPILOG) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=description, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=fn)
        return p

    p = add("topology", cmd_topology, "show the host's NUMA nodes (like numactl -H)",
            "Per node: CPUs, total and free memory, hugepages; the distance matrix; swap.")
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="snapshot dir, sysfs root, numactl -H file or capabilities XML "
                        "(default: this machine)")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = add("guests", cmd_guests, "show each guest's memory, vCPUs, pinning and NUMA policy",
            "Per guest: memory, vCPUs, pinning and the effective memory policy of each guest "
            "NUMA cell, resolved the way libvirt resolves it (implicit strict marked).")
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="snapshot dir, domain XML file or folder of them "
                        "(default: /etc/libvirt/qemu)")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = add("snapshot", cmd_snapshot, "capture this machine's topology and guests into DIR",
            "Copy the sysfs/proc files numaguard reads into DIR/host/ and the readable domain "
            "XMLs into DIR/domains/: an offline unit of work for support bundles and fleets. "
            "DIR must not exist yet; it appears complete or not at all.")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--root", default="/", help="filesystem root to read sys/ and proc/ from")
    p.add_argument("--libvirt-dir", default="/etc/libvirt/qemu",
                   help="folder of domain XMLs to copy (skipped when unreadable)")

    p = add("audit", cmd_audit, "find NUMA memory and CPU risks, with the fix for each",
            "Run every rule (`numaguard explain --all`) over the host and its guests: a "
            "summary of each node's capacity, bound memory and headroom, then every finding "
            "grouped by severity with its evidence and the change that fixes it.",
            AUDIT_EPILOG)
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="snapshot dir, or a topology source plus domain XML files/folders "
                        "(default: this machine)")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text")
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

    explain_help = "print a rule's documentation (--all: every rule)"
    p = add("explain", cmd_explain, explain_help,
            "Print the documentation of a rule (its ID, name and docstring), or with --all "
            "one line per rule.  `--all --format markdown` is docs/rules.md.")
    p.add_argument("rule", nargs="?", metavar="RULE", help="a rule ID such as NG101")
    p.add_argument("--all", action="store_true", help="every rule")
    p.add_argument("--format", choices=("text", "markdown"), default="text")

    p = add("rules", cmd_rules, "list every rule (same as `explain --all`)",
            "One line per rule: ID, name, summary.  `numaguard explain ID` prints one in full.")
    p.add_argument("--format", choices=("text", "markdown"), default="text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_ERROR
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return args.func(args)
    except NumaguardError as exc:
        sys.stdout.flush()
        prog = f"numaguard {args.command}"
        for line in str(exc).splitlines() or [type(exc).__name__]:
            sys.stderr.write(f"{prog}: {line}\n")
        return EXIT_ERROR
    except BrokenPipeError:
        # `numaguard guests | head`: stop quietly, as coreutils do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

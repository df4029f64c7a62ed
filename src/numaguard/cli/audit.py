"""``numaguard audit``: every rule over the host and its guests; the exit code says the worst
finding (``--fail-on``), or the Nagios plugin state with ``--nagios``."""

from __future__ import annotations

import argparse
import math
import os
import sys

from numaguard.cli import EXIT_FINDINGS, EXIT_OK, _connect_argument, _emit
from numaguard.cli.common import (
    _incomplete,
    _known_rules,
    _unknown_rule,
    add_qemu_overhead,
    qemu_overhead,
    seconds_type,
)
from numaguard.errors import NumaguardError, ParseError

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (see numaguard.cli)
if TYPE_CHECKING:
    from typing import Any


FAIL_ON = ("critical", "warning", "info", "never")


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
    overhead = qemu_overhead(args)
    if overhead is not None:
        opts["qemu_overhead"] = overhead
    if getattr(args, "orders", None) is not None:
        opts["random_orders"] = args.orders
    return opts


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


def _workers_count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected 1 to 256")
    return int(text)


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected 1 to 65535")
    return int(text)


_deadline = seconds_type("deadline")


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


def _is_fleet(args: argparse.Namespace) -> bool:
    """Many hosts: any ``--hosts FILE``, two ``-c URI`` or more, or two SOURCEs or more that
    are all snapshots with a ``host/`` (several other SOURCEs make one host: a topology plus
    guests from several places)."""
    from numaguard.readers.sources import is_snapshot

    connect = args.connect or []
    if args.hosts or len(connect) > 1 or (connect and args.sources):
        return True
    return len(args.sources) > 1 and all(
        os.path.isdir(s) and is_snapshot(s) and os.path.isdir(os.path.join(s, "host"))
        for s in args.sources)


def _audit_fleet(args: argparse.Namespace, opts: dict[str, Any], only: list[str] | None
                 ) -> int:
    from numaguard.cli import _use_color, _width
    from numaguard.fleet import audit_fleet, targets_of

    for flag, given in (("--nagios", args.nagios), ("--summary", args.summary),
                        ("--format markdown", args.format == "markdown")):
        if given:
            raise NumaguardError(f"{flag} audits one host; a fleet run prints a summary table "
                                 "(text) or one JSON document")
    if args.exporter_port is not None and args.file_sd is None:
        raise NumaguardError("--exporter-port goes with --file-sd PATH")
    targets = targets_of(args.hosts or [], args.connect or [], args.sources)
    if args.junit is not None:   # a symlink there is refused now, not after every host
        from numaguard.writers.xml_patch import refuse_link

        refuse_link(args.junit)
    if args.file_sd is not None:
        _write_file_sd(args.file_sd, targets, args.exporter_port)
    return audit_fleet(targets, opts, only=only, fmt=args.format, fail_on=args.fail_on,
                       workers=args.workers, deadline=args.deadline, junit_path=args.junit,
                       width=_width(), color=_use_color())


def _write_file_sd(path: str, targets: list[str], port: int | None) -> None:
    """``--file-sd PATH``: the fleet's exporters as a Prometheus file_sd targets file, written
    before any host is audited (it depends on the host list only: a host that cannot be
    audited is still a target, and Prometheus's ``up`` says whether its exporter answers);
    one line on stderr for the hosts left out."""
    from numaguard.display import printable
    from numaguard.fleet import EXPORTER_PORT, file_sd_targets
    from numaguard.writers.file_sd import write_file_sd

    scrape = file_sd_targets(targets, EXPORTER_PORT if port is None else port)
    write_file_sd(path, scrape.groups)
    if scrape.left_out:
        shown = "; ".join(f"{printable(host)} ({why})" for host, why in scrape.left_out[:5])
        more = f"; and {len(scrape.left_out) - 5} more" if len(scrape.left_out) > 5 else ""
        sys.stderr.write(f"numaguard audit: {printable(path)}: {len(scrape.groups)} of "
                         f"{len(targets)} hosts listed; left out: {shown}{more}\n")


def cmd_audit(args: argparse.Namespace) -> int:
    from numaguard.core.rules import AuditOptions, audit_inventory
    from numaguard.readers.sources import command_refs, live_state, open_source

    opts = _audit_options(args)  # options first: a typo fails before any reading
    only = _selected_rules(args.rule)
    if args.summary and args.format != "text":
        raise NumaguardError("--summary goes with --format text")
    if _is_fleet(args):
        return _audit_fleet(args, opts, only)
    if args.junit is not None or args.workers is not None:
        raise NumaguardError("--junit and --workers go with a fleet run (--hosts FILE, "
                             "several -c URI or several snapshots)")
    if args.file_sd is not None or args.exporter_port is not None:
        raise NumaguardError("--file-sd and --exporter-port go with a fleet run (--hosts "
                             "FILE, several -c URI or several snapshots)")
    connect = args.connect or []
    source = open_source(args.sources, connect[0] if connect else None)
    inventory = source.read()
    options = AuditOptions(refs=command_refs(inventory), **opts)
    result = audit_inventory(inventory, options, only=only,
                             live=live_state(source, inventory))
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


def _audit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="snapshot dir, or a topology source plus domain XML files/folders "
                        "(default: this machine)")
    _connect_argument(p, many=True)
    fleet = p.add_argument_group(
        "fleet", "many hosts at once: --hosts FILE, -c URI more than once, or several "
        "snapshot directories (docs/fleet.md)")
    fleet.add_argument("--hosts", action="append", metavar="FILE",
                       help="a file of hosts, one libvirt URI or snapshot path per line "
                            "(# comments)")
    fleet.add_argument("--workers", metavar="N", type=_workers_count,
                       help="hosts audited at once (default: one per core; at least 8 with "
                            "libvirt URIs)")
    fleet.add_argument("--deadline", metavar="SECONDS", type=_deadline, default=60.0,
                       help="the most one host may take; a host still running then is "
                            "stopped and reported as timed out (default: 60)")
    fleet.add_argument("--junit", metavar="FILE",
                       help="also write a JUnit XML report for CI (one testcase per host)")
    fleet.add_argument("--file-sd", metavar="PATH",
                       help="also write a Prometheus file_sd targets file (NAME.json): each "
                            "host's numaguard exporter, HOST:PORT from its URI (docs/fleet.md)")
    fleet.add_argument("--exporter-port", metavar="PORT", type=_port,
                       help="the port the hosts' numaguard exporter listens on, for "
                            "--file-sd (default: 9177)")
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
    add_qemu_overhead(p)
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

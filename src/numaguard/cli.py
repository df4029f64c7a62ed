"""numaguard command line.

Exit codes (every command):
  0  success
  1  findings at or above --fail-on (commands that audit)
  2  bad input or unreadable source: one line per problem, ``file:line: field: what is wrong``
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from numaguard import __version__
from numaguard.errors import NumaguardError

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
  2  bad input or unreadable source (one line per problem: file:line: field: what is wrong)
"""


def _use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _emit(value: object, fmt: str, kind: str) -> int:
    """Render with ``report.jsonout.<kind>_json`` or ``report.text.<kind>_text``; the module
    is imported only when used (rich costs ~30 ms of start-up that JSON callers skip)."""
    if fmt == "json":
        from numaguard.report import jsonout

        sys.stdout.write(getattr(jsonout, f"{kind}_json")(value))
    else:
        from numaguard.report import text

        sys.stdout.write(getattr(text, f"{kind}_text")(value, color=_use_color()))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numaguard",
        description="Audit, simulate and fix NUMA memory policies of KVM/libvirt guests.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"numaguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str,
            description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=description, epilog=EPILOG,
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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

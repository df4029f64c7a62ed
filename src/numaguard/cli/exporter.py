"""``numaguard exporter``: the audit as Prometheus metrics (docs/exporter.md), over HTTP on
loopback until SIGTERM, or written once to a textfile for node_exporter."""

from __future__ import annotations

import argparse
import sys

from numaguard.cli import _connect_argument
from numaguard.display import printable

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (see numaguard.cli)
if TYPE_CHECKING:
    from typing import Any

    from numaguard.model.inventory import Inventory


def _say(line: str) -> None:
    sys.stderr.write(f"numaguard exporter: {printable(line)}\n")
    sys.stderr.flush()


def _scrape_changed(error: str | None) -> None:
    _say(f"scrape failed: {error}" if error is not None else "scrapes succeed again")


def cmd_exporter(args: argparse.Namespace) -> int:
    from numaguard.exporter.serve import parse_listen

    host, port = parse_listen(args.listen)   # options first: a typo fails before any reading
    from numaguard.exporter.collector import NumaguardCollector
    from numaguard.exporter.serve import registry_for, serve_http, write_textfile
    from numaguard.readers.sources import open_source

    def inventory() -> Inventory:
        return open_source(args.sources, args.connect).read()

    source = open_source(args.sources, args.connect)
    first = inventory()   # a bad SOURCE or URI is one line and exit 2 now, not a failing scrape
    collector = NumaguardCollector(inventory, live=_live_reader(source, first),
                                   on_change=_scrape_changed)
    registry = registry_for(collector)
    if args.textfile is not None:
        write_textfile(registry, args.textfile)
        return 0 if collector.last_error is None else 2

    def ready(bound_host: str, bound_port: int) -> None:
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        _say(f"serving http://{shown}:{bound_port}/metrics")

    return serve_http(registry, host, port, ready)


def _live_reader(source: Any, first: Inventory) -> Any:
    """What reads the running guests' memory at each scrape, where this source has it (this
    machine with libvirt's run folder, or a snapshot with captured live files), else ``None``
    (the audit's metrics only)."""
    from numaguard.readers.sources import has_live_files, live_root

    root = live_root(source, first)
    if root is None or not has_live_files(root):
        return None

    def read(inventory: Inventory) -> Any:
        from numaguard.readers.live import read_live, running_of

        return read_live(root, running_of(inventory))

    return read


def _exporter_arguments(p: argparse.ArgumentParser) -> None:
    from numaguard.exporter.serve import DEFAULT_LISTEN

    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="snapshot dir, or a topology source plus domain XML files/folders, "
                        "read again at every scrape (default: this machine)")
    _connect_argument(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--listen", metavar="HOST:PORT", default=DEFAULT_LISTEN,
                     help=f"serve /metrics here (default {DEFAULT_LISTEN}; every interface "
                          "only when asked for: 0.0.0.0:PORT or [::]:PORT; port 0: any free "
                          "port, printed on stderr)")
    out.add_argument("--textfile", metavar="PATH",
                     help="write the metrics once to PATH atomically (node_exporter's "
                          "--collector.textfile.directory, a name ending in .prom) and exit")

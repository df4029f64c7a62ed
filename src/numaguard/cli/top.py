"""``numaguard top``: what a running host holds now, per node and per guest, and who the live
what-if says would be OOM-killed if every guest grew to its full size now (issue 13)."""

from __future__ import annotations

import argparse
import sys
import time

from numaguard.cli import EXIT_OK, _connect_argument, _paths, _width
from numaguard.errors import NumaguardError

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (see numaguard.cli)
if TYPE_CHECKING:
    from typing import Any


def _live_root(inventory: Any, source: Any) -> str:
    from numaguard.readers.sources import LibvirtSource, live_root

    root = live_root(source, inventory)
    if root is None:
        where = source.uri if isinstance(source, LibvirtSource) else source.label
        raise NumaguardError(f"{where}: top reads the guests' memory from /proc and the "
                             "cgroups of the machine it runs on: run it on that host, or on a "
                             "snapshot taken there")
    return root


def frame(args: argparse.Namespace, width: int) -> str:
    from numaguard.core.rules import audit_inventory
    from numaguard.readers.live import read_live, running_of
    from numaguard.readers.sources import open_source
    from numaguard.report.top import top_text

    source = open_source(_paths(args.source), args.connect)
    inventory = source.read()
    live = read_live(_live_root(inventory, source), running_of(inventory))
    # the audit's live prediction (NG110 on a live host): the same as `audit` and the exporter
    prediction = audit_inventory(inventory, only=("NG110",), live=live).prediction
    return top_text(inventory, live, prediction, width=width)


def cmd_top(args: argparse.Namespace) -> int:
    if args.once:
        sys.stdout.write(frame(args, _width()))
        return EXIT_OK
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console()
    with Live(Text(frame(args, console.width)), console=console, screen=False,
              auto_refresh=False) as view:
        while True:
            time.sleep(args.interval)
            view.update(Text(frame(args, console.width)), refresh=True)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.2 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"invalid interval {text!r}: expected seconds from "
                                         "0.2 to 3600")
    return value


def _top_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="a snapshot with captured live files (default: this machine)")
    _connect_argument(p)
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.add_argument("-n", "--interval", metavar="SECS", type=_interval, default=2.0,
                   help="seconds between frames (default: 2)")

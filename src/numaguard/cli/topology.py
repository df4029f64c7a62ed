"""``numaguard topology``: the host's NUMA nodes (like ``numactl -H``)."""

from __future__ import annotations

import argparse

from numaguard.cli import _connect_argument, _emit, _paths


def cmd_topology(args: argparse.Namespace) -> int:
    from numaguard.readers.sources import LocalSource, PathSource, load_host, open_source

    source = open_source(_paths(args.source), args.connect)
    if isinstance(source, (LocalSource, PathSource)):   # no guests to read for a topology
        host = load_host(args.source)
    else:
        host = source.read().host
    return _emit(host, args.format, "topology")


def _topology_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="snapshot dir, sysfs root, numactl -H file or capabilities XML "
                        "(default: this machine)")
    _connect_argument(p)
    p.add_argument("--format", choices=("text", "json"), default="text")

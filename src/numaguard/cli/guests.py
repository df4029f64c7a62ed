"""``numaguard guests``: each guest's memory, vCPUs, pinning and NUMA policy."""

from __future__ import annotations

import argparse

from numaguard.cli import EXIT_OK, _connect_argument, _emit, _paths
from numaguard.cli.common import _incomplete


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


def _guests_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="snapshot dir, domain XML file or folder of them "
                        "(default: libvirt when it runs here, else /etc/libvirt/qemu)")
    _connect_argument(p)
    p.add_argument("--format", choices=("text", "json"), default="text")

"""``numaguard snapshot DIR``: this machine's (or a libvirt URI's) topology and guests, saved."""

from __future__ import annotations

import argparse
import os
import sys

from numaguard.cli import EXIT_OK, _connect_argument
from numaguard.display import printable
from numaguard.errors import NumaguardError


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


def _snapshot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", metavar="DIR")
    _connect_argument(p)
    p.add_argument("--root", help="filesystem root to read sys/ and proc/ from (default: /)")
    p.add_argument("--libvirt-dir",
                   help="folder of domain XMLs to copy instead of asking libvirt (default: "
                        "libvirt when it runs here, else /etc/libvirt/qemu; files that "
                        "cannot be read are skipped and named)")

"""What more than one command of :mod:`numaguard.cli` does: say what could not be read, and
look rule IDs up (``audit --rule``, ``explain``)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence

from numaguard.cli import EXIT_ERROR
from numaguard.display import printable

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (see numaguard.cli)
if TYPE_CHECKING:
    from typing import Any


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


def add_qemu_overhead(p: argparse.ArgumentParser) -> None:
    """``--qemu-overhead SIZE``: QEMU's own memory per guest the prediction plays."""
    p.add_argument("--qemu-overhead", metavar="SIZE",
                   help="memory each guest's QEMU takes besides its guest RAM, on the "
                        "emulator's node (default: 10MiB, measured for libvirt's command "
                        "line without devices; a production QEMU with devices takes more)")


def qemu_overhead(args: argparse.Namespace) -> int | None:
    """The ``--qemu-overhead`` value in bytes (``None`` when not given); a bad one is a
    one-line error naming it."""
    from numaguard.errors import ParseError
    from numaguard.units import parse_size

    if args.qemu_overhead is None:
        return None
    try:
        return parse_size(args.qemu_overhead)
    except ParseError as exc:
        raise ParseError(exc.reason, field="--qemu-overhead") from None


def _known_rules() -> dict[str, Any]:
    from numaguard.core.rules import all_rules

    return {r.id: r for r in all_rules()}


def _unknown_rule(rule_id: str, known: dict[str, Any]) -> str:
    listing = ", ".join(known) if known else "none are registered"
    return f"unknown rule {rule_id!r} (known: {listing})"


def seconds_type(what: str) -> Callable[[str], float]:
    """An argparse ``type`` for a duration in seconds, more than 0 and at most a day; a bad
    value is ``invalid WHAT 'TEXT': expected seconds, …`` (``--deadline``, ``--time-limit``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 < value <= 86_400):
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: expected seconds, "
                                             "more than 0, at most 86400")
        return value

    return parse

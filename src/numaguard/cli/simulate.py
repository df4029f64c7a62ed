"""``numaguard simulate``: play allocations on the host (pages per node, swap, OOM kills)."""

from __future__ import annotations

import argparse
import os

from numaguard.cli import EXIT_FINDINGS, EXIT_OK, _emit
from numaguard.cli.common import add_qemu_overhead, qemu_overhead
from numaguard.errors import NumaguardError, ParseError


def _compare_modes(text: str) -> list[str]:
    from numaguard.core.scenario import MODES

    modes: list[str] = []
    for item in (i.strip().lower() for i in text.split(",")):
        if not item:
            continue
        if item not in MODES:
            raise ParseError(f"unknown mode {item!r} (known: {', '.join(MODES)})",
                             field="--compare")
        if item not in modes:
            modes.append(item)
    if not modes:
        raise ParseError("expected modes such as strict,preferred,interleave", field="--compare")
    return modes


def _plot_format(path: str, option: str = "--plot") -> str:
    from numaguard.report.plots import FORMATS

    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise ParseError(f"{path!r}: expected a file name ending in .png or .svg", field=option)
    return ext


def cmd_simulate(args: argparse.Namespace) -> int:
    from numaguard.core.scenario import QEMU_OWN, compare, play
    from numaguard.readers.scenario import load_scenario

    modes = _compare_modes(args.compare) if args.compare is not None else None
    overhead = qemu_overhead(args)
    plots = [(path, _plot_format(path, option), kind)
             for path, option, kind in ((args.plot, "--plot", "bars"),
                                        (args.plot_steps, "--plot-steps", "steps"))
             if path is not None]
    if args.connect is not None:
        from numaguard.readers.scenario import inventory_scenario
        from numaguard.readers.sources import live_state, open_source

        if args.source is not None:
            raise NumaguardError("give a SOURCE or -c/--connect, not both")
        source = open_source((), args.connect)
        inventory = source.read()
        scenario = inventory_scenario(inventory, order=args.order,
                                      live=live_state(source, inventory),
                                      qemu_overhead=QEMU_OWN if overhead is None else overhead)
    elif args.source is None:
        raise NumaguardError("give a scenario .toml file, a snapshot dir or -c/--connect URI")
    else:
        scenario = load_scenario(args.source, order=args.order, qemu_overhead=overhead)
    runs = compare(scenario, modes) if modes else (play(scenario),)
    if plots:
        from numaguard.report.plots import render_plot
        from numaguard.writers.xml_patch import OUTPUT_MODE, write_atomic

        for path, fmt, kind in plots:
            write_atomic(path, render_plot(runs, fmt, kind), mode=OUTPUT_MODE,
                         follow_symlinks=args.follow_symlinks)
    _emit(runs, args.format, "simulate", module="simulate")
    return EXIT_FINDINGS if any(r.troubled for r in runs) else EXIT_OK


def _simulate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", nargs="?",
                   help="scenario .toml file or snapshot dir")
    p.add_argument("-c", "--connect", metavar="URI",
                   help="simulate the guests libvirt has at this URI (as virsh -c) touching "
                        "all their memory, as for a snapshot")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--order", metavar="NAME",
                   help="a snapshot's start order: recorded (the default when the snapshot "
                        "has one), bound-last (else the default), largest-first, "
                        "smallest-first, name, random-N — the orders the audit plays")
    add_qemu_overhead(p)
    p.add_argument("--compare", metavar="MODES",
                   help="run once per libvirt mode, side by side, e.g. strict,preferred,"
                        "interleave")
    p.add_argument("--plot", metavar="FILE",
                   help="also draw the end of the run into FILE (.png or .svg): per node each "
                        "task's bytes, a swap column, each task's nodeset, who was OOM-killed "
                        "at which step (needs matplotlib; mode 0644 minus the umask)")
    p.add_argument("--plot-steps", metavar="FILE",
                   help="also draw the run step by step into FILE (.png or .svg): memory taken "
                        "per node, swap, OOM kills")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="when a --plot/--plot-steps FILE is a symbolic link, write the file it "
                        "points to; without it a link is refused")

#!/usr/bin/env python3
"""Real QEMU guests inside the kernel oracle: boot, record, compare with the simulator.

    make oracle-qemu                              # all of scenarios/qemu/*.toml (root: apt)
    tests/oracle/run_qemu_oracle.py [--no-apt] [--thp never|always] [NAME...]
    tests/oracle/run_qemu_oracle.py --table       # only the table, from results/qemu/*.json
    tests/oracle/run_qemu_oracle.py --reparse     # results again from the last console log
    tests/oracle/run_qemu_oracle.py --chain [--no-apt]   # the chain boot (qemu_chain.py)
    tests/oracle/run_qemu_oracle.py --chain-table # domain XML -> argv -> kernel -> numaguard

Builds the oracle initramfs with the QEMU payload (build_oracle.sh --qemu: Debian's
qemu-system-x86_64, its libraries, the TCG module, bios-256k.bin, kvmvapic.bin), boots Debian's
6.1 kernel under the outer qemu (TCG) with the scenarios' emulated nodes, runs each QEMU step as
a nested qemu-system-x86_64 -S with a libvirt-style prealloc'd memory backend (qemu_oracle.py)
and writes tests/oracle/results/qemu/<scenario>.json; then prints kernel vs simulator.
Console logs stay in .oracle-build/logs/ (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.oracle import oracle_lib as ol  # noqa: E402
from tests.oracle import qemu_chain as qc  # noqa: E402
from tests.oracle import qemu_oracle as qo  # noqa: E402
from tests.oracle.run_oracle import (  # noqa: E402
    BUILD,
    QEMU,
    boot,
    build,
    decode_run,
    kernel_package,
    log,
    qemu_version,
)


def outer_command(s: ol.ScenarioFile, info: dict[str, str], b: str, thp: str) -> list[str]:
    cmd = qo.qemu_command(s, info["KERNEL_IMAGE"], info["INITRD"], b, QEMU)
    if thp != "never":
        i = cmd.index("-append") + 1
        cmd[i] = cmd[i].replace("transparent_hugepage=never", f"transparent_hugepage={thp}")
    return cmd


def record(selected: list[str], no_apt: bool, timeout: int, thp: str, reparse: bool) -> None:
    scenarios = [s for s in qo.load_qemu_scenarios()
                 if not selected or s.name in selected or s.boot in selected]
    if not scenarios:
        raise SystemExit(f"no QEMU scenario matches {selected}")
    boots = ol.group_boots(scenarios)
    plans = {b: qo.plan_text(g) for b, g in boots.items()}
    logs = BUILD / "logs"
    info = {} if reparse else build(no_apt, plans, qemu=True)
    qver = qemu_version()
    qo.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for b, group in boots.items():
        if reparse:
            meta = json.loads((logs / f"oracle-qemu-{b}.meta.json").read_text())
            run = decode_run(b, logs / f"oracle-qemu-{b}.console.log", meta)
        else:
            run = boot(b, group, info, timeout, cmd=outer_command(group[0], info, b, thp),
                       prefix="oracle-qemu")
            meta = {"kernel_release": info["KVER"]}
        bootfiles = run["blocks"]["boot"]
        kernel = {"release": meta["kernel_release"],
                  "package": kernel_package(meta["kernel_release"]),
                  "version": bootfiles.get("version", b"").decode().strip(),
                  "cmdline": bootfiles.get("cmdline", b"").decode().strip(),
                  "thp": bootfiles.get("thp", b"").decode().strip(),
                  "numa_balancing": bootfiles.get("numa_balancing", b"").decode().strip()}
        for s in group:
            exp = run["blocks"].get(f"exp {s.name}")
            if exp is None:
                log(f"[{b}] {s.name}: no result (guest log: {logs}/oracle-qemu-{b}.console.log)")
                continue
            m = {"recorded": datetime.date.today().isoformat(), "kernel": kernel,
                 "qemu": {"version": qver, "command": run["command"], "cwd": ".oracle-build",
                          "boot": b, "boot_seconds": run["seconds"],
                          "experiments_in_boot": len(group),
                          "nested_version": qver,  # the same Debian binary, packed by --qemu
                          "root_node": qo.ROOT_NODE}}
            result = qo.experiment_result(s, bootfiles, exp, m)
            result.pop("_live", None)
            path = qo.results_dir(thp) / f"{s.name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1) + "\n")
            log(f"[{b}] {s.name}: {path.relative_to(REPO)}")


def record_chain(no_apt: bool, timeout: int, reparse: bool) -> None:
    """The chain boot: every experiment of qemu_chain.CHAIN in one boot of the q3 topology,
    each running libvirt's recorded argv (see qemu_chain); results/qemu/chain/NAME.json."""
    chains = qc.CHAIN
    scns = [qc.scenario(c) for c in chains]
    logs = BUILD / "logs"
    if reparse:
        meta = json.loads((logs / f"oracle-qemu-{qc.BOOT}.meta.json").read_text())
        run = decode_run(qc.BOOT, logs / f"oracle-qemu-{qc.BOOT}.console.log", meta)
    else:
        pdir = BUILD / "oracle-qemu-plans"
        pdir.mkdir(parents=True, exist_ok=True)
        for old in pdir.glob("*.bin"):
            old.unlink()
        for fname, data in qc.plan_files(chains).items():
            (pdir / fname).write_bytes(data)
        info = build(no_apt, {qc.BOOT: qc.plan_text(chains)}, qemu=True)
        run = boot(qc.BOOT, scns, info, timeout, cmd=outer_command(scns[0], info, qc.BOOT,
                                                                   "never"),
                   prefix="oracle-qemu")
        meta = {"kernel_release": info["KVER"]}
    qver = qemu_version()
    bootfiles = run["blocks"]["boot"]
    kernel = {"release": meta["kernel_release"], "package": kernel_package(meta["kernel_release"]),
              "version": bootfiles.get("version", b"").decode().strip(),
              "cmdline": bootfiles.get("cmdline", b"").decode().strip(),
              "thp": bootfiles.get("thp", b"").decode().strip()}
    qc.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for c, s in zip(chains, scns, strict=True):
        exp = run["blocks"].get(f"exp {s.name}")
        if exp is None:
            log(f"[{qc.BOOT}] {s.name}: no result")
            continue
        m = {"recorded": datetime.date.today().isoformat(), "kernel": kernel,
             "qemu": {"version": qver, "command": run["command"], "cwd": ".oracle-build",
                      "boot": qc.BOOT, "boot_seconds": run["seconds"],
                      "experiments_in_boot": len(chains), "root_node": qo.ROOT_NODE}}
        result = qo.experiment_result(s, bootfiles, exp, m)
        result.pop("_live", None)
        result["chain"] = qc.chain_record(c, exp, result)
        path = qc.RESULTS_DIR / f"{s.name}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        log(f"[{qc.BOOT}] {s.name}: {path.relative_to(REPO)}")


def chain_table() -> int:
    """The chain table (markdown), from results/qemu/chain/*.json."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows = qc.table_rows(Path(tmp), qc.CHAIN_KNOWN)
    print("| experiment | domain XML (nodeset substituted) | libvirt's backend props | kernel "
          "(guest RAM, MiB per node) | numaguard simulate | agree |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0 if all(r[-1] == "yes" or r[0] in qc.CHAIN_KNOWN for r in rows) else 1


def table() -> int:
    scenarios = {s.name: s for s in qo.load_qemu_scenarios()}
    bad = 0
    for path in sorted(qo.RESULTS_DIR.glob("*.json")) + sorted(
            qo.results_dir("always").glob("*.json")):
        result = json.loads(path.read_text())
        scn = scenarios[result["scenario"]]
        cmp = qo.compare(result, scn)
        bad += not cmp.agree
        thp = "" if path.parent == qo.RESULTS_DIR else " (THP=always)"
        print(f"{path.stem}{thp}: {'agree' if cmp.agree else 'DISAGREE'}")
        print("  kernel:    " + "; ".join(cmp.kernel))
        print("  simulator: " + "; ".join(cmp.simulator))
        for p in cmp.problems:
            print("  - " + p)
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="QEMU scenarios or boots (default: all)")
    ap.add_argument("--no-apt", action="store_true", help="do not apt-get install")
    ap.add_argument("--table", action="store_true", help="only print the comparison")
    ap.add_argument("--reparse", action="store_true", help="results from the last console log")
    ap.add_argument("--thp", choices=("never", "always"), default="never")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per boot")
    ap.add_argument("--chain", action="store_true", help="record the chain boot (qemu_chain.py)")
    ap.add_argument("--chain-table", action="store_true", help="only print the chain table")
    args = ap.parse_args()
    if args.chain:
        record_chain(args.no_apt, args.timeout, args.reparse)
        return chain_table()
    if args.chain_table:
        return chain_table()
    if not args.table:
        record(args.names, args.no_apt, args.timeout, args.thp, args.reparse)
    return table()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Real QEMU guests inside the kernel oracle: boot, record, compare with the simulator.

    make oracle-qemu                              # all of scenarios/qemu/*.toml (root: apt)
    tests/oracle/run_qemu_oracle.py [--no-apt] [--thp never|always] [NAME...]
    tests/oracle/run_qemu_oracle.py --table       # only the table, from results/qemu/*.json
    tests/oracle/run_qemu_oracle.py --reparse     # results again from the last console log
    tests/oracle/run_qemu_oracle.py --chain [--no-apt] [NAME...]  # the chain boot (qemu_chain.py)
    tests/oracle/run_qemu_oracle.py --chain --no-apt --spread-boot N NAME...  # a repeated one
    tests/oracle/run_qemu_oracle.py --chain-table # domain XML -> argv -> kernel -> numaguard
    tests/oracle/run_qemu_oracle.py --chain --no-apt --thp always [--spread-boot N]  # THP=always
    tests/oracle/run_qemu_oracle.py --no-apt --thp always --spread-boot N  # a repeated boot
    tests/oracle/run_qemu_oracle.py --spread      # spread.json over the committed + repeated boots

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


def kernel_of(meta: dict, run: dict, *extra: str) -> dict:
    """The kernel a boot ran: release, Debian package, and what /init reported of it
    (version, command line, THP mode, and the *extra* boot files)."""
    files = run["blocks"]["boot"]
    out = {"release": meta["kernel_release"], "package": kernel_package(meta["kernel_release"])}
    for key in ("version", "cmdline", "thp", *extra):
        out[key] = files.get(key, b"").decode().strip()
    return out

def outer_command(s: ol.ScenarioFile, info: dict[str, str], b: str, thp: str) -> list[str]:
    cmd = qo.qemu_command(s, info["KERNEL_IMAGE"], info["INITRD"], b, QEMU)
    if thp != "never":
        i = cmd.index("-append") + 1
        cmd[i] = cmd[i].replace("transparent_hugepage=never", f"transparent_hugepage={thp}")
    return cmd


def record(selected: list[str], no_apt: bool, timeout: int, thp: str, reparse: bool,
           out: Path | None = None) -> None:
    """One boot per plan; results in results_dir(thp), or *out* (a spread boot)."""
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
        kernel = kernel_of(meta, run, "numa_balancing")
        for s in group:
            exp = run["blocks"].get(f"exp {s.name}")
            if exp is None:
                log(f"[{b}] {s.name}: no result (guest log: {logs}/oracle-qemu-{b}.console.log)")
                continue
            # nested_version: the same Debian binary, packed by --qemu
            m = run_meta(kernel, qver, run, b, len(group), nested_version=qver)
            result = qo.experiment_result(s, run["blocks"]["boot"], exp, m)
            result.pop("_live", None)
            path = (out or qo.results_dir(thp)) / f"{s.name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1) + "\n")
            log(f"[{b}] {s.name}: {path.relative_to(REPO)}")


def run_meta(kernel: dict, qver: str, run: dict, boot_name: str, experiments: int,
             **extra: object) -> dict:
    """What every result of one boot records of it: the date, the kernel, the outer qemu
    command line and its run, and *extra* keys of the ``qemu`` record."""
    qemu = {"version": qver, "command": run["command"], "cwd": ".oracle-build",
            "boot": boot_name, "boot_seconds": run["seconds"],
            "experiments_in_boot": experiments, **extra, "root_node": qo.ROOT_NODE}
    return {"recorded": datetime.date.today().isoformat(), "kernel": kernel, "qemu": qemu}


def record_chain(no_apt: bool, timeout: int, reparse: bool, names: list[str] | None = None,
                 out: Path | None = None, thp: str = "never") -> None:
    """The chain boot: the experiments of qemu_chain.CHAIN named in *names* (all without) in
    one boot of the q3 topology, each running libvirt's recorded argv (see qemu_chain), with
    transparent huge pages *thp*; results/qemu/chain[/thp-always]/NAME.json, or
    *out*/NAME.json (a repeated boot)."""
    chains = [c for c in qc.CHAIN if not names or c.name in names]
    if names and len(chains) != len(set(names)):
        raise SystemExit(f"no chain experiment {sorted(set(names) - {c.name for c in chains})}")
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
                                                                   thp),
                   prefix="oracle-qemu")
        meta = {"kernel_release": info["KVER"]}
    qver = qemu_version()
    kernel = kernel_of(meta, run)
    qc.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for c, s in zip(chains, scns, strict=True):
        exp = run["blocks"].get(f"exp {s.name}")
        if exp is None:
            log(f"[{qc.BOOT}] {s.name}: no result")
            continue
        m = run_meta(kernel, qver, run, qc.BOOT, len(chains))
        result = qo.experiment_result(s, run["blocks"]["boot"], exp, m)
        result.pop("_live", None)
        result["chain"] = qc.chain_record(c, exp, result)
        path = (out or qc.results_dir(thp)) / f"{s.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1) + "\n")
        log(f"[{qc.BOOT}] {s.name}: {path.relative_to(REPO)}")


def boot_dirs(thp: str) -> list[Path]:
    """The committed boot (results_dir(thp)) and the repeated ones (its boots/N/), in order."""
    base = qo.results_dir(thp)
    extra = [d for d in (base / "boots").glob("*") if d.is_dir() and d.name.isdigit()]
    return [base] + sorted(extra, key=lambda d: int(d.name))


def _range(values: list[int]) -> dict[str, int]:
    return {"min_bytes": min(values), "max_bytes": max(values),
            "spread_bytes": max(values) - min(values)}


def _per_node(maps: list[dict[str, int]]) -> dict[str, dict[str, int]]:
    """min/max/spread per node over boots (a node a boot did not use counts as 0 bytes)."""
    nodes = sorted({n for m in maps for n, b in m.items() if b}, key=int)
    return {n: _range([m.get(n, 0) for m in maps]) for n in nodes}


def oom_events(result: dict) -> list[list]:
    """A run's OOM events as compared exactly: [step, victim, constraint, nodemask]."""
    return [[e["step"], e.get("victim"), e.get("constraint"), e.get("nodemask")]
            for e in result["oom_events"]]


def spread_path(thp: str) -> Path:
    """results/qemu/thp-always/spread.json; THP=never's beside its repeated boots
    (results/qemu/boots/spread.json), out of the committed results' folder."""
    return qo.results_dir(thp) / ("spread.json" if thp != "never" else "boots/spread.json")


def spread_record(thp: str) -> dict:
    """The run-to-run spread of the kernel over every recorded boot of *thp* (boot_dirs): per
    experiment and step, the guest RAM (``placed``) and QEMU's own memory (``own_placed``) per
    node as min/max/spread in bytes, node MemFree before the first step, and the OOM events of
    each boot (``oom_same_in_every_boot``)."""
    dirs = boot_dirs(thp)
    runs = [{p.stem: json.loads(p.read_text()) for p in sorted(d.glob("qemu-*.json"))}
            for d in dirs]
    names = sorted(set().union(*runs))
    first = next(r for run in runs for r in run.values())
    out: dict = {"thp": thp, "generator": "tests/oracle/run_qemu_oracle.py --spread",
                 "kernel": {k: first["kernel"][k] for k in ("release", "package", "thp")},
                 "qemu": first["qemu"]["version"],
                 "boots": [{"dir": str(d.relative_to(REPO)),
                            "recorded": next(iter(run.values()))["recorded"],
                            "boot_seconds": next(iter(run.values()))["qemu"]["boot_seconds"],
                            "experiments": sorted(run)} for d, run in zip(dirs, runs,
                                                                          strict=True)],
                 "experiments": {}}
    for name in names:
        rs = [run[name] for run in runs if name in run]
        steps = {}
        for i, rec in enumerate(rs[0]["steps"]):
            recs = [r["steps"][i] for r in rs]
            steps[str(i)] = {"name": rec["name"], "kind": rec.get("kind"),
                             "requested_bytes": rec["requested_bytes"],
                             "outcomes": [r["outcome"] for r in recs],
                             "guest": _per_node([r.get("placed") or {} for r in recs]),
                             "own": _per_node([r.get("own_placed") or {} for r in recs])}
        ooms = [oom_events(r) for r in rs]
        out["experiments"][name] = {
            "boots": len(rs),
            "memfree_start": _per_node([r["steps"][0]["memfree_before"] for r in rs]),
            "steps": steps, "oom_events": ooms,
            "oom_same_in_every_boot": all(o == ooms[0] for o in ooms)}
    return out


def spread_tolerance(name: str, thp: str = "always") -> dict[str, dict[str, dict[str, int]]]:
    """The committed spread.json's spread of experiment *name* as ``qemu_oracle.compare``
    takes it: {step index: {"guest"|"own": {node: bytes}}} (empty without a spread.json)."""
    path = spread_path(thp)
    if not path.exists():
        return {}
    steps = json.loads(path.read_text())["experiments"].get(name, {}).get("steps", {})
    return {i: {part: {n: v["spread_bytes"] for n, v in st[part].items()}
                for part in ("guest", "own")} for i, st in steps.items()}


def write_spread() -> int:
    """results_dir(thp)/spread.json for every THP mode with repeated boots; prints the table."""
    for thp in ("never", "always"):
        if len(boot_dirs(thp)) < 2:
            continue
        rec = spread_record(thp)
        path = spread_path(thp)
        path.write_text(json.dumps(rec, indent=1) + "\n")
        log(f"{path.relative_to(REPO)}: {len(rec['boots'])} boots")
        print(f"THP={thp}: {len(rec['boots'])} boots (MiB: min-max, spread)")
        for name, e in rec["experiments"].items():
            for i, st in e["steps"].items():
                for part in ("guest", "own"):
                    cells = [f"N{n}={v['min_bytes'] / ol.MiB:.1f}-{v['max_bytes'] / ol.MiB:.1f} "
                             f"({v['spread_bytes'] / ol.MiB:.1f})" for n, v in st[part].items()]
                    print(f"  {name} step {i} {st['name']} {part}: {'; '.join(cells) or '-'}")
            same = "same" if e["oom_same_in_every_boot"] else "DIFFERENT"
            print(f"  {name} OOM events: {same} in {e['boots']} boots: {e['oom_events'][0]}")
    return 0


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
    for path in sorted(qo.RESULTS_DIR.glob("qemu-*.json")) + sorted(
            qo.results_dir("always").glob("qemu-*.json")):
        result = json.loads(path.read_text())
        scn = scenarios[result["scenario"]]
        always = path.parent != qo.RESULTS_DIR
        cmp = qo.compare(result, scn, spread_tolerance(result["scenario"]) if always else None)
        bad += not cmp.agree
        thp = " (THP=always, within the measured spread)" if always else ""
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
    ap.add_argument("--spread-boot", type=int, metavar="N",
                    help="record into results_dir(--thp)/boots/N/ (a repeated boot for --spread;"
                    " with --chain: results/qemu/chain/boots/N/)")
    ap.add_argument("--spread", action="store_true",
                    help="write results/qemu[/thp-always]/spread.json from the repeated boots")
    ap.add_argument("--chain", action="store_true", help="record the chain boot (qemu_chain.py)")
    ap.add_argument("--chain-table", action="store_true", help="only print the chain table")
    args = ap.parse_args()
    if args.chain:
        out = None if args.spread_boot is None else qc.results_dir(args.thp) / "boots" / str(
            args.spread_boot)
        record_chain(args.no_apt, args.timeout, args.reparse, args.names, out, args.thp)
        return chain_table() if out is None and args.thp == "never" else 0
    if args.chain_table:
        return chain_table()
    if args.spread:
        return write_spread()
    if not args.table:
        out = None if args.spread_boot is None else \
            qo.results_dir(args.thp) / "boots" / str(args.spread_boot)
        record(args.names, args.no_apt, args.timeout, args.thp, args.reparse, out)
        if out is not None:
            return 0
    return table()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Play the oracle scenarios on a real Linux kernel under qemu and record what it did.

    make oracle                                  # all scenarios (root: installs Debian parts)
    tests/oracle/run_oracle.py [--no-apt] [NAME...]   NAME: a scenario or a boot (n3, n4, n2)
    tests/oracle/run_oracle.py --table           # only the table, from results/*.json
    tests/oracle/run_oracle.py --reparse         # results again from the last console logs

For every boot (scenarios sharing [oracle].boot share one qemu run: same nodes, CPUs,
distances) this writes the experiment plan, builds the initramfs (build_oracle.sh: Debian's
6.1 kernel from `apt-get download`, busybox-static, the static hog), boots
qemu-system-x86_64 under TCG, decodes what the guest's /init shipped over the serial console
and writes tests/oracle/results/<scenario>.json; the bound hog's /proc/PID/numa_maps and its
cgroup's memory.numa_stat go to tests/fixtures/live/.  Then it runs the simulator on every
recorded result and prints: scenario, kernel result, simulator result, agreement.
Console logs and raw blocks stay in .oracle-build/ (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.oracle import oracle_lib as ol
from tests.oracle.known import KNOWN_DISAGREEMENTS

BUILD = Path(os.environ.get("BUILD_DIR", REPO / ".oracle-build"))
LIVE_DIR = REPO / "tests" / "fixtures" / "live"
QEMU = os.environ.get("QEMU", "qemu-system-x86_64")


def log(msg: str) -> None:
    print(f"[oracle] {msg}", file=sys.stderr, flush=True)


def build(no_apt: bool, plans: dict[str, str], qemu: bool = False) -> dict[str, str]:
    """build_oracle.sh with these plans; *qemu*: the initramfs with the QEMU payload
    (run_qemu_oracle.py), its plans in their own folder."""
    pdir = BUILD / ("oracle-qemu-plans" if qemu else "oracle-plans")
    pdir.mkdir(parents=True, exist_ok=True)
    for old in pdir.glob("*.plan"):
        old.unlink()
    for boot, text in plans.items():
        (pdir / f"{boot}.plan").write_text(text)
    cmd = [str(HERE / "build_oracle.sh")] + (["--no-apt"] if no_apt else []) \
        + (["--qemu"] if qemu else []) + [str(pdir)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "BUILD_DIR": str(BUILD)}).stdout
    return dict(line.split("=", 1) for line in out.split() if "=" in line)


def kernel_package(kver: str) -> str:
    debs = sorted((BUILD / "debs").glob(f"linux-image-{kver}_*.deb"))
    if not debs:
        return f"linux-image-{kver}"
    version = subprocess.run(["dpkg-deb", "-f", str(debs[-1]), "Version"], check=False, text=True,
                             stdout=subprocess.PIPE).stdout.strip()
    return f"linux-image-{kver} {version}"


def qemu_version() -> str:
    out = subprocess.run([QEMU, "--version"], check=False, text=True,
                         stdout=subprocess.PIPE).stdout
    return out.splitlines()[0] if out else "?"


def boot(name: str, group: list[ol.ScenarioFile], info: dict[str, str], timeout: int,
         cmd: list[str] | None = None, prefix: str = "oracle") -> dict:
    """One qemu run: *cmd* (default: the scenarios' ``ol.qemu_command``), its console in
    logs/<prefix>-<name>.console.log and its meta beside it."""
    if cmd is None:
        cmd = ol.qemu_command(group[0], info["KERNEL_IMAGE"], info["INITRD"], name, QEMU)
    logs = BUILD / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    logf = logs / f"{prefix}-{name}.console.log"
    log(f"[{name}] booting ({len(group)} experiments): {shlex.join(cmd)}")
    t0 = time.monotonic()
    with open(logf, "wb") as out:
        try:
            rc = subprocess.run(cmd, check=False, cwd=BUILD, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    seconds = round(time.monotonic() - t0, 1)
    log(f"[{name}] qemu exited rc={rc} after {seconds} s (log: {logf})")
    meta = {"command": shlex.join(cmd), "seconds": seconds, "rc": rc,
            "kernel_release": info["KVER"]}
    (logs / f"{prefix}-{name}.meta.json").write_text(json.dumps(meta) + "\n")
    return decode_run(name, logf, meta)


def decode_run(name: str, logf: Path, meta: dict) -> dict:
    text = logf.read_text(errors="replace")
    blocks = ol.decode_console(text)
    if "boot" not in blocks:
        raise SystemExit(f"[{name}] no boot block in {logf}")
    return {"blocks": blocks, "command": meta["command"], "seconds": meta["seconds"],
            "done": "NG-ORACLE-DONE" in text}


def save_live(result: dict) -> None:
    live = result.pop("_live", {})
    if not live:
        return
    d = LIVE_DIR / result["scenario"]
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    for fname, text in live.items():
        (d / fname).write_text(text)
    log(f"live files of {result['scenario']}: {d}")


def record(selected: list[str], no_apt: bool, timeout: int, reparse: bool = False) -> None:
    """Boot (or, with *reparse*, re-read the console logs of the last boots) and write
    results/<scenario>.json."""
    scenarios = ol.load_scenarios()
    boots = ol.group_boots(scenarios)
    plans = {b: ol.plan_text(g) for b, g in boots.items()}
    todo = [b for b in boots if not selected or b in selected
            or any(s.name in selected for s in boots[b])]
    unknown = set(selected) - set(boots) - {s.name for s in scenarios}
    if unknown:
        raise SystemExit(f"unknown scenario or boot: {', '.join(sorted(unknown))}")
    info = {} if reparse else build(no_apt, plans)
    qver = qemu_version()
    ol.RESULTS_DIR.mkdir(exist_ok=True)
    total = 0.0
    for b in todo:
        group = [s for s in boots[b] if not selected or b in selected or s.name in selected]
        if reparse:
            logs = BUILD / "logs"
            meta = json.loads((logs / f"oracle-{b}.meta.json").read_text())
            info = {"KVER": meta["kernel_release"]}
            run = decode_run(b, logs / f"oracle-{b}.console.log", meta)
        else:
            run = boot(b, boots[b], info, timeout)
        meta_kernel = {"release": info["KVER"], "package": kernel_package(info["KVER"])}
        total += run["seconds"]
        bootfiles = run["blocks"]["boot"]
        version = bootfiles.get("version", b"").decode().strip()
        for s in group:
            exp = run["blocks"].get(f"exp {s.name}")
            if exp is None:
                log(f"[{b}] {s.name}: no result "
                    f"(guest log: .oracle-build/logs/oracle-{b}.console.log)")
                continue
            meta = {
                "recorded": datetime.date.today().isoformat(),
                "kernel": {**meta_kernel, "version": version,
                           "cmdline": bootfiles.get("cmdline", b"").decode().strip(),
                           "thp": bootfiles.get("thp", b"").decode().strip(),
                           "numa_balancing": bootfiles.get("numa_balancing", b"").decode().strip()},
                "qemu": {"version": qver, "command": run["command"],
                         "cwd": ".oracle-build", "boot": b, "boot_seconds": run["seconds"],
                         "experiments_in_boot": len(boots[b])},
            }
            result = ol.experiment_result(s, bootfiles, exp, meta)
            save_live(result)
            path = ol.RESULTS_DIR / f"{s.name}.json"
            path.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
            log(f"[{b}] {s.name}: {path.relative_to(REPO)}")
    log(f"{len(todo)} boot(s), {total:.0f} s of qemu")


def table(markdown: bool = False) -> int:
    scenarios = {s.name: s for s in ol.load_scenarios()}
    rows = []
    for result in ol.load_results():
        scn = scenarios.get(result["scenario"])
        if scn is None:
            continue
        sim = ol.simulate_result(result, scn)
        cmp = ol.compare(result, sim)
        known = KNOWN_DISAGREEMENTS.get(scn.name)
        verdict = "yes" if cmp.agree else ("no (known, xfail)" if known else "NO")
        if cmp.agree and known:
            verdict = "yes (xfail listed: remove it!)"
        rows.append((scn.name, "; ".join(cmp.kernel), "; ".join(cmp.simulator), verdict,
                     cmp.problems))
    if not rows:
        print("no results in", ol.RESULTS_DIR)
        return 1
    head = ("scenario", "kernel (MiB per node)", "simulator (MiB per node)", "agree")
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + " --- |" * len(head))
        for r in rows:
            print("| " + " | ".join(r[:4]) + " |")
        return 0 if all(r[3] != "NO" for r in rows) else 1
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    line = " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=False))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)))
    bad = [(r[0], p) for r in rows if r[4] for p in r[4]]
    if bad:
        print("\ndisagreements:")
        for name, p in bad:
            print(f"  {name}: {p}")
    agree = sum(1 for r in rows if r[3] == "yes")
    print(f"\n{agree}/{len(rows)} scenarios agree within max(2 % of the request, 4 MiB)")
    return 0 if all(r[3] != "NO" for r in rows) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="scenarios or boots to re-record (default: all)")
    ap.add_argument("--no-apt", action="store_true", help="do not apt-get install")
    ap.add_argument("--table", action="store_true", help="only print the table")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per boot")
    ap.add_argument("--markdown", action="store_true", help="the table as Markdown")
    ap.add_argument("--reparse", action="store_true",
                    help="rebuild results from the console logs of the last boots (no qemu)")
    args = ap.parse_args()
    if not args.table:
        record(args.names, args.no_apt, args.timeout, args.reparse)
    return table(args.markdown)


if __name__ == "__main__":
    sys.exit(main())

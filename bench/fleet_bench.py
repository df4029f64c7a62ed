"""Fleet audit (numaguard/fleet.py): hosts per second over 200 generated snapshots of 4 nodes x
50 guests, whole process, with the interpreter floor (`python -c pass`) measured in the same
run; the in-process figure of one audit on one core (the ceiling the pool divides); and the
effect of the per-host deadline: the same run with one hung host (a libvirt URI on a socket
that accepts and never answers) against the run without it.

`python bench/fleet_bench.py` prints its rows; `make bench` (bench/run.py) adds them to its
table.  The hung-host row needs libvirt-python and numaguard/readers/libvirt_api.py.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.timing import RUNS, median_seconds
from tests.support.synth import synth_snapshot

HOSTS = 200
#: the issue's target: 200 hosts/s on 2 cores for 4-node x 50-guest hosts
TARGET_HOSTS_PER_S = 200
DEADLINE = 2.0
#: the workers of every run: the cores of the target, also with a URI among the hosts (whose
#: default would be fleet.URI_WORKERS), so the runs with and without the hung host compare
WORKERS = 2
SCRIPT = ("import sys; from numaguard.fleet import audit_fleet; "
          "sys.exit(audit_fleet(sys.argv[2:], {}, fmt='json', deadline=float(sys.argv[1]), "
          f"workers={WORKERS}))")


def fleet_snapshots(tmp: str, hosts: int = HOSTS) -> list[str]:
    paths = []
    for i in range(hosts):
        path = os.path.join(tmp, f"fleet/hv{i:03d}")
        synth_snapshot(path, nodes=4, guests=50, seed=2000 + i)
        paths.append(path)
    return paths


def _once(argv: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, check=False, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    secs = time.perf_counter() - t0
    if done.returncode not in (0, 1, 2):
        raise SystemExit(f"{' '.join(argv[:3])} ... exited {done.returncode}")
    return secs


def fleet_run(targets: list[str], deadline: float, runs: int) -> tuple[float, float]:
    """Median whole-process seconds of a fleet audit of *targets*, and the median of
    `python -c pass` runs paired with them."""
    times, floors = [], []
    for _ in range(runs):
        floors.append(_once([sys.executable, "-c", "pass"]))
        times.append(_once([sys.executable, "-c", SCRIPT, str(deadline), *targets]))
    return statistics.median(times), statistics.median(floors)


def one_audit(snapshot: str) -> float:
    """In process, one core: read and audit one host as a worker does."""
    from numaguard.fleet import audit_host

    return median_seconds(lambda: audit_host(snapshot, {}, None, True))


class SilentDaemon:
    """A unix socket that accepts and never answers (a hung libvirtd)."""

    def __init__(self, path: str) -> None:
        import threading

        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(16)
        self.uri = f"qemu+unix:///system?socket={path}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.server.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


def rows(tmp: str) -> list[tuple[str, str, float, bool | None, float | None]]:
    """(name, target, seconds, met or None, the `python -c pass` floor paired with its runs
    or None) rows for bench/run.py."""
    targets = fleet_snapshots(tmp)
    runs = max(3, RUNS // 2)
    wall, floor = fleet_run(targets, 60.0, runs)
    rate = HOSTS / wall
    out = [(f"fleet audit, {HOSTS} snapshots 4 x 50 (json): {rate:,.0f} hosts/s",
            f">= {TARGET_HOSTS_PER_S} hosts/s", wall, rate >= TARGET_HOSTS_PER_S,
            floor)]
    single = one_audit(targets[0])
    out.append((f"  one host's audit in process, one core: {1 / single:,.0f} hosts/s", "",
                single, None, None))
    start, floor = fleet_run(targets[:1], 60.0, runs)   # mostly starting the pool
    out.append(("  fleet of 1 host (python, forkserver, preloaded imports, 1 worker)", "",
                start, None, floor))
    if (importlib.util.find_spec("libvirt") is None
            or importlib.util.find_spec("numaguard.readers.libvirt_api") is None):
        out.append(("  + one hung host: skipped (needs libvirt-python, readers/libvirt_api)",
                    "", 0.0, None, None))
        return out
    daemon = SilentDaemon(os.path.join(tmp, "hung.sock"))
    try:
        base, _ = fleet_run(targets, DEADLINE, runs)
        hung, floor = fleet_run([daemon.uri, *targets], DEADLINE, runs)
    finally:
        daemon.close()
    out.append((f"  + one hung host, deadline {DEADLINE:g} s (without: {base:.2f} s)",
                f"<= without + {DEADLINE:g} s + 1 s", hung, hung <= base + DEADLINE + 1,
                floor))
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, target, secs, ok, floors in rows(tmp):
            met = {None: "", True: "yes", False: "NO"}[ok]
            ratio = f"{secs / floors:8.1f} x python" if floors else ""
            print(f"{name:<70} {target:<28} {secs:8.3f} s {ratio} {met}")


if __name__ == "__main__":
    main()

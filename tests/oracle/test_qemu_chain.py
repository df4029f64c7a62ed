"""The chain: domain XML -> libvirt's QEMU command line -> the real kernel -> numaguard.

For every experiment of qemu_chain.CHAIN, tests/oracle/results/qemu/chain/NAME.json is what the
kernel did (Debian 6.1 with 3 emulated nodes) when Debian's QEMU 7.2 ran the memory and NUMA
part of the argv libvirt 9.0.0 wrote for a domain of tests/oracle/qemu/domains/
(tests/oracle/qemu/argv/; ``run_qemu_oracle.py --chain`` re-records).  numaguard's prediction
comes from the domain XML itself, not from a hand-written scenario: a snapshot directory of the
oracle VM as measured (host/) and the domain XML with the same nodeset (domains/), played
through ``numaguard simulate``'s path.  Guest RAM per guest and node within max(2 % of the
guest's memory, 4 MiB); OOM events (victim, constraint) exactly.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from numaguard.readers.sources import load_host
from tests.oracle import oracle_lib as ol
from tests.oracle import qemu_chain as qc

CHAINS = qc.by_name()
RECORDED = {c.name for c in qc.CHAIN if qc.load_result(c) is not None}


def _result(name: str) -> dict:
    result = qc.load_result(CHAINS[name])
    assert result is not None
    return result


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[pytest.mark.xfail(strict=True, reason=qc.CHAIN_KNOWN[n])]
                 if n in qc.CHAIN_KNOWN else []) for n in sorted(RECORDED)])
def test_numaguard_predicts_the_kernel_from_the_domain_xml(name, tmp_path):
    cmp = qc.compare(CHAINS[name], _result(name), tmp_path / "snapshot")
    assert cmp["agree"], cmp["problems"]


REPEATED = [(d.name, n) for d in qc.repeat_boots() for n in sorted(CHAINS)
            if qc.load_result(CHAINS[n], d) is not None]


def _repeat_marks(boot: str, name: str) -> list:
    reason = qc.CHAIN_KNOWN.get(name) or qc.REPEAT_KNOWN.get((boot, name))
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


@pytest.mark.parametrize(("boot", "name"), [
    pytest.param(b, n, marks=_repeat_marks(b, n)) for b, n in REPEATED])
def test_a_repeated_boot_is_judged_the_same_way(boot, name, tmp_path):
    """Each repeated boot (results/qemu/chain/boots/N/) against numaguard, as the committed
    one: the same tolerance, the same explained disagreements."""
    res = qc.load_result(CHAINS[name], qc.RESULTS_DIR / "boots" / boot)
    assert res is not None
    cmp = qc.compare(CHAINS[name], res, tmp_path / "snapshot")
    assert cmp["agree"], cmp["problems"]


def test_prealloc_threads_spread_the_guest_over_the_nodeset(tmp_path):
    """chain-immediate-split in every boot: all guest RAM inside the nodeset (1-2), and
    numaguard's share per node (the nodes' CPUs: 128 MiB each) between the least and the most
    the kernel gave that node over the boots - the threads' CPUs are the scheduler's."""
    chain = CHAINS["chain-immediate-split"]
    boots = [_result(chain.name)] + [r for d in qc.repeat_boots()
                                     if (r := qc.load_result(chain, d)) is not None]
    assert len(boots) >= 5
    placed = [r["chain"]["guests"]["vm1"]["guest_placed"] for r in boots]
    for p in placed:
        assert set(p) <= {"1", "2"} and abs(sum(p.values()) - 256 * ol.MiB) < ol.MiB, p
    pred = qc.predict(qc.write_snapshot(tmp_path / "snap", chain, boots[0]["host"])).placed
    for n in ("1", "2"):
        got = [p.get(n, 0) for p in placed]
        assert min(got) <= pred["vm1"][n] <= max(got), (n, got, pred)
    assert max(got) - min(got) > 64 * ol.MiB   # the spread is the kernel's, and wide


def test_every_chain_experiment_is_recorded_with_the_argv_it_ran():
    """A result per experiment, made from the argv this code builds today (a change to the
    transformation or to the recorded libvirt argv needs `run_qemu_oracle.py --chain`)."""
    assert set(CHAINS) == RECORDED, "run tests/oracle/run_qemu_oracle.py --chain"
    for c in qc.CHAIN:
        res = _result(c.name)
        ran = {line.split(" ", 1)[0]: line.split(" ", 1)[1]
               for s in res["steps"] if (line := f"{s['name']} {s.get('qemu_argv')}")}
        for g in c.guests:
            rec = res["chain"]["guests"][g.step]
            argv, changes = qc.oracle_argv(g)
            assert rec["argv_run"] == argv and rec["changes"] == changes, c.name
            assert rec["domain_xml_run"] == g.xml(), c.name
            # what /init logged it started is that argv (oracle_init.sh qemu.argv)
            assert ran[g.step] == " ".join(argv), c.name
        assert res["kernel"]["thp"].startswith("always madvise [never]"), res["kernel"]["thp"]
        assert "6.1" in res["kernel"]["release"]


def test_libvirts_memory_and_numa_part_is_kept_verbatim_but_the_nodes():
    for c in qc.CHAIN:
        for g in c.guests:
            recorded, (run, _) = g.argv_recorded(), qc.oracle_argv(g)
            for opt in ("-machine", "-m", "-smp", "-numa", "-cpu", "-accel", "-overcommit"):
                assert _values(recorded, opt) == _values(run, opt), (g.domain, opt)
            rec_objs = [json.loads(v) for v in _values(recorded, "-object")
                        if json.loads(v)["qom-type"] != "secret"]
            run_objs = [json.loads(v) for v in _values(run, "-object")]
            assert len(rec_objs) == len(run_objs) >= 1
            for a, b in zip(rec_objs, run_objs, strict=True):
                assert a.get("host-nodes", [0]) == [0] and a.get("node-affinity", [0]) == [0]
                keep = {k: v for k, v in a.items() if k not in ("host-nodes", "node-affinity")}
                assert {k: v for k, v in b.items() if k in keep} == keep
                assert set(b) == set(a)
                if "host-nodes" in b:
                    assert b["host-nodes"] == g.backend_nodes(b["id"])
            # a lazily touched guest starts at once, unless its vCPU threads are to be pinned
            # first (then it is resumed on its monitor pipe, as libvirt resumes it)
            assert ("-S" in run) == (g.prealloc or bool(g.vcpu_pins))
            assert ("-kernel" in run) != g.prealloc
            assert ("-monitor" in run) == (not g.prealloc and bool(g.vcpu_pins))


def _values(argv: list[str], opt: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == opt]


def test_the_snapshot_is_the_measured_host(tmp_path):
    """numaguard's reader sees the recorded MemFree, MemTotal and watermarks of every node."""
    c = qc.CHAIN[0]
    res = _result(c.name)
    host = load_host(str(qc.write_snapshot(tmp_path, c, res["host"])))
    for node, rec in zip(host.nodes, res["host"]["nodes"], strict=True):
        assert node.id == rec["id"]
        assert node.mem_free == rec["mem_free"] // ol.KiB * ol.KiB
        assert node.mem_total == rec["mem_total"] // ol.KiB * ol.KiB
        assert node.watermark_low == rec["watermark_low"]
        assert node.watermark_min == rec["watermark_min"]


def test_the_snapshot_carries_the_measured_hugepage_pools(tmp_path):
    """numaguard's reader sees each node's 2 MiB pool as it was before the experiment (sysfs
    nr_hugepages/free_hugepages), the pools the experiment reserved."""
    for c in qc.CHAIN:
        if not c.hugepages:
            continue
        res = _result(c.name)
        start = res["chain"]["hugepages"]["start"]
        host = load_host(str(qc.write_snapshot(tmp_path / c.name, c, res["host"], start)))
        for node in host.nodes:
            pool = node.hugepage_pool(qc.HUGEPAGE_KIB * ol.KiB)
            want = start[str(node.id)]
            assert want["total"] == c.hugepages.get(node.id, 0), (c.name, node.id)
            if want["total"]:
                assert pool is not None and (pool.total, pool.free) == (want["total"],
                                                                        want["free"])


def test_hugepage_guests_take_their_pages_from_the_pools():
    """What each hugepage-backed guest holds per node (numa_maps, ``huge``) is what that
    node's pool lost during its step; a bound guest's pages all come from its nodes' pools (a
    preferred one's also from others'); the pools are whole again after the guests."""
    huge = [c for c in qc.CHAIN if c.hugepages]
    assert huge
    for c in huge:
        rec = _result(c.name)["chain"]
        pools = rec["hugepages"]
        for g, st in zip(c.guests, pools["steps"], strict=True):
            taken = {n: (st["before"][n]["free"] - st["after"][n]["free"]) * qc.HUGEPAGE_KIB
                     * ol.KiB for n in st["before"]}
            placed = rec["guests"][g.step]["guest_placed"]
            assert {n: b for n, b in taken.items() if b} == placed, (c.name, g.step)
            if rec["guests"][g.step]["outcome"] == "died":   # QEMU could not map its RAM
                assert not placed, (c.name, g.step)
                continue
            if g.mode == "strict":
                assert set(placed) == {str(n) for n in g.backend_nodes("pc.ram")}
            assert sum(placed.values()) == g.mib * ol.MiB
        assert all(p["free"] == p["total"] for p in pools["guests_stopped"].values()), c.name


def test_a_pool_short_within_cpuset_mems_stops_qemu_before_it_touches():
    """chain-hugepages-short: 192 pages free in all, 64 on node 1, the guest bound there
    needs 128: QEMU exited when mapping its RAM (no OOM, nothing placed) and numaguard says
    the guest cannot get all of its memory (failed), though it places the 128 MiB node 1's
    pool has (the strict xfail)."""
    c = CHAINS["chain-hugepages-short"]
    res = _result(c.name)
    rec = res["chain"]["guests"]["vm1"]
    assert rec["outcome"] == "died" and not rec["guest_placed"] and not qc.kernel_events(res)
    assert "unable to map backing store for guest RAM: Cannot allocate memory" in \
        res["steps"][0]["stderr"]
    start = res["chain"]["hugepages"]["start"]
    assert start["1"]["free"] * qc.HUGEPAGE_KIB * ol.KiB < c.guests[0].mib * ol.MiB <= sum(
        p["free"] for p in start.values()) * qc.HUGEPAGE_KIB * ol.KiB


def test_pinned_threads_ran_where_the_domain_xml_pins_them():
    """The vCPU threads ("CPU N/TCG") had the vcpupin CPUs and the emulator the emulatorpin
    CPU (taskset -p masks /init recorded), as the domain XML numaguard read says."""
    pinned = [(c, g) for c in qc.CHAIN for g in c.guests if g.cpus]
    assert pinned
    for c, g in pinned:
        rec = _result(c.name)["chain"]["guests"][g.step]
        root = ET.fromstring(rec["domain_xml_run"])
        want = {el.get("vcpu"): el.get("cpuset") for el in root.findall("cputune/vcpupin")}
        masks = {line.split()[0]: int(line.rsplit(" ", 1)[1], 16) for line in rec["vcpu_threads"]}
        assert masks == {v: _mask(cpus) for v, cpus in want.items()}, c.name
        emu = root.find("cputune/emulatorpin")
        assert emu is not None
        assert int(rec["emulator_affinity"].rsplit(" ", 1)[1], 16) == _mask(emu.get("cpuset"))


def _mask(cpus: str | None) -> int:
    return sum(1 << c for c in ol._cpulist(cpus or ""))


def test_both_vcpus_touch_their_half_from_their_own_node():
    """With the 2-vCPU guest kernel each vCPU's half lands on the node of the CPU it is
    pinned to (bind over both nodes: the local node first); with vCPU 0 alone all of it."""
    split = _result("chain-pinned-split")["chain"]["guests"]["vm1"]["guest_placed"]
    bsp = _result("chain-pinned-split-bsp")["chain"]["guests"]["vm1"]["guest_placed"]
    g = CHAINS["chain-pinned-split"].guests[0]
    half = g.touch_mib // 2 * ol.MiB
    tol = ol.tolerance(g.mib * ol.MiB)
    assert abs(split["1"] - half) <= tol and abs(split["0"] - (g.touch_mib * ol.MiB - half)) <= tol
    assert list(bsp) == ["1"] and abs(bsp["1"] - g.touch_mib * ol.MiB) <= tol


def test_the_chain_is_not_vacuous(tmp_path):
    """The comparison sees a wrong nodeset: numaguard given node 0 for the strict guest the
    kernel placed on node 1 disagrees, and the OOM experiment has an OOM on both sides."""
    c = CHAINS["chain-strict"]
    wrong = qc.Chain.one("chain-strict", "strict", "0")
    assert not qc.compare(wrong, _result(c.name), tmp_path / "wrong")["agree"]
    # numaguard told of a pool too small for the hugepage guest the kernel started: it says
    # some of the guest's memory fails, and the comparison sees that
    huge = json.loads(json.dumps(_result("chain-hugepages")))
    huge["chain"]["hugepages"]["start"]["1"]["free"] = 32
    cmp = qc.compare(CHAINS["chain-hugepages"], huge, tmp_path / "short")
    assert any("kernel started, numaguard failed" in p for p in cmp["problems"]), cmp
    res = _result("chain-n0-strict-oom")
    assert qc.kernel_events(res)
    assert all(r["guest_placed"] for r in res["chain"]["guests"].values())


def test_plans_pass_libvirts_argv_and_the_guest_kernel():
    text = qc.plan_text(qc.CHAIN)
    files = qc.plan_files(qc.CHAIN)
    for c in qc.CHAIN:
        for g in c.guests:
            argv, _ = qc.oracle_argv(g)
            assert [f"qarg {g.step} {a}" for a in argv] == [
                line for line in _exp_lines(text, c.name) if line.startswith(f"qarg {g.step} ")]
            if not g.prealloc:
                assert g.kernel_file in files
                assert f"/plans/{g.kernel_file}" in argv
            lines = _exp_lines(text, c.name)
            assert [f"qpin {g.step} {v} {cpus}" for v, cpus in sorted(g.vcpu_pins.items())] == [
                line for line in lines if line.startswith(f"qpin {g.step} ")]
        assert [f"hugepages {n} {p}" for n, p in sorted(c.hugepages.items())] == [
            line for line in _exp_lines(text, c.name) if line.startswith("hugepages ")]
    assert all(" " not in a for c in qc.CHAIN for g in c.guests for a in qc.oracle_argv(g)[0])


def _exp_lines(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"exp {name}")
    return lines[start:lines.index("run", start)]


# -- THP=always: libvirt's guests with transparent huge pages (Debian's default) ---------------

THP_BOOTS = qc.thp_boots()
THP_RUNS = [(d.name if d.parent.name == "boots" else "0", n) for d in THP_BOOTS
            for n in sorted(CHAINS) if qc.load_result(CHAINS[n], d) is not None]


def _thp_marks(boot: str, name: str) -> list:
    reason = qc.CHAIN_KNOWN.get(name) or qc.THP_CHAIN_KNOWN.get((boot, name)) or \
        qc.REPEAT_KNOWN.get(("thp", name))
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


def test_every_chain_experiment_has_thp_always_boots():
    """At least 3 THP=always chain boots, each with every experiment, one kernel, THP on."""
    assert len(THP_BOOTS) >= 3
    for d in THP_BOOTS:
        assert {n for b, n in THP_RUNS if b == (d.name if d.parent.name == "boots" else "0")} \
            == set(CHAINS), d
        for n in CHAINS:
            res = qc.load_result(CHAINS[n], d)
            assert res["kernel"]["thp"].startswith("[always]"), (d, n)


@pytest.mark.parametrize(("boot", "name"), [
    pytest.param(b, n, marks=_thp_marks(b, n)) for b, n in THP_RUNS])
def test_numaguard_predicts_the_kernel_with_thp_always(boot, name, tmp_path):
    """Each THP=always chain boot: guest RAM per node within max(2 %, 4 MiB, the kernel's
    spread for that experiment, guest and node over the THP=always boots), OOM events and
    QEMU exits exactly."""
    d = qc.results_dir("always") if boot == "0" else qc.results_dir("always") / "boots" / boot
    res = qc.load_result(CHAINS[name], d)
    cmp = qc.compare(CHAINS[name], res, tmp_path / "snapshot", qc.thp_spread(CHAINS[name]))
    assert cmp["agree"], cmp["problems"]

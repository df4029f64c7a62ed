"""parse_qemu_argv: the legacy key=value form reads like the JSON one; bad input names its field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from numaguard.cpuset import format_bitmap
from numaguard.errors import ParseError
from numaguard.readers.qemu_argv import parse_qemu_argv, qemu_size, split_opts

RECORDED = sorted((Path(__file__).resolve().parents[1] / "oracle/qemu/argv").glob("*.json"))


def _legacy(props: dict[str, object]) -> str:
    """A JSON -object as QemuOpts text (what QEMU before libvirt's JSON switch was given)."""
    parts = [str(props["qom-type"])]
    for key, val in props.items():
        if key == "qom-type":
            continue
        if isinstance(val, bool):
            text = "on" if val else "off"
        elif isinstance(val, list):
            text = format_bitmap(int(v) for v in val)
        else:
            text = str(val)
        if key in ("host-nodes", "node-affinity") and "," in text:
            parts += [f"{key}={piece}" for piece in text.split(",")]   # repeated key: appends
        else:
            parts.append(f"{key}={text.replace(',', ',,')}")
    return ",".join(parts)


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_legacy_objects_parse_like_json(path: Path) -> None:
    argv = json.loads(path.read_text())["argv"]
    legacy = [_legacy(json.loads(a)) if i and argv[i - 1] == "-object" else a
              for i, a in enumerate(argv)]
    assert legacy != argv
    assert parse_qemu_argv(legacy) == parse_qemu_argv(argv)


def test_a_hand_written_command_line() -> None:
    layout = parse_qemu_argv([
        "qemu-system-x86_64", "-m", "size=768M,slots=2,maxmem=2G", "-smp", "cpus=3,sockets=3",
        "-object", "memory-backend-ram,id=m0,size=512M,host-nodes=0-1,host-nodes=3,policy=bind,"
                   "prealloc=yes,prealloc-threads=2",
        "-object", "memory-backend-memfd,id=m1,size=0.25G,hugetlb=on,hugetlbsize=2M,share=on",
        "-object", "secret,id=s0,data=x",
        "-numa", "node,nodeid=0,cpus=0-1,memdev=m0", "-numa", "node,nodeid=1,cpus=2,memdev=m1",
        "-numa", "dist,src=0,dst=1,val=21", "--machine", "q35", "-mem-prealloc"])
    assert layout.memory == 768 * 2**20 and layout.smp is not None and layout.smp.cpus == 3
    m0, m1 = layout.guest_ram()
    assert (m0.size, m0.host_nodes, m0.policy, m0.prealloc, m0.prealloc_threads) == (
        512 * 2**20, frozenset({0, 1, 3}), "bind", True, 2)
    assert (m1.size, m1.hugetlb, m1.hugetlbsize, m1.share, m1.policy, m1.host_nodes) == (
        2**28, True, 2 * 2**20, True, "default", None)
    assert m1.hugepages and not m0.hugepages
    assert [n.cpus for n in layout.numa_nodes] == [frozenset({0, 1}), frozenset({2})]
    assert (layout.machine, layout.machine_memory_backend, layout.mem_prealloc) == (
        "q35", None, True)


def test_an_unknown_flag_does_not_swallow_the_next_option() -> None:
    layout = parse_qemu_argv(["qemu", "-full-screen", "-m", "64", "-name", "g", "-smp", "2"])
    assert layout.memory == 64 * 2**20 and layout.smp is not None and layout.smp.cpus == 2


def test_sizes_and_opts() -> None:
    assert qemu_size("256", field="-m", default_suffix="m") == 256 * 2**20
    assert qemu_size("1.5k", field="x") == 1536
    assert qemu_size(4096, field="x") == 4096
    assert split_opts("memory-backend-file,id=a,mem-path=/x,,y") == [
        ("memory-backend-file", None), ("id", "a"), ("mem-path", "/x,y")]


@pytest.mark.parametrize(("argv", "field"), [
    (["-object", '{"qom-type":"memory-backend-ram","id":"r","size":1,"policy":"local"}'],
     "-object r: policy"),
    (["-object", "memory-backend-ram,id=r,size=12Q"], "-object r: size"),
    (["-object", "memory-backend-ram,id=r,size=1.5"], "-object r: size"),
    (["-object", "memory-backend-ram,id=r"], "-object r: size"),
    (["-object", "memory-backend-ram,size=1M"], "-object id"),
    (["-object", '{"qom-type":"memory-backend-ram","id":"r","size":1,"host-nodes":[0,"x"]}'],
     "-object r: host-nodes"),
    (["-object", "memory-backend-ram,id=r,size=1M,host-nodes=5000"], "-object r: host-nodes"),
    (["-object", "memory-backend-ram,id=r,size=1M,prealloc=maybe"], "-object r: prealloc"),
    (["-object", '{"qom-type":"memory-backend-ram","id":"r","size":1,"prealloc-threads":0}'],
     "-object r: prealloc-threads"),
    (["-object", '{"qom-type":"memory-backend-ram",'], "-object"),
    (["-object", "memory-backend-ram,id=r,size=1M", "-object", "memory-backend-ram,id=r,size=1M"],
     "-object"),
    (["-numa", "node,cpus=0"], "-numa node"),
    (["-numa", "node,nodeid=x"], "-numa node nodeid"),
    (["-numa", "node,nodeid=0,cpus=1-0"], "-numa node cpus"),
    (["-m", "lots"], "-m"),
    (["-smp", "sockets=2"], "-smp"),
    (["-smp", "two"], "-smp cpus"),
    (["-m"], "-m"),
])
def test_bad_input_names_the_field(argv: list[str], field: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_qemu_argv(["qemu", *argv])
    assert err.value.field == field, err.value
    assert str(err.value).startswith(field + ": ")


def test_a_numa_node_with_an_undefined_memdev() -> None:
    layout = parse_qemu_argv(["-numa", "node,nodeid=0,memdev=nope"])
    with pytest.raises(ParseError, match="'nope' is used but never defined"):
        layout.guest_ram()

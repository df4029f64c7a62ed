"""The command line as a user meets it: outputs, the JSON contract, and bad input."""

import json
import os
import pathlib
import shutil
import sys

import pytest

from numaguard import cli
from numaguard.readers import sources, sysfs  # noqa: F401  (imported before any fork below)
from numaguard.report import jsonout, text  # noqa: F401

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
ARTICLE = ROOT / "examples" / "article-host"
GiB = 1024**3


def run(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_help_documents_commands_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("topology", "guests", "snapshot", "exit codes", "2  bad input"):
        assert word in out


def test_topology_json_contract(capsys):
    rc, out, err = run(capsys, "topology", FIX / "sys" / "4node", "--format", "json")
    assert rc == 0 and err == ""
    data = json.loads(out)
    assert set(data) >= {"nodes", "distances", "swap_total_bytes", "swap_free_bytes"}
    assert [n["id"] for n in data["nodes"]] == [0, 1, 2, 3]
    assert [n["cpus"] for n in data["nodes"]] == [[0], [1], [2], [3]]
    assert data["distances"] == [[10, 21, 21, 31], [21, 10, 31, 21], [21, 31, 10, 21],
                                 [31, 21, 21, 10]]
    node = data["nodes"][1]
    assert set(node) >= {"id", "cpus", "mem_total_bytes", "mem_free_bytes", "hugepages"}
    # node1 of the 4node capture has 384 MiB of RAM: MemTotal is a bit less (kernel reserves)
    assert 300 * 2**20 < node["mem_total_bytes"] <= 384 * 2**20
    assert node["mem_free_bytes"] < node["mem_total_bytes"]
    assert {h["size_bytes"] for h in node["hugepages"]} == {2 * 2**20, GiB}


def test_topology_text_shows_units(capsys):
    rc, out, _ = run(capsys, "topology", ARTICLE)
    assert rc == 0
    assert "15.0 GiB" in out and "0-9,40-49" in out and "Distances" in out
    assert "2 MiB: 4096/4096 free" in out
    assert "Swap: 2.0 GiB free of 2.0 GiB" in out


def guests_by_name(out):
    return {g["name"]: g for g in json.loads(out)["guests"]}


def test_guests_json_on_the_article_host(capsys):
    rc, out, err = run(capsys, "guests", ARTICLE, "--format", "json")
    assert rc == 0 and err == ""
    g = guests_by_name(out)
    assert set(g) == {"vm1", "bigmem-preferred", "web-interleave", "db-hugepages"}
    vm1 = g["vm1"]
    assert vm1["memory_bytes"] == 12 * GiB and vm1["current_memory_bytes"] == 12 * GiB
    assert vm1["vcpus"] == 4 and vm1["vcpu_placement"] == "static"
    assert vm1["cpuset"] == list(range(10))
    assert vm1["policy"] == {"mode": "strict", "placement": "static", "nodeset": [0],
                             "implicit_mode": True}
    assert vm1["cells"] == []
    assert g["bigmem-preferred"]["memory_bytes"] == 35 * GiB
    assert g["bigmem-preferred"]["policy"]["mode"] == "preferred"
    assert g["bigmem-preferred"]["policy"]["implicit_mode"] is False
    assert g["web-interleave"]["policy"]["nodeset"] == [0, 1, 2]
    assert g["db-hugepages"]["hugepages"] == [{"size_bytes": 2 * 2**20, "cells": None}]


def test_guests_text(capsys):
    rc, out, _ = run(capsys, "guests", ARTICLE / "domains" / "vm1.xml")
    assert rc == 0
    assert "vm1" in out and "strict (implicit) static → 0" in out and "12.0 GiB" in out


# --- bad input: one line per problem naming file and field, exit 2, no traceback ----------

def write(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    return p


DOMAIN = """<domain type='kvm'>
  <name>t</name>
  <memory unit='{unit}'>4</memory>
  <vcpu placement='static'>2</vcpu>
  <numatune>
    <memory mode='strict' nodeset='{nodeset}'/>
  </numatune>
</domain>
"""


@pytest.mark.parametrize("content,expected", [
    ("<domain type='kvm'>\n  <name>t</name>\n  <memory>4", "t.xml:3: xml: malformed XML"),
    (DOMAIN.format(unit="GiB", nodeset="3-1"),
     "t.xml:6: numatune/memory/@nodeset: '3-1': range 3-1 ends before it starts"),
    (DOMAIN.format(unit="parsec", nodeset="0"), "t.xml:3: memory/@unit: unknown unit 'parsec'"),
    (('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
      ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n]>\n'
      '<domain><name>&lol2;</name></domain>\n'),
     "t.xml:2: xml: DOCTYPE/ENTITY declarations are not allowed"),
    ("<network><name>default</name></network>\n",
     "t.xml:1: domain: not a libvirt domain XML"),
])
def test_bad_domain_xml(capsys, tmp_path, content, expected):
    path = write(tmp_path, "t.xml", content)
    rc, out, err = run(capsys, "guests", path)
    assert rc == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("numaguard guests: " + str(tmp_path) + "/")
    assert expected in lines[0]
    assert "Traceback" not in err


def test_all_problems_of_a_file_at_once(capsys, tmp_path):
    path = write(tmp_path, "t.xml", DOMAIN.format(unit="parsec", nodeset="0,^0"))
    rc, _, err = run(capsys, "guests", path)
    assert rc == 2
    assert [line.split(": ")[2] for line in err.splitlines()] == [
        "memory/@unit", "numatune/memory/@nodeset"]


def copy_tree(tmp_path, name="4node"):
    dst = tmp_path / name
    shutil.copytree(FIX / "sys" / name, dst)
    return dst


def test_missing_meminfo(capsys, tmp_path):
    tree = copy_tree(tmp_path)
    meminfo = tree / "sys/devices/system/node/node2/meminfo"
    meminfo.unlink()
    rc, out, err = run(capsys, "topology", tree)
    assert rc == 2 and out == ""
    assert err == f"numaguard topology: {meminfo}: no such file\n"


def test_malformed_meminfo(capsys, tmp_path):
    tree = copy_tree(tmp_path)
    meminfo = tree / "sys/devices/system/node/node1/meminfo"
    meminfo.write_text("Node 1 MemTotal:  lots kB\n")
    rc, _, err = run(capsys, "topology", tree)
    assert rc == 2
    assert err.startswith(f"numaguard topology: {meminfo}:1: ")
    assert len(err.splitlines()) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user in a child")
def test_unreadable_meminfo_is_permission_denied():
    """Run the CLI as an unprivileged user (fork + setuid) on a tree with a 0600 meminfo."""
    import tempfile

    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="numaguard-perm-"))
    try:
        _unreadable_meminfo(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _unreadable_meminfo(tmp_path):
    tree = copy_tree(tmp_path)
    meminfo = tree / "sys/devices/system/node/node0/meminfo"
    os.chmod(meminfo, 0o600)
    for p in [tmp_path, *tree.rglob("*")]:
        if p != meminfo:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody and run the command
        try:
            os.close(rfd)
            os.dup2(wfd, 2)
            sys.stderr = os.fdopen(2, "w")
            os.setgid(65534)
            os.setuid(65534)
            rc = cli.main(["topology", str(tree)])
        except BaseException:  # noqa: BLE001 - a forked child must never return into pytest
            rc = 99
        finally:
            sys.stderr.flush()
        os._exit(rc)
    os.close(wfd)
    with os.fdopen(rfd) as fh:
        err = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 2
    assert err == f"numaguard topology: {meminfo}: permission denied\n"


def test_unknown_source(capsys, tmp_path):
    rc, _, err = run(capsys, "topology", tmp_path / "nope")
    assert rc == 2 and "no such file or directory" in err


def test_folder_without_topology(capsys, tmp_path):
    rc, _, err = run(capsys, "topology", tmp_path)
    assert rc == 2 and "no topology here" in err


# --- snapshot ---------------------------------------------------------------------------------

def test_snapshot_round_trip(capsys, tmp_path):
    target = tmp_path / "snap"
    rc, out, err = run(capsys, "snapshot", target, "--root", FIX / "sys" / "hugepages",
                       "--libvirt-dir", ARTICLE / "domains")
    assert rc == 0, err
    assert "2 NUMA node(s)" in out and "4 domain XML(s)" in out
    _, a, _ = run(capsys, "topology", target, "--format", "json")
    _, b, _ = run(capsys, "topology", FIX / "sys" / "hugepages", "--format", "json")
    assert json.loads(a) == json.loads(b)
    _, ga, _ = run(capsys, "guests", target, "--format", "json")
    _, gb, _ = run(capsys, "guests", ARTICLE, "--format", "json")

    def strip(s: str) -> list[dict[str, object]]:
        return [{k: v for k, v in g.items() if k != "source"} for g in json.loads(s)["guests"]]

    assert strip(ga) == strip(gb)
    for g in json.loads(ga)["guests"]:
        assert (target / "domains" / f"{g['name']}.xml").read_bytes() == \
            (ARTICLE / "domains" / f"{g['name']}.xml").read_bytes()


def test_snapshot_refuses_existing_dir(capsys, tmp_path):
    target = tmp_path / "snap"
    target.mkdir()
    (target / "keep").write_text("x")
    rc, _, err = run(capsys, "snapshot", target, "--root", FIX / "sys" / "2node")
    assert rc == 2 and "already exists" in err
    assert [p.name for p in target.iterdir()] == ["keep"]


def test_snapshot_writes_nothing_on_bad_root(capsys, tmp_path):
    root = copy_tree(tmp_path, "2node")
    (root / "sys/devices/system/node/node1/meminfo").unlink()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, _, err = run(capsys, "snapshot", out_dir / "snap", "--root", root)
    assert rc == 2 and "node1/meminfo: no such file" in err
    assert list(out_dir.iterdir()) == []


def test_snapshot_of_this_machine(capsys, tmp_path):
    if not os.path.isdir("/sys/devices/system/node/node0"):
        pytest.skip("this machine exposes no NUMA sysfs")
    rc, out, err = run(capsys, "snapshot", tmp_path / "live")
    assert rc == 0, err
    rc, out, _ = run(capsys, "topology", tmp_path / "live", "--format", "json")
    assert rc == 0 and json.loads(out)["nodes"][0]["id"] == 0


def test_example_host_is_what_the_generator_writes(tmp_path):
    from tests.support.article_host import build

    build(str(tmp_path / "gen"))
    committed = {p.relative_to(ARTICLE): p.read_bytes() for p in ARTICLE.rglob("*")
                 if p.is_file() and p.name != "README.md"}
    generated = {p.relative_to(tmp_path / "gen"): p.read_bytes()
                 for p in (tmp_path / "gen").rglob("*") if p.is_file()}
    assert committed == generated


def test_commands_that_read_no_xml_do_not_import_lxml():
    """Building the parser (every command does) must not pull in lxml through domxml: ~20 ms
    of start-up that topology from sysfs or numactl -H never needs (issue 11)."""
    import subprocess
    import sys

    code = ("import sys, io, contextlib\nfrom numaguard import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    rc = cli.main(['topology', 'examples/article-host', '--format', 'json'])\n"
            "print(rc, 'lxml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=pathlib.Path(__file__).resolve().parents[2]).stdout
    assert out.split() == ["0", "False"]

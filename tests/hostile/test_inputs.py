"""Hostile inputs, one class at a time (issue 9): each is built here from code and must give one
clear line naming the file (and the field), exit 2, no traceback, no hang, nothing read that the
input merely names (an entity, a FIFO, a device).

Every run goes through tests/hostile/harness.py: a forked child with a timeout (a hang is a
failure, not a stuck CI job) and an address-space limit (memory exhaustion is a failure too).
"""

from __future__ import annotations

import glob
import os
import pathlib
import shutil

import pytest

from numaguard.readers.sysfs import SysfsReader
from tests.hostile.harness import (
    assert_bad_input,
    assert_not_leaked,
    run_cli,
    run_subprocess,
    untouched,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTICLE = ROOT / "examples" / "article-host"
VM1 = ARTICLE / "domains" / "vm1.xml"
SCENARIO = ROOT / "examples" / "scenarios" / "article-vm1-app.toml"
CAPS = ROOT / "tests" / "fixtures" / "capabilities" / "4node.xml"
NUMACTL = ROOT / "tests" / "fixtures" / "sys" / "4node" / "numactl-H.txt"
HUGE = "9" * 5000   # beyond Python's 4,300-digit int conversion limit

MINIMAL = ("<domain type='kvm'><name>{name}</name><memory unit='GiB'>1</memory>"
           "<vcpu>{vcpu}</vcpu>{extra}</domain>\n")


def domain(name: str = "g", vcpu: str = "1", extra: str = "") -> str:
    return MINIMAL.format(name=name, vcpu=vcpu, extra=extra)


def write(path: pathlib.Path, data: str | bytes) -> pathlib.Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# -- a broken domain file is an error, never a silently ignored "host source" --------------------

BROKEN_DOMAINS = {
    "empty": b"",
    "blank": b"\n  \n",
    "binary": bytes(range(256)) * 4,
    "flipped-first-byte": b"=" + VM1.read_bytes()[1:],
    "doctype-prologue": b"<!DOCTYPE domain>\n" + VM1.read_bytes(),
    "only-comments": b"<!-- nothing -->\n<!-- here -->\n",
    "only-declaration": b"<?xml version='1.0'?>\n",
    "truncated": VM1.read_bytes()[:200],
    "not-a-domain": b"<network><name>default</name></network>\n",
    "utf16": VM1.read_text().encode("utf-16"),
    # a regular expression with a repeated lazy group backtracks exponentially over these
    "many-comments": b"<!-- -->" * 100_000 + b"!",
}


@pytest.mark.parametrize("case", sorted(BROKEN_DOMAINS))
@pytest.mark.parametrize("command", ["audit", "guests", "fix"])
def test_broken_domain_file_is_an_error_naming_it(tmp_path, case, command):
    bad = write(tmp_path / f"{case}.xml", BROKEN_DOMAINS[case])
    argv = {"audit": ["audit", str(ARTICLE / "host"), str(bad)],
            "guests": ["guests", str(bad)],
            "fix": ["fix", str(bad), "--mode", "preferred", "--nodeset", "0",
                    "--host", str(ARTICLE)]}[command]
    with untouched(tmp_path):
        assert_bad_input(run_cli(argv), names=[f"{case}.xml"], cmd=command)


def test_audit_still_reads_topology_files_given_as_sources(tmp_path):
    """Classification by content keeps the documented forms working: a capabilities XML or a
    numactl -H file is the host; a domain XML beside it is a guest."""
    for host in (CAPS, NUMACTL):
        out = run_cli(["audit", str(host), str(VM1), "--format", "json", "--fail-on", "never"])
        assert out.code == 0, out.describe()
        assert '"vm1"' in out.out


# -- DTDs, entities and encodings ----------------------------------------------------------------

def _entity_doc(target: str, *, parameter: bool = True) -> str:
    decl = (f'<!ENTITY % p SYSTEM "file://{target}"> %p;' if parameter
            else f'<!ENTITY e SYSTEM "file://{target}">')
    body = "&e;" if not parameter else "g"
    return (f'<?xml version="1.0" encoding="{{enc}}"?>\n<!DOCTYPE domain [{decl}]>\n'
            f"<domain type='kvm'><name>{body}</name><memory>1048576</memory></domain>\n")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("parameter", [True, False], ids=["parameter-entity", "entity"])
def test_entities_are_never_loaded_whatever_the_encoding(tmp_path, encoding, parameter):
    """The external entity names a FIFO: opening it would block (no writer), so a run that
    finishes proves it was never opened; a secret file's content never reaches the output."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    secret = write(tmp_path / "secret", "numaguard-secret-4711\n")
    for target in (fifo, secret, pathlib.Path("/dev/zero")):
        text = _entity_doc(str(target), parameter=parameter)
        xml = write(tmp_path / "evil.xml", text.replace("{enc}", encoding.upper())
                    .encode(encoding))
        for argv in (["guests", str(xml)], ["audit", str(ARTICLE / "host"), str(xml)],
                     ["fix", str(xml), "--mode", "preferred", "--nodeset", "0", "--host",
                      str(ARTICLE)]):
            out = run_cli(argv, timeout=10)
            assert_bad_input(out, names=["evil.xml"])
            assert_not_leaked(out, "numaguard-secret-4711")


def test_the_parser_itself_refuses_external_loads(tmp_path):
    """Defence in depth below the DTD check.  With ``collect_ids=False`` libxml2 loads an
    external parameter entity of a UTF-16 document from a local file even with
    ``load_dtd=False`` (seen with lxml 6.1 / libxml2 2.14); numaguard's resolver refuses
    that load, and numaguard's own parser does not attempt it."""
    from lxml import etree

    from numaguard.domxml import safexml

    secret = write(tmp_path / "secret", "numaguard-secret-4711")
    data = _entity_doc(str(secret)).replace("{enc}", "UTF-16").encode("utf-16")
    leaky = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                            collect_ids=False)
    with pytest.raises(etree.XMLSyntaxError):   # it read the secret (and choked on it)
        etree.fromstring(data, leaky)
    guarded = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                              collect_ids=False)
    guarded.resolvers.add(safexml._RefuseExternal())
    with pytest.raises(safexml._ExternalLoad) as exc:
        etree.fromstring(data, guarded)
    assert exc.value.url == f"file://{secret}"
    root = etree.fromstring(data, safexml._PARSER)   # never asks for it at all
    assert b"numaguard-secret" not in etree.tostring(root)
    with pytest.raises(Exception, match="UTF-16"):
        safexml.parse_xml(data, path="x.xml")


@pytest.mark.parametrize("data, why", [
    ("<?xml version='1.0' encoding='ISO-8859-1'?>\n" + domain(), "declares encoding"),
    (b"\xef\xbb\xbf" + domain().encode(), None),                 # a UTF-8 BOM is fine
    (domain(name="caf\xe9").encode("latin-1"), "not UTF-8"),
    (domain().encode("utf-16-be"), "NUL byte"),                  # UTF-16 without a BOM
])
def test_only_utf8_documents_are_read(tmp_path, data, why):
    xml = write(tmp_path / "enc.xml", data)
    out = run_cli(["guests", str(xml), "--format", "json"])
    if why is None:
        assert out.code == 0, out.describe()
    else:
        assert_bad_input(out, names=["enc.xml", why])


# -- FIFOs, devices and links where a file should be ---------------------------------------------

def _special(kind: str, path: pathlib.Path) -> None:
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dangling":
        path.symlink_to(path.parent / "does-not-exist")
    else:
        raise AssertionError(kind)


def _host_files() -> list[str]:
    """Every file of the example snapshot's host/ tree that numaguard reads."""
    root = ARTICLE / "host"
    rels = set()
    for pattern in SysfsReader.capture_paths() + ["proc/version", "proc/sys/kernel/osrelease"]:
        for path in glob.glob(str(root / pattern)):
            rels.add(os.path.relpath(path, root))
    # one of each kind is enough for node files repeated per node
    keep: dict[str, str] = {}
    for rel in sorted(rels):
        keep.setdefault(rel.replace("node1", "node0").replace("node2", "node0")
                        .replace("node3", "node0"), rel)
    return sorted(keep.values())


HOST_FILES = _host_files()


def test_the_host_file_list_covers_what_is_read():
    names = {os.path.basename(f) for f in HOST_FILES}
    assert {"online", "cpulist", "meminfo", "distance", "nr_hugepages", "free_hugepages",
            "numa_balancing", "version"} <= names
    assert len(HOST_FILES) >= 10


@pytest.mark.parametrize("rel", HOST_FILES)
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_special_file_in_a_host_tree_never_hangs(tmp_path, rel, kind):
    snap = tmp_path / "snap"
    shutil.copytree(ARTICLE, snap, symlinks=True)
    _special(kind, snap / "host" / rel)
    for argv in (["topology", str(snap)], ["audit", str(snap)], ["simulate", str(snap)]):
        out = run_cli(argv, timeout=10)
        if rel.endswith(("version", "osrelease")) and argv[0] != "audit":
            assert out.code in (0, 1), out.describe()   # only the audit reads the release
            continue
        assert_bad_input(out, names=[os.path.basename(rel)])
        assert "regular file" in out.err


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "dangling"])
def test_special_file_as_a_source_never_hangs(tmp_path, kind):
    folder = tmp_path / "domains"
    folder.mkdir()
    shutil.copy(VM1, folder / "vm1.xml")
    _special(kind, folder / "other.xml")
    scenario = tmp_path / "s.toml"
    _special(kind, scenario)
    for argv in (["guests", str(folder)], ["audit", str(ARTICLE / "host"), str(folder)],
                 ["guests", str(folder / "other.xml")], ["simulate", str(scenario)],
                 ["topology", str(folder / "other.xml")]):
        out = run_cli(argv, timeout=10)
        in_folder = argv[-1] == str(folder)
        # in a folder, the special file is one problem and the other guest is still shown
        # (issue 12): its line, then the "input incomplete" line
        assert_bad_input(out, names=["other.xml" if "domains" in argv[-1] else "s.toml"],
                         one_line=not in_folder)
        if in_folder:
            assert "vm1" in out.out and "input incomplete" in out.err.splitlines()[-1]


def test_snapshot_of_a_root_with_a_fifo_never_hangs(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(ARTICLE / "host", root, symlinks=True)
    _special("fifo", root / "sys/devices/system/node/node0/meminfo")
    out = run_cli(["snapshot", str(tmp_path / "snap"), "--root", str(root),
                   "--libvirt-dir", str(tmp_path / "none")], timeout=10)
    assert_bad_input(out, names=["meminfo"])
    assert not (tmp_path / "snap").exists()


# -- numbers: thousands of digits, and values that would make numaguard allocate ---------------

XML_NUMBERS = {
    "vcpu": domain(vcpu=HUGE),
    "memory": MINIMAL.replace("<memory unit='GiB'>1</memory>", f"<memory>{HUGE}</memory>")
    .format(name="g", vcpu="1", extra=""),
    "vcpupin/@vcpu": domain(vcpu="2", extra=f"<cputune><vcpupin vcpu='{HUGE}' cpuset='0'/>"
                            "</cputune>"),
    "vcpupin/@cpuset": domain(vcpu="2", extra=f"<cputune><vcpupin vcpu='0' cpuset='{HUGE}'/>"
                              "</cputune>"),
    "cell/@memory": domain(vcpu="2", extra=f"<cpu><numa><cell id='0' cpus='0-1' memory='{HUGE}'"
                           "/></numa></cpu>"),
    "memnode/@cellid": domain(vcpu="2", extra="<cpu><numa><cell id='0' cpus='0-1' memory="
                              "'1048576'/></numa></cpu><numatune><memnode cellid="
                              f"'{HUGE}' mode='strict' nodeset='0'/></numatune>"),
    "hugepages/page/@size": domain(extra=f"<memoryBacking><hugepages><page size='{HUGE}'/>"
                                   "</hugepages></memoryBacking>"),
}


@pytest.mark.parametrize("where", sorted(XML_NUMBERS))
def test_huge_numbers_in_domain_xml(tmp_path, where):
    xml = write(tmp_path / "n.xml", XML_NUMBERS[where])
    for argv in (["guests", str(xml)], ["audit", str(ARTICLE / "host"), str(xml)]):
        out = run_cli(argv)
        assert_bad_input(out, names=["n.xml", where.split("/")[-1]])
        assert len(out.err) < 400   # the 5,000 digits are not repeated back


def _replace_first_number(text: str, after: str) -> str:
    i = text.index(after) + len(after)
    j = i
    while not text[j].isdigit():
        j += 1
    k = j
    while text[k].isdigit():
        k += 1
    return text[:j] + HUGE + text[k:]


HOST_NUMBERS = [
    ("sys/devices/system/node/node0/meminfo", "MemTotal:"),
    ("sys/devices/system/node/node0/distance", ""),
    ("sys/devices/system/node/node0/cpulist", ""),
    ("sys/devices/system/node/online", ""),
    ("sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages", ""),
    ("proc/meminfo", "SwapTotal:"),
    ("proc/sys/kernel/numa_balancing", ""),
]


@pytest.mark.parametrize("rel, after", HOST_NUMBERS, ids=[r for r, _ in HOST_NUMBERS])
def test_huge_numbers_in_sysfs(tmp_path, rel, after):
    snap = tmp_path / "snap"
    shutil.copytree(ARTICLE, snap)
    path = snap / "host" / rel
    path.write_text(_replace_first_number(path.read_text(), after))
    out = run_cli(["topology", str(snap)])
    assert_bad_input(out, names=[os.path.basename(rel)])


def test_huge_node_number_in_sysfs(tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(ARTICLE, snap)
    nodes = snap / "host" / "sys/devices/system/node"
    shutil.copytree(nodes / "node0", nodes / f"node{'9' * 200}")   # NAME_MAX is 255
    assert_bad_input(run_cli(["topology", str(snap)]), names=["MAX_NUMNODES"])


@pytest.mark.parametrize("after", ["available:", "node 0 cpus:", "node 0 size:", "0:"])
def test_huge_numbers_in_numactl(tmp_path, after):
    text = NUMACTL.read_text()
    bad = write(tmp_path / "numactl-H.txt", _replace_first_number(text, after))
    assert_bad_input(run_cli(["topology", str(bad)]), names=["numactl-H.txt"])


@pytest.mark.parametrize("after", ["<cells num='", "<cell id='", "<memory unit='KiB'>",
                                   "<sibling id='0' value='", "<cpu id='"])
def test_huge_numbers_in_capabilities(tmp_path, after):
    text = CAPS.read_text()
    bad = write(tmp_path / "caps.xml", _replace_first_number(text, after))
    assert_bad_input(run_cli(["topology", str(bad)]), names=["caps.xml"])


@pytest.mark.parametrize("value", [HUGE, f'"{HUGE}GiB"', f'"{HUGE}.5GiB"', '"9EiB"',
                                   "-" + HUGE])
def test_huge_numbers_in_a_scenario(tmp_path, value):
    text = SCENARIO.read_text().replace('swap = "1GiB"', f"swap = {value}")
    bad = write(tmp_path / "s.toml", text)
    assert_bad_input(run_cli(["simulate", str(bad)]), names=["s.toml"])


def test_deeply_nested_toml(tmp_path):
    bad = write(tmp_path / "deep.toml", "x = " + "[" * 3000 + "]" * 3000 + "\n")
    assert_bad_input(run_cli(["simulate", str(bad)]), names=["deep.toml", "nested"])


def test_deeply_nested_xml(tmp_path):
    bad = write(tmp_path / "deep.xml", "<domain>" + "<a>" * 3000 + "</a>" * 3000 + "</domain>")
    assert_bad_input(run_cli(["guests", str(bad)]), names=["deep.xml"])


MEMORY_BOMBS = {
    # 181 bytes that would need ~1.4 TB in the audit (one record per vCPU)
    "vcpus": domain(vcpu="4294967295"),
    # 4,096 vCPUs (QEMU's largest machine), each pinned to its own 16,384-CPU set
    "pins": domain(vcpu="4096", extra="<cputune>" + "".join(
        f"<vcpupin vcpu='{i}' cpuset='0-16383,^{i}'/>" for i in range(4096)) + "</cputune>"),
    "cells": domain(vcpu="4096", extra="<cpu><numa>" + "".join(
        f"<cell id='{i}' cpus='{i}' memory='1024'/>" for i in range(5000)) + "</numa></cpu>"),
}


@pytest.mark.parametrize("bomb", sorted(MEMORY_BOMBS))
def test_values_that_would_exhaust_memory(tmp_path, bomb):
    xml = write(tmp_path / "bomb.xml", MEMORY_BOMBS[bomb])
    for argv in (["guests", str(xml)], ["audit", str(ARTICLE / "host"), str(xml)]):
        out = run_cli(argv, timeout=30, mem_limit=1024**3)
        assert_bad_input(out, names=["bomb.xml"], one_line=False)
        assert len(out.err_lines) <= 21   # capped: 20 problems and "... and N more"


def test_legal_pinning_at_qemus_maximum_is_read(tmp_path):
    """4,096 vCPUs each pinned to one CPU is a real configuration: it is read, not refused."""
    xml = write(tmp_path / "big.xml", domain(vcpu="4096", extra="<cputune>" + "".join(
        f"<vcpupin vcpu='{i}' cpuset='{i % 80}'/>" for i in range(4096)) + "</cputune>"))
    out = run_cli(["audit", str(ARTICLE / "host"), str(xml), "--format", "json",
                   "--fail-on", "never"], timeout=60, mem_limit=1024**3)
    assert out.code == 0, out.describe()
    assert '"g"' in out.out


def test_many_problems_are_capped(tmp_path):
    pins = "".join(f"<vcpupin vcpu='{i}' cpuset='x{i}'/>" for i in range(500))
    xml = write(tmp_path / "many.xml", domain(vcpu="500", extra=f"<cputune>{pins}</cputune>"))
    out = run_cli(["guests", str(xml)])
    assert_bad_input(out, names=["many.xml"], one_line=False)
    assert len(out.err_lines) == 21 and "480 more problems" in out.err_lines[-1]


# -- names that would forge output --------------------------------------------------------------

def test_newline_in_a_name_is_refused_as_libvirt_does(tmp_path):
    xml = write(tmp_path / "nl.xml", domain(name="vm1\nCRITICAL: forged line"))
    for argv in (["guests", str(xml)], ["audit", str(ARTICLE / "host"), str(xml)]):
        assert_bad_input(run_cli(argv), names=["nl.xml", "name"])


NASTY = {"esc": "vm\x1b[31mred", "c1-csi": "vm\u009b31mred", "bidi": "vm\u202egnp.lmx",
         "bell": "vm\x07", "del": "vm\x7f"}


@pytest.mark.parametrize("case", sorted(NASTY))
def test_control_and_bidi_characters_never_reach_the_terminal(tmp_path, case):
    name = NASTY[case]
    if case in ("esc", "bell"):
        # XML 1.0 forbids C0 controls: the document is refused, as libvirt refuses it
        xml = write(tmp_path / "c.xml", domain(name=name))
        assert_bad_input(run_cli(["guests", str(xml)]), names=["c.xml"])
        return
    snap = tmp_path / "snap"
    shutil.copytree(ARTICLE, snap)
    vm1 = snap / "domains" / "vm1.xml"
    vm1.write_text(vm1.read_text().replace("<name>vm1</name>", f"<name>{name}</name>"))
    raw = name[2]
    for argv, ok in ((["guests", str(snap)], (0,)), (["audit", str(snap)], (0, 1)),
                     (["audit", str(snap), "--format", "markdown"], (0, 1)),
                     (["fix", str(vm1), "--recommended"], (0,)),
                     (["fix", str(vm1), "--recommended", "--virsh"], (0,)),
                     (["simulate", str(snap)], (0, 1))):
        out = run_cli(argv)
        assert out.code in ok, out.describe()
        assert raw not in out.out and raw not in out.err, out.describe()
        assert f"\\u{ord(raw):04x}" in out.out or f"\\x{ord(raw):02x}" in out.out + out.err


def test_a_pasted_virsh_line_names_the_real_guest(tmp_path):
    """The quoted name of a --virsh line, given to bash, is the guest's real name."""
    import subprocess

    snap = tmp_path / "snap"
    shutil.copytree(ARTICLE, snap)
    vm1 = snap / "domains" / "vm1.xml"
    name = "vm \u202e'1"
    vm1.write_text(vm1.read_text().replace("<name>vm1</name>", f"<name>{name}</name>"))
    out = run_cli(["fix", str(vm1), "--mode", "preferred", "--nodeset", "0", "--virsh"])
    assert out.code == 0, out.describe()
    line = next(x for x in out.out.splitlines() if x.startswith("virsh numatune"))
    words = subprocess.run(["bash", "-c", f"printf '%s\\0' {line[len('virsh '):]}"],
                           capture_output=True, check=True).stdout.split(b"\0")
    assert words[1].decode() == name


def test_escape_in_a_step_name_keeps_the_svg_well_formed(tmp_path):
    from lxml import etree

    text = SCENARIO.read_text().replace('name = "vm1"', 'name = "vm1\\u001b[31m\\u0007"', 1)
    scenario = write(tmp_path / "s.toml", text)
    plot = tmp_path / "p.svg"
    out = run_cli(["simulate", str(scenario), "--plot", str(plot)], timeout=60)
    assert out.code == 1, out.describe()
    etree.fromstring(plot.read_bytes())   # raises on a malformed document
    assert b"\x1b" not in plot.read_bytes()


def test_a_dollar_in_a_name_is_not_mathtext(tmp_path):
    text = SCENARIO.read_text().replace('name = "vm1"', 'name = "$\\\\frac{vm1$"', 1)
    scenario = write(tmp_path / "s.toml", text)
    out = run_cli(["simulate", str(scenario), "--plot", str(tmp_path / "p.png")], timeout=60)
    assert out.code == 1, out.describe()


# -- the error boundary: output that cannot be written, encodings, internal errors --------------

@pytest.mark.parametrize("command", [["guests", str(ARTICLE)], ["audit", str(ARTICLE)],
                                     ["topology", str(ARTICLE), "--format", "json"]])
def test_stdout_to_a_full_device(command):
    out = run_subprocess(command, stdout="/dev/full")
    assert_bad_input(out, names=["No space left on device"])


@pytest.mark.parametrize("command", [["guests", str(ARTICLE)], ["audit", str(ARTICLE)]])
def test_stdout_closed(command):
    out = run_subprocess(command, stdout="closed")
    assert out.code == 2 and "Traceback" not in out.err, out.describe()
    assert out.err_lines == ["numaguard: standard output is closed; nothing can be printed"]


def test_stderr_closed_too():
    out = run_subprocess(["guests", "/nonexistent"], stderr="closed")
    assert out.code == 2, out.describe()


def test_an_ascii_only_terminal_gets_escapes_not_a_traceback():
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    for command in (["guests", str(ARTICLE)], ["audit", str(ARTICLE)],
                    ["simulate", str(SCENARIO)]):
        out = run_subprocess(command, env=env)
        assert out.code in (0, 1) and "Traceback" not in out.err, out.describe()
        assert out.out_bytes.isascii()


def _crashing_main(argv):
    from numaguard import cli

    def broken(args):
        raise TypeError("a bug")

    cli.cmd_topology = broken
    return cli.main(argv)


def test_an_internal_error_is_one_line_and_exit_3():
    out = run_cli(["topology", str(ARTICLE)], main=_crashing_main)
    assert_bad_input(out, names=["internal error", "TypeError", "NUMAGUARD_DEBUG"], code=3)
    debug = run_cli(["topology", str(ARTICLE)], main=_crashing_main,
                    env=dict(os.environ, NUMAGUARD_DEBUG="1"))
    assert debug.traceback and debug.code == 1


def test_sigterm_unwinds_with_exit_143(tmp_path):
    """SIGTERM during a command runs every `finally` (where temp files are removed) and
    exits 128 + 15."""
    import signal
    import time

    from tests.hostile.harness import start_cli

    started, cleaned = tmp_path / "started", tmp_path / "cleaned"

    def slow_main(argv):
        from numaguard import cli

        def slow(args):
            try:
                started.touch()   # inside the try: SIGTERM may come the moment it exists
                time.sleep(30)
            finally:
                cleaned.touch()

        cli.cmd_topology = slow
        return cli.main(argv)

    running = start_cli(["topology", str(ARTICLE)], timeout=20, main=slow_main)
    deadline = time.monotonic() + 10
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(running.pid, signal.SIGTERM)
    out = running.wait()
    assert out.code == 143 and cleaned.exists(), out.describe()


def test_hugepage_pools_larger_than_the_node(tmp_path):
    text = SCENARIO.read_text().replace('mem_free = "15GiB"\n',
                                        'mem_free = "15GiB"\nhugepages = {"1GiB" = 17}\n', 1)
    bad = write(tmp_path / "s.toml", text)
    assert_bad_input(run_cli(["simulate", str(bad)]),
                     names=["s.toml", "host.nodes[0].hugepages", "more than mem_total"])


def test_a_document_libxml2_reads_but_expat_does_not_is_refused_for_editing(tmp_path):
    """U+FEFF is a name character for libxml2 (XML 1.0 5th edition) but not for expat, which
    locates the bytes an edit replaces: the audit reads the guest, ``fix`` refuses it."""
    text = VM1.read_text().replace("<devices>", "<devi\ufeffces>").replace(
        "</devices>", "</devi\ufeffces>")
    xml = write(tmp_path / "bom.xml", text)
    assert run_cli(["guests", str(xml)]).code == 0
    assert_bad_input(run_cli(["fix", str(xml), "--mode", "preferred", "--nodeset", "0",
                              "--host", str(ARTICLE)]), names=["bom.xml", "xml"])

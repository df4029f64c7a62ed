"""`numaguard fix` as a user meets it: the article host's vm1, every output mode, the refusals
(exit 2, one line, nothing written), the atomic write with its backup, and --apply against
libvirt's test driver (test:///default, in-process)."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from numaguard import cli
from numaguard.errors import SourceError
from numaguard.readers import sources
from numaguard.writers import xml_patch

ROOT = Path(__file__).resolve().parents[2]
ARTICLE = ROOT / "examples" / "article-host"
GUESTS = ROOT / "tests" / "fixtures" / "xml" / "guests"
COLD_BOOT = ("takes effect at the next cold boot (virsh shutdown + start; a reboot inside the "
             "guest is not enough)")


def run(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    """These tests read fix's lines, not their layout (tests/golden checks 80/120 columns)."""
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture
def snap(tmp_path: Path) -> Path:
    """A private copy of the article host's snapshot (writes must not touch examples/)."""
    dst = tmp_path / "article-host"
    shutil.copytree(ARTICLE, dst)
    return dst


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("numaguard fix: ")
    return lines[0]


# --- the article host ----------------------------------------------------------------------------

def test_article_vm1_recommended_diff(capsys) -> None:
    rc, out, err = run(capsys, "fix", ARTICLE / "domains" / "vm1.xml", "--recommended", "--diff")
    assert rc == 0 and err == ""
    path = str(ARTICLE / "domains" / "vm1.xml")
    assert out.startswith(f"--- {path}\n+++ {path}\n@@ ")
    assert "\n-    <memory nodeset='0'/>\n+    <memory mode='preferred' nodeset='0'/>\n" in out
    section = [line[2:] for line in out.splitlines() if line.startswith("# ")]
    assert "recommended by NG102 (critical): <numatune><memory> mode='preferred' " \
           "nodeset='0'" in section
    for line in ("NG108 critical -> none", "NG102 critical -> none", "NG106 critical -> none",
                 "NG110 critical -> none", "NG101 warning -> none"):
        assert f"  {line}" in section
    # NG111 names every guest: the host is out of memory as a whole, whatever vm1's binding
    assert "  vm1: 5 critical, 2 warning, 0 info -> 1 critical, 1 warning, 0 info" in section
    assert "  host: 6 critical, 2 warning, 1 info -> 2 critical, 1 warning, 1 info" in section
    [still] = [line for line in section if line.startswith("still ")]
    assert still.startswith("still 1 predicted kill after this change: bigmem-preferred, "
                            "global — the host is over-committed by 12.5 GiB"), still
    assert section[-1].startswith(COLD_BOOT)
    # nothing was written
    assert b"<memory nodeset='0'/>" in (ARTICLE / "domains" / "vm1.xml").read_bytes()


def test_article_vm1_fixed_file_audits_as_fix_said(snap: Path, capsys) -> None:
    """After --write, the audit agrees with what fix predicted: vm1's findings are gone and
    the host-wide over-commit (NG110 global, NG111) is what is left critical."""
    rc, out, err = run(capsys, "fix", snap / "domains" / "vm1.xml", "--recommended", "--write")
    assert rc == 0 and out.startswith("wrote ")
    assert "still 1 predicted kill after this change: bigmem-preferred, global" in err
    rc, out, _ = run(capsys, "audit", snap, "--format", "json")
    data = json.loads(out)
    assert rc == 1
    assert {(f["rule"], f["evidence"].get("constraint")) for f in data["findings"]
            if f["severity"] == "critical"} == {("NG110", "global"), ("NG111", None)}


def test_changes_for_other_guests_are_shown(capsys) -> None:
    # binding web-interleave strictly to node 0 crowds vm1 there
    rc, out, _ = run(capsys, "fix", ARTICLE / "domains" / "web-interleave.xml", "--mode",
                     "strict", "--nodeset", "0")
    assert rc == 0
    section = out[out.index("#   other guests:"):].splitlines()
    assert "#     vm1: NG101 warning -> critical" in section


def test_guest_name_in_snapshot(snap: Path, capsys) -> None:
    rc, out, err = run(capsys, "fix", "vm1", "--host", snap, "--mode", "preferred",
                       "--nodeset", "0", "--virsh")
    assert rc == 0
    assert out.splitlines()[0] == "virsh numatune vm1 --mode preferred --nodeset 0 --config"
    assert "NG108 critical -> none" in err


def test_guest_name_in_etc_libvirt_qemu(tmp_path: Path, monkeypatch, capsys) -> None:
    qemu = tmp_path / "qemu"
    qemu.mkdir()
    shutil.copy(ARTICLE / "domains" / "web-interleave.xml", qemu / "renamed.xml")
    monkeypatch.setattr(sources, "LIBVIRT_QEMU_DIR", str(qemu))
    rc, out, _ = run(capsys, "fix", "web-interleave", "--mode", "preferred", "--host",
                     ARTICLE / "host")
    assert rc == 0
    assert f"--- {qemu / 'renamed.xml'}" in out
    assert "+    <memory mode='preferred' nodeset='0-2'/>" in out


def test_unknown_guest_name(snap: Path, capsys) -> None:
    rc, _, err = run(capsys, "fix", "nosuch", "--host", snap, "--mode", "strict")
    assert rc == 2
    assert "no domain XML with <name>nosuch</name>" in one_error_line(err)


# --- output modes -------------------------------------------------------------------------------

def test_xml_prints_the_whole_document(snap: Path, capsysbinary) -> None:
    path = snap / "domains" / "vm1.xml"
    old = path.read_bytes()
    rc = cli.main(["fix", str(path), "--mode", "interleave", "--nodeset", "0-1", "--xml"])
    out, err = capsysbinary.readouterr()
    assert rc == 0
    assert out == old.replace(b"<memory nodeset='0'/>",
                              b"<memory mode='interleave' nodeset='0-1'/>")
    assert b"re-audit of the whole host (4 guests)" in err
    assert path.read_bytes() == old


def test_virsh_lines_and_restart_note(snap: Path, capsys) -> None:
    rc, out, _ = run(capsys, "fix", snap / "domains" / "vm1.xml", "--mode", "interleave",
                     "--nodeset", "0-1", "--virsh")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "virsh numatune vm1 --mode interleave --nodeset 0-1 --config"
    assert lines[1].startswith(f"# {COLD_BOOT}: libvirt never changes the mode of a running "
                               "guest")
    assert "src/qemu/qemu_driver.c" in lines[1]
    assert len(lines) == 2


def test_virsh_restrictive_nodeset_can_change_live(tmp_path: Path, capsys) -> None:
    rc, out, _ = run(capsys, "fix", GUESTS / "mode-restrictive-in.xml", "--nodeset", "1",
                     "--virsh", "--host", ARTICLE)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "virsh numatune restr11 --mode restrictive --nodeset 1 --config"
    assert lines[2] == "virsh numatune restr11 --nodeset 1 --live"


def test_virsh_quotes_names_and_defines_memnode_changes(tmp_path: Path, capsys) -> None:
    src = (GUESTS / "memnodes-mixed-in.xml").read_bytes()
    path = tmp_path / "odd.xml"
    path.write_bytes(src.replace(b"<name>instance-mixed16</name>", b"<name>my vm;x</name>"))
    rc, out, _ = run(capsys, "fix", path, "--memnode", "1:strict:1", "--virsh", "--host",
                     ARTICLE)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("# virsh numatune has no option for <memnode>")
    assert lines[0].endswith(", saved first:")
    assert lines[1] == (f"numaguard fix {path} --memnode 1:strict:1 --host "
                        f"{ARTICLE} --xml > 'my vm;x.numaguard.xml'")
    assert lines[2] == "virsh define 'my vm;x.numaguard.xml'"
    rc, out, _ = run(capsys, "fix", path, "--mode", "preferred", "--nodeset", "1", "--virsh",
                     "--host", ARTICLE)
    assert out.splitlines()[0] == ("virsh numatune 'my vm;x' --mode preferred --nodeset 1 "
                                   "--config")


def test_recommended_with_nothing_to_fix(snap: Path, capsysbinary) -> None:
    path = snap / "domains" / "web-interleave.xml"
    rc = cli.main(["fix", str(path), "--recommended", "--xml"])
    out, err = capsysbinary.readouterr()
    assert rc == 0
    assert out == path.read_bytes()
    assert b"the audit proposes no <numatune> change for web-interleave" in err


def test_host_unknown_is_a_note_not_an_error(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sources, "LIVE_ROOT", str(tmp_path / "no-such-root"))
    path = tmp_path / "vm1.xml"
    shutil.copy(ARTICLE / "domains" / "vm1.xml", path)
    rc, out, err = run(capsys, "fix", path, "--mode", "preferred", "--nodeset", "0-9")
    assert rc == 0
    assert "+    <memory mode='preferred' nodeset='0-9'/>" in out
    assert "re-audit" not in out
    note = one_error_line(err)
    assert "host topology unknown (this machine: " in note
    assert "the nodeset check and the re-audit are skipped" in note
    # --recommended cannot work without a host
    rc, _, err = run(capsys, "fix", path, "--recommended")
    assert rc == 2 and "--recommended needs the host topology" in err.splitlines()[-1]


def test_explicit_host_that_cannot_be_read_is_an_error(tmp_path: Path, capsys) -> None:
    rc, _, err = run(capsys, "fix", ARTICLE / "domains" / "vm1.xml", "--mode", "preferred",
                     "--host", tmp_path / "nothing")
    assert rc == 2
    assert "nothing: no such file or directory" in one_error_line(err)


# --- refusals: exit 2, one line naming file and field, nothing written ------------------------

REFUSALS = [
    ("vm1.xml", ["--nodeset", "0-5"], (r"vm1\.xml: numatune/memory/@nodeset: nodes 4-5 not on "
                                      r"the host \(it has nodes 0-3\)")),
    ("vm1.xml", ["--memnode", "0:preferred:0"], (r"vm1\.xml: numatune/memnode: vm1 has no guest "
                                                r"NUMA cells")),
    ("mixed.xml", ["--mode", "restrictive"], (r"mixed\.xml: numatune/memnode/@mode: libvirt "
                                             r"would reject the edited XML: 'restrictive' mode "
                                             r"is required in memnode")),
    ("mixed.xml", ["--memnode", "0:restrictive:0"], (r"mixed\.xml: numatune/memnode/@mode: "
                                                    r"libvirt would reject the edited XML")),
    ("mixed.xml", ["--memnode", "7:strict:0"], (r"mixed\.xml: numatune/memnode/@cellid: libvirt "
                                               r"would reject the edited XML: cellid 7")),
    ("auto.xml", ["--nodeset", "1"], (r"auto\.xml: numatune/memory/@placement: placement 'auto' "
                                     r"\(numad\) cannot take a nodeset")),
    ("network.xml", ["--mode", "strict"], r"network\.xml:1: domain: not a libvirt domain XML"),
    ("vm1.xml", [], (r"nothing to change: give --mode, --nodeset, --memnode CELL:MODE:NODESET or "
                    r"--recommended")),
    ("vm1.xml", ["--memnode", "0:fast:1"], r"--memnode: '0:fast:1': unknown mode 'fast'"),
    ("vm1.xml", ["--memnode", "0-1"], r"--memnode: '0-1': expected CELL:MODE:NODESET"),
    ("vm1.xml", ["--nodeset", "3-1"], r"--nodeset: '3-1': range 3-1 ends before it starts"),
    ("vm1.xml", ["--mode", "strict", "--recommended"], r"give --recommended or "),
    ("vm1.xml", ["--mode", "strict", "--connect", "test:///default"], (r"with -c/--connect "
                                                                     r"name a domain")),
    ("vm1.xml", ["--mode", "strict", "--backup-dir", "."], r"--backup-dir goes with --apply"),
]


@pytest.mark.parametrize(("name", "options", "message"), REFUSALS,
                         ids=[f"{n}:{' '.join(o) or 'none'}" for n, o, _ in REFUSALS])
def test_refusals(name: str, options: list[str], message: str, snap: Path, tmp_path: Path,
                  capsys) -> None:
    domains = snap / "domains"
    shutil.copy(GUESTS / "memnodes-mixed-in.xml", domains / "mixed.xml")
    shutil.copy(GUESTS / "auto-drops-nodeset-in.xml", domains / "auto.xml")
    loose = tmp_path / "loose"     # not a domain: kept out of the snapshot's domains/
    loose.mkdir()
    shutil.copy(ROOT / "tests" / "fixtures" / "xml" / "invalid" / "root-not-domain.xml",
                loose / "network.xml")
    folder = loose if name == "network.xml" else domains
    before = listing(domains), listing(loose)
    rc, out, err = run(capsys, "fix", folder / name, *options, "--write", "--host", snap)
    assert rc == 2
    assert out == ""
    assert re.search(message, one_error_line(err)), err
    assert (listing(domains), listing(loose)) == before


# --- --write: atomic, with a backup -------------------------------------------------------------

def test_write_keeps_a_backup(snap: Path, capsys) -> None:
    path = snap / "domains" / "vm1.xml"
    os.chmod(path, 0o600)
    old = path.read_bytes()
    rc, diff, _ = run(capsys, "fix", path, "--mode", "preferred", "--nodeset", "0")
    assert rc == 0
    rc, out, err = run(capsys, "fix", path, "--mode", "preferred", "--nodeset", "0", "--write")
    assert rc == 0
    m = re.fullmatch(r"wrote (\S+) \(backup: (\S+)\)\n", out)
    assert m and m.group(1) == str(path)
    backup = Path(m.group(2))
    assert re.fullmatch(r"vm1\.xml\.numaguard-\d{8}T\d{6}\.bak", backup.name)
    assert backup.parent == path.parent
    assert backup.read_bytes() == old
    new = path.read_bytes()
    assert new == old.replace(b"<memory nodeset='0'/>", b"<memory mode='preferred' nodeset='0'/>")
    assert diff.startswith(xml_patch.unified_diff(old, new, str(path)))
    assert os.stat(path).st_mode & 0o777 == 0o600 and os.stat(backup).st_mode & 0o777 == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.endswith(xml_patch.TEMP_SUFFIX)]
    assert "NG108 critical -> none" in err
    # a second run changes nothing and writes nothing
    rc, out, _ = run(capsys, "fix", path, "--mode", "preferred", "--nodeset", "0", "--write")
    assert rc == 0 and out == f"{path}: nothing written\n"
    assert len(list(path.parent.glob("vm1.xml.numaguard-*.bak"))) == 1


def test_write_killed_in_the_rename_leaves_the_original(snap: Path, monkeypatch, capsys) -> None:
    path = snap / "domains" / "vm1.xml"
    before = listing(path.parent)

    def boom(src, dst, **_dir_fds):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(xml_patch.os, "replace", boom)
    rc, out, err = run(capsys, "fix", path, "--recommended", "--write")
    assert rc == 2 and out == ""
    assert one_error_line(err) == f"numaguard fix: {path}: Input/output error"
    assert listing(path.parent) == before     # original intact, no temp file, no backup


def test_any_exception_in_the_rename_cleans_up(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "d.xml"
    path.write_bytes(b"old")

    def boom(src, dst, **_dir_fds):
        raise KeyboardInterrupt

    monkeypatch.setattr(xml_patch.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        xml_patch.replace_file(str(path), b"old", b"new")
    assert listing(tmp_path) == {"d.xml": b"old"}


def test_write_refuses_a_file_changed_since_it_was_read(tmp_path: Path) -> None:
    path = tmp_path / "d.xml"
    path.write_bytes(b"changed meanwhile")
    with pytest.raises(SourceError, match="changed since numaguard read it"):
        xml_patch.replace_file(str(path), b"old", b"new")
    assert listing(tmp_path) == {"d.xml": b"changed meanwhile"}


def test_backup_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "d.xml"
    path.write_bytes(b"one")
    when = datetime(2026, 1, 2, 3, 4, 5)
    first = xml_patch.replace_file(str(path), b"one", b"two", now=when)
    second = xml_patch.replace_file(str(path), b"two", b"three", now=when)
    assert Path(first).name == "d.xml.numaguard-20260102T030405.bak"
    assert Path(second).name == "d.xml.numaguard-20260102T030405-1.bak"
    assert Path(first).read_bytes() == b"one" and Path(second).read_bytes() == b"two"
    assert path.read_bytes() == b"three"


def test_write_refuses_a_symlink_unless_asked(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = real_dir / "real.xml"
    real.write_bytes(b"old")
    os.chmod(real, 0o640)
    link = tmp_path / "link.xml"
    link.symlink_to(real)
    with pytest.raises(SourceError, match="is a symbolic link; nothing written"):
        xml_patch.replace_file(str(link), b"old", b"new")
    assert link.is_symlink() and real.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.xml", "real"]
    assert [p.name for p in real_dir.iterdir()] == ["real.xml"]
    saved = Path(xml_patch.replace_file(str(link), b"old", b"new", follow_symlinks=True))
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert saved.parent == real_dir and saved.read_bytes() == b"old"   # beside the real file
    assert os.stat(real).st_mode & 0o777 == 0o640 == os.stat(saved).st_mode & 0o777


def test_write_in_etc_libvirt_qemu_says_to_define(tmp_path: Path, monkeypatch, capsys) -> None:
    qemu = tmp_path / "qemu"
    qemu.mkdir()
    shutil.copy(ARTICLE / "domains" / "vm1.xml", qemu / "vm1.xml")
    monkeypatch.setattr(sources, "LIBVIRT_QEMU_DIR", str(qemu))
    rc, _, err = run(capsys, "fix", "vm1", "--mode", "preferred", "--write", "--host",
                     ARTICLE / "host")
    assert rc == 0
    assert f"run `virsh define {qemu / 'vm1.xml'}`" in err


def test_unified_diff_without_final_newline() -> None:
    text = xml_patch.unified_diff(b"<a>\n<b/>", b"<a>\n<c/>", "f.xml")
    assert text.endswith("-<b/>\n\\ No newline at end of file\n+<c/>\n"
                         "\\ No newline at end of file\n")
    assert xml_patch.unified_diff(b"same\n", b"same\n", "f.xml") == ""


# --- --apply through libvirt's test driver --------------------------------------------------------

try:
    import libvirt
except ImportError as exc:  # not installed, or without a loadable libvirt.so
    libvirt = None
    _WHY = f"libvirt-python is not usable ({exc}); `make test` installs it"
else:
    _WHY = ""
#: the libvirt tests; only they are skipped without libvirt-python
needs_libvirt = [pytest.mark.libvirt, pytest.mark.skipif(libvirt is None, reason=_WHY)]


def with_libvirt(fn):
    for mark in needs_libvirt:
        fn = mark(fn)
    return fn


@pytest.fixture
def conn():
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    c = libvirt.open("test:///default")   # keeps the test driver's shared state alive
    yield c
    c.close()


def define(conn, fixture: str, name: str):
    xml = (GUESTS / fixture).read_text()
    xml = re.sub(r"<name>[^<]*</name>", f"<name>{name}</name>", xml, count=1)
    xml = re.sub(r"\s*<uuid>[^<]*</uuid>", "", xml, count=1)
    return conn.defineXML(xml)


@pytest.fixture
def domain(conn):
    dom = define(conn, "mode-strict-in.xml", "ngfix-apply")
    yield dom
    try:
        d = conn.lookupByName("ngfix-apply")
        if d.isActive():
            d.destroy()
        d.undefine()
    except libvirt.libvirtError:
        pass


def persistent(conn, name: str) -> str:
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE
                                           | libvirt.VIR_DOMAIN_XML_SECURE)


@with_libvirt
def test_connect_without_apply_shows_the_change_and_defines_nothing(conn, domain,
                                                                     capsys) -> None:
    old = persistent(conn, "ngfix-apply")
    rc, out, err = run(capsys, "fix", "ngfix-apply", "--mode", "preferred", "--nodeset", "0-1",
                       "--connect", "test:///default")
    assert rc == 0, err
    assert "-    <memory mode='strict' nodeset='1'/>" in out
    assert "+    <memory mode='preferred' nodeset='0-1'/>" in out
    assert persistent(conn, "ngfix-apply") == old
    rc, out, err = run(capsys, "fix", "ngfix-apply", "--mode", "preferred", "--connect",
                       "test:///default", "--virsh")
    assert rc == 0, err
    assert "virsh numatune ngfix-apply --mode preferred --nodeset 1 --config" in out
    rc, _, err = run(capsys, "fix", "ngfix-apply", "--mode", "preferred", "--connect",
                     "test:///default", "--write")
    assert rc == 2 and "use --apply to define the change" in err


@with_libvirt
def test_apply_defines_the_new_numatune(conn, domain, tmp_path: Path, capsys) -> None:
    old = persistent(conn, "ngfix-apply")
    assert "<memory mode='strict' nodeset='1'/>" in old
    rc, out, err = run(capsys, "fix", "ngfix-apply", "--mode", "preferred", "--nodeset", "0-1",
                       "--apply", "--connect", "test:///default", "--backup-dir", tmp_path)
    assert rc == 0, err
    assert "<memory mode='preferred' nodeset='0-1'/>" in persistent(conn, "ngfix-apply")
    (backup,) = tmp_path.glob("ngfix-apply.numaguard-*.xml")
    assert re.fullmatch(r"ngfix-apply\.numaguard-\d{8}T\d{6}\.xml", backup.name)
    assert backup.read_text() == old
    lines = out.splitlines()
    assert lines[0] == (f"defined ngfix-apply on test:///default; the old XML is saved in "
                        f"{backup} (virsh define {backup} restores it)")
    assert lines[1] == COLD_BOOT
    assert "re-audit of the whole host" in err


@with_libvirt
def test_apply_keeps_secrets(conn, tmp_path: Path, capsys) -> None:
    # XMLDesc(INACTIVE) alone leaves <graphics passwd> out: defining it would drop the password
    xml = (GUESTS / "mode-strict-in.xml").read_text().replace("<name>strict08</name>",
                                                               "<name>ngfix-secret</name>")
    xml = re.sub(r"\s*<uuid>[^<]*</uuid>", "", xml).replace(
        "</devices>", "<graphics type='vnc' port='-1' passwd='s3cret'/></devices>")
    dom = conn.defineXML(xml)
    try:
        assert "s3cret" not in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        rc, _, err = run(capsys, "fix", "ngfix-secret", "--mode", "preferred", "--apply",
                         "--connect", "test:///default", "--backup-dir", tmp_path)
        assert rc == 0, err
        assert "passwd='s3cret'" in persistent(conn, "ngfix-secret")
        assert "mode='preferred'" in persistent(conn, "ngfix-secret")
        (backup,) = tmp_path.glob("ngfix-secret.numaguard-*.xml")
        assert "passwd='s3cret'" in backup.read_text()
        assert os.stat(backup).st_mode & 0o777 == 0o600
    finally:
        dom.undefine()


@with_libvirt
def test_apply_refuses_when_the_domain_changed_since_read(conn, domain, tmp_path: Path,
                                                         monkeypatch, capsys) -> None:
    from numaguard.writers import apply

    real_read = apply.LibvirtSession.read
    meanwhile = persistent(conn, "ngfix-apply").replace(
        "<currentMemory unit='KiB'>4194304</currentMemory>",
        "<currentMemory unit='KiB'>2097152</currentMemory>")
    assert meanwhile != persistent(conn, "ngfix-apply")

    def read_then_someone_edits(self, name):
        got = real_read(self, name)
        conn.defineXML(meanwhile)     # another admin's `virsh edit` between read and define
        return got

    monkeypatch.setattr(apply.LibvirtSession, "read", read_then_someone_edits)
    rc, out, err = run(capsys, "fix", "ngfix-apply", "--mode", "preferred", "--apply",
                       "--connect", "test:///default", "--backup-dir", tmp_path)
    assert rc == 2 and out == ""
    assert one_error_line(err) == ("numaguard fix: test:///default domain ngfix-apply: the "
                                   "domain's XML changed since it was read; nothing changed "
                                   "(run the command again)")
    assert persistent(conn, "ngfix-apply") == meanwhile      # ours was not defined
    assert list(tmp_path.iterdir()) == []                     # and no backup is left


@with_libvirt
def test_apply_live_nodeset_for_a_running_restrictive_guest(conn, tmp_path: Path,
                                                            capsys) -> None:
    dom = define(conn, "mode-restrictive-in.xml", "ngfix-live")
    try:
        dom.create()
        rc, out, err = run(capsys, "fix", "ngfix-live", "--nodeset", "1", "--apply",
                           "--connect", "test:///default", "--backup-dir", tmp_path)
        assert rc == 0, err
        assert out.splitlines()[1] == "the running ngfix-live took the new nodeset now as well"
        assert dom.numaParameters(libvirt.VIR_DOMAIN_AFFECT_LIVE)["numa_nodeset"] == "1"
        assert "<memory mode='restrictive' nodeset='1'/>" in persistent(conn, "ngfix-live")
        # a mode change is never made live
        rc, out, _ = run(capsys, "fix", "ngfix-live", "--mode", "strict", "--apply",
                         "--connect", "test:///default", "--backup-dir", tmp_path)
        assert rc == 0 and out.splitlines()[1] == COLD_BOOT
        assert dom.numaParameters(libvirt.VIR_DOMAIN_AFFECT_LIVE)["numa_mode"] == \
            libvirt.VIR_DOMAIN_NUMATUNE_MEM_RESTRICTIVE
    finally:
        dom.destroy()
        dom.undefine()


@with_libvirt
def test_apply_refusals_change_nothing(conn, domain, tmp_path: Path, capsys) -> None:
    old = persistent(conn, "ngfix-apply")
    # test:///default has two NUMA cells
    rc, _, err = run(capsys, "fix", "ngfix-apply", "--nodeset", "0-7", "--apply", "--connect",
                     "test:///default", "--backup-dir", tmp_path)
    assert rc == 2
    assert one_error_line(err) == ("numaguard fix: test:///default domain ngfix-apply: "
                                   "numatune/memory/@nodeset: nodes 2-7 not on the host (it has "
                                   "nodes 0-1); nothing written")
    rc, _, err = run(capsys, "fix", "no-such-domain", "--mode", "strict", "--apply",
                     "--connect", "test:///default")
    assert rc == 2
    assert one_error_line(err) == ("numaguard fix: test:///default: no domain named "
                                   "'no-such-domain'")
    rc, _, err = run(capsys, "fix", GUESTS / "mode-strict-in.xml", "--mode", "strict",
                     "--apply", "--connect", "test:///default")
    assert rc == 2 and "--apply takes a domain name" in one_error_line(err)
    assert persistent(conn, "ngfix-apply") == old
    assert list(tmp_path.iterdir()) == []


@with_libvirt
def test_apply_verifies_what_libvirt_stored(conn, domain, tmp_path: Path, monkeypatch,
                                            capsys) -> None:
    real_define = libvirt.virConnect.defineXML

    def define_something_else(self, xml):
        return real_define(self, xml.replace("mode='preferred'", "mode='interleave'"))

    monkeypatch.setattr(libvirt.virConnect, "defineXML", define_something_else)
    rc, out, err = run(capsys, "fix", "ngfix-apply", "--mode", "preferred", "--apply",
                       "--connect", "test:///default", "--backup-dir", tmp_path)
    assert rc == 2 and out == ""
    (backup,) = tmp_path.glob("ngfix-apply.numaguard-*.xml")   # kept: the define happened
    assert one_error_line(err) == (
        "numaguard fix: test:///default domain ngfix-apply: defined, but libvirt stored a "
        f"different <numatune> than numaguard asked for; the old XML is in {backup} (virsh "
        f"define {backup} restores it)")


@with_libvirt
def test_apply_libvirt_error_is_one_line(tmp_path: Path, capsys) -> None:
    rc, _, err = run(capsys, "fix", "x", "--mode", "strict", "--apply", "--connect",
                     f"test://{tmp_path}/missing.xml")
    assert rc == 2
    assert one_error_line(err).startswith(f"numaguard fix: test://{tmp_path}/missing.xml: ")


def test_diff_shows_the_simulated_effect(capsys):
    """The simulator, every guest touching its memory in every start order the audit plays:
    strict vm1 makes the kernel kill a sibling guest inside vm1's memory policy; preferred vm1
    spreads out instead, and what is left is the host's own over-commit."""
    rc, out, _ = run(capsys, "fix", ARTICLE / "domains" / "vm1.xml", "--recommended")
    assert rc == 0
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("# simulation of the whole"))
    whose = lines[i + 1]
    assert whose.startswith("#   vm1's memory in the bound-last")
    before, after = whose.split(" order: ", 1)[1].split(" -> ")
    assert before == "node 0 12.0 GiB"
    assert after.startswith("node 0 ") and "node 1 " in after
    kills = lines[i + 2]
    assert kills.startswith("#   OOM kills: bigmem-preferred (memory-policy, for vm1; ")
    assert kills.split(" -> ")[1].startswith("bigmem-preferred (global; ")


def test_recommended_names_the_audits_resize_it_does_not_make(capsys) -> None:
    """NG111's change for bigmem-preferred is a resize, not a <numatune> edit: --recommended
    says so and prints the line that makes it, whole."""
    rc, out, _ = run(capsys, "fix", ARTICLE / "domains" / "bigmem-preferred.xml",
                     "--recommended")
    assert rc == 0
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if "the audit also proposes" in line)
    assert "numaguard fix does not make it" in lines[i]
    assert lines[i + 1] == "#   $ virsh setmaxmem bigmem-preferred 22G --config"

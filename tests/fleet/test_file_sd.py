"""``numaguard audit --hosts FILE --file-sd PATH``: the fleet's exporters as a Prometheus file_sd
targets file (issue 13).  The target groups (fleet.file_sd_targets, pure), the file
(writers/file_sd.py: atomic, no symlinks, bad paths), the command, and the docs' prometheus.yml
snippet checked by promtool with a file the command wrote."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from numaguard import cli
from numaguard.errors import NumaguardError, ParseError
from numaguard.fleet import EXPORTER_PORT, file_sd_targets, scrape_address
from numaguard.writers.file_sd import file_sd_json, write_file_sd

ROOT = Path(__file__).resolve().parents[2]
ARTICLE = str(ROOT / "examples" / "article-host")
FLEET_DOC = ROOT / "docs" / "fleet.md"
#: libvirt URIs nobody answers on this machine: refused at once (docs/libvirt.md)
REFUSED = ("qemu+tcp://127.0.0.1:1/system", "test+tcp://[::1]:1/default")


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- the target groups --------------------------------------------------------------------------

ADDRESSES = [
    ("qemu+ssh://root@hv1.example/system", "hv1.example:9177"),
    ("qemu+ssh://root@hv1.example:2222/system?keyfile=/root/.ssh/id", "hv1.example:9177"),
    ("qemu+tcp://hv2.example:16509/system", "hv2.example:9177"),
    ("qemu+tls://HV3.Example/system", "hv3.example:9177"),    # DNS names are case-blind
    ("qemu+tcp://10.0.0.7/system", "10.0.0.7:9177"),
    ("qemu+tcp://[::1]/system", "[::1]:9177"),
    ("qemu+ssh://root@[2001:DB8:0::1]:22/system", "[2001:db8::1]:9177"),
    ("qemu+tcp://[fe80::1%25eth0]/system", "[fe80::1%eth0]:9177"),
    ("test+tcp://127.0.0.1/default", "127.0.0.1:9177"),
    ("qemu:///system", None),
    ("qemu+unix:///system?socket=/run/libvirt/libvirt-sock", None),
    ("qemu+ssh:///system", None),
    ("qemu+tcp://[::1/system", None),            # urlsplit: "Invalid IPv6 URL"
    ("qemu+tcp://[not-v6]/system", None),
    ("qemu+tcp://hv1%2Fx/system", None),         # not a name Prometheus could dial
    ("qemu+tcp://-hv1/system", None),
]


@pytest.mark.parametrize(("uri", "address"), ADDRESSES)
def test_scrape_address(uri, address):
    assert scrape_address(uri, EXPORTER_PORT) == address


def test_one_group_per_host_in_order_with_the_uri_as_its_only_label():
    scrape = file_sd_targets(["qemu+ssh://root@hv1.example:2222/system",
                              "qemu+tcp://[::1]/system", "test+tcp://127.0.0.1/default"], 9100)
    assert scrape.groups == (
        {"targets": ["hv1.example:9100"],
         "labels": {"numaguard_uri": "qemu+ssh://root@hv1.example:2222/system"}},
        {"targets": ["[::1]:9100"], "labels": {"numaguard_uri": "qemu+tcp://[::1]/system"}},
        {"targets": ["127.0.0.1:9100"],
         "labels": {"numaguard_uri": "test+tcp://127.0.0.1/default"}})
    assert scrape.left_out == ()


def test_snapshots_local_uris_and_a_second_uri_of_one_host_are_left_out_with_the_reason():
    scrape = file_sd_targets(["/srv/snapshots/hv9", "qemu+ssh://root@hv1/system", "qemu:///system",
                              "qemu+tcp://HV1/session", "qemu+tcp://[::1/system"])
    assert scrape.groups == ({"targets": ["hv1:9177"],
                              "labels": {"numaguard_uri": "qemu+ssh://root@hv1/system"}},)
    assert scrape.left_out == (
        ("/srv/snapshots/hv9", "a snapshot"),
        ("qemu:///system", "a URI of this machine: no host name"),
        ("qemu+tcp://HV1/session", "hv1:9177 is already listed for qemu+ssh://root@hv1/system"),
        ("qemu+tcp://[::1/system", "not a host name Prometheus can scrape"))


def test_only_snapshots_give_an_empty_list_which_prometheus_reads_as_no_targets():
    scrape = file_sd_targets(["a", "b"])
    assert scrape.groups == () and file_sd_json(scrape.groups) == b"[]\n"


def test_the_fleet_s_own_checks_come_first():
    with pytest.raises(NumaguardError, match="given twice"):
        file_sd_targets(["qemu+tcp://hv1/system", "qemu+tcp://hv1/system"])
    with pytest.raises(NumaguardError, match="no hosts"):
        file_sd_targets([])
    with pytest.raises(ParseError, match="--exporter-port"):
        file_sd_targets(["qemu+tcp://hv1/system"], 0)


def test_the_default_port_is_the_exporter_s():
    serve = pytest.importorskip("numaguard.exporter.serve")   # needs prometheus_client
    assert serve.DEFAULT_LISTEN.rpartition(":")[2] == str(EXPORTER_PORT)


# -- the file -----------------------------------------------------------------------------------

GROUPS = ({"targets": ["hv1:9177"], "labels": {"numaguard_uri": "qemu+ssh://hv1/system"}},)


def test_a_file_is_replaced_by_a_rename_with_nothing_left_beside_it(tmp_path):
    path = tmp_path / "numaguard.json"
    path.write_text("[]\n")
    os.chmod(path, 0o600)
    before = path.stat().st_ino
    write_file_sd(str(path), GROUPS)
    assert json.loads(path.read_text()) == list(GROUPS)
    assert path.stat().st_ino != before             # a new file renamed over the old one
    assert os.listdir(tmp_path) == ["numaguard.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 & ~umask   # Prometheus reads it


@pytest.mark.parametrize("case", ["link", "dangling link"])
def test_a_symlink_is_refused_and_left_as_it_was(tmp_path, case):
    real = tmp_path / "real.json"
    if case == "link":
        real.write_text("[]\n")
    link = tmp_path / "numaguard.json"
    link.symlink_to(real)
    with pytest.raises(NumaguardError, match="is a symbolic link; nothing written") as exc:
        write_file_sd(str(link), GROUPS)
    assert str(link) in str(exc.value) and "\n" not in str(exc.value)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert sorted(os.listdir(tmp_path)) == (["numaguard.json", "real.json"] if case == "link"
                                            else ["numaguard.json"])
    if case == "link":
        assert real.read_text() == "[]\n"


# -- the command --------------------------------------------------------------------------------

def _hosts(tmp_path: Path, *lines: str) -> Path:
    hosts = tmp_path / "hosts"
    hosts.write_text("\n".join(lines) + "\n")
    return hosts


def test_audit_writes_every_uri_host_also_the_ones_it_cannot_audit(tmp_path, capsys):
    hosts = _hosts(tmp_path, "# two exporters nobody audits, one snapshot", *REFUSED, ARTICLE)
    sd = tmp_path / "sd" / "numaguard.json"
    sd.parent.mkdir()
    code, out, err = run(capsys, "audit", "--hosts", hosts, "--file-sd", sd,
                         "--exporter-port", "9300", "--format", "json", "--deadline", "30")
    status = {h["source"]: h["status"] for h in json.loads(out)["hosts"]}
    assert code == 2 and status == {REFUSED[0]: "error", REFUSED[1]: "error", ARTICLE: "ok"}
    assert json.loads(sd.read_text()) == [
        {"targets": ["127.0.0.1:9300"], "labels": {"numaguard_uri": REFUSED[0]}},
        {"targets": ["[::1]:9300"], "labels": {"numaguard_uri": REFUSED[1]}}]
    assert os.listdir(sd.parent) == ["numaguard.json"]
    assert f"numaguard audit: {sd}: 2 of 3 hosts listed; left out: {ARTICLE} (a snapshot)\n" \
        in err


def _bad_path(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "real.json").write_text("[]\n")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    return {
        "no such folder": (tmp_path / "missing" / "sd.json", "no such directory"),
        "a folder": (tmp_path / "folder.json", "is a directory, not a regular file"),
        "not .json": (tmp_path / "sd.yml", "must end in .json"),
        "a symlink": (tmp_path / "link.json", "is a symbolic link; nothing written"),
    }


@pytest.mark.parametrize("case", ["no such folder", "a folder", "not .json", "a symlink"])
def test_a_bad_path_is_one_line_exit_2_and_nothing_is_audited_or_written(tmp_path, capsys, case):
    path, message = _bad_path(tmp_path)[case]
    listed = sorted(os.listdir(tmp_path))
    code, out, err = run(capsys, "audit", "--hosts", _hosts(tmp_path, REFUSED[0], ARTICLE),
                         "--file-sd", path)
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert err.startswith(f"numaguard audit: {path}: ") and message in err
    assert sorted(os.listdir(tmp_path)) == sorted([*listed, "hosts"])
    assert (tmp_path / "real.json").read_text() == "[]\n"


@pytest.mark.parametrize(("argv", "message"), [
    (["-c", REFUSED[0], "-c", REFUSED[0], "--file-sd", "{sd}"], "given twice"),
    ([ARTICLE, "--file-sd", "{sd}"], "--file-sd and --exporter-port go with a fleet run"),
    ([ARTICLE, ARTICLE + "/", "--exporter-port", "9100"], "--exporter-port goes with --file-sd"),
    (["-c", REFUSED[0], ARTICLE, "--file-sd", "{sd}", "--exporter-port", "0"],
     "invalid port '0': expected 1 to 65535"),
])
def test_refusals_write_nothing(tmp_path, capsys, argv, message):
    sd = tmp_path / "sd.json"
    code, out, err = run(capsys, "audit", *[a.format(sd=sd) for a in argv])
    assert (code, out) == (2, "") and message in err and err.count("\n") == 1
    assert not sd.exists()


# -- the docs' prometheus.yml, with a file the command wrote, through promtool -------------------

def _docs_snippet() -> str:
    section = FLEET_DOC.read_text().split("## Prometheus service discovery", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)   # type: ignore[union-attr]


def _promtool(config: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed (Debian's prometheus package; make "
                    "test-prometheus installs it as root)")
    return subprocess.run(["promtool", "check", "config", str(config)], capture_output=True,
                          text=True, timeout=60)


def test_the_docs_prometheus_yml_passes_promtool_with_the_file_written(tmp_path, capsys):
    snippet = _docs_snippet().replace("/etc/prometheus/numaguard-rules.yml",
                                      str(ROOT / "deploy" / "numaguard-rules.yml"))
    documented = re.search(r"files: \[(\S+\.json)\]", snippet).group(1)  # type: ignore[union-attr]
    sd = tmp_path / os.path.basename(documented)
    code, _, _ = run(capsys, "audit", "-c", REFUSED[0], "-c", REFUSED[1], "--file-sd", sd,
                     "--deadline", "30")
    assert code == 2 and json.loads(sd.read_text())[0]["targets"] == ["127.0.0.1:9177"]
    config = tmp_path / "prometheus.yml"
    config.write_text(snippet.replace(documented, str(sd)))
    check = _promtool(config)
    assert check.returncode == 0, check
    # promtool reads the file_sd file itself: a file it could not parse or did not find is
    # reported (2.42: "WARNING: file ... does not exist" / "FAILED")
    assert "WARNING" not in check.stdout + check.stderr, check
    assert f"Checking {config}" in check.stdout and "SUCCESS" in check.stdout


def test_promtool_takes_every_address_numaguard_writes(tmp_path):
    """promtool check config reads the file_sd file and refuses a target that is not
    ``host:port`` Prometheus can dial ("… is not a valid hostname"), as Prometheus would."""
    uris = [uri for uri, address in ADDRESSES if address is not None]
    scrape = file_sd_targets(uris)
    assert len(scrape.groups) == len({a for _, a in ADDRESSES if a is not None}) == 8
    sd = tmp_path / "numaguard.json"
    write_file_sd(str(sd), scrape.groups)
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({"scrape_configs": [
        {"job_name": "numaguard", "file_sd_configs": [{"files": [str(sd)]}]}]}))
    check = _promtool(config)
    assert check.returncode == 0 and "WARNING" not in check.stdout + check.stderr, check
    # and the check can fail: a target with a path in it is refused
    write_file_sd(str(sd), [{"targets": ["hv1/x:9177"], "labels": {}}])
    assert _promtool(config).returncode == 1

"""`numaguard exporter`: the textfile, the refused --listen, SIGTERM ending the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from numaguard import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "article-host")


def test_textfile_written_atomically(tmp_path: Path, capsys) -> None:
    out = tmp_path / "numaguard.prom"
    out.write_text("old\n")
    assert cli.main(["exporter", EXAMPLE, "--textfile", str(out)]) == 0
    names = {f.name for f in text_string_to_metric_families(out.read_text())}
    assert {"numaguard_predicted_oom_kills", "numaguard_scrape_success"} <= names
    assert oct(out.stat().st_mode & 0o777) == oct(0o644 & ~_umask())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["numaguard.prom"]  # no temp left
    assert capsys.readouterr().err == ""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_listen_needs_a_host(capsys) -> None:
    assert cli.main(["exporter", EXAMPLE, "--listen", ":9177"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("numaguard exporter: --listen: ")
    assert "0.0.0.0:PORT" in err


def test_bad_source_exits_2(tmp_path: Path, capsys) -> None:
    assert cli.main(["exporter", str(tmp_path / "missing"), "--textfile",
                     str(tmp_path / "x.prom")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing" in err
    assert not (tmp_path / "x.prom").exists()


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "err"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "numaguard", "exporter", EXAMPLE,
                                 "--listen", "127.0.0.1:0"], stderr=err,
                                env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    try:
        deadline = time.monotonic() + 30
        while "/metrics" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        url = log.read_text().split("serving ")[1].strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        urllib.request.urlopen(url, timeout=2)
        raise AssertionError("still answering after SIGTERM")
    except OSError:
        pass

"""Real Prometheus parts for the exporter's integration test (Debian's prometheus,
prometheus-alertmanager, prometheus-node-exporter): loopback only, fresh storage in a given
folder, every process started here stopped by its PID (:class:`Processes`)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BINARIES = ("promtool", "prometheus", "prometheus-alertmanager", "prometheus-node-exporter")


def unavailable() -> str | None:
    """Why the test cannot run here, or ``None``."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        return (f"{', '.join(missing)} not installed (Debian: apt-get install prometheus "
                "prometheus-alertmanager prometheus-node-exporter; `make test-prometheus` "
                "does it as root)")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """The processes a test started; :meth:`stop_all` sends each SIGTERM by PID (Popen's
    own), waits, and SIGKILLs one that did not stop in 10 s.  Returns their exit codes."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        err = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        self.started[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for name, proc in reversed(list(self.started.items())):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            codes[name] = proc.returncode
        return codes


class Webhook:
    """Alertmanager's webhook receiver: a tiny http.server on loopback keeping every POST
    body (the webhook JSON: ``{"status", "alerts": [{"labels", ...}], ...}``)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, object]] = []
        self.arrived = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook.arrived:
                    hook.posts.append(json.loads(body))
                    hook.arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def get_json(url: str, **params: str) -> dict[str, object]:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(url + query, timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def wait_http(url: str, deadline: float) -> None:
    """Until *url* answers 200 (or raise TimeoutError at *deadline*, a monotonic time)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer")
        time.sleep(0.1)

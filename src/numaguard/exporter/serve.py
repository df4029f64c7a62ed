"""Where the collector's metrics go: an HTTP endpoint, or one textfile.

* :func:`serve_http`: prometheus_client's own server (``start_http_server``: a threading WSGI
  server answering ``/metrics``) on the address given — loopback by default; all interfaces
  only when ``0.0.0.0`` or ``[::]`` is asked for by name.  It runs until SIGTERM (or Ctrl-C)
  and then closes its socket.
* :func:`write_textfile`: the exposition text written once, atomically (a temporary file
  beside it, fsync, rename: :func:`numaguard.writers.xml_patch.write_atomic`), for
  node_exporter's textfile collector, which reads ``*.prom`` files from its
  ``--collector.textfile.directory`` and must never see a half-written one.
"""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from numaguard.errors import ParseError

DEFAULT_LISTEN = "127.0.0.1:9177"
#: a textfile for node_exporter: readable by its (unprivileged) user
TEXTFILE_MODE = 0o644


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` / ``[V6]:PORT`` -> (host, port).  The host is required: an empty one
    (``:9177``) would mean every interface, which must be asked for as ``0.0.0.0``."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host:
        raise ParseError(f"{value!r}: expected HOST:PORT such as {DEFAULT_LISTEN} (every "
                         "interface only when asked for: 0.0.0.0:PORT or [::]:PORT)",
                         field="--listen")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ParseError(f"{value!r}: the port must be a number 0-65535", field="--listen")
    return host, int(port)


def registry_for(collector: Collector) -> CollectorRegistry:
    """A registry of its own holding only *collector* (no process or platform collectors:
    their series are not numaguard's, and ``promtool check metrics`` is run on this page)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def write_textfile(registry: CollectorRegistry, path: str) -> None:
    from numaguard.writers.xml_patch import write_atomic

    write_atomic(path, generate_latest(registry), mode=TEXTFILE_MODE)


def serve_http(registry: CollectorRegistry, host: str, port: int,
               ready: Callable[[str, int], None] | None = None,
               stop: threading.Event | None = None) -> int:
    """Serve ``/metrics`` on *host*:*port* until SIGTERM, Ctrl-C or *stop* is set; 0 then.

    *ready* gets the address actually bound (port 0 picks a free one) once it answers."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    stop = stop or threading.Event()
    # the CLI pauses the cyclic collector for its one-shot commands; a server runs for days
    if not gc.isenabled():
        gc.enable()
    try:
        if ready is not None:
            bound = server.server_address
            ready(str(bound[0]), int(bound[1]))
        stop.wait()
    except SystemExit as exc:   # signals_unwind: SIGTERM/SIGHUP -> SystemExit(128 + N)
        if exc.code != 128 + signal.SIGTERM:
            raise
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    return 0

"""Where the collector's metrics go: an HTTP endpoint, or one textfile.

* :func:`serve_http`: prometheus_client's WSGI app (``make_wsgi_app``) on its threading WSGI
  server (``ThreadingWSGIServer``, as its ``start_http_server`` does) on the address given —
  loopback by default; all interfaces only when ``0.0.0.0`` or ``[::]`` is asked for by name —
  with a listen backlog of :data:`BACKLOG` instead of socketserver's 5, so that many scrapers
  connecting at once are queued, not dropped (200 at once waited seconds on SYN retries).  It
  runs until SIGTERM (or Ctrl-C) and then closes its socket.
* :func:`write_textfile`: the exposition text written once, atomically (a temporary file
  beside it, fsync, rename: :func:`numaguard.writers.xml_patch.write_atomic`), for
  node_exporter's textfile collector, which reads ``*.prom`` files from its
  ``--collector.textfile.directory`` and must never see a half-written one.
"""

from __future__ import annotations

import gc
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from numaguard.errors import ParseError

DEFAULT_LISTEN = "127.0.0.1:9177"
#: connections the kernel queues before the server accepts them (listen(2)'s backlog)
BACKLOG = 512
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


class _Quiet(WSGIRequestHandler):
    """No line on stderr per request (the server logs what changes, not every scrape)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


def _start(host: str, port: int, registry: CollectorRegistry
           ) -> tuple[WSGIServer, threading.Thread]:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    server_class = type("NumaguardServer", (ThreadingWSGIServer,),
                        {"address_family": family, "request_queue_size": BACKLOG})
    server: WSGIServer = make_server(host, port, make_wsgi_app(registry), server_class,
                         handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def serve_http(registry: CollectorRegistry, host: str, port: int,
               ready: Callable[[str, int], None] | None = None,
               stop: threading.Event | None = None) -> int:
    """Serve ``/metrics`` on *host*:*port* until SIGTERM, Ctrl-C or *stop* is set; 0 then.

    *ready* gets the address actually bound (port 0 picks a free one) once it answers."""
    server, thread = _start(host, port, registry)
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

"""200 scrapes at once on loopback: every one answers, and they share a few reads and audits
(single flight) instead of queueing 200 of them (issue 13)."""

from __future__ import annotations

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")

from numaguard.exporter.collector import NumaguardCollector  # noqa: E402
from numaguard.exporter.serve import registry_for, serve_http  # noqa: E402
from numaguard.readers.live import read_live  # noqa: E402
from numaguard.readers.sources import read_paths  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "article-host"
SCRAPERS = 200


def test_200_concurrent_scrapes_share_the_audits():
    reads = []

    def inventory():
        reads.append(1)
        # a host read as slow as a libvirt round trip with a few domains (~0.1 s): the example
        # alone reads in ~5 ms, and how many scrapes then share one flight depended on how
        # busy the machine was (97 reads for 200 scrapes on a loaded one)
        time.sleep(0.1)
        return read_paths([str(EXAMPLE)])

    collector = NumaguardCollector(inventory, live=lambda inv: read_live(str(EXAMPLE / "host")))
    stop = threading.Event()
    bound: list[tuple[str, int]] = []
    ready = threading.Event()

    def on_ready(host: str, port: int) -> None:
        bound.append((host, port))
        ready.set()

    server = threading.Thread(target=serve_http, daemon=True,
                              args=(registry_for(collector), "127.0.0.1", 0, on_ready, stop))
    server.start()
    assert ready.wait(10)
    host, port = bound[0]

    def scrape(_: int) -> tuple[int, bytes]:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=60) as r:
            return r.status, r.read()

    try:
        with ThreadPoolExecutor(SCRAPERS) as pool:
            pages = list(pool.map(scrape, range(SCRAPERS)))
    finally:
        stop.set()
        server.join(10)
    assert all(status == 200 for status, _ in pages)
    assert all(b"numaguard_scrape_success 1.0" in page for _, page in pages)
    assert all(b'numaguard_guest_memory_bytes{guest="vm1",node="0"} 2.097152e+08' in page
               for _, page in pages)
    # one audit per flight: far fewer than one per scrape
    assert len(reads) < SCRAPERS // 4, len(reads)
    print(f"{SCRAPERS} scrapes, {len(reads)} reads and audits")

"""The collector on examples/article-host (the audit's figures: `numaguard audit
examples/article-host`), with hand-built live states, a failing source, and over HTTP."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from numaguard.exporter.collector import NumaguardCollector
from numaguard.exporter.serve import registry_for, serve_http
from numaguard.model.live import GuestLive, LiveState, NodeLive
from numaguard.readers.sources import open_source

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "article-host")
GiB = 1 << 30
MiB = 1 << 20


def _read():
    return open_source([EXAMPLE]).read()


def _live(_inventory=None) -> LiveState:
    """vm1 (strict on node 0) with 3 GiB on node 0 and 1 GiB on node 1; bigmem-preferred
    unreadable; node figures that differ from the snapshot's, to tell which is used."""
    return LiveState(
        nodes=tuple(NodeLive(n, 16 * GiB + n, 8 * GiB + n) for n in range(4)),
        guests=(GuestLive("vm1", 4242, per_node=((0, 3 * GiB), (1, GiB)), source="cgroup-v1"),
                GuestLive("db-hugepages", 4343, per_node=((3, 5 * MiB),),
                          hugepages_per_node=((3, 8 * GiB),), source="hugetlb"),
                GuestLive("bigmem-preferred", None, error="no such process")))


def _samples(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def scrape_article_host(live: bool = False) -> dict[str, dict]:
    collector = NumaguardCollector(_read, _live if live else None)
    return _samples(generate_latest(registry_for(collector)).decode())


def test_article_host_figures() -> None:
    m = scrape_article_host()
    assert m["numaguard_scrape_success"] == {(): 1.0}
    assert m["numaguard_node_headroom_bytes"][(("node", "0"),)] == 2550632448  # "2.4 GiB"
    assert m["numaguard_node_bound_bytes"] == {(("node", "0"),): 12 * GiB,
                                              (("node", "1"),): 0, (("node", "2"),): 0,
                                              (("node", "3"),): 0}
    assert m["numaguard_node_memory_total_bytes"][(("node", "0"),)] == 16509276160
    assert m["numaguard_node_memory_free_bytes"][(("node", "3"),)] == 7897509888
    # NG110: bigmem-preferred dies when vm1 grows (2 of 6 orders), when web-interleave grows
    # (4 of 6: the host is out of memory)
    assert m["numaguard_predicted_oom_kills"] == {
        (("trigger", "vm1"), ("victim", "bigmem-preferred")): 2,
        (("trigger", "web-interleave"), ("victim", "bigmem-preferred")): 4}
    assert m["numaguard_guest_policy_info"][
        (("guest", "vm1"), ("implicit", "true"), ("mode", "strict"), ("nodeset", "0"))] == 1
    assert m["numaguard_guest_policy_info"][
        (("guest", "web-interleave"), ("implicit", "false"), ("mode", "interleave"),
         ("nodeset", "0-2"))] == 1
    findings = m["numaguard_finding_info"]
    assert (("guest", "vm1"), ("rule", "NG102"), ("severity", "critical")) in findings
    assert (("guest", "bigmem-preferred"), ("rule", "NG109"), ("severity", "info")) in findings
    assert "numaguard_guest_memory_bytes" not in m   # no live state given


def test_live_state() -> None:
    m = scrape_article_host(live=True)
    memory = m["numaguard_guest_memory_bytes"]
    assert memory[(("guest", "vm1"), ("node", "0"))] == 3 * GiB
    # vm1's own node and the node it spilled to; none for a node it neither holds nor owns
    assert {dict(k)["node"] for k in memory if dict(k)["guest"] == "vm1"} == {"0", "1"}
    assert memory[(("guest", "db-hugepages"), ("node", "3"))] == 8 * GiB + 5 * MiB
    assert not any(dict(k)["guest"] == "bigmem-preferred" for k in memory)
    assert m["numaguard_guest_locality_ratio"] == {(("guest", "vm1"),): 0.75,
                                                   (("guest", "db-hugepages"),): 1.0}
    assert m["numaguard_guest_read_error"] == {(("guest", "vm1"),): 0,
                                               (("guest", "db-hugepages"),): 0,
                                               (("guest", "bigmem-preferred"),): 1}
    # the live node figures replace the snapshot's
    assert m["numaguard_node_memory_free_bytes"][(("node", "2"),)] == 8 * GiB + 2


def test_failed_read_is_scrape_success_0() -> None:
    calls: list[str | None] = []
    state = {"fail": True}

    def inventory():
        if state["fail"]:
            raise OSError(2, "No such file or directory", "/nowhere")
        return _read()

    collector = NumaguardCollector(inventory, on_change=calls.append)
    registry = registry_for(collector)
    for _ in range(2):
        m = _samples(generate_latest(registry).decode())
        assert m["numaguard_scrape_success"] == {(): 0.0}
        assert set(m) == {"numaguard_scrape_success", "numaguard_scrape_duration_seconds"}
    assert collector.last_error == "[Errno 2] No such file or directory: '/nowhere'"
    state["fail"] = False
    assert _samples(generate_latest(registry).decode())["numaguard_scrape_success"] == {(): 1}
    assert calls == ["[Errno 2] No such file or directory: '/nowhere'", None]  # once each


def test_series_bound() -> None:
    """The documented bound 4·N + G·(H + 2 + C) + F + K + 2 holds (N=4, G=3 live, C=1, H=2:
    vm1 holds memory on its node 0 and on 1, db-hugepages on its node 3 only)."""
    m = scrape_article_host(live=True)
    count = {name: len(series) for name, series in m.items()}
    n, g, h = 4, 3, 2
    assert count["numaguard_guest_memory_bytes"] == 2 + 1   # nodes held or owned, per guest
    per_node = sum(count[f"numaguard_node_{k}"] for k in (
        "memory_total_bytes", "memory_free_bytes", "bound_bytes", "headroom_bytes"))
    assert per_node == 4 * n
    f, k = count["numaguard_finding_info"], count["numaguard_predicted_oom_kills"]
    assert sum(count.values()) <= 4 * n + g * (h + 2 + 1) + 4 + f + k + 2


def test_http_serves_and_stops(tmp_path: Path) -> None:
    def broken():
        raise RuntimeError("libvirt went away")

    for source, success in ((_read, "1.0"), (broken, "0.0")):
        registry = registry_for(NumaguardCollector(source))
        stop = threading.Event()
        bound: list[int] = []
        ready = threading.Event()
        done: list[int] = []

        def run(registry=registry, stop=stop, bound=bound, ready=ready, done=done):
            done.append(serve_http(registry, "127.0.0.1", 0,
                                   lambda h, p: (bound.append(p), ready.set()), stop))

        thread = threading.Thread(target=run)
        thread.start()
        assert ready.wait(10)
        with urllib.request.urlopen(f"http://127.0.0.1:{bound[0]}/metrics", timeout=10) as r:
            assert r.status == 200     # a failed read is never a 500
            page = r.read().decode()
        assert f"numaguard_scrape_success {success}" in page
        stop.set()
        thread.join(10)
        assert done == [0]

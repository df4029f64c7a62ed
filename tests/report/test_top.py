"""report/top.py: one frame of `numaguard top` from an inventory, a live state and the what-if."""

import pathlib

import pytest

from numaguard.core.whatif import predict_live
from numaguard.model.live import GuestLive, LiveState, NodeLive
from numaguard.readers.sources import read_paths
from numaguard.report.top import FREE, GUEST, HOST, PLEDGE, _bar, pledged, top_text

ARTICLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "article-host"
GiB = 1024**3


def frame(width):
    inv = read_paths([str(ARTICLE)])
    nodes = tuple(NodeLive(n.id, n.mem_total, 4 * GiB) for n in inv.host.nodes)
    guests = [GuestLive(g.name, 100 + i, ((i % 4, 2 * GiB),)) for i, g in enumerate(inv.guests)]
    guests[-1] = GuestLive(guests[-1].name, None, error="/proc/103/numa_maps: no such file")
    live = LiveState(nodes, tuple(guests))
    return inv, live, top_text(inv, live, predict_live(inv.host, inv.guests, live), width=width)


@pytest.mark.parametrize("width", [80, 120])
def test_a_frame_fits_its_width_and_shows_every_node_and_guest(width):
    inv, live, text = frame(width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert [line.split("[")[0].strip() for line in lines if line.startswith("node ")] == \
        [f"node {n.id}" for n in inv.host.nodes]
    for g in inv.guests:
        assert g.name in text
    assert "no such file" in text                      # the guest that could not be read
    assert "If every guest grows to its full size now" in text


def test_the_bar_splits_guests_host_and_free_and_marks_the_pledge():
    bar = _bar(16 * GiB, 4 * GiB, 8 * GiB, 12 * GiB, 16)
    assert bar == GUEST * 4 + HOST * 4 + FREE * 4 + PLEDGE + FREE * 3
    assert _bar(0, 0, 0, 0, 5) == FREE * 5


def test_pledges_count_strict_units_bound_to_one_node():
    inv = read_paths([str(ARTICLE)])
    # vm1: 12 GiB strict (implicit) on node 0; db-hugepages: 8 GiB strict on node 3; the
    # preferred and interleaved guests pledge nothing
    assert pledged(inv) == {0: 12 * GiB, 3: 8 * GiB}

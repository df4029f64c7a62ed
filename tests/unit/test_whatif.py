"""core/whatif.py: from what a live host holds now, who is OOM-killed if every running guest
grows to its full size now."""

from numaguard.core.scenario import QEMU_OWN
from numaguard.core.whatif import growth_map, held_steps, host_before_guests, predict_live
from numaguard.model.live import GuestLive, LiveState, NodeLive
from tests.unit.rules.test_memory_rules import g, make_host

GiB = 1024**3


def live(free_gib, *guests):
    nodes = tuple(NodeLive(i, 16 * GiB, int(f * GiB)) for i, f in enumerate(free_gib))
    return LiveState(nodes, tuple(guests))


def held(name, **per_node_gib):
    return GuestLive(name, 100, tuple((int(k[1:]), int(v * GiB))
                                      for k, v in per_node_gib.items()))


def test_a_strict_guest_growing_into_a_node_another_guest_filled_is_a_kill():
    """db (12 GiB, strict on node 0) holds 4 GiB; web (8 GiB, no policy) spilled 6 GiB onto
    node 0 earlier. Node 0 has 5 GiB free: db's 8 GiB more cannot fit, so the kernel kills on
    node 0 for db's allocation. With web's 6 GiB on node 1 instead, db's growth fits."""
    host = make_host(16, 16)
    guests = [g("db", 12, mode="strict", nodeset="0"), g("web", 8)]
    crowded = live((5, 15), held("db", n0=4), held("web", n0=6))
    kills = predict_live(host, guests, crowded).kills
    assert kills and {k.trigger for k in kills} == {"db"}
    assert all(k.constraint == "memory-policy" for k in kills)
    spread = live((11, 9), held("db", n0=4), held("web", n1=6))
    assert predict_live(host, guests, spread).kills == ()


def test_only_what_is_missing_is_touched_and_what_is_held_is_put_back():
    host = make_host(16, 16)
    guests = [g("db", 12, mode="strict", nodeset="0"), g("web", 8)]
    web = GuestLive("web", 101, ((0, 8 * GiB + QEMU_OWN),))
    state = live((5, 15), held("db", n0=4), web)
    grow = growth_map(host, guests, state)
    # what db holds counts against QEMU's own memory first: its guest RAM is 10 MiB short of
    # the 4 GiB
    assert [(s.size, lb) for s, lb in grow["db"]] == [(8 * GiB + QEMU_OWN, "db")]
    assert "web" not in grow                          # all of it is held already
    back = held_steps(state, ["db", "web"])
    assert [(s.name, s.size, s.nodes) for s in back] == [
        ("db", 4 * GiB, frozenset({0})), ("web", 8 * GiB + QEMU_OWN, frozenset({0}))]
    # holding less than QEMU's own memory: the rest of it comes first, then all guest RAM
    small = growth_map(host, guests, live((5, 15), GuestLive("db", 100, ((0, 4096),))))
    assert [(s.size, lb) for s, lb in small["db"]] == [
        (QEMU_OWN - 4096, "db QEMU's own"), (12 * GiB, "db")]
    before = host_before_guests(host, state)
    assert [n.mem_free for n in before.nodes] == [16 * GiB, 15 * GiB]   # capped at MemTotal


def test_a_guest_that_could_not_be_read_counts_as_holding_nothing():
    host = make_host(16, 16)
    guests = [g("db", 12, mode="strict", nodeset="0")]
    state = live((12, 16), GuestLive("db", None, error="/proc/77/numa_maps: vanished"))
    assert held_steps(state, ["db"]) == []
    assert sum(s.size for s, _ in growth_map(host, guests, state)["db"]) == 12 * GiB + QEMU_OWN
    # guests that are not running are not grown
    assert growth_map(host, guests, live((16, 16))) == {}

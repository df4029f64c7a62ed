"""Invariants of the simulator over random hosts and random step sequences."""

from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from numaguard.core import simulate as sim
from numaguard.core.fallback import fallback_orders
from numaguard.core.simulate import Policy, SimHost, SimNode, Step, simulate
from numaguard.model.topology import Host, Node

GiB = 1024**3
MiB = 1024**2


@st.composite
def hosts(draw):
    n = draw(st.integers(2, 4))
    frees = draw(st.lists(st.integers(0, 16 * 1024), min_size=n, max_size=n))  # MiB
    mins = draw(st.lists(st.integers(0, 64), min_size=n, max_size=n))
    dist = [[10 if a == b else draw(st.sampled_from([12, 21, 31])) for b in range(n)]
            for a in range(n)]
    dist = [[dist[min(a, b)][max(a, b)] if a != b else 10 for b in range(n)] for a in range(n)]
    model = Host(tuple(Node(i, frozenset({i}), 16 * GiB) for i in range(n)),
                 tuple(tuple(r) for r in dist))
    nodes = tuple(SimNode(i, frees[i] * MiB, mins[i] * MiB, mins[i] * MiB * 5 // 4,
                          draw(st.integers(0, 512)) * MiB, total=16 * GiB) for i in range(n))
    return SimHost(nodes, fallback_orders(model), draw(st.integers(0, 4)) * GiB)


GUEST_SIZES = st.integers(0, 20 * GiB)
FREE_SIZES = st.integers(0, 4 * GiB)


@st.composite
def steps(draw, n_nodes, *, most=8, tasks=4, sizes=GUEST_SIZES, frees=FREE_SIZES):
    node = st.integers(0, n_nodes - 1)
    nodeset = st.frozensets(node, min_size=1)
    out = []
    for _ in range(draw(st.integers(1, most))):
        name = f"t{draw(st.integers(0, tasks - 1))}"
        if draw(st.integers(0, 5)) == 0:
            out.append(Step(name, draw(st.one_of(st.none(), frees)), action="free"))
            continue
        policy = draw(st.sampled_from(list(Policy)))
        out.append(Step(
            name, draw(sizes), policy=policy,
            nodes=None if policy is Policy.DEFAULT else draw(nodeset),
            cpu_node=draw(node),
            cpuset_mems=draw(st.one_of(st.none(), nodeset)),
            oom_score_adj=draw(st.sampled_from([0, 0, 500, -1000]))))
    return out


@st.composite
def scenarios(draw):
    h = draw(hosts())
    return h, draw(steps(len(h.nodes)))


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_invariants(scenario):
    host, plan = scenario
    result = simulate(host, plan)
    for step, res in zip(plan, result.steps, strict=True):
        if step.action == "free":
            continue
        # bytes are conserved: what a step asked for is placed or failed (swap takes from
        # whoever is oldest; the per-task balance is checked below)
        assert sum(res.placed.values()) + res.failed == res.requested
        assert all(b >= 0 for b in res.placed.values())
        # strict (bind) never places outside its nodeset; cpuset.mems is a wall for every policy
        if step.policy is Policy.BIND and step.nodes is not None:
            assert set(res.placed) <= step.nodes
        if step.cpuset_mems is not None:
            assert set(res.placed) <= step.cpuset_mems
        # the allocator never takes a node below its min watermark (one may start below it)
        for node in host.nodes:
            assert res.free_after[node.id] >= min(node.watermark_min, node.free)
    assert 0 <= result.swap_used <= host.swap_free
    assert result.swap_used == sum(a.swapped for a in result.allocations)
    freed_or_killed = {s.name for s in plan if s.action == "free"} | {
        e.victim for e in result.oom_events}
    for a in result.allocations:
        if a.name not in freed_or_killed:
            assert sum(a.placed.values()) + a.swapped + a.failed == a.requested


# -- the swap loop's shortcut gives exactly what the loop gives -------------------------------

@st.composite
def swap_heavy(draw):
    """Small nodes (MiB), swap and requests up to a thousand times a node's room: the swap
    loop runs many rounds, with other tasks' pages, page cache and watermarks in the way."""
    n = draw(st.integers(1, 4))
    dist = [[10 if a == b else draw(st.sampled_from([12, 21, 31])) for b in range(n)]
            for a in range(n)]
    model = Host(tuple(Node(i, frozenset({i}), 64 * MiB) for i in range(n)),
                 tuple(tuple(r) for r in dist))
    nodes = []
    for i in range(n):
        wmin = draw(st.integers(0, 4)) * MiB
        # room above min: none, or at least 1 MiB with an odd byte count (the reference plays
        # every round, so rounds must not be a few bytes)
        room = draw(st.sampled_from([0, 1])) * (draw(st.integers(1, 64)) * MiB
                                                + draw(st.integers(0, 4095)))
        nodes.append(SimNode(i, wmin + room, wmin, wmin * 3 // 2,
                             draw(st.integers(0, 8)) * MiB, total=64 * MiB))
    host = SimHost(tuple(nodes), fallback_orders(model),
                   draw(st.integers(0, 1024)) * MiB + draw(st.integers(0, 4095)))
    # requests up to a thousand times a node's room, with odd byte counts
    plan = draw(steps(n, most=6, tasks=3, frees=st.integers(0, 512 * MiB),
                      sizes=st.builds(lambda m, b: m * MiB + b, st.integers(0, 1024),
                                      st.integers(0, 4095))))
    return host, plan


@st.composite
def byte_scale(draw):
    """Rooms of a few bytes beside larger ones, any zonelists: interleave rounds that hand out
    odd bytes one node at a time, so one node's turn can place far more than another's."""
    n = draw(st.integers(2, 4))
    nodes = tuple(SimNode(i, draw(st.sampled_from([0, 1, 5, 12, 60, 122, 174, 200])),
                          total=1000) for i in range(n))
    fallback = {i: (i, *draw(st.permutations([j for j in range(n) if j != i])))
                for i in range(n)}
    host = SimHost(nodes, fallback, draw(st.integers(0, 3000)))
    node = st.integers(0, n - 1)
    plan = [Step(f"t{draw(st.integers(0, 1))}", draw(st.integers(0, 3000)),
                 policy=draw(st.sampled_from(list(Policy))),
                 nodes=draw(st.frozensets(node, min_size=1)), cpu_node=draw(node))
            for _ in range(draw(st.integers(1, 3)))]
    return host, plan


@settings(max_examples=300, deadline=None)
@given(st.one_of(swap_heavy(), byte_scale()))
def test_swap_loop_shortcut_is_exact(scenario):
    fast = simulate(*scenario)
    with mock.patch.object(sim, "_SKIP_SWAP_CYCLES", False):  # every round played
        assert simulate(*scenario) == fast


@st.composite
def oom_heavy(draw):
    """Many tasks on a small host: events that kill, under every constraint (bind task and vma
    policies, cpusets), with tasks freed and started again — and sometimes an oom_score_adj,
    which takes the scan instead of the heap."""
    host = draw(hosts())
    n = len(host.nodes)
    out = draw(steps(n, most=24, tasks=9))
    return host, out


@settings(max_examples=300, deadline=None)
@given(oom_heavy())
def test_heap_victims_are_the_scans(scenario):
    """The OOM heap chooses exactly the victims select_bad_process's scan does."""
    fast = simulate(*scenario)
    with mock.patch.object(sim, "_HEAP_OOM", False):
        assert simulate(*scenario) == fast

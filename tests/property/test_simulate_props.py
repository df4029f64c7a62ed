"""Invariants of the simulator over random hosts and random step sequences."""

from hypothesis import given, settings
from hypothesis import strategies as st

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


@st.composite
def steps(draw, n_nodes):
    node = st.integers(0, n_nodes - 1)
    nodeset = st.frozensets(node, min_size=1)
    out = []
    for i in range(draw(st.integers(1, 8))):
        name = f"t{draw(st.integers(0, 3))}"
        if draw(st.integers(0, 5)) == 0:
            out.append(Step(name, draw(st.one_of(st.none(), st.integers(0, 4 * GiB))),
                            action="free"))
            continue
        policy = draw(st.sampled_from(list(Policy)))
        out.append(Step(
            name, draw(st.integers(0, 20 * GiB)), policy=policy,
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

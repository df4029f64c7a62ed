"""The bound-memory flow (NG101's model): headroom of each node against a fresh max-flow."""

from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from numaguard.core import flow
from numaguard.core.flow import solve


@st.composite
def problems(draw):
    nodes = draw(st.integers(1, 6))
    capacity = {n: draw(st.sampled_from([0, 1, 3, 8, 20])) for n in range(nodes)}
    node = st.integers(0, nodes)  # one past the last: a node the capacity map lacks
    demands = draw(st.dictionaries(st.frozensets(node, min_size=1, max_size=3),
                                   st.integers(0, 25), max_size=6))
    return demands, capacity


@settings(max_examples=300, deadline=None)
@given(problems())
def test_headroom_is_what_a_new_demand_on_the_node_alone_adds_to_the_maximum_flow(problem):
    demands, capacity = problem
    result = solve(demands, capacity)
    blocked = {n: -oc.shortfall for oc in result.overcommits for n in oc.nodes}
    big = sum(demands.values()) + sum(capacity.values()) + 1
    for n, headroom in result.headroom.items():
        if n in blocked:
            assert headroom == blocked[n]
        elif capacity.get(n, 0) <= 0:
            assert headroom == 0
        else:
            more = dict(demands)
            more[frozenset({n})] = more.get(frozenset({n}), 0) + big
            assert headroom == solve(more, capacity).placed - result.placed
    assert result.placed == sum(result.per_node.values()) <= result.demand


@settings(max_examples=300, deadline=None)
@given(problems())
def test_the_short_path_pass_gives_the_flow_edmonds_karp_gives(problem):
    # per_node is one maximum flow among many: it must be the very one the BFS finds
    fast = solve(*problem)
    # without the pass for the short paths, the BFS finds every augmenting path
    with mock.patch.object(flow._Graph, "short_paths", lambda self, s, t, firsts: 0):
        assert solve(*problem) == fast

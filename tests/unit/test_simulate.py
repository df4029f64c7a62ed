"""The simulator, policy by policy, against the kernel behaviour it follows (FACTS.md, 6.1)."""

from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numaguard.core import simulate as sim
from numaguard.core.simulate import Policy, SimHost, SimNode, Step, simulate

GiB = 1024**3
MiB = 1024**2
EQUAL3 = {0: (0, 1, 2), 1: (1, 2, 0), 2: (2, 0, 1)}  # measured: equal distances, 3 nodes


def host(*free_gib, low_mib=0, min_mib=0, swap_gib=0, fallback=None, total_gib=16,
         reclaimable_gib=0, hugepages=None):
    nodes = tuple(SimNode(i, int(f * GiB), min_mib * MiB, low_mib * MiB,
                          int(reclaimable_gib * GiB), total=total_gib * GiB,
                          hugepages=(hugepages or {}).get(i, {}))
                  for i, f in enumerate(free_gib))
    if fallback is None:
        fallback = EQUAL3 if len(nodes) == 3 else {
            i: tuple([i] + [j for j in range(len(nodes)) if j != i]) for i in range(len(nodes))}
    return SimHost(nodes, fallback, int(swap_gib * GiB))


def gib(placed):
    return {n: round(b / GiB, 3) for n, b in placed.items()}


def one(h, **kw):
    kw.setdefault("name", "t")
    return simulate(h, [Step(**kw)]).steps[0]


def test_default_policy_fills_the_cpus_node_then_its_fallback_order():
    s = one(host(4, 4, 4), size=10 * GiB, cpu_node=1)
    assert gib(s.placed) == {1: 4, 2: 4, 0: 2}


def test_bind_starts_at_the_cpus_node_not_at_the_lowest_node_of_the_set():
    # FACTS: a task on node 2 bound to 0-2 fills 2, then 0, then 1.
    s = one(host(4, 4, 4), size=10 * GiB, policy=Policy.BIND, nodes=frozenset({0, 1, 2}),
            cpu_node=2)
    assert list(s.placed) == [2, 0, 1] and gib(s.placed) == {2: 4, 0: 4, 1: 2}


def test_bind_never_leaves_its_nodeset():
    r = simulate(host(4, 4, 4, swap_gib=1), [Step("t", 6 * GiB, policy=Policy.BIND,
                                                 nodes=frozenset({0}), cpu_node=1)])
    s, t = r.steps[0], r.allocations[0]
    # 4 GiB fit; reclaim swaps 1 GiB of the task's own oldest pages out and the room is reused
    assert set(s.placed) == {0} and s.swapped == 1 * GiB and s.failed == 1 * GiB
    assert s.placed[0] == 5 * GiB
    # 1 GiB short with swap full: the OOM killer takes the task itself, and its swap goes too
    assert t.oom_killed and t.placed == {} and t.swapped == 0 and r.swap_used == 0


def test_preferred_walks_the_preferred_nodes_zonelist():
    s = one(host(4, 4, 4), size=6 * GiB, policy=Policy.PREFERRED, nodes=frozenset({2}),
            cpu_node=0)
    assert list(s.placed) == [2, 0] and gib(s.placed) == {2: 4, 0: 2}


def test_preferred_many_fills_its_nodes_then_any():
    s = one(host(4, 4, 4), size=10 * GiB, policy=Policy.PREFERRED_MANY,
            nodes=frozenset({1, 2}), cpu_node=0)
    # the CPU's zonelist (0 1 2) filtered to {1, 2} first, then the whole zonelist
    assert list(s.placed) == [1, 2, 0] and gib(s.placed) == {1: 4, 2: 4, 0: 2}


def test_interleave_splits_evenly_while_every_node_has_room():
    s = one(host(15, 15, 15), size=35 * GiB, policy=Policy.INTERLEAVE,
            nodes=frozenset({0, 1, 2}))
    assert sum(s.placed.values()) == 35 * GiB
    assert max(s.placed.values()) - min(s.placed.values()) <= 2


def test_interleave_share_of_a_full_node_follows_that_nodes_fallback_even_out_of_the_set():
    # node 1 runs dry after 2 GiB; its share goes along node 1's zonelist (1 2 0): to node 2,
    # which is outside the interleave set {0, 1}.
    s = one(host(10, 2, 10), size=12 * GiB, policy=Policy.INTERLEAVE, nodes=frozenset({0, 1}))
    assert gib(s.placed) == {0: 6, 1: 2, 2: 4}


def test_interleave_inside_a_cpuset_stays_inside():
    s = one(host(10, 2, 10), size=12 * GiB, policy=Policy.INTERLEAVE, nodes=frozenset({0, 1}),
            cpuset_mems=frozenset({0, 1}))
    assert gib(s.placed) == {0: 10, 1: 2}


def test_fast_path_stops_at_low_and_slow_path_at_min():
    h = host(4, 4, low_mib=300, min_mib=200)
    # 3.7 GiB fits node 0 above its low watermark: nothing spills
    s = one(h, size=4 * GiB - 300 * MiB, cpu_node=0)
    assert s.placed == {0: 4 * GiB - 300 * MiB}
    # more than both nodes above low: the rest comes from between low and min, node by node
    s = one(h, size=8 * GiB - 450 * MiB, cpu_node=0)
    assert s.placed == {0: 4 * GiB - 200 * MiB, 1: 4 * GiB - 250 * MiB}
    assert min(s.free_after.values()) >= 200 * MiB


def test_reclaim_drops_page_cache_before_swapping():
    h = host(2, 2, reclaimable_gib=1, swap_gib=4)
    r = simulate(h, [Step("t", 5 * GiB, policy=Policy.BIND, nodes=frozenset({0}))])
    s, t = r.steps[0], r.allocations[0]
    assert s.swapped == 2 * GiB and s.failed == 0
    assert t.placed == {0: 3 * GiB} and t.swapped == 2 * GiB


def test_swap_then_oom_kill_of_the_strict_guest_itself():
    steps = [Step("vm1", 6 * GiB, policy=Policy.BIND, nodes=frozenset({0}),
                  cpuset_mems=frozenset({0})),
             Step("app", 3 * GiB, cpu_node=0),
             Step("vm1", 6 * GiB, policy=Policy.BIND, nodes=frozenset({0}),
                  cpuset_mems=frozenset({0}))]
    r = simulate(host(12, 12, swap_gib=1), steps)
    last = r.steps[2]
    # reclaim swaps the oldest anon pages on node 0 — vm1's first 1 GiB — then nothing is left
    assert last.swapped == 1 * GiB and last.failed == 2 * GiB
    [event] = r.oom_events
    # a bind nodemask that excludes memory nodes: CONSTRAINT_MEMORY_POLICY (oom_kill.c)
    assert (event.victim, event.constraint, event.nodes) == ("vm1", "memory-policy", (0,))
    vm1 = next(a for a in r.allocations if a.name == "vm1")
    assert vm1.oom_killed and vm1.placed == {} and vm1.swapped == 0
    assert r.swap_used == 0  # the victim's swap is freed too
    assert r.free[0] == 12 * GiB - 3 * GiB  # only the application's pages remain


def test_preferred_version_of_the_story_spills_and_nobody_dies():
    steps = [Step("vm1", 6 * GiB, policy=Policy.PREFERRED, nodes=frozenset({0})),
             Step("app", 3 * GiB, cpu_node=0),
             Step("vm1", 6 * GiB, policy=Policy.PREFERRED, nodes=frozenset({0}))]
    r = simulate(host(12, 12, swap_gib=1), steps)
    assert r.oom_events == ()
    assert gib(r.steps[2].placed) == {0: 3, 1: 3}


def test_cpuset_constraint_without_bind():
    # restrictive: no mempolicy, only cpuset.mems
    steps = [Step("vm", 5 * GiB, cpuset_mems=frozenset({0}))]
    r = simulate(host(4, 4), steps)
    assert r.steps[0].placed == {0: 4 * GiB}
    assert [(e.victim, e.constraint) for e in r.oom_events] == [("vm", "cpuset")]


def test_oom_victim_is_the_biggest_eligible_task_and_allocation_retries():
    steps = [Step("big", 6 * GiB, cpu_node=0),
             Step("small", 1 * GiB, cpu_node=0),
             Step("vm", 7 * GiB, policy=Policy.BIND, nodes=frozenset({0}))]
    r = simulate(host(8, 8), steps)
    # node 0 has 1 GiB left: the OOM killer takes "big" (6 GiB), then vm's allocation retries
    assert [(e.victim, e.trigger) for e in r.oom_events] == [("big", "vm")]
    assert r.steps[2].placed == {0: 7 * GiB} and r.steps[2].failed == 0
    # one more byte than node 0 can hold after that: the next victim is vm itself (7 GiB)
    steps[2] = Step("vm", 7 * GiB + 1, policy=Policy.BIND, nodes=frozenset({0}))
    r = simulate(host(8, 8), steps)
    assert [e.victim for e in r.oom_events] == ["big", "vm"]


def test_oom_score_adj_and_unkillable_tasks():
    steps = [Step("qemu", 6 * GiB, cpu_node=0, oom_score_adj=-1000),
             Step("app", 1 * GiB, cpu_node=0, oom_score_adj=1000),
             Step("vm", 4 * GiB, policy=Policy.BIND, nodes=frozenset({0}))]
    r = simulate(host(8, 8), steps)
    assert r.oom_events[0].victim == "app"
    assert "qemu" not in {e.victim for e in r.oom_events}


def test_tasks_bound_elsewhere_are_not_eligible_for_a_memory_policy_oom():
    steps = [Step("other", 7 * GiB, policy=Policy.BIND, nodes=frozenset({1}), cpu_node=1),
             Step("vm", 9 * GiB, policy=Policy.BIND, nodes=frozenset({0}))]
    r = simulate(host(8, 8), steps)
    assert [e.victim for e in r.oom_events] == ["vm"]


def test_ties_go_to_the_newest_task():
    steps = [Step("a", 2 * GiB, cpu_node=0), Step("b", 2 * GiB, cpu_node=0),
             Step("c", 5 * GiB, policy=Policy.BIND, nodes=frozenset({0}))]
    r = simulate(host(8, 8), steps)
    assert r.oom_events[0].victim in ("c", "b")  # c is biggest once it holds 4 GiB
    assert r.oom_events[0].victim == "c"


def test_hugepages_come_from_the_pools_and_never_swap():
    pools = {0: {2 * MiB: 1024}, 1: {2 * MiB: 512}}
    h = host(8, 8, swap_gib=8, hugepages=pools)
    s = one(h, size=3 * GiB, policy=Policy.BIND, nodes=frozenset({0, 1}), hugepage_size=2 * MiB)
    assert gib(s.placed) == {0: 2, 1: 1} and s.swapped == 0 and s.failed == 0
    # more pages than node 0's pool holds: the mapping's reservation fails, nothing is placed
    # (hugetlb_acct_memory; the chain's chain-hugepages-short), although node 1 has pages
    s = one(h, size=4 * GiB, policy=Policy.BIND, nodes=frozenset({0}), hugepage_size=2 * MiB)
    assert s.placed == {} and s.failed == 4 * GiB and s.swapped == 0
    # exactly the pool: all of it
    s = one(h, size=2 * GiB, policy=Policy.BIND, nodes=frozenset({0}), hugepage_size=2 * MiB)
    assert s.placed == {0: 2 * GiB} and s.failed == 0
    # preferred may use every pool: node 0's 1024 pages, then node 1's
    s = one(h, size=3 * GiB, policy=Policy.PREFERRED, nodes=frozenset({0}),
            hugepage_size=2 * MiB)
    assert gib(s.placed) == {0: 2, 1: 1} and s.failed == 0


def test_free_returns_memory():
    steps = [Step("vm", 6 * GiB, cpu_node=0), Step("vm", 2 * GiB, action="free"),
             Step("vm", None, action="free")]
    r = simulate(host(8, 8), steps)
    assert r.steps[1].free_after[0] == 4 * GiB
    assert r.steps[2].free_after[0] == 8 * GiB and r.allocations[0].placed == {}


def test_cost_does_not_grow_with_bytes():
    """TiB guests take as many engine rounds as GiB guests (amounts, not pages)."""
    big = host(4096, 4096, 4096, total_gib=4096)
    s = one(big, size=10_000 * GiB, policy=Policy.INTERLEAVE, nodes=frozenset({0, 1, 2}))
    assert sum(s.placed.values()) == 10_000 * GiB


@pytest.mark.parametrize("policy", list(Policy))
def test_every_step_conserves_bytes(policy):
    nodes = None if policy is Policy.DEFAULT else frozenset({0, 1})
    r = simulate(host(3, 3, 3, swap_gib=1), [Step("t", 9 * GiB, policy=policy, nodes=nodes)])
    s, t = r.steps[0], r.allocations[0]
    assert sum(s.placed.values()) + s.failed == s.requested
    if not t.oom_killed:
        assert sum(t.placed.values()) + t.swapped + t.failed == t.requested


def test_swap_takes_the_oldest_pages_not_the_newest():
    # the application touched its memory after vm1: reclaim pushes vm1's pages to swap first
    steps = [Step("vm1", 3 * GiB, policy=Policy.BIND, nodes=frozenset({0}), policy_scope="vma"),
             Step("app", 2 * GiB, cpu_node=0),
             Step("app", 1 * GiB, policy=Policy.BIND, nodes=frozenset({0}))]
    r = simulate(host(5, 5, swap_gib=2), steps)
    vm1, app = r.allocations
    assert vm1.swapped == 1 * GiB and vm1.placed == {0: 2 * GiB}
    assert app.swapped == 0 and app.placed == {0: 3 * GiB}


def test_hugepage_requests_that_are_not_whole_pages_conserve_bytes():
    h = host(8, 8, hugepages={0: {2 * MiB: 1}, 1: {2 * MiB: 4}})
    s = one(h, size=3 * MiB, policy=Policy.BIND, nodes=frozenset({0, 1}), hugepage_size=2 * MiB)
    assert s.placed == {0: 2 * MiB, 1: 1 * MiB} and s.failed == 0
    s = one(h, size=5 * MiB, policy=Policy.BIND, nodes=frozenset({1}), hugepage_size=2 * MiB)
    assert s.placed == {1: 5 * MiB} and s.failed == 0          # 3 pages of node 1's 4
    s = one(h, size=5 * MiB, policy=Policy.BIND, nodes=frozenset({0}), hugepage_size=2 * MiB)
    assert s.placed == {} and s.failed == 5 * MiB              # 3 pages > node 0's 1: none


def test_mbind_guests_stay_eligible_in_a_memory_policy_oom():
    # QEMU binds guest RAM with mbind: the task policy stays default, so a big guest bound to
    # node 1 is still a candidate (and is killed, uselessly) when a node-0 binding runs out
    # (oom_kill.c mempolicy_in_oom_domain looks at tsk->mempolicy only).
    def story(scope):
        return [Step("app", 6 * GiB, cpu_node=0),
                Step("other", 11 * GiB, policy=Policy.BIND, nodes=frozenset({1}), cpu_node=1,
                     policy_scope=scope),
                Step("vm", 8 * GiB, policy=Policy.BIND, nodes=frozenset({0}),
                     policy_scope=scope)]
    vma = simulate(host(12, 12), story("vma"))
    assert vma.oom_events[0].victim == "other"
    task = simulate(host(12, 12), story("task"))
    assert "other" not in [e.victim for e in task.oom_events]
    assert task.oom_events[0].victim == "vm"  # app and vm tie at 6 GiB: the newer task


def test_preferred_many_takes_its_nodes_down_to_min_before_spilling():
    h = host(4, 4, 4, low_mib=300, min_mib=200)
    s = one(h, size=4 * GiB - 200 * MiB, policy=Policy.PREFERRED_MANY, nodes=frozenset({1}),
            cpu_node=1)
    assert s.placed == {1: 4 * GiB - 200 * MiB}


def test_a_killed_guest_can_start_again_after_it_is_freed():
    steps = [Step("vm", 9 * GiB, policy=Policy.BIND, nodes=frozenset({0})),
             Step("vm", None, action="free"),
             Step("vm", 2 * GiB, policy=Policy.BIND, nodes=frozenset({0}))]
    r = simulate(host(8, 8), steps)
    assert [e.victim for e in r.oom_events] == ["vm"]
    assert r.steps[2].placed == {0: 2 * GiB} and r.steps[2].failed == 0


# -- the swap loop at sizes where playing it round by round would never end -------------------

PiB = 1024**5
EiB = 1024**6


def test_a_1_eib_bind_step_with_1_eib_of_swap_finishes_and_conserves_bytes():
    # every round swaps the task's own 16 GiB out and refills the node: 2**26 rounds, skipped
    h = SimHost((SimNode(0, 16 * GiB, total=16 * GiB), SimNode(1, 16 * GiB, total=16 * GiB)),
                {0: (0, 1), 1: (1, 0)}, EiB)
    r = simulate(h, [Step("vm", EiB, policy=Policy.BIND, nodes=frozenset({0}))])
    s, vm = r.steps[0], r.allocations[0]
    assert s.placed == {0: EiB} and s.failed == 0 and not r.oom_events  # bind stays on node 0
    assert vm.placed == {0: 16 * GiB} and vm.swapped == EiB - 16 * GiB  # RAM + swap hold it
    assert r.swap_used == s.swapped == EiB - 16 * GiB and r.free == {0: 0, 1: 16 * GiB}


def test_a_1_eib_interleave_step_runs_swap_dry_and_is_killed_with_every_byte_accounted():
    nodes = tuple(SimNode(i, (16 + i) * GiB + 4095 * i, 4096 * i, 8192 * i, total=32 * GiB)
                  for i in range(3))
    h = SimHost(nodes, EQUAL3, 64 * PiB)
    r = simulate(h, [Step("app", 8 * GiB, cpu_node=1),
                     Step("vm", EiB, policy=Policy.INTERLEAVE, nodes=frozenset({0, 1, 2}))])
    s = r.steps[1]
    assert sum(s.placed.values()) + s.failed == EiB
    assert s.swapped == 64 * PiB  # all of swap, the app's 8 GiB included
    (event,) = s.oom
    assert event.victim == "vm" and event.victim_bytes > 64 * PiB - 8 * GiB
    app, vm = r.allocations
    # the killed guest's memory and swap are free again; the app stays in swap
    assert vm.oom_killed and vm.placed == {} and vm.swapped == 0
    assert app.placed == {} and app.swapped == 8 * GiB and r.swap_used == 8 * GiB
    assert r.free == {n.id: n.free for n in nodes}


def test_interleave_rounds_repeat_only_while_every_nodes_share_outlasts_its_turn():
    # found by comparing with the round-by-round loop: a 5-byte node shared by several turns
    # hands bytes out one turn at a time, so node 3's turn places far more than the others'
    # and a share of rest // 4 runs out before the rest does
    h = SimHost(tuple(SimNode(i, f, total=1000) for i, f in enumerate((122, 0, 5, 174))),
                {0: (0, 1, 3, 2), 1: (1, 2, 0, 3), 2: (2, 0, 1, 3), 3: (3, 0, 1, 2)}, 2489)
    plan = [Step("a", 1954, policy=Policy.INTERLEAVE, nodes=frozenset({0, 1, 2, 3}))]
    fast = simulate(h, plan)
    with mock.patch.object(sim, "_SKIP_SWAP_CYCLES", False):
        assert simulate(h, plan) == fast
    assert fast.steps[0].swapped > 1954 // 2  # the loop ran many rounds


@pytest.mark.parametrize("heap", [True, False])
def test_a_task_that_freed_its_memory_is_no_oom_victim(heap):
    # A survives B's OOM event (B, the largest, kills itself), then frees all it had: the next
    # event weighs the three C tasks only (ties go to the newest: C2), never A's old size
    h = host(10, total_gib=10)
    plan = [Step("A", 4 * GiB), Step("B", 8 * GiB), Step("A", None, action="free"),
            *(Step(f"C{i}", 3 * GiB) for i in range(4))]
    with mock.patch.object(sim, "_HEAP_OOM", heap):
        r = simulate(h, plan)
    assert [(e.trigger, e.victim) for e in r.oom_events] == [("B", "B"), ("C3", "C2")]


@given(st.tuples(st.text(max_size=5), st.none() | st.integers(0, 1 << 70),
                 st.sampled_from(["alloc", "free"]), st.sampled_from(list(Policy)),
                 st.none() | st.frozensets(st.integers(0, 7)), st.integers(0, 7),
                 st.none() | st.frozensets(st.integers(0, 7)), st.none() | st.integers(1, 1 << 30),
                 st.integers(-1000, 1000), st.sampled_from(["task", "vma"])))
def test_new_step_is_the_dataclass_step(fields):
    made = sim.new_step(*fields)
    step = Step(*fields)
    assert made == step and hash(made) == hash(step) and repr(made) == repr(step)
    assert type(made) is Step


def test_a_retry_that_places_nothing_reclaims_in_batches(monkeypatch):
    """An allocation that cannot use what reclaim frees (here an interleave set outside its
    cpuset: the kernel refuses that mbind, but the engine must still end) swaps at least
    RECLAIM_BATCH a round once a retry placed nothing — as the kernel's direct reclaim asks for
    SWAP_CLUSTER_MAX pages a round — not its own 1 byte a round: Hypothesis found a case
    that took ~10^8 rounds (over ten minutes)."""
    from numaguard.core import simulate as engine

    nodes = tuple(SimNode(i, MiB if i == 2 else 0, total=16 * GiB) for i in range(4))
    host = SimHost(nodes, {i: tuple((i + k) % 4 for k in range(4)) for i in range(4)},
                   swap_free=GiB)
    rounds: list[int] = []
    real = engine._State.swap_out
    monkeypatch.setattr(engine._State, "swap_out",
                        lambda self, where, amount: rounds.append(amount) or
                        real(self, where, amount))
    steps = [Step("t0", 64 * 1024, policy=Policy.BIND, nodes=frozenset({0, 1, 2}), cpu_node=0),
             Step("t1", 1, policy=Policy.INTERLEAVE, nodes=frozenset({0}), cpu_node=0,
                  cpuset_mems=frozenset({2}))]
    result = simulate(host, steps)
    t1 = result.steps[1]
    assert t1.placed == {} and t1.failed == 1
    assert len(rounds) <= 4            # a first 1-byte round, then one batch takes it all
    monkeypatch.setattr(engine, "RECLAIM_BATCH", 1)      # the old rounds: one byte each
    rounds.clear()
    again = simulate(host, steps)
    assert len(rounds) > 60_000 and again.steps[1].failed == 1

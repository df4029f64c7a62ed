"""resolve_numatune: libvirt's numatune defaults and checks (src/conf/numa_conf.c)."""

import pytest

from numaguard.model.policy import (
    MemnodeSpec,
    MemoryMode,
    MemoryPolicy,
    MemorySpec,
    NumatuneSpec,
    Placement,
    resolve_numatune,
)

S, A = Placement.STATIC, Placement.AUTO


def resolve(memory=None, memnodes=(), *, vcpu=S, ncells=0, pinned=False):
    spec = NumatuneSpec(present=memory is not None or bool(memnodes), memory=memory,
                        memnodes=tuple(memnodes))
    return resolve_numatune(spec, vcpu_placement=vcpu, ncells=ncells, has_cpu_pinning=pinned)


def test_no_numatune_is_no_policy():
    r = resolve()
    assert r.memory is None and r.problems == () and r.vcpu_placement is S


def test_nodeset_without_mode_is_implicit_strict():
    r = resolve(MemorySpec(nodeset=frozenset({0})))
    assert r.memory == MemoryPolicy(MemoryMode.STRICT, S, frozenset({0}), implicit_mode=True)


def test_explicit_mode_is_not_implicit():
    r = resolve(MemorySpec(mode="preferred", nodeset=frozenset({0})))
    assert r.memory == MemoryPolicy(MemoryMode.PREFERRED, S, frozenset({0}), implicit_mode=False)


def test_vcpu_auto_without_numatune_means_strict_auto():
    r = resolve(vcpu=A)
    assert r.memory == MemoryPolicy(MemoryMode.STRICT, A, None, implicit_mode=True)
    assert r.vcpu_placement is A


def test_empty_memory_element_with_static_vcpus_sets_nothing():
    # virDomainNumatuneSet returns early when mode, placement and nodeset are all unset.
    assert resolve(MemorySpec()).memory is None


def test_mode_without_nodeset_follows_vcpu_placement():
    bad = resolve(MemorySpec(mode="interleave"))
    assert "must be set if placement is 'static'" in str(bad.problems[0])
    ok = resolve(MemorySpec(mode="interleave"), vcpu=A)
    assert ok.memory == MemoryPolicy(MemoryMode.INTERLEAVE, A, None)


def test_auto_drops_nodeset_and_moves_unpinned_vcpus_to_auto():
    r = resolve(MemorySpec(mode="strict", placement="auto", nodeset=frozenset({1})))
    assert r.memory.nodeset is None and r.memory.placement is A
    assert r.vcpu_placement is A
    pinned = resolve(MemorySpec(placement="auto"), pinned=True)
    assert pinned.vcpu_placement is S


def test_static_placement_needs_nodeset():
    r = resolve(MemorySpec(placement="static"))
    assert r.memory is None and len(r.problems) == 1


def test_memnode_overrides_per_cell():
    r = resolve(MemorySpec(mode="interleave", nodeset=frozenset({0, 1})),
                [MemnodeSpec(1, None, frozenset({1}))], ncells=2)
    assert r.cells[0] == r.memory
    assert r.cells[1] == MemoryPolicy(MemoryMode.STRICT, S, frozenset({1}), implicit_mode=True)


@pytest.mark.parametrize("memory,memnodes,ncells,fragment", [
    (None, [MemnodeSpec(0, "strict", frozenset({0}))], 0, "without any guest NUMA cells"),
    (None, [MemnodeSpec(2, "strict", frozenset({0}))], 2, "cellid 2 does not name"),
    (None, [MemnodeSpec(0, None, frozenset({0})), MemnodeSpec(0, None, frozenset({1}))], 1,
     "multiple memnode elements with cellid 0"),
    (None, [MemnodeSpec(0, "bogus", frozenset({0}))], 1, "unsupported NUMA memory tuning mode"),
    (None, [MemnodeSpec(0, "strict", None)], 1, "missing required attribute 'nodeset'"),
    (MemorySpec(mode="restrictive", nodeset=frozenset({0})),
     [MemnodeSpec(0, "strict", frozenset({0}))], 1, "required in memnode"),
    (MemorySpec(mode="strict", nodeset=frozenset({0})),
     [MemnodeSpec(0, "restrictive", frozenset({0}))], 1, "requires mode 'restrictive'"),
    (None, [MemnodeSpec(0, "restrictive", frozenset({0}))], 1, "requires mode 'restrictive'"),
    (MemorySpec(placement="auto"), [MemnodeSpec(0, "strict", frozenset({0}))], 1,
     "not compatible with automatic"),
    (MemorySpec(mode="fast", nodeset=frozenset({0})), [], 0, "unsupported NUMA memory tuning"),
    (MemorySpec(placement="numad"), [], 0, "unsupported NUMA memory placement"),
])
def test_libvirt_rejections(memory, memnodes, ncells, fragment):
    r = resolve(memory, memnodes, ncells=ncells)
    assert any(fragment in str(p) for p in r.problems), r.problems


def test_restrictive_everywhere_is_fine():
    r = resolve(MemorySpec(mode="restrictive", nodeset=frozenset({0, 1})),
                [MemnodeSpec(0, "restrictive", frozenset({0}))], ncells=2)
    assert r.problems == ()
    assert [c.mode for c in r.cells] == [MemoryMode.RESTRICTIVE, MemoryMode.RESTRICTIVE]


def test_qemu_policy_names():
    assert [m.qemu_policy for m in MemoryMode] == ["bind", "preferred", "interleave", None]
    assert MemoryMode.RESTRICTIVE.binds and MemoryMode.STRICT.binds
    assert not MemoryMode.PREFERRED.binds

"""domxml.edit: byte-exact <numatune> edits — the cases the fixture corpus does not cover
(tests/golden/test_fix_golden.py runs every fixture), each a bug found in review."""

import pytest

from numaguard.domxml.document import DomainDocument
from numaguard.domxml.edit import MemnodeEdit, NumatuneEdit, edit_numatune
from numaguard.domxml.extract import extract_guest
from numaguard.errors import ParseError
from numaguard.model.policy import MemoryMode, Placement

CELLS = (b"  <cpu><numa><cell id='0' cpus='0' memory='1024'/>"
         b"<cell id='1' cpus='1' memory='1024'/><cell id='2' cpus='2' memory='1024'/>"
         b"</numa></cpu>\n")


def domain(numatune: bytes, *, vcpu: bytes = b"<vcpu>3</vcpu>", cells: bytes = CELLS) -> bytes:
    return (b"<domain type='kvm'>\n  <name>x</name>\n  <memory>3072</memory>\n  " + vcpu
            + b"\n" + numatune + cells + b"  <os><type>hvm</type></os>\n</domain>\n")


def edit(data: bytes, e: NumatuneEdit) -> bytes:
    return edit_numatune(DomainDocument(data), e)


def numatune_of(data: bytes) -> bytes:
    start = data.index(b"  <numatune")
    end = data.index(b"</numatune>") + len(b"</numatune>\n")
    return data[start:end]


PREFERRED_0 = NumatuneEdit("preferred", frozenset({0}))


def test_self_closing_numatune_gets_memory_inside() -> None:
    # Was: <memory> inserted after <numatune/>, i.e. a second <domain><memory>; the guest
    # silently kept no policy and re-extraction did not notice.
    out = edit(domain(b"  <numatune/>\n"), PREFERRED_0)
    assert numatune_of(out) == (b"  <numatune>\n    <memory mode='preferred' nodeset='0'/>\n"
                                b"  </numatune>\n")
    policy = extract_guest(DomainDocument(out)).policy
    assert policy is not None and policy.mode is MemoryMode.PREFERRED
    assert out.count(b"<memory") == 2   # <domain><memory> and <numatune><memory>


def test_self_closing_numatune_with_memory_and_memnode() -> None:
    out = edit(domain(b"  <numatune/>\n"),
               NumatuneEdit("preferred", frozenset({0}), (MemnodeEdit(1, "strict",
                                                                      frozenset({1})),)))
    assert numatune_of(out) == (b"  <numatune>\n    <memory mode='preferred' nodeset='0'/>\n"
                                b"    <memnode cellid='1' mode='strict' nodeset='1'/>\n"
                                b"  </numatune>\n")


def test_empty_numatune_keeps_libvirt_order_and_end_tag_line() -> None:
    # Was: memnode before memory, and </numatune> glued to the last new line.
    out = edit(domain(b"  <numatune></numatune>\n"),
               NumatuneEdit("preferred", frozenset({0}), (MemnodeEdit(1, "strict",
                                                                      frozenset({1})),)))
    assert numatune_of(out) == (b"  <numatune>\n    <memory mode='preferred' nodeset='0'/>\n"
                                b"    <memnode cellid='1' mode='strict' nodeset='1'/>\n"
                                b"  </numatune>\n")


def test_new_memnodes_are_inserted_in_cellid_order() -> None:
    data = domain(b"  <numatune>\n    <memnode cellid='2' mode='strict' nodeset='0'/>\n"
                  b"  </numatune>\n")
    out = edit(data, NumatuneEdit(memnodes=(MemnodeEdit(1, "strict", frozenset({0})),
                                            MemnodeEdit(0, "preferred", frozenset({1})))))
    assert numatune_of(out) == (b"  <numatune>\n"
                                b"    <memnode cellid='0' mode='preferred' nodeset='1'/>\n"
                                b"    <memnode cellid='1' mode='strict' nodeset='0'/>\n"
                                b"    <memnode cellid='2' mode='strict' nodeset='0'/>\n"
                                b"  </numatune>\n")


@pytest.mark.parametrize("numatune", [b"", (b"  <numatune>\n    <memory mode='preferred'/>\n"
                                           b"  </numatune>\n")])
def test_mode_only_under_vcpu_auto_needs_no_nodeset(numatune: bytes) -> None:
    # Was refused ("a nodeset is needed"); libvirt places such a <memory> automatically.
    out = edit(domain(numatune, vcpu=b"<vcpu placement='auto'>3</vcpu>"),
               NumatuneEdit("interleave"))
    assert b"<memory mode='interleave'/>" in out
    policy = extract_guest(DomainDocument(out)).policy
    assert policy is not None and policy.placement is Placement.AUTO
    assert policy.mode is MemoryMode.INTERLEAVE


def test_mode_only_with_static_vcpus_still_needs_a_nodeset() -> None:
    with pytest.raises(ParseError, match="a nodeset is needed"):
        edit(domain(b""), NumatuneEdit("interleave"))


def test_placement_auto_drops_the_ignored_nodeset() -> None:
    data = domain(b"  <numatune>\n    <memory mode='strict' placement='auto' nodeset='0'/>\n"
                  b"  </numatune>\n", cells=b"")
    out = edit(data, NumatuneEdit("interleave"))
    assert b"<memory mode='interleave' placement='auto'/>" in out
    with pytest.raises(ParseError, match="placement 'auto'"):
        edit(data, NumatuneEdit("interleave", frozenset({1})))


def test_duplicate_memnode_cells_are_refused() -> None:
    # Was: two replacements of one element, i.e. garbage bytes.
    data = domain(b"  <numatune>\n    <memnode cellid='1' mode='strict' nodeset='0'/>\n"
                  b"  </numatune>\n")
    with pytest.raises(ParseError, match="cell 1 given twice"):
        edit(data, NumatuneEdit(memnodes=(MemnodeEdit(1, "strict", frozenset({0})),
                                          MemnodeEdit(1, "preferred", frozenset({1})))))


def test_quote_follows_the_numatune_being_edited() -> None:
    data = (b'<domain type="kvm">\n  <name>x</name>\n  <memory unit="KiB">1024</memory>\n'
            b'  <vcpu>1</vcpu>\n  <numatune>\n    <memory nodeset=\'0\'/>\n  </numatune>\n'
            b'  <os><type arch="x86_64">hvm</type></os>\n</domain>\n')
    out = edit(data, NumatuneEdit("preferred"))
    assert b"<memory mode='preferred' nodeset='0'/>" in out


def test_crlf_documents_stay_crlf() -> None:
    data = domain(b"").replace(b"\n", b"\r\n")
    out = edit(data, PREFERRED_0)
    assert b"\r\n  <numatune>\r\n    <memory mode='preferred' nodeset='0'/>\r\n  </numatune>" \
        in out
    assert out.count(b"\n") == out.count(b"\r\n")


def test_empty_edit_is_byte_identical() -> None:
    data = domain(b"  <numatune/>\n")
    assert edit(data, NumatuneEdit()) == data

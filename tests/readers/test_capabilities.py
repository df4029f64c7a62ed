"""parse_capabilities on ``virsh capabilities`` documents (tests/fixtures/capabilities).

``test-default.xml`` and ``test-custom-no-cells.xml`` are real output of virsh 9.0.0 (libvirt's
test driver: ``test:///default``, and ``test:///file.xml`` for a file with no cells).  The other
documents are written in ``virCapabilitiesHostNUMAFormat``'s layout with the figures of the
matching sysfs capture, so they must agree with it.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from captured import CAPTURES, FIXTURES, SYS

from numaguard.domxml.capabilities import parse_capabilities
from numaguard.errors import ParseError
from numaguard.model.topology import Host, HostHugepages, Node
from numaguard.readers.sysfs import SysfsReader
from numaguard.units import GiB, KiB, MiB

CAPS = FIXTURES / "capabilities"

#: capabilities fixture -> the sysfs capture it describes
MATCHING = {
    "2node-hugepages": "hugepages",
    "4node": "4node",
    "8node": "8node",
    "memoryless": "memoryless",
    "cpuless": "cpuless",
}


def _parse(name: str) -> Host:
    path = CAPS / f"{name}.xml"
    return parse_capabilities(path.read_bytes(), path=str(path))


@pytest.mark.parametrize("name", sorted(MATCHING))
def test_fixture(name: str) -> None:
    assert _parse(name) == CAPTURES[MATCHING[name]].capabilities_host()


@pytest.mark.parametrize("name", sorted(MATCHING))
def test_agrees_with_sysfs(name: str) -> None:
    caps = _parse(name)
    sysfs = SysfsReader(SYS / MATCHING[name]).read_host()
    assert [n.id for n in caps.nodes] == [n.id for n in sysfs.nodes]
    assert [n.cpus for n in caps.nodes] == [n.cpus for n in sysfs.nodes]
    assert [n.mem_total for n in caps.nodes] == [n.mem_total for n in sysfs.nodes]
    assert caps.distances == sysfs.distances
    for a, b in zip(caps.nodes, sysfs.nodes, strict=True):
        assert [(p.size, p.total) for p in a.hugepages] == [(p.size, p.total) for p in b.hugepages]


def test_hugepage_pools_and_unknowns() -> None:
    host = _parse("2node-hugepages")
    assert host.node(0).hugepages == (HostHugepages(2 * MiB, 16, None),
                                      HostHugepages(GiB, 0, None))
    assert host.node(1).hugepage_pool(GiB) == HostHugepages(GiB, 1, None)
    assert all(n.mem_free is None for n in host.nodes)
    assert (host.swap_total, host.swap_free, host.numa_balancing) == (None, None, None)


def test_memoryless_cell_has_no_memory_element() -> None:
    # libvirt prints <memory> only when it is non-zero.
    assert _parse("memoryless").node(2).mem_total == 0


def test_cpuless_cell() -> None:
    assert _parse("cpuless").node(2).cpus == frozenset()


def test_libvirt_test_driver_default() -> None:
    """Real virsh output: no <distances>, and cell 1's system page is 8 KiB, not 4 KiB."""
    host = _parse("test-default")
    assert host == Host(
        nodes=(
            Node(0, frozenset(range(8)), 2 * GiB, None,
                 (HostHugepages(2 * MiB, 0, None), HostHugepages(GiB, 0, None))),
            Node(1, frozenset(range(8, 16)), 4 * GiB, None,
                 (HostHugepages(2 * MiB, 0, None), HostHugepages(GiB, 0, None))),
        ),
        distances=None,
    )


def test_libvirt_10_cluster_id_is_accepted() -> None:
    """libvirt >= 10.0 adds cluster_id to every <cpu>."""
    data = (CAPS / "4node.xml").read_bytes()
    newer = data.replace(b"die_id='0' core_id", b"die_id='0' cluster_id='0' core_id")
    assert newer != data
    assert parse_capabilities(newer) == _parse("4node")


def _caps(cells: str, num: int | None = None) -> bytes:
    count = cells.count("<cell ") if num is None else num
    return (f"<capabilities>\n<host>\n<cpu><arch>ppc64le</arch></cpu>\n<topology>\n"
            f"<cells num='{count}'>\n{cells}</cells>\n</topology>\n</host>\n</capabilities>\n"
            ).encode()


def test_64k_base_pages() -> None:
    """On ppc64le the system page is 64 KiB; the hugepage pools are 16 MiB and 16 GiB."""
    data = _caps("<cell id='0'>\n<memory unit='KiB'>67108864</memory>\n"
                 "<pages unit='KiB' size='64'>1048576</pages>\n"
                 "<pages unit='KiB' size='16384'>4</pages>\n"
                 "<pages unit='KiB' size='16777216'>0</pages>\n"
                 "<cpus num='1'><cpu id='0'/></cpus>\n</cell>\n")
    node = parse_capabilities(data).node(0)
    assert node.mem_total == 64 * GiB
    assert node.hugepages == (HostHugepages(16 * MiB, 4, None), HostHugepages(16 * GiB, 0, None))


def test_memory_in_other_units() -> None:
    data = _caps("<cell id='0'><memory unit='GiB'>3</memory></cell>\n"
                 "<cell id='1'><memory>1024</memory></cell>\n")
    host = parse_capabilities(data)
    assert host.node(0).mem_total == 3 * GiB
    assert host.node(1).mem_total == 1024 * KiB  # no unit: KiB
    assert host.node(0).cpus == frozenset()


def test_cells_sorted_by_id() -> None:
    data = _caps("<cell id='1'><memory unit='KiB'>1</memory></cell>\n"
                 "<cell id='0'><memory unit='KiB'>2</memory></cell>\n")
    assert [n.id for n in parse_capabilities(data).nodes] == [0, 1]


# -- errors ----------------------------------------------------------------------------------------


def _error(data: bytes, path: str = "caps.xml") -> ParseError:
    with pytest.raises(ParseError) as err:
        parse_capabilities(data, path=path)
    assert err.value.path == path
    return err.value


def test_no_topology() -> None:
    err = _error((CAPS / "no-topology.xml").read_bytes())
    assert "no NUMA topology" in str(err)
    assert (err.line, err.field) == (3, "topology")


def test_test_driver_custom_file_with_no_cells() -> None:
    err = _error((CAPS / "test-custom-no-cells.xml").read_bytes())
    assert "no NUMA topology" in str(err)
    assert err.line == 18


def test_truncated_document() -> None:
    data = (CAPS / "4node.xml").read_bytes()
    cut = data[: data.index(b"<cell id='2'>") + 8]
    err = _error(cut)
    assert "malformed XML" in str(err)
    assert err.line == cut.count(b"\n") + 1


def test_billion_laughs_is_refused_quickly() -> None:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    ]
    bomb = ('<?xml version="1.0"?>\n<!DOCTYPE capabilities [\n' + "\n".join(entities)
            + "\n]>\n<capabilities><host><cpu>&lol9;</cpu></host></capabilities>\n").encode()
    start = time.monotonic()
    err = _error(bomb)
    assert time.monotonic() - start < 1.0
    assert "DOCTYPE" in str(err)
    assert err.line == 2


def test_external_entity_is_refused() -> None:
    xxe = (b"<?xml version='1.0'?>\n<!DOCTYPE c [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>\n"
           b"<capabilities><host>&e;</host></capabilities>\n")
    assert "DOCTYPE" in str(_error(xxe))


def test_not_capabilities() -> None:
    err = _error(b"<domain type='kvm'><name>vm</name></domain>")
    assert "not a capabilities XML" in str(err)


def test_cells_num_mismatch() -> None:
    err = _error(_caps("<cell id='0'/>\n", num=2))
    assert (err.field, err.line) == ("num", 5)


def test_missing_distance() -> None:
    data = _caps("<cell id='0'><distances><sibling id='0' value='10'/>"
                 "<sibling id='1' value='21'/></distances></cell>\n"
                 "<cell id='1'><distances><sibling id='1' value='10'/></distances></cell>\n")
    err = _error(data)
    assert "cell 1 gives no distance to cell(s) [0]" in str(err)
    assert err.line == 7


def test_bad_cell_id() -> None:
    err = _error(_caps("<cell id='zero'/>\n"))
    assert (err.field, err.line) == ("id", 6)


def test_bad_memory() -> None:
    err = _error(_caps("<cell id='0'>\n<memory unit='KiB'>lots</memory>\n</cell>\n"))
    assert (err.field, err.line) == ("memory", 7)


def test_bad_pages_count() -> None:
    err = _error(_caps("<cell id='0'>\n<pages unit='KiB' size='2048'>-1</pages>\n</cell>\n"))
    assert (err.field, err.line) == ("pages", 7)


def test_cpus_num_mismatch() -> None:
    err = _error(_caps("<cell id='0'><cpus num='2'><cpu id='0'/></cpus></cell>\n"))
    assert err.field == "num"


# -- the fixtures are what libvirt's schema allows -----------------------------------------------

VALID = sorted(p.name for p in CAPS.glob("*.xml") if p.name != "test-custom-no-cells.xml")


@pytest.mark.skipif(shutil.which("virt-xml-validate") is None or shutil.which("xmllint") is None,
                    reason="virt-xml-validate (libvirt-clients) and xmllint (libxml2-utils) "
                           "are not installed")
@pytest.mark.parametrize("name", VALID)
def test_fixture_validates_against_libvirt_schema(name: str) -> None:
    result = subprocess.run(["virt-xml-validate", str(CAPS / name), "capability"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_capabilities_fixture_is_covered() -> None:
    covered = {f"{n}.xml" for n in MATCHING} | {"test-default.xml", "no-topology.xml",
                                                "test-custom-no-cells.xml"}
    assert {p.name for p in CAPS.glob("*.xml")} == covered


def test_path_is_optional() -> None:
    with pytest.raises(ParseError) as err:
        parse_capabilities(b"<capabilities>")
    assert err.value.path is None
    assert str(err.value).startswith("line 1: ")


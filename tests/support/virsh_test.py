"""libvirt's test driver as a sandbox for printed ``virsh`` lines.

``virsh -c test:///ABS/PATH.xml`` opens libvirt's in-process mock hypervisor with the
domains a ``<node>`` document holds (libvirt ``src/test/test_driver.c``, format as in libvirt's
``examples/xml/test/testnode.xml``).  The driver's state lives in the connection, so a change
and its check must run in one virsh process: ``virsh -c URI 'cmd1; cmd2'`` (virsh runs the
commands of one string in order; its exit status is the last command's, so a marker ``echo``
between them tells whose output is whose).

What the driver does not model, measured with virsh 9.0.0 here:
- it reports 8 host CPUs to ``virNodeGetCPUMap`` whatever the ``<cpu>`` block says, and virsh
  refuses a ``vcpupin``/``emulatorpin`` cpulist naming CPU 8 or above ("CPU 49 in cpulist
  '40-49' exceed the maxcpu 8") before asking the driver;
- a custom node file cannot define host NUMA cells, and ``numatune --nodeset`` accepts any
  node number (the qemu driver refuses nodes the host lacks at start);
- domains of type 'kvm' load unchanged (the node file is parsed without a capabilities check),
  so the fixture XML is kept byte for byte apart from dropping its XML declaration.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

VIRSH = "virsh"
#: CPUs the test driver reports (testNodeGetCPUMap); see the module docstring.
TEST_DRIVER_CPUS = 8
_MARK = "@@numaguard-virsh-test@@"


def node_document(domain_xmls: list[str]) -> str:
    """A test-driver ``<node>`` holding *domain_xmls* (their XML declarations dropped)."""
    body = [re.sub(r"^\s*<\?xml[^>]*\?>\s*", "", x) for x in domain_xmls]
    return "<node>\n" + "\n".join(body) + "\n</node>\n"


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Session:
    """The outputs of one ``virsh 'a; echo MARK; b; …'`` run, split at the markers."""
    rc: int
    parts: list[str]
    stderr: str


class TestDriver:
    """One test-driver XML file (a fresh state for every virsh process that opens it)."""

    __test__ = False  # not a pytest class

    def __init__(self, path: Path, domain_xmls: list[str]):
        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.document = node_document(domain_xmls)
        self.path.write_text(self.document)
        self.uri = f"test://{self.path}"

    def run(self, args: list[str], cwd: str | os.PathLike | None = None,
            timeout: float = 30) -> Result:
        """``virsh -c URI ARGS`` (one command, argv as a shell would split it)."""
        p = subprocess.run([VIRSH, "-c", self.uri, *args], cwd=cwd, capture_output=True,
                           text=True, timeout=timeout, check=False)
        return Result(p.returncode, p.stdout, p.stderr)

    def session(self, commands: list[list[str]], cwd: str | os.PathLike | None = None,
                timeout: float = 30) -> Session:
        """Run *commands* in one virsh process; ``parts[i]`` is the stdout of command i."""
        script = f"; echo {_MARK}; ".join(shlex.join(c) for c in commands)
        p = subprocess.run([VIRSH, "-c", self.uri, script], cwd=cwd, capture_output=True,
                           text=True, timeout=timeout, check=False)
        return Session(p.returncode, p.stdout.split(_MARK + "\n"), p.stderr)

    def ok(self) -> Result:
        """``list --all``: the document loads (every domain parsed)."""
        return self.run(["list", "--all", "--name"])


def options(subcommand: str) -> dict[str, bool]:
    """The options ``virsh help SUBCOMMAND`` lists: name -> takes a value.

    ``[--domain] <string>`` (a positional that may be named) and ``--mode <string>`` take a
    value; ``--config`` does not."""
    p = subprocess.run([VIRSH, "help", subcommand], capture_output=True, text=True, timeout=30,
                       check=False)
    if p.returncode:
        return {}
    text = p.stdout.split("OPTIONS", 1)[-1]
    out: dict[str, bool] = {}
    for m in re.finditer(r"^\s+\[?(--[a-z][a-z0-9-]*)\]?( <\w+>)?", text, re.MULTILINE):
        out[m.group(1)] = bool(m.group(2))
    return out

"""model/ and core/ stay pure: no files, no XML, no libvirt, no printing (ARCHITECTURE.md)."""

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "numaguard"
FORBIDDEN_MODULES = {"os", "io", "sys", "pathlib", "subprocess", "shutil", "glob", "socket",
                     "lxml", "libvirt", "prometheus_client", "rich", "matplotlib"}
FORBIDDEN_PACKAGES = ("numaguard.readers", "numaguard.writers", "numaguard.cli",
                      "numaguard.exporter", "numaguard.report", "numaguard.domxml")
FORBIDDEN_CALLS = {"open", "print", "input", "__import__", "exec", "eval"}


#: pure modules outside model/ and core/ that the core imports
PURE_TOP = ("errors.py", "units.py", "cpuset.py", "limits.py", "display.py")


def pure_files():
    return sorted([*(p for d in ("model", "core") for p in (SRC / d).rglob("*.py")),
                   *(SRC / name for name in PURE_TOP)])


def violations(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in FORBIDDEN_MODULES or name.startswith(FORBIDDEN_PACKAGES):
                found.append(f"{path.name}:{node.lineno} imports {name}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in FORBIDDEN_CALLS:
            found.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
    return found


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_pure_modules_touch_nothing(path):
    assert violations(path) == []


def test_the_check_catches_an_edge_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom numaguard.readers.sysfs import SysfsReader\nprint(1)\n")
    assert len(violations(bad)) == 3


def test_there_are_pure_modules_to_check():
    assert len(pure_files()) >= 4

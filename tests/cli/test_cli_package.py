"""numaguard.cli is a package with one module per command: each command's module is imported
only when that command runs, and its function is reached through the package, so replacing
``cli.cmd_topology`` (the hostile tests do) still takes effect."""

import importlib
import pathlib
import subprocess
import sys

import pytest

from numaguard import __version__, cli

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTICLE = ROOT / "examples" / "article-host"


def test_a_command_replaced_on_the_package_is_the_one_main_runs(monkeypatch, capsys):
    seen = []

    def replaced(args):
        seen.append((args.command, args.source, args.format))
        return 7

    monkeypatch.setattr(cli, "cmd_topology", replaced)
    assert cli.main(["topology", str(ARTICLE), "--format", "json"]) == 7
    assert seen == [("topology", str(ARTICLE), "json")]
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("module,name", [(entry[0], entry[1]) for entry in cli.COMMANDS])
def test_every_command_is_its_modules_function(module, name):
    mod = importlib.import_module(f"numaguard.cli.{module}")
    assert getattr(cli, f"cmd_{name}") is getattr(mod, f"cmd_{name}")
    assert getattr(cli, f"_{name}_arguments") is getattr(mod, f"_{name}_arguments")
    required = {"snapshot": ["DIR"], "fix": ["vm1"]}.get(name, [])
    assert cli.build_parser(name).parse_args([name, *required]).func is getattr(mod, f"cmd_{name}")


def test_an_unknown_attribute_is_still_an_attribute_error():
    for name in ("cmd_nothing", "_nothing_arguments", "nothing"):
        with pytest.raises(AttributeError, match=name):
            getattr(cli, name)


@pytest.mark.parametrize("argv,modules", [
    (["topology", "examples/article-host", "--format", "json"], ["topology"]),
    (["guests", "examples/article-host", "--format", "json"], ["common", "guests"]),
    (["explain", "NG101"], ["common", "explain"]),
    (["rules"], ["common", "explain"]),
])
def test_a_command_imports_only_its_own_module(argv, modules):
    """Start-up: the modules of the commands not being run are never imported."""
    code = ("import sys, io, contextlib\nfrom numaguard import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    rc = cli.main({argv!r})\n"
            "print(rc, *sorted(m for m in sys.modules if m.startswith('numaguard.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.split() == ["0", *(f"numaguard.cli.{m}" for m in modules)]


def test_python_m_numaguard_cli_is_the_command_line():
    out = subprocess.run([sys.executable, "-m", "numaguard.cli", "--version"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert (out.returncode, out.stdout, out.stderr) == (0, f"numaguard {__version__}\n", "")

"""Collect every command numaguard prints for the user to paste.

For each source (tests/commands/hosts.py) the real CLI runs ``numaguard audit SOURCE`` twice:
in text (command lines are the lines ``$ …`` under a finding's fix) and with ``--format json``
(every ``commands`` list anywhere in the document, e.g. ``findings[].fix.commands``).  Each
``numaguard fix …`` line found is then run with ``--virsh`` and its output lines are collected
too (a ``# first save it: CMD`` comment names a command to run before the ``virsh define``).
Commands are deduplicated per source; each keeps every place it came from.

    python -m tests.commands.collect --count     # build the hosts, collect, run every check
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.commands.hosts import Source

#: output flags of ``numaguard fix`` (mutually exclusive)
FIX_OUTPUTS = ("--diff", "--xml", "--virsh", "--write", "--apply")
WORKERS = max(2, (os.cpu_count() or 2) * 2)


def numaguard_bin(directory: Path) -> Path:
    """A ``numaguard`` on PATH that is this interpreter's ``python -m numaguard`` (so the
    code under test, with the inherited PYTHONPATH), for running printed lines verbatim."""
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / "numaguard"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m numaguard \"$@\"\n")
    shim.chmod(0o755)
    return directory


def shell_env(bindir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env.pop("NUMAGUARD_DEBUG", None)
    env.setdefault("COLUMNS", "120")
    return env


@dataclass(frozen=True)
class Origin:
    rule: str       # the rule ID(s) that printed it ("?" when the text does not say)
    via: str        # "text", "json", or "fix --virsh of: LINE"
    siblings: tuple[str, ...] = ()  # the other lines of the same fix, in order


@dataclass
class Printed:
    """One distinct command printed for one source."""
    text: str
    source: Source
    origins: list[Origin] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """numaguard, virsh, comment or other (the first word of the line)."""
        s = self.text.lstrip()
        if s.startswith("#"):
            return "comment"
        word = s.split(None, 1)[0] if s.split() else ""
        return word if word in ("numaguard", "virsh") else "other"

    @property
    def rules(self) -> str:
        return ",".join(sorted({o.rule for o in self.origins}))

    def where(self) -> str:
        vias = sorted({o.via if not o.via.startswith("fix") else "fix --virsh"
                       for o in self.origins})
        return f"{self.source.name} [{self.rules}; {', '.join(vias)}]"


@dataclass
class Collected:
    source: Source
    commands: list[Printed]
    doc: dict  # the audit's JSON document
    audit_rc: int
    error: str = ""

    @property
    def host(self) -> dict:
        """The audit's JSON ``host`` object (node ids, CPUs)."""
        return self.doc.get("host", {})


def run_cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 60
            ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "numaguard", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


_RULE = re.compile(r"^\s*(NG\d{3}(?:[ ,+/]+NG\d{3})*)\b")


def text_commands(stdout: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(command, rule, siblings) for each ``$ `` line of a text report, the rule being the
    last rule header seen above it."""
    out: list[tuple[str, str, list[str]]] = []
    rule, block, last = "?", [], -1
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        m = _RULE.match(line)
        if m:
            rule = ",".join(re.findall(r"NG\d{3}", m.group(1)))
        s = line.lstrip()
        if s.startswith("$ "):
            if last != i - 1:
                block = []
            block.append(s[2:])
            out.append((s[2:], rule, block))
            last = i
    return [(c, r, tuple(b)) for c, r, b in out]


def json_commands(doc: object, rule: str = "?") -> list[tuple[str, str, tuple[str, ...]]]:
    """(command, rule, siblings) for every string of every ``commands`` list in *doc*."""
    out = []
    if isinstance(doc, dict):
        here = doc.get("rule") or doc.get("rules") or rule
        if isinstance(here, list):
            here = ",".join(map(str, here))
        cmds = doc.get("commands")
        if isinstance(cmds, list):
            sib = tuple(c for c in cmds if isinstance(c, str))
            out += [(c, str(here), sib) for c in sib]
        for k, v in doc.items():
            if k != "commands":
                out += json_commands(v, str(here))
    elif isinstance(doc, list):
        for v in doc:
            out += json_commands(v, rule)
    return out


def virsh_output_commands(stdout: str) -> list[str]:
    """The commands of a ``numaguard fix --virsh`` output: every line that is not a comment,
    and a command a comment asks to run first (``# first save it: numaguard … > F``)."""
    out = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            m = re.search(r":\s+((?:numaguard|virsh)\s.*)$", line)
            if m:
                out.append(m.group(1))
            continue
        out.append(line)
    return out


def fix_output_flag(tokens: list[str]) -> str | None:
    return next((t for t in tokens if t in FIX_OUTPUTS), None)


def is_fix(text: str) -> bool:
    try:
        t = shlex.split(text)
    except ValueError:
        return False
    return t[:2] == ["numaguard", "fix"]


def collect_source(source: Source, env: dict[str, str]) -> Collected:
    """Audit *source* in text and JSON, then expand its ``numaguard fix`` lines with --virsh."""
    seen: dict[str, Printed] = {}

    def add(cmd: str, origin: Origin) -> Printed:
        p = seen.setdefault(cmd, Printed(cmd, source))
        if origin not in p.origins:
            p.origins.append(origin)
        return p

    text = run_cli(["audit", *source.args], source.cwd, env)
    js = run_cli(["audit", "--format", "json", *source.args], source.cwd, env)
    if text.returncode not in (0, 1) or js.returncode not in (0, 1):
        return Collected(source, [], {}, text.returncode,
                         (text.stderr or js.stderr).strip().splitlines()[-1:][0]
                         if (text.stderr or js.stderr).strip() else "no output")
    for cmd, rule, sib in text_commands(text.stdout):
        add(cmd, Origin(rule, "text", sib))
    doc = json.loads(js.stdout)
    for cmd, rule, sib in json_commands(doc):
        add(cmd, Origin(rule, "json", sib))
    for p in [p for p in seen.values() if is_fix(p.text)]:
        tokens = shlex.split(p.text)
        if fix_output_flag(tokens):
            continue
        r = subprocess.run(["bash", "-c", p.text + " --virsh"], cwd=source.cwd, env=env,
                           capture_output=True, text=True, timeout=60, check=False)
        if r.returncode:
            continue  # the line itself fails: test_numaguard_lines_run reports it
        lines = virsh_output_commands(r.stdout)
        for line in lines:
            add(line, Origin(p.rules, f"fix --virsh of: {p.text}", tuple(lines)))
    return Collected(source, list(seen.values()), doc, text.returncode)


def collect(sources: list[Source], env: dict[str, str]) -> list[Collected]:
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(lambda s: collect_source(s, env), sources))


def kinds(collected: list[Collected]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in collected:
        for p in c.commands:
            out[p.kind] = out.get(p.kind, 0) + 1
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    from tests.commands import checks

    ap = argparse.ArgumentParser(prog="python -m tests.commands.collect")
    ap.add_argument("--count", action="store_true",
                    help="print how many commands of each kind were run and checked")
    ap.add_argument("--list", action="store_true", help="print every command and its origin")
    ap.add_argument("--failures", action="store_true", help="print every failure")
    ns = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="numaguard-commands-") as tmp:
        report = checks.run_all(Path(tmp))
        if ns.list:
            for c in report.collected:
                for p in c.commands:
                    print(f"{p.where()}\t{p.text}")
        if ns.failures:
            for f in report.failures:
                print(f.line())
        if ns.count or not (ns.list or ns.failures):
            print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())

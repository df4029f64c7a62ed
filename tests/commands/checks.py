"""Hold every printed command to account: run it, or check it where running it would change
this machine.

- ``numaguard …``: run as printed (``bash -c LINE`` in the directory the audit ran in, with a
  ``numaguard`` on PATH that is this interpreter's ``python -m numaguard``); exit 0 (an
  ``audit`` line may exit 1: findings, its documented alarm).  A ``fix`` line must change
  something: its ``--diff`` output is a unified diff.
- ``virsh …``: run with ``-c test:///WORK/SOURCE.xml`` (libvirt's test driver holding the
  source's domains, tests/support/virsh_test.py), exit 0 and no ``error:``; then in one virsh
  process ``dumpxml --inactive G; LINE; dumpxml --inactive G`` must show the change.
- every line: shlex parses it, ``bash -n`` accepts it, no empty argument, no option that needs
  a value followed by another option or nothing, every option exists (``numaguard SUB --help``,
  ``virsh help SUB``), nodesets and cpulists name nodes and CPUs the audited host has.
- lines that write a file (``echo … > /ABS/PATH``) run with the path moved under a scratch
  directory (the file must exist on the audited host when it is under /sys or /proc);
  ``sysctl -w``, ``fallocate``, ``mkswap``, ``swapon``, package installs are checked statically
  only.  Swap advice must be persistent: its fix has an ``/etc/fstab`` line.
- a ``numaguard`` line from an audit of a SOURCE (never this machine here) names that source:
  its FILE lies inside the source, or ``--host SOURCE`` is given.
"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from numaguard.cpuset import parse_bitmap
from tests.commands import collect as col
from tests.commands.hosts import Source, all_sources
from tests.support import virsh_test

# --- failures ---------------------------------------------------------------------------------

CAUSES = {
    "parse": "does not parse (shlex / bash -n)",
    "empty-arg": "an empty argument",
    "missing-value": "an option that needs a value is followed by another option or nothing",
    "unknown-option": "an option that does not exist",
    "no-source": "names no source: pasted, it acts on this machine (/etc/libvirt/qemu)",
    "numaguard-fails": "numaguard exits non-zero",
    "fix-no-change": "numaguard fix changes nothing (empty --diff)",
    "virsh-fails": "virsh (test driver) refuses it",
    "virsh-no-change": "virsh accepts it but the definition does not change as the line says",
    "host-lacks": "names host nodes or CPUs the audited host does not have",
    "file-write": "the file it writes is wrong or not on the audited host",
    "swap-not-persistent": "swap advice without an /etc/fstab line (gone at the next boot)",
    "prose-option": "the fix text names a numaguard option that does not exist",
}


@dataclass(frozen=True)
class Failure:
    cause: str
    text: str
    where: str
    detail: str

    def line(self) -> str:
        return f"[{self.cause}] {self.text!r} from {self.where}: {self.detail}"


@dataclass
class Report:
    collected: list[col.Collected]
    failures: list[Failure] = field(default_factory=list)
    ran: dict[str, int] = field(default_factory=dict)

    def by_cause(self, *causes: str) -> list[Failure]:
        return [f for f in self.failures if f.cause in causes]

    def summary(self) -> str:
        total = sum(len(c.commands) for c in self.collected)
        lines = [f"sources: {len(self.collected)}; distinct commands (per source): {total}",
                 "ran: " + ", ".join(f"{k} {v}" for k, v in sorted(self.ran.items())),
                 "failures: " + (", ".join(
                     f"{k} {len(self.by_cause(k))}" for k in CAUSES if self.by_cause(k))
                     or "none")]
        skipped = [f"{c.source.name} ({c.error})" for c in self.collected if c.error]
        if skipped:
            lines.append("sources the audit refused (exit 2, no commands): " + "; ".join(skipped))
        return "\n".join(lines)


def _fail(out: list[Failure], cause: str, p: col.Printed, detail: str) -> None:
    out.append(Failure(cause, p.text, p.where(), detail))


# --- option tables ----------------------------------------------------------------------------

@functools.cache
def numaguard_options(sub: str) -> dict[str, bool] | None:
    """``numaguard SUB --help``'s options: name -> takes a value; None: no such sub-command."""
    p = subprocess.run([sys.executable, "-m", "numaguard", sub, "--help"], capture_output=True,
                       text=True, timeout=60, check=False)
    if p.returncode:
        return None
    out: dict[str, bool] = {}
    body = p.stdout.split("options:", 1)[-1]
    for m in re.finditer(r"^ {2}(?:-\w, )?(--[a-z][\w-]*)(?:[ =](\S+))?", body, re.MULTILINE):
        out[m.group(1)] = bool(m.group(2))
    return out


@functools.cache
def numaguard_subcommands() -> tuple[str, ...]:
    p = subprocess.run([sys.executable, "-m", "numaguard", "--help"], capture_output=True,
                       text=True, timeout=60, check=False)
    m = re.search(r"\{([\w,-]+)\}", p.stdout)
    if m:
        return tuple(m.group(1).split(","))
    # argparse with metavar=COMMAND lists the sub-commands indented under it
    found = tuple(re.findall(r"^ {4}([a-z][\w-]*) ", p.stdout, re.MULTILINE))
    assert found, p.stdout  # the check must not pass by finding no sub-command
    return found


@functools.cache
def virsh_options(sub: str) -> dict[str, bool]:
    return virsh_test.options(sub)


# --- static checks ----------------------------------------------------------------------------

@functools.cache
def bash_syntax(text: str) -> str:
    """``bash -n``'s complaint about *text* ("" when it accepts it)."""
    r = subprocess.run(["bash", "-n", "-c", text], capture_output=True, text=True, timeout=30,
                       check=False)
    return r.stderr.strip() if r.returncode else ""

def code_part(text: str) -> str:
    """*text* without a trailing shell comment."""
    try:
        want = shlex.split(text, comments=True)
    except ValueError:
        return text
    if want == shlex.split(text):
        return text
    for m in re.finditer(r"\s#", text):
        try:
            if shlex.split(text[:m.start()]) == want:
                return text[:m.start()]
        except ValueError:
            continue
    return text


def _words(tokens: list[str]) -> list[list[str]]:
    """The simple commands of a token list split at ``&&``, ``||``, ``;`` and ``|``."""
    out: list[list[str]] = [[]]
    for t in tokens:
        if t in ("&&", "||", ";", "|"):
            out.append([])
        else:
            out[-1].append(t)
    return [w for w in out if w]


def _option_checks(out: list[Failure], p: col.Printed, words: list[str]) -> None:
    prog = words[0]
    if prog == "numaguard":
        if len(words) < 2:
            return
        opts = numaguard_options(words[1])
        if opts is None:
            _fail(out, "unknown-option", p, f"no sub-command {words[1]!r}")
            return
        known, rest = dict(opts), words[2:]
    elif prog == "virsh":
        if len(words) < 2:
            return
        known = virsh_options(words[1])
        if not known:
            _fail(out, "unknown-option", p, f"virsh has no command {words[1]!r}")
            return
        rest = words[2:]
    else:
        return
    for i, t in enumerate(rest):
        if not t.startswith("--") or t == "--":
            continue
        name = t.split("=", 1)[0]
        if name not in known:
            _fail(out, "unknown-option", p, f"{prog} {words[1]} has no option {name}")
            continue
        if known[name] and "=" not in t:
            nxt = rest[i + 1] if i + 1 < len(rest) else None
            if nxt is None or nxt.startswith("--") or nxt in (">", ">>"):
                _fail(out, "missing-value", p,
                      f"{name} needs a value, got {nxt if nxt is not None else 'nothing'}")


def static_checks(p: col.Printed, host: dict) -> list[Failure]:
    out: list[Failure] = []
    try:
        tokens = shlex.split(p.text, comments=True)
    except ValueError as e:
        _fail(out, "parse", p, f"shlex: {e}")
        return out
    err = bash_syntax(p.text)
    if err:
        _fail(out, "parse", p, "bash -n: " + err)
    if p.kind == "comment":
        return out
    code = code_part(p.text)
    if "" in tokens:
        _fail(out, "empty-arg", p, "an argument is the empty string")
    if re.search(r"\S {2,}\S", code):
        _fail(out, "empty-arg", p, "two spaces between arguments: an empty value was printed")
    if code != code.rstrip():
        _fail(out, "empty-arg", p, "trailing blank: the last value was printed empty")
    for t in tokens:
        if re.search(r"(^|[^:]):$|::|=$", t) and t not in (":",):
            _fail(out, "empty-arg", p, f"{t!r} ends in an empty field")
    for words in _words(tokens):
        _option_checks(out, p, words)
        _host_checks(out, p, words, host)
    return out


def _host_checks(out: list[Failure], p: col.Printed, words: list[str], host: dict) -> None:
    """Nodesets and cpulists of virsh/numaguard lines within the audited host."""
    nodes = {n["id"] for n in host.get("nodes", [])}
    cpus = {c for n in host.get("nodes", []) for c in n.get("cpus", [])}
    if not nodes:
        return

    def check(what: str, text: str, have: set[int]) -> None:
        try:
            ids = set(parse_bitmap(text))
        except Exception as e:  # noqa: BLE001 - any parse error is the finding
            _fail(out, "empty-arg" if not text else "parse", p, f"{what} {text!r}: {e}")
            return
        if ids - have:
            _fail(out, "host-lacks", p, f"{what} {text} names {sorted(ids - have)}; the host "
                  f"has {sorted(have) if len(have) < 20 else f'{len(have)} of them'}")

    for i, t in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if t == "--nodeset" and nxt and not nxt.startswith("--"):
            check("nodeset", nxt, nodes)
        if t == "--memnode" and nxt.count(":") == 2 and nxt.split(":")[2]:
            check("memnode nodeset", nxt.split(":")[2], nodes)
    if words[:2] == ["virsh", "vcpupin"] and len(words) > 4:
        check("cpulist", words[4], cpus)
    if words[:2] == ["virsh", "emulatorpin"] and len(words) > 3:
        check("cpulist", words[3], cpus)


def swap_checks(p: col.Printed) -> list[Failure]:
    out: list[Failure] = []
    if not re.search(r"\b(swapon|mkswap)\b", p.text):
        return out
    for o in p.origins:
        if not any("/etc/fstab" in s for s in o.siblings + (p.text,)):
            _fail(out, "swap-not-persistent", p, f"its fix ({o.via}, {o.rule}) has no "
                  "/etc/fstab line: the swap file is off again after the next boot")
            break
    return out


def source_checks(p: col.Printed) -> list[Failure]:
    """A numaguard line from an audit of a source names that source."""
    out: list[Failure] = []
    try:
        words = shlex.split(p.text, comments=True)
    except ValueError:
        return out
    if words[:1] != ["numaguard"] or len(words) < 2 or words[1] in ("explain",):
        return out
    opts = numaguard_options(words[1]) or {}
    positional, host = [], None
    it = iter(range(2, len(words)))
    for i in it:
        t = words[i]
        if t in (">", ">>", "|", "&&"):
            break
        if t.startswith("--"):
            name = t.split("=", 1)[0]
            if opts.get(name) and "=" not in t and i + 1 < len(words):
                if name == "--host":
                    host = words[i + 1]
                next(it, None)
            elif name == "--host" and "=" in t:
                host = t.split("=", 1)[1]
            continue
        positional.append(t)
    roots = p.source.paths
    cwd = p.source.cwd

    def inside(arg: str) -> bool:
        q = (cwd / arg).resolve()
        return q.exists() and any(q == r or r in q.parents for r in roots)

    if words[1] == "fix":
        if any(inside(a) for a in positional) or (host is not None and inside(host)):
            return out
        _fail(out, "no-source", p, f"neither the guest's XML under {' '.join(p.source.args)} "
              f"nor --host {p.source.args[0]}")
    elif not any(inside(a) for a in positional):
        _fail(out, "no-source", p, f"no SOURCE: it audits this machine, not "
              f"{' '.join(p.source.args)}")
    return out


# --- running ----------------------------------------------------------------------------------

_DIFF = re.compile(r"^--- .*\n\+\+\+ .*\n@@ ", re.MULTILINE)


def run_numaguard(p: col.Printed, env: dict[str, str]) -> list[Failure]:
    out: list[Failure] = []
    try:
        words = shlex.split(p.text, comments=True)
    except ValueError:
        return out
    if "--apply" in words:
        return out  # talks to libvirt: checked statically only
    r = subprocess.run(["bash", "-c", p.text], cwd=p.source.cwd, env=env, capture_output=True,
                       text=True, timeout=60, check=False)
    ok = (0, 1) if words[1:2] == ["audit"] else (0,)
    err = r.stderr.strip().splitlines()
    if "unrecognized arguments" in r.stderr:
        _fail(out, "unknown-option", p, err[-1] if err else "unrecognized arguments")
    if r.returncode not in ok:
        _fail(out, "numaguard-fails", p, f"exit {r.returncode}: "
              + (err[-1] if err else r.stdout.strip()[-200:]))
        return out
    if words[1:2] == ["fix"] and "--recommended" not in words:
        flag = col.fix_output_flag(words)
        text = r.stdout
        if flag not in (None, "--diff"):
            # the same line without its output option and its redirection (`--xml > F`)
            cut = words.index(">") if ">" in words else len(words)
            variant = [w for w in words[:cut] if w != flag] + ["--diff"]
            text = subprocess.run(["bash", "-c", shlex.join(variant)], cwd=p.source.cwd,
                                  env=env, capture_output=True, text=True, timeout=60,
                                  check=False).stdout
        if not _DIFF.search(text):
            _fail(out, "fix-no-change", p, "its --diff output holds no diff: "
                  + (text.strip().splitlines() or ["(empty)"])[0])
    return out


def _domain(xml: str) -> etree._Element | None:
    xml = xml.strip()
    if not xml:
        return None
    try:
        return etree.fromstring(xml.encode())
    except etree.XMLSyntaxError:
        return None


def _same_set(a: str | None, b: str) -> bool:
    try:
        return a is not None and parse_bitmap(a) == parse_bitmap(b)
    except Exception:  # noqa: BLE001
        return False


def _took(words: list[str], after: etree._Element) -> str | None:
    """Why *after* does not show what the virsh line *words* asked for (None: it does)."""
    sub, args = words[1], words[2:]
    pos = [a for a in args if not a.startswith("--")]
    opt = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
    if sub == "numatune":
        mem = after.find("numatune/memory")
        if mem is None:
            return "no <numatune><memory> after it"
        if "--mode" in opt and mem.get("mode", "strict") != opt["--mode"]:
            return f"mode is {mem.get('mode')!r}, not {opt['--mode']!r}"
        if "--nodeset" in opt and not _same_set(mem.get("nodeset"), opt["--nodeset"]):
            return f"nodeset is {mem.get('nodeset')!r}, not {opt['--nodeset']!r}"
    elif sub == "vcpupin" and len(pos) >= 3:
        pin = after.find(f"cputune/vcpupin[@vcpu='{pos[1]}']")
        if pin is None or not _same_set(pin.get("cpuset"), pos[2]):
            return f"vCPU {pos[1]} is not pinned to {pos[2]}"
    elif sub == "emulatorpin" and len(pos) >= 2:
        pin = after.find("cputune/emulatorpin")
        if pin is None or not _same_set(pin.get("cpuset"), pos[1]):
            return f"the emulator is not pinned to {pos[1]}"
    elif sub == "setvcpus" and len(pos) >= 2:
        v = after.find("vcpu")
        now = v.get("current", v.text) if v is not None else None
        if now is None or now.strip() != pos[1]:
            return f"<vcpu> current is {now}, not {pos[1]}"
    return None


def _inactive(drv: virsh_test.TestDriver, guest: str, cwd: Path) -> etree._Element | None:
    return _domain(drv.run(["dumpxml", "--inactive", guest], cwd=cwd).stdout)


def _offline_vcpu(drv: virsh_test.TestDriver, words: list[str], cwd: Path
                  ) -> list[tuple[str, str]] | None:
    """A vCPU beyond the running count cannot be pinned live on the test driver; with --config
    libvirt pins any vCPU below the ``<vcpu>`` maximum.  None: the vCPU is online."""
    dom = _inactive(drv, words[2], cwd)
    v = dom.find("vcpu") if dom is not None else None
    if v is None or not words[3].isdigit():
        return None
    vcpu, top = int(words[3]), int(v.text or 0)
    if vcpu < int(v.get("current", top)):
        return None
    return [] if vcpu < top else [("virsh-fails", f"vCPU {vcpu} does not exist ({top} vCPUs)")]


def _check_live_pin(drv: virsh_test.TestDriver, guest: str, words: list[str],
                    printed: list[str], cwd: Path) -> list[tuple[str, str]]:
    """``vcpupin G V C`` run live; the affinity read back, and the persistent XML compared
    with what the printed line asks (a pin the definition already has changes nothing)."""
    s = drv.session([words[1:], ["vcpupin", guest]], cwd=cwd)
    if len(s.parts) < 2:
        return [("virsh-fails", "in one session: " + s.stderr.strip())]
    vcpu, cpus = words[3], words[4]
    after = _affinity(s.parts[1])
    if not _same_set(after.get(vcpu), cpus):
        return [("virsh-no-change", f"vCPU {vcpu} affinity is {after.get(vcpu)}, not {cpus}")]
    dom = _inactive(drv, guest, cwd)
    if dom is not None:
        pin = dom.find(f"cputune/vcpupin[@vcpu='{vcpu}']")
        v = dom.find("vcpu")
        had = pin.get("cpuset") if pin is not None else (v.get("cpuset") if v is not None
                                                         else None)
        if _same_set(had, printed[4]):
            return [("virsh-no-change",
                     f"vCPU {vcpu} is already confined to {had} in the definition")]
    return []


def _fit_cpulist(words: list[str]) -> tuple[list[str], bool]:
    """The line with a cpulist the test driver can take (it knows 8 CPUs): CPU ids are taken
    modulo 8 (the syntax is kept; what the host has is checked in _host_checks)."""
    from numaguard.cpuset import format_bitmap

    idx = {"vcpupin": 4, "emulatorpin": 3}.get(words[1] if len(words) > 1 else "")
    if idx is None or len(words) <= idx:
        return words, False
    try:
        ids = parse_bitmap(words[idx])
    except Exception:  # noqa: BLE001
        return words, False
    if max(ids, default=0) < virsh_test.TEST_DRIVER_CPUS:
        return words, False
    mapped = format_bitmap(sorted({i % virsh_test.TEST_DRIVER_CPUS for i in ids}))
    return words[:idx] + [mapped] + words[idx + 1:], True


def _define_target(words: list[str], cwd: Path) -> str | None:
    if words[1] != "define" or len(words) < 3:
        return None
    f = cwd / words[2]
    if not f.exists():
        return None
    name = _domain(f.read_text())
    return name.findtext("name") if name is not None else None


_VIRSH_CACHE: dict[tuple[str, str], Future] = {}
_VIRSH_LOCK = threading.Lock()


def _affinity(table: str) -> dict[str, str]:
    """``virsh vcpupin G`` (query) output: vCPU -> CPU affinity."""
    return dict(re.findall(r"^\s*(\d+)\s+(\S+)\s*$", table, re.MULTILINE))


def run_virsh(p: col.Printed, drv: virsh_test.TestDriver, env: dict[str, str],
              ran: dict[str, int]) -> list[Failure]:
    """Run a virsh line on the test driver.  The outcome depends only on the line and the
    domains the driver holds, so it is computed once for sources with the same domains."""
    key = (p.text, drv.document)
    with _VIRSH_LOCK:
        fut = _VIRSH_CACHE.get(key)
        mine = fut is None
        if mine:
            fut = _VIRSH_CACHE[key] = Future()
    if mine:
        try:
            fut.set_result(_run_virsh(p, drv, env))
        except BaseException as e:
            fut.set_exception(e)
            raise
    how, problems = fut.result()
    ran[how] = ran.get(how, 0) + 1
    out: list[Failure] = []
    for cause, detail in problems:
        _fail(out, cause, p, detail)
    return out


def _run_virsh(p: col.Printed, drv: virsh_test.TestDriver, env: dict[str, str]
               ) -> tuple[str, list[tuple[str, str]]]:
    how = "virsh"
    try:
        words = shlex.split(p.text, comments=True)
    except ValueError:
        return how, []
    if len(words) < 2:
        return how, [("virsh-fails", "no virsh command")]
    cwd = p.source.cwd
    for o in p.origins:  # the lines printed before it in the same fix (`first save it: …`)
        for s in o.siblings:
            if s == p.text:
                break
            if s.startswith("numaguard ") and ">" in s:
                subprocess.run(["bash", "-c", s], cwd=cwd, env=env, capture_output=True,
                               timeout=60, check=False)
        break
    printed = list(words)
    words, mapped = _fit_cpulist(words)
    if mapped:
        how = "virsh (cpulist mapped into the test driver's 8 CPUs)"
    live_pin = words[1] == "vcpupin" and "--config" in words
    if live_pin:
        # testDomainPinVcpuFlags takes no flags ("unsupported flags (0x2)" for --config): run
        # it on the running domain and read the affinity back with the `vcpupin G` query
        words = [w for w in words if w != "--config"]
        how = "virsh vcpupin (without --config: the test driver pins live only)"
    if live_pin:
        offline = _offline_vcpu(drv, words, cwd)
        if offline:
            return "virsh vcpupin of an offline vCPU (checked against the XML only)", offline
    r = drv.run(words[1:], cwd=cwd)
    if r.rc or "error:" in r.stderr:
        return how, [("virsh-fails", f"exit {r.rc}: "
                      + " ".join(r.stderr.strip().splitlines()[-2:]))]
    guest = _define_target(words, cwd) if words[1] == "define" else (
        next((w for w in words[2:] if not w.startswith("--")), None))
    if guest is None:
        return how, [("virsh-no-change", "cannot tell which domain it changes")]
    if live_pin:
        return how, _check_live_pin(drv, guest, words, printed, cwd)
    s = drv.session([["dumpxml", "--inactive", guest], words[1:],
                     ["dumpxml", "--inactive", guest]], cwd=cwd)
    if len(s.parts) < 3:
        return how, [("virsh-fails", "in one session: " + s.stderr.strip())]
    before, after = _domain(s.parts[0]), _domain(s.parts[2])
    if after is None or before is None:
        return how, [("virsh-fails", "no domain XML around it: " + s.stderr.strip())]
    if etree.tostring(before) == etree.tostring(after):
        return how, [("virsh-no-change", "dumpxml --inactive is the same before and after")]
    why = _took(words, after)
    return how, [("virsh-no-change", why)] if why else []


_WRITE = re.compile(r">>?\s*(/\S+)")


def run_file_writes(p: col.Printed, scratch: Path, env: dict[str, str]) -> list[Failure]:
    """``… > /ABS/PATH`` lines, with the path moved under *scratch*."""
    out: list[Failure] = []
    code = code_part(p.text)
    targets = _WRITE.findall(code)
    if not targets or p.kind != "other":
        return out
    text = code
    host = p.source.host_root
    for t in targets:
        moved = scratch / t.lstrip("/")
        moved.parent.mkdir(parents=True, exist_ok=True)
        if t.startswith(("/sys/", "/proc/")):
            if host is None:
                return out  # the source has no sysfs tree to compare with: static only
            real = host / t.lstrip("/")
            if not real.exists():
                _fail(out, "file-write", p, f"{t} does not exist on the audited host")
                return out
            moved.write_text(real.read_text())
        text = text.replace(t, str(moved))
    r = subprocess.run(["bash", "-c", text], cwd=p.source.cwd, env=env, capture_output=True,
                       text=True, timeout=30, check=False)
    if r.returncode:
        _fail(out, "file-write", p, f"exit {r.returncode} (path moved under scratch): "
              + r.stderr.strip())
        return out
    for t in targets:
        body = (scratch / t.lstrip("/")).read_text()
        if t.startswith("/etc/sysctl.d/"):
            for line in body.splitlines():
                m = re.match(r"^\s*([\w.]+)\s*=\s*(\S+)\s*$", line)
                if not m:
                    _fail(out, "file-write", p, f"{line!r} is not 'key = value' (sysctl.d(5))")
                elif host and not (host / "proc/sys" / m.group(1).replace(".", "/")).exists():
                    _fail(out, "file-write", p, f"the host has no sysctl {m.group(1)}")
        elif not body.strip():
            _fail(out, "file-write", p, f"{t} is empty after it")
    return out


def sysctl_checks(p: col.Printed) -> list[Failure]:
    out: list[Failure] = []
    host = p.source.host_root
    for m in re.finditer(r"\bsysctl -w ([\w.]+)=", p.text):
        if host and not (host / "proc/sys" / m.group(1).replace(".", "/")).exists():
            _fail(out, "file-write", p, f"the audited host has no sysctl {m.group(1)}")
    return out


# --- fix prose --------------------------------------------------------------------------------

def prose_checks(collected: list[col.Collected]) -> list[Failure]:
    """``--options`` named in messages and fix descriptions exist in numaguard (or in the
    virsh command the same sentence names)."""
    out: list[Failure] = []
    known = set()
    for sub in numaguard_subcommands():
        known |= set(numaguard_options(sub) or {})
    for sub in ("numatune", "vcpupin", "emulatorpin", "setvcpus", "define"):
        known |= set(virsh_options(sub))
    seen = set()
    for c in collected:
        if c.error:
            continue
        for text, rule in _strings(c.doc):
            for opt in re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text):
                if opt not in known and (opt, rule) not in seen:
                    seen.add((opt, rule))
                    out.append(Failure("prose-option", opt, f"{c.source.name} [{rule}]",
                                       f"in: {text[:160]}"))
    return out


def _strings(doc: object, rule: str = "?") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(doc, dict):
        rule = str(doc.get("rule", rule))
        for k, v in doc.items():
            if k in ("message", "description") and isinstance(v, str):
                out.append((v, rule))
            elif k != "commands":
                out += _strings(v, rule)
    elif isinstance(doc, list):
        for v in doc:
            out += _strings(v, rule)
    return out


# --- all --------------------------------------------------------------------------------------

def check_source(c: col.Collected, work: Path, env: dict[str, str],
                 ran: dict[str, int]) -> list[Failure]:
    out: list[Failure] = []
    if c.error:
        return out
    name = re.sub(r"[^\w.-]+", "_", c.source.name)
    drv = virsh_test.TestDriver(work / "drivers" / f"{name}.xml",
                                [d.read_text() for d in c.source.domains])
    loaded = drv.ok()
    for i, p in enumerate(c.commands):
        out += static_checks(p, c.host) + swap_checks(p) + source_checks(p) + sysctl_checks(p)
        if p.kind == "numaguard":
            ran["numaguard"] = ran.get("numaguard", 0) + 1
            out += run_numaguard(p, env)
        elif p.kind == "virsh":
            if loaded.rc:
                _fail(out, "virsh-fails", p, "the test driver cannot load the source's "
                      "domains: " + loaded.stderr.strip())
                continue
            out += run_virsh(p, drv, env, ran)
        else:
            writes = bool(_WRITE.search(code_part(p.text))) and p.kind == "other"
            key = "file-writing (path moved to scratch)" if writes else "static-only"
            ran[key] = ran.get(key, 0) + 1
            if writes:
                out += run_file_writes(p, work / "scratch" / name / str(i), env)
    return out


def run_all(work: Path) -> Report:
    bindir = col.numaguard_bin(work / "bin")
    env = col.shell_env(bindir)
    sources: list[Source] = all_sources(work / "work")
    collected = col.collect(sources, env)
    report = Report(collected)
    rans: list[dict[str, int]] = [{} for _ in collected]
    with ThreadPoolExecutor(col.WORKERS) as pool:
        results = list(pool.map(lambda ic: check_source(ic[1], work, env, rans[ic[0]]),
                                enumerate(collected)))
    for r in results:
        report.failures += r
    for d in rans:
        for k, v in d.items():
            report.ran[k] = report.ran.get(k, 0) + v
    report.failures += prose_checks(collected)
    return report

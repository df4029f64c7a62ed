"""Auditing a fleet: many hosts (snapshot paths and libvirt URIs) in one run, each under a deadline.

:func:`audit_fleet` is what ``numaguard audit`` calls with several hosts (``-c URI -c URI``,
``--hosts FILE``, several snapshots); :func:`read_hosts_file` reads ``--hosts FILE``;
:func:`file_sd_targets` (pure) makes the Prometheus file_sd target groups of ``--file-sd PATH``.

The design (docs/fleet.md says more):

* **Processes, not threads.**  An audit is CPU-bound Python: with the GIL, threads would run one
  audit at a time, so snapshots want one worker process per core.  A libvirt host is mostly
  waiting (libvirt-python releases the GIL in its calls), but a thread blocked in a libvirt call
  can be neither interrupted nor killed: a host that never answers would hold its thread, and
  the interpreter's exit, for ever.  A worker *process* can be killed, so every host, snapshot
  or URI, is read and audited in one.
* **pebble's ProcessPool** (https://pebble.readthedocs.io, "timeout: if expires the task will be
  terminated") runs the pool: each host is one task with the deadline as its timeout, counted
  from the moment a worker starts it; at the deadline pebble terminates that worker (SIGTERM,
  then SIGKILL after 3 s) and starts a new one, so one hung host costs the run at most the
  deadline and its worker, never the run.  A worker that dies (a crash in a C library, the OOM
  killer) fails only its host.  pebble's own threads are daemon threads and the pool is
  stopped and joined before :func:`audit_fleet` returns: nothing is left to block the exit.
* Workers start through multiprocessing's ``forkserver`` with numaguard's audit modules
  preloaded: forking the parent itself, which runs pebble's and rich's threads, is unsafe
  (Python 3.12 warns about it), and a fork from the server costs milliseconds where a fresh
  interpreter importing numaguard costs a tenth of a second, also for each worker a deadline
  replaces.
* **How many workers.**  Snapshots only: one per core the process may run on
  (``os.sched_getaffinity``).  With URIs, at least :data:`URI_WORKERS`: their time is mostly
  spent waiting for a daemon, which more processes overlap.  Each worker holds one connection
  to its host's libvirtd and makes one call at a time, far below the daemon's
  ``max_client_requests = 5`` per connection (``/etc/libvirt/libvirtd.conf``); eight workers
  reaching the same daemon also stay below its ``max_anonymous_clients = 20`` (connections not
  yet authenticated) and ``max_clients = 5000``.

A host is ``ok``, ``incomplete`` (read and audited, but some domain XMLs could not be read: exit
2, as for one host), ``error`` (its source could not be read: one line says why) or
``timeout``.  The exit code is the one host's rule over the fleet: 2 when any host failed or
was incomplete, else 1 when any has a finding at or above ``--fail-on``, else 0.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field

from numaguard.display import printable
from numaguard.errors import NumaguardError, ParseError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any, TextIO


EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2

#: the deadline per host when the caller gives none, in seconds
DEFAULT_DEADLINE = 60.0
#: the fewest workers a fleet with libvirt URIs gets (module docstring)
URI_WORKERS = 8
#: a host's status: ok, incomplete (audited, some input missing), error, timeout
STATUSES = ("ok", "incomplete", "error", "timeout")

#: a libvirt URI's scheme: ``driver[+transport]`` (RFC 3986 scheme characters)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def is_uri(target: str) -> bool:
    """A target with ``://`` is a libvirt URI (``qemu+ssh://host/system``), else a path."""
    return "://" in target


# -- one host (in a worker process) -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HostReport:
    """What the fleet run learnt about one host.  ``worst``: the highest severity of its
    findings (:class:`numaguard.core.findings.Severity` value, ``None``: none);
    ``findings``: (severity value, one line) of each finding, worst first, for JUnit;
    ``document``: its audit as :func:`numaguard.report.audit.audit_to_dict` makes it, already
    encoded as one line of JSON (:func:`numaguard.report.audit.item_json`; JSON output only):
    one string crosses the pipe from the worker instead of a tree of dicts, and the parent,
    which shares the cores with the workers, does not encode it again."""

    source: str
    status: str
    seconds: float | None = None
    error: str | None = None
    nodes: int | None = None
    guests: int | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    worst: int | None = None
    worst_finding: str | None = None
    findings: tuple[tuple[int, str], ...] = ()
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    document: str | None = None

    @property
    def failed(self) -> bool:
        """Not audited in full: exit 2."""
        return self.status != "ok"


def _one_line(text: str) -> str:
    """The first line of an error (an :class:`~numaguard.errors.InvalidDocument` has one per
    problem), saying how many more there were."""
    lines = [line for line in str(text).splitlines() if line.strip()] or ["(no message)"]
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return printable(lines[0] + more)


def audit_host(target: str, options_kwargs: Mapping[str, Any], only: Sequence[str] | None,
               document: bool) -> HostReport:
    """Read and audit one host; every error becomes the report's one line (this runs in a
    worker: an exception that escaped would lose the host's name).

    While it runs, SIGTERM has its default action, so the deadline's SIGTERM ends the worker
    at once: pebble's own handler is Python code, which cannot run while the worker waits
    inside a C call (libvirt's, on a daemon that never answers), and pebble would send
    SIGKILL only 3 s later.  The worker holds nothing that needs cleaning up (it only reads),
    and pebble signals a worker only while it holds the channel lock, never mid-message."""
    import gc
    import signal

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # one host is one short burst of allocations freed by reference counting: the collector
    # runs between hosts, not during them (as the CLI, cli._no_cyclic_gc; ~20 % of a 4 x 50
    # host's audit)
    gc.disable()
    try:
        return _audit_host(target, options_kwargs, only, document)
    finally:
        gc.enable()
        signal.signal(signal.SIGTERM, previous)


def _audit_host(target: str, options_kwargs: Mapping[str, Any], only: Sequence[str] | None,
                document: bool) -> HostReport:
    from numaguard.core.rules import AuditOptions, audit_inventory
    from numaguard.readers.sources import LibvirtSource, PathSource, command_refs, live_state

    t0 = time.perf_counter()
    try:
        source = LibvirtSource(target) if is_uri(target) else PathSource([target])
        inventory = source.read()
        options = AuditOptions(refs=command_refs(inventory), **options_kwargs)
        result = audit_inventory(inventory, options, only=only,
                                 live=live_state(source, inventory))
        doc = None
        if document:   # encoded here, in the worker: the parent only splices the texts
            from numaguard.report.audit import audit_to_dict, item_json

            doc = item_json(audit_to_dict(result))
    except NumaguardError as exc:
        return HostReport(target, "error", time.perf_counter() - t0, _one_line(str(exc)))
    except Exception as exc:  # noqa: BLE001 - a bug: this host is reported, the others go on
        return HostReport(target, "error", time.perf_counter() - t0,
                          _one_line(f"internal error: {type(exc).__name__}: {exc}"))
    counts = {"critical": 0, "warning": 0, "info": 0}
    for f in result.findings:
        counts[f.severity.label] += 1
    ranked = sorted(result.findings, key=lambda f: f.sort_key())
    worst = ranked[0] if ranked else None
    return HostReport(
        target, "incomplete" if inventory.problems else "ok", time.perf_counter() - t0,
        nodes=len(inventory.host.nodes), guests=len(inventory.guests), counts=counts,
        worst=int(worst.severity) if worst else None,
        worst_finding=_finding_cell(worst) if worst else None,
        findings=tuple((int(f.severity), printable(
            f"{f.severity.label} {f.rule} {', '.join(f.guests) or '-'}: {f.message}"))
            for f in ranked),
        problems=tuple(printable(str(p)) for p in inventory.problems),
        notes=tuple(printable(n) for n in inventory.notes), document=doc)


def _finding_cell(finding: Any) -> str:
    guests = finding.guests
    who = f" {guests[0]}" + (f" +{len(guests) - 1}" if len(guests) > 1 else "") if guests else ""
    return printable(f"{finding.rule}{who}")


# -- the pool -----------------------------------------------------------------------------------

def default_workers(targets: Sequence[str]) -> int:
    """One worker per usable core for snapshots; at least :data:`URI_WORKERS` with URIs; never
    more than there are hosts."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    wanted = max(cores, URI_WORKERS) if any(is_uri(t) for t in targets) else cores
    return max(1, min(wanted, len(targets)))


#: what each forked worker has imported already (see the module docstring)
_PRELOAD = ["numaguard.fleet", "numaguard.core.rules", "numaguard.core.rules.memory",
            "numaguard.core.rules.cpu", "numaguard.core.rules.hugepages",
            "numaguard.core.rules.hostrules", "numaguard.core.rules.simulation",
            "numaguard.readers.sources", "numaguard.readers.domains",
            "numaguard.readers.sysfs", "numaguard.report.audit"]


def _start_fork_server() -> None:
    """Start the fork server now rather than when the pool asks for its first worker: it
    imports :data:`_PRELOAD` (~75 ms) while this process imports pebble and sets up the run."""
    from multiprocessing import forkserver

    _mp_context()
    forkserver.ensure_running()


def _mp_context() -> Any:
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


#: how often the pool's manager looks at its workers (see :func:`run_pool`)
POLL_SECONDS = 0.01


def run_pool(targets: Sequence[str], options_kwargs: Mapping[str, Any], *,
             only: Sequence[str] | None = None, document: bool = False, workers: int,
             deadline: float, on_done: Callable[[HostReport], None] | None = None
             ) -> list[HostReport]:
    """Audit *targets* in a pool of *workers* processes, each host within *deadline* seconds;
    the reports in the order of *targets*.  *on_done* is called as each host ends."""
    from concurrent.futures import Future, as_completed
    from concurrent.futures import TimeoutError as FutureTimeout

    from pebble import ProcessExpired, ProcessPool
    from pebble.common import CONSTS

    # pebble's manager loops poll every CONSTS.sleep_unit (0.1 s by default: pebble's
    # common/types.py documents it as the period "any cycle which needs to periodically assess
    # the state" waits); joining the pool then took ~75 ms of every run and a deadline was
    # seen up to 0.1 s late.  10 ms polls cost nothing measurable.
    CONSTS.sleep_unit = min(CONSTS.sleep_unit, POLL_SECONDS)
    pool = ProcessPool(max_workers=workers, context=_mp_context())
    reports: dict[int, HostReport] = {}
    try:
        # pebble's ProcessFuture is a concurrent.futures.Future (as_completed yields them)
        futures: dict[Future[HostReport], int] = {
            pool.schedule(audit_host, (t, dict(options_kwargs), only, document),
                          timeout=deadline): i for i, t in enumerate(targets)}
        for future in as_completed(futures):
            i = futures[future]
            try:
                report = future.result()
            except FutureTimeout:
                report = HostReport(targets[i], "timeout", deadline,
                                    f"no answer within the deadline of {deadline:g} s")
            except ProcessExpired as exc:
                report = HostReport(targets[i], "error", None, _one_line(
                    f"the worker auditing it died ({_death(exc.exitcode)})"))
            except Exception as exc:  # noqa: BLE001 - the task or its result did not pass
                report = HostReport(targets[i], "error", None,
                                    _one_line(f"internal error: {type(exc).__name__}: {exc}"))
            reports[i] = report
            if on_done is not None:
                on_done(report)
    finally:
        pool.stop()   # ends every worker still running (nothing is, after the loop)
        pool.join()
    return [reports[i] for i in range(len(targets))]


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


# -- the command --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FleetResult:
    """A whole run: the reports in the order the hosts were given."""

    hosts: tuple[HostReport, ...]
    seconds: float
    deadline: float
    workers: int
    fail_on: str

    def failing(self, report: HostReport) -> bool:
        """Whether *report* has a finding at or above ``--fail-on``."""
        from numaguard.core.findings import Severity

        if self.fail_on == "never" or report.worst is None:
            return False
        return report.worst >= int(Severity.parse(self.fail_on))

    def exit_code(self) -> int:
        if any(h.failed for h in self.hosts):
            return EXIT_ERROR
        return EXIT_FINDINGS if any(self.failing(h) for h in self.hosts) else EXIT_OK


def _show_progress(progress: bool | None, err: TextIO) -> bool:
    """A progress bar only on a terminal: *progress* ``None`` means when *err* is a tty and
    neither ``CI`` nor ``TERM=dumb`` says otherwise (CI runners may give a pty)."""
    if progress is not None:
        return progress
    try:
        tty = err.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


def audit_fleet(targets: Sequence[str], options_kwargs: Mapping[str, Any], *,
                only: Sequence[str] | None = None, fmt: str = "text",
                fail_on: str = "critical", workers: int | None = None,
                deadline: float = DEFAULT_DEADLINE, junit_path: str | None = None,
                progress: bool | None = None, out: TextIO | None = None,
                err: TextIO | None = None, width: int | None = None,
                color: bool = False) -> int:
    """``numaguard audit`` over many hosts; the exit code.

    *targets*: snapshot paths and libvirt URIs (with ``://``); *options_kwargs*:
    :class:`~numaguard.core.rules.AuditOptions` keyword arguments but ``refs`` (the CLI's
    ``_audit_options``); *only*: the ``--rule`` IDs; *fmt*: ``text`` (a summary table) or
    ``json`` (one document); *workers*: ``None`` for :func:`default_workers`; *deadline*:
    seconds per host; *junit_path*: also write JUnit XML there; *progress*: a progress bar on
    *err* (``None``: when it is a terminal); *width*/*color*: the text table's."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    targets = list(targets)
    _check_targets(targets)
    if fmt not in ("text", "json"):
        raise NumaguardError(f"--format {fmt} is not available for several hosts "
                             "(text or json)")
    if not (deadline > 0 and deadline < float("inf")):
        raise ParseError(f"expected a positive number of seconds, got {deadline!r}",
                         field="--deadline")
    if workers is None:
        workers = default_workers(targets)
    elif workers < 1:
        raise ParseError(f"expected at least 1, got {workers}", field="--workers")

    t0 = time.perf_counter()
    _start_fork_server()    # its imports run on the other core while this process goes on
    show = _show_progress(progress, err)
    bar = _Progress(len(targets), err) if show else None
    try:
        reports = run_pool(targets, options_kwargs, only=only, document=fmt == "json",
                           workers=workers, deadline=deadline,
                           on_done=bar.advance if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    result = FleetResult(tuple(reports), time.perf_counter() - t0, deadline, workers, fail_on)

    from numaguard.report import fleet as render

    for line in render.problem_lines(result):
        err.write(line + "\n")
    out.write(render.fleet_json(result) if fmt == "json"
              else render.fleet_text(result, width=width, color=color))
    if junit_path is not None:
        from numaguard.writers.xml_patch import NO_FOLLOW_HINT, OUTPUT_MODE, write_atomic

        write_atomic(junit_path, render.fleet_junit(result), mode=OUTPUT_MODE,
                     link_hint=NO_FOLLOW_HINT)
    return result.exit_code()


def _check_targets(targets: Sequence[str]) -> None:
    if not targets:
        raise NumaguardError("no hosts to audit")
    seen: set[str] = set()
    for t in targets:
        if t in seen:
            raise NumaguardError(f"{printable(t)}: given twice")
        seen.add(t)


class _Progress:
    """rich's progress bar on *err*: hosts done of all, failed so far, elapsed time."""

    def __init__(self, total: int, err: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.failed = 0
        self.progress = Progress(
            TextColumn("auditing hosts"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[failed]}"), TimeElapsedColumn(),
            console=Console(file=err, force_terminal=True), transient=True)
        self.task = self.progress.add_task("hosts", total=total, failed="")
        self.progress.start()

    def advance(self, report: HostReport) -> None:
        self.failed += report.failed
        self.progress.update(self.task, advance=1,
                             failed=f"{self.failed} failed" if self.failed else "")

    def close(self) -> None:
        self.progress.stop()


# -- --hosts FILE -------------------------------------------------------------------------------

def read_hosts_file(path: str) -> list[str]:
    """The targets of a ``--hosts FILE``: one libvirt URI or snapshot path per line; blank
    lines and ``#`` comments (a whole line, or after a blank) are skipped; a relative path is
    relative to the file's folder.  A bad line is a :class:`ParseError` naming the file and the
    line."""
    from numaguard.readers.files import decode_utf8, read_bytes

    text = decode_utf8(read_bytes(path), path)
    folder = os.path.dirname(path)
    targets: list[str] = []
    first: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        target = _hosts_line(line, path, number)
        if not is_uri(target):
            target = os.path.normpath(os.path.join(folder, target))
        if target in first:
            raise ParseError(f"{printable(target)} listed twice (first at line "
                             f"{first[target]})", path=path, line=number)
        first[target] = number
        targets.append(target)
    if not targets:
        raise ParseError("no hosts listed (one libvirt URI or snapshot path per line)",
                         path=path)
    return targets


def _strip_comment(line: str) -> str:
    if line.lstrip().startswith("#"):
        return ""
    m = re.search(r"\s#", line)
    return line[:m.start()] if m else line


def _hosts_line(line: str, path: str, number: int) -> str:
    if not line.isprintable():
        raise ParseError(f"{printable(line)}: control characters in a host line",
                         path=path, line=number)
    if is_uri(line):
        scheme = line.partition("://")[0]
        if not _SCHEME.fullmatch(scheme) or any(c.isspace() for c in line):
            raise ParseError(f"{line!r} is not a libvirt URI (such as qemu+ssh://host/system)",
                             path=path, line=number)
    return line


def targets_of(hosts_files: Iterable[str], connect: Iterable[str], paths: Iterable[str]
               ) -> list[str]:
    """The fleet's targets in the order given: every ``--hosts FILE``'s lines, then every
    ``-c URI``, then the SOURCE paths."""
    targets = [t for f in hosts_files for t in read_hosts_file(f)]
    return [*targets, *connect, *paths]


# -- Prometheus file_sd (pure: writers/file_sd.py writes the file) ------------------------------

#: ``numaguard exporter``'s port (:data:`numaguard.exporter.serve.DEFAULT_LISTEN`; a test keeps
#: the two equal: this module does not import the exporter, which needs prometheus_client)
EXPORTER_PORT = 9177
#: the one label of each target group: the URI the fleet audits the host by
URI_LABEL = "numaguard_uri"

#: a DNS name or an IPv4 literal (RFC 1123 labels; ``_`` is tolerated, as resolvers do)
_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")


@dataclass(frozen=True, slots=True)
class ScrapeTargets:
    """What ``--file-sd`` writes: ``groups``, Prometheus file_sd target groups (``{"targets":
    ["HOST:PORT"], "labels": {"numaguard_uri": URI}}``, one per host, in the order given),
    and ``left_out``: (host, why) for each host that has no address to scrape."""

    groups: tuple[Mapping[str, Any], ...]
    left_out: tuple[tuple[str, str], ...]


def scrape_address(uri: str, port: int) -> str | None:
    """``HOST:PORT`` of the exporter on the host of a libvirt *uri*, or ``None`` when the URI
    names no host (``qemu:///system``, ``qemu+unix:///system``, ``qemu+ssh:///system``: this
    machine) or a host Prometheus could not dial.

    libvirt's remote URIs are ``driver[+transport]://[username@][hostname][:port]/[path]
    [?extraparameters]`` (https://libvirt.org/uri.html, "Remote URIs"): the user and the
    transport's port (ssh's, libvirtd's TCP or TLS port) are dropped, *port* is the
    exporter's.  An IPv6 literal keeps its brackets (``[::1]:9177``), as Go's
    ``net.JoinHostPort`` writes it for Prometheus's ``__address__``."""
    from ipaddress import IPv6Address
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:          # "[::1" and the like: urlsplit raises "Invalid IPv6 URL"
        return None
    if not host:
        return None
    # an IPv6 literal (RFC 3986: "[" IPv6address "]")
    if parts.netloc.rpartition("@")[2].startswith("["):
        try:
            literal = IPv6Address(unquote(host))   # a zone is written %25eth0 in a URI
        except ValueError:
            return None
        return f"[{literal.compressed}]:{port}"
    return f"{host}:{port}" if _HOST_NAME.fullmatch(host) else None


def _no_host(uri: str) -> bool:
    from urllib.parse import urlsplit

    try:
        return not urlsplit(uri).hostname
    except ValueError:
        return False


def file_sd_targets(targets: Sequence[str], port: int = EXPORTER_PORT) -> ScrapeTargets:
    """The Prometheus file_sd target groups of a fleet's *targets* (snapshot paths and libvirt
    URIs, as :func:`audit_fleet` takes them), each host's exporter on *port*.

    Checked as :func:`audit_fleet` checks them (no host, or one given twice, is the same
    error), so nothing is written for a run that would be refused.  Left out, with the
    reason: a snapshot (no host to scrape), a URI of this machine or whose host Prometheus
    could not dial, and a URI whose ``HOST:PORT`` an earlier URI already has (two groups with
    one address would scrape the same exporter twice, as two series differing only in
    ``numaguard_uri``).  The labels name the URI only: a label holding the audit's outcome
    would change the series' identity whenever the outcome changes."""
    _check_targets(targets)
    if not 0 < port < 65536:
        raise ParseError(f"expected a port from 1 to 65535, got {port}",
                         field="--exporter-port")
    groups: list[Mapping[str, Any]] = []
    left_out: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    for target in targets:
        if not is_uri(target):
            left_out.append((target, "a snapshot"))
            continue
        address = scrape_address(target, port)
        if address is None:
            left_out.append((target, "a URI of this machine: no host name" if _no_host(target)
                             else "not a host name Prometheus can scrape"))
        elif address in first:
            left_out.append((target, f"{address} is already listed for {first[address]}"))
        else:
            first[address] = target
            groups.append({"targets": [address], "labels": {URI_LABEL: target}})
    return ScrapeTargets(tuple(groups), tuple(left_out))

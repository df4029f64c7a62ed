"""Run numaguard on hostile input and judge the outcome: the shared harness of tests/hostile/.

``run_cli`` forks this (pytest) process, whose modules are already imported, and calls
``numaguard.cli.main(argv)`` in the child the way ``python -m numaguard`` would: fresh stdio on
fds 0/1/2, an address-space limit, a wall-clock timeout after which the child's whole process
group is SIGKILLed.  ``run_subprocess`` does the same through a real interpreter for the cases
where interpreter start-up and shutdown matter (closed stdout, /dev/full, PYTHONIOENCODING).

What the child mimics of CPython (Python/pylifecycle.c ``create_stdio``/``init_sys_streams``,
Modules/main.c ``pymain_run_module`` and ``Py_FinalizeEx``):

- ``sys.stdout``/``sys.stdin`` use PYTHONIOENCODING's ``encoding[:errors]`` (default utf-8,
  ``strict``); ``sys.stderr`` takes the same encoding with ``backslashreplace`` errors and is
  line-buffered (3.9+); ``newline="\\n"``; a stdio fd that is closed gives ``None``.
- an uncaught exception prints its traceback (``sys.excepthook``'s format) and exits 1;
  ``SystemExit`` follows ``sys.exit`` rules (``None`` -> 0, an int, anything else printed -> 1).
- at exit stdout and stderr are flushed; a failing flush prints ``Exception ignored ...`` with
  the traceback and the exit status becomes 120, as ``Py_FinalizeEx`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import fnmatch
import io
import os
import re
import resource
import selectors
import signal
import stat
import subprocess
import sys
import time
import traceback as tb_module
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

GiB = 1024**3
TRACEBACK = "Traceback (most recent call last)"
MAX_OUTPUT = 64 * 1024**2   # bytes kept per stream; the rest is read and dropped

# What a stdio slot can be: "pipe" (collected), "closed" (fd not open at all), "devnull",
# or a path opened for writing (e.g. "/dev/full").
Stream = str


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one run did.  ``code`` is the exit status, or ``-N`` when killed by signal N; a
    run past its timeout has ``timed_out=True`` and ``code`` -14 (its own SIGALRM) or -9
    (the parent's SIGKILL of its process group)."""

    code: int
    out: str
    err: str
    timed_out: bool
    traceback: bool
    elapsed: float
    out_bytes: bytes = b""
    err_bytes: bytes = b""
    argv: tuple[str, ...] = ()

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    def describe(self, limit: int = 2000) -> str:
        """A short account of the run for assertion messages."""
        return (f"argv={list(self.argv)!r} code={self.code} timed_out={self.timed_out} "
                f"elapsed={self.elapsed:.2f}s\n--- stderr ---\n{self.err[:limit]}"
                f"\n--- stdout ---\n{self.out[:limit]}")


def _split_ioencoding(env: Mapping[str, str]) -> tuple[str, str | None]:
    """PYTHONIOENCODING ``encoding[:errors]`` -> (encoding, errors or None); utf-8 default."""
    value = env.get("PYTHONIOENCODING", "")
    enc, _, errors = value.partition(":")
    return (enc or "utf-8"), (errors or None)


def _fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _make_stdio(env: Mapping[str, str]) -> None:
    """sys.stdin/stdout/stderr on fds 0/1/2 as the interpreter builds them at start-up
    (``create_stdio``): PYTHONUNBUFFERED makes stdout/stderr raw and write-through (stdin
    stays buffered); stderr, and a terminal, are line-buffered."""
    encoding, errors = _split_ioencoding(env)
    buffered_stdio = not env.get("PYTHONUNBUFFERED")
    streams: list[Any] = []
    for fd, mode, errs in ((0, "r", errors or "strict"), (1, "w", errors or "strict"),
                           (2, "w", "backslashreplace")):
        if not _fd_is_open(fd):
            streams.append(None)
            continue
        buffering = -1 if buffered_stdio or mode == "r" else 0
        buf: Any = open(fd, mode + "b", buffering=buffering, closefd=False)  # noqa: SIM115
        raw = buf if buffering == 0 else buf.raw
        interactive = os.isatty(fd)
        text = io.TextIOWrapper(buf, encoding=encoding, errors=errs, newline="\n",
                                line_buffering=buffered_stdio and (interactive or fd == 2),
                                write_through=not buffered_stdio)
        with contextlib.suppress(AttributeError, TypeError):
            raw.name = ("<stdin>", "<stdout>", "<stderr>")[fd]
        text.mode = mode  # type: ignore[misc]
        streams.append(text)
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams


def _print_exception(exc: BaseException) -> None:
    if sys.stderr is not None:
        with contextlib.suppress(Exception):
            tb_module.print_exception(exc, file=sys.stderr)


def _exit_status(value: object) -> int:
    """``sys.exit(value)``'s status, printing a non-int value to stderr like CPython."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    if sys.stderr is not None:
        with contextlib.suppress(Exception):
            sys.stderr.write(f"{value}\n")
    return 1


def _flush_std_files(status: int) -> int:
    """``Py_FinalizeEx``'s flush_std_files: a failed stdout flush is reported, status 120."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or getattr(stream, "closed", False):
            continue
        try:
            stream.flush()
        except Exception as exc:  # noqa: BLE001 - mimicking the interpreter
            if name == "stdout":
                if sys.stderr is not None:
                    with contextlib.suppress(Exception):
                        sys.stderr.write(f"Exception ignored in: {stream!r}\n")
                _print_exception(exc)
                status = 120
    return status


def _child_main(argv: Sequence[str], main: Callable[[Sequence[str]], object],
                env: Mapping[str, str]) -> int:
    _make_stdio(env)
    if sys.stderr is not None:
        with contextlib.suppress(Exception):
            faulthandler.enable(file=sys.stderr)
    try:
        status = _exit_status(main(list(argv)))
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException as exc:  # noqa: BLE001 - the interpreter's default excepthook
        _print_exception(exc)
        status = 1
    return _flush_std_files(status)


def _open_slot(slot: Stream, fd: int, pipes: dict[int, tuple[int, int]]) -> None:
    """In the child: put *slot* on *fd* (0, 1 or 2)."""
    if slot == "pipe":
        r, w = pipes[fd]
        os.dup2(r if fd == 0 else w, fd)
    elif slot == "closed":
        with contextlib.suppress(OSError):
            os.close(fd)
    else:
        path = os.devnull if slot == "devnull" else slot
        target = os.open(path, os.O_RDONLY if fd == 0 else os.O_WRONLY)
        if target != fd:
            os.dup2(target, fd)
            os.close(target)


def _vm_size() -> int:
    """This process's address-space size in bytes (/proc/self/status VmSize)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _limit_memory(mem_limit: int | None, *, above_current: bool) -> None:
    """RLIMIT_AS = *mem_limit* (above this process's present size when *above_current*: a
    forked child inherits the parent's mappings, and what is bounded is what the run adds)."""
    if mem_limit is None:
        return
    limit = mem_limit + (_vm_size() if above_current else 0)
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _alarm(timeout: float) -> None:
    """The child's own deadline: SIGALRM (default action: terminate) after *timeout*
    seconds, even when the parent is too busy to watch it (ITIMER_REAL survives exec)."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))


def _decode_status(raw: int) -> int:
    if os.WIFSIGNALED(raw):
        return -os.WTERMSIG(raw)
    return os.WEXITSTATUS(raw)


class Running:
    """One child being watched: its output pipes, its stdin feed, its deadline.  Several can
    share one selector (:func:`run_many`); :func:`run_cli` drives one alone."""

    def __init__(self, argv: Sequence[str], pid: int, fds: Mapping[str, int],
                 stdin_fd: int | None, stdin_data: bytes, timeout: float, start: float,
                 reap: Callable[[bool], int | None]) -> None:
        self.argv = tuple(argv)
        self.pid = pid
        self.start = start
        self.deadline = start + timeout
        self._reap = reap
        self._chunks: dict[str, list[bytes]] = {name: [] for name in fds}
        self._kept = dict.fromkeys(fds, 0)
        self._open: dict[int, str] = {}
        self._pending = memoryview(stdin_data)
        self.status: int | None = None
        self.timed_out = False
        for name, fd in fds.items():
            os.set_blocking(fd, False)
            self._open[fd] = name
        if stdin_fd is not None:
            if self._pending:
                os.set_blocking(stdin_fd, False)
                self._open[stdin_fd] = "stdin"
            else:
                os.close(stdin_fd)
        self._pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self._pidfd = os.pidfd_open(pid)
            self._open[self._pidfd] = "exit"
        self.outcome: Outcome | None = None

    def register(self, sel: selectors.BaseSelector) -> None:
        for fd, name in self._open.items():
            sel.register(fd, selectors.EVENT_WRITE if name == "stdin" else selectors.EVENT_READ,
                         self)

    def _close(self, sel: selectors.BaseSelector | None, fd: int) -> None:
        name = self._open.pop(fd, None)
        if name is None:
            return
        if sel is not None:
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(fd)
        with contextlib.suppress(OSError):
            os.close(fd)

    def _keep(self, name: str, data: bytes) -> None:
        room = MAX_OUTPUT - self._kept[name]
        if room > 0:
            self._chunks[name].append(data[:room])
            self._kept[name] += len(self._chunks[name][-1])

    def on_ready(self, sel: selectors.BaseSelector, fd: int) -> None:
        name = self._open.get(fd)
        if name == "exit":
            self._close(sel, fd)
        elif name == "stdin":
            try:
                n = os.write(fd, self._pending[:65536])
            except BlockingIOError:
                return
            except OSError:   # EPIPE: the child stopped reading
                n = len(self._pending)
            self._pending = self._pending[n:]
            if not self._pending:
                self._close(sel, fd)
        elif name is not None:
            try:
                data = os.read(fd, 1 << 20)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                self._keep(name, data)
            else:
                self._close(sel, fd)

    @property
    def wants_wakeups(self) -> bool:
        """No pidfd: the exit must be polled."""
        return self._pidfd is None

    def poll(self, sel: selectors.BaseSelector | None, now: float) -> bool:
        """Reap or time out; True when the run is over (``self.outcome`` is set)."""
        if self.outcome is not None:
            return True
        if self.status is None:
            self.status = self._reap(False)
        streams_open = any(n in self._chunks for n in self._open.values())
        if self.status is not None and not streams_open:
            self.timed_out = self.status == -signal.SIGALRM   # its own deadline struck
            self._finish(sel)
            return True
        if now >= self.deadline:
            self.timed_out = self.status is None or self.status == -signal.SIGALRM
            self._finish(sel)
            return True
        return False

    def _finish(self, sel: selectors.BaseSelector | None) -> None:
        if self.status is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.status = self._reap(True)
        else:  # the child is gone; anything left in its group (a grandchild) goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        for fd, name in list(self._open.items()):
            if name in self._chunks:   # drain what is already in the pipe
                with contextlib.suppress(OSError):
                    while data := os.read(fd, 1 << 20):
                        self._keep(name, data)
            self._close(sel, fd)
        assert self.status is not None
        data = {name: b"".join(parts) for name, parts in self._chunks.items()}
        self.outcome = _outcome(self.argv, data, self.status, self.timed_out,
                                time.monotonic() - self.start)

    def wait(self) -> Outcome:
        with selectors.DefaultSelector() as sel:
            self.register(sel)
            while not self.poll(sel, time.monotonic()):
                wait = self.deadline - time.monotonic()
                if self.wants_wakeups:
                    wait = min(wait, 0.02)
                for key, _ in sel.select(max(wait, 0)):
                    self.on_ready(sel, key.fd)
        assert self.outcome is not None
        return self.outcome


def _outcome(argv: Sequence[str], data: dict[str, bytes], code: int, timed_out: bool,
             elapsed: float) -> Outcome:
    out_b, err_b = data.get("out", b""), data.get("err", b"")
    out = out_b.decode("utf-8", "replace")
    err = err_b.decode("utf-8", "replace")
    return Outcome(code=code, out=out, err=err, timed_out=timed_out,
                   traceback=TRACEBACK in err or TRACEBACK in out, elapsed=elapsed,
                   out_bytes=out_b, err_bytes=err_b, argv=tuple(argv))


def _stdin_slot(stdin: bytes | str | None) -> tuple[Stream, bytes]:
    if stdin is None:
        return "devnull", b""
    if isinstance(stdin, str) and stdin in ("closed", "devnull"):
        return stdin, b""
    return "pipe", stdin.encode() if isinstance(stdin, str) else stdin


def start_cli(argv: Sequence[str | os.PathLike[str]], *, timeout: float = 10.0,
              cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
              stdin: bytes | str | None = b"", stdout: Stream = "pipe", stderr: Stream = "pipe",
              mem_limit: int | None = 2 * GiB,
              main: Callable[[Sequence[str]], object] | None = None) -> Running:
    """Fork and start ``numaguard ARGV`` (see :func:`run_cli`); ``.wait()`` gives the Outcome."""
    if main is None:
        from numaguard.cli import main as cli_main
        main = cli_main
    args = [os.fspath(a) for a in argv]
    child_env = dict(os.environ if env is None else env)
    in_slot, in_data = _stdin_slot(stdin)
    pipes: dict[int, tuple[int, int]] = {}
    for fd, slot in ((0, in_slot), (1, stdout), (2, stderr)):
        if slot == "pipe":
            pipes[fd] = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 70
        try:
            os.setpgid(0, 0)
            for fd, slot in ((0, in_slot), (1, stdout), (2, stderr)):
                _open_slot(slot, fd, pipes)
            os.closerange(3, _max_fd())
            if cwd is not None:
                os.chdir(cwd)
            os.environ.clear()
            os.environ.update(child_env)
            _limit_memory(mem_limit, above_current=True)
            # the interpreter's own start-up signal state (pylifecycle.c init_signals)
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _alarm(timeout)
            status = _child_main(args, main, child_env)
        except BaseException:  # noqa: BLE001 - the harness itself failed in the child
            with contextlib.suppress(Exception):
                os.write(2, f"harness child failed:\n{tb_module.format_exc()}".encode())
            status = 70
        finally:
            os._exit(status)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)   # the same in the parent, so killpg works without a race
    fds: dict[str, int] = {}
    stdin_fd: int | None = None
    for fd, (r, w) in pipes.items():
        if fd == 0:
            os.close(r)
            stdin_fd = w
        else:
            os.close(w)
            fds["out" if fd == 1 else "err"] = r

    def reap(block: bool) -> int | None:
        done, raw = os.waitpid(pid, 0 if block else os.WNOHANG)
        return _decode_status(raw) if done else None

    return Running(args, pid, fds, stdin_fd, in_data, timeout, start, reap)


def run_cli(argv: Sequence[str | os.PathLike[str]], *, timeout: float = 10.0,
            cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
            stdin: bytes | str | None = b"", stdout: Stream = "pipe", stderr: Stream = "pipe",
            mem_limit: int | None = 2 * GiB,
            main: Callable[[Sequence[str]], object] | None = None) -> Outcome:
    """``numaguard ARGV`` in a forked child of this process (see the module docstring).

    *env* replaces the environment (default: this one); *stdin* is bytes fed on a pipe,
    ``None`` for /dev/null, or ``"closed"``; *stdout*/*stderr* are ``"pipe"`` (collected),
    ``"closed"``, ``"devnull"`` or a path such as ``/dev/full``.  *mem_limit* is the address
    space (RLIMIT_AS) the run may take beyond what this process already maps.  *main*
    defaults to ``numaguard.cli.main``.  After *timeout* seconds the child ends (its own
    SIGALRM, then the parent SIGKILLs its process group): ``timed_out=True``.
    """
    return start_cli(argv, timeout=timeout, cwd=cwd, env=env, stdin=stdin, stdout=stdout,
                     stderr=stderr, mem_limit=mem_limit, main=main).wait()


def run_many(jobs: Iterable[tuple[Sequence[str | os.PathLike[str]], Mapping[str, Any]]], *,
             parallel: int = 2) -> Iterator[tuple[int, Outcome]]:
    """Run ``(argv, run_cli keyword arguments)`` jobs, *parallel* forked children at a time,
    from this one thread (no fork while another thread runs).  Yields ``(job index,
    Outcome)`` as runs end, which is not the order of *jobs*."""
    queue = iter(enumerate(jobs))
    running: dict[Running, int] = {}
    exhausted = False
    with selectors.DefaultSelector() as sel:
        while True:
            while not exhausted and len(running) < max(1, parallel):
                nxt = next(queue, None)
                if nxt is None:
                    exhausted = True
                    break
                index, (argv, kwargs) = nxt
                child = start_cli(argv, **kwargs)
                child.register(sel)
                running[child] = index
            if not running:
                return
            now = time.monotonic()
            for child in [c for c in running if c.poll(sel, now)]:
                assert child.outcome is not None
                yield running.pop(child), child.outcome
            if not running:
                continue
            wait = min(c.deadline for c in running) - time.monotonic()
            if any(c.wants_wakeups for c in running):
                wait = min(wait, 0.02)
            for key, _ in sel.select(max(wait, 0)):
                key.data.on_ready(sel, key.fd)


def _max_fd() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if 0 < soft < 1 << 20 else 65536


def run_subprocess(argv: Sequence[str | os.PathLike[str]], *, timeout: float = 30.0,
                   cwd: str | os.PathLike[str] | None = None,
                   env: Mapping[str, str] | None = None, stdin: bytes | str | None = b"",
                   stdout: Stream = "pipe", stderr: Stream = "pipe",
                   mem_limit: int | None = 2 * GiB,
                   python: Sequence[str] = (sys.executable, "-m", "numaguard")) -> Outcome:
    """``python -m numaguard ARGV`` as a real process (arguments as :func:`run_cli`; here
    *mem_limit* is the whole RLIMIT_AS of the new process)."""
    args = [os.fspath(a) for a in argv]
    in_slot, in_data = _stdin_slot(stdin)
    closed = [fd for fd, slot in ((0, in_slot), (1, stdout), (2, stderr)) if slot == "closed"]

    def popen_slot(slot: Stream, fd: int) -> Any:
        if slot == "pipe":
            return subprocess.PIPE
        if slot in ("closed", "devnull"):
            return subprocess.DEVNULL
        return os.open(slot, os.O_RDONLY if fd == 0 else os.O_WRONLY)

    slots = [popen_slot(s, fd) for fd, s in ((0, in_slot), (1, stdout), (2, stderr))]

    def preexec() -> None:
        _limit_memory(mem_limit, above_current=False)
        _alarm(timeout)
        for fd in closed:
            os.close(fd)

    start = time.monotonic()
    try:
        proc = subprocess.Popen([*python, *args], cwd=cwd,
                                env=dict(os.environ if env is None else env),
                                stdin=slots[0], stdout=slots[1], stderr=slots[2],
                                start_new_session=True,
                                preexec_fn=preexec)  # noqa: PLW1509 - no threads here
    finally:
        for s in slots:
            if isinstance(s, int) and s >= 0:
                os.close(s)
    fds: dict[str, int] = {}
    for name, pipe in (("out", proc.stdout), ("err", proc.stderr)):
        if pipe is not None:
            fds[name] = os.dup(pipe.fileno())
            pipe.close()
    stdin_fd = None
    if proc.stdin is not None:
        stdin_fd = os.dup(proc.stdin.fileno())
        proc.stdin.close()

    def reap(block: bool) -> int | None:
        if block:
            proc.wait()
        return proc.poll()

    return Running(args, proc.pid, fds, stdin_fd, in_data, timeout, start, reap).wait()


# -- the oracle of a bad input -------------------------------------------------------------

def _prefix_re(cmd: str | None) -> re.Pattern[str]:
    return re.compile(r"numaguard " + (re.escape(cmd) if cmd else r"[a-z][a-z-]*") + ": ")


def bad_input_problems(outcome: Outcome, *, names: Iterable[str] = (), cmd: str | None = None,
                       one_line: bool = True, code: int = 2) -> list[str]:
    """Why *outcome* is not a clean refusal (empty list: it is one).  See assert_bad_input."""
    problems = []
    if outcome.timed_out:
        problems.append(f"timed out after {outcome.elapsed:.1f}s")
    if outcome.code != code:
        problems.append(f"exit {outcome.code}, expected {code}")
    if "Traceback" in outcome.err or "Traceback" in outcome.out:
        problems.append("a traceback in the output")
    lines = outcome.err.splitlines()
    if not lines:
        problems.append("stderr is empty")
    prefix = _prefix_re(cmd)
    bad = [line for line in lines if not prefix.match(line)]
    if bad:
        problems.append(f"stderr lines without the `{prefix.pattern}` prefix: {bad[:3]!r}")
    if one_line and len(lines) > 1:
        problems.append(f"{len(lines)} stderr lines, expected one")
    for name in names:
        if name not in outcome.err:
            problems.append(f"stderr does not name {name!r}")
    return problems


def assert_bad_input(outcome: Outcome, *, names: Iterable[str] = (), cmd: str | None = None,
                     one_line: bool = True, code: int = 2) -> None:
    """A clean refusal: exit *code* (2), no timeout, no "Traceback" anywhere, stderr non-empty
    and every line ``numaguard <cmd>: …`` (*cmd* ``None``: any sub-command, the same rule),
    every string of *names* (a path, a field) in stderr, and with *one_line* exactly one line."""
    problems = bad_input_problems(outcome, names=names, cmd=cmd, one_line=one_line, code=code)
    assert not problems, "; ".join(problems) + "\n" + outcome.describe()


def assert_not_leaked(outcome: Outcome, *secrets: str | bytes) -> None:
    """No byte string of *secrets* (the content of a file named by an entity, a password)
    appears in stdout or stderr."""
    for secret in secrets:
        raw = secret.encode() if isinstance(secret, str) else secret
        assert raw, "an empty secret proves nothing"
        for name, stream in (("stdout", outcome.out_bytes), ("stderr", outcome.err_bytes)):
            assert raw not in stream, f"{raw[:40]!r} leaked into {name}\n{outcome.describe()}"


# -- "no file touched outside the target" --------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Entry:
    """What a tree walk records of one path (lstat: a symlink is itself, not its target)."""

    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    link: str | None = None


def snapshot_tree(*roots: str | os.PathLike[str]) -> dict[str, Entry]:
    """(path -> Entry) for every file, folder and link under each root (roots included;
    symlinks are not followed).  A root that does not exist is recorded as absent."""
    state: dict[str, Entry] = {}

    def record(path: str) -> Entry | None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        kind = ("dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode)
                else "file" if stat.S_ISREG(st.st_mode) else "other")
        link = os.readlink(path) if kind == "link" else None
        entry = Entry(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size,
                      st.st_mtime_ns, st.st_ctime_ns, st.st_ino, link)
        state[path] = entry
        return entry

    for root in roots:
        top = os.path.abspath(os.fspath(root))
        entry = record(top)
        if entry is None or entry.kind != "dir":
            continue
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False,
                                                    onerror=lambda e: None):
            for name in (*dirnames, *filenames):
                record(os.path.join(dirpath, name))
    return state


def diff_trees(before: Mapping[str, Entry], after: Mapping[str, Entry], *,
               allow: Iterable[str] = ()) -> list[str]:
    """Human-readable changes between two snapshots (``added``, ``removed``, ``changed``),
    except paths matching a pattern of *allow* (fnmatch on the absolute path)."""
    patterns = [os.path.abspath(os.fspath(p)) for p in allow]

    def allowed(path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, p) for p in patterns)

    changes = []
    for path in sorted(set(before) | set(after)):
        if allowed(path):
            continue
        old, new = before.get(path), after.get(path)
        if old is None:
            changes.append(f"added {path}")
        elif new is None:
            changes.append(f"removed {path}")
        elif old != new:
            what = [f.name for f in dataclasses.fields(Entry)
                    if getattr(old, f.name) != getattr(new, f.name)]
            changes.append(f"changed {path} ({', '.join(what)})")
    return changes


@contextlib.contextmanager
def untouched(*roots: str | os.PathLike[str], allow: Iterable[str] = ()) -> Iterator[
        dict[str, Entry]]:
    """``with untouched(tmp_path, "/etc", allow=[target, target + ".numaguard-*.bak"]):`` —
    fails when any file, folder or link under the roots was added, removed or changed
    (content size, mtime, ctime, inode, mode, owner, link target) during the block, other
    than the allowed paths.  A folder's mtime changes when an entry is created in it, even
    one removed again (a temp file): allow the target's folder explicitly when a write there
    is expected.  Yields the before-snapshot."""
    allow = list(allow)
    before = snapshot_tree(*roots)
    yield before
    changes = diff_trees(before, snapshot_tree(*roots), allow=allow)
    assert not changes, "touched outside the target:\n" + "\n".join(changes[:50])
